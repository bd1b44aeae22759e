//! The leader-epoch cache: the first offset of every leader epoch in this log, used to
//! answer OffsetForLeaderEpoch and truncate followers by epoch, never by high watermark.
//!
//! Persisted as Kafka's `leader-epoch-checkpoint` text file: a version line `0`, a count
//! line, then one `epoch start_offset` line per entry, replaced atomically on each change.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};
use crate::fsutil::atomic_write;

pub(crate) const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const EPOCH_CHECKPOINT_VERSION: i32 = 0;
/// Bounds a hostile or corrupt checkpoint's count line before anything is allocated.
const EPOCH_ENTRIES_MAX: usize = 1 << 20;

/// One epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub(crate) struct EpochCache {
    dir: PathBuf,
    /// Strictly increasing epochs with non-decreasing start offsets.
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    pub(crate) fn empty(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// Loads the checkpoint. `Ok(None)` when it exists but is malformed: the caller
    /// rebuilds the cache from the batches' `partitionLeaderEpoch` fields.
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(EPOCH_CHECKPOINT_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(Self::empty(dir)))
            }
            Err(e) => return Err(e).at(&path),
        };
        Ok(Self::parse(&text).map(|entries| Self {
            dir: dir.to_path_buf(),
            entries,
        }))
    }

    fn parse(bytes: &[u8]) -> Option<Vec<EpochEntry>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()?.trim().parse::<i32>().ok()? != EPOCH_CHECKPOINT_VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        if count > EPOCH_ENTRIES_MAX {
            return None;
        }
        let mut entries: Vec<EpochEntry> = Vec::with_capacity(count);
        for _ in 0..count {
            let mut parts = lines.next()?.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let start_offset: i64 = parts.next()?.parse().ok()?;
            if parts.next().is_some() || epoch < 0 || start_offset < 0 {
                return None;
            }
            if let Some(last) = entries.last() {
                if epoch <= last.epoch || start_offset < last.start_offset {
                    return None;
                }
            }
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return None;
        }
        Some(entries)
    }

    pub(crate) fn persist(&self) -> Result<(), StorageError> {
        let mut text = format!("{EPOCH_CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        atomic_write(&self.dir, EPOCH_CHECKPOINT_FILE, text.as_bytes())
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`; returns whether anything changed.
    /// Entries that conflict (same or higher epoch, or starting at or after the new
    /// offset) are dropped first, as Kafka's cache does.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && start_offset >= last.start_offset {
                return false;
            }
        }
        while let Some(last) = self.entries.last() {
            if last.epoch >= epoch || last.start_offset >= start_offset {
                tracing::warn!(
                    epoch,
                    start_offset,
                    dropped_epoch = last.epoch,
                    dropped_start = last.start_offset,
                    "leader epoch cache: dropping conflicting entry"
                );
                self.entries.pop();
            } else {
                break;
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `endOffsetFor`: the epoch at or below `requested` and the first offset
    /// after it (the log end for the latest epoch). `None` when undefined.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let latest = self.entries.last()?;
        if requested < 0 {
            return None;
        }
        if requested == latest.epoch {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().position(|e| e.epoch > requested)?;
        let start = self.entries[higher].start_offset;
        if higher == 0 {
            // Older than anything known: the epoch asked for ends where ours begin.
            return Some((requested, start));
        }
        Some((self.entries[higher - 1].epoch, start))
    }

    /// Drops entries starting at or after `end_offset` (log truncated to it).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Drops entries wholly below `start_offset`; the epoch covering it now starts there.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let Some(covering) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return false;
        };
        if covering == 0 && self.entries[0].start_offset == start_offset {
            return false;
        }
        self.entries.drain(..covering);
        self.entries[0].start_offset = start_offset;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::empty(Path::new("/nonexistent"));
        for &(e, o) in entries {
            assert!(c.assign(e, o));
        }
        c
    }

    #[test]
    fn end_offset_for_matches_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(3, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(2, 30), Some((1, 10)));
        assert_eq!(c.end_offset_for(0, 30), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 30), None);
        assert_eq!(c.end_offset_for(-1, 30), None);
        assert_eq!(
            EpochCache::empty(Path::new("/x")).end_offset_for(1, 3),
            None
        );
    }

    #[test]
    fn assign_and_truncate() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(3, 15), "same epoch later offset is a no-op");
        assert!(c.assign(2, 12), "lower epoch drops conflicting newer ones");
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 2,
                    start_offset: 12
                }
            ]
        );
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.truncate_from_end(20));
        assert_eq!(c.latest_epoch(), Some(3));
        assert!(c.truncate_from_start(15));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 15
            }]
        );
    }

    #[test]
    fn checkpoint_round_trip_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::empty(dir.path());
        c.assign(0, 0);
        c.assign(4, 100);
        c.persist().unwrap();
        let text = std::fs::read_to_string(dir.path().join(EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n4 100\n");
        let back = EpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.entries(), c.entries());
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\nx y\n",
            "0\n2\n3 5\n2 6\n",
            "0\n99999999999\n",
        ] {
            assert!(EpochCache::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }
}
