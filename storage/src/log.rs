//! [`Log`]: one partition's log on disk.

pub(crate) mod cleaner;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use isthmus_protocol::batch::{
    self, BatchHeader, BatchInfo, Compression, TimestampType, Validation,
};

use crate::config::LogConfig;
use crate::epoch::{EpochCache, EpochEntry};
use crate::error::{IoContext, StorageError};
use crate::fsutil::{
    atomic_write, fsync_dir, parse_offset_file, remove_if_exists, INDEX_SUFFIX, LEFTOVER_SUFFIXES,
    LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::mmap::MapOwner;
use crate::producer::{self, ProducerStateEntry, ProducerStateManager, SequenceCheck};
use crate::segment::{ScanEnd, Segment};

/// Log start offset and recovery point, replaced atomically.
pub const PARTITION_CHECKPOINT_FILE: &str = "partition.checkpoint";
const PARTITION_CHECKPOINT_MAGIC: &[u8; 4] = b"ISPC";
const PARTITION_CHECKPOINT_VERSION: u16 = 1;
const PARTITION_CHECKPOINT_BYTES: usize = 4 + 2 + 8 + 8 + 4;

/// What a successful append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended {
        base_offset: i64,
        last_offset: i64,
        /// Broker time stamped on the batches, or -1 under CreateTime.
        log_append_time_ms: i64,
        log_start_offset: i64,
    },
    /// An idempotent producer's retry of a batch already in the log: answer success with
    /// the original offsets; nothing was written.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// Batches returned by [`Log::read`].
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, a zero-copy slice of the segment's memory map.
    pub records: Bytes,
    /// One past the last offset returned (the requested offset when nothing was).
    pub next_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// The files whose unsynced data a group commit must make durable. Built under the
/// caller's lock by [`Log::unflushed`], synced outside it, then reported back with
/// [`Log::mark_flushed`].
#[derive(Debug)]
pub struct FlushJob {
    /// Every offset below this is durable once [`FlushJob::sync`] succeeds.
    pub up_to: i64,
    files: Vec<Arc<File>>,
    generation: u64,
}

impl FlushJob {
    /// `fdatasync`s the files. On error the data's fate is unknown (the page cache may
    /// have dropped it): the broker must take the partition offline, as Kafka does.
    pub fn sync(&self) -> std::io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        Ok(())
    }
}

/// One partition's log: segments, indexes, leader-epoch cache and producer state.
/// See the crate docs for the file layout and the durability rules.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// By base offset; the last one is the active segment. Never empty.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    /// Every offset below it is durable.
    recovery_point: i64,
    epochs: EpochCache,
    producers: ProducerStateManager,
    /// Bumped by truncation, so a [`FlushJob`] taken before it cannot advance the
    /// recovery point over data written after it.
    generation: u64,
    /// Numbers each checkpoint taken, so one written late never replaces a newer one.
    checkpoint_seq: u64,
    /// Serialises checkpoint writes (taken under the caller's lock, written outside it)
    /// and holds the number of the last one written; `u64::MAX` once the log is closed or
    /// deleted, so nothing is written into its directory any more.
    checkpoint_writer: Arc<Mutex<u64>>,
}

/// The writer lock guards no invariant a panic could break (a number), so a poisoned
/// lock is taken as it is.
fn lock_writer(writer: &Mutex<u64>) -> MutexGuard<'_, u64> {
    writer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A checkpoint taken by [`Log::take_checkpoint`], to be written with
/// [`PendingCheckpoint::write`] without holding the log.
#[derive(Debug)]
pub struct PendingCheckpoint {
    dir: PathBuf,
    bytes: Vec<u8>,
    seq: u64,
    writer: Arc<Mutex<u64>>,
}

impl PendingCheckpoint {
    /// Writes the checkpoint atomically, unless a newer one was written meanwhile or the
    /// log was closed or deleted since it was taken.
    pub fn write(self) -> Result<(), StorageError> {
        let mut last = lock_writer(&self.writer);
        if self.seq <= *last {
            return Ok(());
        }
        atomic_write(&self.dir, PARTITION_CHECKPOINT_FILE, &self.bytes)?;
        *last = self.seq;
        Ok(())
    }
}

struct Checkpoint {
    log_start_offset: i64,
    recovery_point: i64,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PARTITION_CHECKPOINT_BYTES);
        out.extend_from_slice(PARTITION_CHECKPOINT_MAGIC);
        out.extend_from_slice(&PARTITION_CHECKPOINT_VERSION.to_be_bytes());
        out.extend_from_slice(&self.log_start_offset.to_be_bytes());
        out.extend_from_slice(&self.recovery_point.to_be_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != PARTITION_CHECKPOINT_BYTES
            || &b[..4] != PARTITION_CHECKPOINT_MAGIC
            || b[4..6] != PARTITION_CHECKPOINT_VERSION.to_be_bytes()
            || crc32c::crc32c(&b[..22]).to_be_bytes() != b[22..26]
        {
            return None;
        }
        let i64_at = |at: usize| b[at..at + 8].try_into().ok().map(i64::from_be_bytes);
        Some(Self {
            log_start_offset: i64_at(6)?,
            recovery_point: i64_at(14)?,
        })
    }
}

fn now_wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Headers of the batches of `seg` whose last offset is at or above `from`.
fn for_each_header_from(
    seg: &Segment,
    from: i64,
    mut f: impl FnMut(&BatchHeader),
) -> Result<(), StorageError> {
    let Some(map) = seg.view()? else {
        return Ok(());
    };
    let start = seg.offset_index.lookup(from);
    for b in seg.headers_from(&map, start) {
        if b.header.last_offset() >= from {
            f(&b.header);
        }
    }
    Ok(())
}

impl Log {
    /// Opens the log in `dir`, creating it if needed. With `clean_shutdown` false, every
    /// batch from the recovery point on is checked (header and CRC) and a torn or
    /// corrupt tail is cut off; indexes of those segments are rebuilt, other segments'
    /// indexes are sanity-checked, producer state is rebuilt from the newest snapshot
    /// plus the batches after it, and leftover `.tmp`/`.cleaned`/`.deleted` files go.
    pub fn open(dir: &Path, config: LogConfig, clean_shutdown: bool) -> Result<Log, StorageError> {
        config.validate()?;
        std::fs::create_dir_all(dir).at(dir)?;
        // Before anything reads segment files: a committed compaction swap is finished.
        cleaner::recover(dir)?;
        let now_ms = now_wall_ms();
        let mut log_bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in std::fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if LEFTOVER_SUFFIXES
                .iter()
                .any(|s| name.ends_with(&format!(".{s}")))
            {
                tracing::info!(file = name, "removing leftover file");
                remove_if_exists(&entry.path())?;
            } else if let Some(base) = parse_offset_file(name, LOG_SUFFIX) {
                log_bases.push(base);
            } else if let Some(base) = parse_offset_file(name, INDEX_SUFFIX)
                .or_else(|| parse_offset_file(name, TIME_INDEX_SUFFIX))
            {
                index_files.push((base, entry.path()));
            } else if name.ends_with(".swap") {
                tracing::warn!(
                    file = name,
                    "ignoring .swap file (Isthmus's cleaner commits with cleaner-swap)"
                );
            }
        }
        log_bases.sort_unstable();
        for (base, path) in index_files {
            if log_bases.binary_search(&base).is_err() {
                remove_if_exists(&path)?;
            }
        }
        let checkpoint_path = dir.join(PARTITION_CHECKPOINT_FILE);
        let checkpoint = match std::fs::read(&checkpoint_path) {
            Ok(b) => {
                let c = Checkpoint::decode(&b);
                if c.is_none() {
                    tracing::warn!(path = %checkpoint_path.display(), "ignoring damaged partition checkpoint");
                }
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).at(&checkpoint_path),
        };
        let clean = clean_shutdown && checkpoint.is_some();

        let mut segments = BTreeMap::new();
        for &base in &log_bases {
            segments.insert(base, Segment::open(dir, base, now_ms)?);
        }
        let first_base = log_bases.first().copied();
        let recover_from = if clean {
            None
        } else {
            // The active segment is always checked: its tail is where a crash tears.
            let rp = checkpoint.as_ref().map_or(i64::MIN, |c| c.recovery_point);
            let rp = rp.min(log_bases.last().copied().unwrap_or(0));
            Some(
                log_bases
                    .iter()
                    .rev()
                    .find(|&&b| b <= rp)
                    .copied()
                    .unwrap_or(i64::MIN),
            )
        };

        let mut damaged_at: Option<i64> = None;
        for (i, &base) in log_bases.iter().enumerate() {
            let next_base = log_bases.get(i + 1).copied();
            let Some(seg) = segments.get_mut(&base) else {
                continue;
            };
            if damaged_at.is_some() {
                break;
            }
            if recover_from.is_some_and(|r| base >= r) {
                let scan_len = u64::MAX;
                if seg.rebuild(true, next_base, None, scan_len, &config)? == ScanEnd::Damaged
                    && next_base.is_some()
                {
                    damaged_at = Some(base);
                }
            } else {
                seg.load_trusted(next_base, &config)?;
            }
        }
        if let Some(base) = damaged_at {
            let later: Vec<i64> = segments.range(base + 1..).map(|(b, _)| *b).collect();
            tracing::error!(
                segment = base,
                dropped = later.len(),
                "corrupt segment: deleting the segments after it"
            );
            for b in later {
                if let Some(seg) = segments.remove(&b) {
                    seg.delete_files(dir)?;
                }
            }
        }

        if segments.is_empty() {
            let base = checkpoint.as_ref().map_or(0, |c| c.log_start_offset.max(0));
            segments.insert(base, Segment::create(dir, base, &config, now_ms)?);
        } else if let Some(mut last) = segments.last_entry() {
            let seg = last.get_mut();
            if clean
                && checkpoint
                    .as_ref()
                    .is_some_and(|c| c.recovery_point != seg.next_offset)
            {
                tracing::warn!("clean shutdown claimed but the checkpoint disagrees with the log end: recovering the active segment");
                seg.rebuild(true, None, None, u64::MAX, &config)?;
            }
        }
        // No reader exists yet: cut every file to its data, which also zeroes a damaged
        // tail of the active segment before it is preallocated again.
        for seg in segments.values_mut() {
            seg.trim_unshared()?;
        }
        if let Some(mut last) = segments.last_entry() {
            last.get_mut().activate(&config)?;
        }

        let first_base = segments.keys().next().copied().or(first_base).unwrap_or(0);
        let log_end = segments
            .values()
            .next_back()
            .map_or(first_base, |s| s.next_offset);
        let log_start_offset = checkpoint
            .as_ref()
            .map_or(first_base, |c| c.log_start_offset.max(first_base))
            .min(log_end);
        let recovery_point = if clean {
            log_end
        } else {
            checkpoint
                .as_ref()
                .map_or(log_start_offset, |c| c.recovery_point)
                .clamp(log_start_offset, log_end)
        };

        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            recovery_point,
            epochs: EpochCache::empty(dir),
            producers: ProducerStateManager::default(),
            generation: 0,
            checkpoint_seq: 0,
            checkpoint_writer: Arc::new(Mutex::new(0)),
        };
        log.load_epochs()?;
        log.reload_producer_state()?;
        fsync_dir(dir)?;
        tracing::debug!(
            dir = %dir.display(),
            log_start_offset,
            log_end,
            recovery_point,
            segments = log.segments.len(),
            producers = log.producers.len(),
            "log opened"
        );
        Ok(log)
    }

    fn load_epochs(&mut self) -> Result<(), StorageError> {
        let mut changed = false;
        self.epochs = match EpochCache::load(&self.dir)? {
            Some(c) => c,
            None => {
                tracing::warn!(dir = %self.dir.display(), "rebuilding damaged leader-epoch checkpoint from the log");
                let mut c = EpochCache::empty(&self.dir);
                for seg in self.segments.values() {
                    for_each_header_from(seg, self.log_start_offset, |h| {
                        if c.latest_epoch()
                            .is_none_or(|e| h.partition_leader_epoch > e)
                        {
                            c.assign(h.partition_leader_epoch, h.base_offset);
                        }
                    })?;
                }
                changed = true;
                c
            }
        };
        changed |= self.epochs.truncate_from_end(self.log_end_offset());
        changed |= self.epochs.truncate_from_start(self.log_start_offset);
        if changed {
            self.epochs.persist()?;
        }
        Ok(())
    }

    /// Producer state = newest snapshot at or below the log end + replay of the batches
    /// after it; producers whose data is all below the log start are forgotten.
    fn reload_producer_state(&mut self) -> Result<(), StorageError> {
        let log_end = self.log_end_offset();
        let (mut state, from) = match ProducerStateManager::load_latest(&self.dir, log_end)? {
            Some((s, at)) => (s, at),
            None => (ProducerStateManager::default(), self.log_start_offset),
        };
        let from = from.max(self.segments.keys().next().copied().unwrap_or(from));
        for seg in self.segments.values().filter(|s| s.next_offset > from) {
            for_each_header_from(seg, from, |h| state.update(h))?;
        }
        state.evict_below(self.log_start_offset);
        self.producers = state;
        Ok(())
    }

    fn active(&self) -> &Segment {
        // Invariant: `segments` is never empty.
        self.segments
            .values()
            .next_back()
            .expect("log has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("log has an active segment")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies changed topic configs; segment sizes take effect at the next roll.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), StorageError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Every offset below it is known durable.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Bytes of data in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// OffsetForLeaderEpoch, as Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest
    /// epoch at or below `epoch` and the offset where the next epoch starts (the log end
    /// for the latest). `None` when undefined (no epochs, or `epoch` above all of them).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// A new leader's epoch starts at the log end, recorded before any batch of it is
    /// written (as Kafka's `makeLeader` does), so followers asking OffsetForLeaderEpoch
    /// about the previous epoch learn where it ended. Older or equal epochs change nothing.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        if epoch < 0 || self.epochs.latest_epoch().is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        if self.epochs.assign(epoch, self.log_end_offset()) {
            self.epochs.persist()?;
        }
        Ok(())
    }

    /// Read-only view of one producer's idempotence state.
    pub fn producer_state(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(producer_id)
    }

    /// Leader append of a Produce request's records: validates every batch, checks
    /// idempotent producers, assigns offsets and `leader_epoch` in place, applies
    /// LogAppendTime when configured, rolls if needed, then writes. All or nothing: on
    /// any error nothing is appended.
    pub fn append_as_leader(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let infos = batch::batches(records, Validation::Produce).collect::<Result<Vec<_>, _>>()?;
        if infos.is_empty() {
            return Err(StorageError::InvalidRecord("no record batches".into()));
        }
        if records.len() as u64 > self.config.segment_bytes {
            return Err(StorageError::RecordListTooLarge {
                size: records.len(),
                segment_bytes: self.config.segment_bytes,
            });
        }
        // Per batch: the max timestamp to write (when the header's is wrong or CreateTime
        // must be restored).
        let mut max_ts_fix: Vec<Option<i64>> = Vec::with_capacity(infos.len());
        for info in &infos {
            let h = &info.header;
            if h.size() > self.config.max_message_bytes as usize {
                return Err(StorageError::MessageTooLarge {
                    size: h.size(),
                    max: self.config.max_message_bytes,
                });
            }
            if h.is_control() {
                return Err(StorageError::InvalidRecord(
                    "clients cannot write control batches".into(),
                ));
            }
            if h.has_producer_id() && h.base_sequence < 0 {
                return Err(StorageError::InvalidRecord(format!(
                    "producer {} sent a batch without a sequence",
                    h.producer_id
                )));
            }
            if h.is_transactional() {
                // Transactions (markers, LSO, aborted lists) are not implemented: a
                // transactional batch would never be committed or aborted.
                return Err(StorageError::InvalidRecord(
                    "transactional batches need transactions, which are not implemented yet".into(),
                ));
            }
            let summary = batch::validate_records(&records[info.range()])?;
            if self.config.cleanup_policy.compacts() {
                crate::records::require_keys(&records[info.range()], h, summary.as_ref())?;
            }
            let fix = match summary {
                Some(s)
                    if s.max_timestamp != h.max_timestamp
                        || h.timestamp_type() != TimestampType::CreateTime =>
                {
                    Some(s.max_timestamp)
                }
                None if h.timestamp_type() != TimestampType::CreateTime => Some(h.max_timestamp),
                _ => None,
            };
            max_ts_fix.push(fix);
        }

        // Offsets this call will get, then idempotence checks in order against the
        // state as it will be after the earlier batches.
        let log_end = self.log_end_offset();
        let mut next = log_end;
        let mut bases = Vec::with_capacity(infos.len());
        for info in &infos {
            bases.push(next);
            next += i64::from(info.header.last_offset_delta) + 1;
        }
        let last_offset = next - 1;
        let mut pending: HashMap<i64, ProducerStateEntry> = HashMap::new();
        for (info, &base) in infos.iter().zip(&bases) {
            let h = &info.header;
            if !h.has_producer_id() {
                continue;
            }
            let current = pending
                .get(&h.producer_id)
                .or_else(|| self.producers.get(h.producer_id));
            match producer::check_batch(current, h)? {
                SequenceCheck::Duplicate(meta) => {
                    return Ok(AppendOutcome::Duplicate {
                        base_offset: meta.first_offset,
                        last_offset: meta.last_offset,
                    });
                }
                SequenceCheck::Append => {
                    let mut entry = current.cloned().unwrap_or_else(|| ProducerStateEntry {
                        producer_id: h.producer_id,
                        epoch: batch::NO_PRODUCER_EPOCH,
                        batches: Default::default(),
                        last_timestamp: -1,
                    });
                    entry.update(&BatchHeader {
                        base_offset: base,
                        ..*h
                    });
                    pending.insert(h.producer_id, entry);
                }
            }
        }

        // Everything is valid. Every rewrite (base offset, leader epoch, timestamps and
        // the CRC they change) lies in the 61-byte header, so only headers are copied and
        // patched; the bodies are written as they arrived.
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let mut headers = Vec::with_capacity(infos.len());
        let mut patched = Vec::with_capacity(infos.len());
        for ((info, &base), fix) in infos.iter().zip(&bases).zip(&max_ts_fix) {
            let range = info.range();
            let mut head = [0u8; batch::HEADER_SIZE];
            head.copy_from_slice(&records[range.start..range.start + batch::HEADER_SIZE]);
            let rest = &records[range.start + batch::HEADER_SIZE..range.end];
            batch::set_base_offset(&mut head, base)?;
            batch::set_partition_leader_epoch(&mut head, leader_epoch)?;
            if log_append_time {
                batch::set_max_timestamp_split(
                    &mut head,
                    rest,
                    TimestampType::LogAppendTime,
                    now_ms,
                )?;
            } else if let Some(ts) = fix {
                batch::set_max_timestamp_split(&mut head, rest, TimestampType::CreateTime, *ts)?;
            }
            headers.push(BatchInfo {
                header: BatchHeader::parse(&head)?,
                position: info.position,
            });
            patched.push(head);
        }

        self.maybe_roll(records.len() as u64, last_offset, now_ms)?;
        if leader_epoch >= 0 && self.epochs.latest_epoch() != Some(leader_epoch) {
            let before = self.epochs.entries().to_vec();
            if self.epochs.assign(leader_epoch, log_end) {
                if let Err(e) = self.epochs.persist() {
                    self.epochs = EpochCache::empty(&self.dir);
                    for entry in before {
                        self.epochs.assign(entry.epoch, entry.start_offset);
                    }
                    return Err(e);
                }
            }
        }
        let config = self.config.clone();
        self.active_mut()
            .append_patched(records, &headers, &patched, &config)?;
        for (_, entry) in pending {
            self.producers.insert(entry);
        }
        Ok(AppendOutcome::Appended {
            base_offset: log_end,
            last_offset,
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
        })
    }

    /// Follower (or mirror) append: batches keep their offsets and epochs. Offsets must
    /// increase and start at or after the log end; gaps are allowed, as a compacted
    /// leader produces them.
    pub fn append_as_follower(&mut self, records: &[u8]) -> Result<AppendOutcome, StorageError> {
        let infos = batch::batches(records, Validation::Stored).collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (infos.first(), infos.last()) else {
            return Err(StorageError::InvalidRecord("no record batches".into()));
        };
        let mut expected = self.log_end_offset();
        for info in &infos {
            if info.header.base_offset < expected {
                return Err(StorageError::UnexpectedAppendOffset {
                    offset: info.header.base_offset,
                    expected_at_least: expected,
                });
            }
            expected = info.header.next_offset();
        }
        let (base_offset, last_offset) = (first.header.base_offset, last.header.last_offset());
        self.maybe_roll(records.len() as u64, last_offset, now_wall_ms())?;
        if self.active().is_empty() && self.active().base_offset < base_offset {
            // Keep relative offsets small and the segment name meaningful after a gap.
            self.replace_empty_active(base_offset)?;
        }
        let mut epochs_changed = false;
        for info in &infos {
            let h = &info.header;
            if h.partition_leader_epoch >= 0
                && self
                    .epochs
                    .latest_epoch()
                    .is_none_or(|e| h.partition_leader_epoch > e)
            {
                epochs_changed |= self.epochs.assign(h.partition_leader_epoch, h.base_offset);
            }
        }
        if epochs_changed {
            self.epochs.persist()?;
        }
        let config = self.config.clone();
        self.active_mut().append(records, &infos, &config)?;
        for info in &infos {
            self.producers.update(&info.header);
        }
        Ok(AppendOutcome::Appended {
            base_offset,
            last_offset,
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Rolls before an append of `bytes` ending at `last_offset` when the active segment
    /// would overflow, is older than `segment.ms`, has a full index, or could not
    /// express `last_offset` as a 32-bit relative offset.
    fn maybe_roll(
        &mut self,
        bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let seg = self.active();
        if seg.is_empty() {
            return Ok(());
        }
        let full = seg.size + bytes > self.config.segment_bytes;
        let old = self
            .config
            .segment_ms
            .is_some_and(|ms| now_ms.saturating_sub(seg.rolling_base_ms()) > ms as i64);
        let index_full = seg.offset_index.is_full() || seg.time_index.is_full();
        let offset_overflow = last_offset - seg.base_offset > i64::from(i32::MAX);
        if full || old || index_full || offset_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end, snapshotting
    /// producer state there. A no-op when the active segment is empty.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if self.active().is_empty() {
            return Ok(());
        }
        let base = self.log_end_offset();
        // Create first: if that fails, the current segment is still active and whole.
        let new = Segment::create(&self.dir, base, &self.config, now_ms)?;
        fsync_dir(&self.dir)?;
        self.active_mut().seal(true)?;
        self.segments.insert(base, new);
        self.producers.write_snapshot(&self.dir, base)?;
        self.checkpoint()?;
        tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
        Ok(())
    }

    /// Swaps the empty active segment for one based at `base` (> its base).
    fn replace_empty_active(&mut self, base: i64) -> Result<(), StorageError> {
        let new = Segment::create(&self.dir, base, &self.config, now_wall_ms())?;
        if let Some((_, old)) = self.segments.pop_last() {
            old.delete_files(&self.dir)?;
        }
        self.segments.insert(base, new);
        if self.segments.len() == 1 {
            self.log_start_offset = base;
        }
        fsync_dir(&self.dir)?;
        Ok(())
    }

    /// Whole batches from the segment holding `offset`, starting with the batch that
    /// contains it, stopping before any batch reaching `upper_bound` (exclusive, e.g. the
    /// high watermark) and before `max_bytes` would be passed, but with at least one
    /// batch when `min_one_batch` (KIP-74). A batch may start before `offset` or even
    /// before the log start; consumers skip such records.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        let empty = ReadResult {
            records: Bytes::new(),
            next_offset: offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: log_end,
        };
        let upper_bound = upper_bound.min(log_end);
        if offset >= upper_bound {
            return Ok(empty);
        }
        let floor = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for seg in self.segments.range(floor..).map(|(_, s)| s) {
            let Some(map) = seg.view()? else { continue };
            let start_pos = seg.offset_index.lookup(offset);
            let mut range: Option<(usize, usize)> = None;
            let mut next_offset = offset;
            for b in seg.headers_from(&map, start_pos) {
                let h = b.header;
                if h.last_offset() < offset {
                    continue;
                }
                if h.last_offset() >= upper_bound {
                    break;
                }
                let end = b.position + h.size();
                match range {
                    None if h.size() <= max_bytes || min_one_batch => {
                        range = Some((b.position, end))
                    }
                    None => break,
                    Some((s, _)) if end - s <= max_bytes => range = Some((s, end)),
                    Some(_) => break,
                }
                next_offset = h.next_offset();
            }
            if let Some((s, e)) = range {
                let records = Bytes::from_owner(MapOwner(map)).slice(s..e);
                return Ok(ReadResult {
                    records,
                    next_offset,
                    ..empty
                });
            }
            if seg.next_offset > offset {
                // The segment holds the offset but the first batch did not fit.
                break;
            }
        }
        Ok(empty)
    }

    /// ListOffsets by timestamp: the first offset at or after the log start whose
    /// timestamp is at or above `ts`, with that timestamp. For uncompressed CreateTime
    /// batches the exact record is found; for compressed batches (not decompressed
    /// here) the batch's first offset and its `maxTimestamp` are returned, which makes a
    /// consumer start at most one batch early.
    pub fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        for seg in self.segments.values() {
            if seg.next_offset <= self.log_start_offset || seg.max_timestamp < ts {
                continue;
            }
            let map = seg.view().ok()??;
            let by_time = seg
                .time_index
                .lookup(ts)
                .map_or(0, |(_, o)| seg.offset_index.lookup(o));
            let start = by_time.max(seg.offset_index.lookup(self.log_start_offset));
            for b in seg.headers_from(&map, start) {
                let h = b.header;
                if h.last_offset() < self.log_start_offset || h.max_timestamp < ts {
                    continue;
                }
                if let Some(found) =
                    self.first_record_at_or_after(&map.bytes()[b.range()], &h, |t| t >= ts)
                {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The offset and timestamp of the record with the largest timestamp
    /// (ListOffsets MAX_TIMESTAMP). Compressed batches answer with their first offset.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&Segment> = None;
        for seg in self.segments.values() {
            if seg.next_offset > self.log_start_offset
                && seg.max_timestamp >= 0
                && best.is_none_or(|b| seg.max_timestamp > b.max_timestamp)
            {
                best = Some(seg);
            }
        }
        let seg = best?;
        let target = seg.max_timestamp;
        let map = seg.view().ok()??;
        let start = seg.offset_index.lookup(seg.max_timestamp_offset);
        for b in seg.headers_from(&map, start) {
            let h = b.header;
            if h.last_offset() < seg.max_timestamp_offset {
                continue;
            }
            return self
                .first_record_at_or_after(&map.bytes()[b.range()], &h, |t| t == target)
                .or(Some((h.base_offset.max(self.log_start_offset), target)));
        }
        None
    }

    /// In one batch, the first record at or after the log start whose timestamp
    /// satisfies `pred`.
    fn first_record_at_or_after(
        &self,
        bytes: &[u8],
        h: &BatchHeader,
        pred: impl Fn(i64) -> bool,
    ) -> Option<(i64, i64)> {
        let first = h.base_offset.max(self.log_start_offset);
        if h.timestamp_type() == TimestampType::LogAppendTime
            || h.compression() != Some(Compression::None)
        {
            return pred(h.max_timestamp).then_some((first, h.max_timestamp));
        }
        for r in batch::records(bytes).ok()? {
            let r = r.ok()?;
            let offset = h.base_offset + i64::from(r.offset_delta);
            let ts = h.base_timestamp.saturating_add(r.timestamp_delta);
            if offset >= self.log_start_offset && pred(ts) {
                return Some((offset, ts));
            }
        }
        None
    }

    /// The files holding data not yet durable, or `None` when everything is.
    pub fn unflushed(&self) -> Option<FlushJob> {
        let up_to = self.log_end_offset();
        if self.recovery_point >= up_to {
            return None;
        }
        let files = self
            .segments
            .values()
            .filter(|s| s.next_offset > self.recovery_point && !s.is_empty())
            .map(Segment::flush_files)
            .collect();
        Some(FlushJob {
            up_to,
            files,
            generation: self.generation,
        })
    }

    /// Records that `job` was synced: the recovery point moves to `job.up_to` unless a
    /// truncation happened since the job was taken.
    pub fn mark_flushed(&mut self, job: &FlushJob) {
        if job.generation == self.generation {
            self.recovery_point = self
                .recovery_point
                .max(job.up_to.min(self.log_end_offset()));
        }
    }

    /// Messages not yet durable (`log.flush.interval.messages`).
    pub fn unflushed_messages(&self) -> u64 {
        (self.log_end_offset() - self.recovery_point).max(0) as u64
    }

    /// Makes the recovery point and log start durable, so the next unclean open only
    /// checks data after it. Sealed segments below the recovery point get their trimmed
    /// length and indexes synced first. Rolls, truncations and close call it; periodic
    /// checkpoints (Kafka's `log.flush.offset.checkpoint.interval.ms`) use
    /// [`Log::take_checkpoint`] so that the file's fsyncs run without the log's lock.
    pub fn checkpoint(&mut self) -> Result<(), StorageError> {
        self.take_checkpoint()?.write()
    }

    /// The first half of [`Log::checkpoint`]: syncs sealed segments that need it (rare:
    /// after a roll) and captures the checkpoint's contents, to be written later.
    pub fn take_checkpoint(&mut self) -> Result<PendingCheckpoint, StorageError> {
        let rp = self.recovery_point;
        for seg in self.segments.values_mut() {
            if seg.needs_seal_sync && seg.next_offset <= rp {
                seg.sync_sealed()?;
            }
        }
        self.checkpoint_seq += 1;
        Ok(PendingCheckpoint {
            dir: self.dir.clone(),
            bytes: Checkpoint {
                log_start_offset: self.log_start_offset,
                recovery_point: rp,
            }
            .encode(),
            seq: self.checkpoint_seq,
            writer: Arc::clone(&self.checkpoint_writer),
        })
    }

    /// No checkpoint taken earlier is written from now on (waits for one being written).
    fn stop_checkpoints(&self) {
        *lock_writer(&self.checkpoint_writer) = u64::MAX;
    }

    /// Retention by time (`retention.ms`, against each segment's newest timestamp) and by
    /// size (`retention.bytes`), deleting whole segments from the oldest, only those
    /// entirely below `high_watermark`. The active segment goes too when it qualifies and
    /// is not empty (a new one is rolled first). Returns how many segments were deleted.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<usize, StorageError> {
        let mut deleted = self.delete_segments_below_start(high_watermark, now_ms)?;
        let deletes = self.config.cleanup_policy.deletes();
        if let Some(ms) = self.config.retention_ms().filter(|_| deletes) {
            deleted += self.delete_oldest_while(high_watermark, now_ms, |seg, _| {
                now_ms.saturating_sub(seg.largest_timestamp()) > ms
            })?;
        }
        if let Some(limit) = self.config.retention_bytes().filter(|_| deletes) {
            let mut excess = self.size_bytes() as i64 - limit;
            deleted += self.delete_oldest_while(high_watermark, now_ms, |seg, _| {
                if excess - seg.size as i64 >= 0 {
                    excess -= seg.size as i64;
                    true
                } else {
                    false
                }
            })?;
        }
        if deleted > 0 {
            let first = self
                .segments
                .keys()
                .next()
                .copied()
                .unwrap_or(self.log_start_offset);
            self.after_log_start_moved(self.log_start_offset.max(first))?;
        }
        Ok(deleted)
    }

    fn delete_segments_below_start(
        &mut self,
        high_watermark: i64,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let start = self.log_start_offset;
        // Wholly below the start means the *next* segment begins at or below it (Kafka's
        // rule): a segment emptied by compaction has no records, so its own next offset
        // is its base, but it still covers every offset up to the next segment.
        self.delete_oldest_while(high_watermark, now_ms, |_, end| end <= start)
    }

    /// Deletes segments from the oldest while `pred(segment, end)` holds and the segment
    /// ends at or below `upper_bound`; `end` is the next segment's base (the segment's own
    /// next offset for the last one).
    fn delete_oldest_while(
        &mut self,
        upper_bound: i64,
        now_ms: i64,
        mut pred: impl FnMut(&Segment, i64) -> bool,
    ) -> Result<usize, StorageError> {
        let mut doomed = Vec::new();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for (i, base) in bases.iter().enumerate() {
            let seg = &self.segments[base];
            let end = bases.get(i + 1).copied().unwrap_or(seg.next_offset);
            if seg.is_empty() && seg.active || end > upper_bound || !pred(seg, end) {
                break;
            }
            doomed.push(*base);
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        if doomed.len() == self.segments.len() {
            self.roll(now_ms)?;
        }
        for base in &doomed {
            if let Some(seg) = self.segments.remove(base) {
                seg.delete_files(&self.dir)?;
            }
        }
        Ok(doomed.len())
    }

    fn after_log_start_moved(&mut self, start: i64) -> Result<(), StorageError> {
        self.log_start_offset = start;
        self.recovery_point = self.recovery_point.max(start);
        let first = self.segments.keys().next().copied().unwrap_or(start);
        producer::delete_snapshots_below(&self.dir, first)?;
        self.producers.evict_below(start);
        if self.epochs.truncate_from_start(start) {
            self.epochs.persist()?;
        }
        fsync_dir(&self.dir)?;
        self.checkpoint()
    }

    /// DeleteRecords: moves the log start to `offset` (durably, before answering) and
    /// deletes the segments wholly below it. Returns the new log start.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        let log_end = self.log_end_offset();
        if offset > log_end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        self.delete_segments_below_start(log_end, now_wall_ms())?;
        // Durable before the caller answers DeleteRecords.
        self.after_log_start_moved(offset)?;
        Ok(self.log_start_offset)
    }

    /// Follower truncation: removes every batch whose offsets reach `offset` (a batch
    /// straddling it goes whole, so the log end may land below `offset`), and the epoch
    /// cache and producer state with them. Bytes a reader may hold are never rewritten:
    /// the cut segment is sealed and appends continue in a new segment.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        if offset < first_base {
            return self.truncate_fully_and_start_at(offset);
        }
        self.generation += 1;
        let later: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        // Newest first, so a crash in between leaves a prefix of the log.
        for base in later.iter().rev() {
            if let Some(seg) = self.segments.remove(base) {
                seg.delete_files(&self.dir)?;
            }
        }
        fsync_dir(&self.dir)?;
        let config = self.config.clone();
        let now_ms = now_wall_ms();
        let Some(mut k) = self.segments.pop_last() else {
            return self.truncate_fully_and_start_at(offset);
        };
        let k_seg = &mut k.1;
        k_seg.cut_at(offset, &config)?;
        let new_end = k_seg.next_offset;
        if k_seg.is_empty() {
            k_seg.delete_files(&self.dir)?;
        } else {
            let shared = k_seg.map_is_shared();
            k_seg.seal(!shared)?;
            k_seg.sync_sealed()?;
            self.segments.insert(k.0, k.1);
        }
        let new = Segment::create(&self.dir, new_end, &config, now_ms)?;
        self.segments.insert(new_end, new);
        fsync_dir(&self.dir)?;
        self.after_truncation(new_end)
    }

    /// Empties the log and restarts it at `offset` (a follower far behind its leader's
    /// log start, or truncation below every segment).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        self.generation += 1;
        let all = std::mem::take(&mut self.segments);
        for seg in all.values().rev() {
            seg.delete_files(&self.dir)?;
        }
        for (_, path) in producer::list_snapshots(&self.dir)? {
            remove_if_exists(&path)?;
        }
        self.segments.insert(
            offset,
            Segment::create(&self.dir, offset, &self.config, now_wall_ms())?,
        );
        fsync_dir(&self.dir)?;
        self.log_start_offset = offset;
        self.producers.clear();
        self.epochs = EpochCache::empty(&self.dir);
        self.epochs.persist()?;
        self.after_truncation(offset)
    }

    fn after_truncation(&mut self, new_end: i64) -> Result<(), StorageError> {
        self.log_start_offset = self.log_start_offset.min(new_end);
        self.recovery_point = self.recovery_point.min(new_end);
        if self.epochs.truncate_from_end(new_end) {
            self.epochs.persist()?;
        }
        self.reload_producer_state()?;
        cleaner::on_truncation(&self.dir, new_end)?;
        self.checkpoint()
    }

    /// Syncs everything, trims the active segment, and writes the producer snapshot and
    /// checkpoint, so the next [`Log::open`] is clean.
    pub fn close(mut self) -> Result<(), StorageError> {
        let closed = self.close_files();
        // Even when closing failed: nothing is written into the directory after this.
        self.stop_checkpoints();
        closed?;
        fsync_dir(&self.dir)
    }

    fn close_files(&mut self) -> Result<(), StorageError> {
        if let Some(job) = self.unflushed() {
            job.sync().at(&self.dir)?;
            self.mark_flushed(&job);
        }
        let log_end = self.log_end_offset();
        let active = self.active_mut();
        active.seal(true)?;
        active.sync_sealed()?;
        self.producers.write_snapshot(&self.dir, log_end)?;
        self.checkpoint()
    }

    /// Removes the partition: renames the directory to `<unique>.<pid>-delete` (one atomic
    /// step that hides it from the next startup), then deletes it. The new name leaves the
    /// topic out: a 249-character topic name plus a suffix would pass the file-name limit.
    pub fn delete(self) -> Result<(), StorageError> {
        self.stop_checkpoints();
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let target = self
            .dir
            .with_file_name(format!("{unique:x}.{}-delete", std::process::id()));
        let parent = self
            .dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        std::fs::rename(&self.dir, &target).at(&target)?;
        fsync_dir(&parent)?;
        drop(self);
        std::fs::remove_dir_all(&target).at(&target)?;
        fsync_dir(&parent)
    }
}
