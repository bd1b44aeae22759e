mod common;

use common::*;
use isthmus_protocol::batch::BatchHeader;
use isthmus_storage::{AppendOutcome, Log, LogConfig, StorageError};

#[test]
fn retention_by_time_deletes_old_segments_only_below_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(1_000),
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, false).unwrap();
    for tag in 0..60 {
        append(&mut log, tag, 3, 60, 10_000);
    }
    for tag in 60..120 {
        append(&mut log, tag, 3, 60, 50_000);
    }
    let segs = log.segment_count();
    // Nothing is old yet.
    assert_eq!(
        log.apply_retention(10_500, log.log_end_offset()).unwrap(),
        0
    );
    // High watermark below everything: nothing may go.
    assert_eq!(log.apply_retention(20_000, 0).unwrap(), 0);
    let deleted = log.apply_retention(20_000, log.log_end_offset()).unwrap();
    assert!(deleted > 0 && deleted < segs);
    let start = log.log_start_offset();
    assert!(start > 0 && start <= 180, "start {start}");
    assert!(matches!(
        log.read(0, 100, 1000, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, start).last().unwrap().0, 359);
    // Everything old, including the active segment: a fresh empty segment remains.
    let n = log.apply_retention(100_000, log.log_end_offset()).unwrap();
    assert!(n > 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (360, 360, 0)
    );
    append(&mut log, 7, 1, 5, 100_000);
    drop(log);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (360, 361));
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..200 {
        append(&mut log, tag, 3, 60, 1_000);
    }
    let total = log.size_bytes();
    let limit = (total / 3) as i64;
    let mut c = small_config();
    c.retention_bytes = Some(limit);
    log.set_config(c).unwrap();
    let deleted = log.apply_retention(0, i64::MAX).unwrap();
    assert!(deleted > 0);
    assert!(
        log.size_bytes() as i64 >= limit - 8 * 1024 && log.size_bytes() as i64 <= limit + 8 * 1024,
        "{} vs {limit}",
        log.size_bytes()
    );
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(
        read_all(&log, log.log_start_offset()).last().unwrap().0,
        599
    );
    assert_eq!(log.apply_retention(0, i64::MAX).unwrap(), 0);
}

#[test]
fn delete_records_before_moves_the_start_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..100 {
        append(&mut log, tag, 3, 60, 1_000);
    }
    let segs = log.segment_count();
    assert_eq!(log.delete_records_before(151).unwrap(), 151);
    assert!(log.segment_count() < segs);
    assert_eq!(log.log_start_offset(), 151);
    assert!(log.segment_base_offsets()[0] <= 151);
    assert!(matches!(
        log.read(150, 10, 300, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // The batch holding 151 starts at 150; it is returned whole.
    let r = log.read(151, 10, 300, true).unwrap();
    assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset, 150);
    assert_eq!(
        log.delete_records_before(10).unwrap(),
        151,
        "never moves back"
    );
    assert!(matches!(
        log.delete_records_before(301),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    drop(log); // crash: the start must survive
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.log_start_offset(), 151);
    assert_eq!(log.log_end_offset(), 300);
}

#[test]
fn truncate_to_removes_data_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..100 {
        append(&mut log, tag, 3, 60, 1_000 + tag);
    }
    let before = read_all(&log, 0);
    // A reader holds the tail that is about to be truncated.
    let held = log.read(270, 1 << 20, 300, true).unwrap().records;
    let held_copy = held.to_vec();
    // 152 is inside batch 150..152: the whole batch goes.
    log.truncate_to(152).unwrap();
    assert_eq!(log.log_end_offset(), 150);
    assert_eq!(read_all(&log, 0), before[..150].to_vec());
    for tag in 1000..1040 {
        append(&mut log, tag, 3, 60, 5_000);
    }
    assert_eq!(&held[..], &held_copy[..], "bytes handed out never change");
    let after = read_all(&log, 0);
    assert_eq!(after.len(), 270);
    assert_eq!(after[150].1, value(1000, 0, 60));
    // Crash, then clean close: the truncated data never comes back.
    drop(log);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(read_all(&log, 0), after);
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), true).unwrap();
    assert_eq!(read_all(&log, 0), after);
}

#[test]
fn truncate_to_segment_boundaries_and_below_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..100 {
        append(&mut log, tag, 3, 60, 1_000);
    }
    let bases = log.segment_base_offsets();
    log.truncate_to(bases[3]).unwrap();
    assert_eq!(log.log_end_offset(), bases[3]);
    assert_eq!(*log.segment_base_offsets().last().unwrap(), bases[3]);
    log.truncate_to(0).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (0, 0, 0)
    );
    append(&mut log, 5, 2, 10, 1);
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    append(&mut log, 6, 2, 10, 1);
    drop(log);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 502));
    assert_eq!(read_all(&log, 500)[0].1, value(6, 0, 10));
}

#[test]
fn idempotent_producer_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    append(&mut log, 0, 2, 10, 1); // offsets 0..1, no producer id
    let b = producer_batch(42, 0, 0, 3);
    assert!(matches!(
        log.append_as_leader(&b, 0, 1).unwrap(),
        AppendOutcome::Appended {
            base_offset: 2,
            last_offset: 4,
            ..
        }
    ));
    append(&mut log, 1, 1, 10, 1);
    // Retry of the same batch: answered with the original offsets, nothing written.
    let retry = producer_batch(42, 0, 0, 3);
    assert_eq!(
        log.append_as_leader(&retry, 0, 1).unwrap(),
        AppendOutcome::Duplicate {
            base_offset: 2,
            last_offset: 4
        }
    );
    assert_eq!(log.log_end_offset(), 6);
    // Gap in sequence.
    let gap = producer_batch(42, 0, 5, 1);
    assert!(matches!(
        log.append_as_leader(&gap, 0, 1),
        Err(StorageError::OutOfOrderSequence {
            producer_id: 42,
            ..
        })
    ));
    // Several batches of one producer in one call are checked in order.
    let two = [producer_batch(42, 0, 3, 2), producer_batch(42, 0, 5, 1)].concat();
    assert!(matches!(
        log.append_as_leader(&two, 0, 1).unwrap(),
        AppendOutcome::Appended {
            base_offset: 6,
            last_offset: 8,
            ..
        }
    ));
    let bad_two = [producer_batch(42, 0, 6, 1), producer_batch(42, 0, 9, 1)].concat();
    assert!(log.append_as_leader(&bad_two, 0, 1).is_err());
    assert_eq!(log.log_end_offset(), 9, "all or nothing");
    // New epoch must start at 0; old epoch is fenced afterwards.
    let e1 = producer_batch(42, 1, 7, 1);
    assert!(matches!(
        log.append_as_leader(&e1, 0, 1),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    let e1 = producer_batch(42, 1, 0, 1);
    log.append_as_leader(&e1, 0, 1).unwrap();
    let old = producer_batch(42, 0, 6, 1);
    assert!(matches!(
        log.append_as_leader(&old, 0, 1),
        Err(StorageError::InvalidProducerEpoch {
            epoch: 0,
            current_epoch: 1,
            ..
        })
    ));
    // Unknown producer: any sequence.
    let fresh = producer_batch(7, 3, 1234, 2);
    log.append_as_leader(&fresh, 0, 1).unwrap();
    let state = log.producer_state(42).unwrap().clone();
    assert_eq!(
        (state.epoch, state.last_seq(), state.last_offset()),
        (1, 0, 9)
    );

    // State survives a clean restart and a crash (snapshot + replay).
    log.close().unwrap();
    let mut log = Log::open(dir.path(), small_config(), true).unwrap();
    assert_eq!(log.producer_state(42), Some(&state));
    let retry = producer_batch(7, 3, 1234, 2);
    assert_eq!(
        log.append_as_leader(&retry, 0, 1).unwrap(),
        AppendOutcome::Duplicate {
            base_offset: 10,
            last_offset: 11
        }
    );
    let next = producer_batch(42, 1, 1, 1);
    log.append_as_leader(&next, 0, 1).unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.producer_state(42).unwrap().last_seq(), 1);
    let dup = producer_batch(42, 1, 1, 1);
    assert_eq!(
        log.append_as_leader(&dup, 0, 1).unwrap(),
        AppendOutcome::Duplicate {
            base_offset: 12,
            last_offset: 12
        }
    );

    // Truncation rolls producer state back with the log.
    log.truncate_to(12).unwrap();
    assert_eq!(log.producer_state(42).unwrap().last_seq(), 0);
    let again = producer_batch(42, 1, 1, 1);
    assert!(matches!(
        log.append_as_leader(&again, 0, 1).unwrap(),
        AppendOutcome::Appended {
            base_offset: 12,
            ..
        }
    ));
}

#[test]
fn producer_state_across_many_rolls_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for seq in 0..300 {
        let b = producer_batch(5, 0, seq * 2, 2);
        log.append_as_leader(&b, 0, 1).unwrap();
        append(&mut log, seq as i64, 1, 60, 1);
    }
    assert!(log.segment_count() > 5);
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.producer_state(5).unwrap().last_seq(), 599);
    // Once its data is gone the producer is unknown and accepted at any sequence.
    log.delete_records_before(log.log_end_offset()).unwrap();
    assert!(log.producer_state(5).is_none());
    let b = producer_batch(5, 0, 10_000, 1);
    log.append_as_leader(&b, 0, 1).unwrap();
}

#[test]
fn group_commit_flow() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    assert!(log.unflushed().is_none());
    for tag in 0..40 {
        append(&mut log, tag, 3, 60, 1);
    }
    assert_eq!(log.unflushed_messages(), 120);
    let job = log.unflushed().unwrap();
    assert_eq!(job.up_to, 120);
    append(&mut log, 99, 1, 5, 1); // arrives while the job syncs
    job.sync().unwrap();
    log.mark_flushed(&job);
    assert_eq!(log.recovery_point(), 120);
    assert_eq!(log.unflushed_messages(), 1);
    // A job taken before a truncation cannot advance the recovery point past it.
    let stale = log.unflushed().unwrap();
    log.truncate_to(60).unwrap();
    append(&mut log, 100, 3, 5, 1);
    stale.sync().unwrap();
    log.mark_flushed(&stale);
    assert_eq!(log.recovery_point(), 60);
    let job = log.unflushed().unwrap();
    job.sync().unwrap();
    log.mark_flushed(&job);
    assert_eq!(log.recovery_point(), 63);
    assert!(log.unflushed().is_none());
    log.checkpoint().unwrap();
}

#[test]
fn segment_ms_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: Some(1_000),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, false).unwrap();
    append(&mut log, 0, 1, 5, 10_000);
    append(&mut log, 1, 1, 5, 10_500);
    assert_eq!(log.segment_count(), 1);
    append(&mut log, 2, 1, 5, 11_001);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    log.roll(0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 3]);
    log.roll(0).unwrap();
    assert_eq!(
        log.segment_count(),
        3,
        "rolling an empty segment is a no-op"
    );
}

#[test]
fn oversized_batch_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, false).unwrap();
    append(&mut log, 0, 1, 100, 1);
    append(&mut log, 1, 3, 1_300, 1); // ~4 KiB: fits only in an empty segment
    append(&mut log, 2, 1, 100, 1);
    assert_eq!(log.segment_base_offsets(), vec![0, 1, 4]);
    let too_big = batch(3, 5, 1_000, 1);
    assert!(matches!(
        log.append_as_leader(&too_big, 0, 1),
        Err(StorageError::RecordListTooLarge { .. })
    ));
    assert_eq!(read_all(&log, 0).len(), 5);
}
