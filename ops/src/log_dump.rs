//! `log dump`: a read-only look at one partition's segment files, like Kafka's
//! `kafka-dump-log.sh`. For each record batch, in offset order across the `*.log` files:
//! where it lies, its offsets, partition leader epoch, producer id/epoch/base sequence,
//! record count, stored CRC, size and a digest of all its bytes.
//!
//! - [`segments`]: the segment base offsets of a partition folder, from the file names.
//! - [`walk`]: reads the segments in order, one batch at a time, and tells why it stopped.
//! - [`dump`]: [`walk`] collected into a [`Dump`] (what `--json` prints).
//! - [`LogCmd`] / [`run`]: the command line.
//!
//! It only reads: files are opened read-only, nothing is locked, renamed or trimmed, so
//! it is safe on the folder of a running broker. Batches are checked with the same v2
//! parser the broker uses (`isthmus_protocol::batch::ValidPrefix`, CRC32C included). What
//! it skips and where it stops follows the broker's own recovery scan:
//!
//! - zero bytes after the data (the active segment is preallocated) end a segment cleanly;
//! - batches in a segment whose last offset reaches the next segment's base are stale
//!   bytes left past a truncation point (the cut file is not trimmed while readers may
//!   hold it), not part of the log, so the segment ends there;
//! - a batch that is torn (shorter than its length says, or failing its CRC: a write in
//!   progress at the tail of a live log, or damage) or whose offsets go backwards stops the
//!   dump, reported as [`DumpEnd::Stopped`] with the file and byte position.
//!
//! The digest is the CRC32C of the whole batch, base offset and partition leader epoch
//! included (the stored CRC leaves those two out): replicas of a partition hold the same
//! bytes, so their digests must match batch for batch.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use isthmus_protocol::batch::{BatchHeader, ValidPrefix};
use isthmus_protocol::error::ProtocolError;
use serde::{Deserialize, Serialize};

/// Bytes read from a segment file at a time (more when one batch is larger).
pub const READ_CHUNK_BYTES: usize = 1 << 20;
/// A segment file: `<base offset, 20 digits>.log`.
const LOG_SUFFIX: &str = ".log";
const OFFSET_DIGITS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: io::Error },
    #[error("{} is not a directory; give a partition folder such as <log.dirs>/orders-0", .0.display())]
    NotADirectory(PathBuf),
    #[error("writing the output: {0}")]
    Output(io::Error),
}

/// One record batch as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// Base offset of the segment file holding it.
    pub segment: i64,
    /// Byte position in that file.
    pub position: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub partition_leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
    pub is_transactional: bool,
    pub is_control: bool,
    pub max_timestamp: i64,
    /// The stored CRC32C (over the bytes from `attributes` on).
    pub crc: u32,
    /// Bytes the whole batch takes in the file.
    pub size_bytes: u64,
    /// CRC32C of all the batch's bytes, base offset and leader epoch included.
    pub digest: u32,
}

impl BatchSummary {
    fn new(segment: i64, position: u64, h: &BatchHeader, bytes: &[u8]) -> Self {
        BatchSummary {
            segment,
            position,
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            partition_leader_epoch: h.partition_leader_epoch,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            record_count: h.records_count,
            is_transactional: h.is_transactional(),
            is_control: h.is_control(),
            max_timestamp: h.max_timestamp,
            crc: h.crc,
            size_bytes: bytes.len() as u64,
            digest: crc32c::crc32c(bytes),
        }
    }

    /// One line, in the style of `kafka-dump-log.sh`.
    pub fn line(&self) -> String {
        format!(
            "baseOffset: {} lastOffset: {} count: {} partitionLeaderEpoch: {} producerId: {} producerEpoch: {} baseSequence: {} isTransactional: {} isControl: {} position: {} maxTimestamp: {} size: {} crc: {:#010x} digest: {:#010x}",
            self.base_offset,
            self.last_offset,
            self.record_count,
            self.partition_leader_epoch,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.is_transactional,
            self.is_control,
            self.position,
            self.max_timestamp,
            self.size_bytes,
            self.crc,
            self.digest
        )
    }
}

/// Why a dump ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DumpEnd {
    /// Every segment was read to the end of its data.
    EndOfLog,
    /// The next batch starts at or after the `--upto` offset.
    Upto { offset: i64 },
    /// A batch that is not whole and valid, or a file gone while reading: nothing after it
    /// is read. At the tail of a live log this is usually a write in progress.
    Stopped {
        segment: i64,
        position: u64,
        reason: String,
    },
}

/// Everything [`walk`] saw (the `--json` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    pub dir: PathBuf,
    /// Base offsets of the segment files, in order.
    pub segments: Vec<i64>,
    pub batches: Vec<BatchSummary>,
    /// One past the last batch dumped (`None` when none was).
    pub next_offset: Option<i64>,
    pub end: DumpEnd,
}

/// The base offsets of the segment files in `dir`, in order. Other files (indexes,
/// checkpoints, compaction leftovers such as `.log.cleaned`) are ignored.
pub fn segments(dir: &Path) -> Result<Vec<i64>, DumpError> {
    let io_err = |err| DumpError::Io {
        path: dir.to_path_buf(),
        err,
    };
    let meta = std::fs::metadata(dir).map_err(io_err)?;
    if !meta.is_dir() {
        return Err(DumpError::NotADirectory(dir.to_path_buf()));
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let name = entry.map_err(io_err)?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(LOG_SUFFIX)) else {
            continue;
        };
        if stem.len() == OFFSET_DIGITS && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse::<i64>() {
                out.push(base);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:0width$}{LOG_SUFFIX}", width = OFFSET_DIGITS))
}

/// Up to `want` bytes of `file` from `at`, fewer only at the end of the file.
fn read_up_to(file: &File, at: u64, want: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Words for why a batch was not accepted (positions are given separately, per file).
fn describe(e: &ProtocolError) -> String {
    match e {
        ProtocolError::BatchTruncated {
            needed, available, ..
        } => format!("torn batch: {needed} bytes long but only {available} in the file"),
        ProtocolError::CrcMismatch {
            stored, computed, ..
        } => format!(
            "CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x}): torn or corrupt batch"
        ),
        ProtocolError::InvalidBatchLength { length, .. } => {
            format!("invalid batch length {length}")
        }
        ProtocolError::UnsupportedMagic { magic, .. } | ProtocolError::InvalidMagic { magic, .. } => {
            format!("magic {magic}: not a v2 record batch")
        }
        ProtocolError::UnknownCompression { codec, .. } => {
            format!("unknown compression codec {codec}")
        }
        ProtocolError::InvalidBatch { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Reads the batches of `segments` (from [`segments`]) in `dir` in order and hands each
/// to `on_batch`, stopping before the first batch that starts at or after `upto`. Returns
/// why it ended and one past the last batch handed over.
pub fn walk(
    dir: &Path,
    segments: &[i64],
    upto: Option<i64>,
    mut on_batch: impl FnMut(&BatchSummary) -> io::Result<()>,
) -> Result<(DumpEnd, Option<i64>), DumpError> {
    let mut next_offset: Option<i64> = None;
    for (i, &base) in segments.iter().enumerate() {
        let next_base = segments.get(i + 1).copied();
        let path = segment_path(dir, base);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let end = DumpEnd::Stopped {
                    segment: base,
                    position: 0,
                    reason: "the file was deleted while dumping (retention, truncation or compaction); run again".into(),
                };
                return Ok((end, next_offset));
            }
            Err(err) => return Err(DumpError::Io { path, err }),
        };
        let stopped = |position: u64, reason: String| DumpEnd::Stopped {
            segment: base,
            position,
            reason,
        };
        let mut position: u64 = 0;
        let mut want = READ_CHUNK_BYTES;
        'segment: loop {
            let buf = read_up_to(&file, position, want).map_err(|err| DumpError::Io {
                path: path.clone(),
                err,
            })?;
            let at_eof = buf.len() < want;
            let mut scan = ValidPrefix::new(&buf, true);
            for b in scan.by_ref() {
                let h = b.header;
                let at = position + b.position as u64;
                if next_base.is_some_and(|n| h.last_offset() >= n) {
                    // Stale bytes past a truncation point: the next file continues the log.
                    break 'segment;
                }
                if let Some(limit) = upto.filter(|u| h.base_offset >= *u) {
                    return Ok((DumpEnd::Upto { offset: limit }, next_offset));
                }
                if h.base_offset < base {
                    let reason = format!(
                        "batch at offset {} lies below its segment's base offset {base}",
                        h.base_offset
                    );
                    return Ok((stopped(at, reason), next_offset));
                }
                if let Some(expected) = next_offset.filter(|n| h.base_offset < *n) {
                    let reason = format!(
                        "offsets go backwards: batch at offset {} after one ending at {}",
                        h.base_offset,
                        expected - 1
                    );
                    return Ok((stopped(at, reason), next_offset));
                }
                let summary = BatchSummary::new(base, at, &h, &buf[b.range()]);
                on_batch(&summary).map_err(DumpError::Output)?;
                next_offset = Some(h.next_offset());
            }
            let consumed = scan.valid_len();
            match scan.stop_reason() {
                // The chunk ended exactly at a batch boundary: read on.
                None if consumed == buf.len() && !at_eof => {
                    position += consumed as u64;
                    want = READ_CHUNK_BYTES;
                }
                // Zero length (preallocated space) or the end of the file.
                None => break,
                // A batch runs past the chunk, not past the file: read it whole.
                Some(ProtocolError::BatchTruncated { needed, .. }) if !at_eof => {
                    position += consumed as u64;
                    want = READ_CHUNK_BYTES.max(*needed);
                }
                // Fewer zero bytes than a batch length at the very end of the file.
                Some(_) if at_eof && buf[consumed..].iter().all(|&b| b == 0) => break,
                Some(e) => {
                    return Ok((
                        stopped(position + consumed as u64, describe(e)),
                        next_offset,
                    ))
                }
            }
        }
    }
    Ok((DumpEnd::EndOfLog, next_offset))
}

/// Every batch of the partition folder `dir` (before `upto`), and why the dump ended.
pub fn dump(dir: &Path, upto: Option<i64>) -> Result<Dump, DumpError> {
    let segs = segments(dir)?;
    let mut batches = Vec::new();
    let (end, next_offset) = walk(dir, &segs, upto, |b| {
        batches.push(b.clone());
        Ok(())
    })?;
    Ok(Dump {
        dir: dir.to_path_buf(),
        segments: segs,
        batches,
        next_offset,
        end,
    })
}

/// The last line of a text dump.
pub fn end_line(end: &DumpEnd, next_offset: Option<i64>, batches: u64) -> String {
    let next = next_offset.map_or("none".to_owned(), |n| n.to_string());
    match end {
        DumpEnd::EndOfLog => format!("End of log: {batches} batches, next offset {next}"),
        DumpEnd::Upto { offset } => {
            format!("Stopped before offset {offset} (--upto): {batches} batches, next offset {next}")
        }
        DumpEnd::Stopped {
            segment,
            position,
            reason,
        } => format!(
            "Stopped at byte {position} of {:0width$}{LOG_SUFFIX}: {reason} ({batches} batches before it, next offset {next})",
            segment,
            width = OFFSET_DIGITS
        ),
    }
}

#[derive(Debug, Subcommand)]
pub enum LogCmd {
    /// Print the record batches of one partition folder, read-only (like kafka-dump-log).
    #[command(after_help = "Examples:
  isthmusctl log dump --dir /var/lib/isthmus/data/orders-0
  isthmusctl log dump --dir data/orders-0 --upto 1000 --json

Safe on a running broker's folder: it opens files read-only and locks nothing. A batch
still being written at the tail shows as \"Stopped at byte …\": run it again.")]
    Dump(DumpArgs),
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The partition folder: <log.dirs>/<topic>-<partition>.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Only batches that start below this offset.
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    pub upto: Option<i64>,
    /// One JSON object: dir, segments, batches, next_offset, end.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: LogCmd) -> anyhow::Result<()> {
    match cmd {
        LogCmd::Dump(a) => run_dump(&a, &mut io::stdout().lock()),
    }
}

fn run_dump(a: &DumpArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if a.json {
        let d = dump(&a.dir, a.upto)?;
        serde_json::to_writer(&mut *out, &d)?;
        writeln!(out)?;
        return Ok(());
    }
    let segs = segments(&a.dir)?;
    writeln!(out, "Dumping {}", a.dir.display())?;
    let mut current: Option<i64> = None;
    let mut count = 0u64;
    let (end, next_offset) = walk(&a.dir, &segs, a.upto, |b| {
        if current != Some(b.segment) {
            current = Some(b.segment);
            writeln!(
                out,
                "Segment {}",
                segment_path(Path::new(""), b.segment).display()
            )?;
        }
        count += 1;
        writeln!(out, "{}", b.line())
    })?;
    writeln!(out, "{}", end_line(&end, next_offset, count))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use isthmus_protocol::batch::BatchBuilder;
    use isthmus_storage::{Log, LogConfig};
    use std::collections::BTreeMap;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn batch(values: &[&str]) -> Vec<u8> {
        values
            .iter()
            .fold(BatchBuilder::new(0), |b, v| {
                b.record(NOW_MS, None, Some(v.as_bytes()), &[])
            })
            .build()
    }

    fn idempotent_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Vec<u8> {
        values
            .iter()
            .fold(BatchBuilder::new(0).producer(pid, epoch, seq), |b, v| {
                b.record(NOW_MS, Some(b"k"), Some(v.as_bytes()), &[])
            })
            .build()
    }

    /// Small preallocations, so tests can read whole files.
    fn open(dir: &Path) -> Log {
        let config = LogConfig {
            segment_bytes: 8 << 20,
            segment_index_bytes: 1 << 20,
            max_message_bytes: 4 << 20,
            ..LogConfig::default()
        };
        Log::open(dir, config, true).unwrap()
    }

    /// A log of three batches in segment 0 (epoch 3, one idempotent) and one in segment 6
    /// (epoch 4), left open like a running broker's.
    fn sample(dir: &Path) -> Log {
        let mut log = open(dir);
        log.append_as_leader(&batch(&["a", "b"]), 3, NOW_MS)
            .unwrap();
        log.append_as_leader(&idempotent_batch(7, 1, 0, &["c", "d", "e"]), 3, NOW_MS)
            .unwrap();
        log.append_as_leader(&batch(&["f"]), 3, NOW_MS).unwrap();
        log.roll(NOW_MS).unwrap();
        log.append_as_leader(&batch(&["g", "h"]), 4, NOW_MS)
            .unwrap();
        log
    }

    /// Every file of `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let bytes = if e.path().is_file() {
                    std::fs::read(e.path()).unwrap()
                } else {
                    Vec::new()
                };
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect()
    }

    #[test]
    fn batches_of_every_segment_in_offset_order_with_their_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let _log = sample(tmp.path());
        let d = dump(tmp.path(), None).unwrap();
        assert_eq!(d.segments, vec![0, 6]);
        assert_eq!(d.end, DumpEnd::EndOfLog);
        assert_eq!(d.next_offset, Some(8));
        let spans: Vec<(i64, i64, i64, i32, i32)> = d
            .batches
            .iter()
            .map(|b| {
                (
                    b.segment,
                    b.base_offset,
                    b.last_offset,
                    b.record_count,
                    b.partition_leader_epoch,
                )
            })
            .collect();
        assert_eq!(
            spans,
            vec![
                (0, 0, 1, 2, 3),
                (0, 2, 4, 3, 3),
                (0, 5, 5, 1, 3),
                (6, 6, 7, 2, 4)
            ]
        );
        let idem = &d.batches[1];
        assert_eq!(
            (idem.producer_id, idem.producer_epoch, idem.base_sequence),
            (7, 1, 0)
        );
        assert_eq!(d.batches[0].producer_id, -1);
        assert_eq!(d.batches[0].position, 0);
        assert_eq!(d.batches[1].position, d.batches[0].size_bytes);
        assert_eq!(d.batches[3].position, 0);

        // Sizes, CRCs and digests match the bytes in the files.
        for b in &d.batches {
            let file = std::fs::read(segment_path(tmp.path(), b.segment)).unwrap();
            let bytes = &file[b.position as usize..(b.position + b.size_bytes) as usize];
            assert_eq!(b.digest, crc32c::crc32c(bytes));
            assert_eq!(b.crc, isthmus_protocol::batch::compute_crc(bytes));
            assert_ne!(b.digest, b.crc, "the digest covers offset and epoch too");
        }
        let line = d.batches[1].line();
        for part in [
            "baseOffset: 2 lastOffset: 4 count: 3 partitionLeaderEpoch: 3",
            "producerId: 7 producerEpoch: 1 baseSequence: 0",
            &format!("crc: {:#010x}", d.batches[1].crc),
            &format!("digest: {:#010x}", d.batches[1].digest),
        ] {
            assert!(line.contains(part), "{line}");
        }
    }

    #[test]
    fn the_digest_tells_equal_batches_from_ones_that_differ_only_in_epoch() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        for (dir, epoch) in [(a.path(), 5), (b.path(), 5), (c.path(), 6)] {
            let mut log = open(dir);
            log.append_as_leader(&batch(&["same"]), epoch, NOW_MS)
                .unwrap();
            log.close().unwrap();
        }
        let digest = |dir: &Path| dump(dir, None).unwrap().batches[0].digest;
        assert_eq!(digest(a.path()), digest(b.path()));
        assert_ne!(digest(a.path()), digest(c.path()));
        let crc = |dir: &Path| dump(dir, None).unwrap().batches[0].crc;
        assert_eq!(
            crc(a.path()),
            crc(c.path()),
            "the stored CRC skips the epoch"
        );
    }

    #[test]
    fn upto_stops_before_the_first_batch_starting_there() {
        let tmp = tempfile::tempdir().unwrap();
        let _log = sample(tmp.path());
        for (upto, last_base, next) in [(5, 2, 5), (6, 5, 6), (3, 2, 5), (0, -1, -1)] {
            let d = dump(tmp.path(), Some(upto)).unwrap();
            assert_eq!(d.end, DumpEnd::Upto { offset: upto });
            assert_eq!(
                d.batches.last().map_or(-1, |b| b.base_offset),
                last_base,
                "upto {upto}"
            );
            assert_eq!(d.next_offset.unwrap_or(-1), next, "upto {upto}");
        }
        assert_eq!(dump(tmp.path(), Some(8)).unwrap().end, DumpEnd::EndOfLog);
    }

    #[test]
    fn reading_changes_nothing_even_while_the_log_is_open() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = sample(tmp.path());
        let before = snapshot(tmp.path());
        let first = dump(tmp.path(), None).unwrap();
        assert_eq!(snapshot(tmp.path()), before);
        // The writer goes on after the dump, and the next dump sees its batch.
        log.append_as_leader(&batch(&["i"]), 4, NOW_MS).unwrap();
        let second = dump(tmp.path(), None).unwrap();
        assert_eq!(second.batches[..4], first.batches[..]);
        assert_eq!(second.next_offset, Some(9));
        log.close().unwrap();
        assert_eq!(dump(tmp.path(), None).unwrap(), second);
    }

    #[test]
    fn a_torn_batch_at_the_tail_is_reported_and_ends_the_dump() {
        let tmp = tempfile::tempdir().unwrap();
        let log = sample(tmp.path());
        let whole = dump(tmp.path(), None).unwrap();
        let end_of_data: u64 = whole
            .batches
            .iter()
            .filter(|b| b.segment == 6)
            .map(|b| b.size_bytes)
            .sum();
        // Half of a batch after the data of the (preallocated) active segment: the header
        // arrived, the records did not.
        let mut next = batch(&["torn", "record"]);
        isthmus_protocol::batch::set_base_offset(&mut next, 8).unwrap();
        let path = segment_path(tmp.path(), 6);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&next[..next.len() / 2], end_of_data)
            .unwrap();
        let d = dump(tmp.path(), None).unwrap();
        assert_eq!(d.batches, whole.batches, "what came before is still dumped");
        assert_eq!(d.next_offset, Some(8));
        match &d.end {
            DumpEnd::Stopped {
                segment: 6,
                position,
                reason,
            } => {
                assert_eq!(*position, end_of_data);
                assert!(reason.contains("CRC32C mismatch"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        drop(log);

        // A file cut inside a batch (a sealed segment trimmed too far, say).
        let sealed = segment_path(tmp.path(), 0);
        let len = std::fs::metadata(&sealed).unwrap().len();
        File::options()
            .write(true)
            .open(&sealed)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let d = dump(tmp.path(), None).unwrap();
        assert_eq!(d.batches.len(), 2);
        assert_eq!(d.next_offset, Some(5));
        match &d.end {
            DumpEnd::Stopped {
                segment: 0,
                position,
                reason,
            } => {
                assert_eq!(*position, d.batches[0].size_bytes + d.batches[1].size_bytes);
                assert!(reason.contains("torn batch"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let text = end_line(&d.end, d.next_offset, 2);
        assert!(
            text.starts_with("Stopped at byte ") && text.contains("00000000000000000000.log"),
            "{text}"
        );
    }

    #[test]
    fn bytes_left_past_a_truncation_point_are_not_part_of_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path());
        for v in ["a", "b", "c", "d"] {
            log.append_as_leader(&batch(&[v]), 1, NOW_MS).unwrap();
        }
        // A reader holding the segment's bytes keeps the cut file from being trimmed.
        let held = log.read(0, 1 << 20, 4, true).unwrap();
        log.truncate_to(2).unwrap();
        log.append_as_leader(&batch(&["x", "y"]), 2, NOW_MS)
            .unwrap();
        let d = dump(tmp.path(), None).unwrap();
        drop(held);
        assert_eq!(d.segments, vec![0, 2]);
        let seen: Vec<(i64, i64, i32)> = d
            .batches
            .iter()
            .map(|b| (b.base_offset, b.last_offset, b.partition_leader_epoch))
            .collect();
        assert_eq!(seen, vec![(0, 0, 1), (1, 1, 1), (2, 3, 2)]);
        assert_eq!(d.end, DumpEnd::EndOfLog);
        // The stale batch is still in the first file, right after its data.
        let first_data: u64 = d.batches[..2].iter().map(|b| b.size_bytes).sum();
        let file = File::open(segment_path(tmp.path(), 0)).unwrap();
        let stale = read_up_to(&file, first_data, isthmus_protocol::batch::HEADER_SIZE).unwrap();
        let header = BatchHeader::parse(&stale).expect("a stale batch header");
        assert_eq!((header.base_offset, header.partition_leader_epoch), (2, 1));
    }

    #[test]
    fn batches_larger_than_a_read_chunk_are_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path());
        let big = "x".repeat(READ_CHUNK_BYTES / 2 + 10);
        log.append_as_leader(&batch(&["small"]), 0, NOW_MS).unwrap();
        for _ in 0..3 {
            log.append_as_leader(&batch(&[&big, &big]), 0, NOW_MS)
                .unwrap();
        }
        let d = dump(tmp.path(), None).unwrap();
        assert_eq!(d.end, DumpEnd::EndOfLog);
        assert_eq!(d.batches.len(), 4);
        assert!(d.batches[1].size_bytes > READ_CHUNK_BYTES as u64);
        assert_eq!(d.next_offset, Some(7));
    }

    #[test]
    fn folders_without_segments_and_missing_folders() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("leader-epoch-checkpoint"), "0\n0\n").unwrap();
        std::fs::write(tmp.path().join("00000000000000000000.log.cleaned"), "x").unwrap();
        let d = dump(tmp.path(), None).unwrap();
        assert_eq!(
            (d.segments.len(), d.batches.len(), d.next_offset),
            (0, 0, None)
        );
        assert_eq!(d.end, DumpEnd::EndOfLog);
        let missing = tmp.path().join("nope-0");
        let err = dump(&missing, None).unwrap_err().to_string();
        assert!(err.contains("nope-0"), "{err}");
        let file = tmp.path().join("leader-epoch-checkpoint");
        let err = dump(&file, None).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn text_and_json_output() {
        let tmp = tempfile::tempdir().unwrap();
        let _log = sample(tmp.path());
        let args = |json, upto| DumpArgs {
            dir: tmp.path().to_path_buf(),
            upto,
            json,
        };
        let mut out = Vec::new();
        run_dump(&args(false, None), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Dumping "), "{text}");
        assert_eq!(lines[1], "Segment 00000000000000000000.log");
        assert!(lines[2].starts_with("baseOffset: 0 lastOffset: 1 count: 2"));
        assert_eq!(lines[5], "Segment 00000000000000000006.log");
        assert_eq!(
            lines.last().copied(),
            Some("End of log: 4 batches, next offset 8")
        );

        let mut out = Vec::new();
        run_dump(&args(true, Some(6)), &mut out).unwrap();
        let parsed: Dump = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, dump(tmp.path(), Some(6)).unwrap());
        let raw: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(raw["end"]["kind"], "upto");
        assert_eq!(raw["batches"][1]["producer_id"], 7);
    }
}
