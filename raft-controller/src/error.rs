//! [`ControllerError`], the crate's one error enum, and [`Rejection`], the reason a
//! metadata record was refused (a value that travels in Raft responses and RPCs).

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Everything that can go wrong in the controller.
///
/// Turned into Kafka error codes only at the broker's handler edge: [`Rejection::code`]
/// names the Kafka error each refusal maps to.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A configuration value a person has to fix (voter list, timeouts, ids).
    #[error("invalid controller configuration: {0}")]
    Config(String),

    /// `format` refuses a directory that already holds files.
    #[error(
        "metadata directory {} is not empty; refusing to format it (remove its contents \
         first if you really mean to wipe this controller's metadata)",
        path.display()
    )]
    DirectoryNotEmpty { path: PathBuf },

    /// `start` found no `meta.json`: the directory was never formatted.
    #[error(
        "metadata directory {} is not formatted (no meta.json); run format with the \
         cluster id, this node's id and the voter list first",
        path.display()
    )]
    NotFormatted { path: PathBuf },

    /// The configured voters differ from the ones the directory was formatted with.
    #[error(
        "configured controller.quorum.voters `{configured}` disagrees with the voters \
         `{stored}` stored in {}; refusing to start (a voter change needs a membership \
         change, not a config edit)",
        path.display()
    )]
    VoterMismatch {
        configured: String,
        stored: String,
        path: PathBuf,
    },

    /// The configured node id or cluster id differs from the formatted one.
    #[error("{what} mismatch: configured {configured}, stored {stored} in {}; refusing to start", path.display())]
    IdentityMismatch {
        what: &'static str,
        configured: String,
        stored: String,
        path: PathBuf,
    },

    /// An I/O failure on a named file.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file whose content fails its checks (CRC, decoding, sequence) where cutting it is
    /// not safe.
    #[error("corrupt metadata file {}: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// The records were refused by validation (on the leader before proposing, or when
    /// the committed entry was applied).
    #[error("metadata records rejected: {0}")]
    Rejected(Rejection),

    /// This node is not the leader and could not forward the request.
    #[error("not the active controller (leader hint: {leader:?} at {leader_addr:?})")]
    NotLeader {
        leader: Option<NodeId>,
        leader_addr: Option<String>,
    },

    /// An error reported by openraft.
    #[error("raft: {0}")]
    Raft(String),

    /// Controller RPC failure (connect, frame, peer error).
    #[error("controller RPC: {0}")]
    Network(String),

    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),

    /// The controller was shut down.
    #[error("the controller is shut down")]
    ShutDown,
}

impl ControllerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ControllerError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        ControllerError::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

impl From<Rejection> for ControllerError {
    fn from(r: Rejection) -> Self {
        ControllerError::Rejected(r)
    }
}

/// Adds the path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, ControllerError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, ControllerError> {
        self.map_err(|e| ControllerError::io(path, e))
    }
}

/// Why records were refused. Named after the Kafka error the broker should answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectCode {
    /// INVALID_REQUEST: malformed record (empty batch, bad field values, no-op change).
    InvalidRequest,
    /// UNSUPPORTED_VERSION: a record format version this node does not know.
    UnsupportedVersion,
    /// TOPIC_ALREADY_EXISTS.
    TopicAlreadyExists,
    /// INVALID_TOPIC_EXCEPTION: a name Kafka would refuse.
    InvalidTopicName,
    /// UNKNOWN_TOPIC_ID.
    UnknownTopicId,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    UnknownTopicOrPartition,
    /// INVALID_PARTITIONS.
    InvalidPartitions,
    /// INVALID_REPLICATION_FACTOR.
    InvalidReplicationFactor,
    /// INVALID_REPLICA_ASSIGNMENT.
    InvalidReplicaAssignment,
    /// BROKER_ID_NOT_REGISTERED.
    BrokerIdNotRegistered,
    /// DUPLICATE_BROKER_REGISTRATION.
    DuplicateBrokerRegistration,
    /// STALE_BROKER_EPOCH.
    StaleBrokerEpoch,
    /// INVALID_UPDATE_VERSION: the partition epoch the change expected is not current.
    InvalidUpdateVersion,
    /// INELIGIBLE_REPLICA / INVALID_REQUEST: leader not in the ISR.
    IneligibleReplica,
    /// INVALID_CONFIG.
    InvalidConfig,
}

/// A refused record: the Kafka-named code and a message a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Rejection {}
