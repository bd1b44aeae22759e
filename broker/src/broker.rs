//! The node: its configuration, identity, metadata (the embedded controller and the broker's
//! view of it), replicas and producer ids, shared by every connection and background task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use isthmus_controller::MetadataImage;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::config::load::Listener;
use crate::config::{NodeConfig, Settings, Source};
use crate::error::BrokerError;
use crate::group::assignor::Assignor;
use crate::group::consumer::ConsumerGroupConfig;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::metadata::identity::{claim_log_dirs, formatted_cluster_id, LogDirLock};
use crate::metadata::{quorum, Image, MetadataStore};
use crate::producer_ids::ProducerIdAllocator;
use crate::replica::ReplicaManager;

pub struct Broker {
    pub node: NodeConfig,
    /// Node settings with dynamic overrides applied; read on every topic-settings resolve.
    settings: RwLock<Settings>,
    pub cluster_id: String,
    pub metadata: Arc<MetadataStore>,
    pub replicas: ReplicaManager,
    pub producer_ids: ProducerIdAllocator,
    pub groups: GroupCoordinator,
    /// What Metadata tells clients and what this broker registered: the advertised
    /// listeners, or the bound ones (port 0 resolved).
    advertised: Vec<Listener>,
    pub shutdown: CancellationToken,
    /// Wakes the ISR upkeep (`isr::run`) when a follower caught up.
    pub isr_wakeup: tokio::sync::Notify,
    pub replication_stats: crate::replica::stats::ReplicationStats,
    /// `leader/follower.replication.throttled.rate` (KIP-73), set from the settings in force.
    pub replication_quotas: crate::replica::quota::ReplicationQuotas,
    /// Serialises this node's admin changes (validation against the current view, then the
    /// proposal), so two requests never validate against the same view.
    pub(crate) admin: tokio::sync::Mutex<()>,
    _dir_locks: Vec<LogDirLock>,
}

/// The node between [`Broker::start_quorum`] and [`Broker::open`].
pub struct QuorumStarted {
    pub cluster_id: String,
    dir_locks: Vec<LogDirLock>,
    parent: std::path::PathBuf,
    pub metadata: Arc<MetadataStore>,
}

impl Broker {
    /// First startup phase: claims the log dirs and starts the metadata quorum (formatting
    /// a quorum of this node alone on first start). Runs before the client listeners are
    /// bound, so a node that cannot start never accepts connections.
    pub async fn start_quorum(node: &NodeConfig) -> Result<QuorumStarted, BrokerError> {
        let mut claimed = node.log_dirs.clone();
        if let Some(dir) = &node.metadata_log_dir {
            if !claimed.contains(dir) {
                claimed.push(dir.clone());
            }
        }
        let alone = node.roles.controller
            && node.voters.len() == 1
            && node.voters[0].id == node.node_id as u64;
        if !alone && formatted_cluster_id(&claimed)?.is_none() {
            return Err(BrokerError::Fatal(format!(
                "the log dirs ({}) are not formatted; run `isthmus format --cluster-id <id>` with the same settings first (every node of a cluster gets the same id)",
                claimed.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        let (cluster_id, dir_locks) = claim_log_dirs(&claimed, node.node_id, None)?;
        let (parent, controller) = if node.roles.controller {
            let parent = quorum::locate(node)?;
            let metadata_dir = quorum::prepare(&parent, &cluster_id, node)?;
            let controller = quorum::start_controller(node, &metadata_dir, &cluster_id).await?;
            (parent, Some(controller))
        } else {
            let parent = node
                .metadata_log_dir
                .clone()
                .unwrap_or_else(|| node.log_dirs[0].clone());
            (parent, None)
        };
        let metadata = MetadataStore::start(node, controller, &cluster_id, &parent);
        Ok(QuorumStarted {
            cluster_id,
            dir_locks,
            parent,
            metadata,
        })
    }

    /// Second phase: registers this broker with the client listeners `bound`, imports the
    /// single-node store's metadata once, and opens (recovering if needed) every partition
    /// the image places here. Must run inside the tokio runtime.
    pub async fn open(
        node: NodeConfig,
        started: QuorumStarted,
        bound: &[Listener],
    ) -> Result<Arc<Broker>, BrokerError> {
        let QuorumStarted {
            cluster_id,
            dir_locks,
            parent,
            metadata,
        } = started;
        match Self::open_on(node, bound, cluster_id, dir_locks, &parent, metadata).await {
            Ok(b) => Ok(b),
            Err((e, Some(metadata))) => {
                metadata.shutdown().await;
                Err(e)
            }
            Err((e, None)) => Err(e),
        }
    }

    async fn open_on(
        node: NodeConfig,
        bound: &[Listener],
        cluster_id: String,
        dir_locks: Vec<LogDirLock>,
        parent: &std::path::Path,
        metadata: Arc<MetadataStore>,
    ) -> Result<Arc<Broker>, (BrokerError, Option<Arc<MetadataStore>>)> {
        let advertised = node
            .advertised_listeners
            .clone()
            .unwrap_or_else(|| resolve_bound(bound));
        let prepared = async {
            metadata.register(&advertised, node.rack.as_deref()).await?;
            metadata.import_legacy(parent).await?;
            let view = Arc::new(Image::from_controller(&metadata.controller_image(), None));
            metadata.publish(view.clone());
            let settings = with_dynamic(&node.settings, &view.broker_configs);
            let replicas = ReplicaManager::load(&node.log_dirs, &view, &settings, node.node_id)?;
            Ok::<_, BrokerError>((settings, replicas))
        }
        .await;
        let (settings, replicas) = match prepared {
            Ok(p) => p,
            Err(e) => return Err((e, Some(metadata))),
        };
        let number = |name: &str| settings.i64(name).unwrap_or_default();
        let groups = GroupCoordinator::new(GroupConfig {
            min_session_timeout_ms: number("group.min.session.timeout.ms"),
            max_session_timeout_ms: number("group.max.session.timeout.ms"),
            initial_rebalance_delay_ms: number("group.initial.rebalance.delay.ms") as u64,
            offsets_partitions: number("offsets.topic.num.partitions") as i32,
            metadata_max_bytes: number("offset.metadata.max.bytes") as usize,
            offsets_retention_ms: number("offsets.retention.minutes") * 60_000,
            consumer_heartbeat_interval_ms: number("group.consumer.heartbeat.interval.ms") as i32,
            consumer: ConsumerGroupConfig {
                session_timeout: Duration::from_millis(
                    number("group.consumer.session.timeout.ms") as u64
                ),
                max_size: number("group.consumer.max.size") as usize,
                assignors: Assignor::parse_list(
                    settings
                        .get("group.consumer.assignors")
                        .unwrap_or("uniform"),
                )
                .unwrap_or_else(|_| vec![Assignor::Uniform]),
            },
        });
        let replication_quotas = crate::replica::quota::ReplicationQuotas::default();
        replication_quotas.configure(&settings);
        Ok(Arc::new(Broker {
            node,
            settings: RwLock::new(settings),
            cluster_id,
            metadata,
            replicas,
            producer_ids: ProducerIdAllocator::new(),
            groups,
            advertised,
            shutdown: CancellationToken::new(),
            isr_wakeup: tokio::sync::Notify::new(),
            replication_stats: Default::default(),
            replication_quotas,
            admin: tokio::sync::Mutex::new(()),
            _dir_locks: dir_locks,
        }))
    }

    pub fn node_id(&self) -> i32 {
        self.node.node_id
    }

    /// `controlled.shutdown.enable`.
    pub fn controlled_shutdown_enabled(&self) -> bool {
        self.node
            .settings
            .get("controlled.shutdown.enable")
            .is_none_or(|v| v.eq_ignore_ascii_case("true"))
    }

    /// How long a clean stop waits for the controller to move leadership away: one
    /// session timeout (after that the controller would fence this broker anyway).
    pub fn controlled_shutdown_limit(&self) -> Duration {
        Duration::from_millis(
            self.node
                .settings
                .i64("broker.session.timeout.ms")
                .unwrap_or(9000)
                .max(1) as u64,
        )
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().clone()
    }

    /// What the settings would be with `dynamic` installed, for validation.
    pub fn settings_with_dynamic(&self, dynamic: &BTreeMap<String, String>) -> Settings {
        with_dynamic(&self.node.settings, dynamic)
    }

    /// Installs a new set of dynamic broker settings (committed to the quorum) on top of the
    /// node's static ones, so removing an override restores the static value.
    fn set_dynamic_settings(&self, dynamic: &BTreeMap<String, String>) {
        let settings = with_dynamic(&self.node.settings, dynamic);
        self.replication_quotas.configure(&settings);
        *self.settings.write() = settings;
    }

    /// The host and port clients should use for this node.
    pub fn endpoint(&self) -> (String, u16) {
        self.advertised
            .first()
            .map(|l| (l.host.clone(), l.port))
            .unwrap_or_else(|| ("127.0.0.1".into(), 9092))
    }

    /// The listener name clients reach this node on (other brokers are reported at their
    /// endpoint of the same name).
    pub fn listener_name(&self) -> &str {
        self.advertised
            .first()
            .map_or("PLAINTEXT", |l| l.name.as_str())
    }

    pub fn rack(&self) -> Option<&str> {
        self.node.rack.as_deref()
    }

    /// Makes `latest` this node's view: dynamic settings, then the local partitions, then
    /// the groups this broker coordinates, then the published view (which admin changes
    /// wait for).
    pub fn apply_metadata(&self, latest: &MetadataImage) {
        let previous = self.metadata.image();
        let view = Arc::new(Image::from_controller(latest, Some(&previous)));
        let settings_changed = view.broker_configs != previous.broker_configs;
        if settings_changed {
            self.set_dynamic_settings(&view.broker_configs);
        }
        self.replicas
            .reconcile(&view, &self.settings(), settings_changed);
        crate::group::log::follow_leadership(self, &view);
        self.metadata.publish(view);
    }
}

/// Follows the controller's image until shutdown: each new revision is applied to the
/// local partitions and published (see `metadata::quorum`).
pub async fn follow_metadata(broker: Arc<Broker>) {
    let mut rx = broker.metadata.subscribe();
    loop {
        let latest = rx.borrow_and_update().clone();
        if latest.revision() > broker.metadata.image().revision {
            // Creating or deleting partitions is file work: keep it off the async worker.
            tokio::task::block_in_place(|| broker.apply_metadata(&latest));
        }
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

/// The bound client listeners as clients can reach them: a wildcard host becomes loopback.
fn resolve_bound(bound: &[Listener]) -> Vec<Listener> {
    bound
        .iter()
        .map(|l| {
            let host = if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                "127.0.0.1".to_string()
            } else {
                l.host.clone()
            };
            Listener {
                name: l.name.clone(),
                host,
                port: l.port,
            }
        })
        .collect()
}

fn with_dynamic(static_settings: &Settings, dynamic: &BTreeMap<String, String>) -> Settings {
    let mut settings = static_settings.clone();
    for (name, value) in dynamic {
        if let Err(e) = settings.set(name, value, Source::Dynamic) {
            tracing::warn!(name, value, error = %e, "ignoring a stored dynamic broker config");
        }
    }
    settings
}

/// Wall-clock milliseconds, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
