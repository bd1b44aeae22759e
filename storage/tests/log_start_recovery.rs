//! The log start offset moved by DeleteRecords survives an unclean restart.

mod common;

use common::batch;
use isthmus_storage::{Log, LogConfig};

#[test]
fn delete_records_then_crash_keeps_log_start_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    for tag in 0..3 {
        log.append_as_leader(&batch(tag, 10, 20, 1_000 + tag), 0, 1)
            .unwrap();
    }
    assert_eq!(log.delete_records_before(10).unwrap(), 10);
    drop(log); // no close: an unclean stop
    let log = Log::open(dir.path(), LogConfig::default(), false).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(log.log_start_offset(), 10);
}
