//! FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets`
//! partition (the topic is created on first use), answered at that broker's endpoint for
//! this listener; COORDINATOR_NOT_AVAILABLE while the topic is being created or the
//! partition has no live leader. Single keys up to v3, batched keys from v4. Transactions
//! are not implemented, so transaction coordinators are not found.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::metadata::live_brokers;
use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group;

const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::FindCoordinator(req) = body else {
        return mismatched("FindCoordinator");
    };
    let for_groups = req.key_type == KEY_TYPE_GROUP;
    let topic = if for_groups {
        group::log::ensure_topic(broker).map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    // Read after the topic exists, so a just-created topic's leaders are seen.
    let image = broker.metadata.image();
    let live = live_brokers(broker, &image);
    let answer = |key: StrBytes| -> Coordinator {
        let base = Coordinator::default()
            .with_node_id(BrokerId(-1))
            .with_host(text(""))
            .with_port(-1);
        let unavailable = |message: String| {
            base.clone()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(text(message)))
        };
        let found = if !for_groups {
            Err(unavailable("transactions are not implemented yet".into()))
        } else if let Err(e) = &topic {
            Err(unavailable(e.clone()))
        } else {
            group::log::coordinator(&image, &key)
                .ok()
                .and_then(|id| live.iter().find(|b| b.id == id))
                .ok_or_else(|| {
                    unavailable(
                        "the group's offsets partition has no live leader yet; retry".into(),
                    )
                })
        };
        match found {
            Ok(b) => base
                .with_node_id(BrokerId(b.id))
                .with_host(text(b.host.clone()))
                .with_port(i32::from(b.port)),
            Err(refused) => refused,
        }
        .with_key(key)
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
