//! ConsumerGroupDescribe (KIP-848): state, epochs, assignor and every member's current and
//! target assignment of consumer-protocol groups; classic or unknown groups answer
//! GROUP_ID_NOT_FOUND as in Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeResponse, RequestKind, ResponseKind, TopicName,
};

use super::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::assignor;
use crate::metadata::store::Image;

/// MemberType in v1: this member uses the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::ConsumerGroupDescribe(req) = body else {
        return mismatched("ConsumerGroupDescribe");
    };
    let image = broker.metadata.image();
    let groups = broker.groups.with_groups(|groups| {
        req.group_ids
            .iter()
            .map(|id| {
                let base = DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
                if id.0.is_empty() {
                    return base
                        .with_error_code(ResponseError::InvalidGroupId.code())
                        .with_error_message(Some(text("GroupId can't be empty.")));
                }
                if let Err(e) = broker.groups.check_coordinator(&id.0) {
                    return base.with_error_code(e.code());
                }
                let Some(g) = groups.get(id.0.as_str()) else {
                    return not_found(base, format!("Group {} not found.", id.0));
                };
                let Some(c) = &g.consumer else {
                    return not_found(base, format!("Group {} is not a consumer group.", id.0));
                };
                base.with_group_state(text(c.state_name()))
                    .with_group_epoch(c.epoch)
                    .with_assignment_epoch(c.assignment_epoch)
                    .with_assignor_name(text(
                        c.assignor
                            .or(broker.groups.config.consumer.assignors.first().copied())
                            .map_or("uniform", |a| a.name()),
                    ))
                    .with_members(
                        c.members
                            .values()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(text(m.id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(text))
                                    .with_rack_id(m.rack_id.clone().map(text))
                                    .with_member_epoch(m.epoch)
                                    .with_client_id(text(m.client_id.clone()))
                                    .with_client_host(text(m.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.subscribed_names
                                            .iter()
                                            .map(|n| TopicName(text(n.clone())))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(
                                        m.subscribed_regex.as_ref().map(|(p, _)| text(p.clone())),
                                    )
                                    .with_assignment(described(&m.assigned, &image))
                                    .with_target_assignment(described(
                                        c.target.get(&m.id).unwrap_or(&assignor::Assignment::new()),
                                        &image,
                                    ))
                                    .with_member_type(MEMBER_TYPE_CONSUMER)
                            })
                            .collect(),
                    )
            })
            .collect()
    });
    Reply::Now(ResponseKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeResponse::default().with_groups(groups),
    ))
}

fn not_found(base: DescribedGroup, message: String) -> DescribedGroup {
    base.with_error_code(ResponseError::GroupIdNotFound.code())
        .with_error_message(Some(text(message)))
}

fn described(a: &assignor::Assignment, image: &Image) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                let name = image
                    .topic_by_id(*id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(text(name)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}
