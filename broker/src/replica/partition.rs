//! One partition this node hosts (as its leader or a follower): its log, high watermark and
//! group commit.
//!
//! Writes land in the page cache under the log's lock; a per-partition flusher task then
//! fsyncs everything written so far in one call, so all requests that arrived while the
//! previous fsync ran share the next one (group commit). Waiters (acks, long-polling fetches)
//! are woken by watch channels, never by polling.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use isthmus_storage::{AppendOutcome, Log, ReadResult};
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::config::topic::{FlushPolicy, TopicSettings};
use crate::error::BrokerError;

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    /// The log dir holding this partition's directory.
    pub log_dir: std::path::PathBuf,
    log: Mutex<Option<Log>>,
    settings: RwLock<TopicSettings>,
    leader_epoch: AtomicI32,
    /// Consumers read below this offset.
    high_watermark: watch::Sender<i64>,
    /// Everything below this offset is on stable storage.
    durable_end: watch::Sender<i64>,
    /// Page-cache mode: appends up to this offset crossed `flush.messages` and, as in
    /// Kafka, are acknowledged only once synced.
    sync_barrier: AtomicI64,
    flush_signal: Notify,
    /// Set when the log hit an I/O error: the partition stops serving rather than guessing.
    failed: AtomicBool,
}

impl Partition {
    /// Wraps an opened log and starts its flusher.
    pub fn start(
        topic: &str,
        topic_id: Uuid,
        index: i32,
        log_dir: std::path::PathBuf,
        log: Log,
        settings: TopicSettings,
        leader_epoch: i32,
    ) -> Arc<Partition> {
        let end = log.log_end_offset();
        // After an unclean stop the tail above the recovery point may still sit only in the
        // page cache: it is neither durable nor visible until the flusher (woken below)
        // syncs it. In page-cache mode visibility follows the log end, as in Kafka.
        let durable = log.recovery_point().min(end);
        let visible = match settings.flush {
            FlushPolicy::Durable => durable,
            FlushPolicy::PageCache { .. } => end,
        };
        let partition = Arc::new(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            log_dir,
            log: Mutex::new(Some(log)),
            settings: RwLock::new(settings),
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark: watch::Sender::new(visible),
            durable_end: watch::Sender::new(durable),
            sync_barrier: AtomicI64::new(-1),
            flush_signal: Notify::new(),
            failed: AtomicBool::new(false),
        });
        if durable < end {
            partition.flush_signal.notify_one();
        }
        tokio::spawn(run_flusher(Arc::clone(&partition)));
        partition
    }

    /// A partition whose log could not be opened: listed, but every request gets
    /// KAFKA_STORAGE_ERROR until an operator repairs it and restarts the node. One bad
    /// partition must not keep the others from serving.
    pub fn offline(
        topic: &str,
        topic_id: Uuid,
        index: i32,
        log_dir: std::path::PathBuf,
        settings: TopicSettings,
        leader_epoch: i32,
    ) -> Arc<Partition> {
        Arc::new(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            log_dir,
            log: Mutex::new(None),
            settings: RwLock::new(settings),
            leader_epoch: AtomicI32::new(leader_epoch),
            high_watermark: watch::Sender::new(-1),
            durable_end: watch::Sender::new(-1),
            sync_barrier: AtomicI64::new(-1),
            flush_signal: Notify::new(),
            failed: AtomicBool::new(true),
        })
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Takes the leader epoch of a newer partition record; epochs never go back.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    pub fn settings(&self) -> TopicSettings {
        self.settings.read().clone()
    }

    pub fn update_settings(&self, settings: TopicSettings) {
        if let Some(log) = self.log.lock().as_mut() {
            if let Err(e) = log.set_config(settings.log.clone()) {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "new settings refused by the log");
                return;
            }
        }
        let page_cache = matches!(settings.flush, FlushPolicy::PageCache { .. });
        *self.settings.write() = settings;
        if page_cache {
            // Leaving the durable mode: what is written is visible at once from now on.
            if let Ok(end) = self.with_log(|log| Ok(log.log_end_offset())) {
                self.advance_high_watermark(end);
            }
        }
        self.flush_signal.notify_one();
    }

    /// Runs `f` on the log, or reports the partition gone (deleted) or failed.
    pub fn with_log<T>(
        &self,
        f: impl FnOnce(&mut Log) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(BrokerError::kafka(
                ResponseError::KafkaStorageError,
                "partition is offline after a storage error",
            ));
        }
        let mut guard = self.log.lock();
        let log = guard.as_mut().ok_or_else(|| {
            BrokerError::kafka(
                ResponseError::UnknownTopicOrPartition,
                "partition was deleted",
            )
        })?;
        f(log)
    }

    /// Leader append. The write is in the page cache when this returns; durability and the
    /// high watermark follow through [`Partition::wait_durable`] / [`Partition::wait_high_watermark`].
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendOutcome, BrokerError> {
        let epoch = self.leader_epoch();
        let flush = self.settings.read().flush;
        let (outcome, end, unflushed) = self.with_log(|log| {
            let outcome = log.append_as_leader(records, epoch, now_ms)?;
            Ok((outcome, log.log_end_offset(), log.unflushed_messages()))
        })?;
        match (&outcome, flush) {
            (AppendOutcome::Appended { .. }, FlushPolicy::Durable) => {
                self.flush_signal.notify_one()
            }
            (AppendOutcome::Appended { .. }, FlushPolicy::PageCache { messages, .. }) => {
                self.advance_high_watermark(end);
                if messages.is_some_and(|m| unflushed >= m) {
                    self.sync_barrier.fetch_max(end, Ordering::AcqRel);
                    self.flush_signal.notify_one();
                }
            }
            // A retry of a batch that may still be unsynced (e.g. written just before a
            // crash): make sure a sync is coming before the retry is acknowledged.
            (AppendOutcome::Duplicate { .. }, _) => self.flush_signal.notify_one(),
        }
        Ok(outcome)
    }

    /// Resolves once everything below `end_offset` is durable under the flush policy.
    pub async fn wait_durable(&self, end_offset: i64) -> Result<(), BrokerError> {
        let page_cache = matches!(self.settings.read().flush, FlushPolicy::PageCache { .. });
        if page_cache && end_offset > self.sync_barrier.load(Ordering::Acquire) {
            return Ok(());
        }
        self.wait_for(&self.durable_end, end_offset).await
    }

    /// Resolves once the high watermark has reached `end_offset` (acks=all). With one replica
    /// the ISR is this node alone, so the high watermark is the durable end of the log.
    pub async fn wait_high_watermark(&self, end_offset: i64) -> Result<(), BrokerError> {
        self.wait_for(&self.high_watermark, end_offset).await
    }

    async fn wait_for(
        &self,
        channel: &watch::Sender<i64>,
        end_offset: i64,
    ) -> Result<(), BrokerError> {
        let mut rx = channel.subscribe();
        loop {
            if self.failed.load(Ordering::Acquire) {
                return Err(BrokerError::kafka(
                    ResponseError::KafkaStorageError,
                    "partition failed while the write was pending",
                ));
            }
            if *rx.borrow_and_update() >= end_offset {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(BrokerError::kafka(
                    ResponseError::NotLeaderOrFollower,
                    "partition closed",
                ));
            }
        }
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that changes whenever the high watermark moves: long-polling fetches wait on it.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    fn advance_high_watermark(&self, to: i64) {
        self.high_watermark.send_if_modified(|hw| {
            if to > *hw {
                *hw = to;
                true
            } else {
                false
            }
        });
    }

    /// Consumer read: whole batches below the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, BrokerError> {
        let hw = self.high_watermark();
        self.with_log(|log| Ok(log.read(offset, max_bytes, hw, min_one_batch)?))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.with_log(|log| Ok(log.log_start_offset()))
            .unwrap_or(-1)
    }

    /// Takes the log out for deletion or shutdown; the flusher stops on its next round.
    pub fn take_log(&self) -> Option<Log> {
        let log = self.log.lock().take();
        self.flush_signal.notify_one();
        self.high_watermark.send_modify(|_| {});
        log
    }

    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn fail(&self, error: &std::io::Error) {
        tracing::error!(topic = %self.topic, partition = self.index, %error, "fsync failed; taking the partition offline");
        self.failed.store(true, Ordering::Release);
        self.durable_end.send_modify(|_| {});
        self.high_watermark.send_modify(|_| {});
    }
}

/// The group-commit loop: sleeps until there is something to sync (or, in page-cache mode,
/// until `flush.ms` passes), then syncs everything written so far in one call. It ends when
/// the log is taken out (deletion, shutdown). `Notify` keeps a permit for a signal sent while
/// a sync runs, so no write waits for a later one.
async fn run_flusher(p: Arc<Partition>) {
    loop {
        let interval = match p.settings.read().flush {
            FlushPolicy::Durable => None,
            FlushPolicy::PageCache { ms, .. } => ms.map(Duration::from_millis),
        };
        let notified = p.flush_signal.notified();
        match interval {
            Some(every) => {
                let _ = tokio::time::timeout(every, notified).await;
            }
            None => notified.await,
        }
        let job = {
            let guard = p.log.lock();
            match guard.as_ref() {
                None => return,
                Some(log) => log.unflushed(),
            }
        };
        let Some(job) = job else { continue };
        let up_to = job.up_to;
        let synced = tokio::task::spawn_blocking(move || {
            let result = job.sync();
            (job, result)
        })
        .await;
        match synced {
            Ok((job, Ok(()))) => {
                if let Some(log) = p.log.lock().as_mut() {
                    log.mark_flushed(&job);
                }
                p.durable_end.send_if_modified(|d| {
                    let moved = up_to > *d;
                    *d = (*d).max(up_to);
                    moved
                });
                if p.settings.read().flush == FlushPolicy::Durable {
                    p.advance_high_watermark(up_to);
                }
            }
            Ok((_, Err(e))) => {
                p.fail(&e);
                return;
            }
            Err(join) => {
                p.fail(&std::io::Error::other(join.to_string()));
                return;
            }
        }
    }
}
