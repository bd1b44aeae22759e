//! Consumer groups: the coordinator ([`coordinator`]) for the classic protocol ([`state`])
//! and the consumer protocol of KIP-848 ([`consumer`], with server-side [`assignor`]s), and
//! committed offsets in `__consumer_offsets` ([`records`], [`log`]).

pub mod assignor;
pub mod consumer;
pub mod coordinator;
pub mod log;
pub mod records;
pub mod state;

pub use coordinator::{GroupConfig, GroupCoordinator, JoinArgs, Pending};
