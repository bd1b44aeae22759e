//! Replication between brokers, with real processes (`LocalCluster`) and real clients
//! (librdkafka through the rdkafka crate, and `isthmusctl log dump` on replica folders):
//!
//! - acks=all from an idempotent producer while partition leaders are killed (kill -9) and
//!   restarted: every acknowledged record is read back once, at the offset it was
//!   acknowledged at; nothing unsent or duplicated is read; afterwards every replica holds
//!   the same batches, byte for byte, up to the high watermark;
//! - acks=all needs `min.insync.replicas`: with both followers down the ISR shrinks to the
//!   leader and acks=all is refused with NOT_ENOUGH_REPLICAS (acks=1 still works), and works
//!   again once the followers are back in the ISR;
//! - a leader cut off from its followers (SIGSTOP) after taking acks=1 records they never
//!   fetched: a follower takes over, and when the old leader comes back it truncates those
//!   records by leader epoch and ends up identical to the new leader;
//! - replication throttles (KIP-73): at a leader (then follower) replication rate of 0 an
//!   in-sync follower still replicates, an out-of-sync one gets nothing until the rate is
//!   raised, then catches up and rejoins the ISR;
//! - `isthmusctl reassign` moves a partition to other brokers under an idempotent acks=all
//!   load (throttled, verified until complete): nothing acknowledged is lost or repeated,
//!   the old replica's copy is deleted, the new one holds the leader's bytes; bad targets
//!   and cancels are refused with Kafka's error names;
//! - (ignored until built) a consumer with `client.rack=b` is served by the replica in
//!   rack b (KIP-392, `replica.selector.class`).
//!
//! What the tests assume of the broker:
//! - settings `replica.lag.time.max.ms` (broker) and `min.insync.replicas` (topic), Kafka's
//!   names and meanings; `replica.selector.class` accepting Kafka's
//!   `org.apache.kafka.common.replica.RackAwareReplicaSelector` for the ignored test;
//! - a follower appends the leader's batches unchanged (so replicas are byte-identical),
//!   in `<log.dirs>/<topic>-<partition>`;
//! - Metadata shows the ISR the controller committed; a fenced or lagging follower leaves
//!   it and a caught-up one rejoins it; a broker killed (or paused) past
//!   `broker.session.timeout.ms` is fenced, leaves every ISR and leads nothing;
//! - a follower's Fetch waits at most about 500 ms at the leader when there is nothing new
//!   (Kafka's `replica.fetch.wait.max.ms` default): the cut-off test waits 1 s after
//!   pausing the followers so no answer carrying the cut-off records sits in their sockets;
//! - a restarted or demoted replica truncates by leader epoch to the new leader's log
//!   before fetching, as Kafka's followers do (`OffsetForLeaderEpoch`);
//! - acks=all with an ISR smaller than `min.insync.replicas` is refused before appending,
//!   with NOT_ENOUGH_REPLICAS (19);
//! - `leader/follower.replication.throttled.rate` (dynamic broker settings) and
//!   `leader/follower.replication.throttled.replicas` (topic) with Kafka's meanings, a rate
//!   of 0 holding throttled replicas back entirely, and a broker that holds partitions back
//!   logging a line containing "replication throttled" and `leader_held=N` /
//!   `follower_held=N` within about 10 s;
//! - AlterPartitionReassignments / ListPartitionReassignments with KRaft's rules: a target
//!   completes once all of it is in the ISR (replicas = the target, in its order), a
//!   removed replica deletes its `<topic>-<partition>` folder, refusals carry
//!   INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICATION_FACTOR (v1), UNKNOWN_TOPIC_OR_PARTITION
//!   and NO_REASSIGNMENT_IN_PROGRESS;
//! - for the ignored test: a replica that answers a consumer's Fetch as a follower logs a
//!   line containing "served a consumer fetch as follower".
//!
//! When a test fails it prints every node's log tail and keeps the cluster folder.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::kafka::{create_topics, log_dump, partitions, PartitionView, TestCluster};
use isthmus_ops::log_dump::{BatchSummary, Dump, DumpEnd};
use rdkafka::admin::{AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer,
    ProducerContext,
};
use rdkafka::{Message, Offset, TopicPartitionList};

const TEMP_PREFIX: &str = "isthmus-ops-repl-";
/// Settings that keep the runs short: fencing after 3 s without heartbeats, followers out
/// of the ISR after 3 s without catching up.
const FAST_SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.lag.time.max.ms", "3000"),
];
/// How long a broker may take to get (back) into an ISR or a leader to be elected.
const ISR_TIMEOUT: Duration = Duration::from_secs(45);
/// How long replicas may take to reach the leader's log end once producing stopped.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

/// [`FAST_SETTINGS`] with `overrides` replacing or adding settings.
fn settings<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = FAST_SETTINGS.to_vec();
    for (k, v) in overrides {
        match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// Polls `f` every [`POLL`] until it returns `Ok`; after `limit` panics with `what` and
/// the last `Err` (what was seen instead).
fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {limit:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn create_topic(bootstrap: &str, topic: NewTopic<'_>) {
    let name = topic.name.to_string();
    let outcome = create_topics(bootstrap, &[topic]);
    assert_eq!(outcome, vec![Ok(name)]);
}

/// A topic of `count` partitions, RF 3, `min.insync.replicas=2`.
fn guarded_topic(name: &str, count: i32) -> NewTopic<'_> {
    NewTopic::new(name, count, TopicReplication::Fixed(3)).set("min.insync.replicas", "2")
}

/// Metadata of `topic` once every partition has a leader and `ok` holds for all.
fn wait_partitions(
    bootstrap: &str,
    topic: &str,
    what: &str,
    limit: Duration,
    ok: impl Fn(&PartitionView) -> bool,
) -> Vec<PartitionView> {
    wait_until(what, limit, || {
        let parts = partitions(bootstrap, topic).ok_or("no metadata for the topic yet")?;
        if parts.iter().all(|p| p.leader >= 0 && ok(p)) {
            Ok(parts)
        } else {
            Err(format!("{parts:?}"))
        }
    })
}

/// Metadata of `topic` once every partition has a leader and all its replicas in the ISR.
fn wait_full_isr(bootstrap: &str, topic: &str, what: &str) -> Vec<PartitionView> {
    wait_partitions(bootstrap, topic, what, ISR_TIMEOUT, |p| {
        let isr: BTreeSet<i32> = p.isr.iter().copied().collect();
        isr == p.replicas.iter().copied().collect()
    })
}

/// Produces one record with `acks` and waits for its outcome: its (partition, offset), or
/// the error librdkafka reported. `retries: false` fails at the first error answer.
fn produce_one(
    bootstrap: &str,
    topic: &str,
    acks: &str,
    retries: bool,
    value: &str,
) -> Result<(i32, i64), KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", "false")
        .set("request.timeout.ms", "5000")
        .set(
            "message.timeout.ms",
            if retries { "30000" } else { "10000" },
        );
    if !retries {
        config.set("retries", "0");
    }
    let producer: FutureProducer = config.create().expect("producer");
    common::kafka::block(
        producer.send(
            FutureRecord::<(), str>::to(topic)
                .partition(0)
                .payload(value),
            Duration::from_secs(5),
        ),
    )
    .map(|d| (d.partition, d.offset))
    .map_err(|(e, _)| e)
}

/// Asserts that `offsets` are `from`, `from + 1`, … (one per record), saying `what`.
fn assert_consecutive(offsets: &[i64], from: i64, what: &str) {
    let expected: Vec<i64> = (from..from + offsets.len() as i64).collect();
    assert!(
        offsets == expected,
        "{what}: expected offsets {from}..{}, got {} offsets from {:?} to {:?}: {offsets:?}",
        from + offsets.len() as i64,
        offsets.len(),
        offsets.first(),
        offsets.last()
    );
}

/// Produces `values` to partition 0 with `acks` and retries, and returns each one's
/// offset; panics if any is not delivered.
fn produce_all(bootstrap: &str, topic: &str, acks: &str, values: &[String]) -> Vec<i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    common::kafka::block(async {
        let sends: Vec<_> = values
            .iter()
            .map(|v| {
                producer.send(
                    FutureRecord::<(), str>::to(topic).partition(0).payload(v),
                    Duration::from_secs(5),
                )
            })
            .collect();
        let mut offsets = Vec::new();
        for (send, v) in sends.into_iter().zip(values) {
            match send.await {
                Ok(d) => offsets.push(d.offset),
                Err((e, _)) => panic!("{v} with acks={acks} not delivered: {e}"),
            }
        }
        offsets
    })
}

/// Reads `parts` of `topic` from the beginning up to the high watermark each has when the
/// read starts: (high watermarks, records as (offset, value) per partition).
#[allow(clippy::type_complexity)]
fn read_to_high_watermark(
    bootstrap: &str,
    topic: &str,
    parts: &[i32],
    extra: &[(&str, &str)],
    limit: Duration,
) -> (BTreeMap<i32, i64>, BTreeMap<i32, Vec<(i64, String)>>) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-test-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let high: BTreeMap<i32, i64> = parts
        .iter()
        .map(|&p| {
            let hw = wait_until(
                &format!("the high watermark of {topic}-{p}"),
                Duration::from_secs(20),
                || {
                    consumer
                        .fetch_watermarks(topic, p, Duration::from_secs(5))
                        .map(|(_, high)| high)
                        .map_err(|e| e.to_string())
                },
            );
            (p, hw)
        })
        .collect();
    let mut tpl = TopicPartitionList::new();
    for &p in parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut read: BTreeMap<i32, Vec<(i64, String)>> =
        parts.iter().map(|p| (*p, Vec::new())).collect();
    let next = |read: &BTreeMap<i32, Vec<(i64, String)>>, p: i32| {
        read[&p].last().map_or(0, |(o, _)| o + 1)
    };
    let deadline = Instant::now() + limit;
    let mut last_error = None;
    while parts.iter().any(|&p| next(&read, p) < high[&p]) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} to its high watermarks {high:?} took over {limit:?}; next offsets {:?}; last error {last_error:?}",
            parts.iter().map(|&p| (p, next(&read, p))).collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                read.get_mut(&m.partition())
                    .expect("an assigned partition")
                    .push((m.offset(), value));
            }
            Some(Err(e)) => last_error = Some(e),
            None => {}
        }
    }
    for (p, records) in read.iter_mut() {
        records.retain(|(o, _)| *o < high[p]);
    }
    (high, read)
}

/// A batch without where it lies in its file (segment files of replicas may be cut at
/// different offsets): what must be identical across replicas.
fn content(batches: &[BatchSummary]) -> Vec<BatchSummary> {
    batches
        .iter()
        .map(|b| BatchSummary {
            segment: 0,
            position: 0,
            ..b.clone()
        })
        .collect()
}

/// Waits until every replica of `topic`-`partition` ends at the leader's high watermark
/// (read with `isthmusctl log dump`), then asserts they hold the same batches, byte for
/// byte (same digests), and returns the dumps by replica.
fn assert_replicas_identical(
    cluster: &TestCluster,
    topic: &str,
    partition: i32,
    replicas: &[i32],
) -> BTreeMap<i32, Dump> {
    let bootstrap = cluster.bootstrap_servers();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("consumer");
    let (high, dumps) = wait_until(
        &format!("every replica of {topic}-{partition} ({replicas:?}) at the high watermark"),
        CATCH_UP_TIMEOUT,
        || {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(5))
                .map_err(|e| format!("high watermark: {e}"))?;
            let mut dumps = BTreeMap::new();
            for &r in replicas {
                let d = log_dump(&cluster.replica_dir(r, topic, partition))
                    .map_err(|e| format!("replica {r}: {e}"))?;
                if d.end != DumpEnd::EndOfLog || d.next_offset.unwrap_or(0) != high {
                    return Err(format!(
                        "high watermark {high}; replica {r} ends at {:?} ({:?})",
                        d.next_offset, d.end
                    ));
                }
                dumps.insert(r, d);
            }
            Ok((high, dumps))
        },
    );
    let (first, reference) = dumps.iter().next().expect("a replica");
    let expected = content(&reference.batches);
    for (r, d) in &dumps {
        let got = content(&d.batches);
        if let Some(i) = (0..expected.len().max(got.len())).find(|&i| expected.get(i) != got.get(i))
        {
            panic!(
                "{topic}-{partition}: replica {r} differs from replica {first} at batch {i} (high watermark {high}):\n  {r}: {:?}\n  {first}: {:?}",
                got.get(i),
                expected.get(i)
            );
        }
    }
    eprintln!(
        "{topic}-{partition}: replicas {replicas:?} identical: {} batches up to the high watermark {high}",
        expected.len()
    );
    dumps
}

/// What librdkafka reported for one record.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Acked { partition: i32, offset: i64 },
    Failed(String),
}

/// Delivery reports by sequence number (the delivery opaque).
struct DeliveryLog {
    outcomes: Mutex<Vec<Option<Outcome>>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let outcome = match result {
            Ok(m) => Outcome::Acked {
                partition: m.partition(),
                offset: m.offset(),
            },
            Err((e, _)) => Outcome::Failed(e.to_string()),
        };
        if let Some(slot) = self.outcomes.lock().unwrap().get_mut(seq) {
            *slot = Some(outcome);
        }
    }
}

/// What the idempotent producer of [`acks_all_loses_nothing_while_leaders_are_killed`]
/// did.
struct LoadResult {
    /// Records handed to librdkafka: sequence numbers `0..sent`.
    sent: usize,
    /// By sequence number; `None`: no report (the flush timed out).
    outcomes: Vec<Option<Outcome>>,
    flush: Result<(), String>,
    fatal: Option<(RDKafkaErrorCode, String)>,
    send_error: Option<String>,
}

impl LoadResult {
    /// Acknowledged records: sequence number → (partition, offset).
    fn acked(&self) -> BTreeMap<usize, (i32, i64)> {
        self.outcomes
            .iter()
            .enumerate()
            .filter_map(|(seq, o)| match o {
                Some(Outcome::Acked { partition, offset }) => Some((seq, (*partition, *offset))),
                _ => None,
            })
            .collect()
    }

    /// Records the producer reported as failed, with the error.
    fn failed(&self) -> Vec<(usize, &str)> {
        self.outcomes
            .iter()
            .enumerate()
            .filter_map(|(seq, o)| match o {
                Some(Outcome::Failed(e)) => Some((seq, e.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// Sends records `0..total` (value = the decimal sequence number, partition = seq mod
/// `partitions`), evenly spread over `spread`, with an idempotent acks=all producer; then
/// flushes. `sent` counts what was handed over so far.
fn run_load(
    bootstrap: &str,
    topic: &str,
    partitions: usize,
    total: usize,
    spread: Duration,
    sent: &AtomicUsize,
) -> LoadResult {
    let log = DeliveryLog {
        outcomes: Mutex::new(vec![None; total]),
    };
    let producer: BaseProducer<DeliveryLog> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "120000")
        .set("linger.ms", "5")
        .create_with_context(log)
        .expect("idempotent producer");
    let start = Instant::now();
    let mut seq = 0;
    let mut send_error = None;
    'send: while seq < total {
        let due = ((start.elapsed().as_secs_f64() / spread.as_secs_f64()) * total as f64) as usize;
        while seq < due.min(total) {
            let value = seq.to_string();
            let record = BaseRecord::with_opaque_to(topic, seq)
                .partition((seq % partitions) as i32)
                .payload(&value);
            match producer.send::<(), String>(record) {
                Ok(()) => {
                    seq += 1;
                    sent.store(seq, Ordering::Relaxed);
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    send_error = Some(format!("send of record {seq}: {e}"));
                    break 'send;
                }
            }
        }
        producer.poll(Duration::from_millis(5));
    }
    let flush = producer
        .flush(Duration::from_secs(130))
        .map_err(|e| e.to_string());
    let fatal = producer.client().fatal_error();
    let outcomes = producer.context().outcomes.lock().unwrap().clone();
    LoadResult {
        sent: seq,
        outcomes,
        flush,
        fatal,
        send_error,
    }
}

/// Reads partitions `0..partitions` of `topic` from offset 0 up to their high watermarks
/// and asserts what [`run_load`]'s idempotent producer must leave there: only records sent
/// to that partition (of the first `sent`), each once and in send order, and every
/// acknowledged one (`acked`: sequence number → partition and offset) at its offset.
fn assert_acked_read_once(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    sent: usize,
    acked: &BTreeMap<usize, (i32, i64)>,
) {
    let ids: Vec<i32> = (0..partitions).collect();
    let (high, read) =
        read_to_high_watermark(bootstrap, topic, &ids, &[], Duration::from_secs(120));
    for (&p, records) in &read {
        let mut previous: Option<usize> = None;
        let mut at: BTreeMap<i64, usize> = BTreeMap::new();
        for (offset, value) in records {
            let seq: usize = value.parse().unwrap_or_else(|_| {
                panic!("{topic}-{p} offset {offset}: {value:?} was never sent")
            });
            assert!(
                seq < sent && seq % partitions as usize == p as usize,
                "{topic}-{p} offset {offset}: record {seq} was never sent to this partition"
            );
            if let Some(prev) = previous {
                assert!(
                    seq > prev,
                    "{topic}-{p} offset {offset}: record {seq} after {prev}: a duplicate or out of send order"
                );
            }
            previous = Some(seq);
            at.insert(*offset, seq);
        }
        let mut checked = 0;
        for (&seq, &(partition, offset)) in acked {
            if partition != p {
                continue;
            }
            assert_eq!(
                at.get(&offset),
                Some(&seq),
                "{topic}-{p}: record {seq} was acknowledged at offset {offset} but is not there (high watermark {})",
                high[&p]
            );
            checked += 1;
        }
        eprintln!(
            "{topic}-{p}: {} records read up to the high watermark {}, all {checked} acknowledged ones among them",
            records.len(),
            high[&p]
        );
    }
}

#[test]
fn acks_all_loses_nothing_while_leaders_are_killed() {
    const TOPIC: &str = "acked";
    const PARTITIONS: i32 = 4;
    const RECORDS: usize = 200_000;
    const KILLS: usize = 6;
    /// Sending is spread over about as long as the kills take.
    const SEND_SPREAD: Duration = Duration::from_secs(35);
    /// The least time a killed broker stays down.
    const DOWN_FOR: Duration = Duration::from_secs(2);

    let mut cluster = TestCluster::start(TEMP_PREFIX, "a:2,b:1", "a:2,b:2", &settings(&[]));
    let bootstrap = cluster.bootstrap_servers();
    create_topic(&bootstrap, guarded_topic(TOPIC, PARTITIONS));
    let before = wait_full_isr(&bootstrap, TOPIC, "leaders and full ISRs");
    eprintln!("partitions: {before:?}");

    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (bootstrap, sent) = (bootstrap.clone(), sent.clone());
        thread::spawn(move || {
            run_load(
                &bootstrap,
                TOPIC,
                PARTITIONS as usize,
                RECORDS,
                SEND_SPREAD,
                &sent,
            )
        })
    };

    // Kill the leader of each partition in turn while records flow; each comes back and
    // rejoins every ISR before the next kill.
    let started = Instant::now();
    for k in 0..KILLS {
        let p = (k % PARTITIONS as usize) as i32;
        let parts = wait_partitions(
            &bootstrap,
            TOPIC,
            "a leader for every partition",
            ISR_TIMEOUT,
            |_| true,
        );
        let victim = parts[p as usize].leader;
        cluster.kill(victim).unwrap();
        eprintln!(
            "{:?}: kill -9 of broker {victim}, leader of {TOPIC}-{p}, after {} records sent",
            started.elapsed(),
            sent.load(Ordering::Relaxed)
        );
        let killed = Instant::now();
        // Down until the controller fenced it (leaders moved, ISRs shrank), so that
        // rejoining every ISR below means catching up.
        wait_partitions(
            &bootstrap,
            TOPIC,
            &format!("broker {victim} out of every ISR and leading nothing"),
            ISR_TIMEOUT,
            |p| p.leader != victim && !p.isr.contains(&victim),
        );
        thread::sleep(DOWN_FOR.saturating_sub(killed.elapsed()));
        eprintln!(
            "{:?}: broker {victim} fenced; restarting it",
            started.elapsed()
        );
        cluster
            .restart(victim)
            .unwrap_or_else(|e| panic!("restarting broker {victim}: {e}"));
        wait_full_isr(
            &bootstrap,
            TOPIC,
            &format!("broker {victim} back in every ISR"),
        );
        eprintln!("{:?}: broker {victim} back in every ISR", started.elapsed());
    }
    let result = load.join().expect("the producer thread");
    let acked = result.acked();
    let failed = result.failed();
    let unreported = result.outcomes[..result.sent]
        .iter()
        .filter(|o| o.is_none())
        .count();
    eprintln!(
        "{:?}: {} sent, {} acknowledged, {} failed (first: {:?}), {unreported} without a report; flush {:?}; send error {:?}",
        started.elapsed(),
        result.sent,
        acked.len(),
        failed.len(),
        failed.first(),
        result.flush,
        result.send_error
    );
    assert!(
        result.sent > 0 && !acked.is_empty(),
        "nothing was acknowledged"
    );

    // Every partition from the beginning.
    assert_acked_read_once(&bootstrap, TOPIC, PARTITIONS, result.sent, &acked);

    assert_eq!(
        result.fatal, None,
        "the idempotent producer hit a fatal error (the broker broke its sequence guarantees)"
    );

    // Producing stopped: every replica reaches the leader's log end and holds the same
    // bytes.
    let parts = wait_full_isr(&bootstrap, TOPIC, "full ISRs after the load");
    for p in &parts {
        assert_replicas_identical(&cluster, TOPIC, p.id, &p.replicas);
    }
}

#[test]
fn acks_all_needs_min_insync_replicas() {
    const TOPIC: &str = "guarded";
    let mut cluster = TestCluster::start(TEMP_PREFIX, "a:2,b:1", "a:2,b:1", &settings(&[]));
    let bootstrap = cluster.bootstrap_servers();
    create_topic(&bootstrap, guarded_topic(TOPIC, 1));
    let p = wait_full_isr(&bootstrap, TOPIC, "a leader and a full ISR").remove(0);
    let leader = p.leader;
    let followers = p.followers();
    let at_leader = cluster.bootstrap_of(&[leader]);
    produce_one(&at_leader, TOPIC, "all", true, "all-before")
        .unwrap_or_else(|e| panic!("acks=all with a full ISR: {e}"));

    for &f in &followers {
        cluster.kill(f).unwrap();
    }
    wait_partitions(
        &at_leader,
        TOPIC,
        &format!("the ISR to shrink to the leader {leader}"),
        ISR_TIMEOUT,
        |p| p.isr == [leader],
    );
    // The leader may learn the shrunken ISR a moment after Metadata shows it; until then
    // acks=all waits and times out, which is not the answer looked for.
    let mut refused = Vec::new();
    let mut attempt = 0;
    wait_until(
        "acks=all refused with NOT_ENOUGH_REPLICAS",
        Duration::from_secs(30),
        || {
            attempt += 1;
            let value = format!("refused-{attempt}");
            match produce_one(&at_leader, TOPIC, "all", false, &value) {
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)) => {
                    refused.push(value);
                    Ok(())
                }
                other => Err(format!("{value}: {other:?}")),
            }
        },
    );
    produce_one(&at_leader, TOPIC, "1", true, "one-alone")
        .unwrap_or_else(|e| panic!("acks=1 with the leader alone in the ISR: {e}"));

    for &f in &followers {
        cluster
            .restart(f)
            .unwrap_or_else(|e| panic!("restarting broker {f}: {e}"));
    }
    wait_full_isr(&bootstrap, TOPIC, "the followers back in the ISR");
    produce_one(&bootstrap, TOPIC, "all", true, "all-after")
        .unwrap_or_else(|e| panic!("acks=all with the ISR back: {e}"));

    // NOT_ENOUGH_REPLICAS means not appended; the others are there.
    let (_, read) = read_to_high_watermark(&bootstrap, TOPIC, &[0], &[], Duration::from_secs(30));
    let values: Vec<&str> = read[&0].iter().map(|(_, v)| v.as_str()).collect();
    for expected in ["all-before", "one-alone", "all-after"] {
        assert!(values.contains(&expected), "{expected} missing: {values:?}");
    }
    for r in &refused {
        assert!(
            !values.contains(&r.as_str()),
            "{r} was refused with NOT_ENOUGH_REPLICAS yet is in the log: {values:?}"
        );
    }
}

#[test]
fn a_leader_cut_off_truncates_what_never_reached_the_isr() {
    const TOPIC: &str = "cut-off";
    const BEFORE: usize = 100;
    const CUT_OFF: usize = 50;
    const AFTER: usize = 100;
    // Followers stay paused well under the session timeout (else the controller fences
    // them and drops them from the ISR, leaving no clean leader once the leader is paused
    // too) and under replica.lag.time.max.ms (else the leader drops them).
    const SESSION_TIMEOUT_MS: u64 = 9000;
    const FOLLOWERS_PAUSED_MAX: Duration = Duration::from_millis(6000);
    // Longer than a follower's fetch waits at the leader (replica.fetch.wait.max.ms, 200 ms
    // here): a fetch the followers had outstanding when paused is answered, empty, before
    // the cut-off records arrive. (`pause` returns only once every thread has stopped, so
    // no follower sends another.)
    const FETCH_SETTLE: Duration = Duration::from_millis(1000);

    let session = SESSION_TIMEOUT_MS.to_string();
    let mut cluster = TestCluster::start(
        TEMP_PREFIX,
        "a:2,b:1",
        "a:2,b:1",
        &settings(&[
            ("broker.session.timeout.ms", session.as_str()),
            ("replica.lag.time.max.ms", "15000"),
            ("replica.fetch.wait.max.ms", "200"),
        ]),
    );
    let bootstrap = cluster.bootstrap_servers();
    create_topic(&bootstrap, guarded_topic(TOPIC, 1));
    let p = wait_full_isr(&bootstrap, TOPIC, "a leader and a full ISR").remove(0);
    let old_leader = p.leader;
    let followers = p.followers();

    // Records every replica has.
    let values =
        |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>();
    let before = values("before", BEFORE);
    let offsets = produce_all(&bootstrap, TOPIC, "all", &before);
    assert_consecutive(&offsets, 0, "the first records");
    wait_until(
        "every replica to hold the first records",
        CATCH_UP_TIMEOUT,
        || {
            for &r in &p.replicas {
                let d = log_dump(&cluster.replica_dir(r, TOPIC, 0))?;
                if d.next_offset != Some(BEFORE as i64) {
                    return Err(format!("replica {r} ends at {:?}", d.next_offset));
                }
            }
            Ok(())
        },
    );

    // The followers freeze; the leader alone takes acks=1 records, then freezes too.
    let paused_at = Instant::now();
    for &f in &followers {
        cluster.pause(f).unwrap();
    }
    thread::sleep(FETCH_SETTLE);
    let cut_off = values("cut-off", CUT_OFF);
    let offsets = produce_all(&cluster.bootstrap_of(&[old_leader]), TOPIC, "1", &cut_off);
    assert_consecutive(
        &offsets,
        BEFORE as i64,
        "acks=1 records on the cut-off leader",
    );
    cluster.pause(old_leader).unwrap();
    for &f in &followers {
        cluster.resume(f).unwrap();
    }
    let frozen_for = paused_at.elapsed();
    eprintln!(
        "followers {followers:?} resumed after {frozen_for:?} paused; leader {old_leader} paused"
    );
    assert!(
        frozen_for < FOLLOWERS_PAUSED_MAX,
        "the followers were paused {frozen_for:?}, too close to the session timeout ({SESSION_TIMEOUT_MS} ms) for this test to mean anything"
    );
    // Read while it is frozen: the old leader holds the cut-off records, at its epoch.
    let old_dir = cluster.replica_dir(old_leader, TOPIC, 0);
    let frozen = log_dump(&old_dir).unwrap_or_else(|e| panic!("{e}"));
    let cut_batches: Vec<BatchSummary> = frozen
        .batches
        .iter()
        .filter(|b| b.base_offset >= BEFORE as i64)
        .cloned()
        .collect();
    assert_eq!(
        frozen.next_offset,
        Some((BEFORE + CUT_OFF) as i64),
        "{frozen:?}"
    );
    let old_epoch = cut_batches[0].partition_leader_epoch;

    // The controller fences the frozen leader and elects a follower; acks=all goes on there.
    let survivors = cluster.bootstrap_of(&followers);
    let p = wait_partitions(
        &survivors,
        TOPIC,
        "a follower elected leader",
        ISR_TIMEOUT,
        |p| followers.contains(&p.leader),
    )
    .remove(0);
    let new_leader = p.leader;
    eprintln!("broker {old_leader} frozen; broker {new_leader} leads: {p:?}");
    let after = values("after", AFTER);
    let offsets = produce_all(&survivors, TOPIC, "all", &after);
    assert_consecutive(
        &offsets,
        BEFORE as i64,
        "records at the new leader, whose log ends where the ISR's did (the cut-off records never reached a follower)",
    );

    // The old leader comes back, follows, truncates by leader epoch and catches up.
    cluster.resume(old_leader).unwrap();
    // Asked of the survivors: the old leader's own Metadata may still show its old view.
    wait_partitions(
        &survivors,
        TOPIC,
        &format!("broker {old_leader} back in the ISR under leader {new_leader}"),
        ISR_TIMEOUT,
        |p| p.leader == new_leader && p.isr.len() == p.replicas.len(),
    );
    let dumps = assert_replicas_identical(&cluster, TOPIC, 0, &p.replicas);
    assert_eq!(
        dumps[&new_leader].next_offset,
        Some((BEFORE + AFTER) as i64),
        "the log ends after the first and the new leader's records"
    );
    let back = &dumps[&old_leader];
    for b in &back.batches {
        assert!(
            !cut_batches.iter().any(|c| c.digest == b.digest),
            "broker {old_leader} still holds a cut-off batch: {b:?}"
        );
        assert!(
            b.base_offset < BEFORE as i64 || b.partition_leader_epoch > old_epoch,
            "broker {old_leader} holds a batch of its old epoch {old_epoch} past offset {BEFORE}: {b:?}"
        );
    }

    // Consumers see the records the ISR had, then the new leader's.
    let (_, read) = read_to_high_watermark(&survivors, TOPIC, &[0], &[], Duration::from_secs(30));
    let got: Vec<String> = read[&0].iter().map(|(_, v)| v.clone()).collect();
    let expected: Vec<String> = before.into_iter().chain(after).collect();
    assert_eq!(got, expected);
}

#[test]
fn a_consumer_in_rack_b_reads_from_the_replica_in_rack_b() {
    const TOPIC: &str = "racked";
    const RECORDS: usize = 100;
    let cluster = TestCluster::start(
        TEMP_PREFIX,
        "a:2,b:1",
        "a:2,b:2",
        &settings(&[(
            "replica.selector.class",
            "org.apache.kafka.common.replica.RackAwareReplicaSelector",
        )]),
    );
    let bootstrap = cluster.bootstrap_servers();
    // Brokers 101, 102 are in rack a, 103, 104 in rack b. Leaders (listed first) in rack
    // a; each partition has one replica in rack b.
    let rack = |id: i32| cluster.node(id).unwrap().rack;
    assert_eq!(
        [101, 102, 103, 104].map(rack),
        ["a", "a", "b", "b"].map(String::from)
    );
    let assignment: [&[i32]; 2] = [&[101, 103, 102], &[102, 104, 101]];
    let rack_b_replica = [103, 104];
    create_topic(
        &bootstrap,
        NewTopic::new(TOPIC, 2, TopicReplication::Variable(&assignment))
            .set("min.insync.replicas", "2"),
    );
    let parts = wait_full_isr(&bootstrap, TOPIC, "leaders and full ISRs");
    for p in &parts {
        assert_eq!(p.leader, assignment[p.id as usize][0], "{p:?}");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    common::kafka::block(async {
        for p in 0..2 {
            for i in 0..RECORDS {
                let value = format!("p{p}-{i}");
                producer
                    .send(
                        FutureRecord::<(), str>::to(TOPIC)
                            .partition(p)
                            .payload(&value),
                        Duration::from_secs(5),
                    )
                    .await
                    .unwrap_or_else(|(e, _)| panic!("{value}: {e}"));
            }
        }
    });
    // The rack-b replicas hold everything before the consumer starts.
    for p in &parts {
        assert_replicas_identical(&cluster, TOPIC, p.id, &p.replicas);
    }

    let (_, read) = read_to_high_watermark(
        &bootstrap,
        TOPIC,
        &[0, 1],
        &[("client.rack", "b")],
        Duration::from_secs(30),
    );
    for p in 0..2 {
        let values: Vec<&str> = read[&p].iter().map(|(_, v)| v.as_str()).collect();
        let expected: Vec<String> = (0..RECORDS).map(|i| format!("p{p}-{i}")).collect();
        assert_eq!(values, expected, "partition {p}");
    }
    // What is expected: the leader (rack a) answers the consumer's first Fetch with the
    // rack-b replica as preferred read replica (RackAwareReplicaSelector matches
    // client.rack=b to broker.rack=b), librdkafka then fetches from that replica, and the
    // replica, answering a consumer's Fetch while it is not the leader, logs a line
    // containing "served a consumer fetch as follower". Each partition's rack-b replica
    // (103 for partition 0, 104 for partition 1) must show that line.
    for (p, &replica) in rack_b_replica.iter().enumerate() {
        wait_until(
            &format!("broker {replica} (rack b) to serve the consumer's fetch of {TOPIC}-{p}"),
            Duration::from_secs(10),
            || {
                let log = cluster.log_tail(replica, 5000);
                if log.contains("served a consumer fetch as follower") {
                    Ok(())
                } else {
                    Err(format!(
                        "no such line among the last lines of broker {replica}'s log"
                    ))
                }
            },
        );
    }
}

/// Sets one dynamic setting of broker `id` (AlterConfigs, sent to that broker as
/// librdkafka does for broker resources; it replaces the broker's other dynamic settings).
fn set_broker_config(bootstrap: &str, id: i32, key: &str, value: &str) {
    let config = AlterConfig::new(ResourceSpecifier::Broker(id)).set(key, value);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results =
        common::kafka::block(common::kafka::admin(bootstrap).alter_configs([&config], &opts))
            .expect("AlterConfigs answered");
    assert!(
        results.iter().all(Result::is_ok),
        "setting {key}={value} on broker {id}: {results:?}"
    );
}

/// KIP-73, each side in turn on a topic whose `leader.replication.throttled.replicas` and
/// `follower.replication.throttled.replicas` are `*`: with the side's rate at 0 an in-sync
/// follower keeps replicating (acks=all works), but a follower that fell out of the ISR
/// gets nothing: the broker throttling it (the leader, then the follower itself) logs that
/// it held the partition back and the follower stays out of the ISR, until the rate is
/// raised (no restart) and it catches up and rejoins.
#[test]
fn a_zero_replication_rate_holds_back_an_out_of_sync_follower_until_raised() {
    const TOPIC: &str = "throttled";
    const RECORDS: usize = 200;
    let mut cluster = TestCluster::start(TEMP_PREFIX, "a:1", "a:2", &settings(&[]));
    let bootstrap = cluster.bootstrap_servers();
    create_topic(
        &bootstrap,
        NewTopic::new(TOPIC, 1, TopicReplication::Fixed(2))
            .set("leader.replication.throttled.replicas", "*")
            .set("follower.replication.throttled.replicas", "*"),
    );
    for side in ["leader", "follower"] {
        let p = wait_full_isr(&bootstrap, TOPIC, "a leader and a full ISR").remove(0);
        let leader = p.leader;
        let follower = *p.replicas.iter().find(|r| **r != leader).unwrap();
        let at_leader = cluster.bootstrap_of(&[leader]);
        let rate = format!("{side}.replication.throttled.rate");
        // Rates set for a broker id apply to the whole cluster for now; each broker is
        // addressed as a tool that sets them per broker would.
        let throttling = if side == "leader" { leader } else { follower };
        set_broker_config(&cluster.bootstrap_of(&[throttling]), throttling, &rate, "0");
        produce_one(&at_leader, TOPIC, "all", true, &format!("{side}-in-sync"))
            .unwrap_or_else(|e| panic!("acks=all with the follower in sync at {rate}=0: {e}"));

        cluster.kill(follower).unwrap();
        wait_partitions(
            &at_leader,
            TOPIC,
            &format!("the ISR to shrink to the leader {leader}"),
            ISR_TIMEOUT,
            |p| p.isr == [leader],
        );
        let values: Vec<String> = (0..RECORDS).map(|i| format!("{side}-behind-{i}")).collect();
        produce_all(&at_leader, TOPIC, "1", &values);
        cluster
            .restart(follower)
            .unwrap_or_else(|e| panic!("restarting broker {follower}: {e}"));

        // The throttling broker reports holding the partition back (its health check runs
        // every 10 s)...
        let log_path = cluster.plan().log_path(throttling);
        let held = format!("{side}_held=");
        wait_until(
            &format!("broker {throttling} to log that its {side} quota held a partition back"),
            Duration::from_secs(45),
            || {
                let log = std::fs::read_to_string(&log_path).map_err(|e| e.to_string())?;
                let line = log.lines().find(|l| {
                    l.contains("replication throttled") && !l.contains(&format!("{held}0 "))
                });
                match line {
                    Some(line) => {
                        eprintln!("{line}");
                        Ok(())
                    }
                    None => Err(format!("no 'replication throttled' line with {held} yet")),
                }
            },
        );
        // ...and the follower, alive and fetching, is still out of the ISR.
        let p = partitions(&at_leader, TOPIC).expect("metadata").remove(0);
        assert_eq!(
            p.isr,
            [leader],
            "the follower got back into the ISR at {rate}=0: {p:?}"
        );

        set_broker_config(
            &cluster.bootstrap_of(&[throttling]),
            throttling,
            &rate,
            "104857600",
        );
        wait_full_isr(
            &bootstrap,
            TOPIC,
            &format!("the follower back in the ISR once {rate} is raised"),
        );
    }
    produce_one(&bootstrap, TOPIC, "all", true, "after")
        .unwrap_or_else(|e| panic!("acks=all with the ISR back: {e}"));
}

/// Writes a reassignment plan file into `dir` and returns its path.
fn write_plan(dir: &std::path::Path, name: &str, partitions: &[(&str, i32, &[i32])]) -> String {
    let entries: Vec<String> = partitions
        .iter()
        .map(|(t, p, r)| {
            let r: Vec<String> = r.iter().map(i32::to_string).collect();
            format!(
                "{{\"topic\":\"{t}\",\"partition\":{p},\"replicas\":[{}]}}",
                r.join(",")
            )
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("{{\"version\":1,\"partitions\":[{}]}}", entries.join(",")),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// The topic's value of `key` (DescribeConfigs through librdkafka).
fn topic_config(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(20)));
    let results = common::kafka::block(
        common::kafka::admin(bootstrap).describe_configs([&ResourceSpecifier::Topic(topic)], &opts),
    )
    .expect("DescribeConfigs answered");
    let resource = results
        .into_iter()
        .next()
        .expect("one resource")
        .expect("the topic's configs");
    resource.get(key).and_then(|e| e.value.clone())
}

/// `isthmusctl reassign` end to end (generate; execute with a throttle of 0, which keeps
/// the move in progress; execute again with a real rate; verify until complete) moving a
/// partition off broker 101 while an idempotent acks=all producer keeps writing: every acknowledged record is read back once, in order; the partition ends on
/// the plan's replicas, broker 101's copy is deleted, the new replica holds the leader's
/// bytes, and verify removes the throttle configs.
#[test]
fn reassignment_moves_a_partition_under_acks_all_load() {
    const TOPIC: &str = "moving";
    const RECORDS: usize = 40_000;
    const SEND_SPREAD: Duration = Duration::from_secs(40);
    /// Started once this many records were sent, so there is data to copy.
    const SENT_BEFORE: usize = RECORDS / 4;
    const COMPLETE_TIMEOUT: Duration = Duration::from_secs(90);
    /// Bytes/s: far above what the test writes, so it throttles in name only.
    const THROTTLE: &str = "10000000";

    // Brokers 101, 102 in rack a; 103, 104 in rack b.
    let cluster = TestCluster::start(TEMP_PREFIX, "a:1", "a:2,b:2", &settings(&[]));
    let bootstrap = cluster.bootstrap_servers();
    let assignment: [&[i32]; 1] = [&[101, 102, 103]];
    create_topic(
        &bootstrap,
        NewTopic::new(TOPIC, 1, TopicReplication::Variable(&assignment))
            .set("min.insync.replicas", "2"),
    );
    let before = wait_full_isr(&bootstrap, TOPIC, "a leader and a full ISR").remove(0);
    assert_eq!(before.replicas, [101, 102, 103]);

    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (bootstrap, sent) = (bootstrap.clone(), sent.clone());
        thread::spawn(move || run_load(&bootstrap, TOPIC, 1, RECORDS, SEND_SPREAD, &sent))
    };
    wait_until(
        "the producer to send the first records",
        Duration::from_secs(30),
        || match sent.load(Ordering::Relaxed) {
            n if n >= SENT_BEFORE => Ok(()),
            n => Err(format!("{n} sent")),
        },
    );

    // generate: RF 3 on brokers 102-104 keeps 102 and 103 and adds 104.
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json").to_string_lossy().into_owned();
    let out = common::ctl(
        &bootstrap,
        &[
            "reassign",
            "generate",
            "--topics",
            TOPIC,
            "--brokers",
            "102,103,104",
            "--output",
            &plan_path,
        ],
    );
    eprintln!("{}", out.ok());
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let target: Vec<i32> = plan["partitions"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_i64().unwrap() as i32)
        .collect();
    assert_eq!(
        target.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([102, 103, 104]),
        "{plan}"
    );

    // A throttle of 0 holds the new replica back, so verify sees the move in progress;
    // execute again with a real rate lets it finish.
    let execute = |throttle: &str| {
        let out = common::ctl(
            &bootstrap,
            &[
                "reassign",
                "execute",
                "--plan",
                &plan_path,
                "--throttle",
                throttle,
            ],
        );
        let printed = out.ok().to_owned();
        eprintln!("{printed}");
        assert!(
            printed.contains(&format!("{TOPIC}-0: reassignment started")),
            "{printed}"
        );
        printed
    };
    execute("0");
    let executed = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let in_progress = common::ctl(&bootstrap, &["reassign", "verify", "--plan", &plan_path]);
    assert_eq!(
        in_progress.code(),
        Some(1),
        "verify while the throttle is 0\n{}",
        in_progress.describe()
    );
    assert!(
        in_progress.stdout.contains(&format!(
            "{TOPIC}-0: in progress (adding [104], removing [101])"
        )),
        "{}",
        in_progress.describe()
    );
    let p = partitions(&bootstrap, TOPIC).unwrap().remove(0);
    assert!(
        !p.isr.contains(&104),
        "104 caught up at a throttle of 0: {p:?}"
    );
    let printed = execute(THROTTLE);
    assert!(printed.contains("Already being reassigned"), "{printed}");
    assert_eq!(
        topic_config(&bootstrap, TOPIC, "follower.replication.throttled.replicas").as_deref(),
        Some("0:104")
    );
    assert_eq!(
        topic_config(&bootstrap, TOPIC, "leader.replication.throttled.replicas").as_deref(),
        Some("0:101,0:102,0:103")
    );
    let mut last = String::new();
    let verified = loop {
        let out = common::ctl(&bootstrap, &["reassign", "verify", "--plan", &plan_path]);
        match out.code() {
            Some(0) => break out.stdout,
            Some(1) => {
                if out.stdout != last {
                    eprintln!("{:?}: {}", executed.elapsed(), out.stdout.trim());
                    last = out.stdout.clone();
                }
            }
            _ => panic!("verify failed\n{}", out.describe()),
        }
        assert!(
            executed.elapsed() < COMPLETE_TIMEOUT,
            "the reassignment did not complete within {COMPLETE_TIMEOUT:?}; last verify:\n{last}"
        );
        thread::sleep(POLL);
    };
    let sent_at_completion = sent.load(Ordering::Relaxed);
    eprintln!(
        "{:?}: complete after {sent_at_completion} records sent:\n{verified}",
        executed.elapsed()
    );
    assert!(
        verified.contains(&format!("{TOPIC}-0: complete")),
        "{verified}"
    );
    assert!(
        verified.contains(&format!("Throttle removed from topic {TOPIC}")),
        "{verified}"
    );
    assert_eq!(
        topic_config(&bootstrap, TOPIC, "follower.replication.throttled.replicas")
            .unwrap_or_default(),
        ""
    );

    let result = load.join().expect("the producer thread");
    assert!(
        sent_at_completion < result.sent,
        "the load ended before the reassignment completed; nothing was written after it"
    );
    let acked = result.acked();
    let failed = result.failed();
    eprintln!(
        "{} sent, {} acknowledged, {} failed (first: {:?}); flush {:?}; send error {:?}",
        result.sent,
        acked.len(),
        failed.len(),
        failed.first(),
        result.flush,
        result.send_error
    );
    assert_eq!(
        result.fatal, None,
        "the idempotent producer hit a fatal error"
    );
    assert!(
        failed.is_empty() && acked.len() == result.sent,
        "records not acknowledged while a partition moved: {} failed (first {:?})",
        failed.len(),
        failed.first()
    );
    assert_acked_read_once(&bootstrap, TOPIC, 1, result.sent, &acked);

    let after = wait_full_isr(&bootstrap, TOPIC, "the new replicas in the ISR").remove(0);
    assert_eq!(after.replicas, target, "{after:?}");
    let gone = cluster.replica_dir(101, TOPIC, 0);
    wait_until("broker 101 to delete its copy", CATCH_UP_TIMEOUT, || {
        if gone.exists() {
            Err(format!("{} still exists", gone.display()))
        } else {
            Ok(())
        }
    });
    assert_replicas_identical(&cluster, TOPIC, 0, &target);
}

/// What `reassign` refuses, with the Kafka error names the controller answers: a target
/// on an unknown broker (INVALID_REPLICA_ASSIGNMENT), a changed replication factor without
/// --allow-replication-factor-change (INVALID_REPLICATION_FACTOR), an unknown topic, a
/// cancel with nothing in progress (NO_REASSIGNMENT_IN_PROGRESS); and what the tool itself
/// refuses: a malformed plan, generate with an unknown topic or broker; verify's exit code
/// for a plan the cluster does not match.
#[test]
fn reassignment_refusals_name_kafka_errors() {
    const TOPIC: &str = "fixed";
    let cluster = TestCluster::start(TEMP_PREFIX, "a:1", "a:2", &settings(&[]));
    let bootstrap = cluster.bootstrap_servers();
    create_topic(
        &bootstrap,
        NewTopic::new(TOPIC, 1, TopicReplication::Fixed(2)),
    );
    let before = wait_full_isr(&bootstrap, TOPIC, "a leader and a full ISR").remove(0);
    let dir = tempfile::tempdir().unwrap();
    let ctl = |args: &[&str]| common::ctl(&bootstrap, args);
    let refused = |plan: &str, extra: &[&str], expected: &str| {
        let mut args = vec!["reassign", "execute", "--plan", plan];
        args.extend(extra);
        let out = ctl(&args);
        out.fails_with(1);
        assert!(
            out.stdout.contains(&format!("{TOPIC}-0: {expected}"))
                || out.stdout.contains(&format!("nope-0: {expected}")),
            "expected {expected}\n{}",
            out.describe()
        );
        assert!(out.stderr.contains("refused") || out.stderr.contains("not cancelled"));
    };

    let unknown_broker = write_plan(dir.path(), "unknown.json", &[(TOPIC, 0, &[101, 999])]);
    refused(&unknown_broker, &[], "INVALID_REPLICA_ASSIGNMENT (39)");
    let shrink = write_plan(dir.path(), "shrink.json", &[(TOPIC, 0, &[101])]);
    refused(&shrink, &[], "INVALID_REPLICATION_FACTOR (38)");
    let no_topic = write_plan(dir.path(), "nope.json", &[("nope", 0, &[101])]);
    refused(&no_topic, &[], "UNKNOWN_TOPIC_OR_PARTITION (3)");
    let same = write_plan(dir.path(), "same.json", &[(TOPIC, 0, &before.replicas)]);
    refused(&same, &["--cancel"], "NO_REASSIGNMENT_IN_PROGRESS (85)");
    // Nothing changed.
    assert_eq!(
        partitions(&bootstrap, TOPIC).unwrap()[0].replicas,
        before.replicas
    );

    // The tool's own refusals.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,1]}]}"#,
    )
    .unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let err = ctl(&["reassign", "execute", "--plan", &bad])
        .fails_with(1)
        .to_owned();
    assert!(err.contains("broker 1 appears more than once"), "{err}");
    let err = ctl(&["reassign", "verify", "--plan", &bad])
        .fails_with(3)
        .to_owned();
    assert!(err.contains("broker 1 appears more than once"), "{err}");
    let err = ctl(&[
        "reassign",
        "generate",
        "--topics",
        "nope",
        "--brokers",
        "101,102",
    ])
    .fails_with(1)
    .to_owned();
    assert!(err.contains("unknown topic 'nope'"), "{err}");
    let err = ctl(&[
        "reassign",
        "generate",
        "--topics",
        TOPIC,
        "--brokers",
        "101,999",
    ])
    .fails_with(1)
    .to_owned();
    assert!(err.contains("broker 999 is not registered"), "{err}");

    // verify: the current replicas match; a reversed order does not.
    let out = ctl(&["reassign", "verify", "--plan", &same]);
    assert!(
        out.ok().contains(&format!("{TOPIC}-0: complete")),
        "{}",
        out.describe()
    );
    let reversed: Vec<i32> = before.replicas.iter().rev().copied().collect();
    let other = write_plan(dir.path(), "other.json", &[(TOPIC, 0, &reversed)]);
    let out = ctl(&["reassign", "verify", "--plan", &other]);
    out.fails_with(2);
    assert!(
        out.stdout.contains("failed/different"),
        "{}",
        out.describe()
    );
}
