//! One consumer group of the classic protocol: its members, generation, chosen protocol and
//! leader, and the waiters of members blocked in JoinGroup or SyncGroup. Pure state; the
//! coordinator owns the locking, the clock and persistence.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::consumer::ConsumerGroup;
use super::records::CommittedOffset;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups report them.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a member blocked in JoinGroup receives.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: (member id, instance id, metadata for the chosen protocol).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// What a member blocked in SyncGroup receives.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub sync_waiter: Option<oneshot::Sender<SyncResult>>,
    pub last_seen: Instant,
    /// Order of arrival, so the first member becomes leader, as in Kafka.
    pub joined_seq: u64,
    /// Sent SyncGroup for the current generation (Kafka's pending-sync set, inverted).
    pub synced: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and the time by which they must join.
    pub pending: HashMap<String, Instant>,
    /// Static membership: group.instance.id → current member id.
    pub instances: HashMap<String, String>,
    /// While PreparingRebalance: when the join phase ends whoever has rejoined.
    pub join_deadline: Option<Instant>,
    /// The first join of an empty group waits this long for others (group.initial.rebalance.delay.ms).
    pub initial_delay_until: Option<Instant>,
    /// After a join phase: members that have not sent SyncGroup by then are removed and the
    /// group rebalances (Kafka's pending-sync timeout, one rebalance timeout long).
    pub sync_deadline: Option<Instant>,
    /// Wall-clock time of the last state change, for offset expiry of empty groups.
    pub state_since_ms: i64,
    pub offsets: HashMap<(String, i32), CommittedOffset>,
    /// Set while the group speaks the consumer protocol (KIP-848); the classic fields
    /// above then stay empty.
    pub consumer: Option<ConsumerGroup>,
    next_seq: u64,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            instances: HashMap::new(),
            join_deadline: None,
            initial_delay_until: None,
            sync_deadline: None,
            state_since_ms: now_ms,
            offsets: HashMap::new(),
            consumer: None,
            next_seq: 0,
        }
    }

    /// Kafka's group type: "consumer" for the consumer protocol, else "classic".
    pub fn group_type(&self) -> &'static str {
        if self.consumer.is_some() {
            "consumer"
        } else {
            "classic"
        }
    }

    /// The state name ListGroups reports, whichever protocol the group speaks.
    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(c) => c.state_name(),
            None => self.state.name(),
        }
    }

    /// True when no member of either protocol is in the group.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|p| self.members.values().all(|m| m.supports(p)))
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        // Ties go to the candidate listed first by the first member, deterministically.
        candidates
            .iter()
            .max_by_key(|c| {
                (
                    votes.get(*c).copied().unwrap_or(0),
                    std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
                )
            })
            .map(|c| (*c).clone())
    }

    /// True when a new member offering `protocols` shares one with every current member.
    pub fn accepts_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.members.is_empty()
            || protocols
                .iter()
                .any(|(p, _)| self.members.values().all(|m| m.supports(p)))
    }

    /// The longest rebalance timeout among members: how long a join phase may last.
    pub fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Removes a member, answering its waiters so no client hangs on it.
    pub fn remove_member(&mut self, member_id: &str, error: i16) {
        if let Some(mut m) = self.members.remove(member_id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error,
                    member_id: member_id.to_string(),
                    ..Default::default()
                });
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error,
                    ..Default::default()
                });
            }
            if let Some(instance) = &m.instance_id {
                if self.instances.get(instance).map(String::as_str) == Some(member_id) {
                    self.instances.remove(instance);
                }
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }
}
