//! Import of metadata written by the single-node store that came before the Raft quorum:
//! `<dir>/metadata/image.json` (topics with ids, partition counts, configs and leader
//! epochs; dynamic broker settings) and `<dir>/metadata/producer-id-block` (the end of the
//! last reserved producer-id block).
//!
//! At the first start with the quorum, the old `metadata` folder is renamed to
//! [`LEGACY_DIR`] (the quorum's folder takes its name), the records that recreate its content
//! are proposed (topics keep their ids, partition counts, configs and leader epochs; the
//! producer-id counter moves past every id handed out), and the folder is renamed to
//! [`IMPORTED_DIR`]. Each step can be interrupted: [`import_records`] only returns what the
//! quorum's image still lacks, so a restart finishes the job without duplicating anything.

use std::collections::BTreeMap;
use std::path::Path;

use isthmus_controller::image::PRODUCER_ID_BLOCK_SIZE_MAX;
use isthmus_controller::records::{
    ConfigResource, MetadataRecord, PartitionRecord, ProducerIdsRecord, TopicRecord,
};
use isthmus_controller::MetadataImage;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::BrokerError;

/// The old store's image file.
pub const IMAGE_FILE: &str = "image.json";
/// The old store's producer-id reservation file.
pub const PRODUCER_ID_FILE: &str = "producer-id-block";
/// Where the old `metadata` folder waits while it is imported.
pub const LEGACY_DIR: &str = "metadata-legacy";
/// Where it is kept once imported (remove it at will).
pub const IMPORTED_DIR: &str = "metadata-legacy.imported";
/// Records per import proposal; keeps each well inside the controller's proposal bound.
pub const IMPORT_RECORDS_PER_PROPOSAL: usize = 5_000;

#[derive(Debug, Clone, Deserialize)]
struct LegacyTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
    #[serde(default)]
    leader_epoch: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct LegacyImage {
    #[serde(default)]
    topics: BTreeMap<String, LegacyTopic>,
    #[serde(default)]
    broker_configs: BTreeMap<String, String>,
}

/// What the old store held.
#[derive(Debug, Clone, Default)]
pub struct Legacy {
    image: LegacyImage,
    /// First producer id not yet reserved (0 when no id was ever handed out).
    producer_id_end: i64,
}

impl Legacy {
    pub fn topic_count(&self) -> usize {
        self.image.topics.len()
    }
}

/// True when `dir` holds only files of the old store (so it may be moved aside and
/// imported), false when it is empty or holds anything else.
pub fn holds_only_legacy_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut any = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let known = [IMAGE_FILE, PRODUCER_ID_FILE]
            .iter()
            .any(|f| name == *f || name == format!("{f}.tmp"));
        if !known {
            return false;
        }
        any = true;
    }
    any
}

/// Reads the old store's files from `dir` (either may be missing).
pub fn read(dir: &Path) -> Result<Legacy, BrokerError> {
    let image_path = dir.join(IMAGE_FILE);
    let image = match std::fs::read(&image_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            BrokerError::Fatal(format!(
                "the old metadata file {} cannot be imported: {e}; restore it from a backup or remove {} to start without its topics",
                image_path.display(),
                dir.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LegacyImage::default(),
        Err(e) => return Err(BrokerError::io(&image_path, e)),
    };
    let pid_path = dir.join(PRODUCER_ID_FILE);
    let producer_id_end = match std::fs::read_to_string(&pid_path) {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| {
                BrokerError::Fatal(format!(
                    "{} is damaged: expected a non-negative number, found {text:?}",
                    pid_path.display()
                ))
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(BrokerError::io(&pid_path, e)),
    };
    for (key, t) in &image.topics {
        if *key != t.name || t.partitions < 1 || t.id.is_nil() {
            return Err(BrokerError::Fatal(format!(
                "the old metadata file {} has an inconsistent entry for topic '{key}'; repair or remove it",
                image_path.display()
            )));
        }
    }
    Ok(Legacy {
        image,
        producer_id_end,
    })
}

/// The proposals that bring `current` up to what `legacy` holds, hosted on `node_id`
/// (registered with `broker_epoch`). Empty when everything is already there. Refuses a
/// topic the quorum knows under another id.
pub fn import_records(
    legacy: &Legacy,
    current: &MetadataImage,
    node_id: i32,
    broker_epoch: i64,
) -> Result<Vec<Vec<MetadataRecord>>, BrokerError> {
    // Units are records that must share a proposal; they are packed in order.
    let mut units: Vec<Vec<MetadataRecord>> = Vec::new();
    let partition = |topic_id: Uuid, index: i32, leader_epoch: i32| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: index,
            replicas: vec![node_id],
            isr: vec![node_id],
            leader: node_id,
            leader_epoch,
            partition_epoch: 0,
        })
    };
    for t in legacy.image.topics.values() {
        let have = match current.topic_by_name(&t.name) {
            Some(existing) if existing.topic_id != t.id => {
                return Err(BrokerError::Fatal(format!(
                    "cannot import topic '{}' (id {}): the metadata quorum already has it with id {}",
                    t.name, t.id, existing.topic_id
                )))
            }
            Some(existing) => existing.partitions.len() as i32,
            None => {
                units.push(vec![
                    MetadataRecord::CreateTopic(TopicRecord {
                        name: t.name.clone(),
                        topic_id: t.id,
                        configs: t.configs.clone(),
                    }),
                    partition(t.id, 0, t.leader_epoch),
                ]);
                1
            }
        };
        for index in have..t.partitions {
            units.push(vec![partition(t.id, index, t.leader_epoch)]);
        }
    }
    for (key, value) in &legacy.image.broker_configs {
        if current.cluster_configs().get(key) != Some(value) {
            units.push(vec![MetadataRecord::SetConfig {
                resource: ConfigResource::ClusterDefault,
                key: key.clone(),
                value: value.clone(),
            }]);
        }
    }
    let mut next = current.next_producer_id();
    while next < legacy.producer_id_end {
        let block_size = (legacy.producer_id_end - next).min(PRODUCER_ID_BLOCK_SIZE_MAX);
        units.push(vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: node_id,
            broker_epoch,
            first_producer_id: next,
            block_size,
        })]);
        next += block_size;
    }
    let mut proposals: Vec<Vec<MetadataRecord>> = Vec::new();
    for unit in units {
        match proposals.last_mut() {
            Some(last) if last.len() + unit.len() <= IMPORT_RECORDS_PER_PROPOSAL => {
                last.extend(unit)
            }
            _ => proposals.push(unit),
        }
    }
    Ok(proposals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy_dir(topics: &[(&str, Uuid, i32, i32)], pid_end: Option<i64>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let topics: serde_json::Map<String, serde_json::Value> = topics
            .iter()
            .map(|(name, id, partitions, epoch)| {
                (
                    name.to_string(),
                    serde_json::json!({"name": name, "id": id, "partitions": partitions,
                        "configs": {"retention.ms": "1000"}, "leader_epoch": epoch}),
                )
            })
            .collect();
        let image = serde_json::json!({"revision": 3, "topics": topics,
            "broker_configs": {"log.retention.ms": "5000"}});
        std::fs::write(dir.path().join(IMAGE_FILE), image.to_string()).unwrap();
        if let Some(end) = pid_end {
            std::fs::write(dir.path().join(PRODUCER_ID_FILE), end.to_string()).unwrap();
        }
        dir
    }

    fn registered(node: i32) -> (MetadataImage, i64) {
        use isthmus_controller::records::{
            BrokerEndpoint, BrokerRegistrationRecord, MetadataProposal,
        };
        let img = MetadataImage::default()
            .apply(
                1,
                &MetadataProposal::new(vec![MetadataRecord::RegisterBroker(
                    BrokerRegistrationRecord {
                        broker_id: node,
                        incarnation_id: Uuid::new_v4(),
                        rack: None,
                        endpoints: vec![BrokerEndpoint {
                            name: "PLAINTEXT".into(),
                            host: "127.0.0.1".into(),
                            port: 9092,
                            security_protocol: "PLAINTEXT".into(),
                        }],
                    },
                )]),
            )
            .unwrap();
        let img = img
            .apply(
                2,
                &MetadataProposal::new(vec![MetadataRecord::UnfenceBroker {
                    broker_id: node,
                    broker_epoch: 1,
                }]),
            )
            .unwrap();
        (img, 1)
    }

    fn apply_all(mut img: MetadataImage, proposals: &[Vec<MetadataRecord>]) -> MetadataImage {
        use isthmus_controller::records::MetadataProposal;
        for p in proposals {
            let rev = img.revision() + 1;
            img = img.apply(rev, &MetadataProposal::new(p.clone())).unwrap();
        }
        img
    }

    #[test]
    fn import_keeps_ids_partitions_configs_epochs_and_producer_ids() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let dir = legacy_dir(&[("a", a, 3, 2), ("b.x", b, 1, 0)], Some(2000));
        assert!(holds_only_legacy_files(dir.path()));
        let legacy = read(dir.path()).unwrap();
        let (img, epoch) = registered(1);
        let proposals = import_records(&legacy, &img, 1, epoch).unwrap();
        let img = apply_all(img, &proposals);
        let ta = img.topic_by_name("a").unwrap();
        assert_eq!(ta.topic_id, a);
        assert_eq!(ta.partitions.len(), 3);
        assert_eq!(ta.partitions[&2].leader_epoch, 2);
        assert_eq!(ta.partitions[&2].replicas, vec![1]);
        assert_eq!(
            ta.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(img.topic_by_name("b.x").unwrap().topic_id, b);
        assert_eq!(
            img.cluster_configs()
                .get("log.retention.ms")
                .map(String::as_str),
            Some("5000")
        );
        assert_eq!(img.next_producer_id(), 2000);
        // A second run finds nothing left to do.
        assert!(import_records(&legacy, &img, 1, epoch).unwrap().is_empty());
    }

    #[test]
    fn an_interrupted_import_finishes_and_conflicts_are_refused() {
        let a = Uuid::new_v4();
        let dir = legacy_dir(&[("big", a, 12_000, 0)], None);
        let legacy = read(dir.path()).unwrap();
        let (img, epoch) = registered(1);
        let proposals = import_records(&legacy, &img, 1, epoch).unwrap();
        assert!(
            proposals.len() >= 3,
            "large topics are split over proposals"
        );
        // Only the first proposal made it before a crash.
        let partial = apply_all(img, &proposals[..1]);
        let rest = import_records(&legacy, &partial, 1, epoch).unwrap();
        let done = apply_all(partial, &rest);
        assert_eq!(done.topic_by_name("big").unwrap().partitions.len(), 12_000);

        let other = legacy_dir(&[("big", Uuid::new_v4(), 1, 0)], None);
        let e = import_records(&read(other.path()).unwrap(), &done, 1, epoch).unwrap_err();
        assert!(e.to_string().contains("already has it"), "{e}");
    }

    #[test]
    fn damaged_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IMAGE_FILE), b"{not json").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("image.json") && e.contains("cannot be imported"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PRODUCER_ID_FILE), b"x").unwrap();
        assert!(holds_only_legacy_files(dir.path()));
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        assert!(!holds_only_legacy_files(dir.path()));
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("producer-id-block"), "{e}");
    }
}
