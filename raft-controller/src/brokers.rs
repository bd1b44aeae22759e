//! Brokers as the active controller sees them: registration, heartbeats and sessions,
//! controlled shutdown, ISR changes from partition leaders, leader elections — KRaft's
//! `BrokerRegistration`, `BrokerHeartbeat`, `AlterPartition` and `ElectLeaders`, minus the
//! Kafka encoding (the broker crate speaks that).
//!
//! Sessions live only in the leader's memory. A new leader starts every registered broker
//! with a fresh session (as KRaft does), so a controller failover never fences a broker
//! that keeps heartbeating.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::controller::Controller;
use crate::error::{ControllerError, RejectCode, Rejection};
use crate::image::{MetadataImage, PartitionImage};
use crate::leadership::{self, AlterPartitionOutcome, AlterPartitionRequest, ElectionResult};
use crate::reassignment::{self, ReassignmentError, ReassignmentRequest};
use crate::records::{BrokerRegistrationRecord, MetadataRecord};

/// Records per proposal when one event touches many partitions (a broker leading
/// thousands): well inside the proposal bounds.
const RECORDS_PER_PROPOSAL: usize = 2_000;

/// A heartbeat, as BrokerHeartbeat carries it.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The revision of the broker's metadata image.
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

/// The answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The broker's metadata reached its registration.
    pub is_caught_up: bool,
    pub is_fenced: bool,
    /// Controlled shutdown is complete: the broker leads nothing and may stop.
    pub should_shut_down: bool,
}

/// Which elections ElectLeaders asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// The leader's per-broker session state.
#[derive(Default)]
pub(crate) struct Sessions {
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    /// The term these sessions were started in; a new term restarts them all.
    term: Option<u64>,
    last_seen: HashMap<i32, Instant>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts fresh sessions when `term` is new to this leader.
    fn begin_term(&self, term: u64, image: &MetadataImage) {
        let mut st = self.lock();
        if st.term != Some(term) {
            st.term = Some(term);
            let now = Instant::now();
            st.last_seen = image.brokers().keys().map(|id| (*id, now)).collect();
        }
    }

    fn touch(&self, broker_id: i32) {
        self.lock().last_seen.insert(broker_id, Instant::now());
    }

    fn alive(&self, broker_id: i32, timeout: Duration) -> bool {
        self.lock()
            .last_seen
            .get(&broker_id)
            .is_some_and(|at| at.elapsed() < timeout)
    }

    fn expired(&self, image: &MetadataImage, timeout: Duration) -> Vec<i32> {
        let st = self.lock();
        image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                st.last_seen
                    .get(&b.broker_id)
                    .is_none_or(|at| at.elapsed() >= timeout)
            })
            .map(|b| b.broker_id)
            .collect()
    }

    pub(crate) fn forget(&self) {
        let mut st = self.lock();
        st.term = None;
        st.last_seen.clear();
    }
}

fn rejected(code: RejectCode, message: impl Into<String>) -> ControllerError {
    ControllerError::Rejected(Rejection::new(code, message))
}

impl Controller {
    fn leader_image(&self) -> Result<std::sync::Arc<MetadataImage>, ControllerError> {
        if !self.is_leader() {
            let leader = self.leader().filter(|l| *l != self.node_id());
            return Err(ControllerError::NotLeader {
                leader,
                leader_addr: leader.and_then(|l| self.voter_addr(l)),
            });
        }
        let image = self.image();
        self.sessions().begin_term(self.current_term(), &image);
        Ok(image)
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.config().broker_session_timeout_ms)
    }

    /// Commits `records` in proposals of bounded size, in order.
    async fn propose_chunked(&self, records: Vec<MetadataRecord>) -> Result<u64, ControllerError> {
        let mut revision = self.image().revision();
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<MetadataRecord> = records.by_ref().take(RECORDS_PER_PROPOSAL).collect();
            revision = self.propose(chunk).await?;
        }
        Ok(revision)
    }

    /// BrokerRegistration: registers a broker process and returns its broker epoch. A
    /// retry of the same incarnation gets the same epoch; a new incarnation replaces the
    /// old registration (fencing it and moving its leaderships) unless the old one is
    /// still heartbeating and the newcomer does not name its epoch as its previous one —
    /// then two live brokers claim the id: DUPLICATE_BROKER_REGISTRATION.
    pub async fn register_broker(
        &self,
        record: BrokerRegistrationRecord,
        previous_broker_epoch: i64,
    ) -> Result<i64, ControllerError> {
        let image = self.leader_image()?;
        let id = record.broker_id;
        let mut records = Vec::new();
        if let Some(old) = image.broker(id) {
            if old.incarnation_id == record.incarnation_id {
                self.sessions().touch(id);
                return Ok(old.broker_epoch);
            }
            let same_process_line =
                previous_broker_epoch >= 0 && previous_broker_epoch == old.broker_epoch;
            if !old.fenced
                && self.sessions().alive(id, self.session_timeout())
                && !same_process_line
            {
                return Err(rejected(
                    RejectCode::DuplicateBrokerRegistration,
                    format!(
                        "broker id {id} is registered by a running broker (incarnation {}, broker epoch {}); give this node a unique node.id, or wait {} ms for the old session to expire",
                        old.incarnation_id,
                        old.broker_epoch,
                        self.config().broker_session_timeout_ms
                    ),
                ));
            }
            if !old.fenced {
                tracing::info!(broker = id, old_incarnation = %old.incarnation_id, new_incarnation = %record.incarnation_id,
                    "broker re-registered with a new incarnation; fencing the old one");
                records.extend(leadership::fence_broker(&image, id));
            }
        }
        let rack = record.rack.clone();
        records.push(MetadataRecord::RegisterBroker(record));
        // The registration must be the last record of its proposal: its log index is the
        // broker epoch.
        let (before, last) = records.split_at(records.len() - 1);
        if !before.is_empty() {
            self.propose_chunked(before.to_vec()).await?;
        }
        let revision = self.propose(last.to_vec()).await?;
        self.sessions().touch(id);
        let epoch = i64::try_from(revision)
            .map_err(|_| ControllerError::Raft("revision beyond i64".into()))?;
        tracing::info!(broker = id, broker_epoch = epoch, rack = ?rack, "registered broker");
        Ok(epoch)
    }

    /// BrokerHeartbeat: keeps the session, unfences a broker whose metadata caught up,
    /// fences on request, and drives controlled shutdown.
    pub async fn broker_heartbeat(&self, hb: Heartbeat) -> Result<HeartbeatReply, ControllerError> {
        let image = self.leader_image()?;
        let reg = match image.broker(hb.broker_id) {
            Some(r) if r.broker_epoch == hb.broker_epoch => r.clone(),
            Some(r) => {
                return Err(rejected(
                    RejectCode::StaleBrokerEpoch,
                    format!(
                        "broker {} heartbeats with epoch {}, its registration has {}",
                        hb.broker_id, hb.broker_epoch, r.broker_epoch
                    ),
                ))
            }
            None => {
                return Err(rejected(
                    RejectCode::BrokerIdNotRegistered,
                    format!("broker {} is not registered", hb.broker_id),
                ))
            }
        };
        self.sessions().touch(hb.broker_id);
        let caught_up = hb.current_metadata_offset >= reg.broker_epoch;
        let outcome = if hb.want_shut_down {
            if !reg.in_controlled_shutdown && !reg.fenced {
                tracing::info!(
                    broker = hb.broker_id,
                    "broker asked for a controlled shutdown; moving its leaderships away"
                );
                self.propose_chunked(leadership::begin_controlled_shutdown(&image, hb.broker_id))
                    .await
                    .map(|_| ())
            } else {
                Ok(())
            }
        } else if reg.fenced && !hb.want_fence && caught_up && !reg.in_controlled_shutdown {
            tracing::info!(
                broker = hb.broker_id,
                broker_epoch = reg.broker_epoch,
                "broker caught up; unfencing it"
            );
            self.propose_chunked(leadership::unfence_broker(&image, hb.broker_id))
                .await
                .map(|_| ())
        } else if !reg.fenced && hb.want_fence {
            self.propose_chunked(leadership::fence_broker(&image, hb.broker_id))
                .await
                .map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = outcome {
            // A race with another change; the broker asks again next heartbeat.
            tracing::debug!(broker = hb.broker_id, error = %e, "heartbeat-driven change not committed");
            if !matches!(e, ControllerError::Rejected(_)) {
                return Err(e);
            }
        }
        let image = self.image();
        let reg = image.broker(hb.broker_id).cloned().unwrap_or(reg);
        let mut should_shut_down = false;
        if hb.want_shut_down && (reg.in_controlled_shutdown || reg.fenced) {
            should_shut_down = leads_nothing(&image, hb.broker_id);
            if should_shut_down && !reg.fenced {
                // Controlled shutdown complete: fence it now rather than at session expiry.
                if let Err(e) = self
                    .propose_chunked(leadership::fence_broker(&image, hb.broker_id))
                    .await
                {
                    tracing::debug!(broker = hb.broker_id, error = %e, "fencing after controlled shutdown");
                }
            }
        }
        let reg = self.image().broker(hb.broker_id).cloned().unwrap_or(reg);
        Ok(HeartbeatReply {
            is_caught_up: caught_up,
            is_fenced: reg.fenced,
            should_shut_down,
        })
    }

    /// AlterPartition for one partition: the leader's ISR change, checked and committed.
    /// Returns the partition as it is afterwards.
    pub async fn alter_partition(
        &self,
        req: AlterPartitionRequest,
    ) -> Result<(Uuid, i32, PartitionImage), AlterPartitionFailure> {
        let image = self
            .leader_image()
            .map_err(AlterPartitionFailure::Controller)?;
        let topic_id = req.topic_id;
        let partition = req.partition;
        match leadership::alter_partition(&image, &req) {
            Err(e) => Err(AlterPartitionFailure::Refused(e)),
            Ok(AlterPartitionOutcome::Unchanged(state)) => Ok((topic_id, partition, state)),
            Ok(AlterPartitionOutcome::Propose(change)) => {
                let revision = self
                    .propose(vec![MetadataRecord::PartitionChange(change)])
                    .await
                    .map_err(AlterPartitionFailure::Controller)?;
                let image = self.image();
                debug_assert!(image.revision() >= revision);
                image
                    .partition(&topic_id, partition)
                    .cloned()
                    .map(|p| (topic_id, partition, p))
                    .ok_or(AlterPartitionFailure::Refused(
                        leadership::AlterPartitionError::UnknownPartition,
                    ))
            }
        }
    }

    /// ElectLeaders: preferred or unclean elections for `targets` (`None`: every
    /// partition). Returns each partition's outcome once the new leaders are committed.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        targets: Option<Vec<(Uuid, i32)>>,
    ) -> Result<Vec<((Uuid, i32), ElectionResult)>, ControllerError> {
        let image = self.leader_image()?;
        let elections = match election {
            ElectionType::Preferred => leadership::elect_preferred(&image, targets.as_deref()),
            ElectionType::Unclean => leadership::elect_unclean(&image, targets.as_deref()),
        };
        self.propose_chunked(elections.records).await?;
        Ok(elections.results)
    }

    /// AlterPartitionReassignments: starts, changes or cancels reassignments and
    /// answers per partition once the changes are committed. A proposal refused because a
    /// partition moved on meanwhile (an ISR change) is computed again from the newer image.
    pub async fn alter_reassignments(
        &self,
        requests: Vec<ReassignmentRequest>,
        allow_replication_factor_change: bool,
    ) -> Result<Vec<((Uuid, i32), Result<(), ReassignmentError>)>, ControllerError> {
        let mut image = self.leader_image()?;
        let mut attempts = 0;
        loop {
            let plan = reassignment::alter_reassignments(
                &image,
                &requests,
                allow_replication_factor_change,
            );
            let changed = plan.records.len();
            match self.propose_chunked(plan.records).await {
                Ok(_) => {
                    if changed > 0 {
                        tracing::info!(
                            partitions = changed,
                            "partition reassignments started, changed or cancelled"
                        );
                    }
                    return Ok(plan.results);
                }
                Err(ControllerError::Rejected(r))
                    if r.code == RejectCode::InvalidUpdateVersion && attempts < 5 =>
                {
                    attempts += 1;
                    image = self.leader_image()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// ListPartitionReassignments, from the active controller's image so that an answer
    /// follows every reassignment this controller has acknowledged.
    pub fn list_reassignments(
        &self,
        targets: Option<&[(Uuid, i32)]>,
    ) -> Result<Vec<ListedReassignment>, ControllerError> {
        let image = self.leader_image()?;
        Ok(reassignment::list_reassignments(&image, targets)
            .into_iter()
            .map(|(t, partition, p)| ListedReassignment {
                topic: t.name.clone(),
                partition,
                replicas: p.replicas.clone(),
                adding_replicas: p.adding_replicas.clone(),
                removing_replicas: p.removing_replicas.clone(),
            })
            .collect())
    }

    /// One pass of the leader's periodic broker work: fence expired sessions; when
    /// `rebalance`, move leadership back to preferred replicas.
    pub(crate) async fn tend_brokers(&self, rebalance: bool) {
        let Ok(image) = self.leader_image() else {
            self.sessions().forget();
            return;
        };
        for id in self.sessions().expired(&image, self.session_timeout()) {
            let image = self.image();
            tracing::warn!(broker = id, timeout_ms = self.config().broker_session_timeout_ms,
                "broker session expired (no heartbeat); fencing it and electing new leaders for its partitions");
            if let Err(e) = self
                .propose_chunked(leadership::fence_broker(&image, id))
                .await
            {
                tracing::warn!(broker = id, error = %e, "fencing an expired broker failed; retrying");
            }
        }
        if rebalance {
            let image = self.image();
            let imbalanced = leadership::imbalanced_partitions(&image);
            if !imbalanced.is_empty() {
                let records = leadership::elect_preferred(&image, Some(&imbalanced)).records;
                if !records.is_empty() {
                    tracing::info!(
                        partitions = imbalanced.len(),
                        "auto leader rebalance: electing preferred leaders"
                    );
                    if let Err(e) = self.propose_chunked(records).await {
                        tracing::warn!(error = %e, "auto leader rebalance failed; retrying at the next check");
                    }
                }
            }
        }
    }
}

/// One ongoing reassignment, as ListPartitionReassignments reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

/// Why an AlterPartition was not applied.
#[derive(Debug)]
pub enum AlterPartitionFailure {
    /// Not the leader, shut down, commit failed.
    Controller(ControllerError),
    Refused(leadership::AlterPartitionError),
}

fn leads_nothing(image: &MetadataImage, broker_id: i32) -> bool {
    image
        .topics()
        .all(|t| t.partitions.values().all(|p| p.leader != broker_id))
}

/// Runs [`Controller::tend_brokers`] until the controller stops.
pub(crate) async fn tend_loop(
    controller: Controller,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let session = controller.config().broker_session_timeout_ms;
    let tick = Duration::from_millis((session / 8).clamp(50, 500));
    let rebalance_every =
        Duration::from_millis(controller.config().leader_imbalance_check_interval_ms);
    let mut last_rebalance = Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let rebalance = controller.config().auto_leader_rebalance
            && last_rebalance.elapsed() >= rebalance_every;
        if rebalance {
            last_rebalance = Instant::now();
        }
        controller.tend_brokers(rebalance).await;
    }
}
