//! Idempotent-producer state: per producer id, its epoch and its last few batches, so a
//! retried batch is answered with its original offsets and a gap in sequences is refused.
//!
//! The rules follow Kafka's ProducerStateManager:
//! - a batch without a producer id is never checked;
//! - an epoch below the current one is fenced ([`StorageError::InvalidProducerEpoch`]);
//! - a new, higher epoch must start at sequence 0, unless the producer is unknown;
//! - in the same epoch, a batch whose sequence range equals one of the last
//!   [`PRODUCER_BATCHES_RETAINED`] is a duplicate; otherwise it must start right after the
//!   last sequence (wrapping from `i32::MAX` to 0);
//! - an unknown producer (never seen, or its data removed by retention) starts anywhere.
//!
//! State is saved as snapshots `<offset:020>.snapshot` (state of every batch below that
//! offset) and rebuilt on open by replaying batch headers from the newest snapshot.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use isthmus_protocol::batch::{BatchHeader, NO_PRODUCER_EPOCH, NO_SEQUENCE};

use crate::error::{IoContext, StorageError};
use crate::fsutil::{atomic_write, parse_offset_file, SNAPSHOT_SUFFIX};

/// Batches remembered per producer: Kafka clients keep at most 5 requests in flight.
pub const PRODUCER_BATCHES_RETAINED: usize = 5;

const SNAPSHOT_MAGIC: &[u8; 4] = b"ISPS";
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_BYTES: usize = 4 + 2 + 4 + 4;
const SNAPSHOT_ENTRY_FIXED_BYTES: usize = 8 + 2 + 8 + 1;
const SNAPSHOT_BATCH_BYTES: usize = 4 + 4 + 8 + 8;

/// Where one accepted batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What the log knows about one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Oldest first, at most [`PRODUCER_BATCHES_RETAINED`].
    pub batches: VecDeque<BatchMetadata>,
    /// `maxTimestamp` of the last batch (for producer expiry).
    pub last_timestamp: i64,
}

impl ProducerStateEntry {
    fn new(producer_id: i64) -> Self {
        Self {
            producer_id,
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
        }
    }

    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }

    /// Records a batch that was appended at `header.base_offset`.
    pub(crate) fn update(&mut self, header: &BatchHeader) {
        if header.producer_epoch != self.epoch {
            self.epoch = header.producer_epoch;
            self.batches.clear();
        }
        if self.batches.len() == PRODUCER_BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        self.last_timestamp = header.max_timestamp;
    }
}

/// Result of checking a batch against a producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    Append,
    Duplicate(BatchMetadata),
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Checks one batch of a client (leader) append against the producer's current state.
pub(crate) fn check_batch(
    entry: Option<&ProducerStateEntry>,
    header: &BatchHeader,
) -> Result<SequenceCheck, StorageError> {
    let pid = header.producer_id;
    let Some(entry) = entry.filter(|e| e.epoch != NO_PRODUCER_EPOCH) else {
        return Ok(SequenceCheck::Append);
    };
    if header.producer_epoch < entry.epoch {
        return Err(StorageError::InvalidProducerEpoch {
            producer_id: pid,
            epoch: header.producer_epoch,
            current_epoch: entry.epoch,
        });
    }
    let first = header.base_sequence;
    if header.producer_epoch > entry.epoch {
        if first != 0 {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: pid,
                reason: format!(
                    "new epoch {} must start at sequence 0, got {first}",
                    header.producer_epoch
                ),
            });
        }
        return Ok(SequenceCheck::Append);
    }
    let last = header.last_sequence();
    if let Some(dup) = entry
        .batches
        .iter()
        .find(|b| b.first_seq == first && b.last_seq == last)
    {
        return Ok(SequenceCheck::Duplicate(*dup));
    }
    if !in_sequence(entry.last_seq(), first) {
        return Err(StorageError::OutOfOrderSequence {
            producer_id: pid,
            reason: format!(
                "expected sequence {} after {}, got {first}",
                entry.last_seq().wrapping_add(1),
                entry.last_seq()
            ),
        });
    }
    Ok(SequenceCheck::Append)
}

/// All producers of one partition.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
}

impl ProducerStateManager {
    pub(crate) fn get(&self, pid: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&pid)
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// Records an appended batch; batches without a producer id are ignored.
    pub(crate) fn update(&mut self, header: &BatchHeader) {
        if header.has_producer_id() {
            self.producers
                .entry(header.producer_id)
                .or_insert_with(|| ProducerStateEntry::new(header.producer_id))
                .update(header);
        }
    }

    pub(crate) fn insert(&mut self, entry: ProducerStateEntry) {
        self.producers.insert(entry.producer_id, entry);
    }

    /// Forgets producers whose last batch is below the log start: their data is gone, so
    /// they are unknown again (and accepted at any sequence), as in Kafka.
    pub(crate) fn evict_below(&mut self, log_start_offset: i64) {
        self.producers
            .retain(|_, e| e.last_offset() >= log_start_offset);
    }

    pub(crate) fn clear(&mut self) {
        self.producers.clear();
    }

    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        body.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let e = &self.producers[&id];
            body.extend_from_slice(&e.producer_id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot; `None` if it is damaged in any way.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != SNAPSHOT_MAGIC || r.u16()? != SNAPSHOT_VERSION {
            return None;
        }
        let crc = r.u32()?;
        if crc32c::crc32c(&bytes[r.pos..]) != crc {
            return None;
        }
        let count = r.u32()? as usize;
        if count > bytes.len() / SNAPSHOT_ENTRY_FIXED_BYTES {
            return None;
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let producer_id = r.i64()?;
            let epoch = r.u16()? as i16;
            let last_timestamp = r.i64()?;
            let n = r.take(1)?[0] as usize;
            if n > PRODUCER_BATCHES_RETAINED || r.remaining() < n * SNAPSHOT_BATCH_BYTES {
                return None;
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.u32()? as i32,
                    last_seq: r.u32()? as i32,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            producers.insert(
                producer_id,
                ProducerStateEntry {
                    producer_id,
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        (r.pos == bytes.len()).then_some(Self { producers })
    }

    /// Writes the state as of `offset` (every batch below it) atomically.
    pub(crate) fn write_snapshot(&self, dir: &Path, offset: i64) -> Result<(), StorageError> {
        let name = format!("{offset:020}.{SNAPSHOT_SUFFIX}");
        atomic_write(dir, &name, &self.encode())
    }

    /// Loads the newest readable snapshot at or below `max_offset`, deleting damaged
    /// ones and any above `max_offset` (state the log no longer has). Returns the state
    /// and the offset to replay from; `None` when no snapshot qualifies.
    pub(crate) fn load_latest(
        dir: &Path,
        max_offset: i64,
    ) -> Result<Option<(Self, i64)>, StorageError> {
        let mut snapshots = list_snapshots(dir)?;
        snapshots.sort_unstable_by_key(|(o, _)| std::cmp::Reverse(*o));
        for (offset, path) in snapshots {
            if offset > max_offset {
                crate::fsutil::remove_if_exists(&path)?;
                continue;
            }
            let bytes = std::fs::read(&path).at(&path)?;
            match Self::decode(&bytes) {
                Some(state) => return Ok(Some((state, offset))),
                None => {
                    tracing::warn!(path = %path.display(), "removing damaged producer snapshot");
                    crate::fsutil::remove_if_exists(&path)?;
                }
            }
        }
        Ok(None)
    }
}

/// Producer snapshots in `dir`, by offset.
pub(crate) fn list_snapshots(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if let Some(offset) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_offset_file(n, SNAPSHOT_SUFFIX))
        {
            out.push((offset, entry.path()));
        }
    }
    Ok(out)
}

/// Removes snapshots below `offset` (their segments are gone).
pub(crate) fn delete_snapshots_below(dir: &Path, offset: i64) -> Result<(), StorageError> {
    for (o, path) in list_snapshots(dir)? {
        if o < offset {
            crate::fsutil::remove_if_exists(&path)?;
        }
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
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
    use isthmus_protocol::batch::BatchBuilder;

    fn header(pid: i64, epoch: i16, seq: i32, n: usize, base: i64) -> BatchHeader {
        let mut b = BatchBuilder::new(base).producer(pid, epoch, seq);
        for _ in 0..n {
            b = b.record(5, None, Some(b"v"), &[]);
        }
        BatchHeader::parse(&b.build()).unwrap()
    }

    #[test]
    fn sequence_rules() {
        let mut m = ProducerStateManager::default();
        let h = header(1, 0, 0, 3, 0);
        assert_eq!(check_batch(m.get(1), &h).unwrap(), SequenceCheck::Append);
        m.update(&h);
        // Retry: duplicate with the original offsets.
        assert_eq!(
            check_batch(m.get(1), &header(1, 0, 0, 3, 99)).unwrap(),
            SequenceCheck::Duplicate(BatchMetadata {
                first_seq: 0,
                last_seq: 2,
                first_offset: 0,
                last_offset: 2
            })
        );
        assert!(matches!(
            check_batch(m.get(1), &header(1, 0, 4, 1, 3)),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            check_batch(m.get(1), &header(1, 0, 3, 1, 3)).unwrap(),
            SequenceCheck::Append
        );
        assert!(matches!(
            check_batch(m.get(1), &header(1, 1, 5, 1, 3)),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            check_batch(m.get(1), &header(1, 1, 0, 1, 3)).unwrap(),
            SequenceCheck::Append
        );
        m.update(&header(1, 1, 0, 1, 3));
        assert!(matches!(
            check_batch(m.get(1), &header(1, 0, 3, 1, 4)),
            Err(StorageError::InvalidProducerEpoch {
                current_epoch: 1,
                ..
            })
        ));
        // Unknown producer: any sequence.
        assert_eq!(
            check_batch(m.get(2), &header(2, 4, 77, 1, 5)).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn only_last_five_batches_are_duplicates() {
        let mut m = ProducerStateManager::default();
        for i in 0..7 {
            m.update(&header(9, 0, i, 1, i64::from(i)));
        }
        assert_eq!(m.get(9).unwrap().batches.len(), PRODUCER_BATCHES_RETAINED);
        assert!(matches!(
            check_batch(m.get(9), &header(9, 0, 2, 1, 0)).unwrap(),
            SequenceCheck::Duplicate(_)
        ));
        assert!(check_batch(m.get(9), &header(9, 0, 1, 1, 0)).is_err());
    }

    #[test]
    fn sequence_wraps() {
        let mut m = ProducerStateManager::default();
        m.update(&header(3, 0, i32::MAX, 1, 0));
        assert_eq!(
            check_batch(m.get(3), &header(3, 0, 0, 1, 1)).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn snapshot_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ProducerStateManager::default();
        for i in 0..8 {
            m.update(&header(i % 3, 1, i as i32, 2, i * 2));
        }
        m.write_snapshot(dir.path(), 16).unwrap();
        let (back, at) = ProducerStateManager::load_latest(dir.path(), 100)
            .unwrap()
            .unwrap();
        assert_eq!(at, 16);
        assert_eq!(back.producers, m.producers);
        let bytes = m.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(ProducerStateManager::decode(&bad).is_none(), "flip at {i}");
            assert!(ProducerStateManager::decode(&bytes[..i]).is_none());
        }
        // Snapshots above the log end are removed.
        assert!(ProducerStateManager::load_latest(dir.path(), 15)
            .unwrap()
            .is_none());
        assert!(list_snapshots(dir.path()).unwrap().is_empty());
    }
}
