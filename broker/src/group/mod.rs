//! Consumer groups (classic protocol): the coordinator state machine ([`coordinator`],
//! [`state`]) and committed offsets in `__consumer_offsets` ([`records`], [`log`]).

pub mod coordinator;
pub mod log;
pub mod records;
pub mod state;

pub use coordinator::{GroupConfig, GroupCoordinator, JoinArgs, Pending};
