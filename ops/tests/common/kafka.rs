//! Helpers for tests against a [`LocalCluster`] with librdkafka clients:
//!
//! - [`TestCluster`]: a local cluster in a temporary folder; when the test fails, the
//!   folder is kept and every node's log tail printed.
//! - [`create_topics`], [`admin`], [`block`]: CreateTopics through librdkafka's admin client.
//! - [`partitions`] / [`PartitionView`]: leaders, replicas and ISR from a Metadata answer.
//! - [`log_dump`]: `isthmusctl log dump --json` of one partition folder.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

use isthmus_ops::local_cluster::{parse_sites, Layout, LocalCluster};
use isthmus_ops::log_dump::Dump;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use super::{cluster_base_port, ctl};

/// Lines of each node's log printed when a test fails.
pub const FAILURE_LOG_LINES: usize = 60;

/// A [`LocalCluster`] (dereferences to it) in its own temporary folder. Dropping it kills
/// every node; if the test is failing, it first prints each node's log tail and keeps the
/// folder (data, configs, logs) for inspection.
pub struct TestCluster {
    cluster: Option<LocalCluster>,
    dir: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// Starts `controllers` and `brokers` (`site:count,…`) with `settings` on every node.
    pub fn start(
        prefix: &str,
        controllers: &str,
        brokers: &str,
        settings: &[(&str, &str)],
    ) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temporary folder");
        let layout = Layout {
            controllers: parse_sites(controllers).unwrap(),
            brokers: parse_sites(brokers).unwrap(),
            base_port: cluster_base_port(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Layout::default()
        };
        match LocalCluster::start(&layout, dir.path(), &super::isthmus_binary()) {
            Ok(cluster) => TestCluster {
                cluster: Some(cluster),
                dir: Some(dir),
            },
            // The error carries the failing node's output or log tail.
            Err(e) => panic!(
                "starting controllers {controllers}, brokers {brokers} with {settings:?}: {e}"
            ),
        }
    }

    /// Every broker's id, in order.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.nodes()
            .iter()
            .filter(|n| n.role.is_broker())
            .map(|n| n.id)
            .collect()
    }

    /// The client listeners of these brokers, comma-separated (a bootstrap list that
    /// avoids paused or stopped ones).
    pub fn bootstrap_of(&self, ids: &[i32]) -> String {
        ids.iter()
            .filter_map(|id| self.node(*id)?.client_addr)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The folder of one replica: `<log.dirs>/<topic>-<partition>` of node `id`.
    pub fn replica_dir(&self, id: i32, topic: &str, partition: i32) -> std::path::PathBuf {
        self.plan()
            .data_dir(id)
            .join(format!("{topic}-{partition}"))
    }

    /// Every node's log tail, for a failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in self.nodes() {
            out.push_str(&format!(
                "--- node {} ({}, rack {}): last {lines} lines of {} ---\n{}\n",
                n.id,
                n.role.process_roles(),
                n.rack,
                n.log_path.display(),
                self.log_tail(n.id, lines)
            ));
        }
        out
    }
}

impl Deref for TestCluster {
    type Target = LocalCluster;

    fn deref(&self) -> &LocalCluster {
        self.cluster
            .as_ref()
            .expect("cluster present until dropped")
    }
}

impl DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        self.cluster
            .as_mut()
            .expect("cluster present until dropped")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(FAILURE_LOG_LINES));
        }
        // The processes go before their folder.
        drop(self.cluster.take());
        if let Some(dir) = self.dir.take() {
            if std::thread::panicking() {
                eprintln!(
                    "cluster folder kept for inspection: {}",
                    dir.keep().display()
                );
            }
        }
    }
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Creates topics and returns each one's outcome (Ok or the Kafka error code).
pub fn create_topics(
    bootstrap: &str,
    topics: &[NewTopic<'_>],
) -> Vec<Result<String, RDKafkaErrorCode>> {
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    block(admin(bootstrap).create_topics(topics, &opts))
        .expect("CreateTopics answered")
        .into_iter()
        .map(|r| r.map_err(|(_, code)| code))
        .collect()
}

/// One partition as a broker's Metadata answer shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl PartitionView {
    /// The replicas other than the leader.
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub fn followers(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| *r != self.leader)
            .collect()
    }
}

/// The partitions of `topic` from `bootstrap`'s Metadata, once every one has a leader.
pub fn partitions(bootstrap: &str, topic: &str) -> Option<Vec<PartitionView>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    let mut out: Vec<PartitionView> = t
        .partitions()
        .iter()
        .map(|p| PartitionView {
            id: p.id(),
            leader: p.leader(),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
        .collect();
    out.sort_by_key(|p| p.id);
    Some(out)
}

/// `isthmusctl log dump --dir DIR --json`, parsed; the error is what it printed.
pub fn log_dump(dir: &Path) -> Result<Dump, String> {
    let dir = dir.to_string_lossy();
    // `log dump` reads files only; the bootstrap address is never used.
    let out = ctl("127.0.0.1:9", &["log", "dump", "--dir", &dir, "--json"]);
    if out.code() != Some(0) {
        return Err(out.describe());
    }
    serde_json::from_str(&out.stdout).map_err(|e| format!("{e}\n{}", out.describe()))
}
