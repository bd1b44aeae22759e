//! The Raft log store: segment files on disk, every entry readable from memory.
//!
//! # Files (under `<metadata dir>/raft/`)
//! - `log/<first index:020>.log`: a segment. Each entry is a frame
//!   `len: u32 LE | crc32c(entry): u32 LE | entry (JSON of openraft's Entry)`. A segment
//!   holds consecutive indexes starting at the one in its name; a new segment starts when
//!   the active one passes [`SEGMENT_BYTES_MAX`] or the next index does not follow (after
//!   a snapshot install purged past the end of the log).
//! - `state.json`: the vote, the committed log id and the last purged log id, replaced
//!   atomically (temp file, fsync, rename, fsync directory).
//!
//! # Durability contract (openraft's `RaftLogStorage`)
//! - `append` puts the entries in memory (readable at once) and queues the frames to the
//!   writer thread; the writer thread writes, `fdatasync`s (and fsyncs the directory when it
//!   created a segment), and only then calls openraft's `LogFlushed` callback. Consecutive
//!   appends share one fsync (group commit).
//! - `save_vote`, `truncate` and `purge` return only after their change is durable.
//!   `save_committed` is queued behind the appends (openraft does not need it durable).
//! - All writes go through the one writer thread in the order openraft issued them.
//!
//! # Recovery on open
//! Segments are scanned frame by frame (length bound, CRC32C, decode, expected index).
//! A bad frame in the last segment is a torn tail: the file is cut there and a warning
//! says where and why. A bad frame in an earlier segment is corruption of entries that
//! were reported durable: opening fails rather than silently losing them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{atomic_write, create_dir_durable, fsync_dir, to_storage_error};
use crate::error::{ControllerError, IoContext};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// A segment rolls once it is this large.
pub const SEGMENT_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Bound on one encoded log entry (a proposal's records).
pub const ENTRY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bound on queued writes between openraft and the writer thread.
const WRITER_QUEUE_DEPTH: usize = 1024;
/// `len` + `crc32c`.
const FRAME_HEADER_BYTES: usize = 8;
const STATE_FILE: &str = "state.json";
const STATE_FORMAT_VERSION: u16 = 1;
const SEGMENT_SUFFIX: &str = ".log";

/// What `state.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PersistedState {
    version: u16,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

/// The in-memory view shared by the store and its readers.
#[derive(Debug, Default)]
struct LogMem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// Set once the writer failed; every later write fails with it.
    failed: Option<String>,
}

type Shared = Arc<Mutex<LogMem>>;

fn lock(shared: &Shared) -> MutexGuard<'_, LogMem> {
    // A panic while holding the lock cannot leave LogMem half-updated in a way that
    // matters more than stopping; keep serving what is there.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

enum WriteCmd {
    Append {
        frames: Vec<(u64, Vec<u8>)>,
        callback: LogFlushed<TypeConfig>,
    },
    Truncate {
        since: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<Result<(), String>>,
    },
    SaveVote {
        vote: Vote,
        done: oneshot::Sender<Result<(), String>>,
    },
    SaveCommitted {
        committed: Option<LogId>,
    },
}

/// Resolves when the writer thread has exited (after the store and its queue are gone).
#[derive(Debug)]
pub(crate) struct WriterExit(oneshot::Receiver<()>);

impl WriterExit {
    pub(crate) async fn wait(self) {
        let _ = self.0.await;
    }
}

/// The log store openraft drives.
pub struct LogStore {
    shared: Shared,
    tx: mpsc::Sender<WriteCmd>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// A reader for replication tasks: reads from memory.
#[derive(Clone, Debug)]
pub struct LogReader {
    shared: Shared,
}

impl LogStore {
    /// Opens (creating if needed) the log under `raft_dir`, recovering a torn tail.
    pub(crate) fn open(raft_dir: &Path) -> Result<(LogStore, WriterExit), ControllerError> {
        Self::open_with(raft_dir, SEGMENT_BYTES_MAX)
    }

    /// [`LogStore::open`] with another segment size (tests roll segments quickly).
    pub(crate) fn open_with(
        raft_dir: &Path,
        segment_bytes_max: u64,
    ) -> Result<(LogStore, WriterExit), ControllerError> {
        let log_dir = raft_dir.join("log");
        create_dir_durable(&log_dir)?;
        let state = read_state(raft_dir)?;
        let (segments, entries) = recover_segments(&log_dir, state.last_purged.as_ref())?;
        let mem = LogMem {
            entries,
            last_purged: state.last_purged,
            vote: state.vote,
            committed: state.committed,
            failed: None,
        };
        let shared = Arc::new(Mutex::new(mem));
        let (tx, rx) = mpsc::channel(WRITER_QUEUE_DEPTH);
        let (exit_tx, exit_rx) = oneshot::channel();
        let writer = Writer {
            raft_dir: raft_dir.to_path_buf(),
            log_dir,
            segments,
            active: None,
            segment_bytes_max,
            state,
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || {
                writer.run(rx);
                let _ = exit_tx.send(());
            })
            .map_err(|e| ControllerError::io(raft_dir, e))?;
        Ok((LogStore { shared, tx }, WriterExit(exit_rx)))
    }

    fn check_failed(&self) -> Result<(), StorageError> {
        match &lock(&self.shared).failed {
            Some(why) => Err(to_storage_error(why, ErrorSubject::Logs, ErrorVerb::Write)),
            None => Ok(()),
        }
    }

    async fn send(&self, cmd: WriteCmd) -> Result<(), StorageError> {
        self.tx.send(cmd).await.map_err(|_| {
            to_storage_error(
                "the log writer thread stopped",
                ErrorSubject::Logs,
                ErrorVerb::Write,
            )
        })
    }

    async fn send_and_wait(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> WriteCmd,
        subject: ErrorSubject<crate::NodeId>,
    ) -> Result<(), StorageError> {
        let (done_tx, done_rx) = oneshot::channel();
        self.send(make(done_tx)).await?;
        match done_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(to_storage_error(e, subject, ErrorVerb::Write)),
            Err(_) => Err(to_storage_error(
                "the log writer thread stopped",
                subject,
                ErrorVerb::Write,
            )),
        }
    }
}

fn read_range<RB: RangeBounds<u64>>(shared: &Shared, range: RB) -> Vec<Entry> {
    lock(shared)
        .entries
        .range(range)
        .map(|(_, e)| e.clone())
        .collect()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.shared, range))
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.shared, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mem = lock(&self.shared);
        let last_purged = mem.last_purged;
        let last = mem
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.check_failed()?;
        let vote = *vote;
        self.send_and_wait(|done| WriteCmd::SaveVote { vote, done }, ErrorSubject::Vote)
            .await?;
        lock(&self.shared).vote = Some(vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.shared).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.check_failed()?;
        lock(&self.shared).committed = committed;
        self.send(WriteCmd::SaveCommitted { committed }).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.shared).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.check_failed()?;
        let mut frames = Vec::new();
        let mut decoded = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            let payload = serde_json::to_vec(&entry).map_err(|e| {
                to_storage_error(e, ErrorSubject::Log(entry.log_id), ErrorVerb::Write)
            })?;
            if payload.len() > ENTRY_BYTES_MAX {
                return Err(to_storage_error(
                    format!(
                        "log entry of {} bytes exceeds {ENTRY_BYTES_MAX}",
                        payload.len()
                    ),
                    ErrorSubject::Log(entry.log_id),
                    ErrorVerb::Write,
                ));
            }
            frames.push((index, encode_frame(&payload)));
            decoded.push(entry);
        }
        {
            let mut mem = lock(&self.shared);
            for e in decoded {
                mem.entries.insert(e.log_id.index, e);
            }
        }
        self.send(WriteCmd::Append { frames, callback }).await
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.check_failed()?;
        lock(&self.shared).entries.split_off(&log_id.index);
        let since = log_id.index;
        self.send_and_wait(
            |done| WriteCmd::Truncate { since, done },
            ErrorSubject::Logs,
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.check_failed()?;
        {
            let mut mem = lock(&self.shared);
            let keep = mem.entries.split_off(&(log_id.index + 1));
            mem.entries = keep;
            mem.last_purged = Some(log_id);
        }
        self.send_and_wait(
            |done| WriteCmd::Purge { upto: log_id, done },
            ErrorSubject::Logs,
        )
        .await
    }
}

fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// One segment file as the writer knows it.
#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    /// `positions[k]`: byte offset of entry `base + k`.
    positions: Vec<u64>,
    len: u64,
}

impl Segment {
    fn next_index(&self) -> u64 {
        self.base + self.positions.len() as u64
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn read_state(raft_dir: &Path) -> Result<PersistedState, ControllerError> {
    let path = raft_dir.join(STATE_FILE);
    let _ = fs::remove_file(raft_dir.join(format!("{STATE_FILE}.tmp")));
    match fs::read(&path) {
        Ok(bytes) => {
            let state: PersistedState = serde_json::from_slice(&bytes)
                .map_err(|e| ControllerError::corrupt(&path, format!("cannot decode: {e}")))?;
            if state.version != STATE_FORMAT_VERSION {
                return Err(ControllerError::corrupt(
                    &path,
                    format!(
                        "state format version {} (this node reads {STATE_FORMAT_VERSION})",
                        state.version
                    ),
                ));
            }
            Ok(state)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PersistedState {
            version: STATE_FORMAT_VERSION,
            ..Default::default()
        }),
        Err(e) => Err(ControllerError::io(path, e)),
    }
}

/// Scans every segment, cuts a torn tail of the last one, drops purged entries.
fn recover_segments(
    log_dir: &Path,
    last_purged: Option<&LogId>,
) -> Result<(Vec<Segment>, BTreeMap<u64, Entry>), ControllerError> {
    let mut bases = Vec::new();
    for dent in fs::read_dir(log_dir).at(log_dir)? {
        let dent = dent.at(log_dir)?;
        let name = dent.file_name().to_string_lossy().into_owned();
        if let Some(base) = parse_segment_name(&name) {
            bases.push(base);
        } else if name.ends_with(".tmp") {
            let _ = fs::remove_file(dent.path());
        }
    }
    bases.sort_unstable();
    let purged_index = last_purged.map(|l| l.index);
    // Segments whose every entry is purged go unread (never the last one).
    if let Some(p) = purged_index {
        let mut removed = false;
        while bases.len() > 1 && bases[1] <= p + 1 {
            let path = segment_path(log_dir, bases.remove(0));
            fs::remove_file(&path).at(&path)?;
            removed = true;
        }
        if removed {
            fsync_dir(log_dir)?;
        }
    }
    let mut segments: Vec<Segment> = Vec::new();
    let mut entries = BTreeMap::new();
    let count = bases.len();
    for (i, base) in bases.into_iter().enumerate() {
        let path = segment_path(log_dir, base);
        let is_last = i + 1 == count;
        if let Some(prev) = segments.last() {
            let follows = prev.next_index() == base;
            let gap_purged =
                base > prev.next_index() && purged_index.is_some_and(|p| base <= p + 1);
            if !follows && !gap_purged {
                return Err(ControllerError::corrupt(
                    &path,
                    format!(
                        "segment starts at index {base} but the previous one ends before {}",
                        prev.next_index()
                    ),
                ));
            }
            if gap_purged {
                // Everything before `base` is purged; a snapshot replaced it.
                entries.clear();
            }
        }
        let bytes = fs::read(&path).at(&path)?;
        let mut seg = Segment {
            base,
            path: path.clone(),
            positions: Vec::new(),
            len: 0,
        };
        let mut pos = 0usize;
        let mut bad: Option<String> = None;
        while pos < bytes.len() {
            match decode_frame(&bytes[pos..], seg.next_index()) {
                Ok((entry, used)) => {
                    seg.positions.push(pos as u64);
                    entries.insert(entry.log_id.index, entry);
                    pos += used;
                }
                Err(why) => {
                    bad = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = bad {
            if !is_last {
                return Err(ControllerError::corrupt(
                    &path,
                    format!("bad frame at byte {pos} in a segment that is not the last: {why}"),
                ));
            }
            tracing::warn!(
                segment = %path.display(),
                at_byte = pos,
                dropped_bytes = bytes.len() - pos,
                reason = %why,
                "cutting the torn tail of the Raft log"
            );
            let f = OpenOptions::new().write(true).open(&path).at(&path)?;
            f.set_len(pos as u64).at(&path)?;
            f.sync_all().at(&path)?;
        }
        seg.len = pos as u64;
        segments.push(seg);
    }
    if let Some(p) = purged_index {
        entries = entries.split_off(&(p + 1));
    }
    Ok((segments, entries))
}

/// Decodes one frame at the start of `buf` that must hold the entry at `expect_index`.
fn decode_frame(buf: &[u8], expect_index: u64) -> Result<(Entry, usize), String> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Err(format!(
            "{} bytes left, shorter than a frame header",
            buf.len()
        ));
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap_or_default());
    if len > ENTRY_BYTES_MAX {
        return Err(format!("frame length {len} exceeds {ENTRY_BYTES_MAX}"));
    }
    let Some(payload) = buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Err(format!(
            "frame of {len} bytes but only {} left",
            buf.len() - FRAME_HEADER_BYTES
        ));
    };
    let actual = crc32c::crc32c(payload);
    if actual != crc {
        return Err(format!(
            "CRC32C mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    let entry: Entry =
        serde_json::from_slice(payload).map_err(|e| format!("cannot decode entry: {e}"))?;
    if entry.log_id.index != expect_index {
        return Err(format!(
            "entry has index {}, expected {expect_index}",
            entry.log_id.index
        ));
    }
    Ok((entry, FRAME_HEADER_BYTES + len))
}

/// The thread that owns the files.
struct Writer {
    raft_dir: PathBuf,
    log_dir: PathBuf,
    segments: Vec<Segment>,
    /// Open handle on the last segment.
    active: Option<File>,
    segment_bytes_max: u64,
    state: PersistedState,
    shared: Shared,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<WriteCmd>) {
        let mut pending: Option<WriteCmd> = None;
        loop {
            let cmd = match pending.take() {
                Some(c) => c,
                None => match rx.blocking_recv() {
                    Some(c) => c,
                    None => return,
                },
            };
            let failed = lock(&self.shared).failed.clone();
            match cmd {
                WriteCmd::Append { frames, callback } => {
                    // Group commit: take every append already queued behind this one.
                    let mut batch = vec![(frames, callback)];
                    loop {
                        match rx.try_recv() {
                            Ok(WriteCmd::Append { frames, callback }) => {
                                batch.push((frames, callback))
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let result = match failed {
                        Some(why) => Err(why),
                        None => self.append(batch.iter().flat_map(|(f, _)| f.iter())),
                    };
                    if let Err(why) = &result {
                        self.fail(why);
                    }
                    for (_, cb) in batch {
                        cb.log_io_completed(result.clone().map_err(std::io::Error::other));
                    }
                }
                WriteCmd::Truncate { since, done } => {
                    let r = failed.map_or_else(|| self.truncate(since), Err);
                    self.finish(r, done);
                }
                WriteCmd::Purge { upto, done } => {
                    let r = failed.map_or_else(|| self.purge(upto), Err);
                    self.finish(r, done);
                }
                WriteCmd::SaveVote { vote, done } => {
                    let r = failed.map_or_else(
                        || {
                            self.state.vote = Some(vote);
                            self.write_state()
                        },
                        Err,
                    );
                    self.finish(r, done);
                }
                WriteCmd::SaveCommitted { committed } => {
                    if failed.is_none() {
                        self.state.committed = committed;
                        if let Err(why) = self.write_state() {
                            self.fail(&why);
                        }
                    }
                }
            }
        }
    }

    fn finish(&self, r: Result<(), String>, done: oneshot::Sender<Result<(), String>>) {
        if let Err(why) = &r {
            self.fail(why);
        }
        let _ = done.send(r);
    }

    fn fail(&self, why: &str) {
        tracing::error!(
            error = why,
            "Raft log write failed; the log store stops accepting writes"
        );
        let mut mem = lock(&self.shared);
        if mem.failed.is_none() {
            mem.failed = Some(why.to_string());
        }
    }

    fn write_state(&self) -> Result<(), String> {
        let bytes = serde_json::to_vec(&self.state).map_err(|e| e.to_string())?;
        atomic_write(&self.raft_dir, STATE_FILE, &bytes).map_err(|e| e.to_string())
    }

    fn append<'a>(
        &mut self,
        frames: impl Iterator<Item = &'a (u64, Vec<u8>)>,
    ) -> Result<(), String> {
        let mut new_segment = false;
        let mut wrote = false;
        for (index, frame) in frames {
            let roll = match self.segments.last() {
                None => true,
                Some(s) => {
                    s.next_index() != *index
                        || (s.len >= self.segment_bytes_max && !s.positions.is_empty())
                }
            };
            if roll {
                if wrote {
                    self.sync_active()?;
                }
                self.roll(*index)?;
                new_segment = true;
            }
            let seg = self.segments.last_mut().ok_or("no active segment")?;
            if self.active.is_none() {
                let f = OpenOptions::new()
                    .append(true)
                    .open(&seg.path)
                    .map_err(|e| format!("open {}: {e}", seg.path.display()))?;
                self.active = Some(f);
            }
            let file = self.active.as_mut().ok_or("no active segment file")?;
            file.write_all(frame)
                .map_err(|e| format!("write {}: {e}", seg.path.display()))?;
            seg.positions.push(seg.len);
            seg.len += frame.len() as u64;
            wrote = true;
        }
        if wrote {
            self.sync_active()?;
        }
        if new_segment {
            fsync_dir(&self.log_dir).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), String> {
        if let Some(f) = &self.active {
            f.sync_data()
                .map_err(|e| format!("fsync log segment: {e}"))?;
        }
        Ok(())
    }

    /// Starts a segment at `base`; an empty last segment is replaced.
    fn roll(&mut self, base: u64) -> Result<(), String> {
        self.active = None;
        if let Some(last) = self.segments.last() {
            if last.positions.is_empty() {
                let last = self.segments.pop().ok_or("no segment")?;
                fs::remove_file(&last.path)
                    .map_err(|e| format!("remove {}: {e}", last.path.display()))?;
            }
        }
        let path = segment_path(&self.log_dir, base);
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        drop(f);
        self.segments.push(Segment {
            base,
            path,
            positions: Vec::new(),
            len: 0,
        });
        Ok(())
    }

    fn truncate(&mut self, since: u64) -> Result<(), String> {
        self.active = None;
        let mut removed = false;
        while let Some(last) = self.segments.last() {
            if last.base >= since && self.segments.len() > 1 {
                let seg = self.segments.pop().ok_or("no segment")?;
                fs::remove_file(&seg.path)
                    .map_err(|e| format!("remove {}: {e}", seg.path.display()))?;
                removed = true;
            } else {
                break;
            }
        }
        if let Some(seg) = self.segments.last_mut() {
            if since < seg.next_index() {
                let keep = since.saturating_sub(seg.base) as usize;
                let cut = seg.positions.get(keep).copied().unwrap_or(seg.len);
                let f = OpenOptions::new()
                    .write(true)
                    .open(&seg.path)
                    .map_err(|e| format!("open {}: {e}", seg.path.display()))?;
                f.set_len(cut)
                    .map_err(|e| format!("truncate {}: {e}", seg.path.display()))?;
                f.sync_all()
                    .map_err(|e| format!("fsync {}: {e}", seg.path.display()))?;
                seg.positions.truncate(keep);
                seg.len = cut;
            }
        }
        if removed {
            fsync_dir(&self.log_dir).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> Result<(), String> {
        // The purge point is durable before any file goes, so a crash in between leaves
        // only files that open() ignores and removes.
        self.state.last_purged = Some(upto);
        self.write_state()?;
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[1].base <= upto.index + 1 {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path)
                .map_err(|e| format!("remove {}: {e}", seg.path.display()))?;
            removed = true;
        }
        if removed {
            fsync_dir(&self.log_dir).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
