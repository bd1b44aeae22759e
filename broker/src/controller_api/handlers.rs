//! One function per API served on the controller listener.

use isthmus_controller::brokers::{AlterPartitionFailure, ElectionType, Heartbeat};
use isthmus_controller::leadership::{AlterPartitionRequest, IsrMember, BROKER_EPOCH_UNCHECKED};
use isthmus_controller::records::{BrokerEndpoint, BrokerRegistrationRecord};
use isthmus_controller::ControllerError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_response::{
    PartitionData as AlterPartitionData, TopicData as AlterTopicData,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionRequest as AlterPartitionMessage, AlterPartitionResponse, ApiKey,
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
    BrokerRegistrationResponse, ElectLeadersRequest, ElectLeadersResponse, RequestKind,
    ResponseKind, TopicName,
};
use uuid::Uuid;

use super::{api_versions, reassignments, ControllerApi};
use crate::error::controller_error_code;
use crate::handlers::describe_quorum::quorum_response;
use crate::handlers::text;

/// Kafka's security protocol ids (BrokerRegistration listeners).
fn security_protocol_name(id: i16) -> &'static str {
    match id {
        1 => "SSL",
        2 => "SASL_PLAINTEXT",
        3 => "SASL_SSL",
        _ => "PLAINTEXT",
    }
}

pub(super) async fn handle(
    api: &ControllerApi,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Result<ResponseKind, String> {
    Ok(match body {
        RequestKind::ApiVersions(_) => api_versions(0),
        RequestKind::BrokerRegistration(req) => register(api, req).await,
        RequestKind::BrokerHeartbeat(req) => heartbeat(api, req).await,
        RequestKind::AlterPartition(req) => alter_partition(api, req).await,
        RequestKind::ElectLeaders(req) => elect_leaders(api, req, version).await,
        RequestKind::AlterPartitionReassignments(req) => {
            reassignments::alter(api, req, version).await
        }
        RequestKind::ListPartitionReassignments(req) => reassignments::list(api, req),
        RequestKind::DescribeQuorum(req) => {
            let status = api.controller.quorum_status();
            ResponseKind::DescribeQuorum(quorum_response(
                &status,
                req,
                &api.voters,
                &api.listener_name,
            ))
        }
        _ => {
            return Err(format!(
                "{} routed to the controller listener",
                isthmus_protocol::codec::api_name(api_key)
            ))
        }
    })
}

pub(super) fn code_and_message(e: &ControllerError) -> (i16, String) {
    (controller_error_code(e).code(), e.to_string())
}

async fn register(api: &ControllerApi, req: BrokerRegistrationRequest) -> ResponseKind {
    let answer = |code: i16, epoch: i64| {
        ResponseKind::BrokerRegistration(
            BrokerRegistrationResponse::default()
                .with_error_code(code)
                .with_broker_epoch(epoch),
        )
    };
    if req.cluster_id.as_str() != api.cluster_id {
        tracing::warn!(broker = req.broker_id.0, their_cluster = %req.cluster_id.as_str(), our_cluster = %api.cluster_id,
            "refusing a broker registration from another cluster");
        return answer(ResponseError::InconsistentClusterId.code(), -1);
    }
    let record = BrokerRegistrationRecord {
        broker_id: req.broker_id.0,
        incarnation_id: req.incarnation_id,
        rack: req.rack.map(|r| r.to_string()),
        endpoints: req
            .listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: security_protocol_name(l.security_protocol).into(),
            })
            .collect(),
    };
    match api
        .controller
        .register_broker(record, req.previous_broker_epoch)
        .await
    {
        Ok(epoch) => answer(0, epoch),
        Err(e) => {
            let (code, message) = code_and_message(&e);
            if code == ResponseError::DuplicateBrokerRegistration.code() {
                tracing::warn!(broker = req.broker_id.0, %message, "refused a duplicate broker registration");
            }
            answer(code, -1)
        }
    }
}

async fn heartbeat(api: &ControllerApi, req: BrokerHeartbeatRequest) -> ResponseKind {
    let hb = Heartbeat {
        broker_id: req.broker_id.0,
        broker_epoch: req.broker_epoch,
        current_metadata_offset: req.current_metadata_offset,
        want_fence: req.want_fence,
        want_shut_down: req.want_shut_down,
    };
    let response = match api.controller.broker_heartbeat(hb).await {
        Ok(r) => BrokerHeartbeatResponse::default()
            .with_is_caught_up(r.is_caught_up)
            .with_is_fenced(r.is_fenced)
            .with_should_shut_down(r.should_shut_down),
        Err(e) => BrokerHeartbeatResponse::default()
            .with_error_code(controller_error_code(&e).code())
            .with_is_fenced(true),
    };
    ResponseKind::BrokerHeartbeat(response)
}

async fn alter_partition(api: &ControllerApi, req: AlterPartitionMessage) -> ResponseKind {
    let mut topics = Vec::new();
    for topic in req.topics {
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let new_isr: Vec<IsrMember> = if p.new_isr_with_epochs.is_empty() {
                p.new_isr
                    .iter()
                    .map(|b| IsrMember {
                        broker_id: b.0,
                        broker_epoch: BROKER_EPOCH_UNCHECKED,
                    })
                    .collect()
            } else {
                p.new_isr_with_epochs
                    .iter()
                    .map(|b| IsrMember {
                        broker_id: b.broker_id.0,
                        broker_epoch: b.broker_epoch,
                    })
                    .collect()
            };
            let request = AlterPartitionRequest {
                broker_id: req.broker_id.0,
                broker_epoch: req.broker_epoch,
                topic_id: topic.topic_id,
                partition: p.partition_index,
                leader_epoch: p.leader_epoch,
                new_isr,
                partition_epoch: p.partition_epoch,
            };
            let base = AlterPartitionData::default().with_partition_index(p.partition_index);
            let data = match api.controller.alter_partition(request).await {
                Ok((_, _, state)) => base
                    .with_leader_id(BrokerId(state.leader))
                    .with_leader_epoch(state.leader_epoch)
                    .with_isr(state.isr.iter().map(|b| BrokerId(*b)).collect())
                    .with_partition_epoch(state.partition_epoch),
                Err(AlterPartitionFailure::Refused(e)) => {
                    base.with_error_code(e.kafka_error_code())
                }
                Err(AlterPartitionFailure::Controller(e)) => {
                    if matches!(
                        e,
                        ControllerError::NotLeader { .. } | ControllerError::ShutDown
                    ) {
                        return ResponseKind::AlterPartition(
                            AlterPartitionResponse::default()
                                .with_error_code(ResponseError::NotController.code()),
                        );
                    }
                    base.with_error_code(controller_error_code(&e).code())
                }
            };
            partitions.push(data);
        }
        topics.push(
            AlterTopicData::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    ResponseKind::AlterPartition(AlterPartitionResponse::default().with_topics(topics))
}

async fn elect_leaders(
    api: &ControllerApi,
    req: ElectLeadersRequest,
    version: i16,
) -> ResponseKind {
    let election = if version >= 1 && req.election_type == 1 {
        ElectionType::Unclean
    } else if version >= 1 && req.election_type != 0 {
        return ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_error_code(ResponseError::InvalidRequest.code()),
        );
    } else {
        ElectionType::Preferred
    };
    let image = api.controller.image();
    // Partitions named by topic name; unknown ones are answered without an election.
    let mut unknown: Vec<(String, i32)> = Vec::new();
    let targets = req.topic_partitions.as_ref().map(|topics| {
        let mut ids = Vec::new();
        for t in topics {
            for p in &t.partitions {
                match image.topic_by_name(t.topic.as_str()) {
                    Some(topic) if topic.partitions.contains_key(p) => {
                        ids.push((topic.topic_id, *p))
                    }
                    _ => unknown.push((t.topic.to_string(), *p)),
                }
            }
        }
        ids
    });
    let results = match api.controller.elect_leaders(election, targets).await {
        Ok(r) => r,
        Err(e) => {
            return ResponseKind::ElectLeaders(
                ElectLeadersResponse::default().with_error_code(controller_error_code(&e).code()),
            )
        }
    };
    let name_of = |id: &Uuid| {
        image
            .topic(id)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> = Default::default();
    for ((topic_id, partition), result) in results {
        let code = result.kafka_error_code();
        by_topic.entry(name_of(&topic_id)).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message((code != 0).then(|| text(format!("{result:?}")))),
        );
    }
    for (topic, partition) in unknown {
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                .with_error_message(Some(text("no such topic or partition"))),
        );
    }
    ResponseKind::ElectLeaders(
        ElectLeadersResponse::default().with_replica_election_results(
            by_topic
                .into_iter()
                .map(|(topic, partition_result)| {
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(text(topic)))
                        .with_partition_result(partition_result)
                })
                .collect(),
        ),
    )
}
