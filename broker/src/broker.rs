//! The node: its configuration, identity, metadata, replicas and producer ids, shared by
//! every connection and background task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::config::load::Listener;
use crate::config::{NodeConfig, Settings, Source};
use crate::error::BrokerError;
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
    /// What Metadata tells clients; set once the listeners are bound (port 0 resolves then).
    advertised: RwLock<Vec<Listener>>,
    pub shutdown: CancellationToken,
    _dir_locks: Vec<LogDirLock>,
}

impl Broker {
    /// Claims the log dirs, loads metadata and opens (recovering if needed) every partition.
    /// Must run inside the tokio runtime: partitions start their flusher tasks.
    pub fn open(node: NodeConfig) -> Result<Arc<Broker>, BrokerError> {
        let (cluster_id, dir_locks) = claim_log_dirs(&node.log_dirs, node.node_id)?;
        let metadata_dir = node.log_dirs[0].join(METADATA_DIR);
        let metadata = MetadataStore::open(&metadata_dir)?;
        let settings = with_dynamic(&node.settings, &metadata.image().broker_configs);
        let producer_ids = ProducerIdAllocator::open(&metadata_dir)?;
        let replicas = ReplicaManager::load(&node.log_dirs, &metadata.image(), &settings)?;
        let advertised = node
            .advertised_listeners
            .clone()
            .unwrap_or_else(|| node.listeners.clone());
        Ok(Arc::new(Broker {
            node,
            settings: RwLock::new(settings),
            cluster_id,
            metadata,
            replicas,
            producer_ids,
            advertised: RwLock::new(advertised),
            shutdown: CancellationToken::new(),
            _dir_locks: dir_locks,
        }))
    }

    pub fn node_id(&self) -> i32 {
        self.node.node_id
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().clone()
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
