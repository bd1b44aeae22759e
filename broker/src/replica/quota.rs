//! Replication quotas (Kafka's KIP-73): a byte rate for each direction of replication on
//! this broker, `leader.replication.throttled.rate` (what this broker sends to followers)
//! and `follower.replication.throttled.rate` (what its fetchers take in), applied only to
//! the partitions a topic's `*.replication.throttled.replicas` names for this broker.
//!
//! As in Kafka's `ReplicationQuotaManager`, the rate is measured over a sliding window of
//! [`WINDOW_SAMPLES`] samples of [`SAMPLE_MS`] (Kafka's `replication.quota.window.num` and
//! `replication.quota.window.size.seconds` defaults), and the quota is *exceeded* while the
//! measured rate is above the bound. Callers hold a throttled partition back while it is
//! exceeded (the leader answers it without records, the follower leaves it out of its next
//! fetch) and record the bytes that did go, so the average stays at the bound. Replicas in
//! the ISR are never held back (callers check), though their bytes count, as in Kafka, so
//! that all replication of throttled partitions stays under the bound.
//!
//! Everything here takes the time as an argument: no clock is read, so the tests drive it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;

/// Samples kept (Kafka's `replication.quota.window.num` default).
pub const WINDOW_SAMPLES: usize = 11;
/// Length of one sample (Kafka's `replication.quota.window.size.seconds` default, 1 s).
pub const SAMPLE_MS: i64 = 1_000;
/// The rate that means "not throttled" (the settings' default, Long.MAX_VALUE).
pub const UNTHROTTLED: i64 = i64::MAX;

/// One sample: the bytes recorded from `start_ms` for [`SAMPLE_MS`].
#[derive(Clone, Copy, Debug)]
struct Sample {
    start_ms: i64,
    bytes: u64,
}

/// Bytes per second over the last [`WINDOW_SAMPLES`] samples (Kafka's `Rate`).
#[derive(Debug, Default)]
pub struct ByteRate {
    /// Oldest first; at most [`WINDOW_SAMPLES`].
    samples: VecDeque<Sample>,
}

impl ByteRate {
    /// Adds `bytes` at `now_ms` to the current sample, starting a new one (and dropping
    /// the oldest) when the current one is over.
    pub fn record(&mut self, now_ms: i64, bytes: u64) {
        self.expire(now_ms);
        match self.samples.back_mut() {
            Some(s) if now_ms >= s.start_ms && now_ms < s.start_ms + SAMPLE_MS => {
                s.bytes = s.bytes.saturating_add(bytes);
            }
            _ => {
                if self.samples.len() == WINDOW_SAMPLES {
                    self.samples.pop_front();
                }
                self.samples.push_back(Sample {
                    start_ms: now_ms,
                    bytes,
                });
            }
        }
    }

    /// The measured rate at `now_ms` in bytes per second. As Kafka's `Rate`, the elapsed
    /// time counts at least `WINDOW_SAMPLES - 1` samples, so a first burst is averaged
    /// over the whole window rather than over the moment it took.
    pub fn rate(&self, now_ms: i64) -> f64 {
        let live = self.samples.iter().filter(|s| !Self::expired(s, now_ms));
        let (bytes, oldest) = live.fold((0u64, None::<i64>), |(b, o), s| {
            (
                b.saturating_add(s.bytes),
                Some(o.map_or(s.start_ms, |o| o.min(s.start_ms))),
            )
        });
        let elapsed_ms = oldest
            .map_or(0, |o| now_ms.saturating_sub(o))
            .max((WINDOW_SAMPLES as i64 - 1) * SAMPLE_MS);
        bytes as f64 * 1000.0 / elapsed_ms as f64
    }

    fn expired(s: &Sample, now_ms: i64) -> bool {
        now_ms.saturating_sub(s.start_ms) >= WINDOW_SAMPLES as i64 * SAMPLE_MS
    }

    fn expire(&mut self, now_ms: i64) {
        while self
            .samples
            .front()
            .is_some_and(|s| Self::expired(s, now_ms))
        {
            self.samples.pop_front();
        }
    }
}

/// One direction's quota: the bound (changed at run time with the dynamic setting) and the
/// measured rate. (The counters operators see are in [`super::stats`].)
#[derive(Debug)]
pub struct ReplicationQuota {
    /// Bytes per second; [`UNTHROTTLED`] = no limit, 0 = throttled partitions stop.
    bound: AtomicI64,
    rate: Mutex<ByteRate>,
}

impl Default for ReplicationQuota {
    fn default() -> Self {
        ReplicationQuota::new(UNTHROTTLED)
    }
}

impl ReplicationQuota {
    pub fn new(bound: i64) -> ReplicationQuota {
        ReplicationQuota {
            bound: AtomicI64::new(bound.max(0)),
            rate: Mutex::new(ByteRate::default()),
        }
    }

    /// Installs a new bound (bytes/s); takes effect at the next [`Self::is_exceeded`].
    /// Returns whether it changed.
    pub fn set_bound(&self, bound: i64) -> bool {
        self.bound.swap(bound.max(0), Ordering::AcqRel) != bound.max(0)
    }

    pub fn bound(&self) -> i64 {
        self.bound.load(Ordering::Acquire)
    }

    /// Whether throttled partitions should be held back at `now_ms`: never while
    /// unthrottled, always at a bound of 0, otherwise while the measured rate is above
    /// the bound.
    pub fn is_exceeded(&self, now_ms: i64) -> bool {
        match self.bound() {
            UNTHROTTLED => false,
            0 => true,
            bound => self.rate.lock().rate(now_ms) > bound as f64,
        }
    }

    /// Counts `bytes` of throttled partitions replicated at `now_ms`.
    pub fn record(&self, now_ms: i64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.rate.lock().record(now_ms, bytes);
    }

    /// The measured rate at `now_ms`, bytes per second.
    pub fn rate(&self, now_ms: i64) -> f64 {
        self.rate.lock().rate(now_ms)
    }
}

/// Both directions, as a broker keeps them.
#[derive(Debug, Default)]
pub struct ReplicationQuotas {
    /// `leader.replication.throttled.rate`: bytes this broker sends to followers.
    pub leader: ReplicationQuota,
    /// `follower.replication.throttled.rate`: bytes this broker's fetchers take in.
    pub follower: ReplicationQuota,
}

impl ReplicationQuotas {
    /// Takes the bounds from the broker's settings in force (static plus dynamic); logs
    /// a change.
    pub fn configure(&self, settings: &crate::config::Settings) {
        let rate = |name: &str| settings.i64(name).unwrap_or(UNTHROTTLED);
        let leader = rate("leader.replication.throttled.rate");
        let follower = rate("follower.replication.throttled.rate");
        let changed = self.leader.set_bound(leader) | self.follower.set_bound(follower);
        if changed {
            let show = |v: i64| {
                if v == UNTHROTTLED {
                    "unthrottled".to_string()
                } else {
                    format!("{v} B/s")
                }
            };
            tracing::info!(
                leader = %show(leader),
                follower = %show(follower),
                "replication throttle rates"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_burst_is_averaged_over_the_whole_window() {
        let mut r = ByteRate::default();
        assert_eq!(r.rate(0), 0.0);
        r.record(0, 10_000);
        // 10,000 bytes over at least 10 s.
        assert_eq!(r.rate(0), 1_000.0);
        assert_eq!(r.rate(5_000), 1_000.0);
        // 20 s on, the sample has left the window.
        assert_eq!(r.rate(20_000), 0.0);
    }

    #[test]
    fn the_window_slides() {
        let mut r = ByteRate::default();
        for s in 0..30 {
            r.record(s * SAMPLE_MS, 500);
        }
        // 11 samples of 500 bytes (the 11 s from 19 s to 29 s) over 10 s.
        assert_eq!(r.samples.len(), WINDOW_SAMPLES);
        assert_eq!(r.rate(29_000), 550.0);
        // Half a second later the oldest sample still counts, over a longer time.
        assert!((r.rate(29_500) - 5_500.0 / 10.5).abs() < 1e-9);
        // Within one sample bytes add up.
        let mut r = ByteRate::default();
        r.record(100, 1);
        r.record(900, 2);
        r.record(1_100, 4);
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.samples[0].bytes, 3);
    }

    #[test]
    fn unthrottled_and_zero_bounds() {
        let q = ReplicationQuota::default();
        q.record(0, u64::MAX / 2);
        assert!(!q.is_exceeded(0), "the default bound never throttles");
        let q = ReplicationQuota::new(0);
        assert!(q.is_exceeded(0), "a bound of 0 holds everything back");
        let q = ReplicationQuota::new(-5);
        assert_eq!(q.bound(), 0);
    }

    #[test]
    fn exceeded_above_the_bound_until_the_bytes_age_out() {
        let q = ReplicationQuota::new(1_000);
        assert!(!q.is_exceeded(0));
        q.record(0, 10_000);
        assert!(!q.is_exceeded(0), "exactly the bound is allowed");
        q.record(10, 1);
        assert!(q.is_exceeded(10));
        assert!(q.is_exceeded(10_000));
        // Time passing brings the rate down (10,001 bytes over 10.5 s), then the sample
        // leaves the window.
        assert!(!q.is_exceeded(10_500));
        assert_eq!(q.rate(11_000), 0.0);
        // Raising the bound takes effect at once.
        q.record(11_000, 50_000);
        assert!(q.is_exceeded(11_000));
        assert!(q.set_bound(10_000));
        assert!(!q.set_bound(10_000));
        assert!(!q.is_exceeded(11_000));
        assert!(q.set_bound(UNTHROTTLED));
        assert!(!q.is_exceeded(11_000));
    }

    /// A sender that holds back while the quota is exceeded and sends a fixed chunk
    /// otherwise averages the bound over a long run, as Kafka's does.
    #[test]
    fn a_throttled_sender_averages_the_bound() {
        let bound = 100_000;
        let q = ReplicationQuota::new(bound);
        let chunk = 16_384;
        let mut sent = 0u64;
        let run_ms = 120_000;
        let mut now = 0;
        while now < run_ms {
            if !q.is_exceeded(now) {
                q.record(now, chunk);
                sent += chunk;
            }
            now += 10;
        }
        let average = sent as f64 * 1000.0 / run_ms as f64;
        // At most one window's worth of burst plus one chunk above the bound; not far below.
        assert!(
            average <= bound as f64 * 1.1 && average >= bound as f64 * 0.9,
            "average {average} B/s for a bound of {bound}"
        );
    }
}
