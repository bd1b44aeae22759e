//! FindCoordinator: this node coordinates every group (single key up to v3, batched keys
//! from v4). Transactions are not implemented, so transaction coordinators are not found.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group;

const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::FindCoordinator(req) = body else {
        return mismatched("FindCoordinator");
    };
    let (host, port) = broker.endpoint();
    let answer = |key: StrBytes| -> Coordinator {
        let base = Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(text(""))
            .with_port(-1);
        if req.key_type != KEY_TYPE_GROUP {
            return base
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(text("transactions are not implemented yet")));
        }
        match group::log::ensure_topic(broker) {
            Ok(()) => base
                .with_node_id(BrokerId(broker.node_id()))
                .with_host(text(host.clone()))
                .with_port(port as i32),
            Err(e) => base
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(text(e.to_string()))),
        }
    };
    let response = if header.request_api_version >= 4 {
        FindCoordinatorResponse::default()
            .with_coordinators(req.coordinator_keys.into_iter().map(answer).collect())
    } else {
        let c = answer(req.key);
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    };
    Reply::Now(ResponseKind::FindCoordinator(response))
}
