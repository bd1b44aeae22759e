//! ConsumerGroupHeartbeat (KIP-848): join, heartbeat and leave of the consumer protocol,
//! with the assignment computed on the broker. Request shape is checked here as Kafka
//! does (INVALID_REQUEST with a message); membership rules live in `group::consumer`.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, RequestKind, ResponseKind,
};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::assignor::{self, Assignor};
use crate::group::consumer::{HeartbeatArgs, STATIC_LEAVE_EPOCH};

/// From v1 the client generates its member id (KIP-1082).
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::ConsumerGroupHeartbeat(req) = body else {
        return mismatched("ConsumerGroupHeartbeat");
    };
    let version = header.request_api_version;
    let response = match check(&req, version, &broker.groups.config.consumer.assignors) {
        Err(refusal) => refused(refusal),
        Ok(server_assignor) => match crate::group::log::ensure_topic(broker) {
            Err(e) => refused((
                ResponseError::CoordinatorNotAvailable,
                format!("the offsets topic is not available: {e}"),
            )),
            Ok(()) => heartbeat(broker, header, req, server_assignor),
        },
    };
    Reply::Now(ResponseKind::ConsumerGroupHeartbeat(response))
}

fn heartbeat(
    broker: &Arc<Broker>,
    header: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
    server_assignor: Option<Assignor>,
) -> ConsumerGroupHeartbeatResponse {
    let member_id = if req.member_id.is_empty() {
        // v0 joins without an id; the coordinator makes one.
        uuid::Uuid::new_v4().to_string()
    } else {
        req.member_id.to_string()
    };
    let owned = req.topic_partitions.map(|topics| {
        let mut owned = assignor::Assignment::new();
        for t in topics {
            owned
                .entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        owned
    });
    let args = HeartbeatArgs {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_names: req
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor,
        owned,
        client_id: header.client_id_text(),
        client_host: header.client_host(),
    };
    let image = broker.metadata.image();
    match broker
        .groups
        .consumer_heartbeat(req.group_id.0.as_str(), args, &image)
    {
        Err(refusal) => refused(refusal),
        Ok(reply) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(text(reply.member_id)))
            .with_member_epoch(reply.member_epoch)
            .with_heartbeat_interval_ms(broker.groups.config.consumer_heartbeat_interval_ms)
            .with_assignment(reply.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
    }
}

fn refused((error, message): (ResponseError, String)) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(text(message)))
        .with_member_id(None)
        .with_member_epoch(-1)
}

/// Kafka's request checks; returns the requested server assignor, if any.
fn check(
    req: &ConsumerGroupHeartbeatRequest,
    version: i16,
    configured: &[Assignor],
) -> Result<Option<Assignor>, (ResponseError, String)> {
    let invalid = |m: &str| Err((ResponseError::InvalidRequest, m.to_string()));
    let epoch = req.member_epoch;
    if (version >= CLIENT_MEMBER_ID_VERSION || epoch > 0 || epoch == -1) && req.member_id.is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if req.group_id.0.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_ref().is_some_and(|s| s.is_empty()) {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_ref().is_some_and(|s| s.is_empty()) {
        return invalid("RackId can't be empty.");
    }
    if epoch == 0 {
        if req.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if epoch == STATIC_LEAVE_EPOCH {
        if req.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if epoch < STATIC_LEAVE_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    match req.server_assignor.as_deref() {
        None => Ok(None),
        Some(name) => match Assignor::from_name(name).filter(|a| configured.contains(a)) {
            Some(a) => Ok(Some(a)),
            None => Err((
                ResponseError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    configured
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        },
    }
}
