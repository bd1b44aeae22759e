//! One group of the consumer protocol (KIP-848): members with their epochs, the group epoch,
//! the target assignment the server-side assignor computed for it, and each member's walk
//! from its current assignment to its target (revoke first, then take partitions as their
//! previous owners release them). Pure state; the coordinator owns locking and the clock.
//!
//! The rules follow Apache Kafka's coordinator: the group epoch grows when membership,
//! subscriptions or the subscribed topics change; the target is recomputed lazily when a
//! member heartbeats and the group epoch is ahead of it; a member moves to the target epoch
//! only after it has given up every partition it must revoke; a partition is handed to its
//! new owner only once no other member holds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use regex::Regex;
use uuid::Uuid;

use super::assignor::{Assignment, Assignor, MemberSpec};
use crate::metadata::store::Image;

/// Epoch a member sends to leave, and a static member to leave for a while (keeping its
/// partitions reserved until its session expires).
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Where a member is on its way to the target assignment (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Owns exactly its assignment at the target epoch (or is at an older target with
    /// nothing left to do).
    Stable,
    /// Must give up `revoking` before it moves to the target epoch.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub subscribed_names: BTreeSet<String>,
    pub subscribed_regex: Option<(String, Regex)>,
    pub server_assignor: Option<Assignor>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// Partitions the member owns and may consume.
    pub assigned: Assignment,
    /// Partitions the member must give up before it gets anything new.
    pub revoking: Assignment,
    pub session_deadline: Instant,
    pub revocation_deadline: Option<Instant>,
}

impl ConsumerMember {
    fn new(id: &str, now: Instant) -> ConsumerMember {
        ConsumerMember {
            id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout: Duration::ZERO,
            subscribed_names: BTreeSet::new(),
            subscribed_regex: None,
            server_assignor: None,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            session_deadline: now,
            revocation_deadline: None,
        }
    }
}

/// One ConsumerGroupHeartbeat, as the coordinator needs it; `None` means "unchanged".
#[derive(Debug, Default)]
pub struct HeartbeatArgs {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_names: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<Assignor>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// The heartbeat answer: the member's id and epoch, and its assignment when it must be sent.
#[derive(Debug, PartialEq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<Assignment>,
}

/// A heartbeat refused with a Kafka error and a message for the client's log.
pub type Refusal = (ResponseError, String);

/// Group-level settings the state machine needs.
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    pub session_timeout: Duration,
    pub max_size: usize,
    /// group.consumer.assignors; the first is the default.
    pub assignors: Vec<Assignor>,
}

pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Who holds each partition (assigned or still revoking), so nothing is owned twice.
    owners: HashMap<(Uuid, i32), String>,
    /// Subscribed topic name → (id, partition count) when the epoch was last bumped.
    subscription_metadata: BTreeMap<String, (Uuid, i32)>,
    /// The metadata revision `subscription_metadata` was computed at.
    metadata_revision: Option<u64>,
    /// The assignor that computed the current target.
    pub assignor: Option<Assignor>,
}

impl Default for ConsumerGroup {
    fn default() -> Self {
        ConsumerGroup::new()
    }
}

impl ConsumerGroup {
    pub fn new() -> ConsumerGroup {
        ConsumerGroup {
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            owners: HashMap::new(),
            subscription_metadata: BTreeMap::new(),
            metadata_revision: None,
            assignor: None,
        }
    }

    /// Kafka's consumer group states: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat of a joining or known member (not a leave).
    pub fn heartbeat(
        &mut self,
        args: HeartbeatArgs,
        image: &Image,
        config: &ConsumerGroupConfig,
        now: Instant,
    ) -> Result<HeartbeatReply, Refusal> {
        let joining = args.member_epoch == 0;
        let known = self.members.contains_key(&args.member_id);
        let static_holder = args
            .instance_id
            .as_ref()
            .and_then(|i| self.static_member(i))
            .map(str::to_string);
        let replaces_static = joining && static_holder.is_some();
        if joining && !known && !replaces_static && self.members.len() >= config.max_size {
            return Err((
                ResponseError::GroupMaxSizeReached,
                format!(
                    "the consumer group has reached its maximum of {} members",
                    config.max_size
                ),
            ));
        }
        let member_id = args.member_id.clone();
        let previous_assigned;
        match (&args.instance_id, static_holder) {
            (Some(instance), Some(holder)) if joining => {
                let old = &self.members[&holder];
                if holder != member_id && old.epoch != STATIC_LEAVE_EPOCH {
                    return Err((
                        ResponseError::UnreleasedInstanceId,
                        format!("instance id {instance} is still used by member {holder}"),
                    ));
                }
                // The returning instance takes over its predecessor's epoch and partitions.
                let mut old = self.members.remove(&holder).expect("holder exists");
                self.transfer_owners(&holder, &member_id);
                if let Some(t) = self.target.remove(&holder) {
                    self.target.insert(member_id.clone(), t);
                }
                old.id = member_id.clone();
                if old.epoch == STATIC_LEAVE_EPOCH {
                    old.epoch = old.previous_epoch;
                }
                previous_assigned = None;
                self.members.insert(member_id.clone(), old);
            }
            (Some(instance), Some(holder)) => {
                if holder != member_id {
                    return Err((
                        ResponseError::FencedInstanceId,
                        format!("instance id {instance} now belongs to member {holder}"),
                    ));
                }
                let m = &self.members[&member_id];
                check_epoch(m, args.member_epoch, args.owned.as_ref())?;
                previous_assigned = Some(m.assigned.clone());
            }
            (Some(instance), None) if !joining => {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("instance id {instance} is not a member of the group"),
                ));
            }
            _ => match self.members.get(&member_id) {
                Some(m) => {
                    check_epoch(m, args.member_epoch, args.owned.as_ref())?;
                    previous_assigned = Some(m.assigned.clone());
                }
                None if joining => {
                    tracing::info!(member = %member_id, "member joins the consumer group");
                    self.members
                        .insert(member_id.clone(), ConsumerMember::new(&member_id, now));
                    previous_assigned = None;
                }
                None => {
                    return Err((
                        ResponseError::UnknownMemberId,
                        format!("member {member_id} is not a member of the group"),
                    ))
                }
            },
        }

        // 1. Update the member; a changed subscription bumps the group epoch.
        let member = self.members.get_mut(&member_id).expect("member present");
        let mut bump = self.epoch == 0;
        if let Some(instance) = args.instance_id {
            member.instance_id = Some(instance);
        }
        if args.rack_id.is_some() {
            member.rack_id = args.rack_id;
        }
        if args.rebalance_timeout_ms >= 0 {
            member.rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms as u64);
        }
        if args.server_assignor.is_some() && args.server_assignor != member.server_assignor {
            member.server_assignor = args.server_assignor;
            bump = true;
        }
        if let Some(names) = args.subscribed_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            if names != member.subscribed_names {
                member.subscribed_names = names;
                bump = true;
            }
        }
        if let Some(pattern) = args.subscribed_regex {
            let changed = member.subscribed_regex.as_ref().map(|(p, _)| p) != Some(&pattern);
            if changed {
                member.subscribed_regex = if pattern.is_empty() {
                    None
                } else {
                    let compiled = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                        (
                            ResponseError::InvalidRegularExpression,
                            format!("SubscribedTopicRegex {pattern:?} is not valid: {e}"),
                        )
                    })?;
                    Some((pattern, compiled))
                };
                bump = true;
            }
        }
        member.client_id = args.client_id;
        member.client_host = args.client_host;
        member.session_deadline = now + config.session_timeout;

        // 2. Refresh the subscribed topics' metadata when it may have changed.
        if bump || self.metadata_revision != Some(image.revision) {
            let metadata = self.subscribed_topics(image);
            if metadata != self.subscription_metadata {
                self.subscription_metadata = metadata;
                bump = true;
            }
            self.metadata_revision = Some(image.revision);
        }
        if bump {
            self.epoch += 1;
            tracing::info!(epoch = self.epoch, "consumer group epoch bumped");
        }

        // 3. Recompute the target if the group moved past it, then walk the member to it.
        if self.epoch > self.assignment_epoch {
            self.compute_target(config);
        }
        self.reconcile(&member_id, args.owned.as_ref(), now);

        let member = &self.members[&member_id];
        let full_request = joining || args.owned.is_some();
        let changed = previous_assigned.as_ref() != Some(&member.assigned);
        Ok(HeartbeatReply {
            member_id,
            member_epoch: member.epoch,
            assignment: (full_request || changed).then(|| member.assigned.clone()),
        })
    }

    /// A member leaves (epoch -1), or a static member steps away (epoch -2) keeping its
    /// partitions until its session expires. Returns the epoch to answer with.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        epoch: i32,
    ) -> Result<i32, Refusal> {
        let id = match instance_id {
            Some(instance) => match self.static_member(instance) {
                Some(holder) if holder == member_id || member_id.is_empty() => holder.to_string(),
                Some(holder) => {
                    return Err((
                        ResponseError::FencedInstanceId,
                        format!("instance id {instance} now belongs to member {holder}"),
                    ))
                }
                None => {
                    return Err((
                        ResponseError::UnknownMemberId,
                        format!("instance id {instance} is not a member of the group"),
                    ))
                }
            },
            None if self.members.contains_key(member_id) => member_id.to_string(),
            None => {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("member {member_id} is not a member of the group"),
                ))
            }
        };
        if epoch == STATIC_LEAVE_EPOCH && instance_id.is_some() {
            let m = self.members.get_mut(&id).expect("member present");
            if m.epoch != STATIC_LEAVE_EPOCH {
                m.previous_epoch = m.epoch;
                m.epoch = STATIC_LEAVE_EPOCH;
            }
            tracing::info!(member = %id, "static member left temporarily");
            return Ok(STATIC_LEAVE_EPOCH);
        }
        tracing::info!(member = %id, "member left the consumer group");
        self.remove_member(&id);
        Ok(LEAVE_EPOCH)
    }

    /// Removes members whose session expired or who did not revoke in time. Returns the
    /// ids removed.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            let reason = if self.members[id].session_deadline <= now {
                "session expired"
            } else {
                "partitions not revoked within the rebalance timeout"
            };
            tracing::info!(member = %id, reason, "removing consumer group member");
            self.remove_member(id);
        }
        expired
    }

    fn remove_member(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.owners.retain(|_, owner| owner != id);
            self.target.remove(id);
            self.epoch += 1;
        }
    }

    fn static_member(&self, instance: &str) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| m.id.as_str())
    }

    fn transfer_owners(&mut self, from: &str, to: &str) {
        for owner in self.owners.values_mut() {
            if owner == from {
                *owner = to.to_string();
            }
        }
    }

    /// Subscribed topic name → (id, partitions), for the names and regexes of all members.
    fn subscribed_topics(&self, image: &Image) -> BTreeMap<String, (Uuid, i32)> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            for name in &m.subscribed_names {
                if let Some(t) = image.topic(name) {
                    out.insert(name.clone(), (t.id, t.partitions));
                }
            }
            if let Some((_, regex)) = &m.subscribed_regex {
                for (name, t) in &image.topics {
                    if !name.starts_with("__") && regex.is_match(name) {
                        out.insert(name.clone(), (t.id, t.partitions));
                    }
                }
            }
        }
        out
    }

    fn member_topics(&self, m: &ConsumerMember) -> BTreeSet<Uuid> {
        self.subscription_metadata
            .iter()
            .filter(|(name, _)| {
                m.subscribed_names.contains(*name)
                    || m.subscribed_regex
                        .as_ref()
                        .is_some_and(|(_, r)| r.is_match(name))
            })
            .map(|(_, (id, _))| *id)
            .collect()
    }

    /// The assignor most members asked for, else the configured default (Kafka's rule).
    fn preferred_assignor(&self, config: &ConsumerGroupConfig) -> Assignor {
        let mut votes: Vec<(Assignor, usize)> = Vec::new();
        for a in self.members.values().filter_map(|m| m.server_assignor) {
            match votes.iter_mut().find(|(x, _)| *x == a) {
                Some((_, n)) => *n += 1,
                None => votes.push((a, 1)),
            }
        }
        let default = config
            .assignors
            .first()
            .copied()
            .unwrap_or(Assignor::Uniform);
        votes
            .into_iter()
            .max_by_key(|(a, n)| {
                let rank = config.assignors.iter().position(|x| x == a);
                (*n, std::cmp::Reverse(rank))
            })
            .map_or(default, |(a, _)| a)
    }

    fn compute_target(&mut self, config: &ConsumerGroupConfig) {
        let assignor = self.preferred_assignor(config);
        let partitions: BTreeMap<Uuid, i32> =
            self.subscription_metadata.values().copied().collect();
        let specs: Vec<MemberSpec<'_>> = self
            .members
            .values()
            .map(|m| MemberSpec {
                member_id: &m.id,
                instance_id: m.instance_id.as_deref(),
                topics: self.member_topics(m),
                previous: self.target.get(&m.id),
            })
            .collect();
        let target = assignor.assign(&specs, &partitions);
        self.target = target;
        self.assignment_epoch = self.epoch;
        self.assignor = Some(assignor);
        tracing::info!(
            epoch = self.epoch,
            assignor = assignor.name(),
            members = self.members.len(),
            "computed the target assignment"
        );
    }

    /// Moves a member toward its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: Instant) {
        let member = &self.members[member_id];
        match member.state {
            MemberState::UnrevokedPartitions => {
                let still_owns = owned.is_none_or(|o| intersects(o, &member.revoking));
                if still_owns {
                    return;
                }
                let released =
                    std::mem::take(&mut self.members.get_mut(member_id).expect("member").revoking);
                for (topic, ps) in released {
                    for p in ps {
                        if self.owners.get(&(topic, p)).map(String::as_str) == Some(member_id) {
                            self.owners.remove(&(topic, p));
                        }
                    }
                }
                self.next_assignment(member_id, now);
            }
            MemberState::Stable if member.epoch == self.assignment_epoch => {}
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(member_id, now);
            }
        }
    }

    fn next_assignment(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let target_epoch = self.assignment_epoch;
        let member = self.members.get_mut(member_id).expect("member");
        if member.epoch == STATIC_LEAVE_EPOCH {
            return;
        }
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (topic, ps) in &member.assigned {
            for &p in ps {
                let side = if target.get(topic).is_some_and(|t| t.contains(&p)) {
                    &mut keep
                } else {
                    &mut revoke
                };
                side.entry(*topic).or_default().insert(p);
            }
        }
        if !revoke.is_empty() {
            member.assigned = keep;
            member.revoking = revoke;
            member.state = MemberState::UnrevokedPartitions;
            member.revocation_deadline = Some(now + member.rebalance_timeout);
            return;
        }
        let mut unreleased = false;
        for (topic, ps) in &target {
            for &p in ps {
                if keep.get(topic).is_some_and(|k| k.contains(&p)) {
                    continue;
                }
                match self.owners.get(&(*topic, p)) {
                    Some(owner) if owner != member_id => unreleased = true,
                    _ => {
                        self.owners.insert((*topic, p), member_id.to_string());
                        keep.entry(*topic).or_default().insert(p);
                    }
                }
            }
        }
        if member.epoch != target_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = target_epoch;
        }
        member.assigned = keep;
        member.revocation_deadline = None;
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }
}

/// FENCED_MEMBER_EPOCH unless the epoch is current, or the previous one with nothing owned
/// beyond the current assignment (the answer that bumped it was lost).
fn check_epoch(m: &ConsumerMember, epoch: i32, owned: Option<&Assignment>) -> Result<(), Refusal> {
    let lost_answer = epoch == m.previous_epoch && owned.is_some_and(|o| is_subset(o, &m.assigned));
    if epoch == m.epoch || (epoch < m.epoch && lost_answer) {
        return Ok(());
    }
    Err((
        ResponseError::FencedMemberEpoch,
        format!(
            "member epoch {epoch} does not match the coordinator's {}; the member must give up \
             its partitions and rejoin",
            m.epoch
        ),
    ))
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|q| ps.iter().any(|p| q.contains(p))))
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|q| ps.is_subset(q)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metadata::store::TopicRecord;

    fn image(topics: &[(&str, u8, i32)], revision: u64) -> Image {
        let mut image = Image {
            revision,
            ..Default::default()
        };
        for (name, id, partitions) in topics {
            image.topics.insert(
                name.to_string(),
                Arc::new(TopicRecord {
                    name: name.to_string(),
                    id: Uuid::from_bytes([*id; 16]),
                    partitions: *partitions,
                    ..Default::default()
                }),
            );
        }
        image
    }

    fn config() -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            session_timeout: Duration::from_secs(45),
            max_size: 3,
            assignors: vec![Assignor::Uniform, Assignor::Range],
        }
    }

    fn join(id: &str, topics: &[&str]) -> HeartbeatArgs {
        HeartbeatArgs {
            member_id: id.to_string(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_names: Some(topics.iter().map(|t| t.to_string()).collect()),
            owned: Some(Assignment::new()),
            ..Default::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatArgs {
        HeartbeatArgs {
            member_id: id.to_string(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned.clone()),
            ..Default::default()
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Heartbeats every member, each reporting what it owns, until nothing changes; then
    /// checks every partition is owned by exactly one member at the target epoch.
    fn settle(g: &mut ConsumerGroup, image: &Image, now: Instant) -> BTreeMap<String, Assignment> {
        let mut owned: BTreeMap<String, (i32, Assignment)> = g
            .members
            .values()
            .map(|m| (m.id.clone(), (m.epoch, m.assigned.clone())))
            .collect();
        for _ in 0..10 {
            for (id, (epoch, assignment)) in owned.iter_mut() {
                let reply = g.heartbeat(beat(id, *epoch, assignment), image, &config(), now);
                let reply = reply.unwrap();
                *epoch = reply.member_epoch;
                if let Some(a) = reply.assignment {
                    *assignment = a;
                }
            }
        }
        assert_eq!(g.state_name(), "Stable");
        let mut seen = BTreeSet::new();
        for (_, a) in owned.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "partition owned twice");
                }
            }
        }
        owned.into_iter().map(|(id, (_, a))| (id, a)).collect()
    }

    #[test]
    fn members_join_and_converge_without_double_ownership() {
        let image = image(&[("t", 1, 12)], 1);
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        let first = g
            .heartbeat(join("a", &["t"]), &image, &config(), now)
            .unwrap();
        assert_eq!(first.member_epoch, 1);
        assert_eq!(count(first.assignment.as_ref().unwrap()), 12);
        let second = g
            .heartbeat(join("b", &["t"]), &image, &config(), now)
            .unwrap();
        // b's half is still held by a: b waits at the new epoch with nothing yet.
        assert_eq!(second.member_epoch, 2);
        assert_eq!(count(second.assignment.as_ref().unwrap()), 0);
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
        // a is told to give up six partitions and keeps its epoch until it does.
        let a = g
            .heartbeat(
                beat("a", 1, first.assignment.as_ref().unwrap()),
                &image,
                &config(),
                now,
            )
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        assert_eq!(count(a.assignment.as_ref().unwrap()), 6);
        assert_eq!(g.state_name(), "Reconciling");
        let settled = settle(&mut g, &image, now);
        assert_eq!(settled.values().map(count).collect::<Vec<_>>(), vec![6, 6]);
    }

    #[test]
    fn leaving_member_frees_its_partitions() {
        let image = image(&[("t", 1, 4)], 1);
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a", &["t"]), &image, &config(), now)
            .unwrap();
        g.heartbeat(join("b", &["t"]), &image, &config(), now)
            .unwrap();
        settle(&mut g, &image, now);
        assert_eq!(g.leave("b", None, LEAVE_EPOCH), Ok(LEAVE_EPOCH));
        let settled = settle(&mut g, &image, now);
        assert_eq!(count(&settled["a"]), 4);
    }

    #[test]
    fn expired_session_removes_member() {
        let image = image(&[("t", 1, 4)], 1);
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a", &["t"]), &image, &config(), now)
            .unwrap();
        g.heartbeat(join("b", &["t"]), &image, &config(), now)
            .unwrap();
        settle(&mut g, &image, now);
        let later = now + Duration::from_secs(30);
        let a_epoch = g.members["a"].epoch;
        let owned = g.members["a"].assigned.clone();
        g.heartbeat(beat("a", a_epoch, &owned), &image, &config(), later)
            .unwrap();
        assert_eq!(
            g.expire(now + Duration::from_secs(50)),
            vec!["b".to_string()]
        );
        let settled = settle(&mut g, &image, later);
        assert_eq!(count(&settled["a"]), 4);
    }

    #[test]
    fn epochs_are_checked() {
        let image = image(&[("t", 1, 2)], 1);
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a", &["t"]), &image, &config(), now)
            .unwrap();
        let err = g
            .heartbeat(beat("a", 7, &Assignment::new()), &image, &config(), now)
            .unwrap_err();
        assert_eq!(err.0, ResponseError::FencedMemberEpoch);
        let err = g
            .heartbeat(beat("x", 1, &Assignment::new()), &image, &config(), now)
            .unwrap_err();
        assert_eq!(err.0, ResponseError::UnknownMemberId);
        // The previous epoch with a subset of the assignment is a lost answer, accepted.
        let reply = g
            .heartbeat(beat("a", 0, &Assignment::new()), &image, &config(), now)
            .unwrap();
        assert_eq!(reply.member_epoch, 1);
    }

    #[test]
    fn group_size_is_bounded() {
        let image = image(&[("t", 1, 2)], 1);
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        for id in ["a", "b", "c"] {
            g.heartbeat(join(id, &["t"]), &image, &config(), now)
                .unwrap();
        }
        let err = g
            .heartbeat(join("d", &["t"]), &image, &config(), now)
            .unwrap_err();
        assert_eq!(err.0, ResponseError::GroupMaxSizeReached);
    }

    #[test]
    fn new_partitions_bump_the_epoch() {
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        let before = image(&[("t", 1, 2)], 1);
        let reply = g
            .heartbeat(join("a", &["t"]), &before, &config(), now)
            .unwrap();
        let after = image(&[("t", 1, 5)], 2);
        let reply = g
            .heartbeat(
                beat("a", reply.member_epoch, &reply.assignment.unwrap()),
                &after,
                &config(),
                now,
            )
            .unwrap();
        assert_eq!(reply.member_epoch, 2);
        assert_eq!(count(reply.assignment.as_ref().unwrap()), 5);
    }

    #[test]
    fn regex_subscription_matches_whole_names() {
        let now = Instant::now();
        let image = image(
            &[
                ("orders", 1, 2),
                ("orders-dlq", 2, 1),
                ("__consumer_offsets", 3, 50),
            ],
            1,
        );
        let mut g = ConsumerGroup::new();
        let mut args = join("a", &[]);
        args.subscribed_names = None;
        args.subscribed_regex = Some("orders.*|__.*".into());
        let reply = g.heartbeat(args, &image, &config(), now).unwrap();
        assert_eq!(count(reply.assignment.as_ref().unwrap()), 3);
        let mut bad = join("b", &[]);
        bad.subscribed_regex = Some("(".into());
        let err = g.heartbeat(bad, &image, &config(), now).unwrap_err();
        assert_eq!(err.0, ResponseError::InvalidRegularExpression);
    }

    #[test]
    fn static_member_rejoins_with_its_partitions() {
        let now = Instant::now();
        let image = image(&[("t", 1, 4)], 1);
        let mut g = ConsumerGroup::new();
        let mut a = join("a1", &["t"]);
        a.instance_id = Some("i-a".into());
        g.heartbeat(a, &image, &config(), now).unwrap();
        g.heartbeat(join("b", &["t"]), &image, &config(), now)
            .unwrap();
        let before = settle(&mut g, &image, now);
        // A second process with the same instance id is refused while the first is there.
        let mut dup = join("a2", &["t"]);
        dup.instance_id = Some("i-a".into());
        let err = g.heartbeat(dup, &image, &config(), now).unwrap_err();
        assert_eq!(err.0, ResponseError::UnreleasedInstanceId);
        assert_eq!(
            g.leave("a1", Some("i-a"), STATIC_LEAVE_EPOCH),
            Ok(STATIC_LEAVE_EPOCH)
        );
        let epoch = g.epoch;
        let mut back = join("a2", &["t"]);
        back.instance_id = Some("i-a".into());
        let reply = g.heartbeat(back, &image, &config(), now).unwrap();
        assert_eq!(
            g.epoch, epoch,
            "a returning static member causes no rebalance"
        );
        assert_eq!(reply.assignment.unwrap(), before["a1"]);
    }
}
