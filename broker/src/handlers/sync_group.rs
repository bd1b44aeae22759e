//! SyncGroup: the leader hands out assignments; every member gets its own.

use std::sync::Arc;

use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind, SyncGroupResponse};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::state::SyncResult;
use crate::group::Pending;

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::SyncGroup(req) = body else {
        return mismatched("SyncGroup");
    };
    // The membership APIs refuse the empty group id (offset APIs accept it), as Kafka does.
    if req.group_id.0.is_empty() {
        return Reply::Now(respond(SyncResult {
            error: ResponseError::InvalidGroupId.code(),
            ..Default::default()
        }));
    }
    if let Err(e) = broker.groups.check_coordinator(&req.group_id.0) {
        return Reply::Now(respond(SyncResult {
            error: e.code(),
            ..Default::default()
        }));
    }
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let pending = broker.groups.sync(
        broker,
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.protocol_type.as_deref(),
        req.protocol_name.as_deref(),
        assignments,
    );
    match pending {
        Pending::Now(r) => Reply::Now(respond(r)),
        Pending::Wait(rx) => Reply::Later(
            async move {
                let r = rx.await.unwrap_or(SyncResult {
                    error: ResponseError::RebalanceInProgress.code(),
                    ..Default::default()
                });
                respond(r)
            }
            .boxed(),
        ),
    }
}

fn respond(r: SyncResult) -> ResponseKind {
    ResponseKind::SyncGroup(
        SyncGroupResponse::default()
            .with_error_code(r.error)
            .with_protocol_type(r.protocol_type.map(text))
            .with_protocol_name(r.protocol.map(text))
            .with_assignment(r.assignment),
    )
}
