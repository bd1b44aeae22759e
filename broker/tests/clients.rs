//! Real Kafka clients against the real `isthmus` process.
//!
//! Each test starts a [`TestBroker`] and runs one round-trip program from
//! `tests/clients/` (kafka-python, confluent-kafka, Sarama, kafkajs, kcat): create the
//! topic (or auto-create it), produce 1000 records with keys, values, headers and
//! timestamps across the partitions, read everything back from the earliest offset
//! without a consumer group, and check every record. The program prints one summary
//! line and exits 0 only when everything matched.
//!
//! Group consumers (kafka-python, confluent-kafka, Sarama: `tests/clients/python/group_consume.py`
//! and `tests/clients/go/sarama_group`; kcat `-G`) read a topic in a group and commit what
//! they read; across a SIGTERM restart and a kill -9 restart each run resumes exactly at
//! the committed offsets: nothing skipped, nothing committed read again.
//!
//! The clients come from `scripts/install-test-deps.sh`; a missing one makes its test
//! fail with a message naming that script.

mod common;
mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, GroupId, ListOffsetsRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

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

/// Builds `tests/clients/go/<name>` against Debian's Sarama (GOPATH mode), with its own
/// time limit so compile time never eats a client's; returns the binary.
fn build_go_program(name: &str) -> PathBuf {
    let go = require_tool("go");
    require_path(
        &Path::new(DEBIAN_GOPATH).join("src/github.com/Shopify/sarama"),
        "Sarama (Debian package golang-github-shopify-sarama-dev)",
    );
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name.replace('_', "-"));
    let binary = work.join(name);
    let mut build = Command::new(go);
    build
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(clients_dir().join("go").join(name))
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOFLAGS", "")
        .env("GOCACHE", work.join("go-build-cache"))
        .env("CGO_ENABLED", "1");
    let built = run_with_timeout(&mut build, GO_BUILD_TIMEOUT);
    assert!(
        built.success(),
        "building the Go program {name} failed.\n{}",
        built.describe(LOG_TAIL_LINES)
    );
    binary
}

#[test]
fn sarama_roundtrip() {
    let binary = build_go_program("sarama_roundtrip");
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

// ------------------------------------------------------------------ group consumers

/// Partitions of the topic the group consumers read.
const GROUP_PARTITIONS: i32 = 3;
/// Records produced before each of the first two consumer runs.
const GROUP_BATCH: usize = 600;
/// Records each of the first two consumer runs reads (at least) before it stops.
const GROUP_RUN_MAX: usize = 250;

fn start_group_broker() -> TestBroker {
    TestBroker::start(&[
        ("num.partitions", "3"),
        ("group.initial.rebalance.delay.ms", "0"),
    ])
}

fn create_group_topic(broker: &TestBroker, topic: &str) {
    let mut w = wire::Wire::connect(&broker.bootstrap());
    let r = w.call(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_num_partitions(GROUP_PARTITIONS)
                .with_replication_factor(1)])
            .with_timeout_ms(5000),
    );
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}

/// Produces values `v-<n>` for n in `range` to partition n % GROUP_PARTITIONS (acks=all)
/// and returns (partition, offset) → value.
fn produce_numbered(
    broker: &TestBroker,
    topic: &str,
    range: std::ops::Range<usize>,
) -> BTreeMap<(i32, i64), String> {
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let mut w = wire::Wire::connect(&broker.bootstrap());
    let before = high_watermarks(&mut w, topic);
    let mut per_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for n in range {
        let partition = (n % GROUP_PARTITIONS as usize) as i32;
        let value = format!("v-{n}");
        loop {
            match producer.send(
                BaseRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&value),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "produce: {e}"
                    );
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        per_partition.entry(partition).or_default().push(value);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let after = high_watermarks(&mut w, topic);
    let mut out = BTreeMap::new();
    for (partition, values) in per_partition {
        let start = before[&partition];
        assert_eq!(
            after[&partition] - start,
            values.len() as i64,
            "partition {partition} did not get exactly the records produced"
        );
        for (i, value) in values.into_iter().enumerate() {
            out.insert((partition, start + i as i64), value);
        }
    }
    out
}

fn high_watermarks(w: &mut wire::Wire, topic: &str) -> BTreeMap<i32, i64> {
    let r = w.call(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    (0..GROUP_PARTITIONS)
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )]),
    );
    r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            (p.partition_index, p.offset)
        })
        .collect()
}

/// The group's committed offsets for the topic's partitions (-1 where none), with metadata.
fn committed_offsets(
    broker: &TestBroker,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, (i64, String)> {
    let mut w = wire::Wire::connect(&broker.bootstrap());
    let r = w.call(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes((0..GROUP_PARTITIONS).collect())])),
    );
    assert_eq!(r.error_code, 0);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            (
                p.partition_index,
                (
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                ),
            )
        })
        .collect()
}

/// What one run of a group consumer program printed.
struct GroupRun {
    /// (partition, offset, value) in the order read.
    records: Vec<(i32, i64, String)>,
    /// partition → next offset, as the program saw its commits acknowledged.
    committed: BTreeMap<i32, i64>,
}

fn parse_group_run(name: &str, out: &common::RunOutput) -> GroupRun {
    let mut run = GroupRun {
        records: Vec::new(),
        committed: BTreeMap::new(),
    };
    let mut done = None;
    for line in out.stdout.lines() {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        match fields.as_slice() {
            ["R", p, o, v] => run.records.push((
                p.parse().expect("partition"),
                o.parse().expect("offset"),
                v.to_string(),
            )),
            ["C", p, o] => {
                run.committed
                    .insert(p.parse().expect("partition"), o.parse().expect("offset"));
            }
            ["DONE", n] => done = Some(n.parse::<usize>().expect("count")),
            _ => {}
        }
    }
    assert_eq!(
        done,
        Some(run.records.len()),
        "{name}: the program did not finish cleanly.\n{}",
        out.describe(LOG_TAIL_LINES)
    );
    run
}

/// Runs a group consumer program; panics with its output and the broker log unless it
/// exits 0.
fn run_group_consumer(name: &str, broker: &TestBroker, mut cmd: Command) -> GroupRun {
    cmd.env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("LD_LIBRARY_PATH");
    let out = run_with_timeout(&mut cmd, CLIENT_TIMEOUT);
    assert!(
        out.success(),
        "{name} group consumer against {} failed.\n{}\n--- broker log (last {LOG_TAIL_LINES} lines) ---\n{}",
        broker.bootstrap(),
        out.describe(LOG_TAIL_LINES),
        broker.log_tail(LOG_TAIL_LINES)
    );
    parse_group_run(name, &out)
}

/// Checks one run: per partition it read consecutive offsets starting exactly at the
/// offset committed before it (nothing skipped, nothing committed read again), every
/// value is the one produced there, and what it committed is where it stopped.
/// Returns the committed position after the run.
fn check_group_run(
    name: &str,
    run_no: usize,
    run: &GroupRun,
    produced: &BTreeMap<(i32, i64), String>,
    start: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    let mut next = start.clone();
    for (partition, offset, value) in &run.records {
        let expected = next.get(partition).copied().unwrap_or(0);
        assert_eq!(
            *offset, expected,
            "{name} run {run_no}: partition {partition} read offset {offset} where {expected} was \
             next (committed before the run: {start:?})"
        );
        assert_eq!(
            produced.get(&(*partition, *offset)),
            Some(value),
            "{name} run {run_no}: value at {partition}/{offset}"
        );
        next.insert(*partition, offset + 1);
    }
    let moved: BTreeMap<i32, i64> = next
        .iter()
        .filter(|(p, o)| start.get(p) != Some(o))
        .map(|(p, o)| (*p, *o))
        .collect();
    assert_eq!(
        run.committed, moved,
        "{name} run {run_no}: acknowledged commits differ from what was read"
    );
    next
}

/// The broker's committed offsets equal `positions` (metadata "<client>:<p>:<offset>").
fn assert_committed(
    name: &str,
    broker: &TestBroker,
    group: &str,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
    when: &str,
) {
    let got = committed_offsets(broker, group, topic);
    for p in 0..GROUP_PARTITIONS {
        let (offset, metadata) = &got[&p];
        match positions.get(&p) {
            Some(want) => {
                assert_eq!(
                    offset, want,
                    "{name}: committed offset of partition {p} {when}"
                );
                // confluent-kafka (Python) sends the C string's terminating NUL as part of
                // the metadata (metadata_size = strlen + 1 in its TopicPartition
                // conversion); a broker stores and returns the bytes it was sent.
                let nul = if name == "confluent-kafka" { "\0" } else { "" };
                assert_eq!(
                    metadata,
                    &format!("{name}:{p}:{want}{nul}"),
                    "{name}: commit metadata of partition {p} {when}"
                );
            }
            None => assert_eq!(*offset, -1, "{name}: partition {p} {when}"),
        }
    }
}

/// The shared scenario: 600 records; the group reads ≥250 and commits; SIGTERM restart;
/// 600 more; the group reads ≥250 more; kill -9 restart (after the commits were
/// acknowledged); the group reads to the end. Every record is read exactly once, each
/// run resumes exactly at the committed offsets, and the commits survive both restarts.
fn group_resume_scenario(name: &str, consumer: impl Fn(&TestBroker, &str, usize) -> Command) {
    let mut broker = start_group_broker();
    let topic = format!("group-{name}");
    let group = format!("resume-{name}");
    create_group_topic(&broker, &topic);
    let mut produced = produce_numbered(&broker, &topic, 0..GROUP_BATCH);

    let run = run_group_consumer(name, &broker, consumer(&broker, &group, GROUP_RUN_MAX));
    assert!(run.records.len() >= GROUP_RUN_MAX);
    let positions = check_group_run(name, 1, &run, &produced, &BTreeMap::new());
    let mut seen = run.records.len();
    assert_committed(name, &broker, &group, &topic, &positions, "after run 1");
    broker.restart(); // SIGTERM, then start again
    assert_committed(
        name,
        &broker,
        &group,
        &topic,
        &positions,
        "after a SIGTERM restart",
    );

    produced.extend(produce_numbered(
        &broker,
        &topic,
        GROUP_BATCH..2 * GROUP_BATCH,
    ));
    let run = run_group_consumer(name, &broker, consumer(&broker, &group, GROUP_RUN_MAX));
    assert!(run.records.len() >= GROUP_RUN_MAX);
    let positions = check_group_run(name, 2, &run, &produced, &positions);
    seen += run.records.len();
    assert_committed(name, &broker, &group, &topic, &positions, "after run 2");
    broker.kill(); // the commits were acknowledged: a crash must not lose them
    broker.restart();
    assert_committed(name, &broker, &group, &topic, &positions, "after kill -9");

    let run = run_group_consumer(name, &broker, consumer(&broker, &group, 0));
    let positions = check_group_run(name, 3, &run, &produced, &positions);
    seen += run.records.len();
    assert_eq!(
        seen,
        produced.len(),
        "{name}: records read over the three runs"
    );
    let mut w = wire::Wire::connect(&broker.bootstrap());
    assert_eq!(
        positions,
        high_watermarks(&mut w, &topic),
        "{name}: the last run must read to the end"
    );
    assert_committed(name, &broker, &group, &topic, &positions, "at the end");
}

fn python_group_consumer(client: &'static str) -> impl Fn(&TestBroker, &str, usize) -> Command {
    move |broker, group, max| {
        let mut cmd = python_command("group_consume.py");
        cmd.args(["--client", client, "--bootstrap", &broker.bootstrap()])
            .args(["--topic", &format!("group-{client}"), "--group", group])
            .args(["--max", &max.to_string()]);
        cmd
    }
}

#[test]
fn kafka_python_group_resumes_from_committed_offsets() {
    group_resume_scenario("kafka-python", python_group_consumer("kafka-python"));
}

#[test]
fn confluent_kafka_group_resumes_from_committed_offsets() {
    group_resume_scenario("confluent-kafka", python_group_consumer("confluent-kafka"));
}

#[test]
fn sarama_group_resumes_from_committed_offsets() {
    let binary = build_go_program("sarama_group");
    group_resume_scenario("sarama", |broker, group, max| {
        let mut cmd = Command::new(&binary);
        cmd.args(["--bootstrap", &broker.bootstrap()])
            .args(["--topic", "group-sarama", "--group", group])
            .args(["--max", &max.to_string()]);
        cmd
    });
}

/// `kcat -G GROUP TOPIC -e`: the balanced consumer reads what is there and commits it
/// (librdkafka's auto commit, flushed when it closes); after a kill -9 it resumes there.
#[test]
fn kcat_balanced_consumer_commits_and_resumes() {
    require_tool("kcat");
    let mut broker = start_group_broker();
    let topic = "group-kcat";
    let group = "kcat-group";
    create_group_topic(&broker, topic);
    let kcat = |broker: &TestBroker| {
        let mut cmd = Command::new("kcat");
        cmd.args(["-b", &broker.bootstrap(), "-G", group, topic, "-e", "-q"])
            .args(["-f", "R %p %o %s\\n"])
            .args(["-X", "auto.offset.reset=earliest"])
            .args(["-X", "client.id=isthmus-test-kcat-group"])
            .env_remove("LD_LIBRARY_PATH");
        cmd
    };
    let run_kcat = |broker: &TestBroker| -> GroupRun {
        let out = run_with_timeout(&mut kcat(broker), CLIENT_TIMEOUT);
        assert!(
            out.success(),
            "kcat -G failed.\n{}\n--- broker log ---\n{}",
            out.describe(LOG_TAIL_LINES),
            broker.log_tail(LOG_TAIL_LINES)
        );
        let mut run = GroupRun {
            records: Vec::new(),
            committed: BTreeMap::new(),
        };
        for line in out.stdout.lines() {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            if let ["R", p, o, v] = fields.as_slice() {
                run.records
                    .push((p.parse().unwrap(), o.parse().unwrap(), v.to_string()));
            }
        }
        run
    };
    let check = |run: &GroupRun,
                 run_no: usize,
                 produced: &BTreeMap<(i32, i64), String>,
                 start: &BTreeMap<i32, i64>| {
        let mut next = start.clone();
        for (partition, offset, value) in &run.records {
            let expected = next.get(partition).copied().unwrap_or(0);
            assert_eq!(
                *offset, expected,
                "kcat run {run_no}: partition {partition}"
            );
            assert_eq!(produced.get(&(*partition, *offset)), Some(value));
            next.insert(*partition, offset + 1);
        }
        next
    };

    let mut produced = produce_numbered(&broker, topic, 0..GROUP_BATCH);
    let run = run_kcat(&broker);
    let positions = check(&run, 1, &produced, &BTreeMap::new());
    let mut w = wire::Wire::connect(&broker.bootstrap());
    assert_eq!(
        positions,
        high_watermarks(&mut w, topic),
        "kcat -e reads to the end"
    );
    let committed = |broker: &TestBroker| -> BTreeMap<i32, i64> {
        committed_offsets(broker, group, topic)
            .into_iter()
            .map(|(p, (o, _))| (p, o))
            .collect()
    };
    assert_eq!(
        committed(&broker),
        positions,
        "kcat -G committed where it stopped"
    );
    broker.kill();
    broker.restart();
    assert_eq!(
        committed(&broker),
        positions,
        "kcat's commits after kill -9"
    );

    produced.extend(produce_numbered(
        &broker,
        topic,
        GROUP_BATCH..GROUP_BATCH + 300,
    ));
    let run = run_kcat(&broker);
    assert_eq!(
        run.records.len(),
        300,
        "the second kcat run reads only the new records"
    );
    let positions = check(&run, 2, &produced, &positions);
    let mut w = wire::Wire::connect(&broker.bootstrap());
    assert_eq!(positions, high_watermarks(&mut w, topic));
    assert_eq!(committed(&broker), positions);
}
