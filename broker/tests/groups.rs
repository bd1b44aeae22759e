//! Consumer groups with librdkafka against the real `isthmus` process: members join and
//! leave, every partition is owned by exactly one live member after each rebalance, and a
//! new member resumes from the committed offsets with no record skipped or repeated. Run
//! with the eager (range) and the cooperative-sticky assignors, and with the consumer
//! protocol of KIP-848 (`group.protocol=consumer`, assignment computed by the broker).

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

fn run(assignor: &str) {
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
    for i in 0..RECORDS {
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
