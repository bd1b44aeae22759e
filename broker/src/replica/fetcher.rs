//! Replica fetchers: followers pull from leaders with the Fetch API, as Kafka's do.
//!
//! [`run`] follows the published image and keeps one fetcher task per leader broker,
//! handing each the partitions this node follows from that leader. A fetcher sends one
//! Fetch for all of them (replica id and broker epoch set, fetch offset = this replica's
//! log end, `last_fetched_epoch` = the epoch of its last batch), appends what comes back
//! at the leader's offsets, takes the leader's high watermark, and under the fsync policy
//! sends its next fetch only once that data is durable, so the leader counts a follower's
//! offset only for data on its disk.
//!
//! A partition that is new to a fetcher, or whose leader epoch changed, first truncates by
//! leader epoch (OffsetForLeaderEpoch, Kafka's `getOffsetTruncationState`), never by high
//! watermark: records this replica holds that the leader's log does not have at the same
//! offsets go. A `diverging_epoch` in a fetch answer truncates the same way.
//!
//! Replication throttles (KIP-73): a partition the topic's
//! `follower.replication.throttled.replicas` names for this broker, while this broker is
//! not in its ISR (as the published image has it), is left out of the next fetch as long as
//! `follower.replication.throttled.rate` is exceeded; the bytes received for throttled
//! partitions count against it. When every partition is left out the fetcher waits
//! `THROTTLED_BACKOFF_MS` rather than spin.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, OffsetForLeaderEpochRequest, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::partition::{Partition, Role};
use super::peer::PeerConnection;
use super::stats::Side;
use crate::broker::{now_ms, Broker};
use crate::config::topic::FlushPolicy;
use crate::handlers::metadata::client_endpoint;

const FETCH_VERSION: i16 = 15;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Room above a fetch's byte limit for the one batch KIP-74 lets through whole.
const FRAME_SLACK_BYTES: usize = 64 * 1024 * 1024;
/// How long an answer may take beyond the fetch's own wait.
const ANSWER_GRACE_MS: u64 = 30_000;
/// A partition the leader refused (not leader yet, epoch mismatch) is retried after this;
/// the metadata change that explains the refusal usually arrives first.
const PARTITION_RETRY_MS: u64 = 200;
/// How long a fetcher whose every partition is held back by the follower replication
/// quota waits before looking again (the quota's samples are 1 s long).
const THROTTLED_BACKOFF_MS: u64 = 100;

/// The follower-side `replica.fetch.*` settings.
#[derive(Clone, Copy, Debug)]
pub struct FetchSettings {
    pub wait_max_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub response_max_bytes: i32,
    pub backoff_ms: u64,
}

impl FetchSettings {
    pub fn from_broker(broker: &Broker) -> FetchSettings {
        let s = &broker.node.settings;
        let int = |name: &str, default: i64| {
            s.i64(name).unwrap_or(default).clamp(0, i32::MAX as i64) as i32
        };
        FetchSettings {
            wait_max_ms: int("replica.fetch.wait.max.ms", 500),
            min_bytes: int("replica.fetch.min.bytes", 1),
            max_bytes: int("replica.fetch.max.bytes", 1_048_576),
            response_max_bytes: int("replica.fetch.response.max.bytes", 10_485_760),
            backoff_ms: s.i64("replica.fetch.backoff.ms").unwrap_or(1_000).max(1) as u64,
        }
    }
}

/// A partition handed to a fetcher: followed from its leader in `leader_epoch`.
#[derive(Clone)]
struct Assigned {
    partition: Arc<Partition>,
    leader_epoch: i32,
}

type Key = (Uuid, i32);

/// What the manager shares with one leader's fetcher task.
struct Shared {
    assigned: Mutex<HashMap<Key, Assigned>>,
    changed: Notify,
    stop: CancellationToken,
}

/// Runs until shutdown: one fetcher per leader this node follows partitions from.
pub async fn run(broker: Arc<Broker>) {
    let mut published = broker.metadata.subscribe_published();
    let mut fetchers: HashMap<i32, Arc<Shared>> = HashMap::new();
    let me = broker.node_id();
    loop {
        published.borrow_and_update();
        let mut wanted: HashMap<i32, HashMap<Key, Assigned>> = HashMap::new();
        for p in broker.replicas.all_partitions() {
            if let Role::Follower {
                leader,
                leader_epoch,
            } = p.role()
            {
                if leader >= 0 && leader != me {
                    wanted.entry(leader).or_default().insert(
                        (p.topic_id, p.index),
                        Assigned {
                            partition: p,
                            leader_epoch,
                        },
                    );
                }
            }
        }
        fetchers.retain(|leader, shared| {
            let keep = wanted.contains_key(leader);
            if !keep {
                shared.stop.cancel();
            }
            keep
        });
        for (leader, assigned) in wanted {
            let shared = fetchers.entry(leader).or_insert_with(|| {
                let shared = Arc::new(Shared {
                    assigned: Mutex::new(HashMap::new()),
                    changed: Notify::new(),
                    stop: broker.shutdown.child_token(),
                });
                tokio::spawn(fetch_from(Arc::clone(&broker), leader, Arc::clone(&shared)));
                shared
            });
            *shared.assigned.lock() = assigned;
            shared.changed.notify_one();
        }
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            changed = published.changed() => if changed.is_err() { return },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Truncate,
    Fetch,
}

struct FetchState {
    partition: Arc<Partition>,
    leader_epoch: i32,
    phase: Phase,
    retry_at: Option<Instant>,
}

impl FetchState {
    fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| t <= now)
    }
}

/// One leader's fetcher: truncates, then fetches, until the manager stops it.
async fn fetch_from(broker: Arc<Broker>, leader: i32, shared: Arc<Shared>) {
    let settings = FetchSettings::from_broker(&broker);
    let me = broker.node_id();
    let mut states: HashMap<Key, FetchState> = HashMap::new();
    let mut conn: Option<PeerConnection> = None;
    tracing::info!(leader, "replica fetcher started");
    loop {
        if shared.stop.is_cancelled() {
            break;
        }
        sync_assignment(&shared, &mut states);
        let now = Instant::now();
        let ready = states.values().any(|s| s.ready(now));
        if !ready {
            let wake = states.values().filter_map(|s| s.retry_at).min();
            tokio::select! {
                _ = shared.stop.cancelled() => break,
                _ = shared.changed.notified() => {}
                _ = sleep_until_or_forever(wake) => {}
            }
            continue;
        }
        if conn.is_none() {
            match connect(&broker, leader, &settings).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "cannot reach the leader; backing off");
                    backoff(&shared, settings.backoff_ms).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut all_held = false;
        let result = if states
            .values()
            .any(|s| s.phase == Phase::Truncate && s.ready(now))
        {
            truncate_round(c, leader, me, &mut states).await
        } else {
            fetch_round(&broker, c, leader, me, &settings, &mut states)
                .await
                .map(|held| all_held = held)
        };
        if let Err(e) = result {
            tracing::debug!(leader, error = %e, "fetching from the leader failed; reconnecting");
            conn = None;
            backoff(&shared, settings.backoff_ms).await;
        } else if all_held {
            backoff(&shared, THROTTLED_BACKOFF_MS).await;
        }
    }
    tracing::info!(leader, "replica fetcher stopped");
}

async fn sleep_until_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn backoff(shared: &Shared, ms: u64) {
    tokio::select! {
        _ = shared.stop.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
    }
}

/// New partitions and new leader epochs start with truncation; dropped ones go.
fn sync_assignment(shared: &Shared, states: &mut HashMap<Key, FetchState>) {
    let assigned = shared.assigned.lock().clone();
    states.retain(|k, s| {
        assigned.get(k).is_some_and(|a| {
            Arc::ptr_eq(&a.partition, &s.partition) && a.leader_epoch == s.leader_epoch
        })
    });
    for (k, a) in assigned {
        states.entry(k).or_insert(FetchState {
            partition: a.partition,
            leader_epoch: a.leader_epoch,
            phase: Phase::Truncate,
            retry_at: None,
        });
    }
}

async fn connect(
    broker: &Broker,
    leader: i32,
    settings: &FetchSettings,
) -> Result<PeerConnection, String> {
    let image = broker.metadata.image();
    let endpoint = image
        .brokers
        .get(&leader)
        .and_then(|b| client_endpoint(b, broker.listener_name()))
        .ok_or_else(|| format!("broker {leader} has no registered endpoint"))?;
    PeerConnection::connect(
        &endpoint.host,
        endpoint.port,
        format!("isthmus-replica-fetcher-{}-{leader}", broker.node_id()),
        settings.response_max_bytes as usize + FRAME_SLACK_BYTES,
    )
    .await
}

/// Asks the leader where this replica's latest epoch ends, for every partition waiting
/// to truncate, and truncates each.
async fn truncate_round(
    conn: &mut PeerConnection,
    leader: i32,
    me: i32,
    states: &mut HashMap<Key, FetchState>,
) -> Result<(), String> {
    let now = Instant::now();
    let mut by_topic: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
    let mut asked: HashMap<(String, i32), (Key, i32)> = HashMap::new();
    for (key, s) in states.iter_mut() {
        if s.phase != Phase::Truncate || !s.ready(now) {
            continue;
        }
        let p = &s.partition;
        let Some(epoch) = p.latest_epoch() else {
            // Nothing stamped with an epoch: an empty log (or one from before epochs),
            // which the high watermark bounds.
            let hw = p.high_watermark().max(0);
            if let Err(e) = tokio::task::block_in_place(|| p.truncate_to(hw)) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
                s.retry_at = Some(now + Duration::from_millis(PARTITION_RETRY_MS));
                continue;
            }
            s.phase = Phase::Fetch;
            continue;
        };
        by_topic.entry(p.topic.clone()).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(s.leader_epoch)
                .with_leader_epoch(epoch),
        );
        asked.insert((p.topic.clone(), p.index), (*key, epoch));
    }
    if by_topic.is_empty() {
        return Ok(());
    }
    let request = RequestKind::OffsetForLeaderEpoch(
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(me))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            ),
    );
    let answer = conn
        .call(
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            &request,
            Duration::from_millis(ANSWER_GRACE_MS),
        )
        .await?;
    let ResponseKind::OffsetForLeaderEpoch(answer) = answer else {
        return Err("unexpected answer to OffsetForLeaderEpoch".into());
    };
    for topic in answer.topics {
        for r in topic.partitions {
            let Some((key, _asked_epoch)) = asked.get(&(topic.topic.0.to_string(), r.partition))
            else {
                continue;
            };
            let Some(s) = states.get_mut(key) else {
                continue;
            };
            if r.error_code != 0 {
                tracing::debug!(topic = %s.partition.topic, partition = r.partition, error_code = r.error_code, "OffsetForLeaderEpoch refused; retrying");
                s.retry_at = Some(Instant::now() + Duration::from_millis(PARTITION_RETRY_MS));
                continue;
            }
            truncate_to_leader(s, leader, r.leader_epoch, r.end_offset);
        }
    }
    Ok(())
}

/// Kafka's truncation rule, given the leader's answer (its largest epoch at or below the
/// one asked and where that epoch ends): keep what both logs share. When this replica
/// does not know the leader's epoch, truncate to where its own epoch below that one ends
/// and ask again.
fn truncate_to_leader(s: &mut FetchState, leader: i32, leader_epoch: i32, leader_end: i64) {
    let p = &s.partition;
    if !p.follows(leader, s.leader_epoch) {
        return;
    }
    let end = p.log_end_offset();
    let (offset, done) = if leader_end < 0 {
        // The leader knows no epoch at or below ours: what is committed is all we know.
        (p.high_watermark().max(0).min(end), true)
    } else if leader_epoch < 0 {
        (leader_end.min(end), true)
    } else {
        match p.end_offset_for_epoch(leader_epoch) {
            Ok(Some((ours, our_end))) if ours == leader_epoch => (leader_end.min(our_end), true),
            Ok(Some((_, our_end))) => (our_end.min(end), false),
            Ok(None) => (leader_end.min(end), true),
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "reading the epoch cache failed");
                s.retry_at = Some(Instant::now() + Duration::from_millis(PARTITION_RETRY_MS));
                return;
            }
        }
    };
    if offset < end {
        tracing::info!(topic = %p.topic, partition = p.index, from = end, to = offset, leader_epoch = s.leader_epoch, "truncating a follower's log by leader epoch");
        if let Err(e) = tokio::task::block_in_place(|| p.truncate_to(offset)) {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
            s.retry_at = Some(Instant::now() + Duration::from_millis(PARTITION_RETRY_MS));
            return;
        }
    }
    s.phase = if done { Phase::Fetch } else { Phase::Truncate };
    s.retry_at = None;
}

/// One Fetch for every partition ready to fetch (less those the follower replication
/// quota holds back); appends the answers. Returns whether every partition ready to fetch
/// was held back (and so nothing was sent).
async fn fetch_round(
    broker: &Broker,
    conn: &mut PeerConnection,
    leader: i32,
    me: i32,
    settings: &FetchSettings,
    states: &mut HashMap<Key, FetchState>,
) -> Result<bool, String> {
    let now = Instant::now();
    let image = broker.metadata.image();
    let quota = &broker.replication_quotas.follower;
    // Looked at once per round, and only when a partition could be held back.
    let mut exceeded: Option<bool> = None;
    let mut held = 0usize;
    let mut throttled: HashSet<Key> = HashSet::new();
    let mut by_topic: HashMap<Uuid, Vec<FetchPartition>> = HashMap::new();
    for (key, s) in states.iter() {
        if s.phase != Phase::Fetch || !s.ready(now) {
            continue;
        }
        let p = &s.partition;
        if p.has_failed() {
            // Its log end may hold data that never reached the disk: fetching from there
            // would tell the leader this replica has it. Silent, it drops out of the ISR.
            continue;
        }
        if p.throttled(me).1 {
            let in_sync = image
                .topic(&p.topic)
                .filter(|t| t.id == p.topic_id)
                .and_then(|t| t.partition(p.index))
                .is_some_and(|state| state.isr.contains(&me));
            if !in_sync && *exceeded.get_or_insert_with(|| quota.is_exceeded(now_ms())) {
                held += 1;
                continue;
            }
            throttled.insert(*key);
        }
        by_topic.entry(key.0).or_default().push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(s.leader_epoch)
                .with_fetch_offset(p.log_end_offset())
                .with_last_fetched_epoch(p.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(p.log_start_offset())
                .with_partition_max_bytes(settings.max_bytes),
        );
    }
    if held > 0 {
        broker
            .replication_stats
            .record_throttle_holds(Side::Follower, held as u64);
    }
    if by_topic.is_empty() {
        return Ok(held > 0);
    }
    let request = RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(me))
                    .with_replica_epoch(broker.metadata.broker_epoch()),
            )
            .with_max_wait_ms(settings.wait_max_ms)
            .with_min_bytes(settings.min_bytes)
            .with_max_bytes(settings.response_max_bytes)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic_id, partitions)| {
                        FetchTopic::default()
                            .with_topic_id(topic_id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            ),
    );
    let timeout = Duration::from_millis(settings.wait_max_ms as u64 + ANSWER_GRACE_MS);
    let answer = conn
        .call(ApiKey::Fetch, FETCH_VERSION, &request, timeout)
        .await?;
    let ResponseKind::Fetch(answer) = answer else {
        return Err("unexpected answer to Fetch".into());
    };
    if answer.error_code != 0 {
        return Err(format!(
            "fetch refused with error code {}",
            answer.error_code
        ));
    }
    let mut appended: Vec<(Arc<Partition>, i64)> = Vec::new();
    for topic in answer.responses {
        for data in topic.partitions {
            let Some(s) = states.get_mut(&(topic.topic_id, data.partition_index)) else {
                continue;
            };
            let retry = Instant::now() + Duration::from_millis(PARTITION_RETRY_MS);
            match ResponseError::try_from_code(data.error_code) {
                None => {}
                Some(ResponseError::OffsetOutOfRange) => {
                    out_of_range(s, data.log_start_offset);
                    continue;
                }
                Some(error) => {
                    tracing::debug!(topic = %s.partition.topic, partition = data.partition_index, ?error, "the leader refused a fetch; retrying");
                    s.retry_at = Some(retry);
                    continue;
                }
            }
            if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
                truncate_to_leader(
                    s,
                    leader,
                    data.diverging_epoch.epoch,
                    data.diverging_epoch.end_offset,
                );
                continue;
            }
            let p = &s.partition;
            if !p.follows(leader, s.leader_epoch) {
                // The image moved on; the manager hands this partition over.
                continue;
            }
            if let Some(records) = data.records.as_ref().filter(|r| !r.is_empty()) {
                if throttled.contains(&(topic.topic_id, data.partition_index)) {
                    let bytes = records.len() as u64;
                    quota.record(now_ms(), bytes);
                    broker
                        .replication_stats
                        .record_throttled_bytes(Side::Follower, bytes);
                }
                match p.append_as_follower(records) {
                    Ok(end) => appended.push((Arc::clone(p), end)),
                    Err(e) => {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "follower append failed");
                        s.retry_at = Some(retry);
                        continue;
                    }
                }
            }
            p.set_follower_high_watermark(data.high_watermark);
            follow_log_start(p, data.log_start_offset);
        }
    }
    // Under the fsync policy the next fetch (which tells the leader this replica has the
    // data) goes out only once the data is on disk.
    for (p, end) in appended {
        if p.settings().flush == FlushPolicy::Durable {
            if let Err(e) = p.wait_durable(end).await {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "follower data did not become durable");
            }
        }
    }
    Ok(false)
}

/// OFFSET_OUT_OF_RANGE from the leader: below its log start, start over there; otherwise
/// this replica's end is above the leader's, which truncation by epoch resolves.
fn out_of_range(s: &mut FetchState, leader_log_start: i64) {
    let p = &s.partition;
    let end = p.log_end_offset();
    if leader_log_start >= 0 && end < leader_log_start {
        tracing::info!(topic = %p.topic, partition = p.index, from = end, to = leader_log_start, "follower is below the leader's log start; starting over there");
        if let Err(e) =
            tokio::task::block_in_place(|| p.truncate_fully_and_start_at(leader_log_start))
        {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
            s.retry_at = Some(Instant::now() + Duration::from_millis(PARTITION_RETRY_MS));
        }
    } else {
        s.phase = Phase::Truncate;
    }
}

/// Records the leader deleted (retention, DeleteRecords) go here too, up to this
/// replica's high watermark.
fn follow_log_start(p: &Partition, leader_log_start: i64) {
    let start = p.log_start_offset();
    let to = leader_log_start.min(p.high_watermark());
    if to > start {
        if let Err(e) = p.with_log(|log| Ok(log.delete_records_before(to)?)) {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "following the leader's log start failed");
        }
    }
}
