//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use isthmus_protocol::batch::{self, BatchBuilder, BatchHeader, Validation};
use isthmus_storage::{AppendOutcome, Log, LogConfig};
use std::path::Path;

/// Small segments and dense indexes so tests roll and index often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        segment_ms: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

pub fn value(offset_hint: i64, i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("v{offset_hint}-{i}-").into_bytes();
    v.resize(len.max(v.len()), b'x');
    v
}

/// A batch of `n` records with keys `k<i>`, timestamps `ts + i`, tagged by `tag`.
pub fn batch(tag: i64, n: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0);
    for i in 0..n {
        let k = format!("k{i}");
        b = b.record(
            ts + i as i64,
            Some(k.as_bytes()),
            Some(&value(tag, i, value_len)),
            &[],
        );
    }
    b.build()
}

pub fn producer_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0).producer(pid, epoch, seq);
    for i in 0..n {
        b = b.record(1_000 + i as i64, Some(b"k"), Some(b"v"), &[]);
    }
    b.build()
}

pub fn append(log: &mut Log, tag: i64, n: usize, value_len: usize, ts: i64) -> (i64, i64) {
    let b = batch(tag, n, value_len, ts);
    match log.append_as_leader(&b, 0, ts).unwrap() {
        AppendOutcome::Appended {
            base_offset,
            last_offset,
            ..
        } => (base_offset, last_offset),
        other => panic!("unexpected {other:?}"),
    }
}

/// Every (offset, value) readable from `from` to the log end, following next_offset.
pub fn read_all(log: &Log, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 3000, end, true).unwrap();
        assert!(!r.records.is_empty(), "empty read at {offset} (end {end})");
        for info in batch::batches(&r.records, Validation::Stored) {
            let info = info.unwrap();
            let bytes = &r.records[info.range()];
            for rec in batch::records(bytes).unwrap() {
                let rec = rec.unwrap();
                let o = info.header.base_offset + i64::from(rec.offset_delta);
                if o >= offset {
                    out.push((o, rec.value.unwrap().to_vec()));
                }
            }
        }
        assert!(r.next_offset > offset);
        offset = r.next_offset;
    }
    out
}

pub fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    batch::batches(bytes, Validation::Stored)
        .map(|b| b.unwrap().header)
        .collect()
}

/// Path of the active (newest) segment file.
pub fn newest_log_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

/// Bytes of valid batches at the start of a segment file.
pub fn valid_len(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let mut scan = batch::ValidPrefix::new(&data, true);
    scan.by_ref().count();
    scan.valid_len()
}
