//! Consumer groups with librdkafka against the real `isthmus` process: members join and
//! leave, every partition is owned by exactly one live member after each rebalance, and a
//! new member resumes from the committed offsets with no record skipped or repeated. Run
//! with the eager (range) and the cooperative-sticky assignors, and with the consumer
//! protocol of KIP-848 (`group.protocol=consumer`, assignment computed by the broker).
//!
//! A member that crashes: a third member runs as its own process
//! (`tests/clients/python/group_consume.py`, confluent-kafka with the same assignor or
//! protocol) and is SIGKILLed half-way through its partitions, without LeaveGroup. Once its
//! session times out the two survivors own every partition exactly once, every record is
//! read, and the only records read twice are those the killed member read after its last
//! acknowledged commit.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 12;
const RECORDS: usize = 1200;

/// Stands for `group.protocol=consumer` (KIP-848) where an assignor name is expected: the
/// broker assigns, with its default (uniform) assignor.
const CONSUMER_PROTOCOL: &str = "consumer-protocol";

fn consumer(bootstrap: &str, group: &str, assignor: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Bounds how long a join phase can wait for a member that stopped polling.
        .set("max.poll.interval.ms", "10000");
    if assignor == CONSUMER_PROTOCOL {
        // Session and heartbeat timing come from the broker with this protocol.
        config.set("group.protocol", "consumer");
    } else {
        config
            .set("partition.assignment.strategy", assignor)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
    }
    let c: BaseConsumer = config.create().expect("consumer");
    c.subscribe(&["grouped"]).expect("subscribe");
    c
}

/// Polls each consumer once; records what it read and commits it before the next poll, so
/// a rebalance (which only happens inside poll) never loses or repeats a record.
fn poll_all(consumers: &[&BaseConsumer], seen: &mut HashMap<usize, usize>) {
    for c in consumers {
        let mut got = false;
        while let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m.expect("consume");
            let id: usize = std::str::from_utf8(m.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            *seen.entry(id).or_default() += 1;
            c.store_offset_from_message(&m).expect("store offset");
            got = true;
        }
        if got {
            c.commit_consumer_state(CommitMode::Sync).expect("commit");
        }
    }
}

fn owned(c: &BaseConsumer) -> HashSet<i32> {
    c.assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls until the live consumers own every partition exactly once.
fn await_balanced(consumers: &[&BaseConsumer], seen: &mut HashMap<usize, usize>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        poll_all(consumers, seen);
        let sets: Vec<HashSet<i32>> = consumers.iter().map(|c| owned(c)).collect();
        let total: usize = sets.iter().map(HashSet::len).sum();
        let union: HashSet<i32> = sets.iter().flatten().copied().collect();
        if total == PARTITIONS as usize
            && union.len() == PARTITIONS as usize
            && sets.iter().all(|s| !s.is_empty())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: partitions never balanced: {sets:?}"
        );
    }
}

/// A broker with fast group timing and a 12-partition topic "grouped" holding `records`
/// records whose payloads are their index, spread round-robin over the partitions.
fn broker_with_records(records: usize) -> TestBroker {
    let broker = TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.heartbeat.interval.ms", "500"),
        ("group.consumer.session.timeout.ms", "6000"),
    ]);
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(
                "grouped",
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for i in 0..records {
        let payload = i.to_string();
        producer
            .send(
                BaseRecord::<(), _>::to("grouped")
                    .partition((i % PARTITIONS as usize) as i32)
                    .payload(&payload),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    broker
}

fn run(assignor: &str) {
    let broker = broker_with_records(RECORDS);
    let bootstrap = broker.bootstrap();

    let group = format!("g-{assignor}");
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let a = consumer(&bootstrap, &group, assignor);
    let b = consumer(&bootstrap, &group, assignor);
    let c = consumer(&bootstrap, &group, assignor);
    await_balanced(&[&a, &b, &c], &mut seen, "three members");
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < RECORDS / 3 {
        assert!(
            Instant::now() < deadline,
            "only {} records read by three members",
            seen.len()
        );
        poll_all(&[&a, &b, &c], &mut seen);
    }

    // A member leaves cleanly: the other two take over all partitions. Closing waits for
    // the group, so it runs on its own thread while the others keep polling.
    let closing = std::thread::spawn(move || drop(c));
    await_balanced(&[&a, &b], &mut seen, "after a member left");
    closing.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < RECORDS * 2 / 3 {
        assert!(
            Instant::now() < deadline,
            "only {} records read by two members",
            seen.len()
        );
        poll_all(&[&a, &b], &mut seen);
    }
    let closing = [
        std::thread::spawn(move || drop(a)),
        std::thread::spawn(move || drop(b)),
    ];
    for t in closing {
        t.join().unwrap();
    }

    // A new member resumes from the committed offsets.
    let d = consumer(&bootstrap, &group, assignor);
    await_balanced(&[&d], &mut seen, "new member");
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < RECORDS {
        assert!(
            Instant::now() < deadline,
            "only {} of {RECORDS} records read; committed offsets skipped some",
            seen.len()
        );
        poll_all(&[&d], &mut seen);
    }
    let repeated: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .take(10)
        .collect();
    assert!(
        repeated.is_empty(),
        "records delivered more than once across rebalances: {repeated:?}"
    );
    if assignor == CONSUMER_PROTOCOL {
        let log = std::fs::read_to_string(broker.log_path()).unwrap();
        assert!(
            log.contains("group now speaks the consumer protocol"),
            "the group never used ConsumerGroupHeartbeat"
        );
    }
}

#[test]
fn eager_range_assignor_keeps_every_partition_owned_once() {
    run("range");
}

#[test]
fn cooperative_sticky_assignor_keeps_every_partition_owned_once() {
    run("cooperative-sticky");
}

#[test]
fn consumer_protocol_keeps_every_partition_owned_once() {
    run(CONSUMER_PROTOCOL);
}

// ------------------------------------------------------------------ a member crashes

/// Records the crashing member may still be reading when it is killed: it reads 5 per poll
/// with a pause, so it is killed in the middle of its partitions.
const CRASH_RECORDS: usize = 2400;

/// Polls each consumer once, recording (partition, offset, who) of everything read, and
/// commits what it read before the next poll (so a rebalance never repeats a record).
fn poll_tracking(
    consumers: &[(&BaseConsumer, &'static str)],
    reads: &mut Vec<(i32, i64, &'static str)>,
) {
    for (c, who) in consumers {
        let mut got = false;
        while let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m.expect("consume");
            reads.push((m.partition(), m.offset(), who));
            c.store_offset_from_message(&m).expect("store offset");
            got = true;
        }
        if got {
            c.commit_consumer_state(CommitMode::Sync).expect("commit");
        }
    }
}

/// What the crashing member (a separate process) printed so far.
#[derive(Default)]
struct CrashMember {
    /// (partition, offset) in the order read.
    reads: Vec<(i32, i64)>,
    /// partition → last acknowledged commit (next offset).
    committed: HashMap<i32, i64>,
    commits: usize,
    raw: String,
}

fn spawn_crash_member(
    broker: &TestBroker,
    group: &str,
    assignor: &str,
) -> (
    std::process::Child,
    std::sync::Arc<parking_lot::Mutex<CrashMember>>,
) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let python = common::venv_python();
    assert!(
        python.exists(),
        "{} is missing: {}",
        python.display(),
        common::INSTALL_HINT
    );
    let script = common::repo_root()
        .join("tests")
        .join("clients")
        .join("python")
        .join("group_consume.py");
    let mut child = Command::new(python)
        .arg(script)
        .args([
            "--client",
            "confluent-kafka",
            "--bootstrap",
            &broker.bootstrap(),
        ])
        .args(["--topic", "grouped", "--group", group])
        .args(["--assignor", assignor, "--max", "1000000000"])
        .args(["--batch", "5", "--pause", "0.05", "--print-commits"])
        .args(["--timeout", "300"])
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Kept with the broker log when the test fails (set RDKAFKA_DEBUG=cgrp for more).
        .stderr(std::fs::File::create(broker.dir().join("crash-member.log")).unwrap())
        .spawn()
        .expect("start the crashing member");
    let state = std::sync::Arc::new(parking_lot::Mutex::new(CrashMember::default()));
    let out = child.stdout.take().expect("piped stdout");
    let shared = std::sync::Arc::clone(&state);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let mut s = shared.lock();
            s.raw.push_str(&line);
            s.raw.push('\n');
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["R", p, o, _] => {
                    let read = (p.parse().unwrap(), o.parse().unwrap());
                    s.reads.push(read);
                }
                ["C", p, o] => {
                    let (p, o) = (p.parse().unwrap(), o.parse().unwrap());
                    s.committed.insert(p, o);
                    s.commits += 1;
                }
                _ => {}
            }
        }
    });
    (child, state)
}

/// Three members, one of them a separate process that is SIGKILLed (no LeaveGroup) in the
/// middle of its partitions. After its session times out the two others own every
/// partition exactly once; every record is read; a record is read twice only if the
/// crashed member read it without an acknowledged commit.
fn run_with_crash(assignor: &str) {
    let broker = broker_with_records(CRASH_RECORDS);
    let bootstrap = broker.bootstrap();
    let per_partition = (CRASH_RECORDS / PARTITIONS as usize) as i64;

    let group = format!("crash-{assignor}");
    // group_consume.py takes the same names, "consumer-protocol" included.
    let (mut crasher, crashed) = spawn_crash_member(&broker, &group, assignor);
    // Let it take everything first, so it owns partitions it is half-way through.
    let deadline = Instant::now() + Duration::from_secs(60);
    while crashed.lock().commits < 3 {
        assert!(
            Instant::now() < deadline,
            "the crashing member never committed: {}",
            crashed.lock().raw
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = consumer(&bootstrap, &group, assignor);
    let b = consumer(&bootstrap, &group, assignor);
    let mut reads: Vec<(i32, i64, &'static str)> = Vec::new();
    // Wait for a stable group of three: a and b own 8 of the 12 partitions, the process
    // the other 4, and it has committed after the rebalance.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        poll_tracking(&[(&a, "a"), (&b, "b")], &mut reads);
        let (sa, sb) = (owned(&a), owned(&b));
        if !sa.is_empty() && !sb.is_empty() && sa.len() + sb.len() == 8 && sa.is_disjoint(&sb) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three members never shared the partitions: a {sa:?}, b {sb:?}"
        );
    }
    let commits_then = crashed.lock().commits;
    let deadline = Instant::now() + Duration::from_secs(60);
    while crashed.lock().commits < commits_then + 3 {
        poll_tracking(&[(&a, "a"), (&b, "b")], &mut reads);
        assert!(
            Instant::now() < deadline,
            "the crashing member stopped committing"
        );
    }
    crasher.kill().expect("SIGKILL the member");
    crasher.wait().expect("reap the member");
    std::thread::sleep(Duration::from_millis(200)); // let the reader drain the pipe
    let crashed = std::mem::take(&mut *crashed.lock());
    let crashed_partitions: HashSet<i32> = (0..PARTITIONS)
        .filter(|p| !owned(&a).contains(p) && !owned(&b).contains(p))
        .collect();
    assert!(
        crashed_partitions.len() == 4,
        "the killed member owned {crashed_partitions:?}"
    );

    // After its session times out, the survivors own every partition exactly once.
    let mut seen = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        poll_tracking(&[(&a, "a"), (&b, "b")], &mut reads);
        let (sa, sb) = (owned(&a), owned(&b));
        if sa.len() + sb.len() == PARTITIONS as usize
            && sa.is_disjoint(&sb)
            && !sa.is_empty()
            && !sb.is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions of the killed member never reassigned: a {sa:?}, b {sb:?}"
        );
    }
    // Read everything that is left.
    let all = |reads: &Vec<(i32, i64, &'static str)>, crashed: &CrashMember| {
        let mut s: HashSet<(i32, i64)> = reads.iter().map(|(p, o, _)| (*p, *o)).collect();
        s.extend(crashed.reads.iter().copied());
        s.len()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while all(&reads, &crashed) < CRASH_RECORDS {
        assert!(
            Instant::now() < deadline,
            "only {} of {CRASH_RECORDS} records read; some were skipped",
            all(&reads, &crashed)
        );
        poll_tracking(&[(&a, "a"), (&b, "b")], &mut reads);
    }
    // Nothing beyond the log end, nothing read twice except what the killed member had
    // read without an acknowledged commit.
    for (p, o, who) in reads.iter().map(|(p, o, w)| (*p, *o, *w)) {
        assert!(o < per_partition, "{who} read {p}/{o} past the end");
        *seen.entry((p, o)).or_insert(0usize) += 1;
    }
    for &(p, o) in &crashed.reads {
        *seen.entry((p, o)).or_insert(0usize) += 1;
    }
    let wrongly_repeated: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .filter(|((p, o), n)| {
            // Allowed once more: read by the killed member at or after its last
            // acknowledged commit for that partition.
            let read_by_crashed = crashed.reads.contains(&(*p, *o));
            let uncommitted = *o >= crashed.committed.get(p).copied().unwrap_or(0);
            !(**n == 2 && read_by_crashed && uncommitted)
        })
        .map(|(k, n)| (*k, *n))
        .take(10)
        .collect();
    assert!(
        wrongly_repeated.is_empty(),
        "records read again although their commit was acknowledged: {wrongly_repeated:?} \
         (killed member's commits: {:?})",
        crashed.committed
    );
    // The killed member was really cut off in the middle of its partitions.
    let left_unread: usize = crashed_partitions
        .iter()
        .map(|p| (per_partition - crashed.committed.get(p).copied().unwrap_or(0)) as usize)
        .sum();
    assert!(
        left_unread > 0,
        "the killed member had already read all of its partitions"
    );
}

#[test]
fn eager_range_member_crash_hands_its_partitions_over() {
    run_with_crash("range");
}

#[test]
fn cooperative_sticky_member_crash_hands_its_partitions_over() {
    run_with_crash("cooperative-sticky");
}

#[test]
fn consumer_protocol_member_crash_hands_its_partitions_over() {
    run_with_crash(CONSUMER_PROTOCOL);
}
