//! Configuration: the settings table ([`defs`]), loading and validating a node's settings
//! ([`load`]), and resolving a topic's effective settings ([`topic`]).

pub mod defs;
pub mod load;
pub mod topic;

pub use load::{NodeConfig, Settings, Source};
