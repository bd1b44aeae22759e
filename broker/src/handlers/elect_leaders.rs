//! ElectLeaders: preferred (or unclean) leader elections, forwarded to the active
//! controller, which decides and answers per partition.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, ElectLeadersResponse, RequestKind, ResponseKind};

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    if !matches!(body, RequestKind::ElectLeaders(_)) {
        return mismatched("ElectLeaders");
    }
    let broker = broker.clone();
    let version = header.request_api_version;
    Reply::Later(Box::pin(async move {
        match broker
            .metadata
            .call_controller(ApiKey::ElectLeaders, version, body)
            .await
        {
            Ok(answer @ ResponseKind::ElectLeaders(_)) => answer,
            Ok(_) | Err(_) => ResponseKind::ElectLeaders(
                ElectLeadersResponse::default()
                    .with_error_code(kafka_protocol::error::ResponseError::NotController.code()),
            ),
        }
    }))
}
