//! The netns runtime for real: `isthmus` nodes in network namespaces of their own (root,
//! iproute2 and iptables, which scripts/install-test-deps.sh installs), librdkafka
//! clients in per-site client namespaces, faults through processes, iptables and the WAN
//! proxy.
//!
//! - The network: a site partition cuts exactly the links between sites, WAN latency
//!   slows every crossing (also on connections opened before it), healing restores both,
//!   and dropping the runtime removes every namespace.
//! - Leftovers of a killed run stop the next run until `isthmus-jepsen clean`; a run
//!   stopped with SIGTERM in the middle of a partition removes everything itself.
//! - A safe stretch layout (RF=3 over two sites, min.insync=2, acks=all, idempotence)
//!   under kills, pauses and site partitions: no anomaly.
//! - An unsafe one (acks=1, min.insync=1, unclean election) under site partitions: lost
//!   writes reported, so the harness sees loss where there is loss.
//!
//! Leftovers are global to the machine, so these tests run one at a time: a test group
//! in `.config/nextest.toml`, and [`SERIAL`] under `cargo test`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use isthmus_jepsen::history::{Phase, F};
use isthmus_jepsen::runtime::netns::{clean, NetnsRuntime};
use isthmus_jepsen::runtime::{Grudge, Runtime, RuntimeError, WanLink};
use isthmus_jepsen::History;
use isthmus_ops::local_cluster::{Layout, SiteCount};

mod common;

use common::{assert_lost_writes, assert_no_nodes_left, assert_safe_run, jepsen_binary, run};

static SERIAL: Mutex<()> = Mutex::new(());

/// A run in the background: if the test fails, the run is stopped with SIGTERM (so it
/// removes its namespaces) and its output is shown.
struct StopOnDrop {
    child: std::process::Child,
    output: PathBuf,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "output of the run:\n{}",
                std::fs::read_to_string(&self.output).unwrap_or_default()
            );
        }
    }
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `target/<profile>/isthmus`, built with the workspace's binaries.
fn isthmus_binary() -> PathBuf {
    let path = Path::new(jepsen_binary()).with_file_name("isthmus");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn assert_no_namespaces_of(pid: u32) {
    let prefix = format!("isj{pid}-");
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// Whether a shell in namespace `ns` can open a TCP connection to `addr` within 2 s.
fn can_connect_from(ns: &str, addr: SocketAddr) -> bool {
    let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "2", "bash", "-c", &script])
        .status()
        .unwrap()
        .success()
}

/// One ApiVersions v0 request and its answer on `stream`; returns how long it took.
fn api_versions_round_trip(stream: &mut TcpStream) -> Duration {
    // size, api key 18, version 0, correlation id 7, client id null
    let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    let started = Instant::now();
    stream.write_all(&request).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(&body[..4], &[0, 0, 0, 7], "the answer's correlation id");
    started.elapsed()
}

#[test]
fn partitions_and_wan_latency_act_on_the_links_between_sites() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Controller 1 in a; brokers 101 in a, 102 and 103 in b.
    let layout = Layout {
        controllers: vec![SiteCount {
            site: "a".into(),
            count: 1,
        }],
        brokers: vec![
            SiteCount {
                site: "a".into(),
                count: 1,
            },
            SiteCount {
                site: "b".into(),
                count: 2,
            },
        ],
        ..Layout::default()
    };
    let sites = vec!["a".to_string(), "b".to_string()];
    let mut rt = NetnsRuntime::start(&layout, &sites, tmp.path(), &isthmus_binary())
        .unwrap_or_else(|e| panic!("{e}"));
    let ours = rt.namespaces();
    assert_eq!(ours.len(), 4 + 2 + 1, "{ours:?}");
    assert!(ours.iter().all(|n| namespaces().contains(n)));
    let addrs: Vec<SocketAddr> = rt
        .bootstrap_servers()
        .split(',')
        .map(|a| a.parse().unwrap())
        .collect();
    let (b101, b102, b103) = (addrs[0], addrs[1], addrs[2]);
    let ns101 = ours.iter().find(|n| n.ends_with("-n101")).unwrap().clone();
    let ns102 = ours.iter().find(|n| n.ends_with("-n102")).unwrap().clone();
    assert!(can_connect_from(&ns101, b102), "calm: a reaches b");
    assert!(can_connect_from(&ns102, b103), "calm: b reaches b");

    rt.partition(&Grudge {
        groups: vec![vec![1, 101], vec![102, 103]],
    })
    .unwrap();
    assert!(!can_connect_from(&ns101, b102), "cut: a does not reach b");
    assert!(!can_connect_from(&ns102, b101), "cut: b does not reach a");
    assert!(
        can_connect_from(&ns102, b103),
        "same side: b still reaches b"
    );
    rt.heal_partitions().unwrap();
    assert!(can_connect_from(&ns101, b102), "healed");

    // A client in site a: its connection to a broker in site b crosses the WAN, one in
    // its own site does not.
    let (cross, local) = {
        let rt = &rt;
        std::thread::scope(|s| {
            s.spawn(move || {
                rt.enter_client(0).unwrap();
                let mut cross = TcpStream::connect_timeout(&b102, Duration::from_secs(5)).unwrap();
                let local = TcpStream::connect_timeout(&b101, Duration::from_secs(5)).unwrap();
                cross
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                api_versions_round_trip(&mut cross);
                (cross, local)
            })
            .join()
            .unwrap()
        })
    };
    let (mut cross, mut local) = (cross, local);
    rt.set_wan(Some(WanLink {
        delay_ms: 150,
        jitter_ms: 0,
        loss: 0.0,
    }))
    .unwrap();
    let slowed = api_versions_round_trip(&mut cross);
    assert!(
        slowed >= Duration::from_millis(300),
        "a round trip between sites takes two crossings of 150 ms, took {slowed:?}"
    );
    let within = api_versions_round_trip(&mut local);
    assert!(
        within < slowed,
        "inside a site there is no WAN: {within:?} vs {slowed:?}"
    );
    rt.set_wan(None).unwrap();
    api_versions_round_trip(&mut cross);

    drop(rt);
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| ours.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

#[test]
fn leftovers_of_a_killed_run_block_the_next_until_cleaned() {
    let _serial = serial();
    // pid_max itself is never a pid: a run by a process that is gone.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    let stale = format!("isj{}-0-hub", pid_max.trim());
    let made = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(made.success());
    let tmp = tempfile::tempdir().unwrap();
    let err = NetnsRuntime::start(
        &Layout::default(),
        &["a".into(), "b".into()],
        tmp.path(),
        &isthmus_binary(),
    )
    .err()
    .expect("refused");
    assert!(matches!(err, RuntimeError::Leftovers(_)), "{err}");
    assert!(err.to_string().contains(&stale), "{err}");
    assert!(err.to_string().contains("isthmus-jepsen clean"), "{err}");
    assert!(!tmp.path().join("layout.json").exists(), "nothing started");

    let out = Command::new(jepsen_binary()).arg("clean").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&stale), "{stdout}");
    assert!(!namespaces().contains(&stale));
    assert_eq!(
        clean().unwrap(),
        Vec::<String>::new(),
        "nothing left to clean"
    );
}

#[test]
fn sigterm_during_a_partition_heals_stops_and_removes_everything() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let output = tmp.path().join("output.txt");
    let log = std::fs::File::create(&output).unwrap();
    let child = Command::new(jepsen_binary())
        .arg("run")
        .arg("--dir")
        .arg(&dir)
        .args(["--nemesis", "partition-sites", "--interval", "2s"])
        .args(["--time-limit", "5m", "--seed", "5"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = StopOnDrop {
        child,
        output: output.clone(),
    };
    let child = &mut child.child;
    // Wait for the partition to be on.
    let history = dir.join("history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        if text.contains(r#""phase":"start""#) {
            break;
        }
        assert!(Instant::now() < deadline, "no fault started within 120 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ours = format!("isj{pid}-");
    assert!(namespaces().iter().any(|n| n.starts_with(&ours)));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not stop within 120 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(130), "interrupted");
    assert_no_namespaces_of(pid);
    assert!(
        dir.join("report/index.html").is_file(),
        "the report is written"
    );
    let history = History::read(&history).unwrap();
    let healed = history
        .ops()
        .iter()
        .any(|op| op.f == F::Nemesis && op.phase == Some(Phase::Stop));
    assert!(healed, "the fault in progress was healed and recorded");
    assert_no_nodes_left(&dir);
}

#[test]
fn a_safe_stretch_cluster_loses_nothing_under_kills_pauses_and_site_partitions() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (out, pid) = run(
        &dir,
        &[
            "--nemesis",
            "kill,kill-leader,pause,partition-sites",
            "--time-limit",
            "60s",
            "--interval",
            "5s",
            "--seed",
            "21",
            "--rate",
            "200",
        ],
    );
    let started = assert_safe_run(&dir, &out);
    assert!(started.contains("partition-sites"), "{started:?}");
    assert_no_namespaces_of(pid);
}

#[test]
fn an_unsafe_configuration_under_site_partitions_is_reported_with_lost_writes() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (out, pid) = run(
        &dir,
        &[
            "--nemesis",
            "partition-sites",
            "--acks",
            "1",
            "--min-insync",
            "1",
            "--unclean-leader-election",
            "--time-limit",
            "45s",
            "--interval",
            "10s",
            "--seed",
            "3",
            "--rate",
            "400",
        ],
    );
    let started = assert_lost_writes(&dir, &out);
    assert!(started.contains("partition-sites"), "{started:?}");
    assert_no_namespaces_of(pid);
}
