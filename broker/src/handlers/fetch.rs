//! Fetch: whole batches below the high watermark, handed out as zero-copy slices of the
//! segment files; long-polls until `min_bytes` are available or `max_wait_ms` passes, woken
//! by high-watermark changes rather than by polling. Only the partition's leader serves;
//! elsewhere the answer is NOT_LEADER_OR_FOLLOWER with the current leader (KIP-951).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchResponse, RequestKind, ResponseKind, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::{check_leader_epoch, current_leader, leader_endpoints, mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::metadata::Image;
use crate::replica::Partition;

/// Upper bound on a long poll, whatever the client asks: keeps a bad `max_wait_ms` from
/// parking a connection for hours.
const MAX_FETCH_WAIT_MS: u64 = 60_000;

/// `isolation_level` 1 = read_committed.
const READ_COMMITTED: i8 = 1;

/// Fetch v15 moved the replica id into `replica_state`.
const REPLICA_STATE_VERSION: i16 = 15;

struct Wanted {
    index: i32,
    partition: Result<Arc<Partition>, ResponseError>,
    fetch_offset: i64,
    partition_max_bytes: usize,
    current_leader_epoch: i32,
    /// The leader as the image has it, (id, epoch), for answers that send the client
    /// elsewhere (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH).
    leader: (i32, i32),
}

/// Who fetches: a consumer (replica id < 0) or a follower replica (its broker id).
#[derive(Clone, Copy)]
enum Fetcher {
    Consumer,
    Follower(i32),
}

/// The local partition a fetch reads, or why not. Consumers and followers alike fetch
/// from the leader only.
fn resolve(
    broker: &Broker,
    image: &Image,
    fetcher: Fetcher,
    topic: &str,
    index: i32,
) -> Result<Arc<Partition>, ResponseError> {
    let partition = broker.replicas.leader_partition(image, topic, index)?;
    match fetcher {
        Fetcher::Consumer => Ok(partition),
        // The seam for replication: a follower must be an assigned replica (Kafka refuses
        // others the same way). Reading up to the log end instead of the high watermark
        // and recording the follower's position (high watermark, ISR) come with the
        // replica fetchers; until then a follower reads what a consumer reads.
        Fetcher::Follower(id) => {
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
    let replica_id = if header.request_api_version >= REPLICA_STATE_VERSION {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let fetcher = if replica_id >= 0 {
        Fetcher::Follower(replica_id)
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
                    Some(n) => resolve(broker, &image, fetcher, n, p.partition),
                    None => Err(missing),
                },
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                leader: name
                    .as_deref()
                    .map_or((-1, -1), |n| current_leader(&image, n, p.partition)),
            })
            .collect();
        topics.push((topic.topic, topic.topic_id, wanted));
    }
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = Duration::from_millis((req.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT_MS));
    let read_committed = req.isolation_level == READ_COMMITTED;
    let broker = Arc::clone(broker);
    Reply::Later(
        async move {
            let deadline = Instant::now() + max_wait;
            let mut watches: Vec<watch::Receiver<i64>> = topics
                .iter()
                .flat_map(|(_, _, w)| w.iter())
                .filter_map(|w| w.partition.as_ref().ok().map(|p| p.watch_high_watermark()))
                .collect();
            loop {
                for w in &mut watches {
                    w.borrow_and_update();
                }
                let (response, bytes, any_error) = read_all(&topics, max_bytes, read_committed);
                if bytes >= min_bytes
                    || any_error
                    || Instant::now() >= deadline
                    || watches.is_empty()
                {
                    return ResponseKind::Fetch(with_leader_endpoints(&broker, &image, response));
                }
                let changed =
                    futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
        }
        .boxed(),
    )
}

/// One pass over every requested partition. Returns the response, the record bytes in it and
/// whether any partition reported an error (which answers the fetch at once, as Kafka does).
fn read_all(
    topics: &[(TopicName, Uuid, Vec<Wanted>)],
    max_bytes: usize,
    read_committed: bool,
) -> (FetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut responses = Vec::with_capacity(topics.len());
    for (name, id, wanted) in topics {
        let mut partitions = Vec::with_capacity(wanted.len());
        for w in wanted {
            let data = match read_one(
                w,
                max_bytes.saturating_sub(total),
                total == 0,
                read_committed,
            ) {
                Ok(data) => {
                    total += data.records.as_ref().map_or(0, Bytes::len);
                    data
                }
                Err(error) => {
                    any_error = true;
                    let data = PartitionData::default()
                        .with_partition_index(w.index)
                        .with_error_code(error.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
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
    (
        FetchResponse::default().with_responses(responses),
        total,
        any_error,
    )
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

fn read_one(
    w: &Wanted,
    budget: usize,
    first: bool,
    read_committed: bool,
) -> Result<PartitionData, ResponseError> {
    let partition = w.partition.as_ref().map_err(|e| *e)?;
    check_leader_epoch(w.current_leader_epoch, partition.leader_epoch())?;
    let limit = w.partition_max_bytes.min(budget);
    // KIP-74: the first partition with data returns at least one whole batch even when it is
    // larger than the limits, so a consumer can never get stuck behind a big batch.
    let result = partition
        .read(w.fetch_offset, limit, first)
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
