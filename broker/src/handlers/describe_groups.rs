//! DescribeGroups: state, protocol and members (metadata and assignment) of each group.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsResponse, RequestKind, ResponseKind};

use super::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DescribeGroups(req) = body else {
        return mismatched("DescribeGroups");
    };
    let version = header.request_api_version;
    let groups = broker.groups.with_groups(|groups| {
        req.groups
            .iter()
            .map(|id| {
                let base = DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
                if let Err(e) = broker.groups.check_coordinator(&id.0) {
                    return base.with_error_code(e.code());
                }
                // A consumer-protocol group is described by ConsumerGroupDescribe; here it
                // answers as Kafka's classic view does: not found.
                match groups.get(id.0.as_str()).filter(|g| g.consumer.is_none()) {
                    // v6+ reports an unknown group as an error; before, as a Dead group.
                    None if version >= 6 => base
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(text(format!("group '{}' does not exist", id.0))))
                        .with_group_state(text("Dead")),
                    None => base.with_group_state(text("Dead")),
                    Some(g) => {
                        let protocol = g.protocol.clone().unwrap_or_default();
                        base.with_group_state(text(g.state.name()))
                            .with_protocol_type(text(g.protocol_type.clone().unwrap_or_default()))
                            .with_protocol_data(text(protocol.clone()))
                            .with_members(
                                g.members
                                    .values()
                                    .map(|m| {
                                        DescribedGroupMember::default()
                                            .with_member_id(text(m.id.clone()))
                                            .with_group_instance_id(m.instance_id.clone().map(text))
                                            .with_client_id(text(m.client_id.clone()))
                                            .with_client_host(text(m.client_host.clone()))
                                            .with_member_metadata(m.metadata_for(&protocol))
                                            .with_member_assignment(m.assignment.clone())
                                    })
                                    .collect(),
                            )
                    }
                }
            })
            .collect()
    });
    Reply::Now(ResponseKind::DescribeGroups(
        DescribeGroupsResponse::default().with_groups(groups),
    ))
}
