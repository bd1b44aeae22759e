//! What the end-to-end tests of `isthmus-jepsen run` share: running the binary and the
//! checks on a finished run's folder.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use isthmus_jepsen::history::F;
use isthmus_jepsen::{check, AnomalyKind, CheckOptions, History};

pub fn jepsen_binary() -> &'static str {
    env!("CARGO_BIN_EXE_isthmus-jepsen")
}

/// Runs `isthmus-jepsen run --dir DIR ARGS…` to its end; returns its output and pid (the
/// owner of the namespaces it made). Both outputs are shown, for failures.
pub fn run(dir: &Path, args: &[&str]) -> (Output, u32) {
    let child = Command::new(jepsen_binary())
        .arg("run")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("isthmus-jepsen runs");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, pid)
}

/// The faults the run started without error.
pub fn nemeses_started(history: &History) -> BTreeSet<String> {
    history
        .ops()
        .iter()
        .filter(|op| op.f == F::Nemesis && op.error.is_none())
        .filter_map(|op| op.name.clone())
        .collect()
}

/// No process of the run's cluster (whose paths are all under `dir`) still runs.
pub fn assert_no_nodes_left(dir: &Path) {
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

/// A run that should have found nothing: exit 0, a valid history ending with a drain
/// that read every acknowledged send, enough load, at least three kinds of fault, the
/// report and node logs written, no node left. Returns the faults started.
pub fn assert_safe_run(dir: &Path, out: &Output) -> BTreeSet<String> {
    assert_eq!(out.status.code(), Some(0), "anomalies, or the run failed");
    let history = History::read(&dir.join("history.jsonl")).unwrap();
    let result = check(&history, &CheckOptions::default());
    assert!(result.valid, "{}", result.summary());
    assert!(result.final_drain, "the run ended with a final drain");
    let s = &result.stats;
    assert!(s.sends_ok > 1000, "too few acknowledged sends: {s:?}");
    assert!(s.values_read >= s.sends_ok, "{s:?}");
    let started = nemeses_started(&history);
    assert!(started.len() >= 3, "faults injected: {started:?}");
    assert!(dir.join("report/index.html").is_file());
    assert!(dir.join("logs/node-101.log").is_file());
    assert_no_nodes_left(dir);
    started
}

/// A run that should have lost writes: exit 1, lost writes in the history and in the
/// printed summary. Returns the faults started.
pub fn assert_lost_writes(dir: &Path, out: &Output) -> BTreeSet<String> {
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
    assert_no_nodes_left(dir);
    nemeses_started(&history)
}
