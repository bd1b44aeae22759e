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

mod common;

use common::{assert_lost_writes, assert_safe_run, run};

#[test]
fn a_safe_cluster_loses_nothing_under_kills_and_pauses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (out, _) = run(
        &dir,
        &[
            "--runtime",
            "local",
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
    assert_safe_run(&dir, &out);
}

#[test]
fn an_unsafe_configuration_is_reported_with_lost_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (out, _) = run(
        &dir,
        &[
            "--runtime",
            "local",
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
    assert_lost_writes(&dir, &out);
}

#[test]
fn the_local_runtime_refuses_network_faults_before_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let (out, _) = run(
        &dir,
        &[
            "--runtime",
            "local",
            "--nemesis",
            "kill,partition-sites",
            "--time-limit",
            "5s",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot inject partition-sites"), "{stderr}");
    assert!(!dir.join("cluster").exists(), "no cluster was started");
}
