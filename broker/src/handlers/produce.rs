//! Produce: validate, append in request order, then (for acks=1 and acks=all) answer once
//! the write is durable under the flush policy and below the high watermark.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use isthmus_storage::AppendOutcome;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceResponse, RequestKind, ResponseKind, TopicName};
use uuid::Uuid;

use super::{current_leader, leader_endpoints, mismatched, text};
use crate::broker::{now_ms, Broker};
use crate::dispatch::{Reply, RequestContext};
use crate::error::BrokerError;
use crate::replica::Partition;

/// A partition's answer, or the wait that produces it.
enum Outcome {
    Done(PartitionProduceResponse),
    Wait {
        partition: Arc<Partition>,
        end_offset: i64,
        /// The leader epoch the batch was written in: acks=all fails if it ends first.
        epoch: i32,
        /// acks=all: the ISR size the write needs (`min.insync.replicas`).
        min_isr: usize,
        response: PartitionProduceResponse,
    },
}

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::Produce(req) = body else {
        return mismatched("Produce");
    };
    let by_id = header.request_api_version >= 13;
    let acks = req.acks;
    let now = now_ms();
    let image = broker.metadata.image();
    // Leaders named in NOT_LEADER_OR_FOLLOWER answers, for `node_endpoints` (KIP-951).
    let mut hinted_leaders = Vec::new();
    let mut topics: Vec<(TopicName, Uuid, Vec<Outcome>)> = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = if by_id {
            image.topic_by_id(topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.name.0.to_string())
        };
        let mut outcomes = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let fail = |error: ResponseError, message: String| {
                Outcome::Done(partition_error(index, error, Some(message)))
            };
            if !matches!(acks, -1..=1) {
                outcomes.push(fail(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, got {acks}"),
                ));
                continue;
            }
            if req.transactional_id.is_some() {
                outcomes.push(fail(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "transactions are not implemented yet".into(),
                ));
                continue;
            }
            if name
                .as_deref()
                .is_some_and(|n| super::metadata::INTERNAL_TOPICS.contains(&n))
            {
                outcomes.push(fail(
                    ResponseError::InvalidTopicException,
                    "clients cannot write to internal topics".into(),
                ));
                continue;
            }
            let Some(name) = name.as_deref() else {
                outcomes.push(fail(
                    ResponseError::UnknownTopicId,
                    "this partition does not exist".into(),
                ));
                continue;
            };
            let partition = match broker.replicas.leader_partition(&image, name, index) {
                Ok(p) => p,
                Err(ResponseError::NotLeaderOrFollower) => {
                    let (leader, epoch) = current_leader(&image, name, index);
                    hinted_leaders.push(leader);
                    let mut response = partition_error(
                        index,
                        ResponseError::NotLeaderOrFollower,
                        Some(match leader {
                            -1 => "this partition has no leader right now".to_string(),
                            id if id == broker.node_id() => {
                                "this broker is becoming the leader; retry".to_string()
                            }
                            id => format!("broker {id} leads this partition, not this one"),
                        }),
                    );
                    response.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(epoch);
                    outcomes.push(Outcome::Done(response));
                    continue;
                }
                Err(error) => {
                    outcomes.push(fail(error, "this partition does not exist".into()));
                    continue;
                }
            };
            let Some(records) = data.records.filter(|r| !r.is_empty()) else {
                outcomes.push(fail(
                    ResponseError::InvalidRecord,
                    "a produce request needs at least one record batch".into(),
                ));
                continue;
            };
            let min_isr = partition.settings().min_insync_replicas.max(1) as usize;
            let epoch = partition.leader_epoch();
            let isr = partition.isr_size();
            if acks == -1 && isr < min_isr {
                // Refused before writing, as Kafka does: nothing to truncate later.
                outcomes.push(fail(
                    ResponseError::NotEnoughReplicas,
                    format!("{isr} in-sync replica(s), min.insync.replicas is {min_isr}"),
                ));
                continue;
            }
            // Storage rewrites copies of the batch headers; the request's bytes are written as
            // they are.
            outcomes.push(match partition.append(&records, now) {
                Ok(AppendOutcome::Appended {
                    base_offset,
                    last_offset,
                    log_append_time_ms,
                    log_start_offset,
                }) => Outcome::Wait {
                    partition,
                    end_offset: last_offset + 1,
                    epoch,
                    min_isr,
                    response: PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(log_append_time_ms)
                        .with_log_start_offset(log_start_offset),
                },
                Ok(AppendOutcome::Duplicate {
                    base_offset,
                    last_offset,
                }) => Outcome::Wait {
                    response: PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(partition.log_start_offset()),
                    partition,
                    end_offset: last_offset + 1,
                    epoch,
                    min_isr,
                },
                Err(e) => Outcome::Done(append_error(index, &e)),
            });
        }
        topics.push((topic.name, topic.topic_id, outcomes));
    }
    if acks == 0 {
        // No response goes back, so, as Kafka does, a failure closes the connection: the
        // client notices and refreshes its metadata instead of writing into the void.
        let failed = topics.iter().flat_map(|(_, _, o)| o).find_map(|o| match o {
            Outcome::Done(r) if r.error_code != 0 => Some(r.error_code),
            _ => None,
        });
        return match failed {
            Some(code) => Reply::Close(format!("acks=0 produce failed with error code {code}")),
            None => Reply::Nothing,
        };
    }
    let endpoints: Vec<NodeEndpoint> = leader_endpoints(broker, &image, hinted_leaders)
        .into_iter()
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(text(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(text))
        })
        .collect();
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let needs_wait = topics
        .iter()
        .any(|(_, _, o)| o.iter().any(|o| matches!(o, Outcome::Wait { .. })));
    if !needs_wait {
        return Reply::Now(ResponseKind::Produce(build(
            topics
                .into_iter()
                .map(|(n, id, o)| (n, id, o.into_iter().map(done).collect())),
            endpoints,
        )));
    }
    // One deadline for the whole request, not one per partition.
    let deadline = tokio::time::Instant::now() + timeout;
    Reply::Later(
        async move {
            let mut answered = Vec::with_capacity(topics.len());
            for (name, id, outcomes) in topics {
                let mut partitions = Vec::with_capacity(outcomes.len());
                for outcome in outcomes {
                    partitions.push(match outcome {
                        Outcome::Done(r) => r,
                        Outcome::Wait {
                            partition,
                            end_offset,
                            epoch,
                            min_isr,
                            response,
                        } => {
                            let wait = async {
                                if acks == -1 {
                                    partition.wait_acks_all(end_offset, epoch, min_isr).await
                                } else {
                                    partition.wait_durable(end_offset).await
                                }
                            };
                            match tokio::time::timeout_at(deadline, wait).await {
                                Ok(Ok(())) => response,
                                Ok(Err(e)) => partition_error(
                                    response.index,
                                    e.response_error(),
                                    Some(e.to_string()),
                                ),
                                Err(_) => partition_error(
                                    response.index,
                                    ResponseError::RequestTimedOut,
                                    Some(format!(
                                        "not replicated (acks=all) or durable (acks=1) within the request timeout of {} ms",
                                        timeout.as_millis()
                                    )),
                                ),
                            }
                        }
                    });
                }
                answered.push((name, id, partitions));
            }
            ResponseKind::Produce(build(answered.into_iter(), endpoints))
        }
        .boxed(),
    )
}

fn done(outcome: Outcome) -> PartitionProduceResponse {
    match outcome {
        Outcome::Done(r) | Outcome::Wait { response: r, .. } => r,
    }
}

fn build(
    topics: impl Iterator<Item = (TopicName, Uuid, Vec<PartitionProduceResponse>)>,
    node_endpoints: Vec<NodeEndpoint>,
) -> ProduceResponse {
    ProduceResponse::default()
        .with_node_endpoints(node_endpoints)
        .with_responses(
            topics
                .map(|(name, id, partitions)| {
                    TopicProduceResponse::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_partition_responses(partitions)
                })
                .collect(),
        )
}

fn partition_error(
    index: i32,
    error: ResponseError,
    message: Option<String>,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(text))
}

fn append_error(index: i32, e: &BrokerError) -> PartitionProduceResponse {
    let error = e.response_error();
    let mut response = partition_error(index, error, Some(e.to_string()));
    if error == ResponseError::InvalidRecord {
        // Kafka names the offending batch so clients can report which records were refused.
        response.record_errors = vec![BatchIndexAndErrorMessage::default()
            .with_batch_index(0)
            .with_batch_index_error_message(Some(text(e.to_string())))];
    }
    response
}
