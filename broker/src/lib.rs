//! Isthmus broker: a Kafka-compatible broker on Isthmus's own storage.
//!
//! Parts:
//! - [`config`]: the settings table, loading from flags / `ISTHMUS_*` / TOML, topic settings.
//! - [`broker`]: the node shared by every connection; [`run`] starts and stops it.
//! - [`server`]: listeners and connections (framing, ordered responses).
//! - [`frame_buffers`]: pooled buffers that incoming frames are read into.
//! - [`dispatch`]: the table of implemented APIs, which also feeds ApiVersions.
//! - [`handlers`]: one file per Kafka API.
//! - [`topics`]: topic create / grow / reconfigure / delete rules.
//! - [`group`]: the consumer-group coordinator and `__consumer_offsets`.
//! - [`replica`]: partitions on this node: logs, high watermark, group commit.
//! - [`metadata`]: the metadata quorum (embedded controller), the broker's view of its image,
//!   the one-time import of the single-node store, node identity and topic-name rules.
//! - [`producer_ids`]: producer-id blocks granted by the quorum for InitProducerId.
//! - [`background`]: periodic work (retention).
//! - [`error`]: the crate's error type and its mapping to Kafka error codes.

pub mod background;
pub mod broker;
pub mod config;
pub mod controller_api;
pub mod dispatch;
pub mod error;
pub mod frame_buffers;
pub mod group;
pub mod handlers;
pub mod isr;
pub mod metadata;
pub mod producer_ids;
pub mod replica;
pub mod server;
pub mod topics;

use std::sync::Arc;

pub use broker::Broker;
pub use config::NodeConfig;
pub use error::BrokerError;

/// `isthmus format`: writes `meta.properties` (cluster id, node id) in every log dir and
/// formats the metadata quorum's directory with the configured voters. Refuses a non-empty
/// metadata directory and log dirs of another cluster or node. Returns the metadata
/// directory.
pub fn format(config: &NodeConfig, cluster_id: &str) -> Result<std::path::PathBuf, BrokerError> {
    if !config.roles.controller {
        // A broker-only node keeps no quorum: only its identity in the log dirs.
        check_cluster_id(cluster_id)?;
        let (_, _locks) =
            metadata::identity::claim_log_dirs(&config.log_dirs, config.node_id, Some(cluster_id))?;
        return Ok(config.log_dirs[0].clone());
    }
    let parent = metadata::quorum::locate(config)?;
    let dir = parent.join(metadata::quorum::METADATA_DIR);
    let non_empty = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if non_empty {
        return Err(isthmus_controller::ControllerError::DirectoryNotEmpty { path: dir }.into());
    }
    if parent.join(metadata::legacy::LEGACY_DIR).exists() {
        return Err(BrokerError::Fatal(format!(
            "{} holds metadata of the single-node store waiting to be imported; start the node once to import it instead of formatting",
            parent.join(metadata::legacy::LEGACY_DIR).display()
        )));
    }
    // The controller's rules for the id, checked before anything is written.
    check_cluster_id(cluster_id)?;
    let mut claimed = config.log_dirs.clone();
    if let Some(d) = &config.metadata_log_dir {
        if !claimed.contains(d) {
            claimed.push(d.clone());
        }
    }
    let (_, _locks) =
        metadata::identity::claim_log_dirs(&claimed, config.node_id, Some(cluster_id))?;
    isthmus_controller::format(&dir, cluster_id, config.node_id as u64, &config.voters)?;
    Ok(dir)
}

/// Kafka-style cluster ids: 1..=64 of `[A-Za-z0-9_-]` (the controller's rule).
fn check_cluster_id(cluster_id: &str) -> Result<(), BrokerError> {
    let ok = !cluster_id.is_empty()
        && cluster_id.len() <= 64
        && cluster_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BrokerError::Fatal(format!(
            "cluster id `{cluster_id}`: use 1 to 64 of A-Z a-z 0-9 _ - (e.g. the output of `isthmus random-uuid`)"
        )))
    }
}

/// Opens the node (claims the log dirs, starts the metadata quorum, binds the client
/// listeners, registers this broker, opens the partitions), serves until `stop` resolves, then shuts down cleanly:
/// stop accepting, drop connections, fence this broker and stop the controller, flush and
/// close every log, mark the log dirs clean.
pub async fn run(
    config: NodeConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), BrokerError> {
    let started = Broker::start_quorum(&config).await?;
    if !config.roles.broker {
        tracing::info!(node_id = config.node_id, cluster_id = %started.cluster_id, "Isthmus controller is ready");
        stop.await;
        tracing::info!("shutting down");
        started.metadata.shutdown().await;
        tracing::info!("stopped cleanly");
        return Ok(());
    }
    let bound = match server::bind(&config).await {
        Ok(b) => b,
        Err(e) => {
            started.metadata.shutdown().await;
            return Err(e);
        }
    };
    let listeners: Vec<_> = bound.iter().map(|(l, _)| l.clone()).collect();
    let broker = Broker::open(config, started, &listeners).await?;
    // The groups of the offsets partitions this broker leads; later changes of leadership
    // are followed in `Broker::apply_metadata`.
    group::log::follow_leadership(&broker, &broker.metadata.image());
    // Clients are accepted only now, with every partition open.
    let bound = match server::listen(bound) {
        Ok(b) => b,
        Err(e) => {
            broker.metadata.shutdown().await;
            return Err(e);
        }
    };
    let mut tasks = vec![tokio::spawn(broker::follow_metadata(Arc::clone(&broker)))];
    for (listener, socket) in bound {
        tasks.push(tokio::spawn(server::serve(
            Arc::clone(&broker),
            listener,
            socket,
        )));
    }
    tasks.push(tokio::spawn(background::run(Arc::clone(&broker))));
    tasks.push(tokio::spawn(isr::run(Arc::clone(&broker))));
    tasks.push(tokio::spawn(replica::fetcher::run(Arc::clone(&broker))));
    let (host, port) = broker.endpoint();
    tracing::info!(node_id = broker.node_id(), cluster_id = %broker.cluster_id, %host, port, "Isthmus is ready");
    stop.await;
    tracing::info!("shutting down");
    if broker.controlled_shutdown_enabled() {
        broker
            .metadata
            .controlled_shutdown(broker.controlled_shutdown_limit())
            .await;
    }
    broker.shutdown.cancel();
    for task in tasks {
        let _ = task.await;
    }
    broker.metadata.shutdown().await;
    broker.replicas.shutdown()?;
    tracing::info!("stopped cleanly");
    Ok(())
}
