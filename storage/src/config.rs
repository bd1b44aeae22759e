//! Per-topic log settings, named and defaulted as Kafka's topic configs.

use crate::error::StorageError;
pub use isthmus_protocol::batch::TimestampType;

/// Topic-level log configuration. Fields are public so the broker can build it from
/// `segment.bytes`, `retention.ms`, … and change it at runtime with [`crate::Log::set_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: Option<u64>,
    /// `retention.ms`: delete segments whose newest timestamp is older. `None` keeps forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest segments while the log is larger. `None`: no limit.
    pub retention_bytes: Option<i64>,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: u32,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: preallocated size of each index; a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `file.delete.delay.ms`: kept for config compatibility. Segments are unlinked at once
    /// because live memory maps keep unlinked files readable, so there is nothing to wait for.
    pub file_delete_delay_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY_MS: u64 = 24 * 60 * 60 * 1000;
        Self {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            retention_ms: Some(7 * DAY_MS as i64),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            message_timestamp_type: TimestampType::CreateTime,
            file_delete_delay_ms: 60_000,
        }
    }
}

/// Smallest `segment.bytes` accepted: one batch header.
pub const SEGMENT_BYTES_MIN: u64 = isthmus_protocol::batch::HEADER_SIZE as u64;
/// Largest `segment.bytes`: index positions are 32-bit, and Kafka's setting is an int.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest `segment.index.bytes`: room for one time-index entry (12 bytes).
pub const SEGMENT_INDEX_BYTES_MIN: u32 = 12;

impl LogConfig {
    /// Checks ranges, with messages an operator can act on.
    pub fn validate(&self) -> Result<(), StorageError> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(StorageError::InvalidConfig(format!(
                "segment.bytes {} must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}",
                self.segment_bytes
            )));
        }
        if self.segment_index_bytes < SEGMENT_INDEX_BYTES_MIN {
            return Err(StorageError::InvalidConfig(format!(
                "segment.index.bytes {} must be at least {SEGMENT_INDEX_BYTES_MIN}",
                self.segment_index_bytes
            )));
        }
        if self.max_message_bytes == 0 {
            return Err(StorageError::InvalidConfig(
                "max.message.bytes must be positive".into(),
            ));
        }
        if self.segment_ms == Some(0) {
            return Err(StorageError::InvalidConfig(
                "segment.ms must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Retention by time in force, if any (negative means forever, as in Kafka).
    pub(crate) fn retention_ms(&self) -> Option<i64> {
        self.retention_ms.filter(|ms| *ms >= 0)
    }

    pub(crate) fn retention_bytes(&self) -> Option<i64> {
        self.retention_bytes.filter(|b| *b >= 0)
    }
}
