mod common;

use common::*;
use isthmus_storage::{Log, PARTITION_CHECKPOINT_FILE};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Appends `batches` batches and drops the log without closing it (a crash of the
/// process: data is in the page cache, nothing trimmed, no snapshot or checkpoint).
fn crashed_log(dir: &Path, batches: i64) -> Vec<(i64, Vec<u8>)> {
    let mut log = Log::open(dir, small_config(), false).unwrap();
    for tag in 0..batches {
        append(&mut log, tag, 3, 60, 1_000 + tag);
    }
    let all = read_all(&log, 0);
    drop(log);
    all
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, at)
        .unwrap();
}

#[test]
fn crash_without_close_recovers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let before = crashed_log(dir.path(), 150);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.log_end_offset(), 450);
}

#[test]
fn garbage_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let before = crashed_log(dir.path(), 150);
    let active = newest_log_file(dir.path());
    let end = valid_len(&active) as u64;
    write_at(&active, end, &[0xAB; 300]);
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(read_all(&log, 0), before);
    // Appends continue cleanly over the old garbage, and a second crash recovers them.
    append(&mut log, 999, 1, 5, 1);
    drop(log);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.log_end_offset(), 451);
    assert_eq!(read_all(&log, 450)[0].1, value(999, 0, 5));
}

#[test]
fn half_a_batch_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let before = crashed_log(dir.path(), 150);
    let active = newest_log_file(dir.path());
    let end = valid_len(&active) as u64;
    let mut b = batch(1, 3, 60, 1);
    isthmus_protocol::batch::set_base_offset(&mut b, 450).unwrap();
    write_at(&active, end, &b[..b.len() / 2]);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.log_end_offset(), 450);
    // A complete batch written but never acknowledged is kept (it is valid data).
    drop(log);
    write_at(&active, end, &b);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.log_end_offset(), 453);
}

#[test]
fn corrupt_batch_in_the_middle_of_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let before = crashed_log(dir.path(), 150);
    let active = newest_log_file(dir.path());
    let data = std::fs::read(&active).unwrap();
    let mut scan = isthmus_protocol::batch::ValidPrefix::new(&data, true);
    let infos: Vec<_> = scan.by_ref().collect();
    assert!(infos.len() >= 3);
    let victim = infos[infos.len() / 2];
    write_at(&active, victim.position as u64 + 70, &[0xFF]);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    let kept = victim.header.base_offset;
    assert_eq!(log.log_end_offset(), kept);
    assert_eq!(read_all(&log, 0), before[..kept as usize].to_vec());
}

#[test]
fn corrupt_and_missing_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..150 {
        append(&mut log, tag, 3, 60, 1_000 + tag);
    }
    let before = read_all(&log, 0);
    let ts = log.offset_for_timestamp(1_100);
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    // Damage indexes of sealed segments (below the recovery point).
    let idx = |b: i64, ext: &str| dir.path().join(format!("{b:020}.{ext}"));
    write_at(&idx(bases[1], "index"), 0, &[0x7F; 24]);
    std::fs::remove_file(idx(bases[2], "index")).unwrap();
    std::fs::remove_file(idx(bases[3], "timeindex")).unwrap();
    std::fs::write(idx(bases[4], "index"), b"garbage").unwrap();
    for clean in [true, false] {
        let log = Log::open(dir.path(), small_config(), clean).unwrap();
        assert_eq!(read_all(&log, 0), before);
        assert_eq!(log.offset_for_timestamp(1_100), ts);
        for off in [bases[1], bases[2] + 1, bases[3] + 2, bases[4]] {
            let r = log.read(off, 1, i64::MAX, true).unwrap();
            let h = headers(&r.records);
            assert!(h[0].base_offset <= off && off <= h[0].last_offset());
        }
        log.close().unwrap();
        assert!(idx(bases[2], "index").exists() && idx(bases[3], "timeindex").exists());
    }
}

#[test]
fn leftover_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    crashed_log(dir.path(), 5);
    for name in [
        "x.tmp",
        "00000000000000000000.log.deleted",
        "00000000000000000000.log.cleaned",
        "00000000000000000099.index",
    ] {
        std::fs::write(dir.path().join(name), b"junk").unwrap();
    }
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.log_end_offset(), 15);
    for name in [
        "x.tmp",
        "00000000000000000000.log.deleted",
        "00000000000000000000.log.cleaned",
        "00000000000000000099.index",
    ] {
        assert!(!dir.path().join(name).exists(), "{name}");
    }
}

#[test]
fn damaged_checkpoint_falls_back_to_full_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..50 {
        append(&mut log, tag, 3, 60, 1_000 + tag);
    }
    let before = read_all(&log, 0);
    log.close().unwrap();
    std::fs::write(dir.path().join(PARTITION_CHECKPOINT_FILE), b"nonsense").unwrap();
    std::fs::write(dir.path().join("leader-epoch-checkpoint"), b"0\n5\n").unwrap();
    let log = Log::open(dir.path(), small_config(), true).unwrap();
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.latest_epoch(), Some(0));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 150)));
}

#[test]
fn sealed_segment_with_lost_trim_is_recovered() {
    // A roll's trim that never reached disk: the sealed .log keeps its preallocated zeros.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..60 {
        append(&mut log, tag, 3, 60, 1_000 + tag);
    }
    let before = read_all(&log, 0);
    let first = dir.path().join(format!("{:020}.log", 0));
    drop(log);
    let f = OpenOptions::new().write(true).open(&first).unwrap();
    f.set_len(small_config().segment_bytes).unwrap();
    for clean in [false, true] {
        let log = Log::open(dir.path(), small_config(), clean).unwrap();
        assert_eq!(read_all(&log, 0), before);
        log.close().unwrap();
    }
}

/// Syncs everything appended so far, as the broker's flusher does.
fn sync_all(log: &mut Log) {
    let job = log.unflushed().expect("something to sync");
    job.sync().unwrap();
    log.mark_flushed(&job);
}

/// The recovery point in a partition checkpoint: magic (4), version (2), log start (8),
/// recovery point (8), CRC (4).
fn checkpointed_recovery_point(dir: &Path) -> i64 {
    let bytes = std::fs::read(dir.join(PARTITION_CHECKPOINT_FILE)).unwrap();
    i64::from_be_bytes(bytes[14..22].try_into().unwrap())
}

#[test]
fn a_checkpoint_written_late_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    append(&mut log, 0, 3, 60, 1_000);
    sync_all(&mut log);
    let stale = log.take_checkpoint().unwrap();
    append(&mut log, 1, 3, 60, 1_001);
    sync_all(&mut log);
    log.checkpoint().unwrap();
    assert_eq!(checkpointed_recovery_point(dir.path()), 6);
    // Taken first, written last (the periodic writer runs without the log's lock).
    stale.write().unwrap();
    assert_eq!(checkpointed_recovery_point(dir.path()), 6);
    // A pending one taken after the newest written does go out.
    append(&mut log, 2, 3, 60, 1_002);
    sync_all(&mut log);
    log.take_checkpoint().unwrap().write().unwrap();
    assert_eq!(checkpointed_recovery_point(dir.path()), 9);
}

#[test]
fn a_pending_checkpoint_is_not_written_into_a_deleted_logs_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let mut log = Log::open(&dir, small_config(), false).unwrap();
    append(&mut log, 0, 3, 60, 1_000);
    sync_all(&mut log);
    let pending = log.take_checkpoint().unwrap();
    log.delete().unwrap();
    // A topic of the same name created again gets the same directory.
    std::fs::create_dir_all(&dir).unwrap();
    pending.write().unwrap();
    assert!(!dir.join(PARTITION_CHECKPOINT_FILE).exists());
}
