//! OffsetCommit: validated against the group (generation, member, rebalance), written to
//! `__consumer_offsets`, and answered only once the write is durable, then applied.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitResponse, RequestKind, ResponseKind, TopicName};

use super::mismatched;
use crate::broker::{now_ms, Broker};
use crate::dispatch::{Reply, RequestContext};
use crate::group::records::{offset_key, offset_value, CommittedOffset};

/// Kafka's offsets.commit.timeout.ms default.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::OffsetCommit(req) = body else {
        return mismatched("OffsetCommit");
    };
    let version = header.request_api_version;
    let by_id = version >= 10;
    let group_id = req.group_id.0.to_string();
    let generation = req.generation_id_or_member_epoch;
    // Kafka accepts the empty group id here (old clients commit under it), unlike the
    // membership APIs.
    let verdict = crate::group::log::ensure_topic(broker)
        .map_err(|_| ResponseError::CoordinatorNotAvailable)
        .and_then(|()| broker.groups.check_coordinator(&group_id))
        .and_then(|()| {
            let exists = broker
                .groups
                .with_groups(|groups| groups.contains_key(&group_id));
            if !exists && generation >= 0 {
                // A member of a group the coordinator does not know: Kafka 4 answers
                // GROUP_ID_NOT_FOUND from v9 and ILLEGAL_GENERATION before.
                return Err(if version >= 9 {
                    ResponseError::GroupIdNotFound
                } else {
                    ResponseError::IllegalGeneration
                });
            }
            broker.groups.validate_commit(
                &group_id,
                generation,
                &req.member_id,
                req.group_instance_id.as_deref(),
            )
        });
    let image = broker.metadata.image();
    let now = now_ms();
    let max_metadata = broker.groups.config.metadata_max_bytes;
    // (topic as answered, resolved name, partition, Ok(value) or error)
    let mut results: TopicResults = Vec::new();
    let mut to_write = Vec::new();
    for topic in &req.topics {
        let name = if by_id {
            image.topic_by_id(topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.name.0.to_string())
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            // As Kafka: unknown topics and partitions first, whatever the group says.
            let outcome = (|| {
                let name = name.as_deref().ok_or(if by_id {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                })?;
                // The cluster's partitions, not this broker's: it need not host them.
                image
                    .topic(name)
                    .and_then(|t| t.partition(p.partition_index))
                    .ok_or(ResponseError::UnknownTopicOrPartition)?;
                verdict?;
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                if metadata.len() > max_metadata {
                    return Err(ResponseError::OffsetMetadataTooLarge);
                }
                let value = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                };
                to_write.push(((name.to_string(), p.partition_index), value.clone()));
                Ok(value)
            })();
            partitions.push((p.partition_index, outcome));
        }
        results.push((topic.name.clone(), topic.topic_id, partitions));
    }
    if to_write.is_empty() {
        return Reply::Now(respond(results, None));
    }
    let records = to_write
        .iter()
        .map(|((t, p), v)| (offset_key(&group_id, t, *p), Some(offset_value(v))))
        .collect();
    let appended = crate::group::log::append(broker, &group_id, records);
    let broker = Arc::clone(broker);
    Reply::Later(
        async move {
            let failure = match appended {
                Err(e) => Some(e.response_error()),
                Ok((partition, end)) => {
                    match tokio::time::timeout(COMMIT_TIMEOUT, partition.wait_high_watermark(end))
                        .await
                    {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.response_error()),
                        Err(_) => Some(ResponseError::RequestTimedOut),
                    }
                }
            };
            if failure.is_none() {
                broker.groups.apply_commit(&group_id, to_write);
            }
            respond(results, failure)
        }
        .boxed(),
    )
}

type TopicResults = Vec<(
    TopicName,
    uuid::Uuid,
    Vec<(i32, Result<CommittedOffset, ResponseError>)>,
)>;

fn respond(results: TopicResults, write_failure: Option<ResponseError>) -> ResponseKind {
    let topics = results
        .into_iter()
        .map(|(name, id, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_topic_id(id)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, outcome)| {
                            let code = match outcome {
                                Ok(_) => write_failure.map_or(0, |e| e.code()),
                                Err(e) => e.code(),
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
}
