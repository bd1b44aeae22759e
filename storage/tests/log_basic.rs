mod common;

use common::*;
use isthmus_protocol::batch::{self, BatchBuilder, BatchHeader, TimestampType};
use isthmus_storage::{AppendOutcome, Log, LogConfig, StorageError};

#[test]
fn append_read_round_trip_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    let mut expected = Vec::new();
    for tag in 0..300i64 {
        let n = 1 + (tag % 5) as usize;
        let len = 10 + (tag * 37 % 200) as usize;
        let (base, last) = append(&mut log, tag, n, len, 1_000 + tag);
        assert_eq!(last - base + 1, n as i64);
        for i in 0..n {
            expected.push((base + i as i64, value(tag, i, len)));
        }
    }
    assert!(
        log.segment_count() > 10,
        "segments: {}",
        log.segment_count()
    );
    assert_eq!(log.log_end_offset(), expected.len() as i64);
    assert_eq!(read_all(&log, 0), expected);
    // Every offset: the first batch returned contains it.
    for (offset, v) in expected.iter().step_by(7) {
        let r = log.read(*offset, 1, i64::MAX, true).unwrap();
        let h = headers(&r.records);
        assert_eq!(h.len(), 1);
        assert!(h[0].base_offset <= *offset && *offset <= h[0].last_offset());
        let rec = batch::records(&r.records)
            .unwrap()
            .map(Result::unwrap)
            .find(|rec| h[0].base_offset + i64::from(rec.offset_delta) == *offset)
            .unwrap();
        assert_eq!(rec.value.unwrap(), &v[..]);
    }
    // Reads from the middle.
    assert_eq!(read_all(&log, 500), expected[500..].to_vec());
}

#[test]
fn read_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    for tag in 0..10 {
        append(&mut log, tag, 2, 100, 1);
    }
    // max_bytes smaller than a batch: one batch with min_one_batch, none without.
    let r = log.read(0, 10, 20, true).unwrap();
    assert_eq!(headers(&r.records).len(), 1);
    assert_eq!(r.next_offset, 2);
    assert!(log.read(0, 10, 20, false).unwrap().records.is_empty());
    // Upper bound (high watermark) stops before the batch reaching it.
    let r = log.read(3, 1 << 20, 6, true).unwrap();
    let h = headers(&r.records);
    assert_eq!((h[0].base_offset, h.last().unwrap().last_offset()), (2, 5));
    assert_eq!(r.next_offset, 6);
    assert!(log.read(6, 1 << 20, 6, true).unwrap().records.is_empty());
    // Exactly max_bytes worth of two batches.
    let one = log.read(0, 1, 20, true).unwrap().records.len();
    assert_eq!(
        headers(&log.read(0, 2 * one, 20, true).unwrap().records).len(),
        2
    );
    assert_eq!(
        headers(&log.read(0, 2 * one - 1, 20, true).unwrap().records).len(),
        1
    );
    // Log end is readable (empty), past it is out of range.
    assert!(log.read(20, 100, 20, true).unwrap().records.is_empty());
    assert!(matches!(
        log.read(21, 100, 30, true),
        Err(StorageError::OffsetOutOfRange {
            offset: 21,
            log_start: 0,
            log_end: 20
        })
    ));
}

#[test]
fn reopen_after_close_is_clean_and_equal() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..120 {
        let b = batch(tag, 3, 90, 5_000 + tag);
        log.append_as_leader(&b, (tag / 40) as i32, 0).unwrap();
    }
    let p = producer_batch(77, 2, 0, 4);
    log.append_as_leader(&p, 2, 0).unwrap();
    let before = read_all(&log, 0);
    let (end, size, segs, epochs) = (
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_base_offsets(),
        log.epoch_entries().to_vec(),
    );
    let ts = log.offset_for_timestamp(5_050);
    let producer = log.producer_state(77).cloned();
    log.close().unwrap();
    // Files are trimmed on close.
    let active = newest_log_file(dir.path());
    assert_eq!(
        std::fs::metadata(&active).unwrap().len() as usize,
        valid_len(&active)
    );

    let log = Log::open(dir.path(), small_config(), true).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.recovery_point(), end);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.segment_base_offsets(), segs);
    assert_eq!(log.epoch_entries(), &epochs[..]);
    assert_eq!(log.offset_for_timestamp(5_050), ts);
    assert_eq!(log.producer_state(77).cloned(), producer);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(
        epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}

#[test]
fn continues_appending_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    for tag in 0..30 {
        append(&mut log, tag, 2, 50, 10);
    }
    log.close().unwrap();
    let mut log = Log::open(dir.path(), small_config(), true).unwrap();
    for tag in 30..60 {
        append(&mut log, tag, 2, 50, 10);
    }
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 120);
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
    assert_eq!(all[119].1, value(59, 1, 50));
}

#[test]
fn invalid_input_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            max_message_bytes: 2_000,
            ..LogConfig::default()
        },
        false,
    )
    .unwrap();
    append(&mut log, 0, 1, 10, 1);
    let good = batch(1, 2, 10, 1);
    // Second batch corrupt: nothing from the call is appended.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let both = [good.clone(), bad].concat();
    assert!(matches!(
        log.append_as_leader(&both, 0, 1),
        Err(StorageError::CorruptMessage(_))
    ));
    let truncated = good[..good.len() - 4].to_vec();
    assert!(matches!(
        log.append_as_leader(&truncated, 0, 1),
        Err(StorageError::CorruptMessage(_))
    ));
    let mut old = good.clone();
    old[16] = 1;
    assert!(matches!(
        log.append_as_leader(&old, 0, 1),
        Err(StorageError::UnsupportedMessageFormat { magic: 1 })
    ));
    let big = batch(2, 3, 1_000, 1);
    assert!(matches!(
        log.append_as_leader(&big, 0, 1),
        Err(StorageError::MessageTooLarge { max: 2_000, .. })
    ));
    let control = BatchBuilder::new(0)
        .control(true)
        .record(1, None, None, &[])
        .build();
    assert!(matches!(
        log.append_as_leader(&control, 0, 1),
        Err(StorageError::InvalidRecord(_))
    ));
    assert!(matches!(
        log.append_as_leader(&[], 0, 1),
        Err(StorageError::InvalidRecord(_))
    ));
    // A record whose offset delta is wrong (CRC fixed up): invalid record.
    let mut bad_rec = good.clone();
    bad_rec[61 + 1 + 1 + 1] = 8; // first record's offsetDelta (after length, attributes, ts delta)
    let crc = batch::compute_crc(&bad_rec);
    bad_rec[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        log.append_as_leader(&bad_rec, 0, 1),
        Err(StorageError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(read_all(&log, 0).len(), 1);
    // And the good batch still goes in afterwards.
    let g = good;
    assert!(matches!(
        log.append_as_leader(&g, 0, 1).unwrap(),
        AppendOutcome::Appended {
            base_offset: 1,
            last_offset: 2,
            ..
        }
    ));
}

#[test]
fn several_batches_in_one_call_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    let req = [batch(0, 3, 10, 1), batch(1, 2, 10, 1), batch(2, 1, 10, 1)].concat();
    let out = log.append_as_leader(&req, 4, 1).unwrap();
    assert!(matches!(
        out,
        AppendOutcome::Appended {
            base_offset: 0,
            last_offset: 5,
            log_append_time_ms: -1,
            log_start_offset: 0
        }
    ));
    // The request's bytes are not touched; the stored copies carry the assigned offsets
    // and the leader epoch, with the bodies unchanged and the CRCs still valid.
    assert!(headers(&req).iter().all(|h| h.base_offset == 0));
    let r = log.read(0, 1 << 20, 100, true).unwrap();
    let h = headers(&r.records);
    assert_eq!(
        h.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 3, 5]
    );
    assert!(h.iter().all(|h| h.partition_leader_epoch == 4));
    assert_eq!(r.records.len(), req.len());
    assert!(isthmus_protocol::batch::check_untrusted(&r.records));
    let mut at = 0;
    for hdr in &h {
        let end = at + hdr.size();
        let body = isthmus_protocol::batch::HEADER_SIZE;
        assert_eq!(&r.records[at + body..end], &req[at + body..end]);
        at = end;
    }
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, false).unwrap();
    let b = batch(0, 3, 10, 100);
    let out = log.append_as_leader(&b, 0, 777_000).unwrap();
    assert!(matches!(
        out,
        AppendOutcome::Appended {
            log_append_time_ms: 777_000,
            ..
        }
    ));
    let r = log.read(0, 1 << 20, 10, true).unwrap();
    let h = BatchHeader::parse(&r.records).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, 777_000);
    assert_eq!(batch::compute_crc(&r.records), h.crc);
    assert_eq!(log.offset_for_timestamp(500_000), Some((0, 777_000)));
    assert_eq!(log.max_timestamp(), Some((0, 777_000)));
}

#[test]
fn create_time_max_timestamp_is_corrected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    let mut b = batch(0, 3, 10, 100);
    // Producer lied about maxTimestamp (CRC fixed up).
    b[35..43].copy_from_slice(&5i64.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append_as_leader(&b, 0, 1).unwrap();
    let r = log.read(0, 1 << 20, 10, true).unwrap();
    assert_eq!(BatchHeader::parse(&r.records).unwrap().max_timestamp, 102);
    assert_eq!(
        batch::compute_crc(&r.records),
        BatchHeader::parse(&r.records).unwrap().crc
    );
}

#[test]
fn offset_for_timestamp_walks_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    // Batch t has records with timestamps 10_000 + 10*t + i, i in 0..5.
    for t in 0..200i64 {
        let b = batch(t, 5, 40, 10_000 + 10 * t);
        log.append_as_leader(&b, 0, 0).unwrap();
    }
    assert!(log.segment_count() > 5);
    assert_eq!(log.offset_for_timestamp(0), Some((0, 10_000)));
    assert_eq!(
        log.offset_for_timestamp(10_000 + 10 * 77 + 3),
        Some((77 * 5 + 3, 10_773))
    );
    // Between batches (timestamps 10_774 .. 10_779 absent): first record of the next.
    assert_eq!(log.offset_for_timestamp(10_776), Some((78 * 5, 10_780)));
    assert_eq!(
        log.offset_for_timestamp(10_000 + 10 * 199 + 4),
        Some((999, 11_994))
    );
    assert_eq!(log.offset_for_timestamp(20_000), None);
    assert_eq!(log.max_timestamp(), Some((999, 11_994)));
}

#[test]
fn max_timestamp_finds_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    let b = BatchBuilder::new(0)
        .record(50, None, Some(b"a"), &[])
        .record(900, None, Some(b"b"), &[])
        .record(70, None, Some(b"c"), &[])
        .build();
    log.append_as_leader(&b, 0, 0).unwrap();
    append(&mut log, 1, 2, 5, 100);
    assert_eq!(log.max_timestamp(), Some((1, 900)));
    // Non-monotonic timestamps: 60 is first reached by offset 1 (900 >= 60).
    assert_eq!(log.offset_for_timestamp(60), Some((1, 900)));
}

#[test]
fn epoch_cache_follows_appends_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(0), None);
    for (epoch, n) in [(1, 10), (3, 10), (5, 10)] {
        for _ in 0..n {
            let b = batch(0, 1, 10, 1);
            log.append_as_leader(&b, epoch, 0).unwrap();
        }
    }
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 30)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 20)));
    assert_eq!(log.end_offset_for_epoch(4), Some((3, 20)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(6), None);
    log.truncate_to(15).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 15)));
    drop(log);
    let log = Log::open(dir.path(), small_config(), false).unwrap();
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 15)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 10)));
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\n1 0\n3 10\n");
}

#[test]
fn follower_append_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), false).unwrap();
    let b = BatchBuilder::new(0)
        .partition_leader_epoch(2)
        .record(1, None, Some(b"a"), &[])
        .record(2, None, Some(b"b"), &[])
        .build();
    log.append_as_follower(&b).unwrap();
    // A gap (compacted leader) is fine; going backwards is not.
    let c = BatchBuilder::new(10)
        .partition_leader_epoch(4)
        .record(3, None, Some(b"c"), &[])
        .build();
    assert!(matches!(
        log.append_as_follower(&c).unwrap(),
        AppendOutcome::Appended {
            base_offset: 10,
            last_offset: 10,
            ..
        }
    ));
    let d = BatchBuilder::new(5)
        .record(3, None, Some(b"d"), &[])
        .build();
    assert!(matches!(
        log.append_as_follower(&d),
        Err(StorageError::UnexpectedAppendOffset {
            offset: 5,
            expected_at_least: 11
        })
    ));
    assert_eq!(log.log_end_offset(), 11);
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 10)));
    let got = read_all(&log, 0);
    assert_eq!(
        got.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![0, 1, 10]
    );
    // Offset in the gap reads from the next batch.
    let r = log.read(5, 1 << 20, 11, true).unwrap();
    assert_eq!(headers(&r.records)[0].base_offset, 10);
}

#[test]
fn delete_removes_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("topic-0");
    let mut log = Log::open(&dir, small_config(), false).unwrap();
    append(&mut log, 0, 3, 10, 1);
    let held = log.read(0, 1 << 20, 3, true).unwrap().records;
    log.delete().unwrap();
    assert!(!dir.exists());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    // A slice handed out before stays readable.
    assert_eq!(headers(&held)[0].records_count, 3);
}

#[test]
fn config_validation() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Log::open(
            dir.path(),
            LogConfig {
                segment_bytes: 10,
                ..LogConfig::default()
            },
            false
        ),
        Err(StorageError::InvalidConfig(_))
    ));
    assert!(matches!(
        Log::open(
            dir.path(),
            LogConfig {
                segment_bytes: 1 << 40,
                ..LogConfig::default()
            },
            false
        ),
        Err(StorageError::InvalidConfig(_))
    ));
}
