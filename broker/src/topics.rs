//! Topic lifecycle and cluster configs: create, grow, reconfigure and delete topics, and set
//! the dynamic broker defaults, each validated the way Kafka does and then proposed to the
//! metadata quorum. A change returns once this node's view has its revision, i.e. once the
//! local partitions were created, deleted or reconfigured to match (see `metadata::quorum`).
//! Admin handlers and Metadata's auto-create share these, so the rules live in one place.
//!
//! The functions are synchronous (handlers run them in request order on the connection);
//! each runs its whole change, serialised with the other admin changes of this node, off
//! the async worker thread (`MetadataStore::block_on`).

use std::collections::BTreeMap;
use std::sync::Arc;

use isthmus_controller::placement::{
    place_replicas, placeable_brokers, topic_creation_records, validate_assignment,
};
use isthmus_controller::records::{ConfigResource, MetadataRecord, PartitionRecord};
use isthmus_controller::{ControllerError, RejectCode};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::broker::Broker;
use crate::config::topic::{validate_overrides, TopicSettings};
use crate::config::Settings;
use crate::error::BrokerError;
use crate::metadata::names::{collision_key, validate_topic_name};
use crate::metadata::{Image, PartitionState, TopicRecord};

/// Kafka's upper bound on partitions per CreateTopics/CreatePartitions, to keep one request
/// from creating an unbounded number of files.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;
/// Partitions one CreateTopics entry or CreatePartitions may add: they are committed as one
/// Raft entry, which the controller bounds (`records::PROPOSAL_BYTES_MAX`, 4 MiB); this
/// keeps even wide replica lists well inside it.
pub const PARTITIONS_PER_CHANGE_MAX: i32 = 10_000;

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

fn unknown_topic(name: &str) -> BrokerError {
    invalid(
        ResponseError::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

/// Validates and (unless `validate_only`) creates a topic. Returns its record (with the nil
/// id and the planned partition states for `validate_only`).
pub fn create(
    broker: &Broker,
    new: NewTopic,
    validate_only: bool,
) -> Result<Arc<TopicRecord>, BrokerError> {
    broker
        .metadata
        .block_on(create_async(broker, new, validate_only))?
}

async fn create_async(
    broker: &Broker,
    new: NewTopic,
    validate_only: bool,
) -> Result<Arc<TopicRecord>, BrokerError> {
    let _admin = broker.admin.lock().await;
    validate_topic_name(&new.name).map_err(|m| invalid(ResponseError::InvalidTopicException, m))?;
    let settings = broker.settings();
    let default_partitions = settings.i64("num.partitions").unwrap_or(1) as i32;
    let default_rf = settings.i64("default.replication.factor").unwrap_or(1) as i16;
    let image = broker.metadata.controller_image();
    let assignment: Vec<Vec<i32>> = if new.assignments.is_empty() {
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
        check_partition_limit(partitions)?;
        check_added_partitions(partitions)?;
        // Leaders of successive topics start on different brokers.
        place_replicas(
            &placeable_brokers(&image),
            partitions,
            rf,
            image.topic_count(),
        )?
    } else {
        if new.partitions != -1 || new.replication_factor != -1 {
            return Err(invalid(
                ResponseError::InvalidRequest,
                "give either replica assignments or partitions/replication factor, not both",
            ));
        }
        let count = i32::try_from(new.assignments.len()).unwrap_or(i32::MAX);
        check_partition_limit(count)?;
        check_added_partitions(count)?;
        numbered_assignment(&image, &new.assignments, 0)?
    };
    validate_overrides(
        new.configs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
    )
    .map_err(|m| invalid(ResponseError::InvalidConfig, m))?;
    check_log_config(&new.configs, &settings)?;
    name_is_free(&broker.metadata.image(), &new.name)?;
    let id = if validate_only {
        Uuid::nil()
    } else {
        Uuid::new_v4()
    };
    let planned = Arc::new(TopicRecord {
        name: new.name.clone(),
        id,
        partitions: assignment.len() as i32,
        configs: new.configs.clone(),
        partition_states: assignment
            .iter()
            .map(|replicas| PartitionState {
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: replicas.first().copied().unwrap_or(-1),
                leader_epoch: 0,
                partition_epoch: 0,
            })
            .collect(),
    });
    if validate_only {
        return Ok(planned);
    }
    let records = topic_creation_records(&new.name, id, new.configs, &assignment);
    let revision = propose(broker, records).await?;
    let view = broker.metadata.wait_published(revision).await?;
    view.topic(&new.name)
        .filter(|t| t.id == id)
        .cloned()
        .ok_or_else(|| unknown_topic(&new.name))
}

fn check_partition_limit(partitions: i32) -> Result<(), BrokerError> {
    if partitions > MAX_PARTITIONS_PER_TOPIC {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!("{partitions} partitions exceed the limit of {MAX_PARTITIONS_PER_TOPIC}"),
        ));
    }
    Ok(())
}

fn check_added_partitions(added: i32) -> Result<(), BrokerError> {
    if added > PARTITIONS_PER_CHANGE_MAX {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!("{added} new partitions in one request; at most {PARTITIONS_PER_CHANGE_MAX} can be added at once (add more with further CreatePartitions requests)"),
        ));
    }
    Ok(())
}

fn name_is_free(image: &Image, name: &str) -> Result<(), BrokerError> {
    if image.topics.contains_key(name) {
        return Err(invalid(
            ResponseError::TopicAlreadyExists,
            format!("topic '{name}' already exists"),
        ));
    }
    let key = collision_key(name);
    if let Some(other) = image.topics.keys().find(|t| collision_key(t) == key) {
        return Err(invalid(
            ResponseError::InvalidTopicException,
            format!("topic '{name}' collides with existing topic '{other}' ('.' and '_' are treated alike)"),
        ));
    }
    Ok(())
}

/// Checks explicit assignments numbered from `first_partition` (contiguous, in order) with
/// the controller's rules (known brokers, no duplicates, one replication factor) and returns
/// the replica lists.
fn numbered_assignment(
    image: &isthmus_controller::MetadataImage,
    assignments: &[(i32, Vec<i32>)],
    first_partition: i32,
) -> Result<Vec<Vec<i32>>, BrokerError> {
    for (i, (partition, _)) in assignments.iter().enumerate() {
        if *partition != first_partition + i as i32 {
            return Err(invalid(
                ResponseError::InvalidReplicaAssignment,
                format!("assignments must list partitions {first_partition}.. in order; found {partition} at position {i}"),
            ));
        }
    }
    let replicas: Vec<Vec<i32>> = assignments.iter().map(|(_, r)| r.clone()).collect();
    validate_assignment(image, &replicas)?;
    Ok(replicas)
}

/// Proposes `records` (the admin lock is held by the caller); a refusal leaves this node's
/// view caught up with what the refusal was based on, so a caller that retries or describes
/// the topic next sees it.
async fn propose(broker: &Broker, records: Vec<MetadataRecord>) -> Result<u64, BrokerError> {
    match broker.metadata.commit(records).await {
        Ok(revision) => Ok(revision),
        Err(e @ BrokerError::Controller(ControllerError::Rejected(_))) => {
            let seen = broker.metadata.controller_image().revision();
            let _ = broker.metadata.wait_published(seen).await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Grows a topic to `count` partitions (CreatePartitions).
pub fn add_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    validate_only: bool,
) -> Result<(), BrokerError> {
    broker.metadata.block_on(add_partitions_async(
        broker,
        name,
        count,
        assignments,
        validate_only,
    ))?
}

async fn add_partitions_async(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    validate_only: bool,
) -> Result<(), BrokerError> {
    let _admin = broker.admin.lock().await;
    let current = broker
        .metadata
        .image()
        .topic(name)
        .cloned()
        .ok_or_else(|| unknown_topic(name))?;
    if count <= current.partitions {
        return Err(invalid(
            ResponseError::InvalidPartitions,
            format!(
                "topic '{name}' has {} partitions; the new count {count} must be larger",
                current.partitions
            ),
        ));
    }
    check_partition_limit(count)?;
    let added = count - current.partitions;
    check_added_partitions(added)?;
    let image = broker.metadata.controller_image();
    let new_replicas: Vec<Vec<i32>> = match assignments {
        Some(assignments) => {
            if assignments.len() != added as usize {
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
            numbered_assignment(&image, &numbered, current.partitions)?
        }
        None => {
            // The topic's replication factor, leaders continuing where it left off.
            let rf = current
                .partition_states
                .first()
                .map_or(1, |p| p.replicas.len())
                .clamp(1, i16::MAX as usize) as i16;
            place_replicas(
                &placeable_brokers(&image),
                added,
                rf,
                current.partitions as usize,
            )?
        }
    };
    if validate_only {
        return Ok(());
    }
    let records = new_replicas
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id: current.id,
                partition: current.partitions + i as i32,
                isr: replicas.clone(),
                leader: replicas.first().copied().unwrap_or(-1),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            })
        })
        .collect();
    let revision = propose(broker, records).await?;
    broker.metadata.wait_published(revision).await?;
    tracing::info!(topic = name, partitions = count, "added partitions");
    Ok(())
}

/// Deletes a topic by name or id. Returns (name, id).
pub fn delete(
    broker: &Broker,
    name: Option<&str>,
    id: Option<Uuid>,
) -> Result<(String, Uuid), BrokerError> {
    broker.metadata.block_on(delete_async(broker, name, id))?
}

async fn delete_async(
    broker: &Broker,
    name: Option<&str>,
    id: Option<Uuid>,
) -> Result<(String, Uuid), BrokerError> {
    let _admin = broker.admin.lock().await;
    if !broker.node.delete_topic_enable {
        return Err(invalid(
            ResponseError::TopicDeletionDisabled,
            "topic deletion is disabled (delete.topic.enable=false)",
        ));
    }
    let image = broker.metadata.image();
    let topic = match (name, id) {
        (Some(n), _) => image.topic(n).ok_or_else(|| unknown_topic(n))?,
        (None, Some(id)) => image.topic_by_id(id).ok_or_else(|| {
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
    let revision = propose(
        broker,
        vec![MetadataRecord::RemoveTopic { topic_id: topic.id }],
    )
    .await
    .map_err(|e| match e {
        // Deleted concurrently (e.g. by another node): as if it never existed.
        BrokerError::Controller(ControllerError::Rejected(r))
            if r.code == RejectCode::UnknownTopicId =>
        {
            unknown_topic(&topic.name)
        }
        other => other,
    })?;
    broker.metadata.wait_published(revision).await?;
    Ok((topic.name.clone(), topic.id))
}

/// Replaces a topic's overrides (AlterConfigs) or applies them incrementally, after validation.
pub fn set_topic_configs(
    broker: &Broker,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), BrokerError>,
    validate_only: bool,
) -> Result<(), BrokerError> {
    broker.metadata.block_on(async {
        let _admin = broker.admin.lock().await;
        let current = broker
            .metadata
            .image()
            .topic(name)
            .cloned()
            .ok_or_else(|| unknown_topic(name))?;
        let mut configs = current.configs.clone();
        change(&mut configs)?;
        validate_overrides(configs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))))
            .map_err(|m| invalid(ResponseError::InvalidConfig, m))?;
        check_log_config(&configs, &broker.settings())?;
        if validate_only {
            return Ok(());
        }
        let resource = ConfigResource::Topic {
            name: name.to_string(),
        };
        let records = config_changes(&resource, &current.configs, &configs);
        if records.is_empty() {
            return Ok(());
        }
        let revision = propose(broker, records).await?;
        broker.metadata.wait_published(revision).await?;
        Ok(())
    })?
}

/// Replaces the dynamic broker defaults (cluster-wide) by `edit`'s result, after checking
/// that every topic's log accepts its settings under the new defaults.
pub fn set_broker_configs(
    broker: &Broker,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), BrokerError>,
    validate_only: bool,
) -> Result<(), BrokerError> {
    broker.metadata.block_on(async {
        let _admin = broker.admin.lock().await;
        let image = broker.metadata.image();
        let mut dynamic = image.broker_configs.clone();
        edit(&mut dynamic)?;
        let candidate = broker.settings_with_dynamic(&dynamic);
        for record in image.topics.values() {
            check_log_config(&record.configs, &candidate).map_err(|e| {
                invalid(
                    ResponseError::InvalidConfig,
                    format!("topic '{}' would get invalid settings: {e}", record.name),
                )
            })?;
        }
        if validate_only {
            return Ok(());
        }
        let records = config_changes(
            &ConfigResource::ClusterDefault,
            &image.broker_configs,
            &dynamic,
        );
        if records.is_empty() {
            return Ok(());
        }
        let revision = propose(broker, records).await?;
        broker.metadata.wait_published(revision).await?;
        Ok(())
    })?
}

/// The records that turn config map `old` into `new`.
fn config_changes(
    resource: &ConfigResource,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        records.push(MetadataRecord::DeleteConfig {
            resource: resource.clone(),
            key: key.clone(),
        });
    }
    for (key, value) in new {
        if old.get(key) != Some(value) {
            records.push(MetadataRecord::SetConfig {
                resource: resource.clone(),
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    records
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_set_what_differs_and_delete_what_is_gone() {
        let old: BTreeMap<String, String> = [("a", "1"), ("b", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let new: BTreeMap<String, String> = [("b", "2"), ("c", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = config_changes(&ConfigResource::ClusterDefault, &old, &new);
        assert_eq!(
            r,
            vec![
                MetadataRecord::DeleteConfig {
                    resource: ConfigResource::ClusterDefault,
                    key: "a".into()
                },
                MetadataRecord::SetConfig {
                    resource: ConfigResource::ClusterDefault,
                    key: "c".into(),
                    value: "3".into()
                },
            ]
        );
        assert!(config_changes(&ConfigResource::ClusterDefault, &new, &new).is_empty());
    }
}
