//! One partition this node hosts (as its leader or a follower): its log, high watermark,
//! replication role and group commit.
//!
//! As leader it tracks its followers ([`LeaderState`]) and moves the high watermark to the
//! smallest log end across the ISR, its own counted at its durable end (an acks=all write
//! is fsynced on every ISR member before it is acknowledged). As follower its log is
//! written by the replica fetcher only, and its high watermark follows the leader's.
//!
//! Writes land in the page cache under the log's lock; the sync threads ([`super::sync_pool`])
//! then fsync everything written so far in one call, so all requests that arrived while the
//! previous fsync ran share the next one (group commit). Waiters (acks, long-polling fetches)
//! are woken by watch channels, never by polling.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use isthmus_storage::{AppendOutcome, FlushJob, Log, ReadResult};
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::replication::{IsrChange, LeaderState};
use super::sync_pool::{SyncPool, SyncSlot, SyncTarget};
use crate::config::topic::{FlushPolicy, TopicSettings};
use crate::error::BrokerError;
use crate::metadata::PartitionState;

/// An ISR change to send to the controller, with the epochs it was decided in.
pub struct IsrRequest {
    pub change: IsrChange,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The new ISR with each member's broker epoch as its fetches said (-1 unknown).
    pub members: Vec<(i32, i64)>,
}

/// What this node is for the partition, as the published image says.
#[derive(Clone, Debug)]
pub enum Role {
    /// Not placed, or the partition has no leader (-1) and this node is not it.
    Idle,
    Leader(LeaderState),
    /// Replicates from `leader` (which may be -1: none right now).
    Follower {
        leader: i32,
        leader_epoch: i32,
    },
}

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    /// The log dir holding this partition's directory.
    pub log_dir: std::path::PathBuf,
    log: Mutex<Option<Log>>,
    settings: RwLock<TopicSettings>,
    leader_epoch: AtomicI32,
    role: Mutex<Role>,
    /// Consumers read below this offset.
    high_watermark: watch::Sender<i64>,
    /// The log end: follower fetches long-poll on it.
    log_end: watch::Sender<i64>,
    /// Everything below this offset is on stable storage.
    durable_end: watch::Sender<i64>,
    /// Page-cache mode: appends up to this offset crossed `flush.messages` and, as in
    /// Kafka, are acknowledged only once synced.
    sync_barrier: AtomicI64,
    sync_slot: SyncSlot,
    /// This partition, for queueing it at the sync threads from `&self` methods.
    me: Weak<Partition>,
    /// Wakes the page-cache flush timer: settings changed, or the log was taken out.
    timer_wakeup: Notify,
    /// Set when the log hit an I/O error: the partition stops serving rather than guessing.
    failed: AtomicBool,
    /// Whether a consumer read from this replica as a follower was logged yet.
    follower_read_logged: AtomicBool,
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
        checkpointed_hw: Option<i64>,
    ) -> Arc<Partition> {
        let end = log.log_end_offset();
        // After an unclean stop the tail above the recovery point may still sit only in the
        // page cache: it is neither durable nor acknowledged until the flusher (woken
        // below) syncs it.
        let durable = log.recovery_point().min(end);
        // The high watermark starts where it was checkpointed (never above the log end),
        // and moves once this node leads or follows. Without a checkpoint (a log from
        // before replication, or a new one) it starts at the log start: a leader whose
        // ISR is itself moves it to its durable end at once.
        let visible = checkpointed_hw
            .unwrap_or(log.log_start_offset())
            .clamp(log.log_start_offset(), end);
        let partition = Arc::new_cyclic(|me| Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            log_dir,
            log: Mutex::new(Some(log)),
            settings: RwLock::new(settings),
            // Set from the image right after opening (`apply_state`).
            leader_epoch: AtomicI32::new(-1),
            role: Mutex::new(Role::Idle),
            high_watermark: watch::Sender::new(visible),
            log_end: watch::Sender::new(end),
            durable_end: watch::Sender::new(durable),
            sync_barrier: AtomicI64::new(-1),
            sync_slot: SyncSlot::new(),
            me: me.clone(),
            timer_wakeup: Notify::new(),
            failed: AtomicBool::new(false),
            follower_read_logged: AtomicBool::new(false),
        });
        if durable < end {
            partition.request_sync();
        }
        tokio::spawn(run_flush_timer(Arc::clone(&partition)));
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
            role: Mutex::new(Role::Idle),
            high_watermark: watch::Sender::new(-1),
            log_end: watch::Sender::new(-1),
            durable_end: watch::Sender::new(-1),
            sync_barrier: AtomicI64::new(-1),
            sync_slot: SyncSlot::stopped(),
            me: Weak::new(),
            timer_wakeup: Notify::new(),
            failed: AtomicBool::new(true),
            follower_read_logged: AtomicBool::new(false),
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
            // Leaving the durable mode: the leader's own end counts at once from now on.
            self.update_high_watermark();
        }
        self.request_sync();
        self.timer_wakeup.notify_one();
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
            let end = log.log_end_offset();
            // Published under the log's lock: two appends on different connections would
            // otherwise publish in either order, and a follower that read to the later
            // end would then be told its offset is past the log end.
            if matches!(outcome, AppendOutcome::Appended { .. }) {
                self.log_end.send_replace(end);
            }
            Ok((outcome, end, log.unflushed_messages()))
        })?;
        match (&outcome, flush) {
            (AppendOutcome::Appended { .. }, FlushPolicy::Durable) => self.request_sync(),
            (AppendOutcome::Appended { .. }, FlushPolicy::PageCache { .. }) => {
                self.update_high_watermark();
                if sync_due(flush, unflushed) {
                    self.sync_barrier.fetch_max(end, Ordering::AcqRel);
                    self.request_sync();
                }
            }
            // A retry of a batch that may still be unsynced (e.g. written just before a
            // crash): make sure a sync is coming before the retry is acknowledged.
            (AppendOutcome::Duplicate { .. }, _) => self.request_sync(),
        }
        Ok(outcome)
    }

    /// Resolves once everything below `end_offset` is durable under the flush policy.
    pub async fn wait_durable(&self, end_offset: i64) -> Result<(), BrokerError> {
        let page_cache = matches!(self.settings.read().flush, FlushPolicy::PageCache { .. });
        if page_cache && end_offset > self.sync_barrier.load(Ordering::Acquire) {
            return Ok(());
        }
        self.wait_for(&self.durable_end, end_offset, || Ok(()))
            .await
    }

    /// Resolves once the high watermark has reached `end_offset`, i.e. every ISR member
    /// has the write; NOT_LEADER_OR_FOLLOWER if this node stops leading the epoch it led
    /// when called (the write may then be truncated by the next leader).
    pub async fn wait_high_watermark(&self, end_offset: i64) -> Result<(), BrokerError> {
        let epoch = self.leader_epoch();
        self.wait_replicated(end_offset, epoch).await
    }

    /// acks=all: the write below `end_offset`, appended in leader epoch `epoch`, is on
    /// every ISR member, and the ISR has at least `min_isr` members (else
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND, as Kafka answers when the ISR shrank meanwhile).
    pub async fn wait_acks_all(
        &self,
        end_offset: i64,
        epoch: i32,
        min_isr: usize,
    ) -> Result<(), BrokerError> {
        self.wait_replicated(end_offset, epoch).await?;
        let isr = self.isr_size();
        if isr < min_isr {
            return Err(BrokerError::kafka(
                ResponseError::NotEnoughReplicasAfterAppend,
                format!("written, but the ISR shrank to {isr} while waiting; min.insync.replicas is {min_isr}"),
            ));
        }
        Ok(())
    }

    async fn wait_replicated(&self, end_offset: i64, epoch: i32) -> Result<(), BrokerError> {
        self.wait_for(&self.high_watermark, end_offset, || {
            if self.leads_epoch(epoch) {
                Ok(())
            } else {
                Err(BrokerError::kafka(
                    ResponseError::NotLeaderOrFollower,
                    "this broker stopped leading the partition while the write was pending",
                ))
            }
        })
        .await
    }

    /// Whether this replica still follows `leader` in `leader_epoch` (a replica fetcher
    /// checks before it writes, so a stopped one never touches the log).
    pub fn follows(&self, leader: i32, leader_epoch: i32) -> bool {
        matches!(&*self.role.lock(), Role::Follower { leader: l, leader_epoch: e } if *l == leader && *e == leader_epoch)
    }

    /// KIP-392 at the leader: the in-sync follower (`eligible`: in the consumer's rack,
    /// active) that has `fetch_offset`, the furthest along first; None for the leader.
    pub fn preferred_read_replica(
        &self,
        fetch_offset: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<i32> {
        let role = self.role.lock();
        let Role::Leader(l) = &*role else { return None };
        l.isr
            .iter()
            .filter(|r| **r != l.me && eligible(**r))
            .filter_map(|r| l.followers.get(r).map(|f| (*r, f.log_end_offset)))
            .filter(|(_, end)| *end >= fetch_offset)
            .max_by_key(|(r, end)| (*end, -*r))
            .map(|(r, _)| r)
    }

    /// Following nobody: the image names no leader.
    pub fn is_leaderless(&self) -> bool {
        matches!(&*self.role.lock(), Role::Follower { leader, .. } if *leader < 0)
    }

    /// While leading: (ISR size, replica count, follower lag in records, in ms).
    pub fn leader_health(&self, now_ms: i64) -> Option<(usize, usize, i64, i64)> {
        let end = self.log_end_offset();
        let role = self.role.lock();
        let Role::Leader(l) = &*role else { return None };
        let (records, ms) = l.follower_lag(end, now_ms);
        Some((l.isr.len(), l.replicas.len(), records, ms))
    }

    /// Logs the first consumer read served here as a follower (then only counted).
    pub fn note_follower_read(&self, client_rack: &str) {
        if !self.follower_read_logged.swap(true, Ordering::AcqRel) {
            tracing::info!(topic = %self.topic, partition = self.index, client_rack, "served a consumer fetch as follower (KIP-392)");
        }
    }

    fn leads_epoch(&self, epoch: i32) -> bool {
        matches!(&*self.role.lock(), Role::Leader(l) if l.leader_epoch == epoch)
    }

    /// Whether the replica on `broker` is throttled, (leader side, follower side), by the
    /// topic's `*.replication.throttled.replicas` (KIP-73).
    pub fn throttled(&self, broker: i32) -> (bool, bool) {
        let s = self.settings.read();
        (
            s.leader_throttled.covers(self.index, broker),
            s.follower_throttled.covers(self.index, broker),
        )
    }

    /// While leading: whether `replica` is in the committed ISR.
    pub fn is_in_sync(&self, replica: i32) -> bool {
        matches!(&*self.role.lock(), Role::Leader(l) if l.isr.contains(&replica))
    }

    /// The committed ISR's size while leading; 0 otherwise.
    pub fn isr_size(&self) -> usize {
        match &*self.role.lock() {
            Role::Leader(l) => l.isr.len(),
            _ => 0,
        }
    }

    pub fn role(&self) -> Role {
        self.role.lock().clone()
    }

    /// Follows the image's state of this partition: becomes (or stays) leader when it
    /// names `me`, else follower of whoever it names. Returns true when the role or the
    /// leader epoch changed (the replica fetchers then start over for it).
    pub fn apply_state(&self, state: &PartitionState, me: i32, now_ms: i64) -> bool {
        self.set_leader_epoch(state.leader_epoch);
        let changed = {
            let mut role = self.role.lock();
            match &mut *role {
                Role::Leader(l) if state.leader == me && l.leader_epoch == state.leader_epoch => {
                    l.commit(state.partition_epoch, &state.isr, &state.replicas, now_ms);
                    false
                }
                Role::Follower {
                    leader,
                    leader_epoch,
                } if state.leader != me
                    && *leader == state.leader
                    && *leader_epoch == state.leader_epoch =>
                {
                    false
                }
                _ if state.leader == me => {
                    let start = self
                        .with_log(|log| {
                            log.begin_leader_epoch(state.leader_epoch)?;
                            Ok(log.log_end_offset())
                        })
                        .unwrap_or(0);
                    *role = Role::Leader(LeaderState::new(
                        me,
                        state.leader_epoch,
                        state.partition_epoch,
                        &state.replicas,
                        &state.isr,
                        start,
                        now_ms,
                    ));
                    true
                }
                _ => {
                    *role = Role::Follower {
                        leader: state.leader,
                        leader_epoch: state.leader_epoch,
                    };
                    true
                }
            }
        };
        if changed {
            // Pending acks=all waits re-check who leads.
            self.high_watermark.send_modify(|_| {});
        }
        self.update_high_watermark();
        changed
    }

    /// Takes an ISR change the controller committed (AlterPartition answer) if this node
    /// still leads `leader_epoch`.
    pub fn commit_isr(&self, leader_epoch: i32, partition_epoch: i32, isr: &[i32], now_ms: i64) {
        {
            let mut role = self.role.lock();
            let Role::Leader(l) = &mut *role else { return };
            if l.leader_epoch != leader_epoch {
                return;
            }
            let replicas = l.replicas.clone();
            l.commit(partition_epoch, isr, &replicas, now_ms);
        }
        self.update_high_watermark();
        // acks=all waits re-check the ISR size.
        self.high_watermark.send_modify(|_| {});
    }

    /// Forgets an ISR change the controller refused, so the next check may ask again.
    pub fn clear_pending_isr(&self, leader_epoch: i32) {
        if let Role::Leader(l) = &mut *self.role.lock() {
            if l.leader_epoch == leader_epoch {
                l.pending = None;
            }
        }
    }

    /// The ISR change this leader should ask for now (recorded as pending), with the
    /// leader and partition epochs and the broker epochs of the new ISR's followers.
    pub fn take_isr_change(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrRequest> {
        let hw = self.high_watermark();
        let mut role = self.role.lock();
        let Role::Leader(l) = &mut *role else {
            return None;
        };
        let change = l.next_change(hw, now_ms, lag_max_ms)?;
        let epochs = change
            .new_isr()
            .iter()
            .map(|r| (*r, l.followers.get(r).map_or(-1, |f| f.broker_epoch)))
            .collect();
        l.pending = Some(change.clone());
        Some(IsrRequest {
            change,
            leader_epoch: l.leader_epoch,
            partition_epoch: l.partition_epoch,
            members: epochs,
        })
    }

    /// A follower's fetch at `fetch_offset`: its progress, then the high watermark.
    /// NOT_LEADER_OR_FOLLOWER when this node does not lead; returns whether an ISR
    /// change is now due (the follower caught up).
    pub fn record_follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        broker_epoch: i64,
        now_ms: i64,
    ) -> Result<bool, ResponseError> {
        let leader_end = *self.log_end.borrow();
        let hw = self.high_watermark();
        let expand = {
            let mut role = self.role.lock();
            let Role::Leader(l) = &mut *role else {
                return Err(ResponseError::NotLeaderOrFollower);
            };
            if !l.on_follower_fetch(follower, fetch_offset, broker_epoch, leader_end, now_ms) {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            l.pending.is_none() && !l.caught_up(hw).is_empty()
        };
        self.update_high_watermark();
        Ok(expand)
    }

    /// The leader's own end for the high watermark: durable under the fsync policy, the
    /// log end in page-cache mode.
    fn local_end(&self) -> i64 {
        match self.settings.read().flush {
            FlushPolicy::Durable => *self.durable_end.borrow(),
            FlushPolicy::PageCache { .. } => *self.log_end.borrow(),
        }
    }

    /// Moves a leader's high watermark to what its ISR has (never backwards).
    pub fn update_high_watermark(&self) {
        let local_end = self.local_end();
        let hw = match &*self.role.lock() {
            Role::Leader(l) => l.high_watermark(local_end),
            _ => None,
        };
        if let Some(hw) = hw {
            self.advance_high_watermark(hw);
        }
    }

    /// A follower's high watermark: the leader's, bounded by what this replica has.
    pub fn set_follower_high_watermark(&self, leader_hw: i64) {
        let end = *self.log_end.borrow();
        self.advance_high_watermark(leader_hw.min(end));
    }

    pub fn log_end_offset(&self) -> i64 {
        *self.log_end.borrow()
    }

    /// A receiver that changes whenever the log end moves: follower fetches wait on it.
    pub fn watch_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Follower append: the leader's batches at the leader's offsets. Returns the new log
    /// end; durability follows through [`Partition::wait_durable`]. A follower syncs under
    /// the topic's flush policy as a leader does (and as Kafka's followers do): at once
    /// when durable, else after `flush.messages` or by the `flush.ms` timer.
    pub fn append_as_follower(&self, records: &[u8]) -> Result<i64, BrokerError> {
        let (end, unflushed) = self.with_log(|log| {
            log.append_as_follower(records)?;
            let end = log.log_end_offset();
            self.log_end.send_replace(end);
            Ok((end, log.unflushed_messages()))
        })?;
        if sync_due(self.settings.read().flush, unflushed) {
            self.request_sync();
        }
        Ok(end)
    }

    /// Follower truncation (by leader epoch, never by high watermark): drops everything
    /// from `offset` on. The high watermark and durable end come down with the log end.
    pub fn truncate_to(&self, offset: i64) -> Result<i64, BrokerError> {
        let end = self.with_log(|log| {
            log.truncate_to(offset)?;
            Ok(log.log_end_offset())
        })?;
        self.after_truncation(end);
        Ok(end)
    }

    /// Empties the log and restarts it at `offset` (the leader's log start is above this
    /// replica's end).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<i64, BrokerError> {
        self.with_log(|log| {
            log.truncate_fully_and_start_at(offset)?;
            Ok(())
        })?;
        self.after_truncation(offset);
        self.high_watermark.send_replace(offset);
        Ok(offset)
    }

    fn after_truncation(&self, end: i64) {
        self.log_end.send_replace(end);
        self.durable_end.send_if_modified(|d| {
            let above = *d > end;
            if above {
                *d = end;
            }
            above
        });
        self.high_watermark.send_if_modified(|hw| {
            let above = *hw > end;
            if above {
                *hw = end;
            }
            above
        });
    }

    /// Follower read (from the leader): whole batches up to the log end.
    pub fn read_for_follower(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, BrokerError> {
        self.with_log(|log| {
            let end = log.log_end_offset();
            Ok(log.read(offset, max_bytes, end, min_one_batch)?)
        })
    }

    /// The log's answer to OffsetForLeaderEpoch for `epoch`, or None when undefined.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<Option<(i32, i64)>, BrokerError> {
        self.with_log(|log| Ok(log.end_offset_for_epoch(epoch)))
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.with_log(|log| Ok(log.latest_epoch())).ok().flatten()
    }

    /// Resolves once `channel` reaches `end_offset`; fails when the partition fails or
    /// closes, or when `still_valid` (checked on every change) says the wait is moot.
    async fn wait_for(
        &self,
        channel: &watch::Sender<i64>,
        end_offset: i64,
        still_valid: impl Fn() -> Result<(), BrokerError>,
    ) -> Result<(), BrokerError> {
        let mut rx = channel.subscribe();
        loop {
            if self.failed.load(Ordering::Acquire) {
                return Err(BrokerError::kafka(
                    ResponseError::KafkaStorageError,
                    "partition failed while the write was pending",
                ));
            }
            still_valid()?;
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

    /// Takes the log out for deletion or shutdown; syncing stops with its next round and
    /// the flush timer with its next wakeup.
    pub fn take_log(&self) -> Option<Log> {
        let log = self.log.lock().take();
        self.timer_wakeup.notify_one();
        self.high_watermark.send_modify(|_| {});
        log
    }

    /// After `job` was synced: moves the recovery point, the durable end and, as leader,
    /// the high watermark. The log's recovery point is the truth: a truncation since the
    /// job was taken keeps it from moving over data written after it.
    fn publish_synced(&self, job: &FlushJob) {
        let durable = self.log.lock().as_mut().map(|log| {
            log.mark_flushed(job);
            log.recovery_point()
        });
        if let Some(durable) = durable {
            self.durable_end.send_if_modified(|d| {
                let moved = durable > *d;
                *d = (*d).max(durable);
                moved
            });
        }
        self.update_high_watermark();
    }

    /// Queues this partition for a sync that starts after this call (group commit).
    fn request_sync(&self) {
        if let Some(me) = self.me.upgrade() {
            SyncPool::shared().request(&me);
        }
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

impl SyncTarget for Partition {
    fn sync_slot(&self) -> &SyncSlot {
        &self.sync_slot
    }

    /// Runs on a sync thread, which also wakes the waiters (acks, a follower's next
    /// fetch) as soon as the fsync returns.
    fn sync_written(&self) -> bool {
        let job = match self.log.lock().as_ref() {
            None => return false,
            Some(log) => log.unflushed(),
        };
        let Some(job) = job else { return true };
        match job.sync() {
            Ok(()) => {
                self.publish_synced(&job);
                true
            }
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    fn sync_panicked(&self) {
        self.fail(&std::io::Error::other("the sync thread panicked"));
    }
}

/// Whether an append leaving `unflushed` messages unsynced calls for a sync now: always
/// under the durable policy, at `flush.messages` in page-cache mode.
fn sync_due(flush: FlushPolicy, unflushed: u64) -> bool {
    match flush {
        FlushPolicy::Durable => true,
        FlushPolicy::PageCache { messages, .. } => messages.is_some_and(|m| unflushed >= m),
    }
}

/// Page-cache mode's `flush.ms`: asks for a sync every interval. It waits for a settings
/// change while no interval applies and ends when the log is taken out.
async fn run_flush_timer(p: Arc<Partition>) {
    loop {
        let interval = match p.settings.read().flush {
            FlushPolicy::Durable => None,
            FlushPolicy::PageCache { ms, .. } => ms.map(Duration::from_millis),
        };
        let woken = p.timer_wakeup.notified();
        match interval {
            Some(every) => {
                let _ = tokio::time::timeout(every, woken).await;
            }
            None => woken.await,
        }
        if p.log.lock().is_none() {
            return;
        }
        if interval.is_some() {
            p.request_sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use isthmus_protocol::batch::BatchBuilder;

    use super::*;
    use crate::config::load::Settings;

    fn follower(dir: &std::path::Path, overrides: &[(&str, &str)]) -> Arc<Partition> {
        let overrides: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let settings = TopicSettings::resolve(&overrides, &Settings::default());
        let log = Log::open(dir, settings.log.clone(), false).unwrap();
        Partition::start(
            "t",
            Uuid::new_v4(),
            0,
            dir.to_path_buf(),
            log,
            settings,
            None,
        )
    }

    /// The leader's batch of one record at `offset`.
    fn batch(offset: i64) -> Vec<u8> {
        BatchBuilder::new(offset)
            .partition_leader_epoch(0)
            .record(1_000, None, Some(b"v"), &[])
            .build()
    }

    /// Whether the synced end reaches `end` within `ms` (`wait_durable` would not tell: in
    /// page-cache mode it does not wait).
    async fn durable_within(p: &Partition, end: i64, ms: u64) -> bool {
        let mut synced = p.durable_end.subscribe();
        tokio::time::timeout(Duration::from_millis(ms), synced.wait_for(|d| *d >= end))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    #[tokio::test]
    async fn a_durable_follower_syncs_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = follower(dir.path(), &[]);
        for offset in 0..3 {
            let end = p.append_as_follower(&batch(offset)).unwrap();
            assert!(durable_within(&p, end, 10_000).await, "offset {offset}");
        }
        p.take_log();
    }

    #[tokio::test]
    async fn a_page_cache_follower_syncs_at_flush_messages_as_a_leader_does() {
        let dir = tempfile::tempdir().unwrap();
        let p = follower(dir.path(), &[("flush.messages", "3")]);
        for offset in 0..2 {
            p.append_as_follower(&batch(offset)).unwrap();
        }
        assert!(
            !durable_within(&p, 1, 200).await,
            "two of three messages: no sync yet"
        );
        let end = p.append_as_follower(&batch(2)).unwrap();
        assert!(durable_within(&p, end, 10_000).await);
        p.take_log();
    }
}
