//! [`MetadataStore`]: the broker's link to the metadata quorum, the same whether the active
//! controller runs in this process or on another host.
//!
//! - **Pulling**: a loop asks the active controller for the records committed after the
//!   broker's revision (long-polling) and applies them to the broker's own copy of the
//!   `MetadataImage`; `broker::follow_metadata` turns each new copy into the broker's
//!   [`Image`], reconciles the local partitions and publishes it.
//! - **Registering and heartbeating** with Kafka's BrokerRegistration and BrokerHeartbeat
//!   on the controller listener: a broker starts fenced and is unfenced once its metadata
//!   has caught up with its registration; a clean stop is a controlled shutdown.
//! - **Admin changes** go to the active controller as proposals; the handler answers once
//!   the *published* view has the change's revision, so the topic's logs exist (or are
//!   gone) on this node by then.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use isthmus_controller::records::MetadataRecord;
use isthmus_controller::{
    Controller, ControllerClient, ControllerError, MetadataImage, QuorumStatus, Voter,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Listener as RegistrationListener;
use kafka_protocol::messages::{
    ApiKey, BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::legacy::{self, Legacy};
use super::quorum::PROPOSE_TIMEOUT_MS;
use super::store::{sync_dir, write_atomically, Image};
use crate::config::load::Listener;
use crate::config::NodeConfig;
use crate::controller_api::channel::ControllerChannel;
use crate::error::BrokerError;

/// How long one pull waits at the controller for new records.
const PULL_WAIT_MS: u64 = 1_000;
/// Bound on one pull, including finding the leader.
const PULL_TIMEOUT_MS: u64 = 10_000;
/// Pause after a failed pull or registration attempt.
const RETRY_PAUSE_MS: u64 = 200;
/// Bound on one BrokerRegistration / BrokerHeartbeat exchange.
const CALL_TIMEOUT_MS: u64 = 5_000;
/// The file (next to the metadata folder) remembering this node's last broker epoch:
/// sent as `previous_broker_epoch`, it proves a restart is the same node and not a
/// second broker claiming its id.
const BROKER_EPOCH_FILE: &str = "broker-epoch";

/// The broker's metadata: its copy of the image, the published view, and the link to the
/// controllers. `controller` is this process's own voter, when it runs one.
pub struct MetadataStore {
    controller: Option<Controller>,
    client: Arc<ControllerClient>,
    channel: ControllerChannel,
    node_id: i32,
    cluster_id: String,
    state_dir: PathBuf,
    heartbeat_interval: Duration,
    session_timeout: Duration,
    /// The newest image pulled from the controllers.
    pulled: watch::Sender<Arc<MetadataImage>>,
    /// The view reconciled with the local partitions; see the module docs.
    published: watch::Sender<Arc<Image>>,
    /// This process's registration: a new incarnation per start.
    incarnation: Uuid,
    /// The registration's broker epoch (-1 until registered).
    broker_epoch: AtomicI64,
    /// Whether the controller has this broker fenced (as its last heartbeat answer said).
    fenced: watch::Sender<bool>,
    /// Set at a clean stop: heartbeats ask for a controlled shutdown.
    shutting_down: AtomicBool,
    /// The controller said the controlled shutdown is complete.
    may_stop: watch::Sender<bool>,
    runtime: Handle,
    /// Cancelled when the node stops: loops and waits end at once.
    stopping: CancellationToken,
    loops: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl MetadataStore {
    /// The link of node `node` in cluster `cluster_id`; `state_dir` keeps the broker epoch
    /// file. Starts pulling metadata at once.
    pub fn start(
        node: &NodeConfig,
        controller: Option<Controller>,
        cluster_id: &str,
        state_dir: &Path,
    ) -> Arc<MetadataStore> {
        // This node's own controller is reached where it really listens (a quorum of one
        // may run on an unadvertised port).
        let voters: Vec<Voter> = node
            .voters
            .iter()
            .map(|v| match &controller {
                Some(c) if c.node_id() == v.id => {
                    let bound = c.config().listen_addr;
                    let host = if bound.ip().is_unspecified() {
                        v.host.clone()
                    } else {
                        bound.ip().to_string()
                    };
                    Voter {
                        id: v.id,
                        host,
                        port: bound.port(),
                    }
                }
                _ => v.clone(),
            })
            .collect();
        let client = Arc::new(ControllerClient::new(
            cluster_id,
            node.node_id as u64,
            &voters,
        ));
        let channel = ControllerChannel::new(
            client.clone(),
            node.voters.iter().map(|v| v.id).collect(),
            node.node_id,
        );
        let number = |name: &str, default: i64| {
            Duration::from_millis(node.settings.i64(name).unwrap_or(default).max(1) as u64)
        };
        let store = Arc::new(MetadataStore {
            controller,
            client,
            channel,
            node_id: node.node_id,
            cluster_id: cluster_id.to_string(),
            state_dir: state_dir.to_path_buf(),
            heartbeat_interval: number("broker.heartbeat.interval.ms", 2000),
            session_timeout: number("broker.session.timeout.ms", 9000),
            pulled: watch::Sender::new(Arc::new(MetadataImage::default())),
            published: watch::Sender::new(Arc::new(Image::default())),
            incarnation: Uuid::new_v4(),
            broker_epoch: AtomicI64::new(-1),
            fenced: watch::Sender::new(true),
            shutting_down: AtomicBool::new(false),
            may_stop: watch::Sender::new(false),
            runtime: Handle::current(),
            stopping: CancellationToken::new(),
            loops: std::sync::Mutex::new(Vec::new()),
        });
        let pull = tokio::spawn(pull_loop(store.clone()));
        store.track(pull);
        store
    }

    fn track(&self, task: JoinHandle<()>) {
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// This process's own controller, when it runs one.
    pub fn controller(&self) -> Option<&Controller> {
        self.controller.as_ref()
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The active controller as last learned from the quorum (-1 when unknown).
    pub fn active_controller(&self) -> i32 {
        self.client.leader_hint().map_or(-1, |id| id as i32)
    }

    /// The broker's current view (reconciled with the local partitions).
    pub fn image(&self) -> Arc<Image> {
        self.published.borrow().clone()
    }

    /// Installs a view the local partitions now match.
    /// A receiver that changes whenever a new view is published (after the local
    /// partitions were reconciled with it).
    pub fn subscribe_published(&self) -> watch::Receiver<Arc<Image>> {
        self.published.subscribe()
    }

    pub fn publish(&self, image: Arc<Image>) {
        self.published.send_replace(image);
    }

    /// The newest image pulled from the controllers (newer than [`MetadataStore::image`]
    /// while the follow loop reconciles).
    pub fn controller_image(&self) -> Arc<MetadataImage> {
        self.pulled.borrow().clone()
    }

    /// A receiver that wakes on each newly pulled image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.pulled.subscribe()
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// Whether the controller has this broker fenced.
    pub fn is_fenced(&self) -> bool {
        *self.fenced.borrow()
    }

    /// Waits until the pulled image reaches `revision`.
    async fn wait_pulled(&self, revision: u64) -> Result<Arc<MetadataImage>, BrokerError> {
        self.wait_pulled_until(|image| image.revision() >= revision)
            .await
    }

    /// Waits until the pulled image satisfies `done`.
    async fn wait_pulled_until(
        &self,
        done: impl Fn(&MetadataImage) -> bool,
    ) -> Result<Arc<MetadataImage>, BrokerError> {
        let mut rx = self.pulled.subscribe();
        loop {
            let image = rx.borrow_and_update().clone();
            if done(&image) {
                return Ok(image);
            }
            tokio::select! {
                _ = self.stopping.cancelled() => return Err(ControllerError::ShutDown.into()),
                changed = rx.changed() => if changed.is_err() {
                    return Err(ControllerError::ShutDown.into());
                },
            }
        }
    }

    /// Registers this broker process (a new incarnation: endpoints, rack) with
    /// BrokerRegistration, retrying until a controller leads. Then heartbeats until the
    /// controller unfences it (its metadata caught up), which is when it may lead.
    pub async fn register(
        self: &Arc<Self>,
        endpoints: &[Listener],
        rack: Option<&str>,
    ) -> Result<i64, BrokerError> {
        let previous = self.read_previous_epoch();
        let request = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(self.node_id))
            .with_cluster_id(StrBytes::from_string(self.cluster_id.clone()))
            .with_incarnation_id(self.incarnation)
            .with_rack(rack.map(|r| StrBytes::from_string(r.to_string())))
            .with_previous_broker_epoch(previous)
            .with_listeners(
                endpoints
                    .iter()
                    .map(|l| {
                        RegistrationListener::default()
                            .with_name(StrBytes::from_string(l.name.clone()))
                            .with_host(StrBytes::from_string(l.host.clone()))
                            .with_port(l.port)
                            .with_security_protocol(0)
                    })
                    .collect(),
            );
        let request = RequestKind::BrokerRegistration(request);
        let started = Instant::now();
        // A second live broker with this id is refused for good after this long; a
        // restart of this node after a kill waits at most for its old session to expire.
        let duplicate_deadline = self.session_timeout * 2 + Duration::from_secs(5);
        let mut last_logged = Instant::now() - Duration::from_secs(60);
        let epoch = loop {
            if self.stopping.is_cancelled() {
                return Err(ControllerError::ShutDown.into());
            }
            let answer = self
                .channel
                .call(
                    ApiKey::BrokerRegistration,
                    4,
                    &request,
                    Duration::from_millis(CALL_TIMEOUT_MS),
                )
                .await;
            let problem = match answer {
                Ok(ResponseKind::BrokerRegistration(r)) if r.error_code == 0 => {
                    break r.broker_epoch
                }
                Ok(ResponseKind::BrokerRegistration(r)) => {
                    let error = ResponseError::try_from_code(r.error_code);
                    match error {
                        Some(ResponseError::InconsistentClusterId) => {
                            return Err(BrokerError::Fatal(format!(
                                "the controllers refuse this broker's cluster id {}; it was formatted for another cluster: run `isthmus format` with the controllers' cluster id on empty log dirs",
                                self.cluster_id
                            )))
                        }
                        Some(ResponseError::DuplicateBrokerRegistration)
                            if started.elapsed() > duplicate_deadline =>
                        {
                            return Err(BrokerError::Fatal(format!(
                                "another running broker is registered as node.id {}; give every broker its own node.id",
                                self.node_id
                            )))
                        }
                        Some(ResponseError::NotController) => self.channel.reset().await,
                        _ => {}
                    }
                    format!("registration refused: {error:?}")
                }
                Ok(other) => format!("unexpected answer {other:?}"),
                Err(e) => e,
            };
            if last_logged.elapsed() > Duration::from_secs(5) {
                tracing::info!(problem = %problem, "waiting to register with the controller quorum");
                last_logged = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        };
        self.broker_epoch.store(epoch, Ordering::Release);
        self.write_previous_epoch(epoch);
        tracing::info!(broker_epoch = epoch, incarnation = %self.incarnation, "registered this broker");
        // Catch up with the registration, then heartbeat until unfenced.
        self.wait_pulled(epoch as u64).await?;
        let beat = tokio::spawn(heartbeat_loop(self.clone()));
        self.track(beat);
        let mut fenced = self.fenced.subscribe();
        loop {
            if !*fenced.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = self.stopping.cancelled() => return Err(ControllerError::ShutDown.into()),
                changed = fenced.changed() => if changed.is_err() {
                    return Err(ControllerError::ShutDown.into());
                },
            }
        }
        // The heartbeat answer may come before this broker pulled the unfencing and the
        // leaderships it restored: wait for them, so that the broker starts serving with
        // the partitions and groups it leads (not a moment of NOT_LEADER_OR_FOLLOWER and
        // NOT_COORDINATOR for everything, which a one-broker cluster cannot redirect).
        let me = self.node_id;
        self.wait_pulled_until(|image| {
            image
                .broker(me)
                .is_some_and(|b| b.broker_epoch == epoch && !b.fenced)
        })
        .await?;
        tracing::info!(broker_epoch = epoch, "the controller unfenced this broker");
        Ok(epoch)
    }

    fn read_previous_epoch(&self) -> i64 {
        std::fs::read_to_string(self.state_dir.join(BROKER_EPOCH_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1)
    }

    fn write_previous_epoch(&self, epoch: i64) {
        if let Err(e) = write_atomically(
            &self.state_dir,
            BROKER_EPOCH_FILE,
            format!("{epoch}\n").as_bytes(),
        ) {
            tracing::warn!(error = %e, "could not record the broker epoch; a quick restart may wait for the old session to expire");
        }
    }

    /// Imports a single-node store moved aside by `quorum::prepare`, if there is one,
    /// then keeps its folder as [`legacy::IMPORTED_DIR`]. Needs this broker registered.
    pub async fn import_legacy(&self, parent: &Path) -> Result<(), BrokerError> {
        let aside = parent.join(legacy::LEGACY_DIR);
        if !aside.exists() {
            return Ok(());
        }
        let old: Legacy = legacy::read(&aside)?;
        let proposals = legacy::import_records(
            &old,
            &self.controller_image(),
            self.node_id,
            self.broker_epoch(),
        )?;
        let count = proposals.len();
        for records in proposals {
            let revision = self.commit(records).await?;
            self.wait_pulled(revision).await?;
        }
        let done = parent.join(legacy::IMPORTED_DIR);
        if done.exists() {
            std::fs::remove_dir_all(&done).map_err(|e| BrokerError::io(&done, e))?;
        }
        std::fs::rename(&aside, &done).map_err(|e| BrokerError::io(&aside, e))?;
        sync_dir(parent)?;
        tracing::info!(topics = old.topic_count(), proposals = count, kept = %done.display(),
            "imported the single-node metadata into the metadata quorum; the old folder may be removed");
        Ok(())
    }

    /// Commits `records` through the active controller; returns their revision (this
    /// node may not have applied it yet).
    pub async fn commit(&self, records: Vec<MetadataRecord>) -> Result<u64, BrokerError> {
        if self.stopping.is_cancelled() {
            return Err(ControllerError::ShutDown.into());
        }
        Ok(self
            .client
            .propose(records, Duration::from_millis(PROPOSE_TIMEOUT_MS))
            .await?)
    }

    /// Commits `records` and waits until this node's published view has them. Async
    /// form of [`MetadataStore::propose`].
    pub async fn propose_async(&self, records: Vec<MetadataRecord>) -> Result<u64, BrokerError> {
        let revision = self.commit(records).await?;
        self.wait_published(revision).await?;
        Ok(revision)
    }

    /// Waits until the published view reaches `revision`.
    pub async fn wait_published(&self, revision: u64) -> Result<Arc<Image>, BrokerError> {
        let mut rx = self.published.subscribe();
        let wait = async {
            loop {
                let image = rx.borrow_and_update().clone();
                if image.revision >= revision {
                    return Ok(image);
                }
                if rx.changed().await.is_err() {
                    return Err(BrokerError::from(ControllerError::ShutDown));
                }
            }
        };
        let bounded = tokio::time::timeout(Duration::from_millis(PROPOSE_TIMEOUT_MS), wait);
        tokio::select! {
            _ = self.stopping.cancelled() => Err(ControllerError::ShutDown.into()),
            waited = bounded => waited.map_err(|_| {
                BrokerError::from(ControllerError::Timeout(format!(
                    "this broker's partitions did not reach metadata revision {revision} within {PROPOSE_TIMEOUT_MS} ms"
                )))
            })?,
        }
    }

    /// Proposes `records` and blocks until this node's published view has them (see the
    /// module docs). Callable from handlers: the wait leaves the async worker thread.
    pub fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, BrokerError> {
        self.block_on(self.propose_async(records))?
    }

    /// Runs `fut` to completion from synchronous code. On the multi-threaded runtime the
    /// current worker hands its other tasks to a new thread first (`block_in_place`), so
    /// the controller and the follow loop keep running.
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, BrokerError> {
        match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| h.block_on(fut)))
            }
            Ok(_) => Err(BrokerError::Fatal(
                "a metadata change was requested from a single-threaded runtime, where waiting for it would stall the controller".into(),
            )),
            Err(_) => Ok(self.runtime.block_on(fut)),
        }
    }

    /// The active controller's view of the quorum (DescribeQuorum).
    pub async fn quorum_status(&self) -> Result<QuorumStatus, BrokerError> {
        Ok(self
            .client
            .quorum_status(Duration::from_millis(CALL_TIMEOUT_MS))
            .await?)
    }

    /// Sends a Kafka request to the active controller (ElectLeaders, AlterPartition).
    pub async fn call_controller(
        &self,
        api_key: ApiKey,
        version: i16,
        request: RequestKind,
    ) -> Result<ResponseKind, BrokerError> {
        let deadline = Instant::now() + Duration::from_millis(PROPOSE_TIMEOUT_MS);
        loop {
            let answer = self
                .channel
                .call(
                    api_key,
                    version,
                    &request,
                    Duration::from_millis(PROPOSE_TIMEOUT_MS),
                )
                .await;
            match answer {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() >= deadline => {
                    return Err(BrokerError::kafka(ResponseError::NotController, e))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await,
            }
        }
    }

    /// Controlled shutdown: heartbeats ask the controller to move this broker's
    /// leaderships away; returns when it says the broker may stop, or after `limit`.
    pub async fn controlled_shutdown(&self, limit: Duration) {
        if self.broker_epoch() < 0 {
            return;
        }
        self.shutting_down.store(true, Ordering::Release);
        let mut rx = self.may_stop.subscribe();
        let wait = async {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(()) => tracing::info!("controlled shutdown complete: this broker leads nothing"),
            Err(_) => tracing::warn!(limit_ms = limit.as_millis() as u64,
                "controlled shutdown did not complete in time; stopping anyway (the controller fences this broker when its session expires)"),
        }
    }

    /// Stops pulling and heartbeating, then this process's controller. Admin changes
    /// still waiting end with NOT_CONTROLLER.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let loops: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.loops.lock().unwrap_or_else(|p| p.into_inner()));
        for task in loops {
            task.abort();
            let _ = task.await;
        }
        if let Some(c) = &self.controller {
            if let Err(e) = c.shutdown().await {
                tracing::warn!(error = %e, "stopping the controller");
            }
        }
    }
}

/// Pulls committed metadata from the active controller until the node stops.
async fn pull_loop(store: Arc<MetadataStore>) {
    let mut last_warned = Instant::now() - Duration::from_secs(60);
    loop {
        if store.stopping.is_cancelled() {
            return;
        }
        let current = store.controller_image();
        let pulled = store
            .client
            .pull(
                current.revision(),
                Duration::from_millis(PULL_WAIT_MS),
                Duration::from_millis(PULL_TIMEOUT_MS),
            )
            .await;
        match pulled {
            Ok(p) => {
                let next = match p.image {
                    Some(image) => Some(image),
                    None => apply_entries(&current, p.entries, p.revision),
                };
                match next {
                    Some(next) if next.revision() > current.revision() => {
                        store.pulled.send_replace(Arc::new(next));
                    }
                    Some(_) => {}
                    None => {
                        // Our copy diverged from the leader's log (should not happen):
                        // start over from an empty image.
                        tracing::error!(revision = current.revision(),
                            "pulled metadata records do not apply to this broker's image; reloading the whole image");
                        store
                            .pulled
                            .send_replace(Arc::new(MetadataImage::default()));
                    }
                }
            }
            Err(e) => {
                if last_warned.elapsed() > Duration::from_secs(10) {
                    tracing::warn!(error = %e, "cannot pull metadata from the controller quorum; retrying");
                    last_warned = Instant::now();
                }
                tokio::select! {
                    _ = store.stopping.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)) => {}
                }
            }
        }
    }
}

/// `current` with the pulled entries applied, at `revision`; `None` when one does not
/// apply.
fn apply_entries(
    current: &MetadataImage,
    entries: Vec<(u64, isthmus_controller::records::MetadataProposal)>,
    revision: u64,
) -> Option<MetadataImage> {
    if entries.is_empty() && revision <= current.revision() {
        return Some(current.clone());
    }
    let mut image = current.clone();
    for (index, proposal) in entries {
        if index <= image.revision() {
            continue;
        }
        match image.apply(index, &proposal) {
            Ok(next) => image = next,
            Err(r) => {
                tracing::error!(index, rejection = %r, "a committed metadata entry does not apply here");
                return None;
            }
        }
    }
    if revision > image.revision() {
        image = image.advanced_to(revision);
    }
    Some(image)
}

/// Heartbeats to the active controller every `broker.heartbeat.interval.ms` until the
/// node stops; re-registers when the controller no longer knows this registration.
async fn heartbeat_loop(store: Arc<MetadataStore>) {
    loop {
        let request = RequestKind::BrokerHeartbeat(
            BrokerHeartbeatRequest::default()
                .with_broker_id(BrokerId(store.node_id))
                .with_broker_epoch(store.broker_epoch())
                .with_current_metadata_offset(store.controller_image().revision() as i64)
                .with_want_fence(false)
                .with_want_shut_down(store.shutting_down.load(Ordering::Acquire)),
        );
        let answer = store
            .channel
            .call(
                ApiKey::BrokerHeartbeat,
                1,
                &request,
                Duration::from_millis(CALL_TIMEOUT_MS),
            )
            .await;
        let mut pause = store.heartbeat_interval;
        match answer {
            Ok(ResponseKind::BrokerHeartbeat(r)) if r.error_code == 0 => {
                store.fenced.send_if_modified(|f| {
                    let changed = *f != r.is_fenced;
                    *f = r.is_fenced;
                    changed
                });
                if r.should_shut_down {
                    store.may_stop.send_replace(true);
                }
                // While something is expected (unfencing, shutdown), ask again sooner.
                if r.is_fenced || store.shutting_down.load(Ordering::Acquire) {
                    pause = pause.min(Duration::from_millis(RETRY_PAUSE_MS));
                }
            }
            Ok(ResponseKind::BrokerHeartbeat(r)) => {
                let error = ResponseError::try_from_code(r.error_code);
                match error {
                    Some(ResponseError::NotController) => store.channel.reset().await,
                    Some(ResponseError::StaleBrokerEpoch)
                    | Some(ResponseError::BrokerIdNotRegistered) => {
                        tracing::warn!(
                            ?error,
                            "the controller no longer knows this broker's registration"
                        );
                    }
                    _ => tracing::debug!(?error, "heartbeat refused"),
                }
                pause = pause.min(Duration::from_millis(RETRY_PAUSE_MS));
            }
            Ok(other) => tracing::debug!(?other, "unexpected heartbeat answer"),
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed");
                pause = pause.min(Duration::from_millis(RETRY_PAUSE_MS));
            }
        }
        tokio::select! {
            _ = store.stopping.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
