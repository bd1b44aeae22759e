//! Requests a broker hands to the active controller, which decides and answers:
//! ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments (as a KRaft
//! broker forwards them). When no controller answers in time the client gets
//! NOT_CONTROLLER and retries, as it does against Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsResponse, ApiKey, ElectLeadersResponse,
    ListPartitionReassignmentsResponse, RequestKind, ResponseKind,
};

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn elect_leaders(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    if !matches!(body, RequestKind::ElectLeaders(_)) {
        return mismatched("ElectLeaders");
    }
    forward(
        broker,
        header,
        ApiKey::ElectLeaders,
        body,
        |r| matches!(r, ResponseKind::ElectLeaders(_)),
        |code| ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(code)),
    )
}

pub fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: RequestKind,
) -> Reply {
    if !matches!(body, RequestKind::AlterPartitionReassignments(_)) {
        return mismatched("AlterPartitionReassignments");
    }
    let answered = |r: &ResponseKind| matches!(r, ResponseKind::AlterPartitionReassignments(_));
    forward(
        broker,
        header,
        ApiKey::AlterPartitionReassignments,
        body,
        answered,
        |code| {
            ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default().with_error_code(code),
            )
        },
    )
}

pub fn list_partition_reassignments(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: RequestKind,
) -> Reply {
    if !matches!(body, RequestKind::ListPartitionReassignments(_)) {
        return mismatched("ListPartitionReassignments");
    }
    let answered = |r: &ResponseKind| matches!(r, ResponseKind::ListPartitionReassignments(_));
    forward(
        broker,
        header,
        ApiKey::ListPartitionReassignments,
        body,
        answered,
        |code| {
            ResponseKind::ListPartitionReassignments(
                ListPartitionReassignmentsResponse::default().with_error_code(code),
            )
        },
    )
}

/// Sends `body` to the controller; `failed` builds the answer carrying an error code
/// when the controller cannot be reached or its answer is not `answered`.
fn forward(
    broker: &Arc<Broker>,
    header: &RequestContext,
    api_key: ApiKey,
    body: RequestKind,
    answered: fn(&ResponseKind) -> bool,
    failed: fn(i16) -> ResponseKind,
) -> Reply {
    let broker = broker.clone();
    let version = header.request_api_version;
    Reply::Later(Box::pin(async move {
        match broker
            .metadata
            .call_controller(api_key, version, body)
            .await
        {
            Ok(answer) if answered(&answer) => answer,
            Ok(_) | Err(_) => failed(ResponseError::NotController.code()),
        }
    }))
}
