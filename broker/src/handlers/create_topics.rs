//! CreateTopics: per-topic validation (name, partitions, replication factor, assignments,
//! configs), `validate_only`, and the created topic's settings in the answer (v5+).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsResponse, RequestKind, ResponseKind};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::config::topic::describe_all;
use crate::dispatch::{Reply, RequestContext};
use crate::topics::{self, NewTopic};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::CreateTopics(req) = body else {
        return mismatched("CreateTopics");
    };
    let mut seen = std::collections::HashSet::new();
    let duplicates: std::collections::HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let base = CreatableTopicResult::default().with_name(t.name.clone());
            if duplicates.contains(&name) {
                return base
                    .with_error_code(kafka_protocol::error::ResponseError::InvalidRequest.code())
                    .with_error_message(Some(text(format!(
                        "topic '{name}' appears more than once in the request"
                    ))))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.to_string(), v.to_string());
                }
            }
            let new = NewTopic {
                name: name.clone(),
                partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect(),
                configs,
            };
            match topics::create(broker, new, req.validate_only) {
                Ok(record) => {
                    let settings = broker.settings();
                    let described = describe_all(&record.configs, &settings)
                        .map(|(name, value, overridden)| {
                            CreatableTopicConfigs::default()
                                .with_name(text(name))
                                .with_value(value.map(|v| text(v.to_string())))
                                .with_config_source(if overridden { 1 } else { 5 })
                        })
                        .collect();
                    base.with_topic_id(record.id)
                        .with_num_partitions(record.partitions)
                        .with_replication_factor(
                            record
                                .partition_states
                                .first()
                                .map_or(-1, |p| p.replicas.len() as i16),
                        )
                        .with_configs(Some(described))
                }
                Err(e) => base
                    .with_error_code(e.response_error().code())
                    .with_error_message(Some(text(e.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    Reply::Now(ResponseKind::CreateTopics(
        CreateTopicsResponse::default().with_topics(results),
    ))
}
