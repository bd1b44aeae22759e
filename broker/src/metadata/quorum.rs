//! The node's part in the metadata quorum: where the quorum's directory is, formatting
//! it, and starting this node's [`Controller`] (a voter, with `process.roles` naming
//! `controller`) with the Kafka side of its listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use isthmus_controller::{Controller, ControllerConfig};

use super::legacy;
use crate::config::load::Listener;
use crate::config::NodeConfig;
use crate::error::BrokerError;
use crate::metadata::store::sync_dir;
use crate::replica::manager::is_partition_dir;

/// The quorum's folder inside `metadata.log.dir` (it took over the name of the single-node
/// store's folder, whose content is imported once: see [`legacy`]).
pub const METADATA_DIR: &str = "metadata";
/// Bound on an admin change: commit plus this node reconciling its partitions.
pub const PROPOSE_TIMEOUT_MS: u64 = 30_000;
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

/// Starts this node's controller (a voter of the metadata quorum) on `dir` and serves the
/// Kafka side of its listener. Does not wait for a leader: the other voters may start
/// later.
pub async fn start_controller(
    node: &NodeConfig,
    dir: &Path,
    cluster_id: &str,
) -> Result<Controller, BrokerError> {
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
    let number = |name: &str, default: i64| node.settings.i64(name).unwrap_or(default);
    config.broker_session_timeout_ms = number("broker.session.timeout.ms", 9000) as u64;
    config.auto_leader_rebalance = node
        .settings
        .get("auto.leader.rebalance.enable")
        .is_none_or(|v| v.eq_ignore_ascii_case("true"));
    config.leader_imbalance_check_interval_ms =
        (number("leader.imbalance.check.interval.seconds", 300) as u64).saturating_mul(1000);
    if node.voters.len() == 1 {
        config.election_timeout_min_ms = SOLO_ELECTION_TIMEOUT_MIN_MS;
        config.election_timeout_max_ms = SOLO_ELECTION_TIMEOUT_MAX_MS;
        config.heartbeat_interval_ms = SOLO_HEARTBEAT_INTERVAL_MS;
    }
    let controller = Controller::start_with_listener(config, listener).await?;
    controller.serve_kafka(crate::controller_api::kafka_handler(Arc::new(
        crate::controller_api::ControllerApi {
            controller: controller.clone(),
            cluster_id: cluster_id.to_string(),
            voters: node.voters.clone(),
            listener_name: node
                .controller_listener
                .as_ref()
                .map_or_else(|| "CONTROLLER".to_string(), |l| l.name.clone()),
        },
    )));
    tracing::info!(controller_addr = %listen_addr, voters = node.voters.len(), "controller started");
    Ok(controller)
}
