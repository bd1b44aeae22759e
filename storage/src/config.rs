//! Per-topic log settings, named and defaulted as Kafka's topic configs.

use crate::error::StorageError;
pub use isthmus_protocol::batch::TimestampType;

/// `cleanup.policy`: what removes old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Retention by time and size (`delete`).
    #[default]
    Delete,
    /// Log compaction only: keep the latest record per key, never delete by age or size.
    Compact,
    /// Both (`compact,delete`): compaction plus retention by time and size.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether `retention.ms` / `retention.bytes` apply.
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }

    /// Whether the log is compacted (and so refuses records without a key).
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }
}

/// Topic-level log configuration. Fields are public so the broker can build it from
/// `segment.bytes`, `retention.ms`, … and change it at runtime with [`crate::Log::set_config`].
/// Not `Eq`: `min.cleanable.dirty.ratio` is a float, as in Kafka.
#[derive(Debug, Clone, PartialEq)]
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
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone outlives the cleaning that first kept it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted yet.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty data older than this is cleaned whatever the ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes exceed this share of the log.
    pub min_cleanable_dirty_ratio: f64,
    /// Memory for one cleaning pass's key → offset map (Kafka's broker-wide
    /// `log.cleaner.dedupe.buffer.size`). Counted as key bytes plus a fixed overhead per
    /// key; a dirty section with more keys is cleaned in several passes.
    pub cleaner_dedupe_buffer_bytes: u64,
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
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS as i64,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            cleaner_dedupe_buffer_bytes: 128 << 20,
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
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(StorageError::InvalidConfig(format!(
                "min.cleanable.dirty.ratio {} must be between 0 and 1",
                self.min_cleanable_dirty_ratio
            )));
        }
        if self.delete_retention_ms < 0
            || self.min_compaction_lag_ms < 0
            || self.max_compaction_lag_ms < 1
        {
            return Err(StorageError::InvalidConfig(
                "delete.retention.ms and min.compaction.lag.ms must be at least 0, max.compaction.lag.ms at least 1".into(),
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
