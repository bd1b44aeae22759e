//! Where a run's cluster lives and how faults reach it.
//!
//! A [`Runtime`] starts the nodes, tells the workload where to connect, and carries out
//! what the nemesis asks: kill and restart, pause and resume, and (where the runtime has a
//! network of its own) partitions and WAN latency between sites. Two exist:
//! - [`local::LocalRuntime`]: every node a process on loopback ports (the local stretch
//!   layout of `isthmusctl cluster local`). No network of its own, so processes faults only;
//!   for machines where namespaces are not allowed.
//! - [`netns::NetnsRuntime`]: every node a host in its own network namespace, routed
//!   through a hub namespace ([`topology`]); partitions and loss with iptables, WAN delay
//!   through [`wan_proxy`]. Needs root.

pub mod local;
pub mod netns;
pub mod topology;
pub mod wan_proxy;

use std::path::PathBuf;

use thiserror::Error;

/// The nodes of a local cluster's plan, as the runtimes describe them.
fn node_refs(plan: &isthmus_ops::local_cluster::Plan) -> Vec<NodeRef> {
    plan.nodes
        .iter()
        .map(|n| NodeRef {
            id: n.id,
            site: n.rack.clone(),
            broker: n.role.is_broker(),
            controller: n.role.is_controller(),
        })
        .collect()
}

/// `(node-<id>, log path)` of every node of a local cluster's plan.
fn plan_log_files(plan: &isthmus_ops::local_cluster::Plan) -> Vec<(String, PathBuf)> {
    plan.nodes
        .iter()
        .map(|n| (format!("node-{}", n.id), plan.log_path(n.id)))
        .collect()
}

/// One node of the run's cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    pub id: i32,
    /// Its site (`broker.rack` for brokers).
    pub site: String,
    pub broker: bool,
    pub controller: bool,
}

/// Who cannot reach whom: every pair of nodes in different groups is cut both ways; nodes
/// in no group (and the clients) keep every link they had. `groups` are node ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grudge {
    pub groups: Vec<Vec<i32>>,
}

/// Added delay and loss on every link between two different sites, each direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WanLink {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Fraction of packets (or proxy chunks) dropped, 0.0..=1.0.
    pub loss: f64,
}

#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The runtime cannot do this at all (a network fault on the local runtime).
    #[error("the {runtime} runtime cannot {what}")]
    Unsupported {
        runtime: &'static str,
        what: &'static str,
    },
    /// Leftovers of an earlier run (namespaces, rules, processes) are in the way.
    #[error("leftovers of an earlier run are in the way ({0}); run `isthmus-jepsen clean`")]
    Leftovers(String),
    #[error("{0}")]
    Failed(String),
}

pub type RuntimeResult<T> = std::result::Result<T, RuntimeError>;

/// A started cluster that faults can be injected into. Dropping it stops every node and
/// removes everything the runtime created (except the run's folder, which holds the
/// results).
pub trait Runtime: Send {
    /// Short name for messages and the history (`local`, `netns`).
    fn name(&self) -> &'static str;
    fn nodes(&self) -> Vec<NodeRef>;
    /// `host:port,…` of every broker, as clients reach them.
    fn bootstrap_servers(&self) -> String;
    /// Makes the calling OS thread a client host: sockets it (and threads it starts later)
    /// opens go out from the client's place in the network. Called on a fresh thread
    /// before a Kafka client is created there. `client` numbers the clients from 0.
    fn enter_client(&self, client: usize) -> RuntimeResult<()>;
    /// SIGKILL; the node stays down until [`Runtime::restart`].
    fn kill(&mut self, id: i32) -> RuntimeResult<()>;
    /// Starts a killed node again on its data.
    fn restart(&mut self, id: i32) -> RuntimeResult<()>;
    /// SIGSTOP; returns once the node runs no code.
    fn pause(&mut self, id: i32) -> RuntimeResult<()>;
    /// SIGCONT.
    fn resume(&mut self, id: i32) -> RuntimeResult<()>;
    /// Cuts the links the grudge names (replacing any earlier partition).
    fn partition(&mut self, grudge: &Grudge) -> RuntimeResult<()>;
    /// Removes every partition.
    fn heal_partitions(&mut self) -> RuntimeResult<()>;
    /// Sets (or with `None` removes) delay and loss between sites.
    fn set_wan(&mut self, link: Option<WanLink>) -> RuntimeResult<()>;
    /// (label, path) of every node's log, for the report.
    fn log_files(&self) -> Vec<(String, PathBuf)>;
}
