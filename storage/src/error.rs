//! The storage crate's one error type. The broker maps it to Kafka error codes; no codes
//! live here.

use std::io;
use std::path::PathBuf;

use isthmus_protocol::error::ProtocolError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    /// Bad CRC, size or structure: the bytes were damaged (Kafka: CORRUPT_MESSAGE).
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// Magic 0 or 1 (Kafka: UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("unsupported message format v{magic}; only v2 record batches are accepted")]
    UnsupportedMessageFormat { magic: i8 },
    /// One batch is larger than `max.message.bytes` (Kafka: MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },
    /// One append is larger than a segment (Kafka: RECORD_LIST_TOO_LARGE).
    #[error("append of {size} bytes exceeds segment.bytes {segment_bytes}")]
    RecordListTooLarge { size: usize, segment_bytes: u64 },
    /// Well-formed bytes that break a rule (Kafka: INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("out of order sequence for producer {producer_id}: {reason}")]
    OutOfOrderSequence { producer_id: i64, reason: String },
    #[error(
        "producer {producer_id} epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("offset {offset} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// Follower append whose offsets do not continue the log (Kafka's
    /// UnexpectedAppendOffsetException).
    #[error("append at offset {offset} does not follow the log end {expected_at_least}")]
    UnexpectedAppendOffset { offset: i64, expected_at_least: i64 },
    #[error("I/O error{}: {source}", path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default())]
    Io {
        path: Option<PathBuf>,
        #[source]
        source: io::Error,
    },
    /// On-disk state that cannot be trusted or repaired automatically.
    #[error("corrupt log: {0}")]
    CorruptLog(String),
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
}

impl From<io::Error> for StorageError {
    fn from(source: io::Error) -> Self {
        Self::Io { path: None, source }
    }
}

impl From<ProtocolError> for StorageError {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::UnsupportedMagic { magic, .. } => {
                Self::UnsupportedMessageFormat { magic }
            }
            ProtocolError::InvalidBatch { .. }
            | ProtocolError::InvalidRecord { .. }
            | ProtocolError::UnknownCompression { .. } => Self::InvalidRecord(e.to_string()),
            other => Self::CorruptMessage(other.to_string()),
        }
    }
}

/// Adds the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Io {
            path: Some(path.to_path_buf()),
            source,
        })
    }
}
