//! The broker's view of the cluster metadata: [`Image`], built from the controller's
//! `MetadataImage` at each revision, and the atomic file write the identity files use.
//!
//! The view keeps what handlers ask for by topic *name* (the controller keys topics by id):
//! each topic's id, partition count, config overrides and, per partition, replicas, ISR,
//! leader and epochs. Dynamic broker settings are the cluster-wide defaults.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use isthmus_controller::image::BrokerRegistration;
use isthmus_controller::MetadataImage;
use uuid::Uuid;

use crate::error::BrokerError;

/// One partition's replica state, from the controller's partition records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// A broker id, or -1 (no leader).
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// One topic as the cluster knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level overrides only; defaults come from the broker settings.
    pub configs: BTreeMap<String, String>,
    /// Partition `i`'s state at index `i` (`partitions` entries).
    pub partition_states: Vec<PartitionState>,
}

impl TopicRecord {
    pub fn partition(&self, index: i32) -> Option<&PartitionState> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partition_states.get(i))
    }

    /// The partitions whose replicas include `node_id`.
    pub fn hosted_on(&self, node_id: i32) -> impl Iterator<Item = i32> + '_ {
        self.partition_states
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.replicas.contains(&node_id))
            .map(|(i, _)| i as i32)
    }
}

/// Everything the metadata layer knows at one revision (the controller's log index).
#[derive(Debug, Clone, Default)]
pub struct Image {
    pub revision: u64,
    pub topics: BTreeMap<String, Arc<TopicRecord>>,
    /// Cluster-wide dynamic broker settings set through the admin APIs.
    pub broker_configs: BTreeMap<String, String>,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
}

impl Image {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicRecord>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicRecord>> {
        self.topics.values().find(|t| t.id == id)
    }

    /// The broker's view of `image`. Topic records of `previous` are reused when unchanged,
    /// so holders of an `Arc<TopicRecord>` can tell changes by pointer.
    pub fn from_controller(image: &MetadataImage, previous: Option<&Image>) -> Image {
        let mut topics = BTreeMap::new();
        for t in image.topics() {
            let partition_states: Vec<PartitionState> = t
                .partitions
                .values()
                .map(|p| PartitionState {
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                })
                .collect();
            let record = TopicRecord {
                name: t.name.clone(),
                id: t.topic_id,
                partitions: partition_states.len() as i32,
                configs: t.configs.clone(),
                partition_states,
            };
            let record = match previous.and_then(|p| p.topics.get(&t.name)) {
                Some(old) if **old == record => old.clone(),
                _ => Arc::new(record),
            };
            topics.insert(t.name.clone(), record);
        }
        Image {
            revision: image.revision(),
            topics,
            broker_configs: image.cluster_configs().clone(),
            brokers: image.brokers().clone(),
        }
    }
}

/// tmp file, fsync, rename over the old file, fsync the directory: a crash leaves either the
/// old or the new content, never a mix.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BrokerError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| BrokerError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| BrokerError::io(&tmp, e))?;
    f.sync_all().map_err(|e| BrokerError::io(&tmp, e))?;
    std::fs::rename(&tmp, &target).map_err(|e| BrokerError::io(&target, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BrokerError::io(dir, e))?;
    Ok(())
}
