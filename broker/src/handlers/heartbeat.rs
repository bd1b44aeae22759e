//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatResponse, RequestKind, ResponseKind};

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::Heartbeat(req) = body else {
        return mismatched("Heartbeat");
    };
    // The membership APIs refuse the empty group id (offset APIs accept it), as Kafka does.
    if req.group_id.0.is_empty() {
        return Reply::Now(ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(ResponseError::InvalidGroupId.code()),
        ));
    }
    let result = broker
        .groups
        .check_coordinator(&req.group_id.0)
        .and_then(|()| {
            broker.groups.heartbeat(
                &req.group_id.0,
                req.generation_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
            )
        });
    let code = result.err().map_or(0, |e| e.code());
    Reply::Now(ResponseKind::Heartbeat(
        HeartbeatResponse::default().with_error_code(code),
    ))
}
