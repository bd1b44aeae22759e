//! A stretch cluster on one machine, for people trying a layout and for tests: one `isthmus`
//! process per node, each with its own ports and folder, the site of each node as its rack.
//!
//! - [`Layout`]: which nodes run where (`--controllers a:2,b:1 --brokers a:2,b:2`, or
//!   `--combined …`), the first port to try and settings for every node.
//! - [`Plan`]: the layout made concrete: node ids (controllers 1..=C, brokers 101.., combined
//!   1..=N), free ports, folders, and each node's TOML config (pure, so it is unit-tested).
//! - [`LocalCluster`]: the running processes: format what is not formatted, start, wait until
//!   listening, kill / terminate / restart / pause / resume one node, stop all; dropping it
//!   kills everything (a paused node included).
//!
//! Nodes may also run on hosts of their own ([`NodeHost`]: an address and the command
//! prefix that runs a program there, e.g. `ip netns exec NS` for the fault-injection
//! harness's network namespaces); they then listen on fixed ports of that address.
//!
//! The folder keeps what a restart needs: `cluster-id` (the id every node was formatted
//! with) and `layout.json` (the nodes and the ports chosen at the first start, since the
//! controllers store the voters' addresses when formatted). Each node has `node-<id>/` with
//! `isthmus.toml`, `isthmus.log`, `data/` (`log.dirs`) and `metadata/` (`metadata.log.dir`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// The first port tried when none is given.
pub const DEFAULT_BASE_PORT: u16 = 19090;
/// How long every node together may take to listen after being started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM before it gets SIGKILL.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `isthmus format` or `isthmus random-uuid` may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of a node's log shown when it fails.
pub const LOG_TAIL_LINES: usize = 40;
/// Most nodes of one role: broker ids start at [`BROKER_ID_BASE`], above every controller.
pub const NODES_PER_ROLE_MAX: u32 = 100;
/// The id of the first broker of a layout with dedicated controllers.
pub const BROKER_ID_BASE: i32 = 101;
/// The listener name clients use.
pub const CLIENT_LISTENER: &str = "PLAINTEXT";
/// The listener name of the controller quorum (`controller.listener.names`).
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";
/// Nodes without a host of their own listen on loopback only: a cluster for one machine.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The client port of a node on a host of its own (Kafka's default).
pub const HOST_CLIENT_PORT: u16 = 9092;
/// The controller port of a node on a host of its own.
pub const HOST_CONTROLLER_PORT: u16 = 9093;
/// Bound on a site name, as the controller bounds rack names.
const SITE_LEN_MAX: usize = 255;
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const CLUSTER_ID_FILE: &str = "cluster-id";
const LAYOUT_FILE: &str = "layout.json";
const CONFIG_FILE: &str = "isthmus.toml";
const LOG_FILE: &str = "isthmus.log";
/// Written by `isthmus format` into every directory it claims.
const META_PROPERTIES: &str = "meta.properties";
/// Settings each node gets from the layout; `--set` may not override them.
pub const GENERATED_SETTINGS: &[&str] = &[
    "node.id",
    "process.roles",
    "broker.rack",
    "listeners",
    "advertised.listeners",
    "controller.listener.names",
    "controller.quorum.voters",
    "log.dirs",
    "metadata.log.dir",
];
/// Environment variables starting with this would override the generated configs (the
/// broker ranks them above its config file), so children never inherit them.
const BROKER_ENV_PREFIX: &str = "ISTHMUS_";

/// What went wrong, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("{0}")]
    Layout(String),
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("{0}")]
    Ports(String),
    #[error("{what}: `{command}` {outcome}\n{output}")]
    Command {
        what: String,
        command: String,
        outcome: String,
        output: String,
    },
    #[error("node {id} {what}; last lines of {}:\n{tail}", log.display())]
    Node {
        id: i32,
        what: String,
        log: PathBuf,
        tail: String,
    },
    #[error("node {0} is not part of this cluster")]
    UnknownNode(i32),
    #[error("node {id} is not running, so it cannot be {what}")]
    NotRunning { id: i32, what: &'static str },
    #[error("sending {signal} to node {id}: {err}")]
    Signal {
        id: i32,
        signal: &'static str,
        err: nix::errno::Errno,
    },
    #[error(
        "node {id} (pid {pid}) was sent SIGSTOP but still had running threads after {waited:?}"
    )]
    NotStopped { id: i32, pid: u32, waited: Duration },
    #[error("interrupted while starting; the nodes started so far were stopped")]
    Interrupted,
}

type Result<T> = std::result::Result<T, LocalClusterError>;

/// How long [`LocalCluster::pause`] waits for a node's threads to stop.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Whether every thread of `pid` is stopped (state `T`, or `t` under a tracer), read from
/// `/proc/<pid>/task/*/stat`; `None` when the process is gone or is a zombie.
fn all_threads_stopped(pid: u32) -> Option<bool> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut any = false;
    for task in tasks.flatten() {
        // A thread that exited between the listing and the read is not running.
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The state follows the command name, which is in parentheses and may hold any
        // character, so look after the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        match state {
            Some('T' | 't') => any = true,
            Some('Z' | 'X') => {}
            _ => return Some(false),
        }
    }
    any.then_some(true)
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> LocalClusterError {
    let what = what.into();
    move |err| LocalClusterError::Io { what, err }
}

/// How many nodes of one role run at one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteCount {
    pub site: String,
    pub count: u32,
}

/// Parses `a:2,b:1` (site:count, comma-separated; a site may not repeat).
pub fn parse_sites(text: &str) -> std::result::Result<Vec<SiteCount>, String> {
    let mut out: Vec<SiteCount> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (site, count) = part
            .rsplit_once(':')
            .ok_or_else(|| format!("'{part}' must look like site:count, e.g. a:2"))?;
        let site = site.trim();
        check_site(site)?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("'{part}': the count '{count}' is not a whole number"))?;
        if count == 0 {
            return Err(format!(
                "'{part}': a site needs at least one node; leave it out instead"
            ));
        }
        if out.iter().any(|s| s.site == site) {
            return Err(format!(
                "site '{site}' is listed twice; give each site once"
            ));
        }
        out.push(SiteCount {
            site: site.to_owned(),
            count,
        });
    }
    if out.is_empty() {
        return Err(format!("'{text}' names no site; write e.g. a:2,b:1"));
    }
    Ok(out)
}

/// A site becomes `broker.rack` and part of a TOML string, so keep it plain.
fn check_site(site: &str) -> std::result::Result<(), String> {
    if site.is_empty() || site.len() > SITE_LEN_MAX {
        return Err(format!(
            "site name '{site}' must be 1 to {SITE_LEN_MAX} characters"
        ));
    }
    if let Some(c) = site
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "site name '{site}' has {c:?}; use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// Parses one `--set key=value` (the value may contain `=`), refusing the settings the
/// layout writes itself.
pub fn parse_setting(text: &str) -> std::result::Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got '{text}'"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("'{text}' has an empty key"));
    }
    if GENERATED_SETTINGS.contains(&key) {
        return Err(format!(
            "{key} is written per node from the layout and cannot be set for all nodes"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Controller,
    Broker,
    Combined,
}

impl Role {
    /// The `process.roles` value.
    pub fn process_roles(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Broker => "broker",
            Role::Combined => "broker,controller",
        }
    }

    pub fn is_broker(self) -> bool {
        self != Role::Controller
    }

    pub fn is_controller(self) -> bool {
        self != Role::Broker
    }
}

/// Which nodes run at which site, and what every node shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Dedicated controllers (ids 1..=C).
    pub controllers: Vec<SiteCount>,
    /// Dedicated brokers (ids 101..).
    pub brokers: Vec<SiteCount>,
    /// Nodes that are both (ids 1..=N); excludes the two above.
    pub combined: Vec<SiteCount>,
    /// Ports are taken from here upward, skipping ports in use.
    pub base_port: u16,
    /// Settings for every node, in order (a key given twice keeps the last value).
    pub settings: Vec<(String, String)>,
    /// Hosts of their own, by node id: every node of the layout, or none (then all run on
    /// loopback, with ports from `base_port`).
    pub hosts: BTreeMap<i32, NodeHost>,
}

/// A host of a node's own: its address, and how a program is started there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHost {
    /// The node listens here, on [`HOST_CLIENT_PORT`] and [`HOST_CONTROLLER_PORT`].
    pub addr: IpAddr,
    /// Words put before `isthmus --config …` when the node is started (e.g. `ip netns
    /// exec NS`); the prefix must exec the program, so that its pid is the node's.
    pub exec_prefix: Vec<String>,
}

impl Default for Layout {
    /// Two sites: three controllers (two in `a`, one in `b`) and two brokers in each site.
    fn default() -> Self {
        let site = |s: &str, count| SiteCount {
            site: s.to_owned(),
            count,
        };
        Layout {
            controllers: vec![site("a", 2), site("b", 1)],
            brokers: vec![site("a", 2), site("b", 2)],
            combined: Vec::new(),
            base_port: DEFAULT_BASE_PORT,
            settings: Vec::new(),
            hosts: BTreeMap::new(),
        }
    }
}

impl Layout {
    /// Only combined nodes, one per `(site, count)`.
    pub fn combined(sites: Vec<SiteCount>) -> Layout {
        Layout {
            controllers: Vec::new(),
            brokers: Vec::new(),
            combined: sites,
            ..Layout::default()
        }
    }

    /// Checks the shape: some node serves clients and some node is a controller, combined
    /// nodes are not mixed with dedicated ones, counts stay within the id ranges.
    pub fn validate(&self) -> Result<()> {
        let total = |sites: &[SiteCount]| sites.iter().map(|s| s.count).sum::<u32>();
        let bad = |m: String| Err(LocalClusterError::Layout(m));
        for s in self
            .controllers
            .iter()
            .chain(&self.brokers)
            .chain(&self.combined)
        {
            check_site(&s.site).map_err(LocalClusterError::Layout)?;
        }
        if self.base_port == 0 {
            return bad("the base port must be above 0".into());
        }
        for (key, _) in &self.settings {
            if GENERATED_SETTINGS.contains(&key.as_str()) {
                return bad(format!(
                    "{key} is written per node from the layout and cannot be set for all nodes"
                ));
            }
        }
        if !self.hosts.is_empty() {
            let ids: BTreeSet<i32> = self.members().iter().map(|m| m.0).collect();
            let hosted: BTreeSet<i32> = self.hosts.keys().copied().collect();
            if ids != hosted {
                return bad(format!(
                    "hosts are given for nodes {hosted:?} but the layout has nodes {ids:?}; give every node a host, or none"
                ));
            }
        }
        if !self.combined.is_empty() {
            if !self.controllers.is_empty() || !self.brokers.is_empty() {
                return bad("combined nodes cannot be mixed with dedicated controllers or brokers; give either --combined or --controllers/--brokers".into());
            }
            if total(&self.combined) > NODES_PER_ROLE_MAX {
                return bad(format!("at most {NODES_PER_ROLE_MAX} combined nodes"));
            }
            return Ok(());
        }
        if self.controllers.is_empty() {
            return bad(
                "a layout needs at least one controller (e.g. --controllers a:2,b:1)".into(),
            );
        }
        if self.brokers.is_empty() {
            return bad(
                "a layout needs at least one broker for clients (e.g. --brokers a:2,b:2)".into(),
            );
        }
        if total(&self.controllers) > NODES_PER_ROLE_MAX
            || total(&self.brokers) > NODES_PER_ROLE_MAX
        {
            return bad(format!(
                "at most {NODES_PER_ROLE_MAX} controllers and {NODES_PER_ROLE_MAX} brokers"
            ));
        }
        Ok(())
    }

    /// The nodes in id order, without ports: `(id, role, site)`.
    pub fn members(&self) -> Vec<(i32, Role, String)> {
        let expand = |sites: &[SiteCount], role: Role, first_id: i32| -> Vec<(i32, Role, String)> {
            sites
                .iter()
                .flat_map(|s| (0..s.count).map(move |_| s.site.clone()))
                .zip(first_id..)
                .map(|(site, id)| (id, role, site))
                .collect()
        };
        let mut out = expand(&self.combined, Role::Combined, 1);
        out.extend(expand(&self.controllers, Role::Controller, 1));
        out.extend(expand(&self.brokers, Role::Broker, BROKER_ID_BASE));
        out
    }

    /// The plan for `dir` with ports from [`Layout::base_port`] upward that `port_free`
    /// accepts, each used once, in id order; nodes on hosts of their own take the fixed
    /// ports of their address instead.
    pub fn plan_with(&self, dir: &Path, mut port_free: impl FnMut(u16) -> bool) -> Result<Plan> {
        self.validate()?;
        let mut next = u32::from(self.base_port);
        let mut take = |what: &str| -> Result<u16> {
            while let Ok(port) = u16::try_from(next) {
                next += 1;
                if port_free(port) {
                    return Ok(port);
                }
            }
            Err(LocalClusterError::Ports(format!(
                "no free port left at or above {} for {what}; give a lower --base-port",
                self.base_port
            )))
        };
        let mut nodes = Vec::new();
        for (id, role, rack) in self.members() {
            if let Some(host) = self.hosts.get(&id) {
                nodes.push(NodeSpec {
                    id,
                    role,
                    rack,
                    client_port: role.is_broker().then_some(HOST_CLIENT_PORT),
                    controller_port: role.is_controller().then_some(HOST_CONTROLLER_PORT),
                    host: host.addr,
                });
                continue;
            }
            let client_port = if role.is_broker() {
                Some(take(&format!("node {id}"))?)
            } else {
                None
            };
            let controller_port = if role.is_controller() {
                Some(take(&format!("node {id}"))?)
            } else {
                None
            };
            nodes.push(NodeSpec {
                id,
                role,
                rack,
                client_port,
                controller_port,
                host: LOOPBACK,
            });
        }
        Ok(Plan {
            dir: dir.to_path_buf(),
            nodes,
            settings: self.settings.clone(),
        })
    }

    /// [`Layout::plan_with`] taking ports that can be bound on 127.0.0.1 right now.
    pub fn plan(&self, dir: &Path) -> Result<Plan> {
        self.plan_with(dir, port_is_free)
    }
}

/// Whether `port` can be bound on the loopback address now.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind((LOOPBACK, port)).is_ok()
}

/// One node of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub id: i32,
    pub role: Role,
    /// The site; becomes `broker.rack`.
    pub rack: String,
    /// The client listener's port (brokers and combined nodes).
    pub client_port: Option<u16>,
    /// The controller listener's port (controllers and combined nodes).
    pub controller_port: Option<u16>,
    /// The address it listens on (loopback unless it has a host of its own).
    #[serde(default = "loopback")]
    pub host: IpAddr,
}

fn loopback() -> IpAddr {
    LOOPBACK
}

impl NodeSpec {
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.client_port.map(|p| SocketAddr::new(self.host, p))
    }

    pub fn controller_addr(&self) -> Option<SocketAddr> {
        self.controller_port.map(|p| SocketAddr::new(self.host, p))
    }

    /// The port that shows the node is up: clients' for nodes that serve them.
    fn ready_addr(&self) -> Option<SocketAddr> {
        self.client_addr().or_else(|| self.controller_addr())
    }

    fn same_member(&self, other: &NodeSpec) -> bool {
        self.id == other.id
            && self.role == other.role
            && self.rack == other.rack
            && self.host == other.host
    }
}

/// A layout made concrete for one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The cluster's folder (absolute once [`LocalCluster::start`] made it so).
    pub dir: PathBuf,
    pub nodes: Vec<NodeSpec>,
    pub settings: Vec<(String, String)>,
}

impl Plan {
    /// `controller.quorum.voters`: `id@host:port` for every controller, by id.
    pub fn voters(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| Some(format!("{}@{}", n.id, n.controller_addr()?)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client listeners of every broker, comma-separated, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| Some(n.client_addr()?.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, id: i32) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_dir(&self, id: i32) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    pub fn config_path(&self, id: i32) -> PathBuf {
        self.node_dir(id).join(CONFIG_FILE)
    }

    pub fn log_path(&self, id: i32) -> PathBuf {
        self.node_dir(id).join(LOG_FILE)
    }

    /// `log.dirs` of the node.
    pub fn data_dir(&self, id: i32) -> PathBuf {
        self.node_dir(id).join("data")
    }

    /// `metadata.log.dir` of the node.
    pub fn metadata_dir(&self, id: i32) -> PathBuf {
        self.node_dir(id).join("metadata")
    }

    /// The node's settings by Kafka name: the generated ones, then the shared `--set` ones
    /// (a key given twice keeps its last value, in its first place).
    pub fn node_settings(&self, node: &NodeSpec) -> Vec<(String, String)> {
        let mut listeners = Vec::new();
        if let Some(addr) = node.client_addr() {
            listeners.push(format!("{CLIENT_LISTENER}://{addr}"));
        }
        if let Some(addr) = node.controller_addr() {
            listeners.push(format!("{CONTROLLER_LISTENER}://{addr}"));
        }
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut out: Vec<(String, String)> = vec![
            ("node.id".into(), node.id.to_string()),
            ("process.roles".into(), node.role.process_roles().into()),
            ("broker.rack".into(), node.rack.clone()),
            ("listeners".into(), listeners.join(",")),
            (
                "controller.listener.names".into(),
                CONTROLLER_LISTENER.into(),
            ),
            ("controller.quorum.voters".into(), self.voters()),
            ("log.dirs".into(), path(self.data_dir(node.id))),
            ("metadata.log.dir".into(), path(self.metadata_dir(node.id))),
        ];
        for (k, v) in &self.settings {
            match out.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
        out
    }

    /// The node's `isthmus.toml`: one quoted `"name" = "value"` line per setting.
    pub fn config_toml(&self, node: &NodeSpec) -> String {
        let mut out = format!(
            "# Node {} ({}, site {}), written by `isthmusctl cluster local` at every start.\n\
             # Change settings for all nodes with --set key=value rather than here.\n",
            node.id,
            node.role.process_roles(),
            node.rack
        );
        for (k, v) in self.node_settings(node) {
            out.push_str(&format!("{} = {}\n", toml_string(&k), toml_string(&v)));
        }
        out
    }
}

/// A TOML basic string (also valid as a quoted key).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A node as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: i32,
    pub role: Role,
    pub rack: String,
    pub client_addr: Option<SocketAddr>,
    pub controller_addr: Option<SocketAddr>,
    /// The process id while it is started (it may have exited since: see
    /// [`LocalCluster::is_running`]).
    pub pid: Option<u32>,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

/// The processes of a local cluster. Dropping it kills (SIGKILL) every node still running,
/// paused ones included.
#[derive(Debug)]
pub struct LocalCluster {
    plan: Plan,
    binary: PathBuf,
    cluster_id: String,
    children: BTreeMap<i32, Child>,
    starts: BTreeMap<i32, u32>,
    /// How each node on a host of its own is started there ([`NodeHost::exec_prefix`]).
    exec_prefixes: BTreeMap<i32, Vec<String>>,
    /// Nodes stopped with SIGSTOP by [`LocalCluster::pause`] and not resumed since.
    paused: BTreeSet<i32>,
}

impl LocalCluster {
    /// Starts `layout` in `dir` with the `isthmus` at `binary` and waits until every node
    /// listens. A folder used before keeps its cluster id and ports (a different layout
    /// there is refused); nodes not yet formatted are formatted first.
    pub fn start(layout: &Layout, dir: &Path, binary: &Path) -> Result<LocalCluster> {
        Self::start_cancellable(layout, dir, binary, &AtomicBool::new(false))
    }

    /// [`LocalCluster::start`] that gives up, stopping what it started, once `cancel` is set
    /// (by a signal handler, say).
    pub fn start_cancellable(
        layout: &Layout,
        dir: &Path,
        binary: &Path,
        cancel: &AtomicBool,
    ) -> Result<LocalCluster> {
        layout.validate()?;
        if !binary.is_file() {
            return Err(LocalClusterError::Layout(format!(
                "the isthmus binary {} does not exist; build it (`cargo build -p isthmus-broker`) or pass --isthmus PATH",
                binary.display()
            )));
        }
        fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
        let dir =
            fs::canonicalize(dir).map_err(io_error(format!("resolving {}", dir.display())))?;
        let plan = load_or_plan(layout, &dir)?;
        let cluster_id = load_or_create_cluster_id(&dir, binary)?;
        for node in &plan.nodes {
            prepare_node(&plan, node)?;
            if !is_formatted(&plan, node.id) {
                format_node(&plan, node.id, binary, &cluster_id)?;
            }
        }
        let mut cluster = LocalCluster {
            plan,
            binary: binary.to_path_buf(),
            cluster_id,
            children: BTreeMap::new(),
            starts: BTreeMap::new(),
            exec_prefixes: layout
                .hosts
                .iter()
                .map(|(id, h)| (*id, h.exec_prefix.clone()))
                .collect(),
            paused: BTreeSet::new(),
        };
        let ids: Vec<i32> = cluster.plan.nodes.iter().map(|n| n.id).collect();
        for &id in &ids {
            cluster.spawn(id)?;
        }
        if let Err(e) = cluster.wait_listening(&ids, cancel) {
            cluster.stop_all();
            return Err(e);
        }
        Ok(cluster)
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn dir(&self) -> &Path {
        &self.plan.dir
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The brokers' client listeners, comma-separated.
    pub fn bootstrap_servers(&self) -> String {
        self.plan.bootstrap_servers()
    }

    /// `controller.quorum.voters` of every node.
    pub fn controller_quorum(&self) -> String {
        self.plan.voters()
    }

    pub fn node(&self, id: i32) -> Option<NodeInfo> {
        let n = self.plan.node(id)?;
        Some(NodeInfo {
            id,
            role: n.role,
            rack: n.rack.clone(),
            client_addr: n.client_addr(),
            controller_addr: n.controller_addr(),
            pid: self.children.get(&id).map(Child::id),
            config_path: self.plan.config_path(id),
            log_path: self.plan.log_path(id),
        })
    }

    /// Every node, by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.plan
            .nodes
            .iter()
            .filter_map(|n| self.node(n.id))
            .collect()
    }

    /// Whether the node's process is running.
    pub fn is_running(&mut self, id: i32) -> bool {
        self.children
            .get_mut(&id)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, id: i32, lines: usize) -> String {
        file_tail(&self.plan.log_path(id), lines)
    }

    /// SIGKILL, then wait: a crash, nothing flushed. A node not running is left as it is;
    /// a paused one dies without running again.
    pub fn kill(&mut self, id: i32) -> Result<()> {
        self.check_known(id)?;
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            self.continue_if_paused(id, &child);
            let _ = child.wait();
        }
        Ok(())
    }

    /// Freezes the node's process with SIGSTOP, returning once every thread has stopped: it
    /// keeps its sockets and files but runs no code, so peers see a node that stopped answering (a long GC pause, a hung VM, a
    /// cut-off host) rather than one whose connections close. Its session with the
    /// controllers lapses after `broker.session.timeout.ms` and it is fenced, while it still
    /// believes whatever it believed. Undo with [`LocalCluster::resume`]; [`kill`],
    /// [`terminate`], [`restart`], [`stop_all`] and dropping the cluster all end a paused
    /// node too, so no process is left stopped. Pausing a paused node does nothing.
    ///
    /// [`kill`]: LocalCluster::kill
    /// [`terminate`]: LocalCluster::terminate
    /// [`restart`]: LocalCluster::restart
    /// [`stop_all`]: LocalCluster::stop_all
    pub fn pause(&mut self, id: i32) -> Result<()> {
        self.check_known(id)?;
        if !self.is_running(id) {
            return Err(LocalClusterError::NotRunning { id, what: "paused" });
        }
        if self.paused.contains(&id) {
            return Ok(());
        }
        self.signal(id, Signal::SIGSTOP)?;
        self.paused.insert(id);
        self.wait_stopped(id)
    }

    /// Lets a node stopped by [`LocalCluster::pause`] run again (SIGCONT). It goes on from
    /// where it stopped: timers that expired meanwhile fire at once, requests queued in its
    /// sockets are read. Resuming a node that is not paused does nothing.
    pub fn resume(&mut self, id: i32) -> Result<()> {
        self.check_known(id)?;
        if !self.paused.contains(&id) {
            return Ok(());
        }
        if !self.is_running(id) {
            self.paused.remove(&id);
            return Err(LocalClusterError::NotRunning {
                id,
                what: "resumed",
            });
        }
        self.signal(id, Signal::SIGCONT)?;
        self.paused.remove(&id);
        Ok(())
    }

    /// Whether the node is stopped by [`LocalCluster::pause`].
    pub fn is_paused(&self, id: i32) -> bool {
        self.paused.contains(&id)
    }

    /// SIGTERM, then wait up to [`TERMINATE_TIMEOUT`] (SIGKILL after it). `None` when the
    /// node was not running.
    pub fn terminate(&mut self, id: i32) -> Result<Option<ExitStatus>> {
        self.check_known(id)?;
        Ok(self.terminate_all(&[id]).into_iter().next().map(|(_, s)| s))
    }

    /// Stops the node if it runs (SIGTERM), starts it again with the same config and waits
    /// until it listens. Use [`LocalCluster::kill`] first for a crash-restart.
    pub fn restart(&mut self, id: i32) -> Result<()> {
        self.check_known(id)?;
        self.terminate_all(&[id]);
        self.spawn(id)?;
        self.wait_listening(&[id], &AtomicBool::new(false))
    }

    /// Stops every node with SIGTERM (SIGKILL after [`TERMINATE_TIMEOUT`]): brokers first,
    /// so they can leave while the controllers still run, then the controllers. Returns how
    /// each running node exited.
    pub fn stop_all(&mut self) -> Vec<(i32, ExitStatus)> {
        let ids_with = |pred: fn(Role) -> bool| -> Vec<i32> {
            self.plan
                .nodes
                .iter()
                .filter(|n| pred(n.role))
                .map(|n| n.id)
                .collect()
        };
        let brokers = ids_with(|r| r == Role::Broker);
        let others = ids_with(|r| r != Role::Broker);
        let mut out = self.terminate_all(&brokers);
        out.extend(self.terminate_all(&others));
        out
    }

    /// Nodes whose process exited on its own since the last call, with how it exited.
    pub fn exited(&mut self) -> Vec<(i32, ExitStatus)> {
        let mut out = Vec::new();
        self.children.retain(|&id, child| match child.try_wait() {
            Ok(Some(status)) => {
                out.push((id, status));
                false
            }
            _ => true,
        });
        for (id, _) in &out {
            self.paused.remove(id);
        }
        out
    }

    fn check_known(&self, id: i32) -> Result<()> {
        match self.plan.node(id) {
            Some(_) => Ok(()),
            None => Err(LocalClusterError::UnknownNode(id)),
        }
    }

    /// Returns once every thread of the node's process is stopped. `kill` only queues
    /// SIGSTOP: the group stop begins when one of the process's threads is next scheduled,
    /// and until then the others go on running, which on a loaded machine is milliseconds
    /// in which a "paused" node still answers requests.
    fn wait_stopped(&self, id: i32) -> Result<()> {
        let Some(pid) = self.children.get(&id).map(|c| c.id()) else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            match all_threads_stopped(pid) {
                // Gone (it died meanwhile): nothing runs, which is what pausing wants.
                None | Some(true) => return Ok(()),
                Some(false) if started.elapsed() >= STOP_WAIT => {
                    return Err(LocalClusterError::NotStopped {
                        id,
                        pid,
                        waited: started.elapsed(),
                    })
                }
                Some(false) => thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Sends `sig` to the node's running process.
    fn signal(&self, id: i32, sig: Signal) -> Result<()> {
        let child = self
            .children
            .get(&id)
            .ok_or(LocalClusterError::NotRunning {
                id,
                what: "signalled",
            })?;
        let pid = i32::try_from(child.id()).map_err(|_| LocalClusterError::Signal {
            id,
            signal: sig.as_str(),
            err: nix::errno::Errno::ESRCH,
        })?;
        signal::kill(Pid::from_raw(pid), sig).map_err(|err| LocalClusterError::Signal {
            id,
            signal: sig.as_str(),
            err,
        })
    }

    /// After a terminating signal was sent to `child` (node `id`, already out of
    /// `children`): SIGCONT if the node was paused, so it acts on the signal now (SIGKILL
    /// needs no help, but the node is then no longer counted as paused either way). The
    /// child is not reaped yet, so its pid is still ours.
    fn continue_if_paused(&mut self, id: i32, child: &Child) {
        if self.paused.remove(&id) {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = signal::kill(Pid::from_raw(pid), Signal::SIGCONT);
            }
        }
    }

    /// SIGTERM to each of `ids` that runs, then waits for all of them together.
    fn terminate_all(&mut self, ids: &[i32]) -> Vec<(i32, ExitStatus)> {
        let mut stopping: Vec<(i32, Child)> = ids
            .iter()
            .filter_map(|id| self.children.remove(id).map(|c| (*id, c)))
            .collect();
        for (id, child) in &stopping {
            if let Ok(pid) = i32::try_from(child.id()) {
                // Fails only when the process is gone already, which the wait below sees.
                let _ = signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            // A paused node would hold the SIGTERM until continued.
            self.continue_if_paused(*id, child);
        }
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        let mut out = Vec::new();
        while !stopping.is_empty() {
            let past_deadline = Instant::now() >= deadline;
            stopping.retain_mut(|(id, child)| match child.try_wait() {
                Ok(Some(status)) => {
                    out.push((*id, status));
                    false
                }
                Ok(None) if !past_deadline => true,
                _ => {
                    let _ = child.kill();
                    if let Ok(status) = child.wait() {
                        out.push((*id, status));
                    }
                    false
                }
            });
            if !stopping.is_empty() {
                thread::sleep(POLL_INTERVAL);
            }
        }
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Starts the node's process, its output appended to its log.
    fn spawn(&mut self, id: i32) -> Result<()> {
        let log_path = self.plan.log_path(id);
        let starts = self.starts.entry(id).or_insert(0);
        *starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error(format!("opening {}", log_path.display())))?;
        let config = self.plan.config_path(id);
        let prefix = self
            .exec_prefixes
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut cmd = isthmus_command(&self.binary, prefix);
        cmd.arg("--config").arg(&config);
        let _ = writeln!(
            log,
            "===== isthmusctl cluster local: start #{starts} of node {id}: {}{} --config {} =====",
            prefix.iter().map(|w| format!("{w} ")).collect::<String>(),
            self.binary.display(),
            config.display()
        );
        let stderr = log
            .try_clone()
            .map_err(io_error(format!("opening {}", log_path.display())))?;
        // Its own process group: a Ctrl-C in the terminal reaches only isthmusctl, which
        // then stops the nodes in order.
        let child = cmd
            .current_dir(self.plan.node_dir(id))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .map_err(io_error(format!("starting {}", self.binary.display())))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Waits until each of `ids` accepts connections on its ready port, failing with the
    /// log tail of a node that exits or does not listen within [`START_TIMEOUT`].
    fn wait_listening(&mut self, ids: &[i32], cancel: &AtomicBool) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut waiting: Vec<i32> = ids.to_vec();
        while !waiting.is_empty() {
            if cancel.load(Ordering::Relaxed) {
                return Err(LocalClusterError::Interrupted);
            }
            let mut still = Vec::new();
            for id in waiting {
                let Some(addr) = self.plan.node(id).and_then(NodeSpec::ready_addr) else {
                    continue;
                };
                let exited = match self.children.get_mut(&id) {
                    Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
                    None => Some("is not running".to_owned()),
                };
                if let Some(status) = exited {
                    self.children.remove(&id);
                    return Err(self.node_error(id, format!("exited during startup ({status})")));
                }
                if TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_err() {
                    still.push(id);
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let id = waiting[0];
                return Err(self.node_error(
                    id,
                    format!(
                        "did not accept connections within {START_TIMEOUT:?} (nodes still not listening: {waiting:?})"
                    ),
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    fn node_error(&self, id: i32, what: String) -> LocalClusterError {
        LocalClusterError::Node {
            id,
            what,
            log: self.plan.log_path(id),
            tail: self.log_tail(id, LOG_TAIL_LINES),
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
        }
        // SIGKILL ends stopped processes too; continuing them as well leaves no process
        // stopped even if the kill failed.
        let children = std::mem::take(&mut self.children);
        for (id, child) in &children {
            self.continue_if_paused(*id, child);
        }
        for (_, mut child) in children {
            let _ = child.wait();
        }
    }
}

/// `isthmus` (after `prefix`, if any) without the caller's `ISTHMUS_*` variables, which
/// would win over the configs, and without colours, since its output goes to a file.
fn isthmus_command(binary: &Path, prefix: &[String]) -> Command {
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(binary);
            cmd
        }
        None => Command::new(binary),
    };
    cmd.env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(BROKER_ENV_PREFIX) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The stored plan of a folder used before (its ports must not change: the controllers
/// were formatted with them), or a new plan, stored.
fn load_or_plan(layout: &Layout, dir: &Path) -> Result<Plan> {
    let path = dir.join(LAYOUT_FILE);
    let fresh = |port_free: &mut dyn FnMut(u16) -> bool| layout.plan_with(dir, port_free);
    match fs::read(&path) {
        Ok(bytes) => {
            let stored: Vec<NodeSpec> = serde_json::from_slice(&bytes).map_err(|e| {
                LocalClusterError::Layout(format!(
                    "{} is not a layout this isthmusctl can read ({e}); use another --dir",
                    path.display()
                ))
            })?;
            let wanted = fresh(&mut |_| true)?;
            let same = stored.len() == wanted.nodes.len()
                && stored
                    .iter()
                    .zip(&wanted.nodes)
                    .all(|(a, b)| a.same_member(b));
            if !same {
                return Err(LocalClusterError::Layout(format!(
                    "{} holds a cluster with another layout ({}); give the same --controllers/--brokers/--combined as before, or another --dir",
                    dir.display(),
                    describe_members(&stored)
                )));
            }
            let busy: Vec<String> = stored
                .iter()
                .filter(|n| n.host == LOOPBACK)
                .flat_map(|n| {
                    [n.client_port, n.controller_port]
                        .into_iter()
                        .flatten()
                        .map(move |p| (n.id, p))
                })
                .filter(|&(_, p)| !port_is_free(p))
                .map(|(id, p)| format!("{p} (node {id})"))
                .collect();
            if !busy.is_empty() {
                return Err(LocalClusterError::Ports(format!(
                    "ports of this cluster are in use: {}; is it already running (or another program on those ports)? The ports are fixed since the first start in {}",
                    busy.join(", "),
                    dir.display()
                )));
            }
            Ok(Plan {
                dir: dir.to_path_buf(),
                nodes: stored,
                settings: layout.settings.clone(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let plan = fresh(&mut port_is_free)?;
            let json = serde_json::to_vec_pretty(&plan.nodes)
                .map_err(|e| LocalClusterError::Layout(format!("encoding the layout: {e}")))?;
            write_file(&path, &json)?;
            Ok(plan)
        }
        Err(e) => Err(io_error(format!("reading {}", path.display()))(e)),
    }
}

fn describe_members(nodes: &[NodeSpec]) -> String {
    nodes
        .iter()
        .map(|n| format!("{} {} in {}", n.role.process_roles(), n.id, n.rack))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `DIR/cluster-id`, or a new id from `isthmus random-uuid`, written there.
fn load_or_create_cluster_id(dir: &Path, binary: &Path) -> Result<String> {
    let path = dir.join(CLUSTER_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(format!("reading {}", path.display()))(e)),
    }
    let mut cmd = isthmus_command(binary, &[]);
    cmd.arg("random-uuid");
    let out = run_captured(&mut cmd, COMMAND_TIMEOUT, "creating a cluster id")?;
    let id = out.trim().to_owned();
    if id.is_empty() {
        return Err(LocalClusterError::Command {
            what: "creating a cluster id".into(),
            command: format!("{} random-uuid", binary.display()),
            outcome: "printed no cluster id".into(),
            output: String::new(),
        });
    }
    write_file(&path, format!("{id}\n").as_bytes())?;
    Ok(id)
}

/// Creates the node's folders and writes its config (rewritten at every start, so `--set`
/// changes apply).
fn prepare_node(plan: &Plan, node: &NodeSpec) -> Result<()> {
    for d in [plan.data_dir(node.id), plan.metadata_dir(node.id)] {
        fs::create_dir_all(&d).map_err(io_error(format!("creating {}", d.display())))?;
    }
    write_file(
        &plan.config_path(node.id),
        plan.config_toml(node).as_bytes(),
    )
}

/// `isthmus format` writes `meta.properties` into the metadata log dir among others.
fn is_formatted(plan: &Plan, id: i32) -> bool {
    plan.metadata_dir(id).join(META_PROPERTIES).exists()
}

fn format_node(plan: &Plan, id: i32, binary: &Path, cluster_id: &str) -> Result<()> {
    let mut cmd = isthmus_command(binary, &[]);
    cmd.arg("format")
        .arg("--config")
        .arg(plan.config_path(id))
        // One argument with `=`: an id may start with `-` (Kafka's own never do, but an
        // operator may bring one).
        .arg(format!("--cluster-id={cluster_id}"))
        .current_dir(plan.node_dir(id));
    run_captured(&mut cmd, COMMAND_TIMEOUT, &format!("formatting node {id}")).map(|_| ())
}

/// Writes through a temporary file and a rename, so a crash leaves the old or the new file.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(io_error(format!("writing {}", path.display())))
}

/// Runs `cmd` with a time limit and returns its stdout; a failure carries both outputs.
fn run_captured(cmd: &mut Command, limit: Duration, what: &str) -> Result<String> {
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error(format!("running `{command}`")))?;
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(stdout),
        other => Err(LocalClusterError::Command {
            what: what.to_owned(),
            command,
            outcome: match other {
                Some(s) => format!("failed ({s})"),
                None => format!("did not finish within {limit:?}"),
            },
            output: format!("{stdout}{stderr}").trim_end().to_owned(),
        }),
    }
}

/// The last `n` lines of a text file ("" when it cannot be read).
fn file_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The `isthmus` binary for `isthmusctl cluster local`: next to this program (as a build
/// or an install puts them), else on `PATH`.
pub fn find_isthmus_binary() -> Result<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("isthmus")));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("isthmus"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            LocalClusterError::Layout(
                "cannot find the isthmus binary next to isthmusctl or on PATH; build it (`cargo build -p isthmus-broker`) or pass --isthmus PATH".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_parse_and_refuse_clearly() {
        assert_eq!(
            parse_sites("a:2, b:1").unwrap(),
            vec![
                SiteCount {
                    site: "a".into(),
                    count: 2
                },
                SiteCount {
                    site: "b".into(),
                    count: 1
                }
            ]
        );
        for (bad, says) in [
            ("a", "site:count"),
            ("a:x", "not a whole number"),
            ("a:0", "at least one node"),
            ("a:1,a:2", "listed twice"),
            ("a b:1", "has ' '"),
            ("", "names no site"),
        ] {
            let err = parse_sites(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn settings_parse_and_generated_ones_are_refused() {
        assert_eq!(
            parse_setting("sasl.jaas=a=b").unwrap(),
            ("sasl.jaas".into(), "a=b".into())
        );
        assert!(parse_setting("node.id=3").unwrap_err().contains("per node"));
        assert!(parse_setting("novalue").is_err());
    }

    #[test]
    fn nodes_on_hosts_of_their_own_listen_on_fixed_ports_of_their_address() {
        let mut layout = Layout {
            controllers: parse_sites("a:1").unwrap(),
            brokers: parse_sites("a:1,b:1").unwrap(),
            ..Layout::default()
        };
        let host = |last: u8| NodeHost {
            addr: IpAddr::V4(Ipv4Addr::new(10, 77, 1, last)),
            exec_prefix: vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                format!("n{last}"),
            ],
        };
        layout.hosts = [(1, host(10)), (101, host(11))].into_iter().collect();
        let err = layout.plan_with(Path::new("/c"), |_| true).unwrap_err();
        assert!(err.to_string().contains("give every node a host"), "{err}");
        layout.hosts.insert(102, host(12));
        // No port is probed: the addresses are not this host's.
        let plan = layout
            .plan_with(Path::new("/c"), |_| panic!("no port probe"))
            .unwrap();
        assert_eq!(plan.voters(), "1@10.77.1.10:9093");
        assert_eq!(plan.bootstrap_servers(), "10.77.1.11:9092,10.77.1.12:9092");
        let settings = plan.node_settings(&plan.nodes[1]);
        let listeners = settings.iter().find(|(k, _)| k == "listeners").unwrap();
        assert_eq!(listeners.1, "PLAINTEXT://10.77.1.11:9092");
        // A stored layout from before hosts existed reads as loopback.
        let old: NodeSpec = serde_json::from_str(
            r#"{"id":1,"role":"controller","rack":"a","client_port":null,"controller_port":19090}"#,
        )
        .unwrap();
        assert_eq!(
            old.controller_addr(),
            Some("127.0.0.1:19090".parse().unwrap())
        );
        assert!(!old.same_member(&plan.nodes[0]), "moved to another host");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny\u{1}"), r#""x\ny\u0001""#);
    }
}
