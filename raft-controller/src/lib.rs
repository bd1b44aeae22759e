//! The metadata quorum of Isthmus: metadata records, the [`MetadataImage`] they build,
//! and its replication between controller voters by Raft ([openraft] 0.9.25, see
//! README.md for why not 0.10) over TCP, with a durable Raft log, vote and snapshots.
//!
//! # Parts
//! - [`records`]: [`records::MetadataProposal`] (one Raft entry: a format version and
//!   records applied all-or-nothing) and [`records::MetadataRecord`].
//! - [`image`]: [`MetadataImage`]; pure, deterministic `apply` and the leader's
//!   `validate`; revision = Raft log index.
//! - [`placement`]: rack-aware replica placement and explicit-assignment validation.
//! - [`leadership`]: the records for fencing, unfencing, controlled shutdown, preferred
//!   and unclean leader elections, and AlterPartition checks (KRaft's rules).
//! - `storage/log.rs`: the Raft log store (segments of `len | crc32c | entry` frames, a
//!   writer thread that fsyncs before acknowledging, torn-tail cut on open) and the
//!   vote / committed / purged state file (atomic replace).
//! - `storage/state_machine.rs`: the image in memory and snapshot files on disk.
//! - `network/`: controller RPC frames, the openraft network client and the server.
//! - [`config`]: [`ControllerConfig`], [`Voter`] (`controller.quorum.voters`),
//!   [`format()`].
//! - [`controller`]: [`Controller`], the handle the broker uses.
//! - [`error`]: [`ControllerError`], the crate's one error enum; [`Rejection`].
//!
//! # API
//! ```text
//! format(dir, cluster_id, node_id, &voters) -> Result<()>      // refuses a non-empty dir
//! Controller::start(ControllerConfig) -> Result<Controller>    // refuses other voters
//! controller.propose(records) -> Result<revision>             // validated; forwarded; NotLeader
//! controller.image() -> Arc<MetadataImage>;  controller.subscribe() -> watch::Receiver<_>
//! controller.leader() / is_leader() / quorum_status() / shutdown()
//! place_replicas(&brokers, partitions, rf, start) -> Result<Vec<Vec<i32>>>
//! fence_broker / unfence_broker / begin_controlled_shutdown(&image, id) -> Vec<MetadataRecord>
//! elect_preferred / elect_unclean(&image, Option<&[(topic_id, p)]>) -> Elections
//! alter_partition(&image, &AlterPartitionRequest) -> Result<AlterPartitionOutcome, _>
//! ```
//!
//! On-disk format, durability contract and what is not done yet: README.md.
//!
//! [openraft]: https://docs.rs/openraft/0.9.25
pub mod brokers;
pub mod client;
pub mod config;
pub mod controller;
pub mod error;
pub mod image;
pub mod leadership;
pub(crate) mod network;
pub mod placement;
pub mod reassignment;
pub mod records;
pub(crate) mod storage;
#[cfg(test)]
mod test_support;
pub mod types;

pub use client::{ControllerClient, PulledMetadata};
pub use config::{format, is_formatted, parse_voters, ControllerConfig, Voter};
pub use controller::{Controller, ObserverStatus, QuorumStatus, VoterStatus};
pub use error::{ControllerError, RejectCode, Rejection};
pub use image::MetadataImage;
pub use network::server::KafkaConnHandler;
pub use network::{MetadataDelta, RPC_MAGIC};
pub use types::{ApplyOutcome, NodeId, TypeConfig};
