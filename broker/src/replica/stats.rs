//! Replication counters operators alert on (ISR shrinks and expands since start); the
//! per-partition gauges (under-replicated, under-min-ISR, offline, follower lag) are
//! come with the metrics endpoint, computed from the partitions when asked.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Partition;

/// What operators alert on, for the partitions this broker leads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationSnapshot {
    pub led: usize,
    /// ISR smaller than the replica list.
    pub under_replicated: usize,
    /// ISR smaller than `min.insync.replicas`: acks=all writes are refused.
    pub under_min_isr: usize,
    /// Hosted here with no leader at all.
    pub offline: usize,
    pub isr_shrinks: u64,
    pub isr_expands: u64,
    pub follower_reads: u64,
    /// The furthest-behind follower of any led partition.
    pub max_follower_lag_records: i64,
    pub max_follower_lag_ms: i64,
}

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

    /// The gauges over `partitions` (this broker's) plus the counters.
    pub fn snapshot(
        &self,
        partitions: &[std::sync::Arc<Partition>],
        now_ms: i64,
    ) -> ReplicationSnapshot {
        let mut s = ReplicationSnapshot {
            isr_shrinks: self.isr_shrinks(),
            isr_expands: self.isr_expands(),
            follower_reads: self.follower_reads(),
            ..Default::default()
        };
        for p in partitions {
            match p.leader_health(now_ms) {
                Some((isr, replicas, lag_records, lag_ms)) => {
                    s.led += 1;
                    s.under_replicated += usize::from(isr < replicas);
                    let min_isr = p.settings().min_insync_replicas.max(1) as usize;
                    s.under_min_isr += usize::from(isr < min_isr);
                    s.max_follower_lag_records = s.max_follower_lag_records.max(lag_records);
                    s.max_follower_lag_ms = s.max_follower_lag_ms.max(lag_ms);
                }
                None => s.offline += usize::from(p.is_leaderless()),
            }
        }
        s
    }

    pub fn isr_shrinks(&self) -> u64 {
        self.isr_shrinks.load(Ordering::Relaxed)
    }

    pub fn isr_expands(&self) -> u64 {
        self.isr_expands.load(Ordering::Relaxed)
    }
}
