//! The state machine: the [`MetadataImage`] in memory, persisted through snapshots.
//!
//! `apply` does not write to disk: after a restart the image is the newest snapshot plus
//! the committed log entries openraft re-applies (the committed log id is persisted by
//! the log store). A snapshot is written atomically to
//! `snapshots/<last index:020>.snap`:
//!
//! ```text
//! magic "ISTHSNAP" | version: u32 LE | meta_len: u32 LE | data_len: u64 LE |
//! crc32c(meta ++ data): u32 LE | meta (JSON SnapshotMeta) | data (image snapshot bytes)
//! ```
//!
//! The meta holds the last applied log id and the membership; the data is what goes to a
//! follower that needs the snapshot. Older snapshot files are removed once a newer one
//! is durable.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use tokio::sync::watch;

use super::{atomic_write, create_dir_durable, fsync_dir, to_storage_error};
use crate::error::{ControllerError, IoContext};
use crate::image::MetadataImage;
use crate::records::MetadataProposal;
use crate::types::{
    ApplyOutcome, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_MAGIC: &[u8; 8] = b"ISTHSNAP";
const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 8 + 4 + 4 + 8 + 4;
const SNAPSHOT_SUFFIX: &str = ".snap";
/// Bound on a snapshot file / transfer.
pub const SNAPSHOT_BYTES_MAX: u64 = 1024 * 1024 * 1024;

#[derive(Clone, Debug)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Arc<Vec<u8>>,
}

/// Applied proposals kept for brokers that pull metadata (bounded; older ones are only
/// in the image).
pub(crate) const RECENT_ENTRIES_MAX: usize = 20_000;

#[derive(Debug)]
struct SmState {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    current: Option<StoredSnapshot>,
    /// Proposals that changed the image, by revision, after `recent_floor`, with their
    /// encoded size (measured once, at apply).
    recent: VecDeque<(u64, Arc<MetadataProposal>, usize)>,
    /// Revisions up to this one are not all in `recent`.
    recent_floor: u64,
}

/// What a broker at some revision needs to catch up.
#[derive(Debug)]
pub(crate) enum Catchup {
    /// Nothing newer than its revision.
    UpToDate,
    /// The proposals after its revision (possibly cut by the byte budget), and the
    /// revision reached by applying them.
    Entries {
        entries: Vec<(u64, Arc<MetadataProposal>)>,
        revision: u64,
    },
    /// Too far behind: the whole image.
    Image(Arc<MetadataImage>),
}

#[derive(Debug)]
struct SmInner {
    dir: PathBuf,
    state: Mutex<SmState>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
}

impl SmInner {
    fn lock(&self) -> MutexGuard<'_, SmState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The state machine openraft drives; cheap to clone (shared inside).
#[derive(Clone, Debug)]
pub struct StateMachineStore {
    inner: Arc<SmInner>,
}

/// Builds a snapshot of the image as it is when the builder is made.
#[derive(Debug)]
pub struct SnapshotBuilder {
    inner: Arc<SmInner>,
}

impl StateMachineStore {
    /// Opens the snapshot directory and loads the newest snapshot, if any.
    pub(crate) fn open(dir: &Path) -> Result<StateMachineStore, ControllerError> {
        create_dir_durable(dir)?;
        let current = load_newest_snapshot(dir)?;
        let (image, last_applied, last_membership) = match &current {
            Some(s) => {
                let image = MetadataImage::from_snapshot_bytes(&s.data)
                    .map_err(|e| ControllerError::corrupt(dir, format!("snapshot image: {e}")))?;
                (image, s.meta.last_log_id, s.meta.last_membership.clone())
            }
            None => (MetadataImage::default(), None, StoredMembership::default()),
        };
        if let Some(s) = &current {
            tracing::info!(snapshot = %s.meta, "loaded metadata snapshot");
        }
        let recent_floor = image.revision();
        let image = Arc::new(image);
        let (image_tx, _) = watch::channel(image.clone());
        Ok(StateMachineStore {
            inner: Arc::new(SmInner {
                dir: dir.to_path_buf(),
                state: Mutex::new(SmState {
                    image,
                    last_applied,
                    last_membership,
                    current,
                    recent: VecDeque::new(),
                    recent_floor,
                }),
                image_tx,
            }),
        })
    }

    /// The current image.
    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        self.inner.lock().image.clone()
    }

    /// What a reader at revision `after` needs: the proposals applied since (at most
    /// `budget` encoded bytes, but at least one), or the image when they are no longer
    /// all kept.
    pub(crate) fn catchup(&self, after: u64, budget: usize) -> Catchup {
        let st = self.inner.lock();
        let revision = st.image.revision();
        if after >= revision {
            return Catchup::UpToDate;
        }
        if after < st.recent_floor {
            return Catchup::Image(st.image.clone());
        }
        let start = st.recent.partition_point(|(r, _, _)| *r <= after);
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for (r, p, size) in st.recent.range(start..) {
            let size = *size;
            if !entries.is_empty() && bytes.saturating_add(size) > budget {
                let reached = entries.last().map_or(after, |(r, _): &(u64, _)| *r);
                return Catchup::Entries {
                    entries,
                    revision: reached,
                };
            }
            bytes = bytes.saturating_add(size);
            entries.push((*r, p.clone()));
        }
        Catchup::Entries { entries, revision }
    }

    /// A receiver that sees every newly published image.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_tx.subscribe()
    }

    fn persist_and_install(
        &self,
        snap: StoredSnapshot,
        image: Option<MetadataImage>,
    ) -> Result<(), ControllerError> {
        write_snapshot_file(&self.inner.dir, &snap)?;
        let mut st = self.inner.lock();
        let newer = st
            .current
            .as_ref()
            .is_none_or(|c| c.meta.last_log_id <= snap.meta.last_log_id);
        if let Some(image) = image {
            // Installing a snapshot from the leader replaces the state machine.
            st.recent.clear();
            st.recent_floor = image.revision();
            st.image = Arc::new(image);
            st.last_applied = snap.meta.last_log_id;
            st.last_membership = snap.meta.last_membership.clone();
            self.inner.image_tx.send_replace(st.image.clone());
        }
        if newer || st.last_applied == snap.meta.last_log_id {
            st.current = Some(snap);
        }
        let keep = st.current.as_ref().map(|c| snapshot_file_name(&c.meta));
        drop(st);
        remove_other_snapshots(&self.inner.dir, keep.as_deref())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (image, last_applied, membership) = {
            let st = self.inner.lock();
            (
                st.image.clone(),
                st.last_applied,
                st.last_membership.clone(),
            )
        };
        let data = image
            .to_snapshot_bytes()
            .map_err(|e| to_storage_error(e, ErrorSubject::StateMachine, ErrorVerb::Read))?;
        let snapshot_id = match last_applied {
            Some(l) => format!(
                "{}-{}-{}",
                l.leader_id,
                l.index,
                uuid::Uuid::new_v4().simple()
            ),
            None => format!("none-{}", uuid::Uuid::new_v4().simple()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data: Arc::new(data),
        };
        let store = StateMachineStore {
            inner: self.inner.clone(),
        };
        store.persist_and_install(snap.clone(), None).map_err(|e| {
            to_storage_error(
                e,
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        })?;
        tracing::info!(snapshot = %meta, bytes = snap.data.len(), "built metadata snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(snap.data.as_ref().clone())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.inner.lock();
        Ok((st.last_applied, st.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut st = self.inner.lock();
        let mut image: Option<MetadataImage> = None;
        let mut outcomes = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            let current = image.take().unwrap_or_else(|| (*st.image).clone());
            let mut rejection = None;
            let next = match &entry.payload {
                EntryPayload::Blank => current.advanced_to(index),
                EntryPayload::Membership(m) => {
                    st.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    current.advanced_to(index)
                }
                EntryPayload::Normal(proposal) => match current.apply(index, proposal) {
                    Ok(next) => {
                        let size = serde_json::to_vec(proposal).map_or(usize::MAX, |v| v.len());
                        st.recent
                            .push_back((index, Arc::new(proposal.clone()), size));
                        if st.recent.len() > RECENT_ENTRIES_MAX {
                            if let Some((r, _, _)) = st.recent.pop_front() {
                                st.recent_floor = r;
                            }
                        }
                        next
                    }
                    Err(r) => {
                        tracing::warn!(index, rejection = %r, "committed metadata records rejected; image unchanged");
                        rejection = Some(r);
                        current.advanced_to(index)
                    }
                },
            };
            image = Some(next);
            st.last_applied = Some(entry.log_id);
            outcomes.push(ApplyOutcome {
                revision: index,
                rejection,
            });
        }
        if let Some(image) = image {
            st.image = Arc::new(image);
            self.inner.image_tx.send_replace(st.image.clone());
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            inner: self.inner.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let err = |e: String| {
            to_storage_error(
                e,
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        };
        let image = MetadataImage::from_snapshot_bytes(&data).map_err(err)?;
        let expect = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        if image.revision() != expect {
            return Err(err(format!(
                "snapshot image is at revision {}, its meta says {expect}",
                image.revision()
            )));
        }
        tracing::info!(snapshot = %meta, bytes = data.len(), "installing metadata snapshot from the leader");
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data: Arc::new(data),
        };
        self.persist_and_install(snap, Some(image))
            .map_err(|e| err(e.to_string()))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let st = self.inner.lock();
        Ok(st.current.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.as_ref().clone())),
        }))
    }
}

fn snapshot_file_name(meta: &SnapshotMeta) -> String {
    match meta.last_log_id {
        Some(l) => format!("{:020}{SNAPSHOT_SUFFIX}", l.index),
        None => format!("none{SNAPSHOT_SUFFIX}"),
    }
}

fn write_snapshot_file(dir: &Path, snap: &StoredSnapshot) -> Result<(), ControllerError> {
    let meta = serde_json::to_vec(&snap.meta)
        .map_err(|e| ControllerError::Raft(format!("encoding snapshot meta: {e}")))?;
    let mut crc = crc32c::crc32c(&meta);
    crc = crc32c::crc32c_append(crc, &snap.data);
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + meta.len() + snap.data.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(snap.data.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&meta);
    bytes.extend_from_slice(&snap.data);
    atomic_write(dir, &snapshot_file_name(&snap.meta), &bytes)
}

fn read_snapshot_file(path: &Path) -> Result<StoredSnapshot, ControllerError> {
    let bytes = fs::read(path).at(path)?;
    let corrupt = |d: String| ControllerError::corrupt(path, d);
    if bytes.len() < SNAPSHOT_HEADER_BYTES || &bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(
            "not a snapshot file (bad magic or too short)".into(),
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap_or_default());
    let version = u32_at(8);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(corrupt(format!("snapshot format version {version}")));
    }
    let meta_len = u32_at(12) as usize;
    let data_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default());
    let crc = u32_at(24);
    if data_len > SNAPSHOT_BYTES_MAX
        || (SNAPSHOT_HEADER_BYTES + meta_len) as u64 + data_len != bytes.len() as u64
    {
        return Err(corrupt(format!(
            "lengths (meta {meta_len}, data {data_len}) do not match the file size {}",
            bytes.len()
        )));
    }
    let body = &bytes[SNAPSHOT_HEADER_BYTES..];
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Err(corrupt(format!(
            "CRC32C mismatch (stored {crc:#010x}, computed {actual:#010x})"
        )));
    }
    let meta: SnapshotMeta = serde_json::from_slice(&body[..meta_len])
        .map_err(|e| corrupt(format!("snapshot meta: {e}")))?;
    Ok(StoredSnapshot {
        meta,
        data: Arc::new(body[meta_len..].to_vec()),
    })
}

/// The newest snapshot in `dir`; a corrupt one stops the start (its log may be purged).
fn load_newest_snapshot(dir: &Path) -> Result<Option<StoredSnapshot>, ControllerError> {
    let mut newest: Option<StoredSnapshot> = None;
    for dent in fs::read_dir(dir).at(dir)? {
        let dent = dent.at(dir)?;
        let name = dent.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(dent.path());
            continue;
        }
        if !name.ends_with(SNAPSHOT_SUFFIX) {
            continue;
        }
        let snap = read_snapshot_file(&dent.path())?;
        if newest
            .as_ref()
            .is_none_or(|n| n.meta.last_log_id < snap.meta.last_log_id)
        {
            newest = Some(snap);
        }
    }
    let keep = newest.as_ref().map(|s| snapshot_file_name(&s.meta));
    remove_other_snapshots(dir, keep.as_deref())?;
    Ok(newest)
}

fn remove_other_snapshots(dir: &Path, keep: Option<&str>) -> Result<(), ControllerError> {
    let mut removed = false;
    for dent in fs::read_dir(dir).at(dir)? {
        let dent = dent.at(dir)?;
        let name = dent.file_name().to_string_lossy().into_owned();
        if name.ends_with(SNAPSHOT_SUFFIX) && Some(name.as_str()) != keep {
            fs::remove_file(dent.path()).at(&dent.path())?;
            removed = true;
        }
    }
    if removed {
        fsync_dir(dir)?;
    }
    Ok(())
}
