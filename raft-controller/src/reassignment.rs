//! Partition reassignment as pure functions of a [`MetadataImage`], with the rules of
//! Apache Kafka's KRaft controller (`PartitionReassignmentReplicas`,
//! `PartitionReassignmentRevert` and the completion step of `PartitionChangeBuilder`).
//!
//! # Rules
//! - A reassignment to `target` makes the replicas `target` followed by the current
//!   replicas not in it; the ones not yet replicas are *adding*, the ones not in the
//!   target are *removing*. Brokers start following as soon as they are replicas.
//! - It completes in the same change that brings the whole target into the ISR (usually
//!   the leader's AlterPartition): replicas become the target, the ISR keeps only target
//!   members, and a removed leader hands over to the first target replica in the ISR
//!   that may lead. A target already in the ISR completes at once.
//! - Cancelling (`target = None`) reverts to the replicas before the reassignment, with
//!   the ISR cut to them; refused when no original replica is in the ISR, since that
//!   would need an unclean election.
//! - A new reassignment of a partition that is already moving starts from its current
//!   replica list (target plus removing), as Kafka does.

use std::collections::BTreeMap;

use crate::image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
use crate::leadership::TopicPartition;
use crate::records::{MetadataRecord, PartitionChangeRecord, NO_LEADER};

// Kafka protocol error codes (org.apache.kafka.common.protocol.Errors).
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// Why one partition's reassignment (or cancellation) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReassignmentError {
    /// No such topic or partition.
    UnknownPartition,
    /// Empty target, a repeated or unregistered broker, a revert that needs an unclean
    /// election, or a partition named twice in one request.
    InvalidAssignment(String),
    /// The target changes the replication factor and the request did not allow it
    /// (AlterPartitionReassignments v1, KIP-860).
    ReplicationFactorChange { from: usize, to: usize },
    /// Cancelling a partition that is not being reassigned.
    NoneInProgress,
}

impl ReassignmentError {
    /// The Kafka error code to answer with.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ReassignmentError::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
            ReassignmentError::InvalidAssignment(_) => INVALID_REPLICA_ASSIGNMENT,
            ReassignmentError::ReplicationFactorChange { .. } => INVALID_REPLICATION_FACTOR,
            ReassignmentError::NoneInProgress => NO_REASSIGNMENT_IN_PROGRESS,
        }
    }
}

impl std::fmt::Display for ReassignmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReassignmentError::UnknownPartition => write!(f, "no such topic or partition"),
            ReassignmentError::InvalidAssignment(m) => write!(f, "{m}"),
            ReassignmentError::ReplicationFactorChange { from, to } => write!(
                f,
                "the target changes the replication factor from {from} to {to}, which the request does not allow"
            ),
            ReassignmentError::NoneInProgress => {
                write!(f, "no reassignment of this partition is in progress")
            }
        }
    }
}

/// One partition of an AlterPartitionReassignments request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReassignmentRequest {
    pub partition: TopicPartition,
    /// The replicas to move to, or `None` to cancel.
    pub target: Option<Vec<i32>>,
}

/// The records to propose for an AlterPartitionReassignments call and the answer per
/// partition, in request order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reassignments {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<(TopicPartition, Result<(), ReassignmentError>)>,
}

/// Starts, changes or cancels the reassignments in `requests`.
pub fn alter_reassignments(
    image: &MetadataImage,
    requests: &[ReassignmentRequest],
    allow_replication_factor_change: bool,
) -> Reassignments {
    let mut times_named: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for r in requests {
        *times_named.entry(r.partition).or_default() += 1;
    }
    let mut out = Reassignments::default();
    for r in requests {
        let result = if times_named[&r.partition] > 1 {
            Err(ReassignmentError::InvalidAssignment(
                "the partition is named more than once in the request".into(),
            ))
        } else {
            match image
                .topic(&r.partition.0)
                .and_then(|t| t.partitions.get(&r.partition.1).map(|p| (t, p)))
            {
                None => Err(ReassignmentError::UnknownPartition),
                Some((topic, p)) => {
                    let change = match &r.target {
                        Some(target) => reassign(
                            image,
                            topic,
                            r.partition.1,
                            p,
                            target,
                            allow_replication_factor_change,
                        ),
                        None => cancel(image, topic, r.partition.1, p),
                    };
                    change.map(|c| {
                        out.records.extend(c.map(MetadataRecord::PartitionChange));
                    })
                }
            }
        };
        out.results.push((r.partition, result));
    }
    out
}

/// The change that starts (or completes at once) a reassignment of `p` to `target`;
/// `None` when `p` already has exactly those replicas and nothing is moving.
fn reassign(
    image: &MetadataImage,
    topic: &TopicImage,
    partition: i32,
    p: &PartitionImage,
    target: &[i32],
    allow_replication_factor_change: bool,
) -> Result<Option<PartitionChangeRecord>, ReassignmentError> {
    check_target(image, target)?;
    let original_len = p.replicas.len() - p.adding_replicas.len();
    if !allow_replication_factor_change && target.len() != original_len {
        return Err(ReassignmentError::ReplicationFactorChange {
            from: original_len,
            to: target.len(),
        });
    }
    let removing: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !p.replicas.contains(r))
        .collect();
    let replicas: Vec<i32> = target.iter().chain(&removing).copied().collect();
    let moving = PartitionImage {
        replicas,
        adding_replicas: adding,
        removing_replicas: removing,
        ..p.clone()
    };
    let next = complete(&moving, &p.isr, |r| active(image, r)).unwrap_or(moving);
    Ok(change(topic.topic_id, partition, p, &next))
}

/// The change that reverts `p` to its replicas before the ongoing reassignment.
fn cancel(
    image: &MetadataImage,
    topic: &TopicImage,
    partition: i32,
    p: &PartitionImage,
) -> Result<Option<PartitionChangeRecord>, ReassignmentError> {
    if !p.is_reassigning() {
        return Err(ReassignmentError::NoneInProgress);
    }
    let original: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| original.contains(r))
        .collect();
    if isr.is_empty() {
        return Err(ReassignmentError::InvalidAssignment(format!(
            "reverting {}-{partition} to {original:?} would need an unclean leader election: none of them is in the ISR {:?}",
            topic.name, p.isr
        )));
    }
    let leader = keep_or_elect(p.leader, &original, &isr, |r| active(image, r));
    let next = PartitionImage {
        replicas: original,
        isr,
        leader,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        ..p.clone()
    };
    Ok(change(topic.topic_id, partition, p, &next))
}

/// `p` with its reassignment completed, if `isr` holds every target replica: replicas =
/// target, ISR cut to the target, and a leader from the target.
pub(crate) fn complete(
    p: &PartitionImage,
    isr: &[i32],
    can_lead: impl Fn(i32) -> bool,
) -> Option<PartitionImage> {
    if !p.is_reassigning() {
        return None;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| isr.contains(r)) {
        return None;
    }
    let isr: Vec<i32> = isr.iter().copied().filter(|r| target.contains(r)).collect();
    let leader = keep_or_elect(p.leader, &target, &isr, can_lead);
    Some(PartitionImage {
        replicas: target,
        isr,
        leader,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        ..p.clone()
    })
}

/// The change record that turns `old` into `new` (epochs are bumped on apply), or
/// `None` when they agree.
pub(crate) fn change(
    topic_id: uuid::Uuid,
    partition: i32,
    old: &PartitionImage,
    new: &PartitionImage,
) -> Option<PartitionChangeRecord> {
    let differs = |a: &Vec<i32>, b: &Vec<i32>| (a != b).then(|| b.clone());
    let record = PartitionChangeRecord {
        topic_id,
        partition,
        leader: (old.leader != new.leader).then_some(new.leader),
        isr: differs(&old.isr, &new.isr),
        replicas: differs(&old.replicas, &new.replicas),
        adding_replicas: differs(&old.adding_replicas, &new.adding_replicas),
        removing_replicas: differs(&old.removing_replicas, &new.removing_replicas),
        expected_partition_epoch: Some(old.partition_epoch),
    };
    let nothing = record.leader.is_none()
        && record.isr.is_none()
        && record.replicas.is_none()
        && record.adding_replicas.is_none()
        && record.removing_replicas.is_none();
    (!nothing).then_some(record)
}

/// The current leader when it is still a replica in the ISR and may lead; else the
/// first of `replicas` in the ISR that may lead; else none.
fn keep_or_elect(
    leader: i32,
    replicas: &[i32],
    isr: &[i32],
    can_lead: impl Fn(i32) -> bool,
) -> i32 {
    let eligible = |r: i32| replicas.contains(&r) && isr.contains(&r) && can_lead(r);
    if leader != NO_LEADER && eligible(leader) {
        return leader;
    }
    replicas
        .iter()
        .copied()
        .find(|&r| eligible(r))
        .unwrap_or(NO_LEADER)
}

fn active(image: &MetadataImage, broker_id: i32) -> bool {
    image
        .broker(broker_id)
        .is_some_and(BrokerRegistration::is_active)
}

/// A target as Kafka's `validateManualPartitionAssignment` checks it: non-empty, no
/// repeats, every broker registered.
fn check_target(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignmentError> {
    let invalid = |m: String| Err(ReassignmentError::InvalidAssignment(m));
    if target.is_empty() {
        return invalid("the target replica list is empty".into());
    }
    if target.len() > i16::MAX as usize {
        return invalid(format!("{} replicas is too many", target.len()));
    }
    for (i, r) in target.iter().enumerate() {
        if target[..i].contains(r) {
            return invalid(format!("broker {r} appears twice in the target {target:?}"));
        }
        if image.broker(*r).is_none() {
            return invalid(format!(
                "the target {target:?} includes broker {r}, but no such broker is registered"
            ));
        }
    }
    Ok(())
}

/// Partitions with a reassignment in progress, of `targets` (`None`: all), in topic
/// name and partition order.
pub fn list_reassignments<'a>(
    image: &'a MetadataImage,
    targets: Option<&[TopicPartition]>,
) -> Vec<(&'a TopicImage, i32, &'a PartitionImage)> {
    let mut out: Vec<(&TopicImage, i32, &PartitionImage)> = match targets {
        Some(targets) => targets
            .iter()
            .filter_map(|(id, i)| {
                let t = image.topic(id)?;
                t.partitions.get(i).map(|p| (t, *i, p))
            })
            .filter(|(_, _, p)| p.is_reassigning())
            .collect(),
        None => image
            .topics()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.is_reassigning())
                    .map(move |(i, p)| (t, *i, p))
            })
            .collect(),
    };
    out.sort_by(|a, b| (&a.0.name, a.1).cmp(&(&b.0.name, b.1)));
    out.dedup_by(|a, b| a.0.topic_id == b.0.topic_id && a.1 == b.1);
    out
}

#[cfg(test)]
mod tests;
