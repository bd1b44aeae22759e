//! Reading and writing `__consumer_offsets`: created on first use (Kafka's defaults for the
//! internal topic), appended to by the partition's leader (the group's coordinator), and
//! read back partition by partition whenever this broker becomes a partition's leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use isthmus_protocol::batch::{self, BatchBuilder};
use kafka_protocol::error::ResponseError;

use super::records::{decode, partition_for, OffsetsRecord, OFFSETS_TOPIC};
use crate::broker::{now_ms, Broker};
use crate::error::BrokerError;
use crate::metadata::Image;
use crate::replica::Partition;
use crate::topics::{self, NewTopic};

/// Kafka's offsets.topic.segment.bytes default: small segments keep loading fast.
const OFFSETS_SEGMENT_BYTES: &str = "104857600";
/// Largest read while loading a partition.
const LOAD_READ_BYTES: usize = 8 << 20;

/// Creates the internal topic if it does not exist yet.
pub fn ensure_topic(broker: &Broker) -> Result<(), BrokerError> {
    // The published image, not the local replicas: this broker may host none of the
    // partitions. The published view is reconciled, so a topic there has its logs open.
    if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let mut configs = BTreeMap::new();
    configs.insert(
        "segment.bytes".to_string(),
        OFFSETS_SEGMENT_BYTES.to_string(),
    );
    // Kafka's internal-topic setting: only the latest record per group and partition matters.
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    // Kafka waits until that many brokers are up; one node must work without settings, so
    // the factor is capped at the brokers active now (logged, as it is for good).
    let wanted = broker
        .node
        .settings
        .i64("offsets.topic.replication.factor")
        .unwrap_or(3);
    let active = broker
        .metadata
        .controller_image()
        .brokers()
        .values()
        .filter(|b| b.is_active())
        .count()
        .max(1) as i64;
    if active < wanted {
        tracing::warn!(
            wanted,
            active,
            "creating __consumer_offsets with fewer replicas than offsets.topic.replication.factor: only {active} broker(s) are active"
        );
    }
    let new = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: broker.groups.config.offsets_partitions,
        replication_factor: wanted.min(active) as i16,
        assignments: Vec::new(),
        configs,
    };
    match topics::create(broker, new, false) {
        Ok(_) => Ok(()),
        Err(BrokerError::Kafka {
            error: ResponseError::TopicAlreadyExists,
            ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The broker coordinating `group`: the leader of its offsets partition in `image`.
/// COORDINATOR_NOT_AVAILABLE while the topic is being created or the partition has no
/// leader.
pub fn coordinator(image: &Image, group: &str) -> Result<i32, ResponseError> {
    let topic = image
        .topic(OFFSETS_TOPIC)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let index = partition_for(group, topic.partitions);
    match topic.partition(index) {
        Some(p) if p.leader >= 0 => Ok(p.leader),
        _ => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// The group's offsets partition, when this broker leads it.
fn partition(broker: &Broker, group: &str) -> Result<Arc<Partition>, BrokerError> {
    let index = broker.groups.partition_of(group);
    let image = broker.metadata.image();
    broker
        .replicas
        .leader_partition(&image, OFFSETS_TOPIC, index)
        .map_err(|e| match e {
            ResponseError::NotLeaderOrFollower => BrokerError::kafka(
                ResponseError::NotCoordinator,
                "this broker does not lead the group's offsets partition",
            ),
            _ => BrokerError::kafka(
                ResponseError::CoordinatorNotAvailable,
                "the offsets topic is not available",
            ),
        })
}

/// Appends (key, value-or-tombstone) records for `group` in one batch; returns the partition
/// and the offset the batch ends at, for callers that must wait until it is durable.
pub fn append(
    broker: &Broker,
    group: &str,
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<(Arc<Partition>, i64), BrokerError> {
    let partition = partition(broker, group)?;
    if records.is_empty() {
        let end = partition.with_log(|log| Ok(log.log_end_offset()))?;
        return Ok((partition, end));
    }
    let now = now_ms();
    let mut builder = BatchBuilder::new(0);
    for (key, value) in &records {
        builder = builder.record(now, Some(key), value.as_deref(), &[]);
    }
    let bytes = builder.build();
    match partition.append(&bytes, now)? {
        isthmus_storage::AppendOutcome::Appended { last_offset, .. } => {
            Ok((partition, last_offset + 1))
        }
        isthmus_storage::AppendOutcome::Duplicate { last_offset, .. } => {
            Ok((partition, last_offset + 1))
        }
    }
}

/// Makes the group coordinator follow `image`: it coordinates the groups of the offsets
/// partitions this broker leads, loading a partition's groups from its log when it gains
/// the leadership and dropping them when it loses it. Runs at startup and on every
/// metadata change, before the image is published, so requests never see a led partition
/// whose groups are not loaded.
pub fn follow_leadership(broker: &Broker, image: &Image) {
    let me = broker.node_id();
    let topic = image.topic(OFFSETS_TOPIC);
    let partitions = topic.map(|t| t.partitions);
    let led: BTreeSet<i32> = topic
        .map(|t| {
            t.partition_states
                .iter()
                .enumerate()
                .filter(|(_, p)| p.leader == me)
                .map(|(i, _)| i as i32)
                .collect()
        })
        .unwrap_or_default();
    let loaded = broker
        .groups
        .partitions_to_load(partitions, &led)
        .into_iter()
        .map(|index| {
            let records = broker
                .replicas
                .partition(OFFSETS_TOPIC, index)
                .map(|p| read_partition(&p))
                .unwrap_or_default();
            (index, records)
        })
        .collect();
    broker.groups.set_leadership(partitions, led, loaded);
}

/// Every record of one offsets partition, in log order. A read error stops the load there
/// (logged): the offsets after it are missing rather than the broker down.
fn read_partition(p: &Partition) -> Vec<OffsetsRecord> {
    let mut out = Vec::new();
    let end = p.with_log(|log| Ok(log.log_end_offset())).unwrap_or(0);
    let mut offset = p.log_start_offset().max(0);
    while offset < end {
        let read = match p.with_log(|log| Ok(log.read(offset, LOAD_READ_BYTES, end, true)?)) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(partition = p.index, offset, error = %e, "cannot read the offsets topic; offsets after this point are not loaded");
                break;
            }
        };
        if read.records.is_empty() || read.next_offset <= offset {
            break;
        }
        for info in batch::batches(&read.records, batch::Validation::Stored).map_while(Result::ok) {
            let bytes = &read.records[info.range()];
            let Ok(records) = batch::records(bytes) else {
                continue;
            };
            for r in records.map_while(Result::ok) {
                if let Some(decoded) = r.key.and_then(|k| decode(k, r.value)) {
                    out.push(decoded);
                }
            }
        }
        offset = read.next_offset;
    }
    out
}
