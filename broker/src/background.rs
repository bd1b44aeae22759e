//! Periodic work: retention by time and size, and recovery-point checkpoints (so a restart
//! after a crash rescans only what was written since the last one).

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{now_ms, Broker};

/// Kafka's `log.flush.offset.checkpoint.interval.ms` default.
pub const CHECKPOINT_INTERVAL_MS: u64 = 60_000;

pub async fn run(broker: Arc<Broker>) {
    let mut retention = ticker(broker.node.retention_check_interval_ms);
    let mut checkpoint = ticker(CHECKPOINT_INTERVAL_MS);
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            // Both fsync and take partition locks: keep them off the async workers.
            _ = retention.tick() => blocking(&broker, apply_retention).await,
            _ = checkpoint.tick() => blocking(&broker, write_checkpoints).await,
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

fn write_checkpoints(broker: &Broker) {
    for p in broker.replicas.all_partitions() {
        if let Err(e) = p.with_log(|log| Ok(log.checkpoint()?)) {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "checkpoint failed");
        }
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
