//! The local stretch cluster (`isthmus_ops::local_cluster` and `isthmusctl cluster local`).
//!
//! - Config generation, without processes: node ids, racks, unique ports, the voters
//!   string, each node's TOML (parsed back), shared settings, refused layouts.
//! - Real processes, what runs today: a combined one-node cluster through the library
//!   (describe, kill, restart, terminate, pause and resume, a second start on the same
//!   folder) and through the CLI (until SIGTERM).
//! - The full default layout (3 controllers, 4 brokers on two sites), ignored until
//!   broker-only and controller-only nodes and several voters run.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{ctl, isthmus_binary, isthmusctl, wait_for};
use isthmus_ops::local_cluster::{
    parse_sites, Layout, LocalCluster, LocalClusterError, NodeSpec, Plan, Role, SiteCount,
};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;

fn sites(text: &str) -> Vec<SiteCount> {
    parse_sites(text).unwrap()
}

fn any_port(_: u16) -> bool {
    true
}

/// The node's config as TOML, parsed back into `name → value`.
fn parsed_config(plan: &Plan, node: &NodeSpec) -> toml::Table {
    toml::from_str(&plan.config_toml(node)).expect("generated config is valid TOML")
}

fn setting<'a>(config: &'a toml::Table, name: &str) -> &'a str {
    config
        .get(name)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{name} missing from {config:?}"))
}

/// A cluster of one combined node in site `east`, in its own temporary folder.
fn one_combined_node() -> (tempfile::TempDir, Layout, LocalCluster) {
    let dir = temp_dir();
    let layout = Layout {
        base_port: base_port(),
        ..Layout::combined(sites("east:1"))
    };
    let cluster = LocalCluster::start(&layout, dir.path(), &isthmus_binary())
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, layout, cluster)
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("isthmus-ops-local-")
        .tempdir()
        .expect("temporary folder")
}

/// A base port with room above it, below the kernel's ephemeral range.
fn base_port() -> u16 {
    common::cluster_base_port()
}

#[test]
fn default_layout_is_two_sites_with_three_controllers_and_four_brokers() {
    let plan = Layout::default()
        .plan_with(Path::new("/c"), any_port)
        .unwrap();
    let summary: Vec<(i32, Role, &str)> = plan
        .nodes
        .iter()
        .map(|n| (n.id, n.role, n.rack.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, Role::Controller, "a"),
            (2, Role::Controller, "a"),
            (3, Role::Controller, "b"),
            (101, Role::Broker, "a"),
            (102, Role::Broker, "a"),
            (103, Role::Broker, "b"),
            (104, Role::Broker, "b"),
        ]
    );
    assert_eq!(
        plan.voters(),
        "1@127.0.0.1:19090,2@127.0.0.1:19091,3@127.0.0.1:19092"
    );
    assert_eq!(
        plan.bootstrap_servers(),
        "127.0.0.1:19093,127.0.0.1:19094,127.0.0.1:19095,127.0.0.1:19096"
    );
    for n in &plan.nodes {
        assert_eq!(n.client_port.is_some(), n.role == Role::Broker);
        assert_eq!(n.controller_port.is_some(), n.role == Role::Controller);
    }
}

#[test]
fn each_node_config_has_its_role_rack_ports_and_dirs() {
    let plan = Layout::default()
        .plan_with(Path::new("/c"), any_port)
        .unwrap();
    let controller = parsed_config(&plan, plan.node(3).unwrap());
    assert_eq!(setting(&controller, "node.id"), "3");
    assert_eq!(setting(&controller, "process.roles"), "controller");
    assert_eq!(setting(&controller, "broker.rack"), "b");
    assert_eq!(
        setting(&controller, "listeners"),
        "CONTROLLER://127.0.0.1:19092"
    );
    assert_eq!(
        setting(&controller, "controller.listener.names"),
        "CONTROLLER"
    );
    assert_eq!(
        setting(&controller, "controller.quorum.voters"),
        plan.voters()
    );
    assert_eq!(setting(&controller, "log.dirs"), "/c/node-3/data");
    assert_eq!(
        setting(&controller, "metadata.log.dir"),
        "/c/node-3/metadata"
    );

    let broker = parsed_config(&plan, plan.node(103).unwrap());
    assert_eq!(setting(&broker, "node.id"), "103");
    assert_eq!(setting(&broker, "process.roles"), "broker");
    assert_eq!(setting(&broker, "broker.rack"), "b");
    assert_eq!(setting(&broker, "listeners"), "PLAINTEXT://127.0.0.1:19095");
    assert_eq!(setting(&broker, "controller.quorum.voters"), plan.voters());
    assert_eq!(setting(&broker, "log.dirs"), "/c/node-103/data");
    assert_eq!(setting(&broker, "metadata.log.dir"), "/c/node-103/metadata");
    assert_eq!(plan.config_path(103), Path::new("/c/node-103/isthmus.toml"));
    assert_eq!(plan.log_path(103), Path::new("/c/node-103/isthmus.log"));
}

#[test]
fn combined_nodes_have_both_listeners_and_all_are_voters() {
    let plan = Layout::combined(sites("a:2,b:1"))
        .plan_with(Path::new("/c"), any_port)
        .unwrap();
    assert_eq!(
        plan.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        plan.voters(),
        "1@127.0.0.1:19091,2@127.0.0.1:19093,3@127.0.0.1:19095"
    );
    assert_eq!(
        plan.bootstrap_servers(),
        "127.0.0.1:19090,127.0.0.1:19092,127.0.0.1:19094"
    );
    let c = parsed_config(&plan, plan.node(3).unwrap());
    assert_eq!(setting(&c, "process.roles"), "broker,controller");
    assert_eq!(setting(&c, "broker.rack"), "b");
    assert_eq!(
        setting(&c, "listeners"),
        "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    );
}

#[test]
fn ports_in_use_are_skipped_and_never_reused() {
    let busy = [19090, 19091, 19094];
    let layout = Layout {
        base_port: 19090,
        ..Layout::default()
    };
    let plan = layout
        .plan_with(Path::new("/c"), |p| !busy.contains(&p))
        .unwrap();
    let ports: Vec<u16> = plan
        .nodes
        .iter()
        .flat_map(|n| [n.client_port, n.controller_port])
        .flatten()
        .collect();
    assert_eq!(ports, vec![19092, 19093, 19095, 19096, 19097, 19098, 19099]);

    // With a real bind check every port is distinct and bindable now.
    let base = base_port();
    let plan = Layout {
        base_port: base,
        ..Layout::combined(sites("a:2,b:2"))
    }
    .plan(Path::new("/c"))
    .unwrap();
    let mut ports: Vec<u16> = plan
        .nodes
        .iter()
        .flat_map(|n| [n.client_port, n.controller_port])
        .flatten()
        .collect();
    assert_eq!(ports.len(), 8);
    assert!(ports.iter().all(|&p| p >= base));
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 8, "ports are unique");
}

#[test]
fn shared_settings_reach_every_node_last_value_wins() {
    let layout = Layout {
        settings: vec![
            ("broker.session.timeout.ms".into(), "3000".into()),
            ("num.partitions".into(), "3".into()),
            ("broker.session.timeout.ms".into(), "4000".into()),
            // Quotes and backslashes survive the TOML round trip.
            ("x.odd".into(), r#"a"b\c"#.into()),
        ],
        ..Layout::default()
    };
    let plan = layout.plan_with(Path::new("/c"), any_port).unwrap();
    for n in &plan.nodes {
        let c = parsed_config(&plan, n);
        assert_eq!(setting(&c, "broker.session.timeout.ms"), "4000");
        assert_eq!(setting(&c, "num.partitions"), "3");
        assert_eq!(setting(&c, "x.odd"), r#"a"b\c"#);
        let text = plan.config_toml(n);
        assert_eq!(text.matches("broker.session.timeout.ms").count(), 1);
    }
}

#[test]
fn bad_layouts_are_refused_with_a_reason() {
    let refused = |layout: Layout, says: &str| {
        let err = layout
            .plan_with(Path::new("/c"), any_port)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "expected '{says}' in: {err}");
    };
    refused(
        Layout {
            controllers: vec![],
            ..Layout::default()
        },
        "at least one controller",
    );
    refused(
        Layout {
            brokers: vec![],
            ..Layout::default()
        },
        "at least one broker",
    );
    refused(
        Layout {
            combined: sites("a:1"),
            ..Layout::default()
        },
        "cannot be mixed",
    );
    refused(
        Layout {
            brokers: sites("a:101"),
            ..Layout::default()
        },
        "at most 100",
    );
    refused(
        Layout {
            settings: vec![("controller.quorum.voters".into(), "1@x:1".into())],
            ..Layout::default()
        },
        "written per node",
    );
    refused(
        Layout {
            base_port: 65_530,
            ..Layout::default()
        },
        "no free port left",
    );
    refused(
        Layout {
            base_port: 0,
            ..Layout::default()
        },
        "above 0",
    );
}

/// JSON output of one `isthmusctl` run that must succeed.
fn ctl_json(bootstrap: &str, args: &[&str]) -> Value {
    let out = ctl(bootstrap, args);
    serde_json::from_str(out.ok()).unwrap_or_else(|e| panic!("{e}\n{}", out.describe()))
}

/// `quorum status --json` and `cluster describe --json`, once the node answers both.
fn describe(bootstrap: &str) -> (Value, Value) {
    let quorum = wait_for(
        "the quorum leader to answer",
        Duration::from_secs(30),
        || {
            let out = ctl(bootstrap, &["quorum", "status", "--json"]);
            (out.code() == Some(0)).then(|| serde_json::from_str(&out.stdout).unwrap())
        },
    );
    (
        quorum,
        ctl_json(bootstrap, &["cluster", "describe", "--json"]),
    )
}

#[test]
fn combined_node_starts_describes_restarts_and_keeps_its_identity() {
    let (dir, layout, mut cluster) = one_combined_node();
    let node = cluster.node(1).expect("node 1");
    assert_eq!(node.role, Role::Combined);
    assert_eq!(node.rack, "east");
    assert!(node.pid.is_some());
    assert!(node.log_path.is_file());
    let bootstrap = cluster.bootstrap_servers();
    assert_eq!(bootstrap, node.client_addr.unwrap().to_string());
    assert_eq!(
        cluster.controller_quorum(),
        format!("1@{}", node.controller_addr.unwrap())
    );
    let stored_id = std::fs::read_to_string(dir.path().join("cluster-id")).unwrap();
    assert_eq!(stored_id.trim(), cluster.cluster_id());

    let (quorum, described) = describe(&bootstrap);
    assert_eq!(quorum["cluster_id"], cluster.cluster_id());
    assert_eq!(quorum["leader_id"], 1);
    assert_eq!(quorum["voters"][0]["status"], "Leader");
    assert_eq!(
        quorum["voters"][0]["endpoints"][0],
        format!("CONTROLLER://{}", node.controller_addr.unwrap())
    );
    assert_eq!(described["cluster_id"], cluster.cluster_id());
    assert_eq!(described["brokers"][0]["id"], 1);
    assert_eq!(described["brokers"][0]["rack"], "east");
    assert_eq!(described["brokers"][0]["fenced"], false);

    ctl(
        &bootstrap,
        &["topics", "create", "--topic", "kept", "--partitions", "2"],
    )
    .ok();
    // A crash, then a restart on the same ports and data.
    cluster.kill(1).unwrap();
    assert!(!cluster.is_running(1));
    assert!(cluster.node(1).unwrap().pid.is_none());
    cluster.restart(1).unwrap_or_else(|e| panic!("{e}"));
    let (_, described) = describe(&bootstrap);
    assert_eq!(described["partitions"], 2, "{described}");
    // A clean stop, then a restart.
    let status = cluster.terminate(1).unwrap().expect("was running");
    assert!(status.success(), "{status}");
    assert_eq!(cluster.terminate(1).unwrap(), None, "not running any more");
    cluster.restart(1).unwrap_or_else(|e| panic!("{e}"));
    assert!(cluster.is_running(1));
    assert!(matches!(
        cluster.kill(7),
        Err(LocalClusterError::UnknownNode(7))
    ));
    let cluster_id = cluster.cluster_id().to_owned();
    let stopped = cluster.stop_all();
    assert_eq!(stopped.len(), 1);
    assert!(stopped[0].1.success(), "{stopped:?}");
    drop(cluster);

    // Started again on the same folder: same id and ports, no new format, data kept.
    let again = LocalCluster::start(
        &Layout {
            base_port: layout.base_port + 1_000,
            ..layout.clone()
        },
        dir.path(),
        &isthmus_binary(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.cluster_id(), cluster_id);
    assert_eq!(
        again.bootstrap_servers(),
        bootstrap,
        "ports kept from the first start"
    );
    let (quorum, described) = describe(&bootstrap);
    assert_eq!(quorum["cluster_id"], cluster_id);
    assert_eq!(described["partitions"], 2);

    // Another layout on the same folder is refused before anything starts.
    drop(again);
    let err = LocalCluster::start(
        &Layout::combined(sites("east:2")),
        dir.path(),
        &isthmus_binary(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("another layout"), "{err}");
}

/// The state letter of `/proc/<pid>/stat` ('T' when stopped by a signal).
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

/// The state letter of every thread of `pid`, from `/proc/<pid>/task/*/stat`.
fn thread_states(pid: u32) -> Vec<char> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
                .filter_map(|stat| {
                    stat.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.chars().next())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The process state once `settled` holds, or the last one seen after 5 s: signals are
/// delivered asynchronously, so /proc may still show the old state for a moment.
fn settled_state(pid: u32, settled: impl Fn(char) -> bool) -> char {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let state = process_state(pid);
        if settled(state) || std::time::Instant::now() >= deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends an ApiVersions v0 request with correlation id `correlation` on `stream`.
fn send_api_versions(stream: &mut std::net::TcpStream, correlation: i32) {
    use std::io::Write;
    let client = b"pause-test";
    let mut frame = Vec::new();
    frame.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&correlation.to_be_bytes());
    frame.extend_from_slice(&(client.len() as i16).to_be_bytes());
    frame.extend_from_slice(client);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    stream.write_all(&out).expect("request written");
}

/// The correlation id of the next answer on `stream`, or `None` if none comes in time.
fn read_correlation(stream: &mut std::net::TcpStream, limit: Duration) -> Option<i32> {
    use std::io::Read;
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).ok()?;
    let size = i32::from_be_bytes(head[..4].try_into().unwrap());
    let mut rest = vec![0u8; usize::try_from(size).ok()?.saturating_sub(4)];
    stream.read_exact(&mut rest).ok()?;
    Some(i32::from_be_bytes(head[4..].try_into().unwrap()))
}

#[test]
fn a_paused_node_answers_nothing_until_resumed_and_is_never_left_stopped() {
    let (_dir, _, mut cluster) = one_combined_node();
    let addr = cluster.node(1).unwrap().client_addr.unwrap();
    let pid = cluster.node(1).unwrap().pid.unwrap();
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    send_api_versions(&mut stream, 1);
    assert_eq!(
        read_correlation(&mut stream, Duration::from_secs(10)),
        Some(1)
    );

    // Paused: the process is stopped and a request waits in its socket, unanswered.
    cluster.pause(1).unwrap();
    assert!(cluster.is_paused(1));
    assert!(
        cluster.is_running(1),
        "a paused node still counts as running"
    );
    // Stopped by the time pause returns, every thread: SIGSTOP only begins a group stop,
    // and a thread not yet stopped can still answer a request.
    let states = thread_states(pid);
    assert!(
        states.len() > 1 && states.iter().all(|&s| s == 'T'),
        "threads of a paused node: {states:?}"
    );
    cluster.pause(1).expect("pausing twice does nothing");
    send_api_versions(&mut stream, 2);
    assert_eq!(read_correlation(&mut stream, Duration::from_secs(2)), None);

    // Resumed: it runs again and answers what was queued.
    cluster.resume(1).unwrap();
    assert!(!cluster.is_paused(1));
    cluster
        .resume(1)
        .expect("resuming a running node does nothing");
    assert_ne!(settled_state(pid, |s| s != 'T'), 'T');
    assert_eq!(
        read_correlation(&mut stream, Duration::from_secs(10)),
        Some(2)
    );
    drop(stream);

    // Terminating a paused node continues it, so it stops cleanly, not after the SIGKILL
    // deadline.
    cluster.pause(1).unwrap();
    let asked = Instant::now();
    let status = cluster.terminate(1).unwrap().expect("was running");
    assert!(status.success(), "{status}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );
    assert!(!cluster.is_paused(1));
    assert!(matches!(
        cluster.pause(1),
        Err(LocalClusterError::NotRunning { id: 1, .. })
    ));
    assert!(matches!(
        cluster.pause(9),
        Err(LocalClusterError::UnknownNode(9))
    ));

    // stop_all continues a paused node too.
    cluster.restart(1).unwrap_or_else(|e| panic!("{e}"));
    cluster.pause(1).unwrap();
    let stopped = cluster.stop_all();
    assert_eq!(stopped.len(), 1);
    assert!(stopped[0].1.success(), "{stopped:?}");

    // A kill ends a paused node; so does dropping the cluster.
    cluster.restart(1).unwrap_or_else(|e| panic!("{e}"));
    cluster.pause(1).unwrap();
    cluster.kill(1).unwrap();
    assert!(!cluster.is_paused(1));
    cluster.restart(1).unwrap_or_else(|e| panic!("{e}"));
    let pid = cluster.node(1).unwrap().pid.unwrap();
    cluster.pause(1).unwrap();
    drop(cluster);
    assert!(
        !process_alive(pid as i32),
        "paused node {pid} outlived the cluster"
    );
}

/// `isthmusctl cluster local` as a child; Drop stops it (SIGTERM, then SIGKILL) and kills
/// any node it printed that is still alive, so a failing test leaves no process behind.
struct CtlCluster {
    child: Child,
    lines: mpsc::Receiver<String>,
    node_pids: Vec<i32>,
}

impl CtlCluster {
    fn start(args: &[&str]) -> CtlCluster {
        let mut child = Command::new(isthmusctl())
            .args(["cluster", "local"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("isthmusctl runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        CtlCluster {
            child,
            lines,
            node_pids: Vec::new(),
        }
    }

    /// Reads output until a line starts with `prefix`; returns the rest of that line and
    /// every line before it.
    fn read_until(&mut self, prefix: &str, limit: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return (rest.trim().to_owned(), seen);
                    }
                    seen.push(line);
                }
                Err(e) => panic!(
                    "no line starting with '{prefix}' ({e}); output so far:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = signal::kill(pid, sig);
    }

    /// Waits for the exit after SIGTERM.
    fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "isthmusctl did not exit after SIGTERM"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for CtlCluster {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.terminate(Duration::from_secs(45));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for &pid in &self.node_pids {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // Signal 0 checks for existence; a zombie still counts, so look at its state too.
    signal::kill(Pid::from_raw(pid), None).is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

#[test]
fn cli_runs_a_combined_node_until_sigterm() {
    let dir = temp_dir();
    let data = dir.path().join("cluster");
    let port = base_port().to_string();
    let binary = isthmus_binary();
    let mut run = CtlCluster::start(&[
        "--dir",
        data.to_str().unwrap(),
        "--combined",
        "west:1",
        "--base-port",
        &port,
        "--isthmus",
        binary.to_str().unwrap(),
        "--set",
        "num.partitions=3",
    ]);
    let (bootstrap, before) = run.read_until("Bootstrap servers:", Duration::from_secs(90));
    let node_row = before
        .iter()
        .find(|l| l.starts_with("1 "))
        .unwrap_or_else(|| panic!("node row in:\n{}", before.join("\n")));
    let cells: Vec<&str> = node_row.split_whitespace().collect();
    assert_eq!(
        &cells[..4],
        ["1", "broker,controller", "west", bootstrap.as_str()]
    );
    let pid: i32 = cells[5].parse().expect("pid column");
    run.node_pids.push(pid);
    let (quorum, _) = run.read_until("Controller quorum:", Duration::from_secs(5));
    assert_eq!(quorum, format!("1@{}", cells[4]));

    // The shared setting reached the node: auto-created topics get 3 partitions.
    ctl(&bootstrap, &["topics", "create", "--topic", "auto"]).ok();
    let out = ctl(&bootstrap, &["cluster", "describe"]);
    let text = out.ok();
    assert!(text.contains("Partitions:   3 in 1 topic"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["1", bootstrap.as_str(), "west", "no", "3", "3"]),
        "{text}"
    );

    let status = run.terminate(Duration::from_secs(45));
    assert!(status.success(), "isthmusctl exited with {status}");
    assert!(!process_alive(pid), "node process {pid} still runs");
    let log = common::file_tail(&data.join("node-1").join("isthmus.log"), 5);
    assert!(log.contains("stopped cleanly"), "{log}");
    assert!(!log.contains('\u{1b}'), "logs carry no colour codes: {log}");
}

/// The stretch layout of the README: three controllers (a:2, b:1) and four brokers (a:2,
/// b:2): brokers as quorum observers, DescribeQuorum answered through a broker, fencing of
/// a broker that stops heartbeating and unfencing at its restart.
#[test]
fn stretch_layout_three_controllers_four_brokers() {
    let dir = temp_dir();
    let layout = Layout {
        base_port: base_port(),
        settings: vec![("broker.session.timeout.ms".into(), "3000".into())],
        ..Layout::default()
    };
    let mut cluster = LocalCluster::start(&layout, dir.path(), &isthmus_binary())
        .unwrap_or_else(|e| panic!("{e}"));
    let bootstrap = cluster.bootstrap_servers();
    assert_eq!(bootstrap.split(',').count(), 4);

    let (quorum, described) = describe(&bootstrap);
    let ids = |v: &Value| -> Vec<i64> {
        let mut ids: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&quorum["voters"]), vec![1, 2, 3], "{quorum}");
    assert_eq!(
        ids(&quorum["observers"]),
        vec![101, 102, 103, 104],
        "{quorum}"
    );
    let leader = quorum["leader_id"].as_i64().unwrap();
    assert!((1..=3).contains(&leader), "{quorum}");
    assert_eq!(
        described["controller_id"].as_i64(),
        Some(leader),
        "{described}"
    );
    let racks: Vec<(i64, &str, bool)> = described["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_i64().unwrap(),
                b["rack"].as_str().unwrap(),
                b["fenced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        racks,
        vec![
            (101, "a", false),
            (102, "a", false),
            (103, "b", false),
            (104, "b", false)
        ]
    );

    // RF=3 across both sites: every broker holds replicas.
    ctl(
        &bootstrap,
        &[
            "topics",
            "create",
            "--topic",
            "stretched",
            "--partitions",
            "8",
            "--replication-factor",
            "3",
        ],
    )
    .ok();
    // The broker that answers may learn of the new topic a moment after the controller
    // committed it.
    wait_for(
        "every broker to hold replicas of the new topic",
        Duration::from_secs(30),
        || {
            let (_, described) = describe(&bootstrap);
            described["brokers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["replicas"].as_i64().unwrap() > 0)
                .then_some(())
        },
    );

    // A broker that dies is fenced after its session times out, and unfenced on restart.
    let down = cluster.node(104).unwrap().client_addr.unwrap().to_string();
    let others: String = bootstrap
        .split(',')
        .filter(|a| *a != down)
        .collect::<Vec<_>>()
        .join(",");
    let fenced = |want: bool| {
        let others = others.clone();
        move || {
            let out = ctl(&others, &["cluster", "describe", "--json"]);
            let d: Value = serde_json::from_str(&out.stdout).ok()?;
            d["brokers"]
                .as_array()?
                .iter()
                .any(|b| b["id"] == 104 && b["fenced"] == want)
                .then_some(())
        }
    };
    cluster.kill(104).unwrap();
    wait_for("broker 104 fenced", Duration::from_secs(30), fenced(true));
    cluster.restart(104).unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "broker 104 unfenced",
        Duration::from_secs(30),
        fenced(false),
    );

    // Losing the quorum leader elects another voter.
    cluster.kill(leader as i32).unwrap();
    wait_for("a new quorum leader", Duration::from_secs(30), || {
        let out = ctl(&bootstrap, &["quorum", "status", "--json"]);
        let q: Value = serde_json::from_str(&out.stdout).ok()?;
        let now = q["leader_id"].as_i64()?;
        (now != leader && (1..=3).contains(&now)).then_some(())
    });
    cluster
        .restart(leader as i32)
        .unwrap_or_else(|e| panic!("{e}"));
    for (id, status) in cluster.stop_all() {
        assert!(status.success(), "node {id}: {status}");
    }
}
