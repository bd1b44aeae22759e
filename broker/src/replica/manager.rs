//! The partitions this node hosts, kept in step with the metadata image: opened at startup
//! (with crash recovery when the last stop was not clean), then created, grown, reconfigured
//! and deleted as each new image says ([`ReplicaManager::reconcile`]: the partitions whose
//! replica list names this node), and closed cleanly on shutdown. Client requests reach a
//! partition only through [`ReplicaManager::leader_partition`]: a local replica is not
//! enough, the image must name this node its leader.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use isthmus_storage::Log;
use kafka_protocol::error::ResponseError;
use parking_lot::RwLock;

use super::hw_checkpoint;
use super::partition::Partition;
use crate::broker::now_ms;
use crate::config::topic::TopicSettings;
use crate::config::Settings;
use crate::error::BrokerError;
use crate::metadata::names::validate_topic_name;
use crate::metadata::store::sync_dir;
use crate::metadata::store::PartitionState;
use crate::metadata::{Image, TopicRecord};

/// Written on clean shutdown, removed once the node is up: its absence at startup means the
/// logs need recovery.
const CLEAN_SHUTDOWN_MARKER: &str = ".clean_shutdown";

/// A topic's local partitions, replaced as a whole when the topic changes.
pub struct TopicReplicas {
    pub record: Arc<TopicRecord>,
    /// The partitions this node hosts, by ascending index.
    pub partitions: Vec<Arc<Partition>>,
}

pub struct ReplicaManager {
    node_id: i32,
    log_dirs: Vec<PathBuf>,
    topics: RwLock<HashMap<String, Arc<TopicReplicas>>>,
}

impl ReplicaManager {
    /// Opens every partition the image places on this node, recovering logs after an
    /// unclean stop, sets aside directories of partitions the image does not place here,
    /// and creates any the image has but the disk lacks (a crash between the metadata
    /// commit and the directory creation).
    pub fn load(
        log_dirs: &[PathBuf],
        image: &Image,
        settings: &Settings,
        node_id: i32,
    ) -> Result<ReplicaManager, BrokerError> {
        let mut found: HashMap<(String, i32), PathBuf> = HashMap::new();
        let mut clean = true;
        for dir in log_dirs {
            if !dir.join(CLEAN_SHUTDOWN_MARKER).exists() {
                clean = false;
            }
            let entries = std::fs::read_dir(dir).map_err(|e| BrokerError::io(dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| BrokerError::io(dir, e))?;
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with("-delete") {
                    tracing::info!(dir = %entry.path().display(), "removing a partition whose deletion was interrupted");
                    std::fs::remove_dir_all(entry.path())
                        .map_err(|e| BrokerError::io(&entry.path(), e))?;
                    continue;
                }
                let Some((topic, index)) = parse_partition_dir(&name) else {
                    continue;
                };
                if let Some(other) = found.insert((topic.clone(), index), dir.clone()) {
                    return Err(BrokerError::Fatal(format!(
                        "partition {topic}-{index} exists in both {} and {}; remove the stale copy",
                        other.display(),
                        dir.display()
                    )));
                }
            }
        }
        let manager = ReplicaManager {
            node_id,
            log_dirs: log_dirs.to_vec(),
            topics: RwLock::new(HashMap::new()),
        };
        for ((topic, index), dir) in &found {
            let known = image.topic(topic).is_some_and(|t| {
                t.partition(*index)
                    .is_some_and(|p| p.replicas.contains(&node_id))
            });
            if !known {
                set_aside_stray(dir, &format!("{topic}-{index}"))?;
            }
        }
        if !clean && !found.is_empty() {
            tracing::warn!("the last shutdown was not clean; recovering logs");
        }
        let checkpointed: HashMap<PathBuf, HashMap<(String, i32), i64>> = log_dirs
            .iter()
            .map(|d| (d.clone(), hw_checkpoint::read(d)))
            .collect();
        let now = now_ms();
        for record in image.topics.values() {
            let topic_settings = TopicSettings::resolve(&record.configs, settings);
            let mut partitions = Vec::new();
            for index in record.hosted_on(node_id) {
                let dir = match found.get(&(record.name.clone(), index)) {
                    Some(dir) => dir.clone(),
                    None => manager.pick_log_dir(&partitions),
                };
                let hw = checkpointed
                    .get(&dir)
                    .and_then(|c| c.get(&(record.name.clone(), index)))
                    .copied();
                let p = open_or_offline(&dir, record, index, &topic_settings, clean, hw);
                if let Some(state) = record.partition(index) {
                    p.apply_state(state, node_id, now);
                }
                partitions.push(p);
            }
            manager.topics.write().insert(
                record.name.clone(),
                Arc::new(TopicReplicas {
                    record: record.clone(),
                    partitions,
                }),
            );
        }
        for dir in log_dirs {
            let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
            if marker.exists() {
                std::fs::remove_file(&marker).map_err(|e| BrokerError::io(&marker, e))?;
                sync_dir(dir)?;
            }
        }
        Ok(manager)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicReplicas>> {
        self.topics.read().get(name).cloned()
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The local replica of `topic`-`index` when `image` names this node its leader: the
    /// one replica that serves clients (see [`check_leader`] for the refusals). A led
    /// partition whose log is offline is returned all the same, so its requests fail with
    /// KAFKA_STORAGE_ERROR as they always did.
    pub fn leader_partition(
        &self,
        image: &Image,
        topic: &str,
        index: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        check_leader(image, self.node_id, topic, index)?;
        // Led here but not open: only while a newer image is being reconciled (the
        // published one is reconciled first). Kafka answers NOT_LEADER_OR_FOLLOWER for a
        // partition the metadata has but this broker does not host; the client retries.
        self.partition(topic, index)
            .ok_or(ResponseError::NotLeaderOrFollower)
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read();
        let t = topics.get(topic)?;
        // Every partition is local on a single node, so the index is the position.
        let by_position = usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .filter(|p| p.index == index);
        by_position
            .or_else(|| {
                t.partitions
                    .binary_search_by_key(&index, |p| p.index)
                    .ok()
                    .map(|i| &t.partitions[i])
            })
            .cloned()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.log_dirs
    }

    /// Brings the local partitions in line with `image`: deletes those of topics that are
    /// gone (or were recreated under a new id) and those no longer placed here, opens new
    /// ones, and hands changed settings (`settings_changed`: the dynamic broker defaults
    /// moved) and leader epochs to the open ones. A partition whose log cannot be created
    /// stays offline (KAFKA_STORAGE_ERROR) rather than stopping the others.
    pub fn reconcile(&self, image: &Image, settings: &Settings, settings_changed: bool) {
        let open: Vec<(String, Arc<TopicReplicas>)> = self
            .topics
            .read()
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        for (name, local) in &open {
            let gone = image
                .topic(name)
                .is_none_or(|record| record.id != local.record.id);
            if gone {
                if let Err(e) = self.delete_topic(name) {
                    tracing::error!(topic = %name, error = %e, "deleting the topic's logs failed");
                } else {
                    tracing::info!(topic = %name, id = %local.record.id, "deleted topic");
                }
            }
        }
        for record in image.topics.values() {
            let local = self.topic(&record.name);
            if let Some(l) = &local {
                if Arc::ptr_eq(&l.record, record) && !settings_changed {
                    continue;
                }
            }
            let configs_changed = settings_changed
                || local
                    .as_ref()
                    .is_none_or(|l| l.record.configs != record.configs);
            let topic_settings = TopicSettings::resolve(&record.configs, settings);
            let mut old: BTreeMap<i32, Arc<Partition>> = local
                .as_ref()
                .map(|l| l.partitions.iter().map(|p| (p.index, p.clone())).collect())
                .unwrap_or_default();
            let mut partitions: Vec<Arc<Partition>> = Vec::new();
            let mut opened = 0;
            let now = now_ms();
            for index in record.hosted_on(self.node_id) {
                let p = match old.remove(&index) {
                    Some(p) => {
                        if configs_changed {
                            p.update_settings(topic_settings.clone());
                        }
                        p
                    }
                    None => {
                        let dir = self.pick_log_dir(&partitions);
                        opened += 1;
                        open_or_offline(&dir, record, index, &topic_settings, true, None)
                    }
                };
                if let Some(state) = record.partition(index) {
                    p.apply_state(state, self.node_id, now);
                }
                partitions.push(p);
            }
            for p in old.values() {
                if let Some(log) = p.take_log() {
                    if let Err(e) = log.delete() {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "deleting a partition moved off this node failed");
                    }
                }
            }
            if local.is_none() {
                tracing::info!(topic = %record.name, partitions = record.partitions, id = %record.id, "created topic");
            } else if opened > 0 {
                tracing::info!(topic = %record.name, partitions = record.partitions, "added partitions");
            }
            self.topics.write().insert(
                record.name.clone(),
                Arc::new(TopicReplicas {
                    record: record.clone(),
                    partitions,
                }),
            );
        }
    }

    /// Removes a topic's partitions and deletes their data. Every partition is attempted;
    /// the first failure is reported.
    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let Some(t) = self.topics.write().remove(name) else {
            return Ok(());
        };
        let mut first_error = None;
        for p in &t.partitions {
            if let Some(log) = p.take_log() {
                if let Err(e) = log.delete() {
                    tracing::error!(topic = name, partition = p.index, error = %e, "deleting the partition's log failed");
                    first_error.get_or_insert(BrokerError::from(e));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes every log dir's high-watermark checkpoint (see [`hw_checkpoint`]).
    pub fn checkpoint_high_watermarks(&self) -> Result<(), BrokerError> {
        let partitions = self.all_partitions();
        for dir in &self.log_dirs {
            let entries: Vec<(String, i32, i64)> = partitions
                .iter()
                .filter(|p| &p.log_dir == dir && !p.has_failed())
                .map(|p| (p.topic.clone(), p.index, p.high_watermark()))
                .filter(|(_, _, hw)| *hw >= 0)
                .collect();
            hw_checkpoint::write(dir, &entries)?;
        }
        Ok(())
    }

    /// Closes every log (flush, trim, snapshot) and marks the log dirs clean.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        if let Err(e) = self.checkpoint_high_watermarks() {
            tracing::error!(error = %e, "writing the high-watermark checkpoints failed");
        }
        let topics: Vec<Arc<TopicReplicas>> = self.topics.write().drain().map(|(_, t)| t).collect();
        let mut first_error = None;
        for t in topics {
            for p in &t.partitions {
                if p.has_failed() {
                    // Its fsync failed: the kernel may have dropped the dirty pages, so a
                    // later "successful" close proves nothing. Leave it for recovery.
                    first_error.get_or_insert(BrokerError::Fatal(format!(
                        "partition {}-{} failed",
                        p.topic, p.index
                    )));
                    continue;
                }
                if let Some(log) = p.take_log() {
                    if let Err(e) = log.close() {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing the log failed");
                        first_error.get_or_insert(BrokerError::from(e));
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        for dir in &self.log_dirs {
            let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
            std::fs::write(&marker, b"").map_err(|e| BrokerError::io(&marker, e))?;
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// The log dir with the fewest partitions, counting `pending` (opened in this call, not
    /// yet registered) too.
    fn pick_log_dir(&self, pending: &[Arc<Partition>]) -> PathBuf {
        let topics = self.topics.read();
        let count = |dir: &Path| {
            topics
                .values()
                .flat_map(|t| t.partitions.iter())
                .chain(pending)
                .filter(|p| p.log_dir == dir)
                .count()
        };
        self.log_dirs
            .iter()
            .min_by_key(|d| count(d))
            .cloned()
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

/// The image's state of `topic`-`index` when it names `node_id` its leader. A partition
/// the cluster does not have → UNKNOWN_TOPIC_OR_PARTITION; one led by another broker or by
/// none (-1) → NOT_LEADER_OR_FOLLOWER, which sends the client back to Metadata to find
/// the leader, as Kafka does. A follower's log may hold records above the high watermark
/// that the leader never committed: only the leader answers clients here (follower
/// fetching, KIP-392, is a separate path).
pub fn check_leader<'a>(
    image: &'a Image,
    node_id: i32,
    topic: &str,
    index: i32,
) -> Result<&'a PartitionState, ResponseError> {
    let state = image
        .topic(topic)
        .and_then(|t| t.partition(index))
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    if state.leader == node_id {
        Ok(state)
    } else {
        Err(ResponseError::NotLeaderOrFollower)
    }
}

/// Opens (or creates) a partition's log; one that cannot be opened is listed offline.
fn open_or_offline(
    dir: &Path,
    record: &TopicRecord,
    index: i32,
    settings: &TopicSettings,
    clean: bool,
    checkpointed_hw: Option<i64>,
) -> Arc<Partition> {
    let epoch = record.partition(index).map_or(0, |p| p.leader_epoch);
    match open_partition(dir, record, index, settings, clean, checkpointed_hw) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(topic = %record.name, partition = index, dir = %dir.display(), error = %e,
                "cannot open the partition's log; it stays offline until repaired");
            Partition::offline(
                &record.name,
                record.id,
                index,
                dir.to_path_buf(),
                settings.clone(),
                epoch,
            )
        }
    }
}

fn open_partition(
    dir: &Path,
    record: &TopicRecord,
    index: i32,
    settings: &TopicSettings,
    clean: bool,
    checkpointed_hw: Option<i64>,
) -> Result<Arc<Partition>, BrokerError> {
    let path = dir.join(format!("{}-{index}", record.name));
    let log = Log::open(&path, settings.log.clone(), clean)?;
    Ok(Partition::start(
        &record.name,
        record.id,
        index,
        dir.to_path_buf(),
        log,
        settings.clone(),
        checkpointed_hw,
    ))
}

/// Moves a partition directory the metadata does not know into `<log dir>/.stray/<time>/`
/// instead of deleting it (as Kafka keeps stray logs): a misplaced metadata folder or a
/// bug must never destroy data. Operators remove it by hand once they know it is garbage.
fn set_aside_stray(log_dir: &Path, name: &str) -> Result<(), BrokerError> {
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let holder = log_dir.join(STRAY_DIR).join(format!("{unique:x}"));
    std::fs::create_dir_all(&holder).map_err(|e| BrokerError::io(&holder, e))?;
    let from = log_dir.join(name);
    let to = holder.join(name);
    std::fs::rename(&from, &to).map_err(|e| BrokerError::io(&from, e))?;
    sync_dir(log_dir)?;
    tracing::warn!(from = %from.display(), to = %to.display(), "set aside a partition the metadata does not know; remove it once you are sure it is not needed");
    Ok(())
}

/// Where partitions the metadata does not know are kept.
pub const STRAY_DIR: &str = ".stray";

/// True for a directory named like a partition (`<topic>-<n>`).
pub fn is_partition_dir(path: &Path) -> bool {
    path.is_dir()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_partition_dir)
            .is_some()
}

/// `orders-3` → ("orders", 3); anything else (metadata dirs, stray files) → None.
fn parse_partition_dir(name: &str) -> Option<(String, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    let index: i32 = index.parse().ok().filter(|i| *i >= 0)?;
    validate_topic_name(topic).ok()?;
    Some((topic.to_string(), index))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::metadata::PartitionState;

    /// Topic `t`: partition 0 led by node 1, 1 by node 2, 2 by nobody; all on nodes 1 and 2.
    fn image() -> Image {
        let state = |leader| PartitionState {
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader,
            leader_epoch: 3,
            partition_epoch: 0,
        };
        let record = TopicRecord {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            configs: Default::default(),
            partition_states: vec![state(1), state(2), state(-1)],
        };
        let mut image = Image::default();
        image.topics.insert("t".into(), Arc::new(record));
        image
    }

    #[test]
    fn only_the_leader_in_the_image_serves() {
        let image = image();
        assert_eq!(
            check_leader(&image, 1, "t", 0).map(|s| s.leader_epoch),
            Ok(3)
        );
        assert_eq!(
            check_leader(&image, 1, "t", 1),
            Err(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(
            check_leader(&image, 1, "t", 2),
            Err(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(check_leader(&image, 2, "t", 1).map(|s| s.leader), Ok(2));
        for (topic, index) in [("t", 3), ("t", -1), ("nope", 0)] {
            assert_eq!(
                check_leader(&image, 1, topic, index),
                Err(ResponseError::UnknownTopicOrPartition)
            );
        }
    }

    #[tokio::test]
    async fn leader_partition_needs_leadership_and_a_local_replica() {
        let dir = tempfile::tempdir().unwrap();
        let image = image();
        let manager =
            ReplicaManager::load(&[dir.path().to_path_buf()], &image, &Settings::default(), 1)
                .unwrap();
        // Node 1 hosts all three partitions, but leads only partition 0.
        assert!(manager.partition("t", 1).is_some());
        assert_eq!(manager.leader_partition(&image, "t", 0).unwrap().index, 0);
        for (index, error) in [
            (1, ResponseError::NotLeaderOrFollower),
            (2, ResponseError::NotLeaderOrFollower),
            (7, ResponseError::UnknownTopicOrPartition),
        ] {
            assert_eq!(
                manager.leader_partition(&image, "t", index).err(),
                Some(error)
            );
        }
        // Led here by a newer image, not open yet: retriable, not "unknown".
        let mut newer = image.clone();
        let mut record = (**newer.topic("t").unwrap()).clone();
        record.name = "u".into();
        newer.topics.insert("u".into(), Arc::new(record));
        assert_eq!(
            manager.leader_partition(&newer, "u", 0).err(),
            Some(ResponseError::NotLeaderOrFollower)
        );
        manager.shutdown().unwrap();
    }

    #[test]
    fn partition_dir_names() {
        assert_eq!(parse_partition_dir("orders-3"), Some(("orders".into(), 3)));
        assert_eq!(
            parse_partition_dir("my-topic-10"),
            Some(("my-topic".into(), 10))
        );
        assert_eq!(parse_partition_dir("metadata"), None);
        assert_eq!(parse_partition_dir("x--1"), Some(("x-".into(), 1)));
        assert_eq!(parse_partition_dir("orders-x"), None);
        assert_eq!(parse_partition_dir("a/b-1"), None);
    }
}
