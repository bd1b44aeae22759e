//! The openraft type configuration and the small types shared by every part.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::records::MetadataProposal;

/// A controller's node id (`node.id`). Kafka ids are `i32`; configs are checked to fit.
pub type NodeId = u64;

/// A voter's address as openraft stores it in the membership (`host:port`).
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// openraft's type configuration for the metadata quorum.
    pub TypeConfig:
        D = MetadataProposal,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// What applying one committed log entry produced: its revision, and the rejection
/// when its records could not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub revision: u64,
    pub rejection: Option<Rejection>,
}
