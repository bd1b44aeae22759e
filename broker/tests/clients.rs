//! Real Kafka clients against the real `isthmus` process.
//!
//! Each test starts a [`TestBroker`] and runs one round-trip program from
//! `tests/clients/` (kafka-python, confluent-kafka, Sarama, kafkajs, kcat): create the
//! topic (or auto-create it), produce 1000 records with keys, values, headers and
//! timestamps across the partitions, read everything back from the earliest offset
//! without a consumer group, and check every record. The program prints one summary
//! line and exits 0 only when everything matched.
//!
//! The clients come from `scripts/install-test-deps.sh`; a missing one makes its test
//! fail with a message naming that script.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    find_on_path, repo_root, require_tool, run_with_timeout, venv_python, TestBroker, INSTALL_HINT,
    LOG_TAIL_LINES,
};

/// Records each client produces and reads back.
const RECORDS: &str = "1000";
/// Partitions for created and auto-created topics.
const PARTITIONS: &str = "3";
/// The programs stop themselves after 60 s; this is the backstop.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// Compiling the Sarama program (cached after the first build).
const GO_BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Debian's Go packages, Sarama among them (GOPATH mode).
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

fn clients_dir() -> PathBuf {
    repo_root().join("tests").join("clients")
}

fn start_broker() -> TestBroker {
    TestBroker::start(&[("num.partitions", PARTITIONS)])
}

fn require_path(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} not found at {}: {INSTALL_HINT}",
        path.display()
    );
}

/// Runs a round-trip program against `broker`; panics with its output and the broker
/// log unless it exits 0. Returns its stdout.
fn run_roundtrip(name: &str, broker: &TestBroker, mut cmd: Command, topic: &str) -> String {
    cmd.args(["--bootstrap", &broker.bootstrap(), "--topic", topic])
        .args(["--count", RECORDS])
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // cargo points LD_LIBRARY_PATH at build outputs, rdkafka-sys's librdkafka.so
        // among them: the clients must load their own libraries (kcat: Debian's).
        .env_remove("LD_LIBRARY_PATH");
    let out = run_with_timeout(&mut cmd, CLIENT_TIMEOUT);
    assert!(
        out.success(),
        "{name} round trip against {} failed.\n{}\n--- broker log (last {LOG_TAIL_LINES} lines) ---\n{}",
        broker.bootstrap(),
        out.describe(LOG_TAIL_LINES),
        broker.log_tail(LOG_TAIL_LINES)
    );
    println!("{}", out.stdout.trim_end());
    out.stdout
}

fn python_command(script: &str) -> Command {
    let python = venv_python();
    require_path(&python, "the test venv's python (.venv/bin/python)");
    let mut cmd = Command::new(python);
    cmd.arg(clients_dir().join("python").join(script));
    cmd
}

#[test]
fn kafka_python_roundtrip() {
    let cmd = python_command("kafka_python_roundtrip.py");
    let broker = start_broker();
    run_roundtrip("kafka-python", &broker, cmd, "roundtrip-kafka-python");
}

#[test]
fn confluent_kafka_python_roundtrip() {
    let cmd = python_command("confluent_roundtrip.py");
    let broker = start_broker();
    run_roundtrip("confluent-kafka", &broker, cmd, "roundtrip-confluent");
}

#[test]
fn sarama_roundtrip() {
    let go = require_tool("go");
    require_path(
        &Path::new(DEBIAN_GOPATH).join("src/github.com/Shopify/sarama"),
        "Sarama (Debian package golang-github-shopify-sarama-dev)",
    );
    // Build first, with its own limit, so compile time never eats the client's.
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sarama-roundtrip");
    let binary = work.join("sarama_roundtrip");
    let mut build = Command::new(go);
    build
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(clients_dir().join("go").join("sarama_roundtrip"))
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOFLAGS", "")
        .env("GOCACHE", work.join("go-build-cache"))
        .env("CGO_ENABLED", "1");
    let built = run_with_timeout(&mut build, GO_BUILD_TIMEOUT);
    assert!(
        built.success(),
        "building the Sarama round-trip program failed.\n{}",
        built.describe(LOG_TAIL_LINES)
    );

    let broker = start_broker();
    run_roundtrip("sarama", &broker, Command::new(&binary), "roundtrip-sarama");
}

#[test]
fn kafkajs_roundtrip() {
    let node = require_tool("node");
    let node_dir = clients_dir().join("node");
    require_path(
        &node_dir.join("node_modules").join("kafkajs"),
        "kafkajs (tests/clients/node/node_modules)",
    );
    let mut cmd = Command::new(node);
    cmd.arg(node_dir.join("kafkajs_roundtrip.js"))
        .current_dir(&node_dir);
    let broker = start_broker();
    run_roundtrip("kafkajs", &broker, cmd, "roundtrip-kafkajs");
}

#[test]
fn kcat_roundtrip() {
    require_tool("kcat");
    let bash = find_on_path("bash").unwrap_or_else(|| PathBuf::from("/bin/bash"));
    let mut cmd = Command::new(bash);
    cmd.arg(clients_dir().join("kcat_roundtrip.sh"));
    let broker = start_broker();
    // kcat cannot create topics: this one is auto-created with num.partitions.
    let stdout = run_roundtrip("kcat", &broker, cmd, "roundtrip-kcat");
    assert!(
        stdout.contains(&format!("over {PARTITIONS} partitions")),
        "the auto-created topic should have num.partitions={PARTITIONS} partitions: {stdout}"
    );
}
