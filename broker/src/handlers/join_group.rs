//! JoinGroup: membership and rebalances of the classic protocol (see `group::coordinator`).

use std::sync::Arc;

use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, RequestKind, ResponseKind};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::state::JoinResult;
use crate::group::{JoinArgs, Pending};

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::JoinGroup(req) = body else {
        return mismatched("JoinGroup");
    };
    if let Err(e) = crate::group::log::ensure_topic(broker) {
        let r = JoinResult {
            error: ResponseError::CoordinatorNotAvailable.code(),
            generation: -1,
            ..Default::default()
        };
        tracing::warn!(error = %e, "offsets topic unavailable");
        return Reply::Now(respond(r));
    }
    // An empty group id is refused by the coordinator first (INVALID_GROUP_ID), as in Kafka.
    if !req.group_id.0.is_empty() {
        if let Err(e) = broker.groups.check_coordinator(&req.group_id.0) {
            return Reply::Now(respond(JoinResult {
                error: e.code(),
                generation: -1,
                member_id: req.member_id.to_string(),
                ..Default::default()
            }));
        }
    }
    let args = JoinArgs {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if header.request_api_version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        client_id: header.client_id_text(),
        client_host: header.client_host(),
        require_known_member: header.request_api_version >= 4,
    };
    match broker.groups.join(broker, args) {
        Pending::Now(r) => Reply::Now(respond(r)),
        Pending::Wait(rx) => Reply::Later(
            async move {
                let r = rx.await.unwrap_or(JoinResult {
                    error: ResponseError::RebalanceInProgress.code(),
                    generation: -1,
                    ..Default::default()
                });
                respond(r)
            }
            .boxed(),
        ),
    }
}

fn respond(r: JoinResult) -> ResponseKind {
    ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(r.error)
            .with_generation_id(r.generation)
            .with_protocol_type(r.protocol_type.map(text))
            .with_protocol_name(r.protocol.map(text))
            .with_leader(text(r.leader))
            .with_member_id(text(r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(text(id))
                            .with_group_instance_id(instance.map(text))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
    )
}
