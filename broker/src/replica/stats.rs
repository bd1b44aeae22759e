//! Replication counters operators alert on (ISR shrinks and expands since start, bytes of
//! throttled replication and partitions held back by the replication quotas); the
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
    pub throttles: ThrottleCounters,
    /// The furthest-behind follower of any led partition.
    pub max_follower_lag_records: i64,
    pub max_follower_lag_ms: i64,
}

/// KIP-73 counters since start, per side: bytes of throttled partitions replicated
/// (recorded against the quota) and times a partition was held back because the quota was
/// exceeded (answered without records by this leader, left out of a fetch by this follower).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleCounters {
    pub leader_bytes: u64,
    pub follower_bytes: u64,
    pub leader_holds: u64,
    pub follower_holds: u64,
}

/// Which side of replication a throttle counter is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Leader,
    Follower,
}

#[derive(Debug, Default)]
pub struct ReplicationStats {
    isr_shrinks: AtomicU64,
    isr_expands: AtomicU64,
    follower_reads: AtomicU64,
    leader_throttled_bytes: AtomicU64,
    follower_throttled_bytes: AtomicU64,
    leader_throttle_holds: AtomicU64,
    follower_throttle_holds: AtomicU64,
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

    /// Bytes of throttled partitions replicated on `side`.
    pub fn record_throttled_bytes(&self, side: Side, bytes: u64) {
        let counter = match side {
            Side::Leader => &self.leader_throttled_bytes,
            Side::Follower => &self.follower_throttled_bytes,
        };
        counter.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `count` throttled partitions held back on `side` because its quota was exceeded.
    pub fn record_throttle_holds(&self, side: Side, count: u64) {
        let counter = match side {
            Side::Leader => &self.leader_throttle_holds,
            Side::Follower => &self.follower_throttle_holds,
        };
        counter.fetch_add(count, Ordering::Relaxed);
    }

    pub fn throttles(&self) -> ThrottleCounters {
        ThrottleCounters {
            leader_bytes: self.leader_throttled_bytes.load(Ordering::Relaxed),
            follower_bytes: self.follower_throttled_bytes.load(Ordering::Relaxed),
            leader_holds: self.leader_throttle_holds.load(Ordering::Relaxed),
            follower_holds: self.follower_throttle_holds.load(Ordering::Relaxed),
        }
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
            throttles: self.throttles(),
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
