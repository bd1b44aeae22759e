//! DescribeQuorum (KIP-595, v2 of KIP-853): the metadata quorum as this node's controller
//! sees it: leader, epoch (the Raft term), high watermark and each voter's log end offset.
//! Only the leader knows the followers' and observers' progress: a broker answers with
//! the active controller's view; a controller that is not the leader answers
//! NOT_LEADER_OR_FOLLOWER, as a KRaft controller does.

use std::sync::Arc;

use isthmus_controller::{QuorumStatus, Voter};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestKind, ResponseKind,
};
use uuid::Uuid;

use super::{mismatched, text};
use crate::broker::{now_ms, Broker};
use crate::dispatch::{Reply, RequestContext};

/// KRaft's name for the metadata log, the only "topic" DescribeQuorum knows.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Listener name reported for voters whose controller listener is not named in this node's
/// config (a quorum of one without a controller listener).
const DEFAULT_CONTROLLER_LISTENER: &str = "CONTROLLER";

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DescribeQuorum(req) = body else {
        return mismatched("DescribeQuorum");
    };
    let voters = broker.node.voters.clone();
    let listener_name = broker
        .node
        .controller_listener
        .as_ref()
        .map_or(DEFAULT_CONTROLLER_LISTENER, |l| l.name.as_str())
        .to_string();
    // The local controller answers when it leads; otherwise the leader's view is fetched,
    // as a KRaft broker forwards DescribeQuorum to the active controller.
    if let Some(c) = broker.metadata.controller().filter(|c| c.is_leader()) {
        let status = c.quorum_status();
        return Reply::Now(ResponseKind::DescribeQuorum(quorum_response(
            &status,
            req,
            &voters,
            &listener_name,
        )));
    }
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let status = match broker.metadata.quorum_status().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "DescribeQuorum: no controller answered");
                let mut fallback = broker
                    .metadata
                    .controller()
                    .map(|c| c.quorum_status())
                    .unwrap_or_default();
                fallback.is_leader = false;
                fallback
            }
        };
        ResponseKind::DescribeQuorum(quorum_response(&status, req, &voters, &listener_name))
    }))
}

/// The DescribeQuorum answer for `status` (the leader's view, or an error per partition
/// when `status` is not the leader's).
pub fn quorum_response(
    status: &QuorumStatus,
    req: DescribeQuorumRequest,
    voters: &[Voter],
    listener_name: &str,
) -> DescribeQuorumResponse {
    let now = now_ms();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let known = t.topic_name.0.as_str() == METADATA_TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = PartitionData::default().with_partition_index(p.partition_index);
                    if !known || p.partition_index != 0 {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(text(format!(
                                "only {METADATA_TOPIC} partition 0 has a quorum"
                            ))));
                    }
                    if !status.is_leader {
                        return base
                            .with_error_code(ResponseError::NotLeaderOrFollower.code())
                            .with_error_message(Some(text(format!(
                                "node {} is not the quorum leader (leader: {:?})",
                                status.node_id, status.leader
                            ))));
                    }
                    let current = status
                        .voters
                        .iter()
                        .map(|v| {
                            let caught_up = if v.id == status.node_id || v.lag == Some(0) {
                                now
                            } else {
                                -1
                            };
                            ReplicaState::default()
                                .with_replica_id(BrokerId(v.id as i32))
                                .with_replica_directory_id(Uuid::nil())
                                .with_log_end_offset(v.log_end_offset.map_or(-1, |e| e as i64))
                                .with_last_fetch_timestamp(if v.id == status.node_id {
                                    now
                                } else {
                                    -1
                                })
                                .with_last_caught_up_timestamp(caught_up)
                        })
                        .collect();
                    base.with_leader_id(BrokerId(status.node_id as i32))
                        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                        .with_high_watermark(status.applied_revision as i64 + 1)
                        .with_current_voters(current)
                        .with_observers(
                            status
                                .observers
                                .iter()
                                .map(|o| {
                                    ReplicaState::default()
                                        .with_replica_id(BrokerId(o.id as i32))
                                        .with_replica_directory_id(Uuid::nil())
                                        .with_log_end_offset(o.log_end_offset as i64)
                                        .with_last_fetch_timestamp(o.last_fetch_unix_ms)
                                        .with_last_caught_up_timestamp(if o.lag == 0 {
                                            o.last_fetch_unix_ms
                                        } else {
                                            -1
                                        })
                                })
                                .collect(),
                        )
                })
                .collect();
            TopicData::default()
                .with_topic_name(t.topic_name)
                .with_partitions(partitions)
        })
        .collect();
    let nodes = voters
        .iter()
        .map(|v| {
            Node::default()
                .with_node_id(BrokerId(v.id as i32))
                .with_listeners(vec![Listener::default()
                    .with_name(text(listener_name))
                    .with_host(text(v.host.clone()))
                    .with_port(v.port)])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}
