//! InitProducerId for idempotent producers: a cluster-unique producer id with epoch 0.
//! Transactions are not implemented yet, so a transactional id is refused.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdResponse, ProducerId, RequestKind, ResponseKind};

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::InitProducerId(req) = body else {
        return mismatched("InitProducerId");
    };
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|id| id.0.is_empty())
    {
        return Reply::Now(ResponseKind::InitProducerId(
            response.with_error_code(ResponseError::InvalidRequest.code()),
        ));
    }
    if req.transactional_id.is_some() {
        tracing::debug!(
            "refusing InitProducerId with a transactional id: transactions are not implemented yet"
        );
        return Reply::Now(ResponseKind::InitProducerId(response.with_error_code(
            ResponseError::TransactionalIdAuthorizationFailed.code(),
        )));
    }
    // Without a transactional id Kafka hands out a fresh id on every call (also when an
    // existing id and epoch are given, KIP-360), so sequences always start from zero.
    let response = match broker.producer_ids.next_id(&broker.metadata) {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    };
    Reply::Now(ResponseKind::InitProducerId(response))
}
