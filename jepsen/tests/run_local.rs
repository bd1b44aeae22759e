//! `isthmus-jepsen run --runtime local` end to end: real `isthmus` processes on loopback,
//! librdkafka clients, kill and pause faults, the checker and the report.
//!
//! - A safe configuration (RF=3, min.insync=2, acks=all, idempotent producers) under
//!   kills and pauses of random nodes, leaders, the active controller and a whole site:
//!   no anomaly, every acknowledged send read back by the final drain.
//! - An unsafe one (acks=1, min.insync=1, unclean election) with partition leaders paused
//!   past their session timeout: the harness reports lost writes, so it can see loss.
//!
//! Ports: 29200 and 29500 upward, below the ephemeral range and above the ops tests'
//! 20000–29000.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use isthmus_jepsen::history::F;
use isthmus_jepsen::{check, AnomalyKind, CheckOptions, History};

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_isthmus-jepsen"))
        .arg("run")
        .arg("--runtime")
        .arg("local")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("isthmus-jepsen runs");
    eprintln!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn nemeses_started(history: &History) -> BTreeSet<String> {
    history
        .ops()
        .iter()
        .filter(|op| op.f == F::Nemesis && op.error.is_none())
        .filter_map(|op| op.name.clone())
        .collect()
}

#[test]
fn a_safe_cluster_loses_nothing_under_kills_and_pauses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = run(
        &dir,
        &[
            "--nemesis",
            "kill,kill-leader,kill-controller,kill-site,pause,pause-leader",
            "--time-limit",
            "40s",
            "--interval",
            "4s",
            "--seed",
            "11",
            "--base-port",
            "29200",
            "--rate",
            "200",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run found anomalies or failed"
    );
    let history = History::read(&dir.join("history.jsonl")).unwrap();
    let result = check(&history, &CheckOptions::default());
    assert!(result.valid, "{}", result.summary());
    assert!(result.final_drain, "the run ended with a final drain");
    let s = &result.stats;
    assert!(s.sends_ok > 1000, "too few acknowledged sends: {s:?}");
    assert!(s.values_read >= s.sends_ok, "{s:?}");
    assert!(
        nemeses_started(&history).len() >= 3,
        "faults injected: {:?}",
        nemeses_started(&history)
    );
    assert!(dir.join("report/index.html").is_file());
    assert!(dir.join("logs/node-101.log").is_file());
    // The cluster is gone: no node of this run still runs.
    let pids = Command::new("pgrep")
        .arg("-f")
        .arg(dir.to_str().unwrap())
        .output()
        .unwrap();
    assert!(
        pids.stdout.is_empty(),
        "nodes left running: {}",
        String::from_utf8_lossy(&pids.stdout)
    );
}

#[test]
fn an_unsafe_configuration_is_reported_with_lost_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = run(
        &dir,
        &[
            "--nemesis",
            "pause-leader",
            "--acks",
            "1",
            "--min-insync",
            "1",
            "--unclean-leader-election",
            "--time-limit",
            "40s",
            "--interval",
            "5s",
            "--set",
            "broker.session.timeout.ms=2500",
            "--seed",
            "3",
            "--base-port",
            "29500",
            "--rate",
            "400",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the run should report anomalies"
    );
    let history = History::read(&dir.join("history.jsonl")).unwrap();
    let result = check(&history, &CheckOptions::default());
    let lost = &result.kinds[&AnomalyKind::LostWrite];
    assert!(lost.count > 0, "{}", result.summary());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("lost-write"), "{stdout}");
}

#[test]
fn the_local_runtime_refuses_network_faults_before_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = run(
        &dir,
        &["--nemesis", "kill,partition-sites", "--time-limit", "5s"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot inject partition-sites"), "{stderr}");
    assert!(!dir.join("cluster").exists(), "no cluster was started");
}
