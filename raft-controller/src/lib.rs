//! placeholder
pub mod config;
pub mod controller;
pub mod error;
pub mod image;
pub(crate) mod network;
pub mod placement;
pub mod records;
pub(crate) mod storage;
pub mod types;

pub use config::{format, is_formatted, parse_voters, ControllerConfig, Voter};
pub use controller::{Controller, QuorumStatus, VoterStatus};
pub use error::{ControllerError, RejectCode, Rejection};
pub use image::MetadataImage;
pub use types::{ApplyOutcome, NodeId, TypeConfig};
