//! The node: its configuration, identity, metadata, replicas and producer ids, shared by
//! every connection and background task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::config::load::Listener;
use crate::config::{NodeConfig, Settings, Source};
use crate::error::BrokerError;
use crate::group::assignor::Assignor;
use crate::group::consumer::ConsumerGroupConfig;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::metadata::identity::{claim_log_dirs, LogDirLock};
use crate::metadata::MetadataStore;
use crate::producer_ids::ProducerIdAllocator;
use crate::replica::ReplicaManager;

/// Folder inside the first log dir holding the metadata image and the producer-id block.
pub const METADATA_DIR: &str = "metadata";

pub struct Broker {
    pub node: NodeConfig,
    /// Node settings with dynamic overrides applied; read on every topic-settings resolve.
    settings: RwLock<Settings>,
    pub cluster_id: String,
    pub metadata: MetadataStore,
    pub replicas: ReplicaManager,
    pub producer_ids: ProducerIdAllocator,
    pub groups: GroupCoordinator,
    /// What Metadata tells clients; set once the listeners are bound (port 0 resolves then).
    advertised: RwLock<Vec<Listener>>,
    pub shutdown: CancellationToken,
    /// Serialises topic and config changes end to end (metadata write, then the replicas),
    /// so concurrent admin requests cannot interleave between the two steps.
    admin: parking_lot::Mutex<()>,
    _dir_locks: Vec<LogDirLock>,
}

impl Broker {
    /// Claims the log dirs, loads metadata and opens (recovering if needed) every partition.
    /// Must run inside the tokio runtime: partitions start their flusher tasks.
    pub fn open(node: NodeConfig) -> Result<Arc<Broker>, BrokerError> {
        let (cluster_id, dir_locks) = claim_log_dirs(&node.log_dirs, node.node_id)?;
        let metadata_dir = locate_metadata(&node.log_dirs)?;
        let metadata = MetadataStore::open(&metadata_dir)?;
        let settings = with_dynamic(&node.settings, &metadata.image().broker_configs);
        let producer_ids = ProducerIdAllocator::open(&metadata_dir)?;
        let replicas = ReplicaManager::load(&node.log_dirs, &metadata.image(), &settings)?;
        let advertised = node
            .advertised_listeners
            .clone()
            .unwrap_or_else(|| node.listeners.clone());
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
        Ok(Arc::new(Broker {
            node,
            settings: RwLock::new(settings),
            cluster_id,
            metadata,
            replicas,
            producer_ids,
            groups,
            advertised: RwLock::new(advertised),
            shutdown: CancellationToken::new(),
            admin: parking_lot::Mutex::new(()),
            _dir_locks: dir_locks,
        }))
    }

    /// Held for the whole of one admin change.
    pub fn admin_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.admin.lock()
    }

    pub fn node_id(&self) -> i32 {
        self.node.node_id
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().clone()
    }

    /// What the settings would be with `dynamic` installed, for validation.
    pub fn settings_with_dynamic(&self, dynamic: &BTreeMap<String, String>) -> Settings {
        with_dynamic(&self.node.settings, dynamic)
    }

    /// Installs a new set of dynamic broker settings (already persisted by the caller) on
    /// top of the node's static ones, so removing an override restores the static value.
    pub fn set_dynamic_settings(&self, dynamic: &BTreeMap<String, String>) {
        *self.settings.write() = with_dynamic(&self.node.settings, dynamic);
    }

    /// Replaces port-0 listeners in the advertised set by the ports actually bound.
    pub fn set_bound_listeners(&self, bound: &[Listener]) {
        if self.node.advertised_listeners.is_none() {
            let resolved = bound
                .iter()
                .map(|l| {
                    let host = if l.host.is_empty() || l.host == "0.0.0.0" {
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
                .collect();
            *self.advertised.write() = resolved;
        }
    }

    /// The host and port clients should use for this node.
    pub fn endpoint(&self) -> (String, u16) {
        let advertised = self.advertised.read();
        advertised
            .first()
            .map(|l| (l.host.clone(), l.port))
            .unwrap_or_else(|| ("127.0.0.1".into(), 9092))
    }

    pub fn rack(&self) -> Option<&str> {
        self.node.rack.as_deref()
    }
}

/// Finds the log dir holding the metadata image. It lives in the first log dir when the node
/// is formatted, but operators may reorder `log.dirs` later, so every dir is searched; a
/// missing image with partition data present is refused rather than treated as "no topics"
/// (which would make every partition look unknown).
fn locate_metadata(log_dirs: &[std::path::PathBuf]) -> Result<std::path::PathBuf, BrokerError> {
    let found: Vec<_> = log_dirs
        .iter()
        .map(|d| d.join(METADATA_DIR))
        .filter(|m| m.join("image.json").exists())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let has_partitions = log_dirs.iter().any(|d| {
                std::fs::read_dir(d).map(|entries| entries.flatten().any(|e| crate::replica::manager::is_partition_dir(&e.path()))).unwrap_or(false)
            });
            if has_partitions {
                return Err(BrokerError::Fatal(format!(
                    "the log dirs {} hold partitions but no metadata ({METADATA_DIR}/image.json); restore the metadata folder or point log.dirs at the folder that has it",
                    log_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
            Ok(log_dirs[0].join(METADATA_DIR))
        }
        many => Err(BrokerError::Fatal(format!(
            "metadata found in more than one log dir ({}); keep the current one and remove the others",
            many.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
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
