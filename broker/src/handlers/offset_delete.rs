//! OffsetDelete: removes committed offsets of a group, refusing partitions of topics the
//! group's live members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC), as Kafka does.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::Decodable;

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::records::offset_key;

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::OffsetDelete(req) = body else {
        return mismatched("OffsetDelete");
    };
    let group = req.group_id.0.to_string();
    if let Err(e) = broker.groups.check_coordinator(&group) {
        let r = OffsetDeleteResponse::default().with_error_code(e.code());
        return Reply::Now(ResponseKind::OffsetDelete(r));
    }
    let image = broker.metadata.image();
    // Topics live members subscribe to, from their consumer-protocol metadata.
    let subscribed: Option<HashSet<String>> = broker.groups.with_groups(|groups| {
        let g = groups.get(&group)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        let mut topics = HashSet::new();
        if let Some(consumer) = &g.consumer {
            for m in consumer.members.values() {
                topics.extend(m.subscribed_names.iter().cloned());
                if let Some((_, regex)) = &m.subscribed_regex {
                    topics.extend(image.topics.keys().filter(|t| regex.is_match(t)).cloned());
                }
            }
        }
        if g.protocol_type.as_deref() == Some("consumer") {
            for m in g.members.values() {
                let mut metadata = m.metadata_for(&protocol);
                if metadata.len() < 2 {
                    continue;
                }
                let version = i16::from_be_bytes([metadata[0], metadata[1]]);
                let _ = bytes::Buf::get_i16(&mut metadata);
                if let Ok(sub) =
                    ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3))
                {
                    topics.extend(sub.topics.iter().map(|t| t.to_string()));
                }
            }
        }
        Some(topics)
    });
    let Some(subscribed) = subscribed else {
        let r =
            OffsetDeleteResponse::default().with_error_code(ResponseError::GroupIdNotFound.code());
        return Reply::Now(ResponseKind::OffsetDelete(r));
    };
    let mut tombstones = Vec::new();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if subscribed.contains(&name) {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else if image
                        .topic(&name)
                        .and_then(|t| t.partition(p.partition_index))
                        .is_none()
                    {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        tombstones.push((name.clone(), p.partition_index));
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    if !tombstones.is_empty() {
        let records = tombstones
            .iter()
            .map(|(t, p)| (offset_key(&group, t, *p), None))
            .collect();
        if let Err(e) = crate::group::log::append(broker, &group, records) {
            let r = OffsetDeleteResponse::default().with_error_code(e.response_error().code());
            return Reply::Now(ResponseKind::OffsetDelete(r));
        }
        broker.groups.with_groups(|groups| {
            if let Some(g) = groups.get_mut(&group) {
                for key in &tombstones {
                    g.offsets.remove(key);
                }
            }
        });
    }
    Reply::Now(ResponseKind::OffsetDelete(
        OffsetDeleteResponse::default().with_topics(topics),
    ))
}
