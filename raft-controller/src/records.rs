//! Metadata records: what the controller writes into the Raft log.
//!
//! One log entry carries one [`MetadataProposal`]: a format version and a list of
//! [`MetadataRecord`]s applied all-or-nothing. Records are serde-encoded (JSON, with an
//! internal `type` tag), so the format can evolve: a new field is added with
//! `#[serde(default)]`, a new record is a new variant, and a change that old code cannot
//! read bumps [`RECORD_FORMAT_VERSION`] (to be gated by a cluster-wide metadata version
//! before any node writes it, as KRaft's `metadata.version` does).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The record format this code writes and the newest it can apply.
pub const RECORD_FORMAT_VERSION: u16 = 1;

/// Kafka's "no leader" value for [`PartitionRecord::leader`].
pub const NO_LEADER: i32 = -1;

/// The payload of one Raft log entry: records applied together, or not at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataProposal {
    pub version: u16,
    pub records: Vec<MetadataRecord>,
}

impl MetadataProposal {
    /// A proposal in the current format.
    pub fn new(records: Vec<MetadataRecord>) -> Self {
        MetadataProposal {
            version: RECORD_FORMAT_VERSION,
            records,
        }
    }
}

/// One metadata change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// A broker (re)registers. It gets the entry's log index as its broker epoch and
    /// starts fenced, as in KRaft.
    RegisterBroker(BrokerRegistrationRecord),
    /// Removes a broker's registration.
    UnregisterBroker { broker_id: i32, broker_epoch: i64 },
    /// The broker's session expired (or it shut down): it leads and fetches nothing.
    FenceBroker { broker_id: i32, broker_epoch: i64 },
    /// The broker caught up and heartbeats: it may lead and be in ISRs.
    UnfenceBroker { broker_id: i32, broker_epoch: i64 },
    /// The broker asked for a controlled shutdown: leadership moves away from it.
    BeginControlledShutdown { broker_id: i32, broker_epoch: i64 },
    /// A new topic (its partitions follow as [`MetadataRecord::Partition`] records in the
    /// same proposal).
    CreateTopic(TopicRecord),
    /// A new partition of an existing topic (topic creation or CreatePartitions).
    Partition(PartitionRecord),
    /// Leader, ISR or replica change of an existing partition; epochs bump on apply.
    PartitionChange(PartitionChangeRecord),
    /// Sets one config key of a topic, a broker or the cluster default.
    SetConfig {
        resource: ConfigResource,
        key: String,
        value: String,
    },
    /// Deletes one config key (back to the default).
    DeleteConfig {
        resource: ConfigResource,
        key: String,
    },
    /// Grants a broker the next block of producer ids.
    ProducerIds(ProducerIdsRecord),
    /// Deletes a topic, its partitions and its configs.
    RemoveTopic { topic_id: Uuid },
}

/// A listener a broker advertises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Listener name (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub security_protocol: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationRecord {
    pub broker_id: i32,
    /// New for each broker process start; tells a restart from a retry.
    pub incarnation_id: Uuid,
    /// `broker.rack` (the site in a stretch cluster).
    #[serde(default)]
    pub rack: Option<String>,
    pub endpoints: Vec<BrokerEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
    /// Topic-level config overrides (`retention.ms`, `min.insync.replicas`, ...).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// A broker in `isr`, or [`NO_LEADER`].
    pub leader: i32,
    #[serde(default)]
    pub leader_epoch: i32,
    #[serde(default)]
    pub partition_epoch: i32,
}

/// A change of an existing partition. Fields left `None` keep their value. On apply the
/// partition epoch is bumped, and the leader epoch too when the leader changes (as
/// KRaft's `PartitionChangeRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    #[serde(default)]
    pub leader: Option<i32>,
    #[serde(default)]
    pub isr: Option<Vec<i32>>,
    #[serde(default)]
    pub replicas: Option<Vec<i32>>,
    /// Replicas a reassignment is adding (`Some(vec![])` clears), as KRaft's
    /// `PartitionChangeRecord.addingReplicas`.
    #[serde(default)]
    pub adding_replicas: Option<Vec<i32>>,
    /// Replicas a reassignment will remove once the adding ones are in the ISR.
    #[serde(default)]
    pub removing_replicas: Option<Vec<i32>>,
    /// When set, the change applies only if the partition epoch is still this one
    /// (AlterPartition's compare-and-set); otherwise INVALID_UPDATE_VERSION.
    #[serde(default)]
    pub expected_partition_epoch: Option<i32>,
}

/// What a config record is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConfigResource {
    Topic {
        name: String,
    },
    Broker {
        broker_id: i32,
    },
    /// Kafka's broker resource with an empty name: the cluster-wide default.
    ClusterDefault,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// Must equal the image's `next_producer_id`.
    pub first_producer_id: i64,
    pub block_size: i64,
}

/// Bound on one proposal's encoding; keeps every log entry well inside one controller
/// RPC frame (`network::FRAME_BYTES_MAX`) and the log's entry bound.
pub const PROPOSAL_BYTES_MAX: usize = 4 * 1024 * 1024;
