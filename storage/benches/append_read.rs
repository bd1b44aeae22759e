//! Append and read throughput of one partition log.
//!
//! - `append/page_cache`: 16 KiB batches of 1 KiB records, no fsync.
//! - `append/fsync_each`: the same, with a FlushJob sync after every append (a group
//!   commit of one: the worst case of `acks=all` with fsync before ack).
//! - `read/1MiB`: 1 MiB zero-copy reads walking through a 256 MiB log.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use isthmus_protocol::batch::BatchBuilder;
use isthmus_storage::{Log, LogConfig};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 15; // ~16 KiB with record overhead
const READ_BYTES: usize = 1 << 20;
const READ_LOG_BYTES: usize = 256 << 20;

fn batch() -> Vec<u8> {
    let value = vec![b'x'; RECORD_BYTES];
    let mut b = BatchBuilder::new(0);
    for i in 0..RECORDS_PER_BATCH {
        b = b.record(1_700_000_000_000 + i as i64, None, Some(&value), &[]);
    }
    b.build()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 20,
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let template = batch();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(template.len() as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for fsync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), false).unwrap();
        let buf = template.clone();
        let name = if fsync { "fsync_each" } else { "page_cache" };
        group.bench_function(name, |b| {
            b.iter(|| {
                log.append_as_leader(&buf, 0, 0).unwrap();
                if fsync {
                    if let Some(job) = log.unflushed() {
                        job.sync().unwrap();
                        log.mark_flushed(&job);
                    }
                }
                // Keep the disk footprint bounded over long runs.
                if log.size_bytes() > 512 << 20 {
                    log.apply_retention(i64::MAX, i64::MAX).ok();
                }
            })
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), false).unwrap();
    let buf = batch();
    while log.size_bytes() < READ_LOG_BYTES as u64 {
        log.append_as_leader(&buf, 0, 0).unwrap();
    }
    let end = log.log_end_offset();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(READ_BYTES as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let mut offset = 0;
    group.bench_function("1MiB", |b| {
        b.iter(|| {
            let r = log.read(offset, READ_BYTES, end, true).unwrap();
            // Touch every page, as a socket write would.
            let sum = r
                .records
                .iter()
                .step_by(4096)
                .fold(0u8, |a, x| a.wrapping_add(*x));
            offset = if r.next_offset >= end {
                0
            } else {
                r.next_offset
            };
            std::hint::black_box(sum)
        })
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
