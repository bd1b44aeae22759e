//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and the broker.
//! Topic overrides and dynamic broker settings are committed to the metadata quorum and
//! applied to open partitions before the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsResponse,
    DescribeConfigsResponse, IncrementalAlterConfigsResponse, RequestKind, ResponseKind,
};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::config::defs::{
    broker_setting, topic_setting, validate, Scope, ValueKind, BROKER_SETTINGS, TOPIC_SETTINGS,
};
use crate::config::topic::TOPIC_ONLY_DEFAULT;
use crate::config::Source;
use crate::dispatch::{Reply, RequestContext};
use crate::error::BrokerError;
use crate::topics;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs `config_source` for a topic override.
const SOURCE_TOPIC_CONFIG: i8 = 1;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn kafka(error: ResponseError, message: impl Into<String>) -> BrokerError {
    BrokerError::kafka(error, message)
}

pub fn describe(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DescribeConfigs(req) = body else {
        return mismatched("DescribeConfigs");
    };
    let with_docs = header.request_api_version >= 3 && req.include_documentation;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == name));
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let configs = match r.resource_type {
                RESOURCE_TOPIC => describe_topic(
                    broker,
                    &r.resource_name,
                    req.include_synonyms,
                    with_docs,
                    &wanted,
                ),
                RESOURCE_BROKER => check_broker_name(broker, &r.resource_name)
                    .map(|()| describe_broker(broker, req.include_synonyms, with_docs, &wanted)),
                other => Err(kafka(
                    ResponseError::InvalidRequest,
                    format!("resource type {other} cannot be described"),
                )),
            };
            match configs {
                Ok(c) => base.with_configs(c),
                Err(e) => base
                    .with_error_code(e.response_error().code())
                    .with_error_message(Some(text(e.to_string()))),
            }
        })
        .collect();
    Reply::Now(ResponseKind::DescribeConfigs(
        DescribeConfigsResponse::default().with_results(results),
    ))
}

fn check_broker_name(broker: &Broker, name: &str) -> Result<(), BrokerError> {
    // "" addresses the cluster-wide default; this node's id addresses this node.
    if name.is_empty() || name == broker.node_id().to_string() {
        Ok(())
    } else {
        Err(kafka(
            ResponseError::InvalidRequest,
            format!("broker '{name}' is not this node ({})", broker.node_id()),
        ))
    }
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    synonyms: bool,
    docs: bool,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<DescribeConfigsResourceResult>, BrokerError> {
    let image = broker.metadata.image();
    let topic = image.topic(name).ok_or_else(|| {
        kafka(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let settings = broker.settings();
    Ok(TOPIC_SETTINGS
        .iter()
        .filter(|s| wanted(s.name))
        .map(|s| {
            // Topic-only settings (no broker setting behind them) default to empty.
            let broker_value = match s.broker_default {
                Some(b) => settings.get(b),
                None => Some(TOPIC_ONLY_DEFAULT),
            };
            let broker_source = s
                .broker_default
                .and_then(|b| settings.source(b))
                .map(Source::describe_code)
                .unwrap_or(5);
            let overridden = topic.configs.get(s.name);
            let (value, source) = match overridden {
                Some(v) => (Some(v.as_str()), SOURCE_TOPIC_CONFIG),
                None => (broker_value, broker_source),
            };
            let mut synonym_list = Vec::new();
            if synonyms {
                if let Some(v) = overridden {
                    synonym_list.push(synonym(s.name, Some(v), SOURCE_TOPIC_CONFIG));
                }
                if let (Some(b), Some(_)) = (s.broker_default, broker_value) {
                    synonym_list.push(synonym(b, broker_value, broker_source));
                }
            }
            entry(
                s.name,
                value,
                false,
                source,
                &s.kind,
                docs.then_some(s.doc),
                synonym_list,
            )
        })
        .collect())
}

fn describe_broker(
    broker: &Broker,
    synonyms: bool,
    docs: bool,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    let settings = broker.settings();
    BROKER_SETTINGS
        .iter()
        .filter(|s| wanted(s.name))
        .map(|s| {
            let value = settings.get(s.name);
            let source = settings
                .source(s.name)
                .map(Source::describe_code)
                .unwrap_or(5);
            let synonym_list = if synonyms && value.is_some() {
                vec![synonym(s.name, value, source)]
            } else {
                Vec::new()
            };
            entry(
                s.name,
                value,
                s.scope == Scope::Node,
                source,
                &s.kind,
                docs.then_some(s.doc),
                synonym_list,
            )
        })
        .collect()
}

fn synonym(name: &str, value: Option<&str>, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(text(name))
        .with_value(value.map(|v| text(v.to_string())))
        .with_source(source)
}

fn entry(
    name: &str,
    value: Option<&str>,
    read_only: bool,
    source: i8,
    kind: &ValueKind,
    doc: Option<&str>,
    synonyms: Vec<DescribeConfigsSynonym>,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(text(name))
        .with_value(value.map(|v| text(v.to_string())))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(kind.describe_type())
        .with_documentation(doc.map(text))
        .with_synonyms(synonyms)
}

/// One requested change: (name, operation, value).
type Change = (String, i8, Option<String>);

pub fn alter(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::AlterConfigs(req) = body else {
        return mismatched("AlterConfigs");
    };
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let changes: Vec<Change> = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        OP_SET,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let result = apply(
                broker,
                r.resource_type,
                &r.resource_name,
                &changes,
                true,
                req.validate_only,
            );
            let base = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match result {
                Ok(()) => base,
                Err(e) => base
                    .with_error_code(e.response_error().code())
                    .with_error_message(Some(text(e.to_string()))),
            }
        })
        .collect();
    Reply::Now(ResponseKind::AlterConfigs(
        AlterConfigsResponse::default().with_responses(responses),
    ))
}

pub fn incremental_alter(
    broker: &Arc<Broker>,
    _header: &RequestContext,
    body: RequestKind,
) -> Reply {
    let RequestKind::IncrementalAlterConfigs(req) = body else {
        return mismatched("IncrementalAlterConfigs");
    };
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let changes: Vec<Change> = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            let result = apply(
                broker,
                r.resource_type,
                &r.resource_name,
                &changes,
                false,
                req.validate_only,
            );
            let base = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match result {
                Ok(()) => base,
                Err(e) => base
                    .with_error_code(e.response_error().code())
                    .with_error_message(Some(text(e.to_string()))),
            }
        })
        .collect();
    Reply::Now(ResponseKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsResponse::default().with_responses(responses),
    ))
}

/// Applies changes to one resource. `replace` = legacy AlterConfigs: the given set replaces
/// every existing override.
fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: &[Change],
    replace: bool,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let mut names = std::collections::HashSet::new();
    if let Some((dup, _, _)) = changes.iter().find(|(n, _, _)| !names.insert(n.as_str())) {
        return Err(kafka(
            ResponseError::InvalidRequest,
            format!("config '{dup}' appears more than once"),
        ));
    }
    match resource_type {
        RESOURCE_TOPIC => topics::set_topic_configs(
            broker,
            name,
            |configs| {
                if replace {
                    configs.clear();
                }
                for (key, op, value) in changes {
                    let kind = topic_setting(key).map(|s| s.kind).ok_or_else(|| {
                        kafka(
                            ResponseError::InvalidConfig,
                            format!("unknown topic config '{key}'"),
                        )
                    })?;
                    edit(configs, key, *op, value.as_deref(), &kind)?;
                }
                Ok(())
            },
            validate_only,
        ),
        RESOURCE_BROKER => {
            check_broker_name(broker, name)?;
            // Both the cluster default ("") and this node's id edit the cluster-wide
            // dynamic defaults: per-broker dynamic overrides are not kept apart yet.
            topics::set_broker_configs(
                broker,
                |dynamic| {
                    if replace {
                        dynamic.clear();
                    }
                    for (key, op, value) in changes {
                        let setting = broker_setting(key).ok_or_else(|| {
                            kafka(
                                ResponseError::InvalidConfig,
                                format!("unknown broker config '{key}'"),
                            )
                        })?;
                        if setting.scope != Scope::Dynamic {
                            return Err(kafka(
                                ResponseError::InvalidRequest,
                                format!(
                                    "'{key}' cannot be changed while the broker runs; set it at startup"
                                ),
                            ));
                        }
                        edit(dynamic, key, *op, value.as_deref(), &setting.kind)?;
                    }
                    Ok(())
                },
                validate_only,
            )
        }
        other => Err(kafka(
            ResponseError::InvalidRequest,
            format!("resource type {other} cannot be altered"),
        )),
    }
}

/// One SET / DELETE / APPEND / SUBTRACT on a map of overrides, validating the result.
fn edit(
    configs: &mut BTreeMap<String, String>,
    key: &str,
    op: i8,
    value: Option<&str>,
    kind: &ValueKind,
) -> Result<(), BrokerError> {
    let is_list = matches!(kind, ValueKind::List | ValueKind::ThrottledReplicas)
        || key == "cleanup.policy"
        || key == "log.cleanup.policy";
    match op {
        OP_SET => match value {
            Some(v) => {
                validate(kind, v).map_err(|e| {
                    kafka(
                        ResponseError::InvalidConfig,
                        format!("invalid value '{v}' for {key}: {e}"),
                    )
                })?;
                configs.insert(key.to_string(), v.to_string());
            }
            None => {
                configs.remove(key);
            }
        },
        OP_DELETE => {
            configs.remove(key);
        }
        OP_APPEND | OP_SUBTRACT if is_list => {
            let mut items: Vec<String> = configs
                .get(key)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            for item in value
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if op == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            let joined = items.join(",");
            validate(kind, &joined).map_err(|e| {
                kafka(
                    ResponseError::InvalidConfig,
                    format!("{key} would become '{joined}': {e}"),
                )
            })?;
            configs.insert(key.to_string(), joined);
        }
        OP_APPEND | OP_SUBTRACT => {
            return Err(kafka(
                ResponseError::InvalidConfig,
                format!("APPEND and SUBTRACT apply to list configs; '{key}' is not one"),
            ));
        }
        other => {
            return Err(kafka(
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}
