//! The broker crate's one error type. Handlers turn it into Kafka error codes at the edge.

use std::path::Path;

use isthmus_controller::{ControllerError, RejectCode};
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
    /// The metadata quorum refused or could not take a change.
    #[error("{0}")]
    Controller(#[from] ControllerError),
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
            BrokerError::Controller(e) => controller_error_code(e),
        }
    }
}

/// Controller refusals and failures as Kafka reports them to admin clients.
pub fn controller_error_code(e: &ControllerError) -> ResponseError {
    match e {
        ControllerError::Rejected(r) => match r.code {
            RejectCode::InvalidRequest => ResponseError::InvalidRequest,
            RejectCode::UnsupportedVersion => ResponseError::UnsupportedVersion,
            RejectCode::TopicAlreadyExists => ResponseError::TopicAlreadyExists,
            RejectCode::InvalidTopicName => ResponseError::InvalidTopicException,
            RejectCode::UnknownTopicId => ResponseError::UnknownTopicId,
            RejectCode::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            RejectCode::InvalidPartitions => ResponseError::InvalidPartitions,
            RejectCode::InvalidReplicationFactor => ResponseError::InvalidReplicationFactor,
            RejectCode::InvalidReplicaAssignment => ResponseError::InvalidReplicaAssignment,
            RejectCode::BrokerIdNotRegistered => ResponseError::BrokerIdNotRegistered,
            RejectCode::DuplicateBrokerRegistration => ResponseError::DuplicateBrokerRegistration,
            RejectCode::StaleBrokerEpoch => ResponseError::StaleBrokerEpoch,
            RejectCode::InvalidUpdateVersion => ResponseError::InvalidUpdateVersion,
            RejectCode::IneligibleReplica => ResponseError::IneligibleReplica,
            RejectCode::InvalidConfig => ResponseError::InvalidConfig,
        },
        // Retriable: clients look the controller up again and retry.
        ControllerError::NotLeader { .. } | ControllerError::ShutDown => {
            ResponseError::NotController
        }
        ControllerError::Timeout(_) => ResponseError::RequestTimedOut,
        _ => ResponseError::UnknownServerError,
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
