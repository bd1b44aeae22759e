//! Cluster metadata as this node knows it, and the node's identity files.
//!
//! - [`quorum`]: the metadata quorum's directory (locate, format), the embedded controller,
//!   this broker's registration, and [`MetadataStore`] (read the view, propose changes).
//! - [`store`]: the broker's view of the controller's image ([`Image`]: topics by name
//!   with ids, partition states and configs; dynamic broker settings; brokers).
//! - [`legacy`]: one-time import of the single-node store (`image.json`) into the quorum.
//! - [`identity`]: `meta.properties` and log-dir locks. [`names`]: topic-name rules.

pub mod identity;
pub mod legacy;
pub mod names;
pub mod quorum;
pub mod store;

pub use quorum::MetadataStore;
pub use store::{Image, PartitionState, TopicRecord};
