//! Leader elections and ISR changes as pure functions of a [`MetadataImage`]: each
//! returns the records to propose (and, for requests, the answer per partition), with
//! the rules of Apache Kafka's KRaft controller (`ReplicationControlManager` and
//! `PartitionChangeBuilder`).
//!
//! # Rules
//! - A broker may lead or join an ISR when it is *active*: registered, unfenced and not
//!   in controlled shutdown. Elections walk the replica list in order, so the preferred
//!   replica (`replicas[0]`) wins whenever it can.
//! - A broker that leaves (fenced, or shutting down) is removed from every ISR except
//!   where it is the last member: KRaft keeps it there, leaderless, so the partition
//!   recovers without losing acknowledged records when that broker comes back.
//! - An *unclean* election (an active replica outside the ISR becomes leader with
//!   ISR = `[it]`) happens only when the topic's `unclean.leader.election.enable` allows it
//!   or an operator asks for it (ElectLeaders, election type 1). It may lose acknowledged
//!   records, so it is logged as a warning.
//! - Every partition change carries `expected_partition_epoch`: if the partition moved on
//!   between reading the image and applying, the proposal is refused
//!   (INVALID_UPDATE_VERSION) and the caller computes again from the newer image.
//! - Records come in the order they must apply in: a broker's own state change first, so
//!   a broker being unfenced is already eligible when a later record elects it.
//!
//! Error codes are Kafka's (its protocol `Errors` table), repeated here as `i16`
//! constants because this crate does not depend on the protocol crate.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
use crate::reassignment;
use crate::records::{MetadataRecord, PartitionChangeRecord, NO_LEADER};

/// The topic (or cluster-default) config that allows unclean leader election.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// AlterPartition's "do not check this ISR member's broker epoch" (requests before v3).
pub const BROKER_EPOCH_UNCHECKED: i64 = -1;

// Kafka protocol error codes (org.apache.kafka.common.protocol.Errors).
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_CONTROLLER: i16 = 41;
const INVALID_REQUEST: i16 = 42;
const FENCED_LEADER_EPOCH: i16 = 74;
const STALE_BROKER_EPOCH: i16 = 77;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
const ELECTION_NOT_NEEDED: i16 = 84;
const INVALID_UPDATE_VERSION: i16 = 95;
const UNKNOWN_TOPIC_ID: i16 = 100;
const INELIGIBLE_REPLICA: i16 = 107;

/// A partition named by topic id and index.
pub type TopicPartition = (Uuid, i32);

/// Whether `topic` allows unclean leader election: its own config if set, else the
/// cluster default, else no. Only `true` (any case) allows it; a value Kafka would not
/// parse counts as the safe `false`.
pub fn unclean_allowed(image: &MetadataImage, topic: &TopicImage) -> bool {
    topic
        .configs
        .get(UNCLEAN_LEADER_ELECTION_ENABLE)
        .or_else(|| image.cluster_configs().get(UNCLEAN_LEADER_ELECTION_ENABLE))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The records that fence `broker_id` (session expired, or replaced by a new
/// incarnation): `FenceBroker`, then a change for each partition whose ISR holds it.
/// Empty for an unknown or already fenced broker.
pub fn fence_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let Some(b) = image.broker(broker_id).filter(|b| !b.fenced) else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::FenceBroker {
        broker_id,
        broker_epoch: b.broker_epoch,
    }];
    records.extend(move_away_from(image, broker_id));
    records
}

/// The records that start `broker_id`'s controlled shutdown: `BeginControlledShutdown`,
/// then the same ISR and leader moves as fencing, so leadership leaves the broker while
/// it still serves. Empty for an unknown broker or one already shutting down.
pub fn begin_controlled_shutdown(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let Some(b) = image
        .broker(broker_id)
        .filter(|b| !b.in_controlled_shutdown)
    else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::BeginControlledShutdown {
        broker_id,
        broker_epoch: b.broker_epoch,
    }];
    records.extend(move_away_from(image, broker_id));
    records
}

/// The records that unfence `broker_id`: `UnfenceBroker`, then an election for every
/// leaderless partition (as KRaft does) now that the broker may lead. Empty for an
/// unknown broker, an unfenced one, or one in controlled shutdown (it must register
/// again).
pub fn unfence_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let Some(b) = image
        .broker(broker_id)
        .filter(|b| b.fenced && !b.in_controlled_shutdown)
    else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::UnfenceBroker {
        broker_id,
        broker_epoch: b.broker_epoch,
    }];
    let eligible = Eligible {
        image,
        leaving: None,
        joining: Some(broker_id),
    };
    for topic in image.topics() {
        let unclean = unclean_allowed(image, topic);
        for (&partition, p) in &topic.partitions {
            if p.leader != NO_LEADER {
                continue;
            }
            if let Some(c) = change(topic, partition, p, elect(p, eligible, unclean), eligible) {
                records.push(MetadataRecord::PartitionChange(c));
            }
        }
    }
    records
}

/// The outcome of one partition's election (ElectLeaders).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionResult {
    /// A change record was produced.
    Elected,
    /// The partition already has the leader asked for (ELECTION_NOT_NEEDED).
    NotNeeded,
    /// The preferred replica is not active or not in the ISR
    /// (PREFERRED_LEADER_NOT_AVAILABLE).
    PreferredNotAvailable,
    /// No active replica at all (ELIGIBLE_LEADERS_NOT_AVAILABLE).
    EligibleNotAvailable,
    /// No such topic id or partition (UNKNOWN_TOPIC_OR_PARTITION).
    UnknownPartition,
}

impl ElectionResult {
    /// The Kafka error code of this result (0 when elected).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ElectionResult::Elected => NONE,
            ElectionResult::NotNeeded => ELECTION_NOT_NEEDED,
            ElectionResult::PreferredNotAvailable => PREFERRED_LEADER_NOT_AVAILABLE,
            ElectionResult::EligibleNotAvailable => ELIGIBLE_LEADERS_NOT_AVAILABLE,
            ElectionResult::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        }
    }
}

/// The records to propose for an ElectLeaders call and the answer per partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Elections {
    pub records: Vec<MetadataRecord>,
    /// In request order; a partition named twice is answered twice but changed once.
    pub results: Vec<(TopicPartition, ElectionResult)>,
}

/// Preferred leader election (ElectLeaders type 0): `replicas[0]` becomes leader when
/// it is active and in the ISR. With `targets = None`, every partition that needs and
/// can have it (see [`imbalanced_partitions`]; what `auto.leader.rebalance.enable`
/// does), and only those are in the results.
pub fn elect_preferred(image: &MetadataImage, targets: Option<&[TopicPartition]>) -> Elections {
    let eligible = Eligible::now(image);
    let decide = |topic: &TopicImage, partition: i32, p: &PartitionImage| {
        let Some(&preferred) = p.replicas.first() else {
            return (ElectionResult::PreferredNotAvailable, None);
        };
        if p.leader == preferred {
            return (ElectionResult::NotNeeded, None);
        }
        let target = if p.isr.contains(&preferred) && eligible.can_lead(preferred) {
            Target {
                isr: p.isr.clone(),
                leader: preferred,
                unclean: false,
            }
        } else {
            // As Kafka: when the current leader cannot lead, another ISR member may.
            elect(p, eligible, false)
        };
        if target.leader == NO_LEADER || target.leader == p.leader {
            return (ElectionResult::PreferredNotAvailable, None);
        }
        (
            ElectionResult::Elected,
            change(topic, partition, p, target, eligible),
        )
    };
    match targets {
        Some(t) => run_elections(image, t, false, decide),
        None => run_elections(image, &imbalanced_partitions(image), true, decide),
    }
}

/// Unclean leader election (ElectLeaders type 1), whatever the topic config says: only
/// for leaderless partitions; an active ISR member first, else the first active replica
/// with ISR = `[it]` (logged as a warning). With `targets = None`, every leaderless
/// partition, and only those elected are in the results.
pub fn elect_unclean(image: &MetadataImage, targets: Option<&[TopicPartition]>) -> Elections {
    let eligible = Eligible::now(image);
    let decide = |topic: &TopicImage, partition: i32, p: &PartitionImage| {
        if p.leader != NO_LEADER {
            return (ElectionResult::NotNeeded, None);
        }
        let target = elect(p, eligible, true);
        if target.leader == NO_LEADER {
            return (ElectionResult::EligibleNotAvailable, None);
        }
        (
            ElectionResult::Elected,
            change(topic, partition, p, target, eligible),
        )
    };
    match targets {
        Some(t) => run_elections(image, t, false, decide),
        None => {
            let leaderless: Vec<TopicPartition> = image
                .topics()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter(|(_, p)| p.leader == NO_LEADER)
                        .map(|(&i, _)| (t.topic_id, i))
                })
                .collect();
            run_elections(image, &leaderless, true, decide)
        }
    }
}

/// Partitions whose preferred replica is active and in the ISR but does not lead: what
/// a preferred election would move.
pub fn imbalanced_partitions(image: &MetadataImage) -> Vec<TopicPartition> {
    let eligible = Eligible::now(image);
    let mut out = Vec::new();
    for topic in image.topics() {
        for (&partition, p) in &topic.partitions {
            if let Some(&preferred) = p.replicas.first() {
                if p.leader != preferred
                    && p.isr.contains(&preferred)
                    && eligible.can_lead(preferred)
                {
                    out.push((topic.topic_id, partition));
                }
            }
        }
    }
    out
}

/// One member of the ISR an AlterPartition request proposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: i32,
    /// The epoch the leader saw this follower fetch with ([`BROKER_EPOCH_UNCHECKED`]
    /// before AlterPartition v3): a restarted follower must not rejoin on stale state.
    pub broker_epoch: i64,
}

/// A partition leader's request to change its ISR (AlterPartition, one partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
}

/// What to do with an accepted AlterPartition request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterPartitionOutcome {
    /// Propose this record; once it applies, answer with the partition's new state.
    Propose(PartitionChangeRecord),
    /// The ISR already is the one asked for: answer success with this current state and
    /// propose nothing (as Kafka does).
    Unchanged(PartitionImage),
}

/// Why an AlterPartition request is refused, in the order Kafka checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterPartitionError {
    /// The requester is not registered or registered with another epoch.
    StaleBrokerEpoch,
    /// No topic with this id (Kafka answers UNKNOWN_TOPIC_OR_PARTITION to requests before
    /// v2, which name topics; the handler resolves those names itself).
    UnknownTopicId,
    /// The topic has no such partition.
    UnknownPartition,
    /// The request's leader or partition epoch is ahead of this image: this controller
    /// is probably behind or no longer active, so the broker should find the active one
    /// and retry (Kafka's NOT_CONTROLLER).
    NotController,
    /// The requester's leader epoch is older than the partition's.
    FencedLeaderEpoch { current: i32 },
    /// The requester does not lead the partition (Kafka answers INVALID_REQUEST).
    NotLeader { leader: i32 },
    /// The requester's partition epoch is older than the partition's.
    InvalidUpdateVersion { current: i32 },
    /// The new ISR is empty, repeats a broker, names a non-replica or leaves out the
    /// leader.
    InvalidIsr(String),
    /// A new ISR member is unregistered, fenced, shutting down or restarted since the
    /// leader saw it (Kafka answers OPERATION_NOT_ATTEMPTED to requests before v2).
    IneligibleReplica { broker_id: i32 },
}

impl AlterPartitionError {
    /// The Kafka error code to answer with (AlterPartition v2 and later).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            AlterPartitionError::StaleBrokerEpoch => STALE_BROKER_EPOCH,
            AlterPartitionError::UnknownTopicId => UNKNOWN_TOPIC_ID,
            AlterPartitionError::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
            AlterPartitionError::NotController => NOT_CONTROLLER,
            AlterPartitionError::FencedLeaderEpoch { .. } => FENCED_LEADER_EPOCH,
            AlterPartitionError::NotLeader { .. } => INVALID_REQUEST,
            AlterPartitionError::InvalidUpdateVersion { .. } => INVALID_UPDATE_VERSION,
            AlterPartitionError::InvalidIsr(_) => INVALID_REQUEST,
            AlterPartitionError::IneligibleReplica { .. } => INELIGIBLE_REPLICA,
        }
    }
}

/// Checks a leader's ISR change against the image, as Kafka's controller does, and
/// gives the record to propose (a compare-and-set on the partition epoch).
pub fn alter_partition(
    image: &MetadataImage,
    req: &AlterPartitionRequest,
) -> Result<AlterPartitionOutcome, AlterPartitionError> {
    use AlterPartitionError as E;
    if image.broker(req.broker_id).map(|b| b.broker_epoch) != Some(req.broker_epoch) {
        return Err(E::StaleBrokerEpoch);
    }
    let topic = image.topic(&req.topic_id).ok_or(E::UnknownTopicId)?;
    let p = topic
        .partitions
        .get(&req.partition)
        .ok_or(E::UnknownPartition)?;
    if req.leader_epoch > p.leader_epoch || req.partition_epoch > p.partition_epoch {
        return Err(E::NotController);
    }
    if req.leader_epoch < p.leader_epoch {
        return Err(E::FencedLeaderEpoch {
            current: p.leader_epoch,
        });
    }
    if req.broker_id != p.leader {
        return Err(E::NotLeader { leader: p.leader });
    }
    if req.partition_epoch < p.partition_epoch {
        return Err(E::InvalidUpdateVersion {
            current: p.partition_epoch,
        });
    }
    let isr: Vec<i32> = req.new_isr.iter().map(|m| m.broker_id).collect();
    check_isr(&isr, p).map_err(E::InvalidIsr)?;
    for m in &req.new_isr {
        let eligible = image.broker(m.broker_id).is_some_and(|b| {
            b.is_active()
                && (m.broker_epoch == BROKER_EPOCH_UNCHECKED || m.broker_epoch == b.broker_epoch)
        });
        if !eligible {
            return Err(E::IneligibleReplica {
                broker_id: m.broker_id,
            });
        }
    }
    if isr == p.isr {
        return Ok(AlterPartitionOutcome::Unchanged(p.clone()));
    }
    // An ISR that now holds a reassignment's whole target completes it in this change.
    let can_lead = |r: i32| Eligible::now(image).can_lead(r);
    if let Some(done) = reassignment::complete(p, &isr, can_lead) {
        if let Some(c) = reassignment::change(req.topic_id, req.partition, p, &done) {
            tracing::info!(topic = %topic.name, partition = req.partition, replicas = ?done.replicas,
                leader = done.leader, "reassignment complete: the target replicas are in sync");
            return Ok(AlterPartitionOutcome::Propose(c));
        }
    }
    Ok(AlterPartitionOutcome::Propose(PartitionChangeRecord {
        topic_id: req.topic_id,
        partition: req.partition,
        isr: Some(isr),
        expected_partition_epoch: Some(p.partition_epoch),
        ..PartitionChangeRecord::default()
    }))
}

/// A proposed ISR: non-empty, no repeats, replicas only, the leader included.
fn check_isr(isr: &[i32], p: &PartitionImage) -> Result<(), String> {
    if isr.is_empty() {
        return Err("the new ISR is empty".into());
    }
    for (i, r) in isr.iter().enumerate() {
        if isr[..i].contains(r) {
            return Err(format!("broker {r} appears twice in the new ISR {isr:?}"));
        }
        if !p.replicas.contains(r) {
            return Err(format!(
                "new ISR member {r} is not a replica ({:?})",
                p.replicas
            ));
        }
    }
    if !isr.contains(&p.leader) {
        return Err(format!(
            "the new ISR {isr:?} leaves out the leader {}",
            p.leader
        ));
    }
    Ok(())
}

/// Who may lead once the broker's own record (fence, shutdown, unfence) has applied.
#[derive(Clone, Copy)]
struct Eligible<'a> {
    image: &'a MetadataImage,
    /// The broker being fenced or shut down.
    leaving: Option<i32>,
    /// The broker being unfenced.
    joining: Option<i32>,
}

impl<'a> Eligible<'a> {
    fn now(image: &'a MetadataImage) -> Self {
        Eligible {
            image,
            leaving: None,
            joining: None,
        }
    }

    fn can_lead(&self, broker_id: i32) -> bool {
        if Some(broker_id) == self.leaving {
            return false;
        }
        if Some(broker_id) == self.joining {
            return true;
        }
        self.image
            .broker(broker_id)
            .is_some_and(BrokerRegistration::is_active)
    }
}

/// A partition's ISR and leader after an election.
struct Target {
    isr: Vec<i32>,
    leader: i32,
    unclean: bool,
}

/// `p` with the leaving broker out of its ISR (unless it is the last member) and a
/// leader that may lead: the current one if it still may, else the first eligible ISR
/// member in replica order, else (when `unclean`) the first eligible replica with
/// ISR = [it], else none.
fn elect(p: &PartitionImage, eligible: Eligible<'_>, unclean: bool) -> Target {
    let mut isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|&r| Some(r) != eligible.leaving)
        .collect();
    if isr.is_empty() {
        isr = p.isr.clone();
    }
    if p.leader != NO_LEADER && isr.contains(&p.leader) && eligible.can_lead(p.leader) {
        return Target {
            isr,
            leader: p.leader,
            unclean: false,
        };
    }
    let in_isr = p
        .replicas
        .iter()
        .copied()
        .find(|&r| isr.contains(&r) && eligible.can_lead(r));
    if let Some(leader) = in_isr {
        return Target {
            isr,
            leader,
            unclean: false,
        };
    }
    if unclean {
        if let Some(leader) = p.replicas.iter().copied().find(|&r| eligible.can_lead(r)) {
            return Target {
                isr: vec![leader],
                leader,
                unclean: true,
            };
        }
    }
    Target {
        isr,
        leader: NO_LEADER,
        unclean: false,
    }
}

/// The record that moves `p` to `target`, or `None` when nothing changes.
fn change(
    topic: &TopicImage,
    partition: i32,
    p: &PartitionImage,
    target: Target,
    eligible: Eligible<'_>,
) -> Option<PartitionChangeRecord> {
    if target.isr == p.isr && target.leader == p.leader {
        return None;
    }
    if target.unclean {
        tracing::warn!(
            topic = %topic.name,
            partition,
            leader = target.leader,
            old_leader = p.leader,
            old_isr = ?p.isr,
            "unclean leader election: records acknowledged by the old ISR may be lost"
        );
    }
    let elected = PartitionImage {
        isr: target.isr,
        leader: target.leader,
        ..p.clone()
    };
    // As KRaft's PartitionChangeBuilder: any change that leaves a reassignment's whole
    // target in the ISR completes it.
    let next =
        reassignment::complete(&elected, &elected.isr, |r| eligible.can_lead(r)).unwrap_or(elected);
    reassignment::change(topic.topic_id, partition, p, &next)
}

/// ISR and leader moves for every partition whose ISR holds `broker_id`, which is
/// leaving (fenced or shutting down).
fn move_away_from(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let eligible = Eligible {
        image,
        leaving: Some(broker_id),
        joining: None,
    };
    let mut records = Vec::new();
    for topic in image.topics() {
        let unclean = unclean_allowed(image, topic);
        for (&partition, p) in &topic.partitions {
            if p.leader != broker_id && !p.isr.contains(&broker_id) {
                continue;
            }
            if let Some(c) = change(topic, partition, p, elect(p, eligible, unclean), eligible) {
                records.push(MetadataRecord::PartitionChange(c));
            }
        }
    }
    records
}

/// Runs `decide` once per distinct target; `only_elected` drops the other results.
fn run_elections(
    image: &MetadataImage,
    targets: &[TopicPartition],
    only_elected: bool,
    decide: impl Fn(
        &TopicImage,
        i32,
        &PartitionImage,
    ) -> (ElectionResult, Option<PartitionChangeRecord>),
) -> Elections {
    let mut out = Elections::default();
    let mut seen: BTreeMap<TopicPartition, ElectionResult> = BTreeMap::new();
    for &tp in targets {
        let result = match seen.get(&tp) {
            Some(r) => *r,
            None => {
                let found = image
                    .topic(&tp.0)
                    .and_then(|t| t.partitions.get(&tp.1).map(|p| (t, p)));
                let (result, record) = match found {
                    Some((topic, p)) => decide(topic, tp.1, p),
                    None => (ElectionResult::UnknownPartition, None),
                };
                out.records
                    .extend(record.map(MetadataRecord::PartitionChange));
                seen.insert(tp, result);
                result
            }
        };
        if !only_elected || result == ElectionResult::Elected {
            out.results.push((tp, result));
        }
    }
    out
}

#[cfg(test)]
mod tests;
