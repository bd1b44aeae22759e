//! Reading and writing `__consumer_offsets`: created on first use (Kafka's defaults for the
//! internal topic), appended to as a local leader append, and read back at startup.

use std::collections::BTreeMap;
use std::sync::Arc;

use isthmus_protocol::batch::{self, BatchBuilder};
use kafka_protocol::error::ResponseError;

use super::records::{decode, partition_for, OffsetsRecord, OFFSETS_TOPIC};
use crate::broker::{now_ms, Broker};
use crate::error::BrokerError;
use crate::replica::Partition;
use crate::topics::{self, NewTopic};

/// Kafka's offsets.topic.segment.bytes default: small segments keep loading fast.
const OFFSETS_SEGMENT_BYTES: &str = "104857600";
/// Largest read while loading a partition.
const LOAD_READ_BYTES: usize = 8 << 20;

/// Creates the internal topic if it does not exist yet.
pub fn ensure_topic(broker: &Broker) -> Result<(), BrokerError> {
    // Checked on the replicas, not the image: the image names a topic before its logs are
    // open, and a concurrent creator finishes under the admin lock before we get it.
    if broker.replicas.topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let mut configs = BTreeMap::new();
    configs.insert(
        "segment.bytes".to_string(),
        OFFSETS_SEGMENT_BYTES.to_string(),
    );
    // Kafka's internal-topic setting: only the latest record per group and partition matters.
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    let new = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: broker.groups.config.offsets_partitions,
        replication_factor: -1,
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

fn partition(broker: &Broker, group: &str) -> Result<Arc<Partition>, BrokerError> {
    let index = partition_for(group, broker.groups.config.offsets_partitions);
    broker
        .replicas
        .partition(OFFSETS_TOPIC, index)
        .ok_or_else(|| {
            BrokerError::kafka(
                ResponseError::CoordinatorNotAvailable,
                "the offsets topic is not available",
            )
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

/// Every record of the topic, partition by partition, in log order.
pub fn load_all(broker: &Broker) -> Vec<OffsetsRecord> {
    let mut out = Vec::new();
    let Some(topic) = broker.replicas.topic(OFFSETS_TOPIC) else {
        return out;
    };
    for p in &topic.partitions {
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
            for info in
                batch::batches(&read.records, batch::Validation::Stored).map_while(Result::ok)
            {
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
    }
    out
}
