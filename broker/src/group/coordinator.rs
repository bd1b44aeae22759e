//! The classic group coordinator: JoinGroup / SyncGroup / Heartbeat / LeaveGroup with
//! generations, the MEMBER_ID_REQUIRED two-step join, static membership, session and
//! rebalance timeouts; committed offsets kept in memory and in `__consumer_offsets`.
//!
//! Every group lives under one mutex; nothing awaits while holding it. Members blocked in
//! JoinGroup or SyncGroup hold a oneshot receiver that a later request or the periodic
//! [`GroupCoordinator::tick`] completes.
//!
//! A group belongs to the leader of its `__consumer_offsets` partition (Kafka's rule). The
//! coordinator holds only the groups of the partitions this broker leads: it loads a
//! partition's groups when it gains leadership and drops them when it loses it
//! ([`GroupCoordinator::set_leadership`]); every other group gets NOT_COORDINATOR.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::consumer::{ConsumerGroup, ConsumerGroupConfig, HeartbeatArgs, HeartbeatReply, Refusal};
use super::log as offsets_log;
use super::records::{partition_for, CommittedOffset, GroupRecord, OffsetsRecord};
use super::state::{Group, GroupState, JoinResult, Member, SyncResult};
use crate::broker::{now_ms, Broker};
use crate::metadata::store::Image;

/// Group settings, Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i64,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i64,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: u64,
    /// offsets.topic.num.partitions
    pub offsets_partitions: i32,
    /// offset.metadata.max.bytes
    pub metadata_max_bytes: usize,
    /// offsets.retention.minutes, in ms
    pub offsets_retention_ms: i64,
    /// group.consumer.heartbeat.interval.ms
    pub consumer_heartbeat_interval_ms: i32,
    /// group.consumer.session.timeout.ms, group.consumer.max.size, group.consumer.assignors
    pub consumer: ConsumerGroupConfig,
}

/// A reply now, or a receiver that a later event completes.
pub enum Pending<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// Everything a JoinGroup carries that the coordinator uses.
pub struct JoinArgs {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// v4+: a member without an id first gets one with MEMBER_ID_REQUIRED.
    pub require_known_member: bool,
}

pub struct GroupCoordinator {
    pub config: GroupConfig,
    /// Only groups of `ownership.owned` partitions: the paths that create a group check
    /// ownership under this lock, and [`GroupCoordinator::set_leadership`] drops the rest.
    /// Lock order: `groups`, then `ownership`.
    groups: Mutex<HashMap<String, Group>>,
    ownership: RwLock<Ownership>,
}

/// The `__consumer_offsets` partitions this broker coordinates.
#[derive(Debug, Default)]
struct Ownership {
    /// The topic's partition count; None while the topic does not exist.
    partitions: Option<i32>,
    /// The partitions this broker leads, their groups loaded.
    owned: BTreeSet<i32>,
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn join_error(e: ResponseError, member_id: &str) -> JoinResult {
    JoinResult {
        error: code(e),
        generation: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    }
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: Mutex::new(HashMap::new()),
            ownership: RwLock::new(Ownership::default()),
        }
    }

    /// The `__consumer_offsets` partition holding `group`: by the topic's partition count
    /// once it exists (as Kafka does), else by `offsets.topic.num.partitions`.
    pub fn partition_of(&self, group: &str) -> i32 {
        let partitions = self.ownership.read().partitions;
        partition_for(group, partitions.unwrap_or(self.config.offsets_partitions))
    }

    /// NOT_COORDINATOR unless this broker leads `group`'s offsets partition, checked
    /// first by every group API. Before the offsets topic exists no group exists anywhere,
    /// so every broker may answer "unknown group"; the APIs that create groups create the
    /// topic first (and then need the leadership, see `GroupCoordinator::owns`).
    pub fn check_coordinator(&self, group: &str) -> Result<(), ResponseError> {
        let o = self.ownership.read();
        match o.partitions {
            None => Ok(()),
            Some(n) if o.owned.contains(&partition_for(group, n)) => Ok(()),
            Some(_) => Err(ResponseError::NotCoordinator),
        }
    }

    /// Whether a group may be created or changed here; called under the groups lock so
    /// that no group of a partition being dropped slips back in.
    fn owns(&self, group: &str) -> Result<(), ResponseError> {
        let o = self.ownership.read();
        match o.partitions {
            None => Err(ResponseError::CoordinatorNotAvailable),
            Some(n) if o.owned.contains(&partition_for(group, n)) => Ok(()),
            Some(_) => Err(ResponseError::NotCoordinator),
        }
    }

    /// The partitions that [`GroupCoordinator::set_leadership`] with the same arguments
    /// will load: the newly led ones (all led ones when the partition count changed, since
    /// groups then map to other partitions).
    pub fn partitions_to_load(&self, partitions: Option<i32>, led: &BTreeSet<i32>) -> Vec<i32> {
        let o = self.ownership.read();
        if o.partitions != partitions {
            led.iter().copied().collect()
        } else {
            led.difference(&o.owned).copied().collect()
        }
    }

    /// Follows the leadership of `__consumer_offsets` (`partitions`: its partition count,
    /// None when it does not exist; `led`: the partitions this broker leads). Groups of
    /// partitions no longer led leave memory, their waiting members answered
    /// NOT_COORDINATOR; newly led partitions get their groups from `loaded` (records read
    /// from each partition's log, see `group::log::follow_leadership`), replacing anything
    /// left in memory, so a regained partition is exactly what its log says.
    pub fn set_leadership(
        &self,
        partitions: Option<i32>,
        led: BTreeSet<i32>,
        loaded: Vec<(i32, Vec<OffsetsRecord>)>,
    ) {
        let mut groups = self.groups.lock();
        let mut o = self.ownership.write();
        let resized = o.partitions != partitions;
        let (lost, gained): (BTreeSet<i32>, BTreeSet<i32>) = if resized {
            (o.owned.clone(), led.clone())
        } else {
            (
                o.owned.difference(&led).copied().collect(),
                led.difference(&o.owned).copied().collect(),
            )
        };
        if !resized && lost.is_empty() && gained.is_empty() {
            return;
        }
        let count = partitions.unwrap_or(self.config.offsets_partitions);
        groups.retain(|id, g| {
            let keep = !resized && {
                let p = partition_for(id, count);
                !lost.contains(&p) && !gained.contains(&p)
            };
            if !keep {
                for member in g.members.keys().cloned().collect::<Vec<_>>() {
                    g.remove_member(&member, code(ResponseError::NotCoordinator));
                }
            }
            keep
        });
        let mut records = 0;
        for (p, batch) in loaded {
            if gained.contains(&p) {
                records += batch.len();
                load_into(&mut groups, batch);
            }
        }
        if !lost.is_empty() {
            tracing::info!(partitions = ?lost, "no longer the group coordinator of these offsets partitions");
        }
        if !gained.is_empty() {
            tracing::info!(partitions = ?gained, records, "became the group coordinator of these offsets partitions");
        }
        o.partitions = partitions;
        o.owned = led;
    }
}

/// Rebuilds committed offsets and group existence from `__consumer_offsets` records (members
/// are not restored: after a restart they rejoin, as after a coordinator move).
fn load_into(groups: &mut HashMap<String, Group>, records: Vec<OffsetsRecord>) {
    let now = now_ms();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for record in records {
        match record {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now));
                match value {
                    Some(v) => {
                        g.offsets.insert((topic, partition), v);
                    }
                    None => {
                        g.offsets.remove(&(topic, partition));
                    }
                }
                touched.insert(group);
            }
            OffsetsRecord::Group {
                group,
                value: Some(v),
            } => {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now));
                g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
                g.generation = v.generation;
                g.state_since_ms = if v.state_timestamp_ms > 0 {
                    v.state_timestamp_ms
                } else {
                    now
                };
                touched.insert(group);
            }
            OffsetsRecord::Group { group, value: None } => {
                groups.remove(&group);
            }
        }
    }
    // Only the loaded groups: another one may be in the middle of its creation, still empty.
    groups.retain(|id, g| {
        !touched.contains(id) || g.protocol_type.is_some() || !g.offsets.is_empty()
    });
}

impl GroupCoordinator {
    pub fn join(&self, broker: &Broker, args: JoinArgs) -> Pending<JoinResult> {
        if args.group_id.is_empty() {
            return Pending::Now(join_error(ResponseError::InvalidGroupId, &args.member_id));
        }
        let session = i64::from(args.session_timeout_ms);
        if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            return Pending::Now(join_error(
                ResponseError::InvalidSessionTimeout,
                &args.member_id,
            ));
        }
        if args.protocol_type.is_empty() || args.protocols.is_empty() {
            return Pending::Now(join_error(
                ResponseError::InconsistentGroupProtocol,
                &args.member_id,
            ));
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        if let Err(e) = self.owns(&args.group_id) {
            return Pending::Now(join_error(e, &args.member_id));
        }
        if !args.member_id.is_empty() && !groups.contains_key(&args.group_id) {
            return Pending::Now(join_error(ResponseError::UnknownMemberId, &args.member_id));
        }
        let group = groups
            .entry(args.group_id.clone())
            .or_insert_with(|| Group::new(&args.group_id, now_ms()));
        if group.state == GroupState::Dead {
            return Pending::Now(join_error(
                ResponseError::CoordinatorNotAvailable,
                &args.member_id,
            ));
        }
        if let Some(consumer) = &group.consumer {
            if !consumer.members.is_empty() {
                // Classic members cannot join a group that speaks the consumer protocol
                // (Kafka's mixed groups are not supported).
                return Pending::Now(join_error(
                    ResponseError::InconsistentGroupProtocol,
                    &args.member_id,
                ));
            }
            tracing::info!(group = %group.id, "empty consumer-protocol group converted to classic");
            group.consumer = None;
        }
        let type_clash = group
            .protocol_type
            .as_ref()
            .is_some_and(|t| *t != args.protocol_type)
            && !group.members.is_empty();
        if type_clash || !group.accepts_protocols(&args.protocols) {
            return Pending::Now(join_error(
                ResponseError::InconsistentGroupProtocol,
                &args.member_id,
            ));
        }

        let known = !args.member_id.is_empty() && group.members.contains_key(&args.member_id);
        let pending = !args.member_id.is_empty() && group.pending.remove(&args.member_id).is_some();
        if let Some(instance) = &args.instance_id {
            if let Some(current) = group.instances.get(instance) {
                if !args.member_id.is_empty() && *current != args.member_id {
                    return Pending::Now(join_error(
                        ResponseError::FencedInstanceId,
                        &args.member_id,
                    ));
                }
            }
        }

        if !args.member_id.is_empty() && !known && !pending {
            return Pending::Now(join_error(ResponseError::UnknownMemberId, &args.member_id));
        }

        if args.member_id.is_empty() {
            let base = args
                .instance_id
                .clone()
                .unwrap_or_else(|| args.client_id.clone());
            let new_id = format!("{base}-{}", uuid::Uuid::new_v4());
            if let Some(instance) = args.instance_id.clone() {
                if let Some(old_id) = group.instances.get(&instance).cloned() {
                    // A static member restarting: it takes over its old identity and
                    // assignment; the old member id is fenced.
                    return self.replace_static_member(broker, group, &old_id, new_id, args, now);
                }
            } else if args.require_known_member {
                let deadline = now + Duration::from_millis(args.session_timeout_ms.max(0) as u64);
                group.pending.insert(new_id.clone(), deadline);
                return Pending::Now(JoinResult {
                    error: code(ResponseError::MemberIdRequired),
                    generation: -1,
                    member_id: new_id,
                    ..Default::default()
                });
            }
            return self.add_member_and_rebalance(broker, group, new_id, args, now);
        }
        if pending {
            let id = args.member_id.clone();
            return self.add_member_and_rebalance(broker, group, id, args, now);
        }

        // A known member rejoining.
        let member_id = args.member_id.clone();
        let (changed, is_leader) = {
            let m = group.members.get_mut(&member_id).expect("known member");
            let changed = m.protocols != args.protocols;
            m.protocols = args.protocols;
            m.session_timeout = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
            m.rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64);
            m.last_seen = now;
            (changed, group.leader.as_deref() == Some(member_id.as_str()))
        };
        match group.state {
            GroupState::PreparingRebalance => {}
            GroupState::CompletingRebalance | GroupState::Stable
                if !(changed || is_leader && group.state == GroupState::Stable) =>
            {
                return Pending::Now(current_join(group, &member_id));
            }
            _ => prepare_rebalance(group, now, self.config.initial_rebalance_delay_ms),
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = group.members.get_mut(&member_id) {
            m.join_waiter = Some(tx);
        }
        self.try_complete_join(broker, group, now);
        Pending::Wait(rx)
    }

    fn add_member_and_rebalance(
        &self,
        broker: &Broker,
        group: &mut Group,
        id: String,
        args: JoinArgs,
        now: Instant,
    ) -> Pending<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let seq = group.next_seq();
        if let Some(instance) = &args.instance_id {
            group.instances.insert(instance.clone(), id.clone());
        }
        group.protocol_type = Some(args.protocol_type.clone());
        group.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: args.instance_id,
                client_id: args.client_id,
                client_host: args.client_host,
                session_timeout: Duration::from_millis(args.session_timeout_ms.max(0) as u64),
                rebalance_timeout: Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64),
                protocols: args.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                last_seen: now,
                joined_seq: seq,
                synced: false,
            },
        );
        if group.state != GroupState::PreparingRebalance {
            prepare_rebalance(group, now, self.config.initial_rebalance_delay_ms);
        }
        self.try_complete_join(broker, group, now);
        Pending::Wait(rx)
    }

    fn replace_static_member(
        &self,
        broker: &Broker,
        group: &mut Group,
        old_id: &str,
        new_id: String,
        args: JoinArgs,
        now: Instant,
    ) -> Pending<JoinResult> {
        let Some(mut old) = group.members.remove(old_id) else {
            return self.add_member_and_rebalance(broker, group, new_id, args, now);
        };
        if let Some(w) = old.join_waiter.take() {
            let _ = w.send(join_error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(w) = old.sync_waiter.take() {
            let _ = w.send(SyncResult {
                error: code(ResponseError::FencedInstanceId),
                ..Default::default()
            });
        }
        let unchanged = old.protocols == args.protocols;
        let instance = args.instance_id.clone().unwrap_or_default();
        group.instances.insert(instance, new_id.clone());
        if group.leader.as_deref() == Some(old_id) {
            group.leader = Some(new_id.clone());
        }
        old.id = new_id.clone();
        old.protocols = args.protocols;
        old.client_id = args.client_id;
        old.client_host = args.client_host;
        old.session_timeout = Duration::from_millis(args.session_timeout_ms.max(0) as u64);
        old.rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64);
        old.last_seen = now;
        group.members.insert(new_id.clone(), old);
        if group.state == GroupState::Stable && unchanged {
            // KIP-345: a static member coming back with the same subscription keeps its
            // assignment without a rebalance.
            return Pending::Now(current_join(group, &new_id));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = group.members.get_mut(&new_id) {
            m.join_waiter = Some(tx);
        }
        if group.state != GroupState::PreparingRebalance {
            prepare_rebalance(group, now, self.config.initial_rebalance_delay_ms);
        }
        self.try_complete_join(broker, group, now);
        Pending::Wait(rx)
    }

    /// Ends the join phase when every member has rejoined (after the initial delay), or
    /// when the rebalance timeout has passed, dropping members that did not rejoin.
    fn try_complete_join(&self, broker: &Broker, group: &mut Group, now: Instant) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = group.initial_delay_until.is_some_and(|t| now < t);
        let all_joined = group.members.values().all(|m| m.join_waiter.is_some());
        let expired = group.join_deadline.is_some_and(|d| now >= d);
        if !(expired || (all_joined && !delayed)) {
            return;
        }
        let missing: Vec<String> = group
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            group.remove_member(&id, code(ResponseError::UnknownMemberId));
        }
        group.generation += 1;
        group.join_deadline = None;
        group.initial_delay_until = None;
        group.state_since_ms = now_ms();
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol = None;
            group.leader = None;
            persist_group(broker, group);
            return;
        }
        group.protocol = group.select_protocol();
        if group
            .leader
            .as_ref()
            .is_none_or(|l| !group.members.contains_key(l))
        {
            group.leader = group
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        group.state = GroupState::CompletingRebalance;
        group.sync_deadline = Some(now + group.rebalance_timeout());
        for m in group.members.values_mut() {
            m.synced = false;
        }
        let protocol = group.protocol.clone().unwrap_or_default();
        let leader = group.leader.clone().unwrap_or_default();
        let everyone: Vec<(String, Option<String>, Bytes)> = group
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            m.last_seen = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error: 0,
                    generation: group.generation,
                    protocol_type: group.protocol_type.clone(),
                    protocol: group.protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        broker: &Broker,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Pending<SyncResult> {
        let fail = |e: ResponseError| {
            Pending::Now(SyncResult {
                error: code(e),
                ..Default::default()
            })
        };
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        if let Err(e) = validate_member(group, member_id, instance_id, generation) {
            return fail(e);
        }
        if protocol_type.is_some_and(|t| Some(t) != group.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != group.protocol.as_deref())
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        if matches!(
            group.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            if let Some(m) = group.members.get_mut(member_id) {
                m.synced = true;
            }
            if group.members.values().all(|m| m.synced) {
                group.sync_deadline = None;
            }
        }
        match group.state {
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
            GroupState::Stable => {
                let m = &group.members[member_id];
                Pending::Now(SyncResult {
                    error: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol: group.protocol.clone(),
                    assignment: m.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                    m.last_seen = Instant::now();
                }
                if group.leader.as_deref() == Some(member_id) {
                    let by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                    group.state = GroupState::Stable;
                    group.state_since_ms = now_ms();
                    let now = Instant::now();
                    for m in group.members.values_mut() {
                        m.assignment = by_member.get(&m.id).cloned().unwrap_or_default();
                        if let Some(w) = m.sync_waiter.take() {
                            // Its session starts again with the answer, as in Kafka.
                            m.last_seen = now;
                            let _ = w.send(SyncResult {
                                error: 0,
                                protocol_type: group.protocol_type.clone(),
                                protocol: group.protocol.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    persist_group(broker, group);
                }
                Pending::Wait(rx)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        validate_member(group, member_id, instance_id, generation)?;
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_seen = Instant::now();
        }
        match group.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Empty => Err(ResponseError::UnknownMemberId),
            _ => Ok(()),
        }
    }

    /// Removes the given members (member id and/or instance id); per-member error codes.
    pub fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, ResponseError> {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        let mut codes = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for (member_id, instance_id) in leaving {
            let target = match instance_id {
                Some(instance) => match group.instances.get(instance) {
                    Some(current) if member_id.is_empty() || current == member_id => {
                        Some(current.clone())
                    }
                    Some(_) => {
                        codes.push(code(ResponseError::FencedInstanceId));
                        continue;
                    }
                    None => None,
                },
                None => group
                    .members
                    .contains_key(member_id)
                    .then(|| member_id.clone()),
            };
            match target {
                Some(id) => {
                    group.remove_member(&id, code(ResponseError::UnknownMemberId));
                    removed = true;
                    codes.push(0);
                }
                None => codes.push(code(ResponseError::UnknownMemberId)),
            }
        }
        if removed {
            let now = Instant::now();
            match group.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    prepare_rebalance(group, now, 0)
                }
                _ => {}
            }
            if group.members.is_empty() && group.state == GroupState::PreparingRebalance {
                group.join_deadline = Some(now);
            }
            self.try_complete_join(broker, group, now);
        }
        Ok(codes)
    }

    /// Periodic work: end join phases whose time is up, expire sessions and unused member ids.
    pub fn tick(&self, broker: &Broker) {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        for group in groups.values_mut() {
            if let Some(consumer) = group.consumer.as_mut() {
                let was_empty = consumer.members.is_empty();
                consumer.expire(now);
                if !was_empty && consumer.members.is_empty() {
                    group.state_since_ms = now_ms();
                }
                continue;
            }
            group.pending.retain(|_, deadline| *deadline > now);
            if group.sync_deadline.is_some_and(|d| now >= d) {
                group.sync_deadline = None;
                let unsynced: Vec<String> = group
                    .members
                    .values()
                    .filter(|m| !m.synced)
                    .map(|m| m.id.clone())
                    .collect();
                if !unsynced.is_empty() {
                    for id in &unsynced {
                        tracing::info!(group = %group.id, member = %id, "no SyncGroup within the rebalance timeout; removing the member");
                        group.remove_member(id, code(ResponseError::UnknownMemberId));
                    }
                    prepare_rebalance(group, now, 0);
                    if group.members.is_empty() {
                        group.join_deadline = Some(now);
                    }
                }
            }
            let expired: Vec<String> = group
                .members
                .values()
                // A member blocked in JoinGroup or SyncGroup is alive (Kafka's
                // hasSatisfiedHeartbeat): it cannot heartbeat until it is answered.
                .filter(|m| {
                    m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                        && now.duration_since(m.last_seen) > m.session_timeout
                })
                .map(|m| m.id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(group = %group.id, member = %id, "session expired; removing the member");
                    group.remove_member(id, code(ResponseError::UnknownMemberId));
                }
                if group.state != GroupState::PreparingRebalance {
                    prepare_rebalance(group, now, 0);
                }
                if group.members.is_empty() {
                    group.join_deadline = Some(now);
                }
            }
            self.try_complete_join(broker, group, now);
        }
    }

    /// One ConsumerGroupHeartbeat (KIP-848): join, heartbeat or leave. A group that does not
    /// exist, or an empty classic group, becomes a consumer-protocol group on a join.
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        args: HeartbeatArgs,
        image: &Image,
    ) -> Result<HeartbeatReply, Refusal> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        self.owns(group_id).map_err(|e| {
            (
                e,
                format!("this broker does not coordinate group {group_id}"),
            )
        })?;
        let joining = args.member_epoch == 0;
        let unknown = || {
            Err((
                ResponseError::UnknownMemberId,
                format!("member {} is not in group {group_id}", args.member_id),
            ))
        };
        let group = match groups.get_mut(group_id) {
            Some(g) => g,
            None if joining => groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, now_ms())),
            // Members are not persisted: after a restart they are unknown and rejoin.
            None => return unknown(),
        };
        if group.consumer.is_none() {
            if !group.members.is_empty() {
                return Err((
                    ResponseError::GroupIdNotFound,
                    format!("group {group_id} is a classic group with active members"),
                ));
            }
            if !joining {
                return unknown();
            }
            tracing::info!(group = %group_id, "group now speaks the consumer protocol");
            group.consumer = Some(ConsumerGroup::new());
            group.protocol_type = None;
            group.protocol = None;
        }
        let consumer = group.consumer.as_mut().expect("consumer group");
        let was_empty = consumer.members.is_empty();
        let reply = if args.member_epoch < 0 {
            consumer
                .leave(
                    &args.member_id,
                    args.instance_id.as_deref(),
                    args.member_epoch,
                )
                .map(|epoch| HeartbeatReply {
                    member_id: args.member_id.clone(),
                    member_epoch: epoch,
                    assignment: None,
                })
        } else {
            consumer.heartbeat(args, image, &self.config.consumer, now)
        };
        if was_empty != consumer.members.is_empty() {
            group.state_since_ms = now_ms();
        }
        reply
    }

    /// Checks an OffsetFetch that names a member (v9+) against a consumer-protocol group.
    pub fn validate_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        let Some(member_id) = member_id.filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        let groups = self.groups.lock();
        match groups.get(group_id).and_then(|g| g.consumer.as_ref()) {
            Some(consumer) => check_consumer_member(consumer, member_id, member_epoch),
            None => Ok(()),
        }
    }

    /// Checks a commit against the group as Kafka does; `Ok` means the offsets may be written.
    pub fn validate_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let mut groups = self.groups.lock();
        self.owns(group_id)?;
        let group = match groups.get_mut(group_id) {
            Some(g) => g,
            None if generation < 0 && member_id.is_empty() => {
                groups.insert(group_id.to_string(), Group::new(group_id, now_ms()));
                return Ok(());
            }
            None => return Err(ResponseError::UnknownMemberId),
        };
        if generation < 0 && member_id.is_empty() && group.is_empty() {
            // A standalone consumer (assign mode) or an admin tool committing for itself.
            return Ok(());
        }
        if let Some(consumer) = &group.consumer {
            return check_consumer_member(consumer, member_id, generation);
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        validate_member(group, member_id, instance_id, generation)?;
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_seen = Instant::now();
        }
        Ok(())
    }

    /// Installs offsets written to the log. A coordinator that lost the group meanwhile
    /// skips them: they are in the log, where the next coordinator loads them from.
    pub fn apply_commit(&self, group_id: &str, offsets: Vec<((String, i32), CommittedOffset)>) {
        let mut groups = self.groups.lock();
        if self.owns(group_id).is_err() {
            return;
        }
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now_ms()));
        group.offsets.extend(offsets);
    }

    pub fn committed(&self, group_id: &str) -> Option<HashMap<(String, i32), CommittedOffset>> {
        self.groups.lock().get(group_id).map(|g| g.offsets.clone())
    }

    /// Runs `f` on a group under the lock (describe, list, delete).
    pub fn with_groups<T>(&self, f: impl FnOnce(&mut HashMap<String, Group>) -> T) -> T {
        f(&mut self.groups.lock())
    }

    /// Offsets of groups that have been empty longer than offsets.retention.minutes.
    pub fn expire_offsets(&self, broker: &Broker) {
        let now = now_ms();
        let retention = self.config.offsets_retention_ms;
        let mut tombstones: Vec<(String, Vec<(String, i32)>)> = Vec::new();
        self.with_groups(|groups| {
            for g in groups.values_mut() {
                if !g.is_empty() || g.state != GroupState::Empty {
                    continue;
                }
                let expired: Vec<(String, i32)> = g
                    .offsets
                    .iter()
                    .filter(|(_, v)| {
                        now.saturating_sub(v.commit_timestamp_ms.max(g.state_since_ms)) > retention
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in &expired {
                    g.offsets.remove(k);
                }
                if !expired.is_empty() {
                    tombstones.push((g.id.clone(), expired));
                }
            }
        });
        for (group, keys) in tombstones {
            let records = keys
                .iter()
                .map(|(t, p)| (super::records::offset_key(&group, t, *p), None))
                .collect();
            if let Err(e) = offsets_log::append(broker, &group, records) {
                tracing::warn!(group = %group, error = %e, "writing offset expiry tombstones failed");
            } else {
                tracing::info!(group = %group, offsets = keys.len(), "expired committed offsets");
            }
        }
    }
}

/// A consumer-protocol member commits or fetches with its current epoch, else
/// STALE_MEMBER_EPOCH (it must learn its new epoch from a heartbeat first).
fn check_consumer_member(
    consumer: &ConsumerGroup,
    member_id: &str,
    epoch: i32,
) -> Result<(), ResponseError> {
    match consumer.members.get(member_id) {
        None => Err(ResponseError::UnknownMemberId),
        Some(m) if m.epoch != epoch => Err(ResponseError::StaleMemberEpoch),
        Some(_) => Ok(()),
    }
}

/// Unknown member, fenced static member, or stale generation.
fn validate_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<(), ResponseError> {
    if let Some(instance) = instance_id {
        match group.instances.get(instance) {
            Some(current) if current != member_id => return Err(ResponseError::FencedInstanceId),
            None if !group.members.contains_key(member_id) => {
                return Err(ResponseError::UnknownMemberId)
            }
            _ => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(ResponseError::UnknownMemberId);
    }
    if generation != group.generation {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(())
}

/// Starts a join phase: pending SyncGroups learn a rebalance started; the phase ends when
/// everyone rejoined or the longest rebalance timeout passes.
fn prepare_rebalance(group: &mut Group, now: Instant, initial_delay_ms: u64) {
    for m in group.members.values_mut() {
        if let Some(w) = m.sync_waiter.take() {
            // Answered now: its session starts again, as in Kafka.
            m.last_seen = now;
            let _ = w.send(SyncResult {
                error: code(ResponseError::RebalanceInProgress),
                ..Default::default()
            });
        }
    }
    let first_join = group.state == GroupState::Empty;
    group.sync_deadline = None;
    group.state = GroupState::PreparingRebalance;
    group.state_since_ms = now_ms();
    let timeout = group.rebalance_timeout();
    group.join_deadline = Some(now + timeout);
    group.initial_delay_until = (first_join && initial_delay_ms > 0)
        .then(|| now + Duration::from_millis(initial_delay_ms).min(timeout));
}

/// The answer to a member rejoining a settled group without changes.
fn current_join(group: &Group, member_id: &str) -> JoinResult {
    let protocol = group.protocol.clone().unwrap_or_default();
    let leader = group.leader.clone().unwrap_or_default();
    JoinResult {
        error: 0,
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol: group.protocol.clone(),
        leader: leader.clone(),
        member_id: member_id.to_string(),
        members: if member_id == leader {
            group
                .members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(&protocol),
                    )
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// Records the group's generation and protocol; best effort (offsets are what matters).
fn persist_group(broker: &Broker, group: &Group) {
    let record = GroupRecord {
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        generation: group.generation,
        protocol: group.protocol.clone(),
        leader: group.leader.clone(),
        state_timestamp_ms: group.state_since_ms,
    };
    let records = vec![(
        super::records::group_key(&group.id),
        Some(super::records::group_value(&record)),
    )];
    if let Err(e) = offsets_log::append(broker, &group.id, records) {
        tracing::warn!(group = %group.id, error = %e, "writing group metadata failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::Assignor;

    const PARTITIONS: i32 = 4;

    fn coordinator() -> GroupCoordinator {
        GroupCoordinator::new(GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 0,
            offsets_partitions: PARTITIONS,
            metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer: ConsumerGroupConfig {
                session_timeout: Duration::from_secs(45),
                max_size: 100,
                assignors: vec![Assignor::Uniform],
            },
        })
    }

    /// Two group ids whose offsets partitions differ.
    fn two_groups() -> (String, String) {
        let a = "group-a".to_string();
        let b = (0..)
            .map(|i| format!("group-{i}"))
            .find(|g| partition_for(g, PARTITIONS) != partition_for(&a, PARTITIONS))
            .expect("some group maps elsewhere");
        (a, b)
    }

    fn committed(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: now_ms(),
        }
    }

    fn offset_record(group: &str, offset: i64) -> OffsetsRecord {
        OffsetsRecord::Offset {
            group: group.to_string(),
            topic: "t".into(),
            partition: 0,
            value: Some(committed(offset)),
        }
    }

    fn offset_of(c: &GroupCoordinator, group: &str) -> Option<i64> {
        c.committed(group)
            .and_then(|o| o.get(&("t".to_string(), 0)).map(|v| v.offset))
    }

    #[test]
    fn before_the_offsets_topic_exists_groups_are_unknown_everywhere_and_cannot_be_created() {
        let c = coordinator();
        assert_eq!(c.check_coordinator("g"), Ok(()));
        assert_eq!(
            c.validate_commit("g", -1, "", None),
            Err(ResponseError::CoordinatorNotAvailable)
        );
        c.apply_commit("g", vec![(("t".into(), 0), committed(1))]);
        assert!(c.committed("g").is_none());
    }

    #[test]
    fn only_groups_of_led_partitions_are_served_loaded_and_dropped() {
        let c = coordinator();
        let (a, b) = two_groups();
        let pa = partition_for(&a, PARTITIONS);
        let led = BTreeSet::from([pa]);
        assert_eq!(c.partitions_to_load(Some(PARTITIONS), &led), vec![pa]);
        c.set_leadership(
            Some(PARTITIONS),
            led.clone(),
            vec![(pa, vec![offset_record(&a, 5)])],
        );
        assert_eq!(
            c.partitions_to_load(Some(PARTITIONS), &led),
            Vec::<i32>::new()
        );
        assert_eq!(c.check_coordinator(&a), Ok(()));
        assert_eq!(offset_of(&c, &a), Some(5));
        assert_eq!(c.check_coordinator(&b), Err(ResponseError::NotCoordinator));
        assert_eq!(
            c.validate_commit(&b, -1, "", None),
            Err(ResponseError::NotCoordinator)
        );
        c.apply_commit(&b, vec![(("t".into(), 0), committed(1))]);
        assert!(c.committed(&b).is_none());

        // Memory moves past the log (a commit the log would also have)...
        c.apply_commit(&a, vec![(("t".into(), 0), committed(9))]);
        assert_eq!(offset_of(&c, &a), Some(9));
        // ...then leadership goes: the group leaves memory.
        c.set_leadership(Some(PARTITIONS), BTreeSet::new(), Vec::new());
        assert_eq!(c.check_coordinator(&a), Err(ResponseError::NotCoordinator));
        assert!(c.committed(&a).is_none());
        assert!(c.with_groups(|g| g.is_empty()));

        // Regained: exactly what the log says now.
        assert_eq!(c.partitions_to_load(Some(PARTITIONS), &led), vec![pa]);
        c.set_leadership(
            Some(PARTITIONS),
            led,
            vec![(pa, vec![offset_record(&a, 7)])],
        );
        assert_eq!(offset_of(&c, &a), Some(7));
    }

    #[test]
    fn a_new_partition_count_reloads_every_led_partition() {
        let c = coordinator();
        let (a, _) = two_groups();
        let pa = partition_for(&a, PARTITIONS);
        c.set_leadership(
            Some(PARTITIONS),
            BTreeSet::from([pa]),
            vec![(pa, vec![offset_record(&a, 5)])],
        );
        let all: BTreeSet<i32> = (0..8).collect();
        assert_eq!(
            c.partitions_to_load(Some(8), &all),
            all.iter().copied().collect::<Vec<_>>()
        );
        let p8 = partition_for(&a, 8);
        c.set_leadership(Some(8), all, vec![(p8, vec![offset_record(&a, 6)])]);
        assert_eq!(offset_of(&c, &a), Some(6));
        assert_eq!(c.partition_of(&a), p8);
        // The topic gone: nothing is coordinated, nothing kept.
        c.set_leadership(None, BTreeSet::new(), Vec::new());
        assert!(c.committed(&a).is_none());
        assert_eq!(c.check_coordinator(&a), Ok(()));
    }
}
