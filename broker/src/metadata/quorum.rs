//! The node's metadata on the Raft quorum: where the quorum's directory is, formatting it,
//! the embedded [`Controller`] (`process.roles=broker,controller`), this broker's
//! registration, and [`MetadataStore`], through which the broker reads its view of the
//! image and proposes changes.
//!
//! # Revisions and waiting
//! The controller applies committed records to its `MetadataImage`; the broker's follow
//! loop (`broker::follow_metadata`) turns each new image into the broker's [`Image`],
//! reconciles the local partitions to it and only then publishes it here. An admin change
//! ([`MetadataStore::propose`]) returns once the *published* view has the change's revision,
//! so the handler answers only when the topic's logs exist (or are gone) on this node.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use isthmus_controller::records::{BrokerEndpoint, BrokerRegistrationRecord, MetadataRecord};
use isthmus_controller::{Controller, ControllerConfig, ControllerError, MetadataImage};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::legacy::{self, Legacy};
use super::store::Image;
use crate::config::load::Listener;
use crate::config::NodeConfig;
use crate::error::BrokerError;
use crate::metadata::store::sync_dir;
use crate::replica::manager::is_partition_dir;

/// The quorum's folder inside `metadata.log.dir` (it took over the name of the single-node
/// store's folder, whose content is imported once: see [`legacy`]).
pub const METADATA_DIR: &str = "metadata";
/// How long startup waits for the quorum to elect a leader.
pub const LEADER_WAIT_MS: u64 = 30_000;
/// Bound on an admin change: commit plus this node reconciling its partitions.
pub const PROPOSE_TIMEOUT_MS: u64 = 30_000;
/// Bound on fencing this broker at a clean shutdown.
const SHUTDOWN_FENCE_TIMEOUT_MS: u64 = 2_000;
/// Timeouts of a quorum of one: nobody else can win an election, so the node may claim
/// leadership soon after a restart.
const SOLO_ELECTION_TIMEOUT_MIN_MS: u64 = 300;
const SOLO_ELECTION_TIMEOUT_MAX_MS: u64 = 600;
const SOLO_HEARTBEAT_INTERVAL_MS: u64 = 100;

/// The log dir (or `metadata.log.dir`) that holds the quorum's folder.
///
/// Unset `metadata.log.dir`: the log dir that already has metadata (quorum, old store, or an
/// import in progress) — operators may reorder `log.dirs` — else the first. Partition data
/// without metadata anywhere is refused rather than treated as "no topics".
pub fn locate(node: &NodeConfig) -> Result<PathBuf, BrokerError> {
    let has_metadata = |d: &Path| {
        let m = d.join(METADATA_DIR);
        isthmus_controller::is_formatted(&m)
            || legacy::holds_only_legacy_files(&m)
            || d.join(legacy::LEGACY_DIR).exists()
    };
    let found: Vec<&PathBuf> = node.log_dirs.iter().filter(|d| has_metadata(d)).collect();
    let list = |dirs: &[&PathBuf]| {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match (&node.metadata_log_dir, found.as_slice()) {
        (Some(dir), _) if has_metadata(dir) => return Ok(dir.clone()),
        (Some(dir), [other, ..]) if *other != dir => {
            return Err(BrokerError::Fatal(format!(
                "metadata.log.dir {} holds no metadata but log dir {} does; point metadata.log.dir at {} (or unset it)",
                dir.display(),
                other.display(),
                other.display()
            )))
        }
        (Some(dir), _) => dir.clone(),
        (None, [one]) => return Ok((*one).clone()),
        (None, []) => node.log_dirs[0].clone(),
        (None, many) => {
            return Err(BrokerError::Fatal(format!(
                "metadata found in more than one log dir ({}); keep the current one and remove the others",
                list(many)
            )))
        }
    };
    // No metadata where it will be created: partition data would all look unknown.
    let has_partitions = node.log_dirs.iter().any(|d| {
        std::fs::read_dir(d)
            .map(|entries| entries.flatten().any(|e| is_partition_dir(&e.path())))
            .unwrap_or(false)
    });
    if has_partitions {
        return Err(BrokerError::Fatal(format!(
            "the log dirs {} hold partitions but no metadata ({METADATA_DIR}/); restore the metadata folder or point log.dirs (or metadata.log.dir) at the folder that has it",
            list(&node.log_dirs.iter().collect::<Vec<_>>())
        )));
    }
    Ok(chosen)
}

/// Makes `<parent>/metadata` a formatted quorum directory. A quorum of this node alone
/// initialises an empty (or missing) one; the old single-node store's folder is first moved
/// to [`legacy::LEGACY_DIR`] for import. Anything else that is not formatted is refused:
/// a node never formats a non-empty metadata directory by itself.
pub fn prepare(parent: &Path, cluster_id: &str, node: &NodeConfig) -> Result<PathBuf, BrokerError> {
    let dir = parent.join(METADATA_DIR);
    if isthmus_controller::is_formatted(&dir) {
        return Ok(dir);
    }
    if legacy::holds_only_legacy_files(&dir) {
        let aside = parent.join(legacy::LEGACY_DIR);
        if aside.exists() {
            return Err(BrokerError::Fatal(format!(
                "both {} and {} hold metadata of the single-node store; keep the newer one and remove the other",
                dir.display(),
                aside.display()
            )));
        }
        std::fs::rename(&dir, &aside).map_err(|e| BrokerError::io(&dir, e))?;
        sync_dir(parent)?;
        tracing::info!(from = %dir.display(), to = %aside.display(), "moved the single-node metadata aside to import it into the metadata quorum");
    }
    let empty = match std::fs::read_dir(&dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(BrokerError::io(&dir, e)),
    };
    if !empty {
        return Err(BrokerError::Fatal(format!(
            "metadata directory {} is not formatted (no meta.json) but is not empty; Isthmus never formats a non-empty metadata directory by itself: restore its meta.json, or move its content away and run `isthmus format --cluster-id <id>`",
            dir.display()
        )));
    }
    let alone = node.voters.len() == 1 && node.voters[0].id == node.node_id as u64;
    if !alone {
        return Err(BrokerError::Fatal(format!(
            "metadata directory {} is not formatted; run `isthmus format --cluster-id <id>` with the same settings on every controller first",
            dir.display()
        )));
    }
    isthmus_controller::format(&dir, cluster_id, node.node_id as u64, &node.voters)?;
    tracing::info!(dir = %dir.display(), cluster_id, "initialised the metadata directory (this node is the only voter)");
    Ok(dir)
}

/// The node's metadata: the embedded controller and the broker's published view of it.
pub struct MetadataStore {
    controller: Controller,
    node_id: i32,
    /// The view reconciled with the local partitions; see the module docs.
    published: watch::Sender<Arc<Image>>,
    /// This process's registration: a new incarnation per start.
    incarnation: Uuid,
    /// The registration's broker epoch (-1 until registered).
    broker_epoch: AtomicI64,
    runtime: Handle,
    /// Cancelled when the node stops: waits for the published view end at once.
    stopping: CancellationToken,
}

impl MetadataStore {
    /// Starts the embedded controller on `dir` and waits until the quorum has a leader.
    pub async fn start(
        node: &NodeConfig,
        dir: &Path,
        cluster_id: &str,
    ) -> Result<MetadataStore, BrokerError> {
        let bind = match &node.controller_listener {
            Some(l) if l.port != 0 => l.bind_address(),
            Some(l) => Listener {
                port: 0,
                ..l.clone()
            }
            .bind_address(),
            // A quorum of this node alone has no peers: an unadvertised loopback port.
            None => "127.0.0.1:0".to_string(),
        };
        let listener = std::net::TcpListener::bind(&bind).map_err(|e| {
            BrokerError::Fatal(format!(
                "cannot listen on {bind} for the controller quorum: {e}; is another node running there? change the controller listener in `listeners`"
            ))
        })?;
        let listen_addr: SocketAddr = listener
            .local_addr()
            .map_err(|e| BrokerError::Fatal(e.to_string()))?;
        let mut config =
            ControllerConfig::new(node.node_id as u64, node.voters.clone(), listen_addr, dir);
        config.cluster_id = Some(cluster_id.to_string());
        config.request_timeout_ms = PROPOSE_TIMEOUT_MS;
        if node.voters.len() == 1 {
            config.election_timeout_min_ms = SOLO_ELECTION_TIMEOUT_MIN_MS;
            config.election_timeout_max_ms = SOLO_ELECTION_TIMEOUT_MAX_MS;
            config.heartbeat_interval_ms = SOLO_HEARTBEAT_INTERVAL_MS;
        }
        let controller = Controller::start_with_listener(config, listener).await?;
        let leader = controller
            .wait_for_leader(Duration::from_millis(LEADER_WAIT_MS))
            .await
            .map_err(|e| {
                BrokerError::Fatal(format!(
                    "the metadata quorum elected no leader within {LEADER_WAIT_MS} ms: {e}"
                ))
            })?;
        tracing::info!(leader, controller_addr = %listen_addr, "metadata quorum is up");
        let initial = Arc::new(Image::from_controller(&controller.image(), None));
        Ok(MetadataStore {
            controller,
            node_id: node.node_id,
            published: watch::Sender::new(initial),
            incarnation: Uuid::new_v4(),
            broker_epoch: AtomicI64::new(-1),
            runtime: Handle::current(),
            stopping: CancellationToken::new(),
        })
    }

    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The broker's current view (reconciled with the local partitions).
    pub fn image(&self) -> Arc<Image> {
        self.published.borrow().clone()
    }

    /// Installs a view the local partitions now match.
    pub fn publish(&self, image: Arc<Image>) {
        self.published.send_replace(image);
    }

    /// The controller's image (newer than [`MetadataStore::image`] while the follow loop
    /// reconciles).
    pub fn controller_image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// Registers this broker process (a new incarnation: endpoints, rack) and unfences it.
    /// A registration left unfenced by a previous process of this node (killed without a
    /// clean stop) is fenced first: holding the log dirs' locks proves that process is gone.
    pub async fn register(
        &self,
        endpoints: &[Listener],
        rack: Option<&str>,
    ) -> Result<i64, BrokerError> {
        let mut records = Vec::new();
        if let Some(old) = self.controller.image().broker(self.node_id) {
            if !old.fenced && old.incarnation_id != self.incarnation {
                records.push(MetadataRecord::FenceBroker {
                    broker_id: self.node_id,
                    broker_epoch: old.broker_epoch,
                });
            }
        }
        records.push(MetadataRecord::RegisterBroker(BrokerRegistrationRecord {
            broker_id: self.node_id,
            incarnation_id: self.incarnation,
            rack: rack.map(String::from),
            endpoints: endpoints
                .iter()
                .map(|l| BrokerEndpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port,
                    security_protocol: "PLAINTEXT".into(),
                })
                .collect(),
        }));
        let revision = self.controller.propose(records).await?;
        let epoch = i64::try_from(revision)
            .map_err(|_| BrokerError::Fatal("metadata revision beyond i64".into()))?;
        self.controller
            .propose(vec![MetadataRecord::UnfenceBroker {
                broker_id: self.node_id,
                broker_epoch: epoch,
            }])
            .await?;
        self.broker_epoch.store(epoch, Ordering::Release);
        tracing::info!(broker_epoch = epoch, incarnation = %self.incarnation, "registered and unfenced this broker");
        Ok(epoch)
    }

    /// Imports a single-node store moved aside by [`prepare`], if there is one, then keeps
    /// its folder as [`legacy::IMPORTED_DIR`]. Needs this broker registered.
    pub async fn import_legacy(&self, parent: &Path) -> Result<(), BrokerError> {
        let aside = parent.join(legacy::LEGACY_DIR);
        if !aside.exists() {
            return Ok(());
        }
        let old: Legacy = legacy::read(&aside)?;
        let proposals = legacy::import_records(
            &old,
            &self.controller.image(),
            self.node_id,
            self.broker_epoch(),
        )?;
        let count = proposals.len();
        for records in proposals {
            self.controller.propose(records).await?;
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

    /// Proposes `records` and waits until this node's published view has them. Async form
    /// of [`MetadataStore::propose`].
    pub async fn propose_async(&self, records: Vec<MetadataRecord>) -> Result<u64, BrokerError> {
        let revision = self.controller.propose(records).await?;
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

    /// Fences this broker (best effort, bounded) and stops the controller. Admin changes
    /// still waiting end with NOT_CONTROLLER.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let epoch = self.broker_epoch();
        if epoch >= 0 {
            let fence = self.controller.propose(vec![MetadataRecord::FenceBroker {
                broker_id: self.node_id,
                broker_epoch: epoch,
            }]);
            match tokio::time::timeout(Duration::from_millis(SHUTDOWN_FENCE_TIMEOUT_MS), fence)
                .await
            {
                Ok(Ok(_)) => tracing::info!("fenced this broker for shutdown"),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not fence this broker at shutdown"),
                Err(_) => tracing::warn!("fencing this broker at shutdown timed out"),
            }
        }
        if let Err(e) = self.controller.shutdown().await {
            tracing::warn!(error = %e, "stopping the controller");
        }
    }
}
