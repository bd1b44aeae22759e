//! Records of the internal `__consumer_offsets` topic, in Kafka's own layout so Kafka tools
//! (and a later cluster link) can read them: an offset commit is key v1 (group, topic,
//! partition) with value v3 (offset, leader epoch, metadata, commit timestamp); a group is
//! key v2 (group) with value v3 (protocol type, generation, protocol, leader, state time,
//! members). A null value is a tombstone.

use bytes::{Buf, BufMut};

/// Kafka's topic name; clients and tools know it.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// The partition of `__consumer_offsets` that holds a group, as Kafka computes it (Java's
/// `String.hashCode`, then Kafka's `Utils.abs`, modulo the partition count), so Kafka tools
/// reading the topic find a group where Kafka would put it.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A committed offset as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// What the group's metadata record says (members are not restored: they rejoin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
}

/// One decoded record of the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupRecord>,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_i16(s.len().min(i16::MAX as usize) as i16);
    out.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_i16(-1),
    }
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + group.len() + topic.len());
    out.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out
}

pub fn offset_value(v: &CommittedOffset) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + v.metadata.len());
    out.put_i16(OFFSET_VALUE_VERSION);
    out.put_i64(v.offset);
    out.put_i32(v.leader_epoch);
    put_str(&mut out, &v.metadata);
    out.put_i64(v.commit_timestamp_ms);
    out
}

pub fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.put_i16(GROUP_KEY_VERSION);
    put_str(&mut out, group);
    out
}

pub fn group_value(v: &GroupRecord) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut out, &v.protocol_type);
    out.put_i32(v.generation);
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.put_i64(v.state_timestamp_ms);
    // Members are not persisted: after a restart they rejoin and get a new generation.
    out.put_i32(0);
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn i16(&mut self) -> Option<i16> {
        (self.0.remaining() >= 2).then(|| self.0.get_i16())
    }
    fn i32(&mut self) -> Option<i32> {
        (self.0.remaining() >= 4).then(|| self.0.get_i32())
    }
    fn i64(&mut self) -> Option<i64> {
        (self.0.remaining() >= 8).then(|| self.0.get_i64())
    }
    fn nullable_str(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let len = len as usize;
        if self.0.remaining() < len {
            return None;
        }
        let s = String::from_utf8_lossy(&self.0[..len]).into_owned();
        self.0.advance(len);
        Some(Some(s))
    }
    fn str(&mut self) -> Option<String> {
        self.nullable_str()?
    }
}

/// Decodes one record; `None` for versions or shapes this broker does not know (they are
/// skipped when loading, as Kafka skips unknown record types).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<OffsetsRecord> {
    let mut k = Reader(key);
    match k.i16()? {
        0 | OFFSET_KEY_VERSION => {
            let group = k.str()?;
            let topic = k.str()?;
            let partition = k.i32()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_offset_value(v)?),
            };
            Some(OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        GROUP_KEY_VERSION => {
            let group = k.str()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_group_value(v)?),
            };
            Some(OffsetsRecord::Group { group, value })
        }
        _ => None,
    }
}

fn decode_offset_value(v: &[u8]) -> Option<CommittedOffset> {
    let mut r = Reader(v);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.str()?;
    let commit_timestamp_ms = r.i64()?;
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group_value(v: &[u8]) -> Option<GroupRecord> {
    let mut r = Reader(v);
    let version = r.i16()?;
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    Some(GroupRecord {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioning_matches_kafka() {
        // Java: "my-group".hashCode() = -1906497762, "consumer-group-1".hashCode() = 147483020,
        // "a".hashCode() = 97; Kafka takes Utils.abs(h) % 50.
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 47);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("consumer-group-1", 50), 20);
        for g in ["x", "consumer-group-1", "ünïcode"] {
            let p = partition_for(g, 50);
            assert!((0..50).contains(&p));
        }
    }

    #[test]
    fn records_round_trip() {
        let v = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 7,
        };
        let key = offset_key("g", "t", 5);
        assert_eq!(
            decode(&key, Some(&offset_value(&v))),
            Some(OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: Some(v)
            })
        );
        assert_eq!(
            decode(&key, None),
            Some(OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: None
            })
        );
        let g = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 9,
            protocol: Some("range".into()),
            leader: None,
            state_timestamp_ms: 11,
        };
        assert_eq!(
            decode(&group_key("g"), Some(&group_value(&g))),
            Some(OffsetsRecord::Group {
                group: "g".into(),
                value: Some(g)
            })
        );
        assert_eq!(decode(&[0, 9, 1], None), None);
        assert_eq!(decode(&offset_key("g", "t", 1), Some(&[0, 3, 1])), None);
    }
}
