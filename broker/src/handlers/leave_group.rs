//! LeaveGroup: one member (v0-v2) or a batch of members by id or instance id (v3+).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupResponse, RequestKind, ResponseKind};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::LeaveGroup(req) = body else {
        return mismatched("LeaveGroup");
    };
    // The membership APIs refuse the empty group id (offset APIs accept it), as Kafka does.
    if req.group_id.0.is_empty() {
        return Reply::Now(ResponseKind::LeaveGroup(
            LeaveGroupResponse::default().with_error_code(ResponseError::InvalidGroupId.code()),
        ));
    }
    let batched = header.request_api_version >= 3;
    let leaving: Vec<(String, Option<String>)> = if batched {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let left = broker
        .groups
        .check_coordinator(&req.group_id.0)
        .and_then(|()| broker.groups.leave(broker, &req.group_id.0, &leaving));
    let outcome = match left {
        // An unknown group: from v3 Kafka answers each member UNKNOWN_MEMBER_ID.
        Err(ResponseError::UnknownMemberId) if batched => {
            Ok(vec![ResponseError::UnknownMemberId.code(); leaving.len()])
        }
        other => other,
    };
    let response = match outcome {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(codes) if batched => LeaveGroupResponse::default().with_members(
            leaving
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(text(id))
                        .with_group_instance_id(instance.map(text))
                        .with_error_code(code)
                })
                .collect(),
        ),
        Ok(codes) => {
            LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0))
        }
    };
    Reply::Now(ResponseKind::LeaveGroup(response))
}
