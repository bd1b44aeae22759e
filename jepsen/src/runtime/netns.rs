//! The netns runtime: every node a host in a network namespace of its own, the clients in
//! one namespace per site, all linked to a hub namespace that routes between them (the
//! network is described in [`super::topology`]). Every fault works here: kill and pause
//! through the processes, partitions and packet loss with iptables inside the
//! namespaces, WAN delay and jitter through the hub's [`WanProxy`].
//!
//! The cluster itself is [`LocalCluster`] with a host per node (`ip netns exec NS
//! isthmus …`). It and the proxy live on one thread that entered the hub namespace, so
//! the cluster's readiness checks reach every node whatever the partitions; callers send
//! it work over a channel.
//!
//! Everything is removed when the runtime is dropped (also while a panic unwinds): nodes
//! killed, namespaces deleted, and with them every link and rule. A run that was killed
//! leaves namespaces named after its dead process; the next run refuses to start until
//! [`clean`] (`isthmus-jepsen clean`) removed them.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use isthmus_ops::local_cluster::{Layout, LocalCluster, NodeHost};
use nix::sched::{setns, CloneFlags};

use super::topology::{self, Topology};
use super::wan_proxy::{Target, WanProxy};
use super::{Grudge, NodeRef, Runtime, RuntimeError, RuntimeResult, WanLink};

/// Where `ip netns add` puts the handles of named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Numbers the runs of this process, so runs at once get distinct namespaces.
static RUNS: AtomicU32 = AtomicU32::new(0);

fn failed(what: impl Into<String>) -> RuntimeError {
    RuntimeError::Failed(what.into())
}

/// Runs `program args…` (with `input` on stdin), failing with its output.
fn run_command(program: &str, args: &[String], input: Option<&str>) -> RuntimeResult<String> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("running `{shown}`: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| failed(format!("writing to `{shown}`: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("running `{shown}`: {e}")))?;
    if !out.status.success() {
        return Err(failed(format!(
            "`{shown}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            input.map(|i| format!("\ninput:\n{i}")).unwrap_or_default()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[String]) -> RuntimeResult<String> {
    run_command("ip", args, None)
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Feeds `rules` to `iptables-restore --noflush` inside namespace `ns`.
fn restore_rules(ns: &str, rules: &str) -> RuntimeResult<()> {
    run_command(
        "ip",
        &words(&format!("netns exec {ns} iptables-restore --noflush")),
        Some(rules),
    )
    .map(|_| ())
}

/// Every named namespace on the machine.
fn list_namespaces() -> RuntimeResult<Vec<String>> {
    let out = ip(&words("netns list"))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Our namespaces whose process is gone: what a killed run left behind.
fn leftovers() -> RuntimeResult<Vec<String>> {
    Ok(list_namespaces()?
        .into_iter()
        .filter(|ns| topology::namespace_owner(ns).is_some_and(|pid| !process_exists(pid)))
        .collect())
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills every process in namespace `ns` and deletes it (its links and rules go with it).
fn remove_namespace(ns: &str) -> RuntimeResult<()> {
    if let Ok(pids) = ip(&words(&format!("netns pids {ns}"))) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    ip(&words(&format!("netns del {ns}"))).map(|_| ())
}

/// Removes what runs that were killed left behind (namespaces of processes that are gone,
/// and the nodes still running in them). Returns the namespaces removed.
pub fn clean() -> RuntimeResult<Vec<String>> {
    let found = leftovers()?;
    for ns in &found {
        remove_namespace(ns)?;
    }
    Ok(found)
}

/// Moves the calling thread into namespace `ns`; threads it starts later are there too.
fn enter_namespace(ns: &str) -> RuntimeResult<()> {
    let path = Path::new(NETNS_DIR).join(ns);
    let file = File::open(&path).map_err(|e| failed(format!("opening {}: {e}", path.display())))?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| failed(format!("entering network namespace {ns}: {e}")))
}

/// The namespaces of one run, deleted on drop.
struct Network {
    topology: Topology,
    created: Vec<String>,
}

impl Network {
    fn build(topology: Topology) -> RuntimeResult<Network> {
        let mut net = Network {
            topology,
            created: Vec::new(),
        };
        let t = net.topology.clone();
        net.add_namespace(&t.hub)?;
        ip(&words(&format!("-n {} link set lo up", t.hub)))?;
        run_command(
            "ip",
            &[
                "netns".into(),
                "exec".into(),
                t.hub.clone(),
                "sh".into(),
                "-c".into(),
                "echo 1 > /proc/sys/net/ipv4/ip_forward".into(),
            ],
            None,
        )?;
        for (host, node) in t
            .nodes
            .values()
            .map(|h| (h, true))
            .chain(t.clients.iter().map(|h| (h, false)))
        {
            net.add_namespace(&host.namespace)?;
            for cmd in t.link_commands(host) {
                ip(&cmd)?;
            }
            restore_rules(&host.namespace, &t.host_setup_rules(node))?;
        }
        restore_rules(&t.hub, &t.hub_rules())?;
        Ok(net)
    }

    fn add_namespace(&mut self, ns: &str) -> RuntimeResult<()> {
        ip(&words(&format!("netns add {ns}")))?;
        self.created.push(ns.to_owned());
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Hosts first, the hub (made first) last.
        for ns in self.created.iter().rev() {
            if let Err(e) = remove_namespace(ns) {
                eprintln!("netns runtime: removing {ns}: {e}");
            }
        }
    }
}

/// What lives in the hub namespace.
struct HubState {
    cluster: LocalCluster,
    proxy: WanProxy,
}

type Job = Box<dyn FnOnce(&mut HubState) + Send>;

/// The thread in the hub namespace and the way to hand it work.
struct Hub {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    /// Starts the thread: it enters `hub_ns`, starts the proxy and the cluster, then runs
    /// jobs until the hub is dropped, when the cluster's nodes are killed.
    fn start(hub_ns: String, layout: Layout, dir: PathBuf, binary: PathBuf) -> RuntimeResult<Hub> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<RuntimeResult<()>>();
        let thread = thread::Builder::new()
            .name("jepsen-netns-hub".into())
            .spawn(move || {
                let setup = || -> RuntimeResult<HubState> {
                    enter_namespace(&hub_ns)?;
                    let listen =
                        SocketAddr::from((Ipv4Addr::UNSPECIFIED, topology::WAN_PROXY_PORT));
                    let proxy = WanProxy::start(listen, Target::OriginalDestination)
                        .map_err(|e| failed(format!("starting the WAN proxy: {e}")))?;
                    let cluster = LocalCluster::start(&layout, &dir, &binary)
                        .map_err(|e| failed(e.to_string()))?;
                    Ok(HubState { cluster, proxy })
                };
                let mut state = match setup() {
                    Ok(state) => {
                        let _ = ready_tx.send(Ok(()));
                        state
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = job_rx.recv() {
                    job(&mut state);
                }
            })
            .map_err(|e| failed(format!("starting the hub thread: {e}")))?;
        let hub = Hub {
            jobs: Some(job_tx),
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(hub),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(failed("the hub thread ended while starting")),
        }
    }

    /// Runs `f` on the hub thread and returns what it returned.
    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut HubState) -> R + Send + 'static,
    ) -> RuntimeResult<R> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |state| {
            let _ = tx.send(f(state));
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| failed("the hub is stopped"))?
            .send(job)
            .map_err(|_| failed("the hub thread is gone"))?;
        rx.recv().map_err(|_| failed("the hub thread is gone"))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop, which drops the cluster (every node
        // killed) and the proxy.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A cluster in network namespaces.
pub struct NetnsRuntime {
    // Dropped in this order: the nodes stop before their namespaces go.
    hub: Hub,
    network: Network,
    nodes: Vec<NodeRef>,
    bootstrap: String,
    log_files: Vec<(String, PathBuf)>,
}

impl NetnsRuntime {
    /// Builds the network for `layout` over `sites` and starts the cluster in `dir` with
    /// the `isthmus` binary at `binary`. Needs root, `ip` and `iptables`.
    pub fn start(
        layout: &Layout,
        sites: &[String],
        dir: &Path,
        binary: &Path,
    ) -> RuntimeResult<Self> {
        if !nix::unistd::geteuid().is_root() {
            return Err(RuntimeError::Unsupported {
                runtime: "netns",
                what: "run without root (namespaces and iptables need it; use --runtime local)",
            });
        }
        for (program, package) in [("ip", "iproute2"), ("iptables-restore", "iptables")] {
            if run_command(program, &["-V".into()], None).is_err() {
                return Err(failed(format!(
                    "the netns runtime needs `{program}` (Debian package {package}; scripts/install-test-deps.sh installs it)"
                )));
            }
        }
        // Refuse a bad layout before making any namespace for it.
        layout.validate().map_err(|e| failed(e.to_string()))?;
        let stale = leftovers()?;
        if !stale.is_empty() {
            return Err(RuntimeError::Leftovers(format!(
                "network namespaces {}",
                stale.join(", ")
            )));
        }
        let members: Vec<(i32, String)> = layout
            .members()
            .into_iter()
            .map(|(id, _, site)| (id, site))
            .collect();
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        let topology = Topology::new(std::process::id(), run, sites, &members).map_err(failed)?;
        let network = Network::build(topology)?;
        let mut layout = layout.clone();
        layout.hosts = network
            .topology
            .nodes
            .iter()
            .map(|(&id, host)| {
                (
                    id,
                    NodeHost {
                        addr: IpAddr::V4(host.addr),
                        exec_prefix: words(&format!("ip netns exec {}", host.namespace)),
                    },
                )
            })
            .collect();
        let hub = Hub::start(
            network.topology.hub.clone(),
            layout,
            dir.to_path_buf(),
            binary.to_path_buf(),
        )?;
        let (nodes, bootstrap, log_files) = hub.call(|h| {
            let plan = h.cluster.plan();
            (
                super::node_refs(plan),
                plan.bootstrap_servers(),
                super::plan_log_files(plan),
            )
        })?;
        Ok(NetnsRuntime {
            hub,
            network,
            nodes,
            bootstrap,
            log_files,
        })
    }

    /// The namespaces of this run (for tests and messages).
    pub fn namespaces(&self) -> Vec<String> {
        self.network.topology.namespaces()
    }

    fn on_cluster(
        &self,
        f: impl FnOnce(&mut LocalCluster) -> Result<(), isthmus_ops::local_cluster::LocalClusterError>
            + Send
            + 'static,
    ) -> RuntimeResult<()> {
        self.hub
            .call(move |h| f(&mut h.cluster).map_err(|e| failed(e.to_string())))?
    }
}

impl Runtime for NetnsRuntime {
    fn name(&self) -> &'static str {
        "netns"
    }

    fn nodes(&self) -> Vec<NodeRef> {
        self.nodes.clone()
    }

    fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    fn enter_client(&self, client: usize) -> RuntimeResult<()> {
        enter_namespace(&self.network.topology.client_host(client).namespace)
    }

    fn kill(&mut self, id: i32) -> RuntimeResult<()> {
        self.on_cluster(move |c| c.kill(id))
    }

    fn restart(&mut self, id: i32) -> RuntimeResult<()> {
        self.on_cluster(move |c| c.restart(id))
    }

    fn pause(&mut self, id: i32) -> RuntimeResult<()> {
        self.on_cluster(move |c| c.pause(id))
    }

    fn resume(&mut self, id: i32) -> RuntimeResult<()> {
        self.on_cluster(move |c| c.resume(id))
    }

    fn partition(&mut self, grudge: &Grudge) -> RuntimeResult<()> {
        let known: Vec<i32> = self.nodes.iter().map(|n| n.id).collect();
        if let Some(id) = grudge
            .groups
            .iter()
            .flatten()
            .find(|id| !known.contains(id))
        {
            return Err(failed(format!("node {id} is not part of this cluster")));
        }
        for (ns, rules) in self.network.topology.partition_rules(grudge) {
            restore_rules(&ns, &rules)?;
        }
        Ok(())
    }

    fn heal_partitions(&mut self) -> RuntimeResult<()> {
        self.partition(&Grudge { groups: Vec::new() })
    }

    fn set_wan(&mut self, link: Option<WanLink>) -> RuntimeResult<()> {
        if let Some(l) = link {
            if !(0.0..=1.0).contains(&l.loss) {
                return Err(failed(format!("loss {} is not between 0 and 1", l.loss)));
            }
        }
        self.hub.call(move |h| h.proxy.set_link(link))?;
        for (ns, rules) in self.network.topology.loss_rules(link) {
            restore_rules(&ns, &rules)?;
        }
        Ok(())
    }

    fn log_files(&self) -> Vec<(String, PathBuf)> {
        self.log_files.clone()
    }
}
