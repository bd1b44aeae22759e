//! The broker's view of the cluster metadata: [`Image`], built from the controller's
//! `MetadataImage` at each revision, and the atomic file write the identity files use.
//!
//! The view keeps what handlers ask for by topic *name* (the controller keys topics by id):
//! each topic's id, partition count, config overrides and, per partition, replicas, ISR,
//! leader and epochs. Dynamic broker settings are the cluster-wide defaults.

use std::collections::BTreeMap;
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
    isthmus_storage::durable::write_atomically(dir, name, bytes)
        .map_err(|(path, e)| BrokerError::io(&path, e))
}

/// Makes creations, renames and unlinks in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), BrokerError> {
    isthmus_storage::durable::sync_dir(dir).map_err(|e| BrokerError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use isthmus_controller::placement::topic_creation_records;
    use isthmus_controller::records::{
        BrokerEndpoint, BrokerRegistrationRecord, ConfigResource, MetadataProposal, MetadataRecord,
        PartitionChangeRecord,
    };

    use super::*;

    fn apply(img: &MetadataImage, records: Vec<MetadataRecord>) -> MetadataImage {
        img.apply(img.revision() + 1, &MetadataProposal::new(records))
            .unwrap()
    }

    #[test]
    fn the_view_follows_the_controller_image_and_reuses_unchanged_topics() {
        let mut img = apply(
            &MetadataImage::default(),
            vec![MetadataRecord::RegisterBroker(BrokerRegistrationRecord {
                broker_id: 1,
                incarnation_id: Uuid::new_v4(),
                rack: Some("a".into()),
                endpoints: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                }],
            })],
        );
        img = apply(
            &img,
            vec![MetadataRecord::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 1,
            }],
        );
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        img = apply(
            &img,
            topic_creation_records("a", a, BTreeMap::new(), &[vec![1], vec![1]]),
        );
        img = apply(
            &img,
            topic_creation_records("b", b, BTreeMap::new(), &[vec![1]]),
        );
        let first = Image::from_controller(&img, None);
        assert_eq!(first.revision, img.revision());
        let ta = first.topic("a").unwrap();
        assert_eq!((ta.id, ta.partitions), (a, 2));
        assert_eq!(ta.partition(1).unwrap().replicas, vec![1]);
        assert_eq!(first.topic_by_id(b).unwrap().name, "b");
        assert!(!first.brokers[&1].fenced);

        img = apply(
            &img,
            vec![
                MetadataRecord::SetConfig {
                    resource: ConfigResource::Topic { name: "b".into() },
                    key: "retention.ms".into(),
                    value: "5".into(),
                },
                MetadataRecord::SetConfig {
                    resource: ConfigResource::ClusterDefault,
                    key: "log.retention.ms".into(),
                    value: "7".into(),
                },
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id: b,
                    partition: 0,
                    leader: Some(-1),
                    ..Default::default()
                }),
            ],
        );
        let second = Image::from_controller(&img, Some(&first));
        assert!(Arc::ptr_eq(
            first.topic("a").unwrap(),
            second.topic("a").unwrap()
        ));
        let tb = second.topic("b").unwrap();
        assert_eq!(
            tb.configs.get("retention.ms").map(String::as_str),
            Some("5")
        );
        assert_eq!(tb.partition(0).unwrap().leader, -1);
        assert_eq!(tb.partition(0).unwrap().partition_epoch, 1);
        assert_eq!(
            second
                .broker_configs
                .get("log.retention.ms")
                .map(String::as_str),
            Some("7")
        );
    }
}
