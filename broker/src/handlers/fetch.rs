//! Fetch: whole batches below the high watermark, handed out as zero-copy slices of the
//! segment files; long-polls until `min_bytes` are available or `max_wait_ms` passes, woken
//! by high-watermark changes rather than by polling. Only the partition's leader serves;
//! elsewhere the answer is NOT_LEADER_OR_FOLLOWER with the current leader (KIP-951).
//!
//! A follower's fetch (replica id set) reads up to the log end instead, and its fetch
//! offset is its log end: the leader records it (high watermark, ISR) unless the follower's
//! log diverged from this one, which the answer's `diverging_epoch` tells it (the follower
//! sends the epoch of its last batch, `last_fetched_epoch`). Its long poll also ends when
//! the high watermark moves, so followers learn it promptly.
//!
//! Replication throttles (KIP-73): a partition the topic's
//! `leader.replication.throttled.replicas` names for this broker is answered without
//! records to a follower outside the ISR while `leader.replication.throttled.rate` is
//! exceeded; the bytes of throttled partitions that do go to followers count against it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchResponse, RequestKind, ResponseKind, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::{check_leader_epoch, current_leader, leader_endpoints, mismatched, text};
use crate::broker::Broker;
use crate::config::defs::RACK_AWARE_REPLICA_SELECTOR;
use crate::dispatch::{Reply, RequestContext};
use crate::metadata::Image;
use crate::replica::partition::Role;
use crate::replica::Partition;

/// Upper bound on a long poll, whatever the client asks: keeps a bad `max_wait_ms` from
/// parking a connection for hours.
const MAX_FETCH_WAIT_MS: u64 = 60_000;
/// How long a waiting follower fetch stays open after the high watermark moved, for data
/// to come with it. Followers learn the high watermark promptly (consumers reading from
/// them see new records), yet under load, when data follows within this, one answer
/// carries both instead of an empty answer and a second round.
const FOLLOWER_HW_LINGER: Duration = Duration::from_millis(10);

/// `isolation_level` 1 = read_committed.
const READ_COMMITTED: i8 = 1;

/// Fetch v15 moved the replica id into `replica_state`.
const REPLICA_STATE_VERSION: i16 = 15;

/// Fetch v11 added client metadata (`rack_id`): consumers may read from followers.
const FOLLOWER_READ_VERSION: i16 = 11;

struct Wanted {
    index: i32,
    partition: Result<Arc<Partition>, ResponseError>,
    fetch_offset: i64,
    partition_max_bytes: usize,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    /// The leader as the image has it, (id, epoch), for answers that send the client
    /// elsewhere (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH).
    leader: (i32, i32),
    /// Follower fetches: where its log diverged from this one, found on arrival.
    diverging: Option<(i32, i64)>,
    /// Follower fetches: refused on arrival (epoch, range).
    refused: Option<ResponseError>,
    /// Consumer fetches at the leader: the replica in the consumer's rack to read from
    /// instead (KIP-392), answered without records.
    preferred: Option<i32>,
    /// Follower fetches: the leader's replication quota applies to this partition here
    /// (its bytes are recorded against it).
    throttled: bool,
    /// Follower fetches: throttled and the follower is not in the ISR, so it is answered
    /// without records while the quota is exceeded.
    holdable: bool,
}

/// Who fetches: a consumer (replica id < 0) or a follower replica (broker id and epoch).
#[derive(Clone, Copy)]
enum Fetcher {
    Consumer,
    Follower { id: i32, broker_epoch: i64 },
}

/// The local partition a fetch reads, or why not. Followers fetch from the leader; so do
/// consumers, except that from Fetch v11 on (client metadata, KIP-392) a follower replica
/// here serves a consumer too, below its own high watermark, as Kafka's followers do.
fn resolve(
    broker: &Broker,
    image: &Image,
    fetcher: Fetcher,
    topic: &str,
    index: i32,
    version: i16,
) -> Result<Arc<Partition>, ResponseError> {
    let led = broker.replicas.leader_partition(image, topic, index);
    let partition = match (led, fetcher) {
        (Ok(p), _) => p,
        (Err(ResponseError::NotLeaderOrFollower), Fetcher::Consumer)
            if version >= FOLLOWER_READ_VERSION =>
        {
            broker
                .replicas
                .partition(topic, index)
                .filter(|p| matches!(p.role(), Role::Follower { .. }))
                .ok_or(ResponseError::NotLeaderOrFollower)?
        }
        (Err(e), _) => return Err(e),
    };
    match fetcher {
        Fetcher::Consumer => Ok(partition),
        // A follower must be an assigned replica (Kafka refuses others the same way).
        Fetcher::Follower { id, .. } => {
            let assigned = image
                .topic(topic)
                .and_then(|t| t.partition(index))
                .is_some_and(|p| p.replicas.contains(&id));
            if assigned {
                Ok(partition)
            } else {
                Err(ResponseError::NotLeaderOrFollower)
            }
        }
    }
}

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::Fetch(req) = body else {
        return mismatched("Fetch");
    };
    let by_id = header.request_api_version >= 13;
    let (replica_id, replica_epoch) = if header.request_api_version >= REPLICA_STATE_VERSION {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    let fetcher = if replica_id >= 0 {
        Fetcher::Follower {
            id: replica_id,
            broker_epoch: replica_epoch,
        }
    } else {
        Fetcher::Consumer
    };
    if req.session_id != 0 {
        // This broker never creates fetch sessions (it answers session_id 0, which KIP-227
        // allows), so any session id is unknown.
        let response =
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return Reply::Now(ResponseKind::Fetch(response));
    }
    let image = broker.metadata.image();
    let mut topics: Vec<(TopicName, Uuid, Vec<Wanted>)> = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = if by_id {
            image.topic_by_id(topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.topic.0.to_string())
        };
        let missing = if by_id && name.is_none() {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let wanted = topic
            .partitions
            .into_iter()
            .map(|p| Wanted {
                index: p.partition,
                partition: match name.as_deref() {
                    Some(n) => resolve(
                        broker,
                        &image,
                        fetcher,
                        n,
                        p.partition,
                        header.request_api_version,
                    ),
                    None => Err(missing),
                },
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                leader: name
                    .as_deref()
                    .map_or((-1, -1), |n| current_leader(&image, n, p.partition)),
                diverging: None,
                refused: None,
                preferred: None,
                throttled: false,
                holdable: false,
            })
            .collect();
        topics.push((topic.topic, topic.topic_id, wanted));
    }
    if fetcher_is_consumer(fetcher) && header.request_api_version >= FOLLOWER_READ_VERSION {
        direct_by_rack(broker, &image, &req.rack_id, &mut topics);
    }
    if let Fetcher::Follower { id, broker_epoch } = fetcher {
        let now = crate::broker::now_ms();
        let mut isr_change_due = false;
        let me = broker.node_id();
        for w in topics.iter_mut().flat_map(|(_, _, w)| w.iter_mut()) {
            match follower_arrived(w, id, broker_epoch, now) {
                Ok(due) => isr_change_due |= due,
                Err(e) => w.refused = Some(e),
            }
            if let Ok(p) = &w.partition {
                w.throttled = p.throttled(me).0;
                w.holdable = w.throttled && !p.is_in_sync(id);
            }
        }
        if isr_change_due {
            broker.isr_wakeup.notify_one();
        }
    }
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = Duration::from_millis((req.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT_MS));
    let read_committed = req.isolation_level == READ_COMMITTED;
    let follower = matches!(fetcher, Fetcher::Follower { .. });
    let broker = Arc::clone(broker);
    Reply::Later(
        async move {
            let deadline = Instant::now() + max_wait;
            let open = || {
                topics
                    .iter()
                    .flat_map(|(_, _, w)| w.iter())
                    .filter_map(|w| w.partition.as_ref().ok())
            };
            // Consumers wait for the high watermark; followers for the log end, and for
            // the high watermark so that they learn it.
            let mut watches: Vec<watch::Receiver<i64>> =
                open().map(|p| p.watch_high_watermark()).collect();
            if follower {
                watches.extend(open().map(|p| p.watch_log_end()));
            }
            let hw_at_start: Vec<i64> = open().map(|p| p.high_watermark()).collect();
            let any_holdable = topics
                .iter()
                .flat_map(|(_, _, w)| w.iter())
                .any(|w| w.holdable);
            let quota = &broker.replication_quotas.leader;
            // When this follower fetch answers for the high watermark alone.
            let mut hw_due: Option<Instant> = None;
            loop {
                for w in &mut watches {
                    w.borrow_and_update();
                }
                let hold = any_holdable && quota.is_exceeded(crate::broker::now_ms());
                let pass = read_all(&topics, max_bytes, read_committed, follower, hold);
                let now = Instant::now();
                if hw_due.is_none()
                    && follower
                    && open()
                        .zip(&hw_at_start)
                        .any(|(p, start)| p.high_watermark() > *start)
                {
                    hw_due = Some(now + FOLLOWER_HW_LINGER);
                }
                if pass.bytes >= min_bytes
                    || pass.any_error
                    || hw_due.is_some_and(|due| now >= due)
                    || now >= deadline
                    || watches.is_empty()
                {
                    if follower {
                        record_throttling(&broker, &pass);
                    }
                    return ResponseKind::Fetch(with_leader_endpoints(
                        &broker,
                        &image,
                        pass.response,
                    ));
                }
                let wake_at = hw_due.map_or(deadline, |due| due.min(deadline));
                let changed =
                    futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep_until(wake_at) => {}
                }
            }
        }
        .boxed(),
    )
}

/// What one pass over the requested partitions found.
struct Pass {
    response: FetchResponse,
    /// Record bytes in the response.
    bytes: usize,
    /// Some partition reported an error (which answers the fetch at once, as Kafka does).
    any_error: bool,
    /// Record bytes of partitions the leader's replication quota applies to.
    throttled_bytes: usize,
    /// Partitions answered without records because that quota was exceeded.
    held: usize,
}

/// One pass over every requested partition. `hold`: the leader's replication quota is
/// exceeded, so throttled partitions of an out-of-sync follower get no records.
fn read_all(
    topics: &[(TopicName, Uuid, Vec<Wanted>)],
    max_bytes: usize,
    read_committed: bool,
    follower: bool,
    hold: bool,
) -> Pass {
    let mut total = 0usize;
    let mut any_error = false;
    let mut throttled_bytes = 0usize;
    let mut held = 0usize;
    let mut responses = Vec::with_capacity(topics.len());
    for (name, id, wanted) in topics {
        let mut partitions = Vec::with_capacity(wanted.len());
        for w in wanted {
            let held_back = follower && hold && w.holdable;
            let data = match read_one(
                w,
                max_bytes.saturating_sub(total),
                total == 0,
                read_committed,
                follower,
                held_back,
            ) {
                Ok(data) => {
                    held += usize::from(held_back && w.diverging.is_none());
                    let len = data.records.as_ref().map_or(0, Bytes::len);
                    total += len;
                    if w.throttled {
                        throttled_bytes += len;
                    }
                    data
                }
                Err(error) => {
                    any_error = true;
                    // A follower out of range learns the leader's log start and high
                    // watermark from the answer, to start over from them.
                    let (hw, start) = match (&w.partition, follower) {
                        (Ok(p), true) if error == ResponseError::OffsetOutOfRange => {
                            (p.high_watermark(), p.log_start_offset())
                        }
                        _ => (-1, -1),
                    };
                    let data = PartitionData::default()
                        .with_partition_index(w.index)
                        .with_error_code(error.code())
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(start)
                        .with_records(Some(Bytes::new()));
                    if sends_elsewhere(error.code()) {
                        data.with_current_leader(
                            LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(w.leader.0))
                                .with_leader_epoch(w.leader.1),
                        )
                    } else {
                        data
                    }
                }
            };
            partitions.push(data);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_topic_id(*id)
                .with_partitions(partitions),
        );
    }
    Pass {
        response: FetchResponse::default().with_responses(responses),
        bytes: total,
        any_error,
        throttled_bytes,
        held,
    }
}

/// Counts what a follower's answer carries against the leader's replication quota.
fn record_throttling(broker: &Broker, pass: &Pass) {
    use crate::replica::stats::Side;
    if pass.throttled_bytes > 0 {
        let bytes = pass.throttled_bytes as u64;
        broker
            .replication_quotas
            .leader
            .record(crate::broker::now_ms(), bytes);
        broker
            .replication_stats
            .record_throttled_bytes(Side::Leader, bytes);
    }
    if pass.held > 0 {
        broker
            .replication_stats
            .record_throttle_holds(Side::Leader, pass.held as u64);
    }
}

/// The errors KIP-951 answers with the current leader (and its endpoint).
fn sends_elsewhere(code: i16) -> bool {
    code == ResponseError::NotLeaderOrFollower.code()
        || code == ResponseError::FencedLeaderEpoch.code()
}

/// Adds `node_endpoints` for the leaders the partitions point to (Fetch v16+).
fn with_leader_endpoints(broker: &Broker, image: &Image, response: FetchResponse) -> FetchResponse {
    let leaders = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| sends_elsewhere(p.error_code))
        .map(|p| p.current_leader.leader_id.0);
    let endpoints = leader_endpoints(broker, image, leaders)
        .into_iter()
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(text(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(text))
        })
        .collect();
    response.with_node_endpoints(endpoints)
}

fn fetcher_is_consumer(fetcher: Fetcher) -> bool {
    matches!(fetcher, Fetcher::Consumer)
}

/// KIP-392 on arrival of a consumer fetch with `client.rack`: at a leader with the
/// rack-aware selector, partitions with an in-sync replica in the consumer's rack (and the
/// leader elsewhere) are answered with that replica; at a follower, the read is counted.
fn direct_by_rack(
    broker: &Broker,
    image: &Image,
    client_rack: &str,
    topics: &mut [(TopicName, Uuid, Vec<Wanted>)],
) {
    let rack_aware =
        broker.node.settings.get("replica.selector.class") == Some(RACK_AWARE_REPLICA_SELECTOR);
    for w in topics.iter_mut().flat_map(|(_, _, w)| w.iter_mut()) {
        let Ok(p) = &w.partition else { continue };
        match p.role() {
            Role::Follower { .. } => {
                broker.replication_stats.record_follower_read();
                p.note_follower_read(client_rack);
            }
            Role::Leader(_) if rack_aware && !client_rack.is_empty() => {
                if broker.rack() == Some(client_rack) {
                    continue;
                }
                let rack_of = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
                w.preferred = p.preferred_read_replica(w.fetch_offset, |id| {
                    rack_of(id) == Some(client_rack)
                        && image.brokers.get(&id).is_some_and(|b| b.is_active())
                });
            }
            _ => {}
        }
    }
}

/// A follower's fetch on arrival: its epoch checked, then either where its log diverged
/// or its fetch offset recorded as its log end. Returns whether an ISR change is due.
fn follower_arrived(
    w: &mut Wanted,
    follower: i32,
    broker_epoch: i64,
    now_ms: i64,
) -> Result<bool, ResponseError> {
    let partition = w.partition.as_ref().map_err(|e| *e)?;
    check_leader_epoch(w.current_leader_epoch, partition.leader_epoch())?;
    if w.last_fetched_epoch >= 0 {
        let ends = partition
            .end_offset_for_epoch(w.last_fetched_epoch)
            .map_err(|e| e.response_error())?;
        let diverged = match ends {
            Some((epoch, end)) => epoch != w.last_fetched_epoch || end < w.fetch_offset,
            None => true,
        };
        if diverged {
            w.diverging = Some(ends.unwrap_or((-1, -1)));
            return Ok(false);
        }
    }
    let end = partition.log_end_offset();
    if w.fetch_offset > end || w.fetch_offset < partition.log_start_offset() {
        return Err(ResponseError::OffsetOutOfRange);
    }
    partition.record_follower_fetch(follower, w.fetch_offset, broker_epoch, now_ms)
}

fn read_one(
    w: &Wanted,
    budget: usize,
    first: bool,
    read_committed: bool,
    follower: bool,
    held_back: bool,
) -> Result<PartitionData, ResponseError> {
    let partition = w.partition.as_ref().map_err(|e| *e)?;
    if let Some(refused) = w.refused {
        return Err(refused);
    }
    check_leader_epoch(w.current_leader_epoch, partition.leader_epoch())?;
    if let Some(replica) = w.preferred {
        // No records: the consumer fetches from `replica` next.
        return Ok(PartitionData::default()
            .with_partition_index(w.index)
            .with_high_watermark(partition.high_watermark())
            .with_last_stable_offset(partition.high_watermark())
            .with_log_start_offset(partition.log_start_offset())
            .with_preferred_read_replica(BrokerId(replica))
            .with_records(Some(Bytes::new())));
    }
    if let Some((epoch, end_offset)) = w.diverging {
        // No records: the follower truncates to `end_offset` first.
        return Ok(PartitionData::default()
            .with_partition_index(w.index)
            .with_high_watermark(partition.high_watermark())
            .with_last_stable_offset(partition.high_watermark())
            .with_log_start_offset(partition.log_start_offset())
            .with_diverging_epoch(
                EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset),
            )
            .with_records(Some(Bytes::new())));
    }
    if held_back {
        // Throttled (KIP-73): no records this time, the rest as usual.
        return Ok(PartitionData::default()
            .with_partition_index(w.index)
            .with_high_watermark(partition.high_watermark())
            .with_last_stable_offset(partition.high_watermark())
            .with_log_start_offset(partition.log_start_offset())
            .with_records(Some(Bytes::new())));
    }
    let limit = w.partition_max_bytes.min(budget);
    // KIP-74: the first partition with data returns at least one whole batch even when it is
    // larger than the limits, so a consumer can never get stuck behind a big batch.
    let result = if follower {
        partition.read_for_follower(w.fetch_offset, limit, first)
    } else {
        partition.read(w.fetch_offset, limit, first)
    }
    .map_err(|e| e.response_error())?;
    let hw = partition.high_watermark();
    Ok(PartitionData::default()
        .with_partition_index(w.index)
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(result.log_start_offset)
        .with_aborted_transactions(if read_committed {
            Some(Vec::new())
        } else {
            None
        })
        .with_records(Some(result.records)))
}
