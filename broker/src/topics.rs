//! Topic lifecycle on this node: create, grow, reconfigure and delete, each validated the way
//! Kafka does, written to the metadata image first and then applied to the local replicas.
//! Admin handlers and Metadata's auto-create share these, so the rules live in one place.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::broker::Broker;
use crate::config::topic::{validate_overrides, TopicSettings};
use crate::config::Settings;
use crate::error::BrokerError;
use crate::metadata::names::{collision_key, validate_topic_name};
use crate::metadata::{Image, TopicRecord};

/// Kafka's upper bound on partitions per CreateTopics/CreatePartitions, to keep one request
/// from creating an unbounded number of files.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// What a CreateTopics entry (or an auto-create) asks for; -1 means "broker default".
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Explicit assignment: replica broker ids per partition, in partition order.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: BTreeMap<String, String>,
}

fn invalid(error: ResponseError, message: impl Into<String>) -> BrokerError {
    BrokerError::kafka(error, message)
}

/// Validates and (unless `validate_only`) creates a topic. Returns its record.
pub fn create(
    broker: &Broker,
    new: NewTopic,
    validate_only: bool,
) -> Result<Arc<TopicRecord>, BrokerError> {
    let _admin = broker.admin_lock();
    validate_topic_name(&new.name).map_err(|m| invalid(ResponseError::InvalidTopicException, m))?;
    let settings = broker.settings();
    let default_partitions = settings.i64("num.partitions").unwrap_or(1) as i32;
    let default_rf = settings.i64("default.replication.factor").unwrap_or(1) as i16;
    let live_brokers = 1;
    let (partitions, _replication_factor) = if new.assignments.is_empty() {
        let partitions = if new.partitions == -1 {
            default_partitions
        } else {
            new.partitions
        };
        let rf = if new.replication_factor == -1 {
            default_rf
        } else {
            new.replication_factor
        };
        if partitions < 1 {
            return Err(invalid(
                ResponseError::InvalidPartitions,
                format!("number of partitions must be at least 1, got {partitions}"),
            ));
        }
        if rf < 1 {
            return Err(invalid(
                ResponseError::InvalidReplicationFactor,
                format!("replication factor must be at least 1, got {rf}"),
            ));
        }
        if rf as i32 > live_brokers {
            return Err(invalid(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {rf} is larger than the {live_brokers} available broker(s)"
                ),
            ));
        }
        (partitions, rf)
    } else {
        if new.partitions != -1 || new.replication_factor != -1 {
            return Err(invalid(
                ResponseError::InvalidRequest,
                "give either replica assignments or partitions/replication factor, not both",
            ));
        }
        validate_assignments(broker, &new.assignments, 0)?
    };
    if partitions > MAX_PARTITIONS_PER_TOPIC {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!("{partitions} partitions exceed the limit of {MAX_PARTITIONS_PER_TOPIC}"),
        ));
    }
    validate_overrides(
        new.configs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
    )
    .map_err(|m| invalid(ResponseError::InvalidConfig, m))?;
    check_log_config(&new.configs, &settings)?;
    let name_is_free = |image: &Image| -> Result<(), BrokerError> {
        if image.topics.contains_key(&new.name) {
            return Err(invalid(
                ResponseError::TopicAlreadyExists,
                format!("topic '{}' already exists", new.name),
            ));
        }
        let key = collision_key(&new.name);
        if let Some(other) = image.topics.keys().find(|t| collision_key(t) == key) {
            return Err(invalid(
                ResponseError::InvalidTopicException,
                format!("topic '{}' collides with existing topic '{other}' ('.' and '_' are treated alike)", new.name),
            ));
        }
        Ok(())
    };
    name_is_free(&broker.metadata.image())?;
    let record = TopicRecord {
        name: new.name.clone(),
        id: Uuid::new_v4(),
        partitions,
        configs: new.configs,
        leader_epoch: 0,
    };
    if validate_only {
        return Ok(Arc::new(TopicRecord {
            id: Uuid::nil(),
            ..record
        }));
    }
    let record = Arc::new(record);
    broker.metadata.update(|image| {
        name_is_free(image)?;
        image.topics.insert(record.name.clone(), record.clone());
        Ok(())
    })?;
    if let Err(e) = broker.replicas.ensure_topic(&record, &settings) {
        // Undo the metadata write so the image never names a topic without logs.
        tracing::error!(topic = %record.name, error = %e, "creating the topic's logs failed; rolling back");
        let _ = broker.metadata.update(|image| {
            image.topics.remove(&record.name);
            Ok(())
        });
        let _ = broker.replicas.delete_topic(&record.name);
        return Err(e);
    }
    tracing::info!(topic = %record.name, partitions = record.partitions, id = %record.id, "created topic");
    Ok(record)
}

/// Checks explicit assignments: contiguous partitions, known brokers, no duplicates, one
/// replication factor. Returns (partitions, replication factor).
fn validate_assignments(
    broker: &Broker,
    assignments: &[(i32, Vec<i32>)],
    first_partition: i32,
) -> Result<(i32, i16), BrokerError> {
    let mut rf = None;
    for (i, (partition, replicas)) in assignments.iter().enumerate() {
        if *partition != first_partition + i as i32 {
            return Err(invalid(
                ResponseError::InvalidReplicaAssignment,
                format!("assignments must list partitions {first_partition}.. in order; found {partition} at position {i}"),
            ));
        }
        if replicas.is_empty() {
            return Err(invalid(
                ResponseError::InvalidReplicaAssignment,
                format!("partition {partition} has no replicas"),
            ));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return Err(invalid(
                ResponseError::InvalidReplicaAssignment,
                format!("partition {partition} lists a broker twice"),
            ));
        }
        if let Some(unknown) = replicas.iter().find(|b| **b != broker.node_id()) {
            return Err(invalid(
                ResponseError::BrokerNotAvailable,
                format!(
                    "broker {unknown} in the assignment of partition {partition} is not registered"
                ),
            ));
        }
        match rf {
            None => rf = Some(replicas.len()),
            Some(r) if r != replicas.len() => {
                return Err(invalid(
                    ResponseError::InvalidReplicaAssignment,
                    "all partitions must have the same number of replicas",
                ));
            }
            _ => {}
        }
    }
    Ok((assignments.len() as i32, rf.unwrap_or(1) as i16))
}

/// Grows a topic to `count` partitions (CreatePartitions).
pub fn add_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let _admin = broker.admin_lock();
    let image = broker.metadata.image();
    let current = image
        .topic(name)
        .ok_or_else(|| {
            invalid(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?
        .clone();
    if count <= current.partitions {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!(
                "topic '{name}' has {} partitions; the new count {count} must be larger",
                current.partitions
            ),
        ));
    }
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!("{count} partitions exceed the limit of {MAX_PARTITIONS_PER_TOPIC}"),
        ));
    }
    if let Some(assignments) = assignments {
        let added = (count - current.partitions) as usize;
        if assignments.len() != added {
            return Err(invalid(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "{} assignments given for {added} new partitions",
                    assignments.len()
                ),
            ));
        }
        let numbered: Vec<(i32, Vec<i32>)> = assignments
            .iter()
            .enumerate()
            .map(|(i, r)| (current.partitions + i as i32, r.clone()))
            .collect();
        validate_assignments(broker, &numbered, current.partitions)?;
    }
    if validate_only {
        return Ok(());
    }
    let record = broker.metadata.update(|image| {
        let topic = image.topics.get_mut(name).ok_or_else(|| {
            invalid(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        if topic.id != current.id || topic.partitions != current.partitions {
            return Err(invalid(
                ResponseError::ConcurrentTransactions,
                "topic changed concurrently; retry",
            ));
        }
        Arc::make_mut(topic).partitions = count;
        Ok(topic.clone())
    })?;
    broker.replicas.ensure_topic(&record, &broker.settings())?;
    tracing::info!(topic = name, partitions = count, "added partitions");
    Ok(())
}

/// Deletes a topic by name or id. Returns (name, id).
pub fn delete(
    broker: &Broker,
    name: Option<&str>,
    id: Option<Uuid>,
) -> Result<(String, Uuid), BrokerError> {
    let _admin = broker.admin_lock();
    if !broker.node.delete_topic_enable {
        return Err(invalid(
            ResponseError::TopicDeletionDisabled,
            "topic deletion is disabled (delete.topic.enable=false)",
        ));
    }
    let removed = broker.metadata.update(|image| {
        let name = match (name, id) {
            (Some(n), _) => n.to_string(),
            (None, Some(id)) => image
                .topic_by_id(id)
                .map(|t| t.name.clone())
                .ok_or_else(|| {
                    invalid(
                        ResponseError::UnknownTopicId,
                        format!("no topic has id {id}"),
                    )
                })?,
            (None, None) => {
                return Err(invalid(
                    ResponseError::InvalidRequest,
                    "neither a topic name nor an id was given",
                ))
            }
        };
        image.topics.remove(&name).ok_or_else(|| {
            invalid(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })
    })?;
    broker.replicas.delete_topic(&removed.name)?;
    tracing::info!(topic = %removed.name, id = %removed.id, "deleted topic");
    Ok((removed.name.clone(), removed.id))
}

/// Replaces a topic's overrides (AlterConfigs) or applies them incrementally, after validation.
pub fn set_topic_configs(
    broker: &Broker,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), BrokerError>,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let _admin = broker.admin_lock();
    let image = broker.metadata.image();
    let current = image.topic(name).ok_or_else(|| {
        invalid(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' does not exist"),
        )
    })?;
    let mut configs = current.configs.clone();
    change(&mut configs)?;
    validate_overrides(configs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))))
        .map_err(|m| invalid(ResponseError::InvalidConfig, m))?;
    check_log_config(&configs, &broker.settings())?;
    if validate_only {
        return Ok(());
    }
    let record = broker.metadata.update(|image| {
        let topic = image.topics.get_mut(name).ok_or_else(|| {
            invalid(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )
        })?;
        Arc::make_mut(topic).configs = configs;
        Ok(topic.clone())
    })?;
    broker.replicas.apply_settings(&record, &broker.settings());
    Ok(())
}

/// The storage layer's own limits on the resolved settings, checked before anything is
/// persisted: a value the log would refuse must never reach the metadata, or the node could
/// not open the topic at its next start.
pub fn check_log_config(
    overrides: &BTreeMap<String, String>,
    settings: &Settings,
) -> Result<(), BrokerError> {
    TopicSettings::resolve(overrides, settings)
        .log
        .validate()
        .map_err(|e| invalid(ResponseError::InvalidConfig, e.to_string()))
}
