//! Replication counters operators alert on (ISR shrinks and expands since start); the
//! per-partition gauges (under-replicated, under-min-ISR, offline, follower lag) are
//! come with the metrics endpoint, computed from the partitions when asked.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ReplicationStats {
    isr_shrinks: AtomicU64,
    isr_expands: AtomicU64,
    follower_reads: AtomicU64,
}

impl ReplicationStats {
    pub fn record_shrink(&self) {
        self.isr_shrinks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_expand(&self) {
        self.isr_expands.fetch_add(1, Ordering::Relaxed);
    }

    /// A consumer fetch served by this broker as a follower (KIP-392).
    pub fn record_follower_read(&self) {
        self.follower_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn follower_reads(&self) -> u64 {
        self.follower_reads.load(Ordering::Relaxed)
    }

    pub fn isr_shrinks(&self) -> u64 {
        self.isr_shrinks.load(Ordering::Relaxed)
    }

    pub fn isr_expands(&self) -> u64 {
        self.isr_expands.load(Ordering::Relaxed)
    }
}
