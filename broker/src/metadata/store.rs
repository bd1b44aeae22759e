//! The metadata image and its durable, atomically replaced file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::BrokerError;

/// One topic as the cluster knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level overrides only; defaults come from the broker settings.
    pub configs: BTreeMap<String, String>,
    pub leader_epoch: i32,
}

/// Everything the metadata layer knows; `revision` grows with every change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Image {
    pub revision: u64,
    pub topics: BTreeMap<String, Arc<TopicRecord>>,
    /// Cluster-wide dynamic broker settings set through the admin APIs.
    pub broker_configs: BTreeMap<String, String>,
}

impl Image {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicRecord>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicRecord>> {
        self.topics.values().find(|t| t.id == id)
    }
}

const IMAGE_FILE: &str = "image.json";

/// Holds the current image and persists every change before it becomes visible.
pub struct MetadataStore {
    dir: PathBuf,
    current: RwLock<Arc<Image>>,
    /// Serialises writers so each change is applied to the newest image.
    write: Mutex<()>,
}

impl MetadataStore {
    pub fn open(dir: &Path) -> Result<MetadataStore, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::io(dir, e))?;
        let path = dir.join(IMAGE_FILE);
        let image = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BrokerError::Fatal(format!("metadata file {} is damaged: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Image::default(),
            Err(e) => return Err(BrokerError::io(&path, e)),
        };
        Ok(MetadataStore {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(image)),
            write: Mutex::new(()),
        })
    }

    pub fn image(&self) -> Arc<Image> {
        self.current.read().clone()
    }

    /// Applies `change` to a copy of the image, writes it durably, then publishes it. When
    /// `change` fails nothing is written.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Image) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        let _writer = self.write.lock();
        let mut next = (*self.image()).clone();
        let out = change(&mut next)?;
        next.revision += 1;
        self.persist(&next)?;
        *self.current.write() = Arc::new(next);
        Ok(out)
    }

    fn persist(&self, image: &Image) -> Result<(), BrokerError> {
        let bytes =
            serde_json::to_vec_pretty(image).map_err(|e| BrokerError::Fatal(e.to_string()))?;
        write_atomically(&self.dir, IMAGE_FILE, &bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_reopen_and_failed_changes_leave_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let id = Uuid::new_v4();
        store
            .update(|img| {
                img.topics.insert(
                    "t".into(),
                    Arc::new(TopicRecord {
                        name: "t".into(),
                        id,
                        partitions: 3,
                        configs: BTreeMap::new(),
                        leader_epoch: 0,
                    }),
                );
                Ok(())
            })
            .unwrap();
        let failed: Result<(), _> = store.update(|img| {
            img.topics.clear();
            Err(BrokerError::Fatal("no".into()))
        });
        assert!(failed.is_err());
        drop(store);
        let store = MetadataStore::open(dir.path()).unwrap();
        let img = store.image();
        assert_eq!(img.revision, 1);
        assert_eq!(img.topic("t").unwrap().partitions, 3);
        assert_eq!(img.topic_by_id(id).unwrap().name, "t");
    }
}
