//! Log store, vote and snapshot tests, including openraft's own storage suite.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use tempfile::TempDir;

use super::log::{LogStore, WriterExit};
use super::state_machine::StateMachineStore;
use crate::records::{MetadataProposal, MetadataRecord};
use crate::types::{LogId, StorageError, TypeConfig, Vote};

struct TempStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let (log, _exit) = LogStore::open(&dir.path().join("raft")).expect("open log");
        let sm = StateMachineStore::open(&dir.path().join("snapshots")).expect("open sm");
        Ok((dir, log, sm))
    }
}

/// openraft's storage conformance suite against the on-disk stores.
#[test]
fn openraft_storage_suite() {
    Suite::test_all(TempStoreBuilder).expect("openraft storage suite");
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    let rec = MetadataRecord::SetConfig {
        resource: crate::records::ConfigResource::ClusterDefault,
        key: "k".into(),
        value: format!("v{index}"),
    };
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(MetadataProposal::new(vec![rec])),
    }
}

async fn indexes(log: &mut LogStore) -> Vec<u64> {
    log.try_get_log_entries(0..u64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

async fn open(dir: &Path) -> LogStore {
    let (log, exit) = LogStore::open(&dir.join("raft")).expect("open");
    EXITS.lock().unwrap().push((dir.to_path_buf(), exit));
    log
}

/// Writer-exit handles of the stores opened by `open`, so `close` can wait for them.
static EXITS: std::sync::Mutex<Vec<(std::path::PathBuf, WriterExit)>> =
    std::sync::Mutex::new(Vec::new());

/// Drops the store, waits until its writer thread has finished every queued write, and
/// opens the directory again.
async fn close(log: LogStore, dir: &Path) -> LogStore {
    drop(log);
    let exits: Vec<WriterExit> = {
        let mut all = EXITS.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(d, _)| d == dir);
        *all = rest;
        mine.into_iter().map(|(_, e)| e).collect()
    };
    for e in exits {
        e.wait().await;
    }
    open(dir).await
}

#[tokio::test]
async fn append_read_reopen() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path()).await;
    log.blocking_append((1..=10).map(|i| entry(1, i)))
        .await
        .unwrap();
    assert_eq!(indexes(&mut log).await, (1..=10).collect::<Vec<_>>());
    let e5 = log.try_get_log_entries(5..6).await.unwrap();
    assert_eq!(e5, vec![entry(1, 5)]);

    let mut log = close(log, dir.path()).await;
    assert_eq!(indexes(&mut log).await, (1..=10).collect::<Vec<_>>());
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, Some(log_id(1, 10)));
    assert_eq!(st.last_purged_log_id, None);
}

#[tokio::test]
async fn truncate_then_append_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path()).await;
    log.blocking_append((1..=10).map(|i| entry(1, i)))
        .await
        .unwrap();
    log.truncate(log_id(1, 6)).await.unwrap();
    assert_eq!(indexes(&mut log).await, (1..=5).collect::<Vec<_>>());
    // A new leader's entries replace the conflicting ones.
    log.blocking_append((6..=8).map(|i| entry(2, i)))
        .await
        .unwrap();
    let mut log = close(log, dir.path()).await;
    let all = log.try_get_log_entries(0..u64::MAX).await.unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(all[4].log_id, log_id(1, 5));
    assert_eq!(all[5].log_id, log_id(2, 6));
    assert_eq!(all[7].log_id, log_id(2, 8));
}

#[tokio::test]
async fn purge_survives_reopen_and_removes_old_segments() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path()).await;
    log.blocking_append((1..=20).map(|i| entry(1, i)))
        .await
        .unwrap();
    log.purge(log_id(1, 12)).await.unwrap();
    assert_eq!(indexes(&mut log).await, (13..=20).collect::<Vec<_>>());
    // After a snapshot install the log can jump past its end.
    log.purge(log_id(3, 40)).await.unwrap();
    log.blocking_append((41..=43).map(|i| entry(3, i)))
        .await
        .unwrap();
    let mut log = close(log, dir.path()).await;
    assert_eq!(indexes(&mut log).await, vec![41, 42, 43]);
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(3, 40)));
    assert_eq!(st.last_log_id, Some(log_id(3, 43)));
    // The segment holding only purged entries is gone once a later one exists.
    log.purge(log_id(3, 41)).await.unwrap();
    let segs: Vec<_> = fs::read_dir(dir.path().join("raft/log"))
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(segs, vec![format!("{:020}.log", 41)]);
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir.join("raft/log"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[tokio::test]
async fn torn_tail_is_cut_on_open() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path()).await;
    log.blocking_append((1..=5).map(|i| entry(1, i)))
        .await
        .unwrap();
    drop(log);
    let seg = only_segment(dir.path());
    let good_len = fs::metadata(&seg).unwrap().len();
    // Half a frame: a header promising 100 bytes and 10 of them.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&0u32.to_le_bytes()).unwrap();
    f.write_all(&[b'x'; 10]).unwrap();
    drop(f);
    let mut log = open(dir.path()).await;
    assert_eq!(indexes(&mut log).await, (1..=5).collect::<Vec<_>>());
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len, "tail cut");
    // And the log goes on from there.
    log.blocking_append([entry(1, 6)]).await.unwrap();
    let mut log = close(log, dir.path()).await;
    assert_eq!(indexes(&mut log).await, (1..=6).collect::<Vec<_>>());
}

#[tokio::test]
async fn corrupt_last_entry_is_cut_on_open() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path()).await;
    log.blocking_append((1..=5).map(|i| entry(1, i)))
        .await
        .unwrap();
    drop(log);
    let seg = only_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff; // flip a byte inside entry 5's payload
    fs::write(&seg, &bytes).unwrap();
    let mut log = open(dir.path()).await;
    assert_eq!(indexes(&mut log).await, (1..=4).collect::<Vec<_>>());
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = fs::read_dir(dir.join("raft/log"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    segs.sort();
    segs
}

#[tokio::test]
async fn segments_roll_and_reopen_across_them() {
    let dir = TempDir::new().unwrap();
    let (mut log, _) = LogStore::open_with(&dir.path().join("raft"), 400).unwrap();
    log.blocking_append((1..=10).map(|i| entry(1, i)))
        .await
        .unwrap();
    log.blocking_append((11..=20).map(|i| entry(1, i)))
        .await
        .unwrap();
    assert!(segments(dir.path()).len() > 2, "{:?}", segments(dir.path()));
    // Truncating into an older segment drops the later ones.
    log.truncate(log_id(1, 4)).await.unwrap();
    log.blocking_append((4..=6).map(|i| entry(2, i)))
        .await
        .unwrap();
    drop(log);
    let (mut log, _) = LogStore::open_with(&dir.path().join("raft"), 400).unwrap();
    let all = log.try_get_log_entries(0..u64::MAX).await.unwrap();
    let ids: Vec<_> = all
        .iter()
        .map(|e| (e.log_id.leader_id.term, e.log_id.index))
        .collect();
    assert_eq!(ids, vec![(1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6)]);
}

#[tokio::test]
async fn corruption_in_an_older_segment_refuses_to_open() {
    let dir = TempDir::new().unwrap();
    let (mut log, _) = LogStore::open_with(&dir.path().join("raft"), 400).unwrap();
    log.blocking_append((1..=20).map(|i| entry(1, i)))
        .await
        .unwrap();
    drop(log);
    let segs = segments(dir.path());
    assert!(segs.len() >= 2);
    let mut bytes = fs::read(&segs[0]).unwrap();
    bytes[12] ^= 0x01;
    fs::write(&segs[0], bytes).unwrap();
    let err = LogStore::open_with(&dir.path().join("raft"), 400)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not the last") && err.contains("CRC32C"),
        "{err}"
    );
}

#[tokio::test]
async fn vote_and_committed_persist() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path()).await;
    assert_eq!(log.read_vote().await.unwrap(), None);
    let vote = Vote::new(7, 2);
    log.save_vote(&vote).await.unwrap();
    log.save_committed(Some(log_id(7, 3))).await.unwrap();
    // save_committed is queued, not awaited; the writer drains its queue before it
    // exits, and `close` waits for that.
    let mut log = close(log, dir.path()).await;
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(7, 3)));
    let raw = fs::read_to_string(dir.path().join("raft/state.json")).unwrap();
    assert!(raw.contains("\"vote\""), "{raw}");
    assert!(!dir.path().join("raft/state.json.tmp").exists());
}

#[tokio::test]
async fn snapshot_survives_reopen_and_corruption_is_refused() {
    let dir = TempDir::new().unwrap();
    let sdir = dir.path().join("snapshots");
    let mut sm = StateMachineStore::open(&sdir).unwrap();
    sm.apply((1..=3).map(|i| entry(1, i))).await.unwrap();
    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 3)));
    let image = sm.image();
    assert_eq!(image.revision(), 3);
    assert_eq!(
        image.cluster_configs().get("k").map(String::as_str),
        Some("v3")
    );

    let mut sm2 = StateMachineStore::open(&sdir).unwrap();
    assert_eq!(sm2.applied_state().await.unwrap().0, Some(log_id(1, 3)));
    assert_eq!(*sm2.image(), *image);

    let file = fs::read_dir(&sdir).unwrap().next().unwrap().unwrap().path();
    let mut bytes = fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x55;
    fs::write(&file, bytes).unwrap();
    let err = StateMachineStore::open(&sdir).unwrap_err().to_string();
    assert!(err.contains("CRC32C mismatch"), "{err}");
}
