//! OffsetFetch: committed offsets of one group (v1-v7) or several (v8+); -1 where nothing
//! was committed; all of a group's offsets when no topics are named.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchResponse, RequestKind, ResponseKind, TopicName,
};
use uuid::Uuid;

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::records::CommittedOffset;

/// (topic name, topic id, partition, committed offset if any) for one group.
type Found = Vec<(String, Uuid, Vec<(i32, Option<CommittedOffset>)>)>;

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::OffsetFetch(req) = body else {
        return mismatched("OffsetFetch");
    };
    let version = header.request_api_version;
    if version >= 8 {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                // v9+: a consumer-protocol member fetches with its current epoch.
                let checked = broker
                    .groups
                    .check_coordinator(&g.group_id.0)
                    .and_then(|()| {
                        broker.groups.validate_fetch(
                            &g.group_id.0,
                            g.member_id.as_deref(),
                            g.member_epoch,
                        )
                    });
                if let Err(e) = checked {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(e.code());
                }
                let wanted: Option<Vec<(String, Uuid, Vec<i32>)>> =
                    g.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|t| {
                                let name = if version >= 10 {
                                    broker
                                        .metadata
                                        .image()
                                        .topic_by_id(t.topic_id)
                                        .map(|r| r.name.clone())
                                        .unwrap_or_default()
                                } else {
                                    t.name.0.to_string()
                                };
                                (name, t.topic_id, t.partition_indexes.clone())
                            })
                            .collect()
                    });
                let found = lookup(broker, &g.group_id.0, wanted);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(
                        found
                            .into_iter()
                            .map(|(name, id, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(text(name)))
                                    .with_topic_id(id)
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(index, c)| {
                                                let (offset, epoch, metadata) = fields(c);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(index)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(text(metadata)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return Reply::Now(ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_groups(groups),
        ));
    }
    // The empty group id is a valid group here, as in Kafka (old clients commit under it).
    let group: &GroupId = &req.group_id;
    if let Err(e) = broker.groups.check_coordinator(&group.0) {
        // v2+ has a group-level error; v1 only per-partition ones.
        let response = if version >= 2 {
            OffsetFetchResponse::default().with_error_code(e.code())
        } else {
            let topics = req
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(-1)
                                        .with_committed_leader_epoch(-1)
                                        .with_metadata(Some(text("")))
                                        .with_error_code(e.code())
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        };
        return Reply::Now(ResponseKind::OffsetFetch(response));
    }
    let wanted = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| {
                (
                    t.name.0.to_string(),
                    Uuid::nil(),
                    t.partition_indexes.clone(),
                )
            })
            .collect()
    });
    let topics = lookup(broker, &group.0, wanted)
        .into_iter()
        .map(|(name, _, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(text(name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, c)| {
                            let (offset, epoch, metadata) = fields(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(text(metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    Reply::Now(ResponseKind::OffsetFetch(
        OffsetFetchResponse::default().with_topics(topics),
    ))
}

fn fields(c: Option<CommittedOffset>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

fn lookup(broker: &Broker, group: &str, wanted: Option<Vec<(String, Uuid, Vec<i32>)>>) -> Found {
    let committed: HashMap<(String, i32), CommittedOffset> =
        broker.groups.committed(group).unwrap_or_default();
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(name, id, partitions)| {
                let values = partitions
                    .into_iter()
                    .map(|p| (p, committed.get(&(name.clone(), p)).cloned()))
                    .collect();
                (name, id, values)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                BTreeMap::new();
            for ((topic, partition), value) in committed {
                by_topic
                    .entry(topic)
                    .or_default()
                    .push((partition, Some(value)));
            }
            let image = broker.metadata.image();
            by_topic
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|(p, _)| *p);
                    let id = image.topic(&name).map(|t| t.id).unwrap_or_default();
                    (name, id, partitions)
                })
                .collect()
        }
    }
}
