//! Periodic work: retention by time and size, and recovery-point checkpoints (so a restart
//! after a crash rescans only what was written since the last one), group timeouts,
//! expiry of committed offsets and log compaction.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{now_ms, Broker};
use crate::replica::stats::ThrottleCounters;

/// How often group join phases and sessions are checked: the resolution of every group timeout.
pub const GROUP_TICK_MS: u64 = 100;

/// How often the replication gauges are looked at (and logged when they change).
const HEALTH_CHECK_MS: u64 = 10_000;

/// What the last replication health check saw.
#[derive(Default)]
struct HealthSeen {
    /// Under-replicated, under-min-ISR, offline.
    counts: (usize, usize, usize),
    throttles: ThrottleCounters,
}

/// Logs the replication gauges when under-replicated, under-min-ISR or offline counts
/// change, and the replication throttle counters when the quotas held partitions back
/// since the last check (until a metrics endpoint exposes them).
fn log_replication_health(broker: &Broker, last: &mut HealthSeen) {
    let s = broker
        .replication_stats
        .snapshot(&broker.replicas.all_partitions(), now_ms());
    let now = (s.under_replicated, s.under_min_isr, s.offline);
    let t = s.throttles;
    if now != last.counts {
        if now == (0, 0, 0) {
            tracing::info!(
                led = s.led,
                isr_shrinks = s.isr_shrinks,
                isr_expands = s.isr_expands,
                "every partition this broker leads is fully replicated again"
            );
        } else {
            tracing::warn!(
                led = s.led,
                under_replicated = s.under_replicated,
                under_min_isr = s.under_min_isr,
                offline = s.offline,
                max_follower_lag_records = s.max_follower_lag_records,
                max_follower_lag_ms = s.max_follower_lag_ms,
                isr_shrinks = s.isr_shrinks,
                isr_expands = s.isr_expands,
                leader_throttled_bytes = t.leader_bytes,
                follower_throttled_bytes = t.follower_bytes,
                "replication health changed"
            );
        }
    }
    let seen = last.throttles;
    if t.leader_holds != seen.leader_holds || t.follower_holds != seen.follower_holds {
        tracing::info!(
            leader_held = t.leader_holds - seen.leader_holds,
            follower_held = t.follower_holds - seen.follower_holds,
            leader_throttled_bytes = t.leader_bytes,
            follower_throttled_bytes = t.follower_bytes,
            leader_rate = broker.replication_quotas.leader.bound(),
            follower_rate = broker.replication_quotas.follower.bound(),
            "replication throttled: partitions held back by the replication quotas since the last check (KIP-73)"
        );
    }
    last.counts = now;
    last.throttles = t;
}

/// Kafka's `log.flush.offset.checkpoint.interval.ms` default.
pub const CHECKPOINT_INTERVAL_MS: u64 = 60_000;

pub async fn run(broker: Arc<Broker>) {
    let mut retention = ticker(broker.node.retention_check_interval_ms);
    let mut checkpoint = ticker(CHECKPOINT_INTERVAL_MS);
    let mut hw_checkpoint = ticker(
        broker
            .node
            .settings
            .i64("replica.high.watermark.checkpoint.interval.ms")
            .unwrap_or(5_000)
            .max(1) as u64,
    );
    let mut groups = ticker(GROUP_TICK_MS);
    let mut health = ticker(HEALTH_CHECK_MS);
    let mut last_health = HealthSeen::default();
    let cleaner_enabled = broker.node.settings.bool("log.cleaner.enable");
    let mut cleaner = ticker(
        broker
            .node
            .settings
            .i64("log.cleaner.backoff.ms")
            .unwrap_or(15_000) as u64,
    );
    let mut offsets_expiry = ticker(
        broker
            .node
            .settings
            .i64("offsets.retention.check.interval.ms")
            .unwrap_or(600_000) as u64,
    );
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            // Both fsync and take partition locks: keep them off the async workers.
            _ = retention.tick() => blocking(&broker, apply_retention).await,
            _ = checkpoint.tick() => blocking(&broker, write_checkpoints).await,
            _ = hw_checkpoint.tick() => blocking(&broker, write_hw_checkpoints).await,
            _ = groups.tick() => broker.groups.tick(&broker),
            _ = health.tick() => log_replication_health(&broker, &mut last_health),
            _ = cleaner.tick(), if cleaner_enabled => blocking(&broker, compact).await,
            _ = offsets_expiry.tick() => blocking(&broker, |b| b.groups.expire_offsets(b)).await,
        }
    }
}

async fn blocking(broker: &Arc<Broker>, work: fn(&Broker)) {
    let broker = Arc::clone(broker);
    if let Err(e) = tokio::task::spawn_blocking(move || work(&broker)).await {
        tracing::error!(error = %e, "background task failed");
    }
}

fn ticker(every_ms: u64) -> tokio::time::Interval {
    let mut t = tokio::time::interval(Duration::from_millis(every_ms));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Each checkpoint is taken under its partition's lock but written (two fsyncs) after
/// releasing it: produce requests wait on that lock on the runtime's few worker threads.
fn write_checkpoints(broker: &Broker) {
    for p in broker.replicas.all_partitions() {
        let written = p
            .with_log(|log| Ok(log.take_checkpoint()?))
            .and_then(|pending| Ok(pending.write()?));
        if let Err(e) = written {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "checkpoint failed");
        }
    }
}

fn write_hw_checkpoints(broker: &Broker) {
    if let Err(e) = broker.replicas.checkpoint_high_watermarks() {
        tracing::warn!(error = %e, "high-watermark checkpoint failed");
    }
}

fn apply_retention(broker: &Broker) {
    {
        let now = now_ms();
        for p in broker.replicas.all_partitions() {
            let hw = p.high_watermark();
            match p.with_log(|log| Ok(log.apply_retention(now, hw)?)) {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(topic = %p.topic, partition = p.index, deleted, "retention deleted segments")
                }
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }
}

/// One pass of the log cleaner over every compacted partition that needs it. Cleaning holds
/// the partition's lock, so appends to that partition wait for the pass.
fn compact(broker: &Broker) {
    let now = now_ms();
    for p in broker.replicas.all_partitions() {
        if !p.settings().log.cleanup_policy.compacts() {
            continue;
        }
        let hw = p.high_watermark();
        let result = p.with_log(|log| {
            if log.cleanable(now, hw)?.is_none() {
                return Ok(None);
            }
            Ok(Some(log.clean(now, hw)?))
        });
        match result {
            Ok(None) => {}
            Ok(Some(stats)) => tracing::info!(
                topic = %p.topic,
                partition = p.index,
                records_removed = stats.records_removed,
                tombstones_removed = stats.tombstones_removed,
                cleaned_up_to = stats.cleaned_up_to,
                "compacted"
            ),
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "compaction failed")
            }
        }
    }
}
