//! Rack-aware replica placement and validation of explicit assignments. Pure functions:
//! the controller calls them on the leader and turns the result into records.
//!
//! # Placement
//! Brokers are ordered rack by rack in turn (`a0, b0, c0, a1, b1, a2, …`, racks and
//! brokers sorted, racks that run out skipped). Partition `p`'s leader is the broker at
//! `(start + p) mod n` in that order, so leaders are balanced over brokers (counts
//! differ by at most one) and alternate racks. Followers are picked one at a time: the
//! broker whose rack holds the fewest replicas of this partition so far, ties broken by
//! walking the order from the leader with a shift that grows every `n` partitions (so
//! follower sets vary as in Kafka's assignment). A partition therefore spans
//! `min(rf, racks)` racks, and two racks' counts differ by more than one only when the
//! smaller rack has no broker left. Brokers without a rack share one unnamed rack.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::error::{ControllerError, RejectCode, Rejection};
use crate::image::MetadataImage;
use crate::records::{MetadataRecord, PartitionRecord, TopicRecord};

/// Bound on partitions placed in one call.
pub const PARTITIONS_PER_CALL_MAX: i32 = 100_000;

/// A broker as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BrokerInfo {
    pub id: i32,
    pub rack: Option<String>,
}

/// The brokers new replicas may go to: registered, unfenced, not shutting down.
pub fn placeable_brokers(image: &MetadataImage) -> Vec<BrokerInfo> {
    image
        .brokers()
        .values()
        .filter(|b| b.is_active())
        .map(|b| BrokerInfo {
            id: b.broker_id,
            rack: b.rack.clone(),
        })
        .collect()
}

fn reject(code: RejectCode, message: String) -> ControllerError {
    ControllerError::Rejected(Rejection::new(code, message))
}

/// Brokers ordered rack by rack in turn.
fn rack_alternating(brokers: &[BrokerInfo]) -> Vec<&BrokerInfo> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<&BrokerInfo>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b);
    }
    for v in by_rack.values_mut() {
        v.sort_by_key(|b| b.id);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..deepest {
        for v in by_rack.values() {
            if let Some(b) = v.get(i) {
                out.push(*b);
            }
        }
    }
    out
}

/// Places `partitions` partitions with `replication_factor` replicas each on `brokers`.
/// `start` rotates the leaders (pass e.g. the number of existing topics, or a random
/// number, so successive topics do not all start on the same broker). Element `p` of
/// the result is partition `p`'s replica list, leader first.
pub fn place_replicas(
    brokers: &[BrokerInfo],
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    if partitions <= 0 || partitions > PARTITIONS_PER_CALL_MAX {
        return Err(reject(
            RejectCode::InvalidPartitions,
            format!("number of partitions {partitions} must be in 1..={PARTITIONS_PER_CALL_MAX}"),
        ));
    }
    if replication_factor <= 0 {
        return Err(reject(
            RejectCode::InvalidReplicationFactor,
            format!("replication factor {replication_factor} must be larger than 0"),
        ));
    }
    let ids: BTreeSet<i32> = brokers.iter().map(|b| b.id).collect();
    if ids.len() != brokers.len() {
        return Err(reject(
            RejectCode::InvalidRequest,
            "a broker id appears twice in the placement input".into(),
        ));
    }
    let rf = replication_factor as usize;
    if rf > brokers.len() {
        return Err(reject(
            RejectCode::InvalidReplicationFactor,
            format!(
                "replication factor {rf} is larger than the {} available broker(s)",
                brokers.len()
            ),
        ));
    }
    let order = rack_alternating(brokers);
    let n = order.len();
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        let pos = (start % n + p) % n;
        let round = (start % n + p) / n;
        let shift = if n > 1 { round % (n - 1) } else { 0 };
        let mut chosen: Vec<usize> = vec![pos];
        let mut rack_count: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        *rack_count.entry(order[pos].rack.as_deref()).or_default() += 1;
        while chosen.len() < rf {
            // Walk from just after the leader, shifted, and take the first broker of
            // the least-used rack.
            let mut best: Option<(usize, usize)> = None; // (rack count, index)
            for step in 0..n - 1 {
                let idx = (pos + 1 + (shift + step) % (n - 1)) % n;
                if chosen.contains(&idx) {
                    continue;
                }
                let c = rack_count
                    .get(&order[idx].rack.as_deref())
                    .copied()
                    .unwrap_or(0);
                if best.is_none_or(|(bc, _)| c < bc) {
                    best = Some((c, idx));
                }
            }
            let Some((_, idx)) = best else { break };
            chosen.push(idx);
            *rack_count.entry(order[idx].rack.as_deref()).or_default() += 1;
        }
        out.push(chosen.into_iter().map(|i| order[i].id).collect());
    }
    Ok(out)
}

/// Checks an explicit assignment (CreateTopics' `assignments`, CreatePartitions'):
/// every partition non-empty, no duplicate replica, one replication factor throughout,
/// every broker registered.
pub fn validate_assignment(
    image: &MetadataImage,
    assignment: &[Vec<i32>],
) -> Result<(), ControllerError> {
    let Some(first) = assignment.first() else {
        return Err(reject(
            RejectCode::InvalidReplicaAssignment,
            "the assignment names no partition".into(),
        ));
    };
    if assignment.len() > PARTITIONS_PER_CALL_MAX as usize {
        return Err(reject(
            RejectCode::InvalidPartitions,
            format!(
                "{} partitions; at most {PARTITIONS_PER_CALL_MAX}",
                assignment.len()
            ),
        ));
    }
    let rf = first.len();
    for (p, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return Err(reject(
                RejectCode::InvalidReplicaAssignment,
                format!("partition {p} has an empty replica list"),
            ));
        }
        if replicas.len() != rf {
            return Err(reject(
                RejectCode::InvalidReplicaAssignment,
                format!(
                    "inconsistent replication factor: partition 0 has {rf} replicas, partition {p} has {}",
                    replicas.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for r in replicas {
            if !seen.insert(*r) {
                return Err(reject(
                    RejectCode::InvalidReplicaAssignment,
                    format!("partition {p} lists broker {r} twice"),
                ));
            }
            if image.broker(*r).is_none() {
                return Err(reject(
                    RejectCode::InvalidReplicaAssignment,
                    format!("partition {p} names broker {r}, which is not registered"),
                ));
            }
        }
    }
    Ok(())
}

/// The records that create topic `name` with `assignment` (leader = first replica,
/// ISR = all replicas, epochs 0).
pub fn topic_creation_records(
    name: &str,
    topic_id: Uuid,
    configs: BTreeMap<String, String>,
    assignment: &[Vec<i32>],
) -> Vec<MetadataRecord> {
    let mut records = Vec::with_capacity(assignment.len() + 1);
    records.push(MetadataRecord::CreateTopic(TopicRecord {
        name: name.to_string(),
        topic_id,
        configs,
    }));
    for (p, replicas) in assignment.iter().enumerate() {
        records.push(MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: p as i32,
            replicas: replicas.clone(),
            isr: replicas.clone(),
            leader: replicas
                .first()
                .copied()
                .unwrap_or(crate::records::NO_LEADER),
            leader_epoch: 0,
            partition_epoch: 0,
        }));
    }
    records
}

#[cfg(test)]
mod tests;
