//! Cluster metadata as this node knows it: topics with their ids, partition counts, configs
//! and leader epochs, dynamic broker configs, and the node's identity files.
//!
//! Single-node Isthmus keeps the image in a JSON file written atomically; the Raft metadata
//! quorum (a later issue) replaces the file with the replicated log and keeps [`Image`].

pub mod identity;
pub mod names;
pub mod store;

pub use store::{Image, MetadataStore, TopicRecord};
