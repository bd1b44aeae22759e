//! Isthmus broker: a Kafka-compatible broker on Isthmus's own storage.
//!
//! Parts:
//! - [`config`]: the settings table, loading from flags / `ISTHMUS_*` / TOML, topic settings.
//! - [`broker`]: the node shared by every connection; [`run`] starts and stops it.
//! - [`server`]: listeners and connections (framing, ordered responses).
//! - [`dispatch`]: the table of implemented APIs, which also feeds ApiVersions.
//! - [`handlers`]: one file per Kafka API.
//! - [`topics`]: topic create / grow / reconfigure / delete rules.
//! - [`group`]: the consumer-group coordinator and `__consumer_offsets`.
//! - [`replica`]: partitions on this node: logs, high watermark, group commit.
//! - [`metadata`]: the metadata image, node identity and topic-name rules.
//! - [`producer_ids`]: durable producer-id blocks for InitProducerId.
//! - [`background`]: periodic work (retention).
//! - [`error`]: the crate's error type and its mapping to Kafka error codes.

pub mod background;
pub mod broker;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod group;
pub mod handlers;
pub mod metadata;
pub mod producer_ids;
pub mod replica;
pub mod server;
pub mod topics;

use std::sync::Arc;

pub use broker::Broker;
pub use config::NodeConfig;
pub use error::BrokerError;

/// Opens the node, serves until `stop` resolves, then shuts down cleanly: stop accepting,
/// drop connections, flush and close every log, mark the log dirs clean.
pub async fn run(
    config: NodeConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), BrokerError> {
    let broker = Broker::open(config)?;
    let loaded = group::log::load_all(&broker);
    if !loaded.is_empty() {
        tracing::info!(records = loaded.len(), "loaded consumer group offsets");
    }
    broker.groups.load(loaded);
    let bound = server::bind(&broker).await?;
    let mut tasks = Vec::new();
    for (listener, socket) in bound {
        tasks.push(tokio::spawn(server::serve(
            Arc::clone(&broker),
            listener,
            socket,
        )));
    }
    tasks.push(tokio::spawn(background::run(Arc::clone(&broker))));
    let (host, port) = broker.endpoint();
    tracing::info!(node_id = broker.node_id(), cluster_id = %broker.cluster_id, %host, port, "Isthmus is ready");
    stop.await;
    tracing::info!("shutting down");
    broker.shutdown.cancel();
    for task in tasks {
        let _ = task.await;
    }
    broker.replicas.shutdown()?;
    tracing::info!("stopped cleanly");
    Ok(())
}
