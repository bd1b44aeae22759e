//! One segment: a `.log` file of whole batches plus its two sparse indexes.
//!
//! The active segment's `.log` is preallocated (sparse `set_len`) to `segment.bytes` and
//! mapped once, so reads can hand out zero-copy slices while appends continue past the
//! logical end (`size`). Sealing trims the file to `size`; that never cuts a region a
//! reader holds, because nothing past `size` is ever handed out.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use isthmus_protocol::batch::{BatchHeader, BatchInfo, ValidPrefix};

use crate::config::LogConfig;
use crate::error::{IoContext, StorageError};
use crate::fsutil::{offset_file, remove_if_exists, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::index::{OffsetIndex, TimeIndex};
use crate::mmap::ReadMap;

/// Why a full scan of a segment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// End of file, zero-length (preallocated) space, or a batch that belongs to the next
    /// segment (stale bytes left by a truncation).
    Clean,
    /// A torn or corrupt batch, or offsets that go backwards.
    Damaged,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    log_path: PathBuf,
    file: Arc<File>,
    /// Read map covering at least `[0, size)`; set eagerly while active, lazily otherwise.
    map: OnceLock<Arc<ReadMap>>,
    /// Physical length of the `.log` file.
    file_len: u64,
    /// Logical end: bytes of whole batches.
    pub(crate) size: u64,
    /// One past the last offset held (the base offset when empty).
    pub(crate) next_offset: i64,
    /// Largest batch `maxTimestamp` (-1 when none) and the last offset of its batch.
    pub(crate) max_timestamp: i64,
    pub(crate) max_timestamp_offset: i64,
    /// `maxTimestamp` of the first batch: what `segment.ms` is measured from (as Kafka).
    rolling_base_ms: Option<i64>,
    created_ms: i64,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    bytes_since_index_entry: u64,
    pub(crate) active: bool,
    /// Sealed (trimmed) but the trim and index pages are not yet known durable.
    pub(crate) needs_seal_sync: bool,
    /// An index file was missing on open, so both must be rebuilt.
    indexes_missing: bool,
}

fn paths(dir: &Path, base: i64) -> [PathBuf; 3] {
    [
        offset_file(dir, base, LOG_SUFFIX),
        offset_file(dir, base, INDEX_SUFFIX),
        offset_file(dir, base, TIME_INDEX_SUFFIX),
    ]
}

impl Segment {
    /// Creates an empty active segment; fails if its `.log` already exists.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, StorageError> {
        let [log_path, index_path, time_path] = paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&log_path)
            .at(&log_path)?;
        // Stale indexes of an earlier segment with this base must not be picked up.
        remove_if_exists(&index_path)?;
        remove_if_exists(&time_path)?;
        let prealloc = Some(config.segment_index_bytes as usize);
        let mut seg = Self {
            base_offset,
            log_path,
            file: Arc::new(file),
            map: OnceLock::new(),
            file_len: 0,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            max_timestamp_offset: base_offset,
            rolling_base_ms: None,
            created_ms: now_ms,
            offset_index: OffsetIndex::open(&index_path, base_offset, prealloc)?,
            time_index: TimeIndex::open(&time_path, base_offset, prealloc)?,
            bytes_since_index_entry: 0,
            active: false,
            needs_seal_sync: false,
            indexes_missing: false,
        };
        seg.activate(config)?;
        Ok(seg)
    }

    /// Opens an existing segment's files. Its extent is unknown until [`Self::load_trusted`]
    /// or [`Self::rebuild`] runs.
    pub(crate) fn open(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, StorageError> {
        let [log_path, index_path, time_path] = paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .at(&log_path)?;
        let file_len = file.metadata().at(&log_path)?.len();
        let indexes_missing = !index_path.exists() || !time_path.exists();
        Ok(Self {
            base_offset,
            log_path,
            file: Arc::new(file),
            map: OnceLock::new(),
            file_len,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            max_timestamp_offset: base_offset,
            rolling_base_ms: None,
            created_ms: now_ms,
            offset_index: OffsetIndex::open(&index_path, base_offset, None)?,
            time_index: TimeIndex::open(&time_path, base_offset, None)?,
            bytes_since_index_entry: 0,
            active: false,
            needs_seal_sync: false,
            indexes_missing,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Time `segment.ms` is measured from.
    pub(crate) fn rolling_base_ms(&self) -> i64 {
        self.rolling_base_ms
            .filter(|t| *t > 0)
            .unwrap_or(self.created_ms)
    }

    /// Whether a reader may hold slices of the current map (so its bytes must not change).
    pub(crate) fn map_is_shared(&self) -> bool {
        self.map.get().is_some_and(|m| Arc::strong_count(m) > 1)
    }

    /// A map covering at least `len` bytes of the file (`len > 0`), kept for later reads.
    fn map_at_least(&mut self, len: u64) -> Result<Arc<ReadMap>, StorageError> {
        if let Some(m) = self.map.get() {
            if m.len() as u64 >= len {
                return Ok(m.clone());
            }
        }
        let len = usize::try_from(len)
            .map_err(|_| StorageError::CorruptLog("segment too large to map".into()))?;
        let m = Arc::new(ReadMap::new(&self.file, len).at(&self.log_path)?);
        self.map = OnceLock::from(m.clone());
        Ok(m)
    }

    /// The map for reads, covering `[0, size)`; `None` for an empty segment.
    pub(crate) fn view(&self) -> Result<Option<Arc<ReadMap>>, StorageError> {
        if self.size == 0 {
            return Ok(None);
        }
        if let Some(m) = self.map.get() {
            return Ok(Some(m.clone()));
        }
        let len = usize::try_from(self.size)
            .map_err(|_| StorageError::CorruptLog("segment too large to map".into()))?;
        let m = Arc::new(ReadMap::new(&self.file, len).at(&self.log_path)?);
        // Another reader may have won the race; either map is fine.
        let _ = self.map.set(m.clone());
        Ok(Some(self.map.get().cloned().unwrap_or(m)))
    }

    /// Headers of the batches from `position` (a batch start) to the logical end.
    pub(crate) fn headers_from<'a>(
        &self,
        map: &'a ReadMap,
        position: u64,
    ) -> impl Iterator<Item = BatchInfo> + 'a {
        let end = (self.size as usize).min(map.len());
        let start = (position as usize).min(end);
        ValidPrefix::new(&map.bytes()[start..end], false).map(move |mut b| {
            b.position += start;
            b
        })
    }

    /// Updates extent, statistics and indexes for a batch now at `position`.
    fn track_batch(&mut self, h: &BatchHeader, position: u64, index_interval_bytes: u32) {
        if self.rolling_base_ms.is_none() {
            self.rolling_base_ms = Some(h.max_timestamp);
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.max_timestamp_offset = h.last_offset();
        }
        if self.bytes_since_index_entry > u64::from(index_interval_bytes) {
            self.offset_index.append(h.last_offset(), position);
            self.time_index
                .maybe_append(self.max_timestamp, self.max_timestamp_offset);
            self.bytes_since_index_entry = 0;
        }
        let size = h.size() as u64;
        self.bytes_since_index_entry += size;
        self.size = position + size;
        self.next_offset = h.next_offset();
    }

    /// Writes whole, validated batches at the logical end and indexes them. `batches`
    /// positions are relative to `buf`. On error nothing becomes visible.
    pub(crate) fn append(
        &mut self,
        buf: &[u8],
        batches: &[BatchInfo],
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        let position = self.reserve(buf.len() as u64, config)?;
        self.file.write_all_at(buf, position).at(&self.log_path)?;
        self.track_all(batches, position, config);
        Ok(())
    }

    /// Like [`Segment::append`], with each batch's first 61 bytes taken from `headers`
    /// (rewritten copies) and the rest from `buf` as it arrived: the leader path, which
    /// never copies batch bodies.
    pub(crate) fn append_patched(
        &mut self,
        buf: &[u8],
        batches: &[BatchInfo],
        headers: &[[u8; isthmus_protocol::batch::HEADER_SIZE]],
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        let position = self.reserve(buf.len() as u64, config)?;
        for (b, head) in batches.iter().zip(headers) {
            let at = position + b.position as u64;
            let range = b.position..b.position + b.header.size();
            self.file.write_all_at(head, at).at(&self.log_path)?;
            self.file
                .write_all_at(
                    &buf[range.start + head.len()..range.end],
                    at + head.len() as u64,
                )
                .at(&self.log_path)?;
        }
        self.track_all(batches, position, config);
        Ok(())
    }

    /// Makes room for `len` bytes at the end of the data and returns where they go.
    fn reserve(&mut self, len: u64, config: &LogConfig) -> Result<u64, StorageError> {
        let position = self.size;
        let end = position + len;
        if end > self.file_len {
            // Larger than the preallocation (a batch bigger than what is left). The old
            // map stays valid for the readers holding it.
            let len = end.max(config.segment_bytes);
            self.file.set_len(len).at(&self.log_path)?;
            self.file_len = len;
        }
        if self.map.get().is_none_or(|m| (m.len() as u64) < end) {
            self.map_at_least(self.file_len)?;
        }
        Ok(position)
    }

    fn track_all(&mut self, batches: &[BatchInfo], position: u64, config: &LogConfig) {
        for b in batches {
            self.track_batch(
                &b.header,
                position + b.position as u64,
                config.index_interval_bytes,
            );
        }
    }

    fn reset_extent(&mut self) {
        self.offset_index.truncate_to(self.base_offset);
        self.time_index.truncate_to(self.base_offset);
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.max_timestamp_offset = self.base_offset;
        self.rolling_base_ms = None;
        self.bytes_since_index_entry = 0;
    }

    /// Rescans the file from the start and rebuilds extent, statistics and indexes. Stops
    /// at the first batch that is torn or corrupt (CRC checked when `verify_crc`), whose
    /// offsets go backwards, reach `next_base` (the next segment's base) or reach
    /// `cut_offset` (truncation). Scans at most `scan_len` bytes.
    pub(crate) fn rebuild(
        &mut self,
        verify_crc: bool,
        next_base: Option<i64>,
        cut_offset: Option<i64>,
        scan_len: u64,
        config: &LogConfig,
    ) -> Result<ScanEnd, StorageError> {
        let index_bytes = config.segment_index_bytes as usize;
        self.offset_index.preallocate(index_bytes)?;
        self.time_index.preallocate(index_bytes)?;
        self.reset_extent();
        let scan_len = scan_len.min(self.file_len);
        let mut end = ScanEnd::Clean;
        if scan_len > 0 {
            let map = self.map_at_least(scan_len)?;
            let mut scan = ValidPrefix::new(&map.bytes()[..scan_len as usize], verify_crc);
            let mut expected = self.base_offset;
            for b in scan.by_ref() {
                let h = &b.header;
                if h.base_offset < expected
                    || h.last_offset() - self.base_offset > i64::from(i32::MAX)
                {
                    end = ScanEnd::Damaged;
                    break;
                }
                if next_base.is_some_and(|n| h.last_offset() >= n)
                    || cut_offset.is_some_and(|c| h.last_offset() >= c)
                {
                    break;
                }
                self.track_batch(h, b.position as u64, config.index_interval_bytes);
                expected = h.next_offset();
            }
            if scan.stop_reason().is_some()
                && end == ScanEnd::Clean
                && scan.valid_len() as u64 == self.size
            {
                end = ScanEnd::Damaged;
            }
        }
        self.indexes_missing = false;
        if !self.active {
            self.offset_index.trim()?;
            self.time_index.trim()?;
        }
        Ok(end)
    }

    /// Loads a segment below the recovery point, whose bytes were made durable before:
    /// checks the indexes cheaply and finds the logical end by reading headers from the
    /// last offset-index entry. Anything inconsistent triggers a header-only rebuild.
    pub(crate) fn load_trusted(
        &mut self,
        next_base: Option<i64>,
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        if !self.indexes_missing {
            if let Some(start) = self.sane_index_start(next_base)? {
                if self.load_tail(start, next_base)? {
                    return Ok(());
                }
            }
        }
        tracing::warn!(segment = %self.log_path.display(), "rebuilding indexes");
        let end = self.rebuild(false, next_base, None, self.file_len, config)?;
        if end == ScanEnd::Damaged {
            tracing::warn!(segment = %self.log_path.display(), size = self.size, "segment below the recovery point ends in damaged data");
        }
        Ok(())
    }

    /// Position of the last offset-index entry if the indexes look consistent.
    fn sane_index_start(&mut self, next_base: Option<i64>) -> Result<Option<u64>, StorageError> {
        // No offset-index entry yet (the first batches of a segment never get one): scan
        // from the start; load_tail checks the time index against what it finds.
        let Some((last_offset, position)) = self.offset_index.last() else {
            return Ok(Some(0));
        };
        if self.time_index.len() == 0
            || next_base.is_some_and(|n| {
                last_offset >= n || self.time_index.last().is_some_and(|(_, o)| o >= n)
            })
            || position + isthmus_protocol::batch::HEADER_SIZE as u64 > self.file_len
        {
            return Ok(None);
        }
        let map = self.map_at_least(self.file_len)?;
        let ok = ValidPrefix::new(&map.bytes()[position as usize..], false)
            .next()
            .is_some_and(|b| b.header.last_offset() == last_offset);
        Ok(ok.then_some(position))
    }

    /// Reads headers from `start` to the end of data; false if the result contradicts the
    /// indexes.
    fn load_tail(&mut self, start: u64, next_base: Option<i64>) -> Result<bool, StorageError> {
        let index_last = self.offset_index.last();
        if let Some((ts, offset)) = self.time_index.last() {
            self.max_timestamp = ts;
            self.max_timestamp_offset = offset;
        }
        self.size = start;
        self.next_offset = self.base_offset;
        if self.file_len > 0 {
            let map = self.map_at_least(self.file_len)?;
            let saved_interval = u32::MAX;
            let mut expected = index_last.map_or(self.base_offset, |(o, _)| o);
            let mut first = true;
            for b in ValidPrefix::new(&map.bytes()[start as usize..], false) {
                let h = b.header;
                let bad_start = first && index_last.is_some_and(|(o, _)| h.last_offset() != o);
                if bad_start
                    || h.base_offset < self.base_offset
                    || (!first && h.base_offset < expected)
                    || h.last_offset() - self.base_offset > i64::from(i32::MAX)
                {
                    if bad_start {
                        return Ok(false);
                    }
                    break;
                }
                if next_base.is_some_and(|n| h.last_offset() >= n) {
                    break;
                }
                // No index entries while loading: the tail is short and entries exist.
                self.track_batch(&h, start + b.position as u64, saved_interval);
                expected = h.next_offset();
                first = false;
            }
            if self.size > 0 {
                let first_header =
                    ValidPrefix::new(&map.bytes()[..self.size as usize], false).next();
                self.rolling_base_ms = first_header.map(|b| b.header.max_timestamp);
            }
        }
        self.bytes_since_index_entry = self.size - index_last.map_or(0, |(_, p)| p);
        if self
            .time_index
            .last()
            .is_some_and(|(_, o)| o >= self.next_offset)
        {
            return Ok(false);
        }
        Ok(true)
    }

    /// Drops batches from the first one whose last offset reaches `offset`; used by
    /// truncation. Bytes past the new end stay in the file (readers may hold them).
    pub(crate) fn cut_at(&mut self, offset: i64, config: &LogConfig) -> Result<(), StorageError> {
        let size = self.size;
        self.rebuild(false, None, Some(offset), size, config)?;
        Ok(())
    }

    /// Stops appends: records the final time-index entry and trims the indexes and, when
    /// `trim_log`, the `.log` file to the logical end.
    pub(crate) fn seal(&mut self, trim_log: bool) -> Result<(), StorageError> {
        self.time_index
            .maybe_append(self.max_timestamp, self.max_timestamp_offset);
        if trim_log && self.file_len > self.size {
            self.file.set_len(self.size).at(&self.log_path)?;
            self.file_len = self.size;
        }
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.active = false;
        self.needs_seal_sync = true;
        Ok(())
    }

    /// Makes the segment the append target: preallocates the `.log` and the indexes and
    /// maps the whole `.log` once.
    pub(crate) fn activate(&mut self, config: &LogConfig) -> Result<(), StorageError> {
        let len = self.file_len.max(config.segment_bytes).max(self.size);
        if len > self.file_len {
            self.file.set_len(len).at(&self.log_path)?;
            self.file_len = len;
        }
        self.map_at_least(len)?;
        let index_bytes = config.segment_index_bytes as usize;
        self.offset_index.preallocate(index_bytes)?;
        self.time_index.preallocate(index_bytes)?;
        self.active = true;
        Ok(())
    }

    /// Cuts the `.log` to its data (a lost trim, a damaged tail) when no reader can hold
    /// its bytes: at open, before any reader exists.
    pub(crate) fn trim_unshared(&mut self) -> Result<(), StorageError> {
        if self.file_len > self.size && !self.map_is_shared() {
            self.map = OnceLock::new();
            self.file.set_len(self.size).at(&self.log_path)?;
            self.file_len = self.size;
            self.needs_seal_sync = true;
        }
        Ok(())
    }

    /// Makes the sealed state durable: `.log` (its trimmed length) and both indexes.
    pub(crate) fn sync_sealed(&mut self) -> Result<(), StorageError> {
        self.file.sync_data().at(&self.log_path)?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        self.needs_seal_sync = false;
        Ok(())
    }

    /// File handles a flush of this segment covers (the log only: indexes of segments at
    /// or after the recovery point are rebuilt by recovery, sealed ones synced by
    /// [`Self::sync_sealed`]).
    pub(crate) fn flush_files(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Deletes the files. Live maps keep the data readable until dropped.
    pub(crate) fn delete_files(&self, dir: &Path) -> Result<(), StorageError> {
        for p in paths(dir, self.base_offset) {
            remove_if_exists(&p)?;
        }
        Ok(())
    }

    /// Newest timestamp for time retention: the largest batch timestamp, else the file's
    /// modification time (as Kafka does for data without timestamps).
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp > 0 {
            return self.max_timestamp;
        }
        std::fs::metadata(&self.log_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }
}
