//! Sparse, memory-mapped segment indexes, in Kafka's formats:
//!
//! - `.index`: 8-byte entries, relative offset (u32) then file position (u32), both
//!   big-endian. An entry names the last offset of the batch that starts at the position.
//! - `.timeindex`: 12-byte entries, timestamp (i64) then relative offset (u32): the
//!   largest timestamp so far and the (last) offset of the batch that first reached it.
//!
//! The active segment's indexes are preallocated to `segment.index.bytes` (zeros) and
//! trimmed to their entries when the segment is sealed. Entry counts are therefore found
//! by reading entries until one breaks the ordering (an all-zero entry does, as the first
//! offset entry never sits at position 0), which also copes with an index whose trim was
//! lost in a crash.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};
use crate::mmap::WriteMap;

const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

/// A fixed-size-entry file behind a writable map.
#[derive(Debug)]
struct IndexFile {
    path: PathBuf,
    file: File,
    map: Option<WriteMap>,
    file_len: usize,
    entry_bytes: usize,
    entries: usize,
}

impl IndexFile {
    /// Opens or creates the file; with `preallocate`, grows it to that many bytes.
    fn open(
        path: &Path,
        entry_bytes: usize,
        preallocate: Option<usize>,
    ) -> Result<Self, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(path)?;
        let file_len = usize::try_from(file.metadata().at(path)?.len())
            .map_err(|_| StorageError::CorruptLog(format!("{} is too large", path.display())))?;
        let mut index = Self {
            path: path.to_path_buf(),
            file,
            map: None,
            file_len: 0,
            entry_bytes,
            entries: 0,
        };
        let wanted = preallocate.map_or(file_len, |p| p.max(file_len));
        index.resize(wanted)?;
        Ok(index)
    }

    fn capacity(&self) -> usize {
        self.file_len / self.entry_bytes
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity()
    }

    fn entry(&self, i: usize) -> &[u8] {
        match &self.map {
            Some(m) => &m[i * self.entry_bytes..(i + 1) * self.entry_bytes],
            None => &[],
        }
    }

    /// Resizes the file to whole entries and remaps it (the map is dropped first).
    fn resize(&mut self, len: usize) -> Result<(), StorageError> {
        let len = len - len % self.entry_bytes;
        self.map = None;
        self.file.set_len(len as u64).at(&self.path)?;
        self.file_len = len;
        self.entries = self.entries.min(self.capacity());
        if len > 0 {
            self.map = Some(WriteMap::new(&self.file, len).at(&self.path)?);
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> bool {
        if self.is_full() {
            return false;
        }
        let at = self.entries * self.entry_bytes;
        match &mut self.map {
            Some(m) => m[at..at + self.entry_bytes].copy_from_slice(bytes),
            None => return false,
        }
        self.entries += 1;
        true
    }

    /// Keeps the first `n` entries and zeroes the rest, so a later scan stops at `n`.
    fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let (from, to) = (n * self.entry_bytes, self.entries * self.entry_bytes);
        if let Some(m) = &mut self.map {
            m[from..to].fill(0);
        }
        self.entries = n;
    }

    fn trim(&mut self) -> Result<(), StorageError> {
        self.resize(self.entries * self.entry_bytes)
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.file.sync_data().at(&self.path)
    }

    /// Runs `scan`, which reads the file front to back (counting entries on open), with
    /// the kernel's read-ahead, which appends and lookups go without.
    fn with_read_ahead<T>(&self, scan: impl FnOnce() -> T) -> Result<T, StorageError> {
        let Some(map) = &self.map else {
            return Ok(scan());
        };
        map.read_ahead(true).at(&self.path)?;
        let out = scan();
        map.read_ahead(false).at(&self.path)?;
        Ok(out)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Offset → file position.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

impl OffsetIndex {
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        preallocate: Option<usize>,
    ) -> Result<Self, StorageError> {
        let mut index = Self {
            base_offset,
            file: IndexFile::open(path, OFFSET_ENTRY_BYTES, preallocate)?,
        };
        index.file.entries = index.file.with_read_ahead(|| index.count_valid_entries())?;
        Ok(index)
    }

    fn count_valid_entries(&self) -> usize {
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.file.capacity() {
            let (rel, pos) = self.raw(i);
            let ok = pos > 0 && prev.is_none_or(|(r, p)| rel > r && pos > p);
            if !ok {
                return i;
            }
            prev = Some((rel, pos));
        }
        self.file.capacity()
    }

    fn raw(&self, i: usize) -> (u32, u32) {
        let e = self.file.entry(i);
        (u32_at(e, 0), u32_at(e, 4))
    }

    /// Entry `i` as (absolute offset, position).
    pub(crate) fn get(&self, i: usize) -> (i64, u64) {
        let (rel, pos) = self.raw(i);
        (self.base_offset + i64::from(rel), u64::from(pos))
    }

    pub(crate) fn len(&self) -> usize {
        self.file.entries
    }

    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// The position to start scanning from for `offset`: that of the last entry whose
    /// offset is at or below it, else the segment start.
    pub(crate) fn lookup(&self, offset: i64) -> u64 {
        let n = self.len();
        // First entry with offset > target; the one before it is the floor.
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).0 <= offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            0
        } else {
            self.get(lo - 1).1
        }
    }

    /// Adds an entry; ignored when full or out of order (the index is only a hint, so a
    /// missing entry means a longer scan, never a wrong answer).
    pub(crate) fn append(&mut self, offset: i64, position: u64) {
        let (Ok(rel), Ok(pos)) = (
            u32::try_from(offset - self.base_offset),
            u32::try_from(position),
        ) else {
            return;
        };
        if pos == 0
            || self
                .last()
                .is_some_and(|(o, p)| offset <= o || position <= p)
        {
            return;
        }
        let mut e = [0u8; OFFSET_ENTRY_BYTES];
        e[..4].copy_from_slice(&rel.to_be_bytes());
        e[4..].copy_from_slice(&pos.to_be_bytes());
        self.file.push(&e);
    }

    /// Drops entries whose offset is `offset` or above.
    pub(crate) fn truncate_to(&mut self, offset: i64) {
        let keep = (0..self.len())
            .take_while(|&i| self.get(i).0 < offset)
            .count();
        self.file.truncate_entries(keep);
    }

    pub(crate) fn trim(&mut self) -> Result<(), StorageError> {
        self.file.trim()
    }

    pub(crate) fn preallocate(&mut self, bytes: usize) -> Result<(), StorageError> {
        self.file.resize(bytes.max(self.len() * OFFSET_ENTRY_BYTES))
    }

    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        self.file.sync()
    }
}

/// Timestamp → offset.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    base_offset: i64,
    file: IndexFile,
}

impl TimeIndex {
    pub(crate) fn open(
        path: &Path,
        base_offset: i64,
        preallocate: Option<usize>,
    ) -> Result<Self, StorageError> {
        let mut index = Self {
            base_offset,
            file: IndexFile::open(path, TIME_ENTRY_BYTES, preallocate)?,
        };
        index.file.entries = index.file.with_read_ahead(|| index.count_valid_entries())?;
        Ok(index)
    }

    fn count_valid_entries(&self) -> usize {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.file.capacity() {
            let (ts, rel) = self.raw(i);
            let ok = ts > 0 && prev.is_none_or(|(t, r)| ts > t && rel >= r);
            if !ok {
                return i;
            }
            prev = Some((ts, rel));
        }
        self.file.capacity()
    }

    fn raw(&self, i: usize) -> (i64, u32) {
        let e = self.file.entry(i);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        (i64::from_be_bytes(ts), u32_at(e, 8))
    }

    /// Entry `i` as (timestamp, absolute offset).
    pub(crate) fn get(&self, i: usize) -> (i64, i64) {
        let (ts, rel) = self.raw(i);
        (ts, self.base_offset + i64::from(rel))
    }

    pub(crate) fn len(&self) -> usize {
        self.file.entries
    }

    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub(crate) fn last(&self) -> Option<(i64, i64)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// The last entry whose timestamp is at or below `ts`: every record before the batch
    /// holding its offset is older than `ts`, so a search can start at that batch.
    pub(crate) fn lookup(&self, ts: i64) -> Option<(i64, i64)> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).0 <= ts {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.get(i))
    }

    /// Adds an entry when `ts` is a new maximum (non-positive timestamps are not indexed).
    pub(crate) fn maybe_append(&mut self, ts: i64, offset: i64) {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return;
        };
        if ts <= 0 || self.last().is_some_and(|(t, o)| ts <= t || offset < o) {
            return;
        }
        let mut e = [0u8; TIME_ENTRY_BYTES];
        e[..8].copy_from_slice(&ts.to_be_bytes());
        e[8..].copy_from_slice(&rel.to_be_bytes());
        self.file.push(&e);
    }

    pub(crate) fn truncate_to(&mut self, offset: i64) {
        let keep = (0..self.len())
            .take_while(|&i| self.get(i).1 < offset)
            .count();
        self.file.truncate_entries(keep);
    }

    pub(crate) fn trim(&mut self) -> Result<(), StorageError> {
        self.file.trim()
    }

    pub(crate) fn preallocate(&mut self, bytes: usize) -> Result<(), StorageError> {
        self.file.resize(bytes.max(self.len() * TIME_ENTRY_BYTES))
    }

    pub(crate) fn sync(&self) -> Result<(), StorageError> {
        self.file.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Major page faults of the calling thread so far (field 12 of its `stat`).
    #[cfg(target_os = "linux")]
    fn major_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name, which is in parentheses: state is field 3.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(12 - 3).unwrap().parse().unwrap()
    }

    /// Counting entries on open reads the index front to back; without read-ahead that
    /// is one disk read per page.
    #[cfg(target_os = "linux")]
    #[test]
    fn counting_entries_on_open_reads_ahead() {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        use std::os::fd::AsRawFd;

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let entries = 200_000usize; // 1.6 MB, 391 pages
        let mut idx = OffsetIndex::open(&p, 0, Some(entries * OFFSET_ENTRY_BYTES)).unwrap();
        for i in 1..=entries as u64 {
            idx.append(i as i64, i * 4096);
        }
        idx.sync().unwrap();
        drop(idx);
        let file = File::open(&p).unwrap();
        posix_fadvise(
            file.as_raw_fd(),
            0,
            0,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        let before = major_faults();
        let idx = OffsetIndex::open(&p, 0, None).unwrap();
        let faults = major_faults() - before;
        assert_eq!(idx.len(), entries);
        assert!(
            faults < 40,
            "{faults} major faults to count {entries} entries"
        );
    }

    #[test]
    fn offset_index_lookup_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&p, 100, Some(1024)).unwrap();
        for i in 1..=50u64 {
            idx.append(100 + i as i64 * 10, i * 4096);
        }
        idx.append(105, 999_999); // out of order: ignored
        assert_eq!(idx.len(), 50);
        assert_eq!(idx.lookup(99), 0);
        assert_eq!(idx.lookup(109), 0);
        assert_eq!(idx.lookup(110), 4096);
        assert_eq!(idx.lookup(255), 15 * 4096);
        assert_eq!(idx.lookup(10_000), 50 * 4096);
        drop(idx);
        // Reopen the preallocated file: the zero tail is not counted.
        let mut idx = OffsetIndex::open(&p, 100, None).unwrap();
        assert_eq!(idx.len(), 50);
        idx.truncate_to(300);
        assert_eq!(idx.len(), 19);
        idx.trim().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 19 * 8);
        let idx = OffsetIndex::open(&p, 100, None).unwrap();
        assert_eq!(idx.last(), Some((290, 19 * 4096)));
    }

    #[test]
    fn full_index_ignores_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("i"), 0, Some(20)).unwrap();
        for i in 1..10 {
            idx.append(i, i as u64 * 10);
        }
        assert_eq!(idx.len(), 2);
        assert!(idx.is_full());
    }

    #[test]
    fn time_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TimeIndex::open(&dir.path().join("t"), 0, Some(1200)).unwrap();
        t.maybe_append(1000, 5);
        t.maybe_append(900, 6); // not a new max
        t.maybe_append(2000, 9);
        t.maybe_append(3000, 20);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(999), None);
        assert_eq!(t.lookup(2500), Some((2000, 9)));
        t.truncate_to(10);
        assert_eq!(t.last(), Some((2000, 9)));
    }
}
