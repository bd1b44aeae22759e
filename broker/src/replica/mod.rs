//! Replicas on this node: each partition's log with its high watermark and group commit
//! ([`partition`]), and the set of them reconciled with the metadata image ([`manager`]).

pub mod fetcher;
pub mod hw_checkpoint;
pub mod manager;
pub mod partition;
pub mod peer;
pub mod quota;
pub mod replication;
pub mod stats;
pub mod sync_pool;

pub use manager::ReplicaManager;
pub use partition::Partition;
