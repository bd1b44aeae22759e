//! The broker crate's one error type. Handlers turn it into Kafka error codes at the edge.

use std::path::Path;

use isthmus_storage::StorageError;
use kafka_protocol::error::ResponseError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A condition the operator must fix before the node can run.
    #[error("{0}")]
    Fatal(String),
    /// A request refused with a specific Kafka error and a message for the client.
    #[error("{message}")]
    Kafka {
        error: ResponseError,
        message: String,
    },
}

impl BrokerError {
    pub fn io(path: &Path, source: std::io::Error) -> BrokerError {
        BrokerError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub fn kafka(error: ResponseError, message: impl Into<String>) -> BrokerError {
        BrokerError::Kafka {
            error,
            message: message.into(),
        }
    }

    /// The Kafka error code a client should see.
    pub fn response_error(&self) -> ResponseError {
        match self {
            BrokerError::Storage(e) => storage_error_code(e),
            BrokerError::Io { .. } => ResponseError::KafkaStorageError,
            BrokerError::Fatal(_) => ResponseError::UnknownServerError,
            BrokerError::Kafka { error, .. } => *error,
        }
    }
}

/// Storage failures as Kafka reports them to producers and consumers.
pub fn storage_error_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::CorruptMessage(..) => ResponseError::CorruptMessage,
        StorageError::UnsupportedMessageFormat { .. } => ResponseError::UnsupportedForMessageFormat,
        StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::RecordListTooLarge { .. } => ResponseError::RecordListTooLarge,
        StorageError::InvalidRecord(..) => ResponseError::InvalidRecord,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        _ => ResponseError::KafkaStorageError,
    }
}
