//! A topic's effective settings: its own overrides on top of the broker's (dynamic) defaults.

use std::collections::BTreeMap;

use isthmus_storage::{CleanupPolicy, LogConfig, TimestampType};

use super::defs::{topic_setting, validate, TOPIC_SETTINGS};
use super::Settings;

/// How a partition makes writes durable before acknowledging them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Default: fsync (group-committed) before acks=1 and acks=all are answered.
    Durable,
    /// Kafka's behaviour: acknowledge from the page cache, fsync after `messages` or `ms`.
    PageCache {
        messages: Option<u64>,
        ms: Option<u64>,
    },
}

/// Everything a partition needs from its topic's configuration.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub log: LogConfig,
    pub flush: FlushPolicy,
    pub min_insync_replicas: i32,
    /// `leader.replication.throttled.replicas`.
    pub leader_throttled: ThrottledReplicas,
    /// `follower.replication.throttled.replicas`.
    pub follower_throttled: ThrottledReplicas,
}

/// A topic's `leader.replication.throttled.replicas` or
/// `follower.replication.throttled.replicas` (KIP-73): which replicas the broker's
/// replication quota of that side applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ThrottledReplicas {
    /// Empty (the default): none.
    #[default]
    None,
    /// `*`: every replica of the topic.
    All,
    /// `partition:broker` pairs.
    Listed(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Kafka's accepted forms: empty, `*`, or comma-separated `partitionId:brokerId` pairs
    /// (spaces around items allowed, empty items ignored). The error says what is accepted.
    pub fn parse(value: &str) -> Result<ThrottledReplicas, String> {
        let items: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect();
        if items == ["*"] {
            return Ok(ThrottledReplicas::All);
        }
        let mut pairs = Vec::with_capacity(items.len());
        for item in items {
            let pair = item.split_once(':').and_then(|(p, b)| {
                let id = |s: &str| {
                    (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                        .then(|| s.parse::<i32>().ok())
                        .flatten()
                };
                Some((id(p)?, id(b)?))
            });
            match pair {
                Some(pair) => pairs.push(pair),
                None => {
                    return Err(format!(
                        "'{item}' is not a replica: expected empty, the literal '*', or a list of replicas as partitionId:brokerId,partitionId:brokerId,…"
                    ))
                }
            }
        }
        Ok(if pairs.is_empty() {
            ThrottledReplicas::None
        } else {
            ThrottledReplicas::Listed(pairs)
        })
    }

    /// Whether the replica of `partition` on `broker` is throttled.
    pub fn covers(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(pairs) => pairs.contains(&(partition, broker)),
        }
    }
}

/// Checks topic overrides as CreateTopics / AlterConfigs receive them.
pub fn validate_overrides<'a>(
    overrides: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), String> {
    for (name, value) in overrides {
        let setting =
            topic_setting(name).ok_or_else(|| format!("unknown topic config '{name}'"))?;
        let Some(value) = value else { continue };
        validate(&setting.kind, value)
            .map_err(|e| format!("invalid value '{value}' for {name}: {e}"))?;
    }
    Ok(())
}

/// The default of topic settings without a broker setting behind them.
pub const TOPIC_ONLY_DEFAULT: &str = "";

/// The value in force for a topic setting and whether the topic overrides it.
pub fn effective<'a>(
    name: &str,
    overrides: &'a BTreeMap<String, String>,
    broker: &'a Settings,
) -> Option<(&'a str, bool)> {
    if let Some(v) = overrides.get(name) {
        return Some((v.as_str(), true));
    }
    let setting = topic_setting(name)?;
    match setting.broker_default {
        Some(b) => broker.get(b).map(|v| (v, false)),
        None => Some((TOPIC_ONLY_DEFAULT, false)),
    }
}

impl TopicSettings {
    pub fn resolve(overrides: &BTreeMap<String, String>, broker: &Settings) -> TopicSettings {
        let num = |name: &str| -> Option<i64> {
            effective(name, overrides, broker).and_then(|(v, _)| v.trim().parse().ok())
        };
        let limit = |v: Option<i64>| v.filter(|v| *v >= 0);
        let mut log = LogConfig::default();
        if let Some(v) = num("segment.bytes") {
            log.segment_bytes = v as u64;
        }
        log.segment_ms = num("segment.ms").map(|v| v as u64);
        log.retention_ms = limit(num("retention.ms"));
        log.retention_bytes = limit(num("retention.bytes"));
        if let Some(v) = num("max.message.bytes") {
            log.max_message_bytes = v as u32;
        }
        if let Some(v) = num("index.interval.bytes") {
            log.index_interval_bytes = v as u32;
        }
        if let Some(v) = num("segment.index.bytes") {
            log.segment_index_bytes = v as u32;
        }
        log.message_timestamp_type = match effective("message.timestamp.type", overrides, broker) {
            Some(("LogAppendTime", _)) => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        log.cleanup_policy =
            match effective("cleanup.policy", overrides, broker).map(|(v, _)| v.replace(' ', "")) {
                Some(p) if p == "compact" => CleanupPolicy::Compact,
                Some(p) if p == "compact,delete" || p == "delete,compact" => {
                    CleanupPolicy::CompactDelete
                }
                _ => CleanupPolicy::Delete,
            };
        if let Some(v) = num("delete.retention.ms") {
            log.delete_retention_ms = if v < 0 { i64::MAX } else { v };
        }
        if let Some(v) = num("min.compaction.lag.ms") {
            log.min_compaction_lag_ms = v;
        }
        if let Some(v) = num("max.compaction.lag.ms") {
            log.max_compaction_lag_ms = v;
        }
        if let Some(v) = effective("min.cleanable.dirty.ratio", overrides, broker)
            .and_then(|(v, _)| v.trim().parse::<f64>().ok())
        {
            log.min_cleanable_dirty_ratio = v;
        }
        if let Some(v) = broker.i64("log.cleaner.dedupe.buffer.size") {
            log.cleaner_dedupe_buffer_bytes = v as u64;
        }
        let messages = num("flush.messages").map(|v| v as u64);
        let ms = num("flush.ms").map(|v| v as u64);
        let flush = if messages.is_none() && ms.is_none() {
            FlushPolicy::Durable
        } else {
            FlushPolicy::PageCache { messages, ms }
        };
        // Validated before they were stored; a bad one (from an older version) throttles
        // nothing rather than failing the partition.
        let throttled = |name: &str| {
            effective(name, overrides, broker)
                .and_then(|(v, _)| ThrottledReplicas::parse(v).ok())
                .unwrap_or_default()
        };
        TopicSettings {
            log,
            flush,
            min_insync_replicas: num("min.insync.replicas").unwrap_or(1) as i32,
            leader_throttled: throttled("leader.replication.throttled.replicas"),
            follower_throttled: throttled("follower.replication.throttled.replicas"),
        }
    }
}

/// Every topic setting with its value in force, for DescribeConfigs.
pub fn describe_all<'a>(
    overrides: &'a BTreeMap<String, String>,
    broker: &'a Settings,
) -> impl Iterator<Item = (&'static str, Option<&'a str>, bool)> + 'a {
    TOPIC_SETTINGS
        .iter()
        .map(move |s| match effective(s.name, overrides, broker) {
            Some((v, overridden)) => (s.name, Some(v), overridden),
            None => (s.name, None, false),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn broker() -> Settings {
        let mut s = Settings::default();
        s.set("log.retention.ms", "1000", Source::Default).unwrap();
        s.set("log.segment.bytes", "4096", Source::Default).unwrap();
        s
    }

    #[test]
    fn topic_overrides_win_over_broker_defaults() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "-1".to_string());
        let t = TopicSettings::resolve(&o, &broker());
        assert_eq!(t.log.retention_ms, None);
        assert_eq!(t.log.segment_bytes, 4096);
        assert_eq!(t.flush, FlushPolicy::Durable);
        o.insert("flush.messages".into(), "1".into());
        assert_eq!(
            TopicSettings::resolve(&o, &broker()).flush,
            FlushPolicy::PageCache {
                messages: Some(1),
                ms: None
            }
        );
    }

    #[test]
    fn invalid_overrides_are_refused_with_a_reason() {
        assert!(validate_overrides([("retention.ms", Some("abc"))])
            .unwrap_err()
            .contains("retention.ms"));
        assert!(validate_overrides([("no.such.config", Some("1"))])
            .unwrap_err()
            .contains("unknown"));
        assert!(validate_overrides([("cleanup.policy", Some("compact"))]).is_ok());
        assert!(validate_overrides([("min.cleanable.dirty.ratio", Some("1.5"))]).is_err());
        assert!(validate_overrides([("retention.ms", Some("1000"))]).is_ok());
        let e = validate_overrides([("leader.replication.throttled.replicas", Some("0-1"))])
            .unwrap_err();
        assert!(
            e.contains("leader.replication.throttled.replicas")
                && e.contains("partitionId:brokerId"),
            "{e}"
        );
        assert!(validate_overrides([(
            "follower.replication.throttled.replicas",
            Some("0:1, 1:2")
        )])
        .is_ok());
    }

    #[test]
    fn throttled_replica_lists() {
        use ThrottledReplicas::*;
        let ok = |v: &str| ThrottledReplicas::parse(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(ok(""), None);
        assert_eq!(ok(" "), None);
        assert_eq!(ok("*"), All);
        assert_eq!(ok(" * "), All);
        assert_eq!(ok("0:1"), Listed(vec![(0, 1)]));
        assert_eq!(ok("0:1,1:2"), Listed(vec![(0, 1), (1, 2)]));
        assert_eq!(ok(" 0:1 , 1:2 ,"), Listed(vec![(0, 1), (1, 2)]));
        for bad in [
            "0",
            "0:",
            ":1",
            "a:1",
            "0:b",
            "-1:2",
            "0:-2",
            "0:1:2",
            "*,0:1",
            "0:1,*",
            "**",
            "0 :1",
            "[0:1]",
            "99999999999:1",
            "0;1",
        ] {
            let e = ThrottledReplicas::parse(bad).expect_err(bad);
            assert!(e.contains("partitionId:brokerId"), "{bad}: {e}");
        }
        assert!(All.covers(3, 7));
        assert!(!None.covers(0, 1));
        let listed = ok("0:1,1:2");
        assert!(listed.covers(0, 1) && listed.covers(1, 2));
        assert!(!listed.covers(0, 2) && !listed.covers(1, 1));
    }

    #[test]
    fn throttled_replicas_resolve_per_topic() {
        let mut o = BTreeMap::new();
        let t = TopicSettings::resolve(&o, &broker());
        assert_eq!(t.leader_throttled, ThrottledReplicas::None);
        assert_eq!(
            effective("leader.replication.throttled.replicas", &o, &broker()),
            Some(("", false))
        );
        o.insert("leader.replication.throttled.replicas".into(), "*".into());
        o.insert(
            "follower.replication.throttled.replicas".into(),
            "0:2".into(),
        );
        let t = TopicSettings::resolve(&o, &broker());
        assert_eq!(t.leader_throttled, ThrottledReplicas::All);
        assert!(t.follower_throttled.covers(0, 2));
    }
}
