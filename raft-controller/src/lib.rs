//! placeholder doc
pub mod error;
pub mod image;
pub mod records;
pub(crate) mod storage;
pub mod types;

pub use error::{ControllerError, RejectCode, Rejection};
pub use types::{ApplyOutcome, NodeId, TypeConfig};
