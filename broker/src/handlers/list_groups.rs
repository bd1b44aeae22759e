//! ListGroups: every group this broker coordinates, classic or consumer protocol, with its
//! protocol type, state (v4+) and type (v5+), filtered by state and type when asked.
//! Clients ask every broker and merge the lists, as with Kafka.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsResponse, RequestKind, ResponseKind};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::ListGroups(req) = body else {
        return mismatched("ListGroups");
    };
    // Kafka compares states and types case-insensitively.
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut listed: Vec<ListedGroup> = broker.groups.with_groups(|groups| {
        groups
            .values()
            // Memory holds only coordinated groups; checked anyway, as Kafka lists only the
            // groups of the partitions it leads.
            .filter(|g| broker.groups.check_coordinator(&g.id).is_ok())
            .filter(|g| states.is_empty() || states.contains(&g.state_name().to_lowercase()))
            .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type()))
            .map(|g| {
                // Consumer-protocol groups report protocol type "consumer", as in Kafka.
                let protocol_type = match &g.consumer {
                    Some(_) => "consumer".to_string(),
                    None => g.protocol_type.clone().unwrap_or_default(),
                };
                ListedGroup::default()
                    .with_group_id(GroupId(text(g.id.clone())))
                    .with_protocol_type(text(protocol_type))
                    .with_group_state(text(g.state_name()))
                    .with_group_type(text(g.group_type()))
            })
            .collect()
    });
    listed.sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
    Reply::Now(ResponseKind::ListGroups(
        ListGroupsResponse::default().with_groups(listed),
    ))
}
