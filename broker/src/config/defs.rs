//! The one table of broker settings: names (Kafka's where Kafka has one), types, defaults,
//! limits and docs. Flags, `ISTHMUS_*` variables, the TOML file, DescribeConfigs and the
//! README's configuration table are all generated from it, so they cannot drift apart.

/// What values a setting accepts. `ThrottledReplicas` is a topic's
/// `*.replication.throttled.replicas`: empty, `*`, or `partition:broker,…` (a LIST).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueKind {
    Bool,
    Int { min: i64, max: i64 },
    Long { min: i64, max: i64 },
    String,
    List,
    ThrottledReplicas,
    Choice(&'static [&'static str]),
    Double { min: f64, max: f64 },
}

impl ValueKind {
    /// Kafka's ConfigType name as DescribeConfigs v3+ reports it (1 = BOOLEAN … 7 = LIST).
    pub fn describe_type(&self) -> i8 {
        match self {
            ValueKind::Bool => 1,
            ValueKind::String | ValueKind::Choice(_) => 2,
            ValueKind::Int { .. } => 3,
            ValueKind::Long { .. } => 5,
            ValueKind::List | ValueKind::ThrottledReplicas => 7,
            ValueKind::Double { .. } => 6,
        }
    }
}

/// When a setting can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Fixed for the life of the process (node identity, listeners, directories).
    Node,
    /// A cluster-wide default that IncrementalAlterConfigs may change at run time.
    Dynamic,
}

/// One broker setting.
#[derive(Debug)]
pub struct BrokerSetting {
    pub name: &'static str,
    pub kind: ValueKind,
    /// `None` means unset by default (the doc says what unset means).
    pub default: Option<&'static str>,
    pub scope: Scope,
    pub doc: &'static str,
}

const I32: ValueKind = ValueKind::Int {
    min: 0,
    max: i32::MAX as i64,
};
const POSITIVE_I32: ValueKind = ValueKind::Int {
    min: 1,
    max: i32::MAX as i64,
};
const LONG_OR_UNLIMITED: ValueKind = ValueKind::Long {
    min: -1,
    max: i64::MAX,
};
/// Kafka's replica selector classes (KIP-392), by the names operators already use.
pub const RACK_AWARE_REPLICA_SELECTOR: &str =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";
const REPLICA_SELECTORS: &[&str] = &[
    RACK_AWARE_REPLICA_SELECTOR,
    "org.apache.kafka.common.replica.LeaderSelector",
];

const POSITIVE_LONG: ValueKind = ValueKind::Long {
    min: 1,
    max: i64::MAX,
};

/// `*.replication.throttled.rate`: bytes per second, Long.MAX_VALUE (the default) = none.
const THROTTLE_RATE: ValueKind = ValueKind::Long {
    min: 0,
    max: i64::MAX,
};
const UNTHROTTLED_RATE: &str = "9223372036854775807";

/// One record-batch header: the smallest segment that can hold anything.
const SEGMENT_BYTES_MIN: i64 = isthmus_protocol::batch::HEADER_SIZE as i64;

pub const PROCESS_ROLES: &[&str] = &[
    "broker,controller",
    "controller,broker",
    "broker",
    "controller",
];
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
pub const CLEANUP_POLICIES: &[&str] = &["delete", "compact", "compact,delete", "delete,compact"];

pub static BROKER_SETTINGS: &[BrokerSetting] = &[
    BrokerSetting {
        name: "node.id",
        kind: I32,
        default: Some("1"),
        scope: Scope::Node,
        doc: "This node's id; must match meta.properties in every log dir once written.",
    },
    BrokerSetting {
        name: "broker.rack",
        kind: ValueKind::String,
        default: None,
        scope: Scope::Node,
        doc: "Site (rack, zone) of this broker, reported to clients and used for replica placement.",
    },
    BrokerSetting {
        name: "process.roles",
        kind: ValueKind::Choice(PROCESS_ROLES),
        default: Some("broker,controller"),
        scope: Scope::Node,
        doc: "What this node runs, as in KRaft: broker, controller, or both (combined).",
    },
    BrokerSetting {
        name: "controller.quorum.voters",
        kind: ValueKind::List,
        default: None,
        scope: Scope::Node,
        doc: "The metadata quorum as comma-separated id@host:port; unset = this node alone at the controller listener (<node.id>@127.0.0.1:9093).",
    },
    BrokerSetting {
        name: "broker.session.timeout.ms",
        kind: POSITIVE_LONG,
        default: Some("9000"),
        scope: Scope::Node,
        doc: "Controllers fence a broker (and move its leaderships) when it has not heartbeated for this long.",
    },
    BrokerSetting {
        name: "broker.heartbeat.interval.ms",
        kind: POSITIVE_LONG,
        default: Some("2000"),
        scope: Scope::Node,
        doc: "How often a broker heartbeats to the active controller; below broker.session.timeout.ms.",
    },
    BrokerSetting {
        name: "auto.leader.rebalance.enable",
        kind: ValueKind::Bool,
        default: Some("true"),
        scope: Scope::Node,
        doc: "The active controller periodically moves leadership back to each partition's preferred (first) replica when it is in the ISR.",
    },
    BrokerSetting {
        name: "leader.imbalance.check.interval.seconds",
        kind: POSITIVE_LONG,
        default: Some("300"),
        scope: Scope::Node,
        doc: "How often the active controller checks for partitions not led by their preferred replica.",
    },
    BrokerSetting {
        name: "controlled.shutdown.enable",
        kind: ValueKind::Bool,
        default: Some("true"),
        scope: Scope::Node,
        doc: "At a clean stop, a broker first asks the controller to move its leaderships away and waits for that (bounded by broker.session.timeout.ms).",
    },
    BrokerSetting {
        name: "replica.lag.time.max.ms",
        kind: POSITIVE_LONG,
        default: Some("30000"),
        scope: Scope::Node,
        doc: "A leader removes a follower from the ISR when it has not caught up with the leader's log end for this long.",
    },
    BrokerSetting {
        name: "replica.fetch.wait.max.ms",
        kind: POSITIVE_LONG,
        default: Some("500"),
        scope: Scope::Node,
        doc: "How long a follower's fetch waits at the leader for new data; below replica.lag.time.max.ms.",
    },
    BrokerSetting {
        name: "replica.fetch.min.bytes",
        kind: POSITIVE_LONG,
        default: Some("1"),
        scope: Scope::Node,
        doc: "Bytes a follower's fetch waits for before the leader answers.",
    },
    BrokerSetting {
        name: "replica.fetch.max.bytes",
        kind: POSITIVE_LONG,
        default: Some("1048576"),
        scope: Scope::Node,
        doc: "Bytes a follower asks for per partition in one fetch (a larger first batch still comes whole).",
    },
    BrokerSetting {
        name: "replica.fetch.response.max.bytes",
        kind: POSITIVE_LONG,
        default: Some("10485760"),
        scope: Scope::Node,
        doc: "Bytes a follower asks for in one fetch across all its partitions from one leader.",
    },
    BrokerSetting {
        name: "replica.fetch.backoff.ms",
        kind: POSITIVE_LONG,
        default: Some("1000"),
        scope: Scope::Node,
        doc: "How long a follower waits before retrying a leader it could not fetch from.",
    },
    BrokerSetting {
        name: "replica.selector.class",
        kind: ValueKind::Choice(REPLICA_SELECTORS),
        default: None,
        scope: Scope::Node,
        doc: "Which replica a consumer that sends client.rack reads from (KIP-392): the rack-aware selector directs it to an in-sync replica in its rack; unset or LeaderSelector = the leader.",
    },
    BrokerSetting {
        name: "replica.high.watermark.checkpoint.interval.ms",
        kind: POSITIVE_LONG,
        default: Some("5000"),
        scope: Scope::Node,
        doc: "How often each log dir's high watermarks are written to replication-offset-checkpoint.",
    },
    BrokerSetting {
        name: "leader.replication.throttled.rate",
        kind: THROTTLE_RATE,
        default: Some(UNTHROTTLED_RATE),
        scope: Scope::Dynamic,
        doc: "Bytes/s this broker sends to out-of-sync followers of the partitions a topic's leader.replication.throttled.replicas names for it (KIP-73); the default means unthrottled, 0 stops them.",
    },
    BrokerSetting {
        name: "follower.replication.throttled.rate",
        kind: THROTTLE_RATE,
        default: Some(UNTHROTTLED_RATE),
        scope: Scope::Dynamic,
        doc: "Bytes/s this broker's fetchers take in for the partitions a topic's follower.replication.throttled.replicas names for it while it is out of their ISR (KIP-73); the default means unthrottled, 0 stops them.",
    },
    BrokerSetting {
        name: "controller.listener.names",
        kind: ValueKind::List,
        default: Some("CONTROLLER"),
        scope: Scope::Node,
        doc: "Names of the listeners in `listeners` that serve the controller quorum (not clients).",
    },
    BrokerSetting {
        name: "metadata.log.dir",
        kind: ValueKind::String,
        default: None,
        scope: Scope::Node,
        doc: "Directory holding the metadata quorum's log (in its `metadata` folder); unset = the log dir that has it, else the first log dir.",
    },
    BrokerSetting {
        name: "listeners",
        kind: ValueKind::List,
        default: Some("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
        scope: Scope::Node,
        doc: "Comma-separated NAME://host:port to bind: PLAINTEXT for clients (TLS and SASL are not implemented yet) and the controller listener named in controller.listener.names.",
    },
    BrokerSetting {
        name: "advertised.listeners",
        kind: ValueKind::List,
        default: None,
        scope: Scope::Node,
        doc: "Addresses given to clients in Metadata; unset = the bound listeners.",
    },
    BrokerSetting {
        name: "log.dirs",
        kind: ValueKind::List,
        default: Some("./data"),
        scope: Scope::Node,
        doc: "Comma-separated data directories; partitions are spread over them.",
    },
    BrokerSetting {
        name: "num.partitions",
        kind: POSITIVE_I32,
        default: Some("1"),
        scope: Scope::Dynamic,
        doc: "Partitions of an auto-created topic or of CreateTopics with partitions = -1.",
    },
    BrokerSetting {
        name: "default.replication.factor",
        kind: POSITIVE_I32,
        default: Some("1"),
        scope: Scope::Dynamic,
        doc: "Replication factor of auto-created topics and of CreateTopics with -1.",
    },
    BrokerSetting {
        name: "auto.create.topics.enable",
        kind: ValueKind::Bool,
        default: Some("true"),
        scope: Scope::Node,
        doc: "Create a topic when Metadata asks for one that does not exist.",
    },
    BrokerSetting {
        name: "delete.topic.enable",
        kind: ValueKind::Bool,
        default: Some("true"),
        scope: Scope::Node,
        doc: "Allow DeleteTopics.",
    },
    BrokerSetting {
        name: "log.segment.bytes",
        kind: ValueKind::Int { min: SEGMENT_BYTES_MIN, max: i32::MAX as i64 },
        default: Some("1073741824"),
        scope: Scope::Dynamic,
        doc: "Roll a segment when it would grow past this size (topic: segment.bytes).",
    },
    BrokerSetting {
        name: "log.roll.ms",
        kind: POSITIVE_LONG,
        default: Some("604800000"),
        scope: Scope::Dynamic,
        doc: "Roll a segment once its first batch is this old (topic: segment.ms).",
    },
    BrokerSetting {
        name: "log.retention.ms",
        kind: LONG_OR_UNLIMITED,
        default: Some("604800000"),
        scope: Scope::Dynamic,
        doc: "Delete whole segments older than this; -1 keeps them forever (topic: retention.ms).",
    },
    BrokerSetting {
        name: "log.retention.bytes",
        kind: LONG_OR_UNLIMITED,
        default: Some("-1"),
        scope: Scope::Dynamic,
        doc: "Delete oldest segments while a partition is larger than this; -1 = no limit (topic: retention.bytes).",
    },
    BrokerSetting {
        name: "log.retention.check.interval.ms",
        kind: POSITIVE_LONG,
        default: Some("300000"),
        scope: Scope::Node,
        doc: "How often retention is applied.",
    },
    BrokerSetting {
        name: "message.max.bytes",
        kind: ValueKind::Int { min: 1, max: i32::MAX as i64 },
        default: Some("1048588"),
        scope: Scope::Dynamic,
        doc: "Largest record batch accepted (topic: max.message.bytes).",
    },
    BrokerSetting {
        name: "log.flush.interval.messages",
        kind: POSITIVE_LONG,
        default: None,
        scope: Scope::Dynamic,
        doc: "Unset (default): acknowledge writes only after fsync, group-committed. Set: Kafka's page-cache mode, fsync after this many messages (topic: flush.messages).",
    },
    BrokerSetting {
        name: "log.flush.interval.ms",
        kind: POSITIVE_LONG,
        default: None,
        scope: Scope::Dynamic,
        doc: "Unset (default): fsync before acknowledging. Set: Kafka's page-cache mode, fsync at least this often (topic: flush.ms).",
    },
    BrokerSetting {
        name: "log.index.interval.bytes",
        kind: I32,
        default: Some("4096"),
        scope: Scope::Dynamic,
        doc: "Bytes between offset-index entries (topic: index.interval.bytes).",
    },
    BrokerSetting {
        name: "log.index.size.max.bytes",
        kind: ValueKind::Int { min: 4096, max: i32::MAX as i64 },
        default: Some("10485760"),
        scope: Scope::Dynamic,
        doc: "Preallocated size of a segment's index files (topic: segment.index.bytes).",
    },
    BrokerSetting {
        name: "log.message.timestamp.type",
        kind: ValueKind::Choice(TIMESTAMP_TYPES),
        default: Some("CreateTime"),
        scope: Scope::Dynamic,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock (topic: message.timestamp.type).",
    },
    BrokerSetting {
        name: "log.cleanup.policy",
        kind: ValueKind::Choice(CLEANUP_POLICIES),
        default: Some("delete"),
        scope: Scope::Dynamic,
        doc: "delete = retention by time and size; compact = keep the latest record per key; or both (topic: cleanup.policy).",
    },
    BrokerSetting {
        name: "log.cleaner.enable",
        kind: ValueKind::Bool,
        default: Some("true"),
        scope: Scope::Node,
        doc: "Run the log cleaner for compacted topics.",
    },
    BrokerSetting {
        name: "log.cleaner.backoff.ms",
        kind: POSITIVE_LONG,
        default: Some("15000"),
        scope: Scope::Node,
        doc: "How often the cleaner looks for partitions to compact.",
    },
    BrokerSetting {
        name: "log.cleaner.dedupe.buffer.size",
        kind: ValueKind::Long { min: 1 << 20, max: i64::MAX },
        default: Some("134217728"),
        scope: Scope::Node,
        doc: "Memory for the cleaner's key map per pass; larger dirty sections take several passes.",
    },
    BrokerSetting {
        name: "log.cleaner.delete.retention.ms",
        kind: LONG_OR_UNLIMITED,
        default: Some("86400000"),
        scope: Scope::Dynamic,
        doc: "How long tombstones stay readable after compaction (topic: delete.retention.ms).",
    },
    BrokerSetting {
        name: "log.cleaner.min.compaction.lag.ms",
        kind: ValueKind::Long { min: 0, max: i64::MAX },
        default: Some("0"),
        scope: Scope::Dynamic,
        doc: "Records younger than this are not compacted (topic: min.compaction.lag.ms).",
    },
    BrokerSetting {
        name: "log.cleaner.max.compaction.lag.ms",
        kind: POSITIVE_LONG,
        default: Some("9223372036854775807"),
        scope: Scope::Dynamic,
        doc: "Records older than this are compacted whatever the dirty ratio (topic: max.compaction.lag.ms).",
    },
    BrokerSetting {
        name: "log.cleaner.min.cleanable.ratio",
        kind: ValueKind::Double { min: 0.0, max: 1.0 },
        default: Some("0.5"),
        scope: Scope::Dynamic,
        doc: "Compact a partition once this share of it is dirty (topic: min.cleanable.dirty.ratio).",
    },
    BrokerSetting {
        name: "min.insync.replicas",
        kind: POSITIVE_I32,
        default: Some("1"),
        scope: Scope::Dynamic,
        doc: "acks=all fails with NOT_ENOUGH_REPLICAS while fewer replicas are in sync.",
    },
    BrokerSetting {
        name: "unclean.leader.election.enable",
        kind: ValueKind::Bool,
        default: Some("false"),
        scope: Scope::Dynamic,
        doc: "Allow a replica outside the ISR to become leader (may lose acknowledged writes).",
    },
    BrokerSetting {
        name: "group.min.session.timeout.ms",
        kind: POSITIVE_I32,
        default: Some("6000"),
        scope: Scope::Node,
        doc: "Smallest session timeout a group member may ask for.",
    },
    BrokerSetting {
        name: "group.max.session.timeout.ms",
        kind: POSITIVE_I32,
        default: Some("1800000"),
        scope: Scope::Node,
        doc: "Largest session timeout a group member may ask for.",
    },
    BrokerSetting {
        name: "group.initial.rebalance.delay.ms",
        kind: I32,
        default: Some("3000"),
        scope: Scope::Node,
        doc: "How long the first rebalance of an empty group waits for more members.",
    },
    BrokerSetting {
        name: "group.consumer.heartbeat.interval.ms",
        kind: ValueKind::Int { min: 1, max: i32::MAX as i64 },
        default: Some("5000"),
        scope: Scope::Node,
        doc: "Heartbeat interval the coordinator gives consumer-protocol (KIP-848) members.",
    },
    BrokerSetting {
        name: "group.consumer.session.timeout.ms",
        kind: ValueKind::Int { min: 1, max: i32::MAX as i64 },
        default: Some("45000"),
        scope: Scope::Node,
        doc: "A consumer-protocol member silent this long is removed from its group.",
    },
    BrokerSetting {
        name: "group.consumer.max.size",
        kind: ValueKind::Int { min: 1, max: i32::MAX as i64 },
        default: Some("2147483647"),
        scope: Scope::Node,
        doc: "Most members a consumer-protocol group may have (GROUP_MAX_SIZE_REACHED above).",
    },
    BrokerSetting {
        name: "group.consumer.assignors",
        kind: ValueKind::List,
        default: Some("uniform,range"),
        scope: Scope::Node,
        doc: "Server-side assignors offered to consumer-protocol groups; the first is the default.",
    },
    BrokerSetting {
        name: "offsets.topic.num.partitions",
        kind: ValueKind::Int { min: 1, max: 1000 },
        default: Some("50"),
        scope: Scope::Node,
        doc: "Partitions of __consumer_offsets (fixed once the topic exists).",
    },
    BrokerSetting {
        name: "offsets.topic.replication.factor",
        kind: ValueKind::Int { min: 1, max: 32767 },
        default: Some("3"),
        scope: Scope::Node,
        doc: "Replication factor of __consumer_offsets when it is created, capped at the number of active brokers then.",
    },
    BrokerSetting {
        name: "offset.metadata.max.bytes",
        kind: I32,
        default: Some("4096"),
        scope: Scope::Node,
        doc: "Largest metadata string of a committed offset (OFFSET_METADATA_TOO_LARGE above).",
    },
    BrokerSetting {
        name: "offsets.retention.minutes",
        kind: POSITIVE_I32,
        default: Some("10080"),
        scope: Scope::Node,
        doc: "Committed offsets of a group that has been empty this long are deleted.",
    },
    BrokerSetting {
        name: "offsets.retention.check.interval.ms",
        kind: POSITIVE_LONG,
        default: Some("600000"),
        scope: Scope::Node,
        doc: "How often expired offsets are looked for.",
    },
    BrokerSetting {
        name: "socket.request.max.bytes",
        kind: ValueKind::Int { min: 1024, max: i32::MAX as i64 },
        default: Some("104857600"),
        scope: Scope::Node,
        doc: "Largest request frame; a larger size prefix closes the connection.",
    },
    BrokerSetting {
        name: "connections.max.idle.ms",
        kind: POSITIVE_LONG,
        default: Some("600000"),
        scope: Scope::Node,
        doc: "Close connections that sent nothing for this long.",
    },
];

/// A topic-level setting and the broker setting that provides its default.
#[derive(Debug)]
pub struct TopicSetting {
    pub name: &'static str,
    /// The broker setting whose value applies when the topic has no override; `None` for
    /// topic-only settings, whose default is empty.
    pub broker_default: Option<&'static str>,
    pub kind: ValueKind,
    pub doc: &'static str,
}

pub static TOPIC_SETTINGS: &[TopicSetting] = &[
    TopicSetting {
        name: "cleanup.policy",
        broker_default: Some("log.cleanup.policy"),
        kind: ValueKind::Choice(CLEANUP_POLICIES),
        doc: "delete, compact, or compact,delete",
    },
    TopicSetting {
        name: "retention.ms",
        broker_default: Some("log.retention.ms"),
        kind: LONG_OR_UNLIMITED,
        doc: "Age after which whole segments are deleted; -1 = forever",
    },
    TopicSetting {
        name: "retention.bytes",
        broker_default: Some("log.retention.bytes"),
        kind: LONG_OR_UNLIMITED,
        doc: "Partition size above which oldest segments are deleted; -1 = no limit",
    },
    TopicSetting {
        name: "segment.bytes",
        broker_default: Some("log.segment.bytes"),
        kind: ValueKind::Int {
            min: 14,
            max: i32::MAX as i64,
        },
        doc: "Segment size",
    },
    TopicSetting {
        name: "segment.ms",
        broker_default: Some("log.roll.ms"),
        kind: POSITIVE_LONG,
        doc: "Segment age at which it is rolled",
    },
    TopicSetting {
        name: "max.message.bytes",
        broker_default: Some("message.max.bytes"),
        kind: ValueKind::Int {
            min: 0,
            max: i32::MAX as i64,
        },
        doc: "Largest record batch",
    },
    TopicSetting {
        name: "message.timestamp.type",
        broker_default: Some("log.message.timestamp.type"),
        kind: ValueKind::Choice(TIMESTAMP_TYPES),
        doc: "CreateTime or LogAppendTime",
    },
    TopicSetting {
        name: "flush.messages",
        broker_default: Some("log.flush.interval.messages"),
        kind: POSITIVE_LONG,
        doc: "Page-cache mode: fsync after this many messages",
    },
    TopicSetting {
        name: "flush.ms",
        broker_default: Some("log.flush.interval.ms"),
        kind: POSITIVE_LONG,
        doc: "Page-cache mode: fsync at least this often",
    },
    TopicSetting {
        name: "index.interval.bytes",
        broker_default: Some("log.index.interval.bytes"),
        kind: I32,
        doc: "Bytes between index entries",
    },
    TopicSetting {
        name: "segment.index.bytes",
        broker_default: Some("log.index.size.max.bytes"),
        kind: ValueKind::Int {
            min: 4096,
            max: i32::MAX as i64,
        },
        doc: "Preallocated index size",
    },
    TopicSetting {
        name: "delete.retention.ms",
        broker_default: Some("log.cleaner.delete.retention.ms"),
        kind: LONG_OR_UNLIMITED,
        doc: "How long tombstones survive compaction",
    },
    TopicSetting {
        name: "min.compaction.lag.ms",
        broker_default: Some("log.cleaner.min.compaction.lag.ms"),
        kind: ValueKind::Long {
            min: 0,
            max: i64::MAX,
        },
        doc: "Records younger than this are not compacted",
    },
    TopicSetting {
        name: "max.compaction.lag.ms",
        broker_default: Some("log.cleaner.max.compaction.lag.ms"),
        kind: POSITIVE_LONG,
        doc: "Records older than this are compacted regardless of the dirty ratio",
    },
    TopicSetting {
        name: "min.cleanable.dirty.ratio",
        broker_default: Some("log.cleaner.min.cleanable.ratio"),
        kind: ValueKind::Double { min: 0.0, max: 1.0 },
        doc: "Share of dirty bytes that triggers compaction",
    },
    TopicSetting {
        name: "min.insync.replicas",
        broker_default: Some("min.insync.replicas"),
        kind: POSITIVE_I32,
        doc: "Replicas that must be in sync for acks=all",
    },
    TopicSetting {
        name: "unclean.leader.election.enable",
        broker_default: Some("unclean.leader.election.enable"),
        kind: ValueKind::Bool,
        doc: "Allow out-of-sync leaders",
    },
    TopicSetting {
        name: "leader.replication.throttled.replicas",
        broker_default: None,
        kind: ValueKind::ThrottledReplicas,
        doc: "Replicas whose leader side is throttled by leader.replication.throttled.rate: partition:broker pairs, or * for all",
    },
    TopicSetting {
        name: "follower.replication.throttled.replicas",
        broker_default: None,
        kind: ValueKind::ThrottledReplicas,
        doc: "Replicas whose follower side is throttled by follower.replication.throttled.rate: partition:broker pairs, or * for all",
    },
];

pub fn broker_setting(name: &str) -> Option<&'static BrokerSetting> {
    BROKER_SETTINGS.iter().find(|s| s.name == name)
}

pub fn topic_setting(name: &str) -> Option<&'static TopicSetting> {
    TOPIC_SETTINGS.iter().find(|s| s.name == name)
}

/// Checks a value against a kind; the error says what would be accepted.
pub fn validate(kind: &ValueKind, value: &str) -> Result<(), String> {
    match kind {
        ValueKind::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err("expected true or false".into()),
        },
        ValueKind::Int { min, max } | ValueKind::Long { min, max } => {
            match value.trim().parse::<i64>() {
                Ok(v) if v >= *min && v <= *max => Ok(()),
                _ => Err(format!("expected an integer from {min} to {max}")),
            }
        }
        ValueKind::String | ValueKind::List => Ok(()),
        ValueKind::ThrottledReplicas => super::topic::ThrottledReplicas::parse(value).map(|_| ()),
        ValueKind::Double { min, max } => match value.trim().parse::<f64>() {
            Ok(v) if v >= *min && v <= *max => Ok(()),
            _ => Err(format!("expected a number from {min} to {max}")),
        },
        ValueKind::Choice(choices) => {
            if choices.contains(&value) {
                Ok(())
            } else {
                Err(format!("expected one of {}", choices.join(", ")))
            }
        }
    }
}

/// Environment variable for a setting: `log.dirs` → `ISTHMUS_LOG_DIRS`.
pub fn env_name(name: &str) -> String {
    format!(
        "ISTHMUS_{}",
        name.replace(['.', '-'], "_").to_ascii_uppercase()
    )
}

/// The closest known name, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<&'static str> {
    BROKER_SETTINGS
        .iter()
        .map(|s| (edit_distance(name, s.name), s.name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid_for_its_kind() {
        for s in BROKER_SETTINGS {
            if let Some(d) = s.default {
                validate(&s.kind, d).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            }
        }
        for t in TOPIC_SETTINGS {
            if let Some(b) = t.broker_default {
                assert!(
                    broker_setting(b).is_some(),
                    "{}: no broker setting {b}",
                    t.name
                );
            }
        }
    }

    #[test]
    fn readme_configuration_table_lists_every_setting() {
        let readme = include_str!("../../../README.md");
        for s in BROKER_SETTINGS {
            assert!(
                readme.contains(&format!("| `{}` |", s.name)),
                "README.md's configuration table lacks {}",
                s.name
            );
        }
    }

    #[test]
    fn env_names_and_suggestions() {
        assert_eq!(env_name("log.dirs"), "ISTHMUS_LOG_DIRS");
        assert_eq!(suggest("log.segmnt.bytes"), Some("log.segment.bytes"));
        assert_eq!(suggest("completely.different.thing"), None);
    }

    #[test]
    fn validation_messages_name_the_range() {
        let e = validate(&ValueKind::Int { min: 14, max: 100 }, "5").unwrap_err();
        assert!(e.contains("14") && e.contains("100"));
        assert!(validate(&ValueKind::Bool, "yes").is_err());
        assert!(validate(&ValueKind::Choice(TIMESTAMP_TYPES), "LogAppendTime").is_ok());
    }
}
