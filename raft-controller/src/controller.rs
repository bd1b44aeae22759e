//! [`Controller`]: the handle the broker uses — start, propose, read the image, watch
//! revisions, leadership and quorum status, shut down.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::brokers::{tend_loop, Sessions};
use crate::config::{load_and_check_meta, ControllerConfig};
use crate::error::{ControllerError, RejectCode, Rejection};
use crate::image::MetadataImage;
use crate::network::client::{NetworkFactory, PeerClient};
use crate::network::server::{serve, KafkaConnHandler, Observers, ServerCtx};
use crate::network::{ProposeError, Request, Response};
use crate::records::{MetadataProposal, MetadataRecord, PROPOSAL_BYTES_MAX};
use crate::storage::log::{LogStore, WriterExit};
use crate::storage::state_machine::StateMachineStore;
use crate::types::Raft;
use crate::NodeId;

/// Bound on idle pooled connections per peer for forwarded proposals.
const FORWARD_POOL_MAX: usize = 4;
/// Pooled forwarding connections idle longer than this are dropped (well under the
/// server's idle timeout, so a pooled connection is rarely found closed).
const FORWARD_IDLE_MS: u64 = crate::network::IDLE_TIMEOUT_MS / 4;
/// Bound on waiting for the log writer thread to finish at shutdown.
const WRITER_EXIT_TIMEOUT_MS: u64 = 5000;

/// One voter's replication state, as DescribeQuorum reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterStatus {
    pub id: NodeId,
    pub addr: String,
    /// The voter's log end offset (last log index + 1) as the leader knows it; `None`
    /// when this node is not the leader (except for itself) or has not heard yet.
    pub log_end_offset: Option<u64>,
    /// Entries behind the leader's log end, when known.
    pub lag: Option<u64>,
}

/// What DescribeQuorum needs, from this node's point of view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub term: u64,
    /// This node's last log index + 1.
    pub log_end_offset: u64,
    /// The revision of this node's image (last applied index).
    pub applied_revision: u64,
    /// The newest snapshot's last index.
    pub snapshot_index: Option<u64>,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// The first index still in this node's log (entries before it were purged behind
    /// a snapshot).
    pub log_start_offset: u64,
    pub voters: Vec<VoterStatus>,
    /// Brokers pulling metadata from this node (its view; the leader's is the one that
    /// matters): DescribeQuorum's observers.
    #[serde(default)]
    pub observers: Vec<ObserverStatus>,
}

/// A broker that pulls metadata, as the leader last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserverStatus {
    pub id: NodeId,
    /// The revision the broker had at its last pull, plus one (a log end offset, like
    /// the voters').
    pub log_end_offset: u64,
    /// Entries behind this node's log end.
    pub lag: u64,
    /// Unix milliseconds of its last pull.
    pub last_fetch_unix_ms: i64,
}

struct Inner {
    config: ControllerConfig,
    cluster_id: String,
    raft: Raft,
    sm: StateMachineStore,
    addrs: Arc<BTreeMap<NodeId, String>>,
    server_ctx: Arc<ServerCtx>,
    shutdown_tx: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
    writer_exit: Mutex<Option<WriterExit>>,
    observers: Arc<Observers>,
    sessions: Sessions,
    /// Idle connections for forwarded proposals, with when they were last used.
    forward_pool: Mutex<BTreeMap<NodeId, Vec<(PeerClient, Instant)>>>,
    stopped: AtomicBool,
}

/// A running controller (one voter of the metadata quorum). Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("node_id", &self.inner.config.node_id)
            .field("cluster_id", &self.inner.cluster_id)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Starts a controller on a formatted metadata directory: checks the stored identity
    /// and voters against `config`, opens the log and the newest snapshot, binds the RPC
    /// listener, and joins (or on first start, forms) the quorum.
    pub async fn start(config: ControllerConfig) -> Result<Controller, ControllerError> {
        config.validate()?;
        load_and_check_meta(&config)?;
        let listener = std::net::TcpListener::bind(config.listen_addr).map_err(|e| {
            ControllerError::Config(format!(
                "cannot listen on {} for controller RPC: {e}",
                config.listen_addr
            ))
        })?;
        Self::start_with_listener(config, listener).await
    }

    /// [`Controller::start`] on an already bound listener (socket activation, tests that
    /// must hold their ports); `config.listen_addr` is then only informational.
    pub async fn start_with_listener(
        config: ControllerConfig,
        listener: std::net::TcpListener,
    ) -> Result<Controller, ControllerError> {
        config.validate()?;
        let meta = load_and_check_meta(&config)?;
        let dir = config.metadata_dir.clone();
        let (log, writer_exit) = LogStore::open(&dir.join("raft"))?;
        let sm = StateMachineStore::open(&dir.join("snapshots"))?;

        let raft_config = openraft::Config {
            cluster_name: meta.cluster_id.clone(),
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            heartbeat_interval: config.heartbeat_interval_ms,
            install_snapshot_timeout: config.rpc_timeout_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: config.log_entries_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControllerError::Config(format!("raft settings: {e}")))?;

        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
            .map_err(|e| ControllerError::Config(format!("controller RPC listener: {e}")))?;

        let addrs: Arc<BTreeMap<NodeId, String>> =
            Arc::new(config.voters.iter().map(|v| (v.id, v.addr())).collect());
        let network = NetworkFactory {
            cluster_id: Arc::from(meta.cluster_id.as_str()),
            self_id: config.node_id,
            addrs: addrs.clone(),
            backoff: Duration::from_millis(config.heartbeat_interval_ms.max(50) * 2),
        };
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log,
            sm.clone(),
        )
        .await
        .map_err(|e| ControllerError::Raft(format!("starting raft: {e}")))?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let observers = Arc::new(Observers::default());
        let ctx = Arc::new(ServerCtx {
            cluster_id: meta.cluster_id.clone(),
            node_id: config.node_id,
            raft: raft.clone(),
            sm: sm.clone(),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            addrs: addrs.clone(),
            observers: observers.clone(),
            kafka: std::sync::RwLock::new(None),
        });
        let server_ctx = ctx.clone();
        let server = tokio::spawn(serve(listener, ctx, shutdown_rx));

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        if !initialized {
            // Every voter of a freshly formatted quorum proposes the same membership as
            // log entry 0; openraft documents this as safe.
            let members: BTreeMap<NodeId, BasicNode> = config
                .voters
                .iter()
                .map(|v| (v.id, BasicNode { addr: v.addr() }))
                .collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(
                    node = config.node_id,
                    "formed the metadata quorum's initial membership"
                ),
                Err(RaftError::APIError(e)) => {
                    tracing::info!(error = %e, "quorum already initialised")
                }
                Err(RaftError::Fatal(e)) => {
                    return Err(ControllerError::Raft(format!("initialising: {e}")))
                }
            }
        }
        tracing::info!(
            node = config.node_id,
            cluster = %meta.cluster_id,
            listen = %config.listen_addr,
            voters = %crate::config::voters_to_string(&config.voters),
            "controller started"
        );
        let controller = Controller {
            inner: Arc::new(Inner {
                cluster_id: meta.cluster_id,
                config,
                raft,
                sm,
                addrs,
                observers,
                sessions: Sessions::default(),
                server_ctx,
                shutdown_tx,
                server: Mutex::new(Some(server)),
                writer_exit: Mutex::new(Some(writer_exit)),
                forward_pool: Mutex::new(BTreeMap::new()),
                stopped: AtomicBool::new(false),
            }),
        };
        tokio::spawn(tend_loop(
            controller.clone(),
            controller.inner.shutdown_tx.subscribe(),
        ));
        Ok(controller)
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The Raft term this node is in.
    pub fn current_term(&self) -> u64 {
        self.inner.raft.metrics().borrow().current_term
    }

    /// The configured address of voter `id`.
    pub fn voter_addr(&self, id: NodeId) -> Option<String> {
        self.inner.addrs.get(&id).cloned()
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.inner.config
    }

    /// The current metadata image (committed and applied on this node).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.sm.image()
    }

    /// A receiver that wakes on each new image (its revision only grows).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.sm.subscribe()
    }

    /// Waits until this node's image reaches `revision`.
    pub async fn wait_for_revision(
        &self,
        revision: u64,
        timeout: Duration,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        let mut rx = self.subscribe();
        let wait = async {
            loop {
                let img = rx.borrow_and_update().clone();
                if img.revision() >= revision {
                    return Ok(img);
                }
                if rx.changed().await.is_err() {
                    return Err(ControllerError::ShutDown);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            ControllerError::Timeout(format!(
                "image of node {} reaching revision {revision}",
                self.node_id()
            ))
        })?
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Whether this node is the active controller.
    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id())
    }

    /// Waits until some leader is known.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ControllerError> {
        let mut rx = self.inner.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow_and_update().current_leader {
                    return Ok(l);
                }
                if rx.changed().await.is_err() {
                    return Err(ControllerError::ShutDown);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ControllerError::Timeout("no controller leader elected".into()))?
    }

    /// Voters, leader, and per-voter log end and lag (known on the leader), and the
    /// brokers pulling metadata from this node.
    pub fn quorum_status(&self) -> QuorumStatus {
        quorum_status(
            &self.inner.raft,
            &self.inner.sm,
            &self.inner.addrs,
            &self.inner.observers,
        )
    }

    /// Lets Kafka-protocol connections on the controller listener be served by `handler`
    /// (until set, they are closed).
    pub fn serve_kafka(&self, handler: KafkaConnHandler) {
        *self
            .inner
            .server_ctx
            .kafka
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    /// Validates `records` on the leader and commits them as one log entry; returns the
    /// entry's revision once this node's image has it. A follower forwards the proposal
    /// to the leader. Fails with `NotLeader` when no leader is known within an election
    /// timeout, `Rejected` when validation (or apply) refused the records.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ControllerError> {
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(ControllerError::ShutDown);
        }
        let timeout = Duration::from_millis(self.inner.config.request_timeout_ms);
        let proposal = MetadataProposal::new(records);
        let fut = async {
            let leader = match self.leader() {
                Some(l) => l,
                None => self
                    .wait_for_leader(Duration::from_millis(
                        self.inner.config.election_timeout_max_ms,
                    ))
                    .await
                    .map_err(|_| ControllerError::NotLeader {
                        leader: None,
                        leader_addr: None,
                    })?,
            };
            let revision = if leader == self.node_id() {
                match leader_propose(&self.inner.raft, &self.inner.sm, proposal.clone()).await {
                    Err(ControllerError::NotLeader {
                        leader: Some(other),
                        ..
                    }) if other != self.node_id() => self.forward(other, proposal).await?,
                    other => other?,
                }
            } else {
                self.forward(leader, proposal).await?
            };
            self.wait_for_revision(revision, timeout).await?;
            Ok(revision)
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| {
            ControllerError::Timeout(format!(
                "proposal not committed within {} ms",
                timeout.as_millis()
            ))
        })?
    }

    async fn forward(
        &self,
        leader: NodeId,
        proposal: MetadataProposal,
    ) -> Result<u64, ControllerError> {
        let addr = self
            .inner
            .addrs
            .get(&leader)
            .cloned()
            .ok_or(ControllerError::NotLeader {
                leader: Some(leader),
                leader_addr: None,
            })?;
        let mut client = {
            let mut pool = self.inner.forward_pool.lock().await;
            let idle = pool.entry(leader).or_default();
            idle.retain(|(_, at)| at.elapsed() < Duration::from_millis(FORWARD_IDLE_MS));
            idle.pop().map(|(c, _)| c)
        }
        .unwrap_or_else(|| {
            PeerClient::new(
                Arc::from(self.inner.cluster_id.as_str()),
                self.node_id(),
                leader,
                addr.clone(),
            )
        });
        let timeout = Duration::from_millis(self.inner.config.request_timeout_ms);
        let res = client.call(&Request::Propose(proposal), &[], timeout).await;
        let out = match res {
            Ok(Response::Propose(Ok(rev))) => Ok(rev),
            Ok(Response::Propose(Err(ProposeError::Rejected(r)))) => {
                Err(ControllerError::Rejected(r))
            }
            Ok(Response::Propose(Err(ProposeError::NotLeader {
                leader,
                leader_addr,
            }))) => Err(ControllerError::NotLeader {
                leader,
                leader_addr,
            }),
            Ok(Response::Propose(Err(ProposeError::Other(e)))) => {
                Err(ControllerError::Raft(format!("on leader {leader}: {e}")))
            }
            Ok(other) => Err(ControllerError::Network(format!(
                "unexpected answer from {leader}: {other:?}"
            ))),
            Err(e) => Err(ControllerError::Network(format!(
                "forwarding to leader {leader} at {addr}: {e}"
            ))),
        };
        if out.is_ok() || matches!(out, Err(ControllerError::Rejected(_))) {
            let mut pool = self.inner.forward_pool.lock().await;
            let v = pool.entry(leader).or_default();
            if v.len() < FORWARD_POOL_MAX {
                v.push((client, Instant::now()));
            }
        }
        out
    }

    /// Asks openraft to build a snapshot now (then purge the log behind it per config).
    pub async fn trigger_snapshot(&self) -> Result<(), ControllerError> {
        self.inner
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))
    }

    /// Stops Raft, the RPC listener and its connections, and waits for the log writer
    /// to finish. Idempotent.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Stop answering peers first (they see a refused connection, not a stopped
        // Raft), then stop Raft itself.
        let _ = self.inner.shutdown_tx.send(true);
        if let Some(server) = self.inner.server.lock().await.take() {
            let _ = server.await;
        }
        let raft_res = self.inner.raft.shutdown().await;
        self.inner.forward_pool.lock().await.clear();
        if let Some(exit) = self.inner.writer_exit.lock().await.take() {
            if tokio::time::timeout(Duration::from_millis(WRITER_EXIT_TIMEOUT_MS), exit.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    node = self.node_id(),
                    "the Raft log writer did not stop in time"
                );
            }
        }
        tracing::info!(node = self.node_id(), "controller stopped");
        raft_res.map_err(|e| ControllerError::Raft(format!("shutting down raft: {e}")))
    }
}

/// The leader path: validate against the applied image, append through openraft, and
/// report the apply outcome. Used by [`Controller::propose`] and by forwarded proposals.
pub(crate) async fn leader_propose(
    raft: &Raft,
    sm: &StateMachineStore,
    proposal: MetadataProposal,
) -> Result<u64, ControllerError> {
    let size = serde_json::to_vec(&proposal)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > PROPOSAL_BYTES_MAX {
        return Err(ControllerError::Rejected(Rejection::new(
            RejectCode::InvalidRequest,
            format!("proposal of {size} bytes exceeds {PROPOSAL_BYTES_MAX}; split it"),
        )));
    }
    sm.image().validate(&proposal)?;
    match raft.client_write(proposal).await {
        Ok(resp) => match resp.data.rejection {
            Some(r) => Err(ControllerError::Rejected(r)),
            None => Ok(resp.log_id.index),
        },
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ControllerError::NotLeader {
                leader: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            })
        }
        Err(RaftError::APIError(e)) => Err(ControllerError::Raft(e.to_string())),
        Err(RaftError::Fatal(openraft::error::Fatal::Stopped)) => Err(ControllerError::ShutDown),
        Err(RaftError::Fatal(e)) => Err(ControllerError::Raft(e.to_string())),
    }
}

/// [`Controller::quorum_status`], shared with the RPC server.
pub(crate) fn quorum_status(
    raft: &Raft,
    sm: &StateMachineStore,
    addrs: &BTreeMap<NodeId, String>,
    observers: &Observers,
) -> QuorumStatus {
    let m = raft.metrics().borrow().clone();
    let log_end = m.last_log_index.map_or(0, |i| i + 1);
    let is_leader = m.state == ServerState::Leader;
    let voters = m
        .membership_config
        .membership()
        .voter_ids()
        .map(|id| {
            let addr = addrs
                .get(&id)
                .cloned()
                .or_else(|| {
                    m.membership_config
                        .membership()
                        .get_node(&id)
                        .map(|n| n.addr.clone())
                })
                .unwrap_or_default();
            let end = if id == m.id {
                Some(log_end)
            } else if is_leader {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id))
                    .map(|matched| matched.map_or(0, |l| l.index + 1))
            } else {
                None
            };
            VoterStatus {
                id,
                addr,
                log_end_offset: end,
                lag: if is_leader || id == m.id {
                    end.map(|e| log_end.saturating_sub(e))
                } else {
                    None
                },
            }
        })
        .collect();
    QuorumStatus {
        node_id: m.id,
        leader: m.current_leader,
        is_leader,
        term: m.current_term,
        log_end_offset: log_end,
        applied_revision: sm.image().revision(),
        snapshot_index: m.snapshot.map(|l| l.index),
        log_start_offset: m.purged.map_or(0, |l| l.index + 1),
        millis_since_quorum_ack: m.millis_since_quorum_ack,
        voters,
        observers: observers
            .snapshot()
            .into_iter()
            .map(|(id, revision, at)| ObserverStatus {
                id,
                log_end_offset: revision + 1,
                lag: log_end.saturating_sub(revision + 1),
                last_fetch_unix_ms: at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(-1, |d| d.as_millis() as i64),
            })
            .collect(),
    }
}
