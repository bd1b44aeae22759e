//! Log compaction (`cleanup.policy=compact`): Kafka's log cleaner, for one partition.
//!
//! A pass ([`Log::clean`]) works as Kafka's `LogCleaner.doClean`:
//! 1. The dirty section runs from the cleaner checkpoint (where the last pass ended) to
//!    the first uncleanable offset: the caller's bound (high watermark), the active
//!    segment, the recovery point (only durable data is compacted: dropping a record
//!    because a newer one exists must not outlive that newer one in a crash), and the
//!    first segment younger than `min.compaction.lag.ms`.
//! 2. An offset map, key → latest offset, is built over the dirty section, bounded by
//!    `cleaner_dedupe_buffer_bytes`; when it fills, the pass ends where the map stopped.
//! 3. Every closed segment from the log start to the map's end is rewritten, adjacent
//!    segments grouped up to `segment.bytes`: a record stays when its key has no later
//!    offset in the map (records past the map's end always stay). Keyless records go,
//!    as in Kafka. Tombstones follow KIP-534: the first pass that keeps one sets the
//!    batch's delete-horizon flag with `baseTimestamp = now + delete.retention.ms`; a
//!    later pass after that time removes it. Batches left empty vanish, except the last
//!    batch of a live idempotent producer, kept empty so its last sequence survives.
//!    Control batches are copied unchanged (no transactions yet).
//!
//! # Crash safety
//! Each group is written to `<base>.log.cleaned` and fsynced. The commit point is the
//! atomic write of `cleaner-swap`, a manifest naming each group's new base and the
//! segments it replaces. Then, per group, the old segments' files are unlinked and the
//! `.cleaned` file renamed over `<base>.log`; last the manifest is removed. [`recover`]
//! runs first in `Log::open`: a manifest means the `.cleaned` files are complete, so the
//! swap is finished (every step is idempotent); `.cleaned` files without a manifest are
//! an interrupted pass and are deleted with the other leftovers. Old files are only
//! unlinked, never truncated, so readers' memory maps stay valid.
//!
//! The cleaner checkpoint (`cleaner.checkpoint`) is written after the swap; losing it
//! only makes the next pass re-read a section that is already clean.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use isthmus_protocol::batch::BatchHeader;

use super::{Log, Segment};
use crate::error::{IoContext, StorageError};
use crate::fsutil::{
    atomic_write, fsync_dir, offset_file, remove_if_exists, INDEX_SUFFIX, LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
};
use crate::records::{self, RawRecord, DELETE_HORIZON_BIT};

/// Where the last cleaning pass ended, and the earliest delete horizon it left.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner.checkpoint";
/// The swap manifest: present only between a pass's commit and the end of its swap.
pub const CLEANER_SWAP_FILE: &str = "cleaner-swap";
const CLEANED_SUFFIX: &str = "log.cleaned";
const CHECKPOINT_MAGIC: &[u8; 4] = b"ISCC";
const SWAP_MAGIC: &[u8; 4] = b"ISCS";
const FORMAT_VERSION: u16 = 1;
const CHECKPOINT_BYTES: usize = 4 + 2 + 8 + 8 + 4;
/// Bytes charged per offset-map key on top of the key itself (table slot, offset,
/// allocation header), so the configured budget approximates real memory.
const MAP_ENTRY_OVERHEAD_BYTES: u64 = 64;
/// Buffer for writing `.cleaned` files.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Why [`Log::cleanable`] says a pass is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanReason {
    /// Dirty bytes exceed `min.cleanable.dirty.ratio` of the cleanable log.
    DirtyRatio,
    /// The oldest dirty data is older than `max.compaction.lag.ms`.
    MaxCompactionLag,
    /// Kept tombstones have passed their delete horizon.
    DeleteHorizon,
}

/// What [`Log::cleanable`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleanable {
    pub reason: CleanReason,
    pub first_dirty_offset: i64,
    /// The bound a pass would stop at (see the module docs).
    pub first_uncleanable_offset: i64,
    /// Bytes of closed segments below the bound, split at the first dirty offset
    /// (a segment holding dirty data counts as dirty).
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    pub dirty_ratio: f64,
}

/// What a [`Log::clean`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub first_dirty_offset: i64,
    /// The new cleaner checkpoint: the offset map covered everything below it.
    pub cleaned_up_to: i64,
    pub keys: u64,
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// Batches of idempotent producers kept with no records (Kafka's RETAIN_EMPTY).
    pub empty_batches_kept: u64,
    /// Batches whose records could not be read; copied unchanged.
    pub unreadable_batches: u64,
}

/// Where a test stops a pass, leaving the files a crash at that moment would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// `.cleaned` files complete and synced, no manifest.
    CleanedWritten,
    /// Manifest durable, nothing swapped.
    Committed,
    /// The first group's old files unlinked, its `.cleaned` not yet renamed.
    MidSwap,
    /// Every group renamed, the manifest and the old checkpoint still there.
    Swapped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CleanerCheckpoint {
    first_dirty: i64,
    /// Earliest delete horizon of a kept tombstone in the clean section (`i64::MAX`: none).
    next_delete_horizon_ms: i64,
}

impl CleanerCheckpoint {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKPOINT_BYTES);
        out.extend_from_slice(CHECKPOINT_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&self.first_dirty.to_be_bytes());
        out.extend_from_slice(&self.next_delete_horizon_ms.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&out).to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        if b.len() != CHECKPOINT_BYTES
            || r.take(4)? != CHECKPOINT_MAGIC
            || r.u16()? != FORMAT_VERSION
            || crc32c::crc32c(&b[..CHECKPOINT_BYTES - 4]).to_be_bytes() != b[CHECKPOINT_BYTES - 4..]
        {
            return None;
        }
        Some(Self {
            first_dirty: r.i64()?,
            next_delete_horizon_ms: r.i64()?,
        })
    }

    /// `None` when absent; a damaged file is ignored (the next pass starts over from
    /// the log start, which is safe, only slower).
    fn load(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(CLEANER_CHECKPOINT_FILE);
        match std::fs::read(&path) {
            Ok(b) => {
                let c = Self::decode(&b);
                if c.is_none() {
                    tracing::warn!(path = %path.display(), "ignoring damaged cleaner checkpoint");
                }
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&path),
        }
    }

    fn store(&self, dir: &Path) -> Result<(), StorageError> {
        atomic_write(dir, CLEANER_CHECKPOINT_FILE, &self.encode())
    }
}

/// One cleaned segment and the segments it replaces (the first has its base).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SwapGroup {
    base: i64,
    replaced: Vec<i64>,
}

fn encode_manifest(groups: &[SwapGroup]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(SWAP_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&(groups.len() as u32).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.base.to_be_bytes());
        out.extend_from_slice(&(g.replaced.len() as u32).to_be_bytes());
        for b in &g.replaced {
            out.extend_from_slice(&b.to_be_bytes());
        }
    }
    out.extend_from_slice(&crc32c::crc32c(&out).to_be_bytes());
    out
}

fn decode_manifest(b: &[u8]) -> Option<Vec<SwapGroup>> {
    let body_len = b.len().checked_sub(4)?;
    if crc32c::crc32c(&b[..body_len]).to_be_bytes() != b[body_len..] {
        return None;
    }
    let mut r = Reader::new(&b[..body_len]);
    if r.take(4)? != SWAP_MAGIC || r.u16()? != FORMAT_VERSION {
        return None;
    }
    let n = r.u32()? as usize;
    let mut groups = Vec::with_capacity(n.min(body_len / 12));
    for _ in 0..n {
        let base = r.i64()?;
        let k = r.u32()? as usize;
        let mut replaced = Vec::with_capacity(k.min(body_len / 8));
        for _ in 0..k {
            replaced.push(r.i64()?);
        }
        if replaced.first() != Some(&base) {
            return None;
        }
        groups.push(SwapGroup { base, replaced });
    }
    r.done().then_some(groups)
}

/// Completes a swap interrupted by a crash; run by `Log::open` before anything else
/// looks at the segment files. A manifest that cannot be read is refused rather than
/// guessed at: the old segments may already be partly gone.
pub(crate) fn recover(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(CLEANER_SWAP_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(&path),
    };
    let groups = decode_manifest(&bytes).ok_or_else(|| {
        StorageError::CorruptLog(format!(
            "{} is damaged: cannot tell which segments an interrupted compaction replaced",
            path.display()
        ))
    })?;
    tracing::warn!(dir = %dir.display(), groups = groups.len(), "completing an interrupted compaction swap");
    finish_swap(dir, &groups, None)
}

/// The on-disk swap, idempotent so recovery can repeat it from any point. `stop` is a
/// test crash point ([`CrashPoint::MidSwap`] or [`CrashPoint::Swapped`]).
fn finish_swap(
    dir: &Path,
    groups: &[SwapGroup],
    stop: Option<CrashPoint>,
) -> Result<(), StorageError> {
    for g in groups {
        let cleaned = offset_file(dir, g.base, CLEANED_SUFFIX);
        let pending = cleaned.try_exists().at(&cleaned)?;
        for &b in &g.replaced {
            if b != g.base {
                remove_if_exists(&offset_file(dir, b, LOG_SUFFIX))?;
            }
            if b != g.base || pending {
                remove_if_exists(&offset_file(dir, b, INDEX_SUFFIX))?;
                remove_if_exists(&offset_file(dir, b, TIME_INDEX_SUFFIX))?;
            }
        }
        if stop == Some(CrashPoint::MidSwap) {
            return fsync_dir(dir);
        }
        if pending {
            let target = offset_file(dir, g.base, LOG_SUFFIX);
            std::fs::rename(&cleaned, &target).at(&target)?;
        }
    }
    fsync_dir(dir)?;
    if stop.is_some() {
        return Ok(());
    }
    remove_if_exists(&dir.join(CLEANER_SWAP_FILE))?;
    fsync_dir(dir)
}

/// After truncation to `new_end`, data at or above it is new and so dirty (Kafka moves
/// the cleaner checkpoint down the same way).
pub(crate) fn on_truncation(dir: &Path, new_end: i64) -> Result<(), StorageError> {
    match CleanerCheckpoint::load(dir)? {
        Some(mut c) if c.first_dirty > new_end => {
            c.first_dirty = new_end;
            c.store(dir)
        }
        _ => Ok(()),
    }
}

/// Key → latest offset over the dirty section, with a memory budget.
struct OffsetMap {
    latest: HashMap<Vec<u8>, i64>,
    used_bytes: u64,
    limit_bytes: u64,
}

impl OffsetMap {
    fn new(limit_bytes: u64) -> Self {
        Self {
            latest: HashMap::new(),
            used_bytes: 0,
            limit_bytes,
        }
    }

    fn cost(key: &[u8]) -> u64 {
        key.len() as u64 + MAP_ENTRY_OVERHEAD_BYTES
    }

    fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    fn insert(&mut self, key: &[u8], offset: i64) {
        if let Some(o) = self.latest.get_mut(key) {
            *o = offset;
        } else {
            self.used_bytes += Self::cost(key);
            self.latest.insert(key.to_vec(), offset);
        }
    }
}

/// Running totals of a pass.
struct Pass<'m> {
    map: &'m OffsetMap,
    /// Records at or above it were not seen by the map and always stay.
    map_end: i64,
    now_ms: i64,
    next_delete_horizon_ms: i64,
    stats: CleanStats,
}

/// A batch's records, or why they cannot be read.
fn read_records<'a>(
    bytes: &'a [u8],
    h: &BatchHeader,
    body: &'a mut Option<std::borrow::Cow<'a, [u8]>>,
) -> Result<Vec<RawRecord<'a>>, String> {
    let b = body.insert(records::body(bytes, h)?);
    records::parse_records(b, h.records_count)
}

impl Log {
    /// The dirty section's start: the checkpoint, within the log (Kafka resets a
    /// checkpoint outside the log to the log start).
    fn first_dirty_offset(&self, cp: Option<&CleanerCheckpoint>) -> i64 {
        let start = self.log_start_offset;
        match cp {
            Some(c) if c.first_dirty <= self.log_end_offset() => c.first_dirty.max(start),
            _ => start,
        }
    }

    /// Caller's bound, tightened to the active segment, the recovery point and
    /// `min.compaction.lag.ms` (first segment whose newest record is younger).
    fn first_uncleanable_offset(&self, now_ms: i64, caller_bound: i64) -> i64 {
        let mut bound = caller_bound
            .min(self.active().base_offset)
            .min(self.recovery_point);
        let lag = self.config.min_compaction_lag_ms;
        if lag > 0 {
            if let Some(seg) = self
                .segments
                .values()
                .take_while(|s| !s.active && s.base_offset < bound)
                .find(|s| now_ms.saturating_sub(s.largest_timestamp()) < lag)
            {
                bound = seg.base_offset;
            }
        }
        bound
    }

    /// Whether a compaction pass is due (Kafka's `LogCleanerManager` rules): `None`
    /// when the policy does not compact or nothing calls for it. `first_uncleanable`
    /// is the caller's bound, normally the high watermark.
    pub fn cleanable(
        &self,
        now_ms: i64,
        first_uncleanable: i64,
    ) -> Result<Option<Cleanable>, StorageError> {
        if !self.config.cleanup_policy.compacts() {
            return Ok(None);
        }
        let cp = CleanerCheckpoint::load(&self.dir)?;
        let first_dirty = self.first_dirty_offset(cp.as_ref());
        let bound = self.first_uncleanable_offset(now_ms, first_uncleanable);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut oldest_dirty_ms = None;
        for seg in self
            .segments
            .values()
            .take_while(|s| !s.active && s.base_offset < bound)
        {
            if seg.next_offset <= first_dirty || first_dirty >= bound {
                clean_bytes += seg.size;
            } else {
                dirty_bytes += seg.size;
                oldest_dirty_ms.get_or_insert(seg.rolling_base_ms());
            }
        }
        let total = clean_bytes + dirty_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        let lagging = oldest_dirty_ms
            .is_some_and(|t: i64| now_ms.saturating_sub(t) > self.config.max_compaction_lag_ms);
        let horizon_passed = cp.is_some_and(|c| c.next_delete_horizon_ms <= now_ms);
        let reason = if dirty_bytes > 0 && dirty_ratio > self.config.min_cleanable_dirty_ratio {
            CleanReason::DirtyRatio
        } else if dirty_bytes > 0 && lagging {
            CleanReason::MaxCompactionLag
        } else if horizon_passed && clean_bytes > 0 {
            CleanReason::DeleteHorizon
        } else {
            return Ok(None);
        };
        Ok(Some(Cleanable {
            reason,
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: bound,
            clean_bytes,
            dirty_bytes,
            dirty_ratio,
        }))
    }

    /// One compaction pass (see the module docs), whatever [`Log::cleanable`] says; a
    /// no-op when the policy does not compact. `first_uncleanable` is the caller's
    /// bound, normally the high watermark. Never touches the active segment.
    ///
    /// An error before the commit point leaves the log as it was. An I/O error after it
    /// (rare: renames and unlinks) leaves the swap for the next `Log::open` to finish;
    /// the broker should reopen the partition, as after a failed sync.
    pub fn clean(
        &mut self,
        now_ms: i64,
        first_uncleanable: i64,
    ) -> Result<CleanStats, StorageError> {
        self.clean_inner(now_ms, first_uncleanable, None)
    }

    /// [`Log::clean`] stopped at `at`, leaving the files a crash there would: for
    /// crash-recovery tests. Drop the log afterwards and reopen it.
    #[doc(hidden)]
    pub fn clean_until_crash(
        &mut self,
        now_ms: i64,
        first_uncleanable: i64,
        at: CrashPoint,
    ) -> Result<CleanStats, StorageError> {
        self.clean_inner(now_ms, first_uncleanable, Some(at))
    }

    fn clean_inner(
        &mut self,
        now_ms: i64,
        first_uncleanable: i64,
        crash: Option<CrashPoint>,
    ) -> Result<CleanStats, StorageError> {
        if !self.config.cleanup_policy.compacts() {
            return Ok(CleanStats::default());
        }
        let cp = CleanerCheckpoint::load(&self.dir)?;
        let first_dirty = self.first_dirty_offset(cp.as_ref());
        let bound = self.first_uncleanable_offset(now_ms, first_uncleanable);
        let (map, map_end) = self.build_offset_map(first_dirty, bound)?;
        let bases: Vec<i64> = self
            .segments
            .values()
            .take_while(|s| !s.active && s.base_offset < map_end)
            .map(|s| s.base_offset)
            .collect();
        let mut pass = Pass {
            map: &map,
            map_end,
            now_ms,
            next_delete_horizon_ms: i64::MAX,
            stats: CleanStats {
                first_dirty_offset: first_dirty,
                cleaned_up_to: map_end,
                keys: map.latest.len() as u64,
                ..CleanStats::default()
            },
        };
        let mut swaps = Vec::new();
        for group in self.group_segments(&bases) {
            match self.write_cleaned(&group, &mut pass) {
                Ok(true) => swaps.push(SwapGroup {
                    base: group[0],
                    replaced: group,
                }),
                Ok(false) => {}
                Err(e) => {
                    for g in swaps.iter().map(|g| g.base).chain([group[0]]) {
                        let _ = remove_if_exists(&offset_file(&self.dir, g, CLEANED_SUFFIX));
                    }
                    return Err(e);
                }
            }
        }
        let mut stats = pass.stats;
        let next_delete_horizon_ms = pass.next_delete_horizon_ms;
        drop(map);
        if !swaps.is_empty() {
            fsync_dir(&self.dir)?;
            if crash == Some(CrashPoint::CleanedWritten) {
                return Ok(stats);
            }
            if let Err(e) = atomic_write(&self.dir, CLEANER_SWAP_FILE, &encode_manifest(&swaps)) {
                // Roll back if the manifest can be removed; if not, reopening finishes
                // the swap, which is equally valid.
                if remove_if_exists(&self.dir.join(CLEANER_SWAP_FILE)).is_ok()
                    && fsync_dir(&self.dir).is_ok()
                {
                    for g in &swaps {
                        let _ = remove_if_exists(&offset_file(&self.dir, g.base, CLEANED_SUFFIX));
                    }
                }
                return Err(e);
            }
            if crash == Some(CrashPoint::Committed) {
                return Ok(stats);
            }
            finish_swap(&self.dir, &swaps, crash)?;
            if crash.is_some() {
                return Ok(stats);
            }
            self.reload_swapped(&swaps, now_ms)?;
            stats.segments_written = swaps.len();
        }
        CleanerCheckpoint {
            first_dirty: map_end,
            next_delete_horizon_ms,
        }
        .store(&self.dir)?;
        tracing::debug!(dir = %self.dir.display(), ?stats, "compaction pass done");
        Ok(stats)
    }

    /// Replaces the in-memory segments of swapped groups with the new files. Readers'
    /// slices keep the old maps (of unlinked files) alive.
    fn reload_swapped(&mut self, swaps: &[SwapGroup], now_ms: i64) -> Result<(), StorageError> {
        for g in swaps {
            for b in &g.replaced {
                self.segments.remove(b);
            }
        }
        let config = self.config.clone();
        for g in swaps {
            let next_base = self.segments.range(g.base + 1..).next().map(|(b, _)| *b);
            let mut seg = Segment::open(&self.dir, g.base, now_ms)?;
            seg.load_trusted(next_base, &config)?;
            seg.sync_sealed()?;
            self.segments.insert(g.base, seg);
        }
        fsync_dir(&self.dir)
    }

    /// Builds the offset map from `first_dirty` up to `bound`, batch by batch. Returns it
    /// and the offset it covers up to (a batch boundary, at least `first_dirty`).
    fn build_offset_map(
        &self,
        first_dirty: i64,
        bound: i64,
    ) -> Result<(OffsetMap, i64), StorageError> {
        let mut map = OffsetMap::new(self.config.cleaner_dedupe_buffer_bytes);
        let mut map_end = first_dirty;
        if bound <= first_dirty {
            return Ok((map, map_end));
        }
        'segments: for seg in self
            .segments
            .values()
            .take_while(|s| !s.active && s.base_offset < bound)
        {
            if seg.next_offset <= first_dirty {
                continue;
            }
            let Some(view) = seg.view()? else { continue };
            let start = seg.offset_index.lookup(first_dirty);
            for b in seg.headers_from(&view, start) {
                let h = b.header;
                if h.last_offset() < first_dirty {
                    continue;
                }
                if h.last_offset() >= bound {
                    break 'segments;
                }
                if !h.is_control() {
                    let mut body = None;
                    match read_records(&view.bytes()[b.range()], &h, &mut body) {
                        Ok(recs) => {
                            let keyed = recs.iter().filter_map(|r| {
                                let offset =
                                    h.base_offset.saturating_add(i64::from(r.offset_delta));
                                r.key.filter(|_| offset >= first_dirty).map(|k| (k, offset))
                            });
                            let new_bytes: u64 = keyed
                                .clone()
                                .filter(|(k, _)| map.get(k).is_none())
                                .map(|(k, _)| OffsetMap::cost(k))
                                .sum();
                            if !map.latest.is_empty()
                                && map.used_bytes + new_bytes > map.limit_bytes
                            {
                                break 'segments;
                            }
                            for (k, offset) in keyed {
                                map.insert(k, offset);
                            }
                        }
                        Err(e) => tracing::warn!(
                            dir = %self.dir.display(),
                            offset = h.base_offset,
                            error = %e,
                            "unreadable batch: its keys do not take part in compaction"
                        ),
                    }
                }
                map_end = h.next_offset();
            }
        }
        Ok((map, map_end))
    }

    /// Consecutive segments whose data fits one segment (`segment.bytes`) and whose
    /// offsets fit 32-bit relative offsets: each group becomes one cleaned segment, so
    /// compaction does not leave a trail of tiny segments.
    fn group_segments(&self, bases: &[i64]) -> Vec<Vec<i64>> {
        let mut groups = Vec::new();
        let mut current: Vec<i64> = Vec::new();
        let mut size = 0u64;
        for &b in bases {
            let Some(seg) = self.segments.get(&b) else {
                continue;
            };
            if let Some(&first) = current.first() {
                let fits = size + seg.size <= self.config.segment_bytes
                    && seg.next_offset.saturating_sub(1) - first <= i64::from(i32::MAX);
                if !fits {
                    groups.push(std::mem::take(&mut current));
                    size = 0;
                }
            }
            current.push(b);
            size += seg.size;
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }

    /// Writes the cleaned copy of `group` to `<base>.log.cleaned` and syncs it. Returns
    /// false (and removes the file) when the result would equal the one input segment.
    fn write_cleaned(&self, group: &[i64], pass: &mut Pass<'_>) -> Result<bool, StorageError> {
        let path = offset_file(&self.dir, group[0], CLEANED_SUFFIX);
        remove_if_exists(&path)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        let mut w = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let mut changed = group.len() > 1;
        let mut written = 0u64;
        let mut out = Vec::new();
        for b in group {
            let Some(seg) = self.segments.get(b) else {
                continue;
            };
            pass.stats.segments_read += 1;
            pass.stats.bytes_read += seg.size;
            let Some(view) = seg.view()? else { continue };
            for info in seg.headers_from(&view, 0) {
                out.clear();
                changed |=
                    self.clean_batch(&view.bytes()[info.range()], &info.header, pass, &mut out)?;
                w.write_all(&out).at(&path)?;
                written += out.len() as u64;
            }
        }
        if written > i32::MAX as u64 {
            return Err(StorageError::CorruptLog(format!(
                "cleaned segment {} would be {written} bytes, over the 2 GiB a segment can index",
                path.display()
            )));
        }
        let file: File = w.into_inner().map_err(|e| e.into_error()).at(&path)?;
        if !changed {
            drop(file);
            remove_if_exists(&path)?;
            return Ok(false);
        }
        file.sync_all().at(&path)?;
        pass.stats.bytes_written += written;
        Ok(true)
    }

    /// Appends the cleaned form of one batch to `out`; true when it differs from the
    /// original. Batches at or past the map's end, control batches and unreadable
    /// batches are copied unchanged.
    fn clean_batch(
        &self,
        bytes: &[u8],
        h: &BatchHeader,
        pass: &mut Pass<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, StorageError> {
        if h.is_control() || h.base_offset >= pass.map_end {
            out.extend_from_slice(bytes);
            return Ok(false);
        }
        let mut body = None;
        let recs = match read_records(bytes, h, &mut body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), offset = h.base_offset, error = %e, "unreadable batch kept unchanged");
                pass.stats.unreadable_batches += 1;
                out.extend_from_slice(bytes);
                return Ok(false);
            }
        };
        let horizon = (h.attributes & DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp);
        let mut kept: Vec<&RawRecord<'_>> = Vec::with_capacity(recs.len());
        let mut kept_tombstone = false;
        for r in &recs {
            let offset = h.base_offset.saturating_add(i64::from(r.offset_delta));
            let keep = if offset >= pass.map_end {
                true
            } else if let Some(key) = r.key {
                let latest = pass.map.get(key).is_none_or(|l| offset >= l);
                latest && (!r.is_tombstone || horizon.is_none_or(|t| pass.now_ms < t))
            } else {
                false
            };
            pass.stats.records_read += 1;
            if keep {
                kept_tombstone |= r.is_tombstone;
                kept.push(r);
            } else {
                pass.stats.records_removed += 1;
                pass.stats.tombstones_removed += u64::from(r.is_tombstone);
            }
        }
        if kept.is_empty() {
            let producers_last = h.has_producer_id()
                && self
                    .producers
                    .get(h.producer_id)
                    .is_some_and(|e| e.last_offset() == h.last_offset());
            if !producers_last {
                return Ok(true);
            }
            if recs.is_empty() {
                out.extend_from_slice(bytes);
                return Ok(false);
            }
            pass.stats.empty_batches_kept += 1;
        }
        let need_horizon = kept_tombstone && horizon.is_none();
        if kept_tombstone {
            let t = horizon
                .unwrap_or_else(|| pass.now_ms.saturating_add(self.config.delete_retention_ms));
            pass.next_delete_horizon_ms = pass.next_delete_horizon_ms.min(t);
        }
        if kept.len() == recs.len() && !need_horizon {
            out.extend_from_slice(bytes);
            return Ok(false);
        }
        let base_timestamp = match horizon {
            Some(t) => t,
            None if need_horizon => pass.now_ms.saturating_add(self.config.delete_retention_ms),
            None => h.base_timestamp,
        };
        records::rebuild_batch(
            h,
            &kept,
            base_timestamp,
            horizon.is_some() || need_horizon,
            out,
        )
        .map_err(|e| {
            StorageError::CorruptLog(format!(
                "cannot rewrite batch at offset {}: {e}",
                h.base_offset
            ))
        })?;
        Ok(true)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_damage() {
        let groups = vec![
            SwapGroup {
                base: 0,
                replaced: vec![0, 10, 25],
            },
            SwapGroup {
                base: 40,
                replaced: vec![40],
            },
        ];
        let b = encode_manifest(&groups);
        assert_eq!(decode_manifest(&b), Some(groups));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert_eq!(decode_manifest(&bad), None, "flip at {i}");
            assert_eq!(decode_manifest(&b[..i]), None);
        }
    }

    #[test]
    fn checkpoint_round_trip_and_damage() {
        let c = CleanerCheckpoint {
            first_dirty: 1234,
            next_delete_horizon_ms: i64::MAX,
        };
        let b = c.encode();
        assert_eq!(CleanerCheckpoint::decode(&b), Some(c));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert_eq!(CleanerCheckpoint::decode(&bad), None);
        }
    }

    #[test]
    fn damaged_manifest_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CLEANER_SWAP_FILE), b"garbage").unwrap();
        assert!(matches!(
            recover(dir.path()),
            Err(StorageError::CorruptLog(_))
        ));
    }
}
