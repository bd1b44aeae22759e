//! AlterPartitionReassignments and ListPartitionReassignments on the active controller:
//! topic names resolved against its image, the decisions made by
//! `isthmus_controller::reassignment`, answered per partition in request order.

use std::collections::BTreeMap;

use isthmus_controller::reassignment::ReassignmentRequest;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind, TopicName,
};

use super::handlers::code_and_message;
use super::ControllerApi;
use crate::handlers::text;

fn partition_answer(
    partition: i32,
    code: i16,
    message: Option<String>,
) -> ReassignablePartitionResponse {
    ReassignablePartitionResponse::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_error_message(message.map(text))
}

pub(super) async fn alter(
    api: &ControllerApi,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> ResponseKind {
    // v0 has no flag and allows any change, as the field's default says.
    let allow_rf_change = version < 1 || req.allow_replication_factor_change;
    let image = api.controller.image();
    // Where each request partition's answer goes: (topic, partition, index into the
    // requests sent to the controller, or the error for a topic that does not exist).
    let mut slots: Vec<(String, i32, Result<usize, ResponseError>)> = Vec::new();
    let mut requests = Vec::new();
    for t in &req.topics {
        let topic = image.topic_by_name(t.name.as_str());
        for p in &t.partitions {
            let slot = match topic {
                Some(topic) => {
                    requests.push(ReassignmentRequest {
                        partition: (topic.topic_id, p.partition_index),
                        target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                    });
                    Ok(requests.len() - 1)
                }
                None => Err(ResponseError::UnknownTopicOrPartition),
            };
            slots.push((t.name.to_string(), p.partition_index, slot));
        }
    }
    let results = match api
        .controller
        .alter_reassignments(requests, allow_rf_change)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let (code, message) = code_and_message(&e);
            return ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default()
                    .with_allow_replication_factor_change(allow_rf_change)
                    .with_error_code(code)
                    .with_error_message(Some(text(message))),
            );
        }
    };
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (topic, partition, slot) in slots {
        let answer = match slot {
            Ok(i) => match &results[i].1 {
                Ok(()) => partition_answer(partition, 0, None),
                Err(e) => partition_answer(partition, e.kafka_error_code(), Some(e.to_string())),
            },
            Err(e) => partition_answer(partition, e.code(), Some("no such topic".into())),
        };
        if !by_topic.contains_key(&topic) {
            order.push(topic.clone());
        }
        by_topic.entry(topic).or_default().push(answer);
    }
    let responses = order
        .into_iter()
        .map(|name| {
            let partitions = by_topic.remove(&name).unwrap_or_default();
            ReassignableTopicResponse::default()
                .with_name(TopicName(text(name)))
                .with_partitions(partitions)
        })
        .collect();
    ResponseKind::AlterPartitionReassignments(
        AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_rf_change)
            .with_responses(responses),
    )
}

pub(super) fn list(api: &ControllerApi, req: ListPartitionReassignmentsRequest) -> ResponseKind {
    let image = api.controller.image();
    // Named partitions that do not exist are left out, as Kafka does.
    let targets: Option<Vec<(uuid::Uuid, i32)>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|t| image.topic_by_name(t.name.as_str()).map(|topic| (topic, t)))
            .flat_map(|(topic, t)| t.partition_indexes.iter().map(|p| (topic.topic_id, *p)))
            .collect()
    });
    let listed = match api.controller.list_reassignments(targets.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            let (code, message) = code_and_message(&e);
            return ResponseKind::ListPartitionReassignments(
                ListPartitionReassignmentsResponse::default()
                    .with_error_code(code)
                    .with_error_message(Some(text(message))),
            );
        }
    };
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for r in listed {
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(r.partition)
            .with_replicas(ids(&r.replicas))
            .with_adding_replicas(ids(&r.adding_replicas))
            .with_removing_replicas(ids(&r.removing_replicas));
        match topics.last_mut() {
            Some(t) if t.name.as_str() == r.topic => t.partitions.push(partition),
            _ => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(text(r.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    ResponseKind::ListPartitionReassignments(
        ListPartitionReassignmentsResponse::default().with_topics(topics),
    )
}
