//! Cluster metadata as this node knows it, and the node's identity files.
//!
//! - [`quorum`]: the metadata quorum's directory (locate, format) and this node's
//!   controller.
//! - [`link`]: [`MetadataStore`], the broker's link to the quorum: pulling the image,
//!   registration and heartbeats, proposing changes, controlled shutdown.
//! - [`store`]: the broker's view of the controller's image ([`Image`]: topics by name
//!   with ids, partition states and configs; dynamic broker settings; brokers).
//! - [`legacy`]: one-time import of the single-node store (`image.json`) into the quorum.
//! - [`identity`]: `meta.properties` and log-dir locks. [`names`]: topic-name rules.

pub mod identity;
pub mod legacy;
pub mod link;
pub mod names;
pub mod quorum;
pub mod store;

pub use link::MetadataStore;
pub use store::{Image, PartitionState, TopicRecord};
