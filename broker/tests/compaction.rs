//! Log compaction through the real `isthmus` process with librdkafka: a compacted topic
//! keeps the latest value per key (tombstones honoured), offsets of survivors unchanged,
//! and keyless records are refused.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const KEYS: usize = 100;
const UPDATES: usize = 5000;

/// Reads the whole partition: (offset, key, value) in order.
fn read_all(bootstrap: &str) -> Vec<(i64, String, Option<String>)> {
    read_topic(bootstrap, "compacted")
}

/// Reads partition 0 of `topic` from its start to its end: (offset, key, value) in order.
fn read_topic(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "reading {topic} timed out after {} records",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap()),
            )),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_latest_value_per_key() {
    let broker = TestBroker::start(&[("log.cleaner.backoff.ms", "200")]);
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new("compacted", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "16384")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "3600000");
    let r = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "2")
        // Batches must fit the small segments (a larger one is RECORD_LIST_TOO_LARGE).
        .set("batch.size", "4096")
        .set("compression.codec", "lz4")
        .create()
        .unwrap();
    let mut latest: HashMap<String, Option<String>> = HashMap::new();
    let mut pending = Vec::with_capacity(UPDATES);
    for i in 0..UPDATES {
        let key = format!("k{}", i % KEYS);
        let tombstone = i >= UPDATES - 10; // the last ten updates delete their keys
        let value = format!("v{i}");
        let mut record = FutureRecord::to("compacted").partition(0).key(&key);
        if !tombstone {
            record = record.payload(&value);
        }
        pending.push((key.clone(), producer.send_result(record).expect("enqueue")));
        latest.insert(key, (!tombstone).then_some(value));
    }
    let mut offset_of_latest: HashMap<String, i64> = HashMap::new();
    for (key, delivery) in pending {
        let offset = delivery.await.expect("delivery").expect("produce").offset;
        offset_of_latest.insert(key, offset);
    }

    // Keyless records are refused on a compacted topic.
    let keyless = producer
        .send(
            FutureRecord::<(), _>::to("compacted")
                .partition(0)
                .payload("no key"),
            Duration::from_secs(10),
        )
        .await;
    let (err, _) = keyless.expect_err("a record without a key must be refused");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::InvalidRecord),
        "{err}"
    );

    // Wait for the cleaner to shrink the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let records = read_all(&bootstrap);
        if records.len() < UPDATES / 2 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner never compacted ({} records remain)",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Replaying what is left gives the latest value of every key, at its original offset.
    let mut replay: HashMap<String, (i64, Option<String>)> = HashMap::new();
    let mut previous = -1;
    for (offset, key, value) in &records {
        assert!(*offset > previous, "offsets must keep increasing");
        previous = *offset;
        replay.insert(key.clone(), (*offset, value.clone()));
    }
    for (key, value) in &latest {
        let (offset, got) = replay.get(key).unwrap_or_else(|| panic!("{key} vanished"));
        assert_eq!(got, value, "latest value of {key}");
        assert_eq!(
            *offset, offset_of_latest[key],
            "offset of {key}'s latest record changed"
        );
    }
}

// ------------------------------------------------------------------ acceptance

/// Keys updated by the acceptance tests.
const ACCEPT_KEYS: usize = 1000;
/// Updates over those keys.
const ACCEPT_UPDATES: usize = 100_000;
/// Records with keys of their own, produced last: they fill the active segment (which is
/// never compacted) so that every update above lies in closed segments.
const FILLER: usize = 3000;
/// delete.retention.ms of the acceptance topic: long enough to see the tombstones after
/// the compaction pass that keeps them.
const DELETE_RETENTION_MS: &str = "30000";

/// What update `i` of key `key` writes: `None` is a tombstone. Keys ≡ 0 (mod 10) end
/// deleted; keys ≡ 5 (mod 10) are deleted half-way and written again later.
fn accept_update(i: usize) -> (String, Option<String>) {
    let k = i % ACCEPT_KEYS;
    let key = format!("key-{k:04}");
    let deleted_at_end = k.is_multiple_of(10) && i >= ACCEPT_UPDATES - ACCEPT_KEYS;
    let deleted_midway =
        k % 10 == 5 && (ACCEPT_UPDATES / 2..ACCEPT_UPDATES / 2 + ACCEPT_KEYS).contains(&i);
    if deleted_at_end || deleted_midway {
        (key, None)
    } else {
        (key, Some(format!("value-{i:06}-of-{k:04}")))
    }
}

/// 160 hex digits that lz4 cannot shrink much, so that the filler really fills segments.
fn incompressible(seed: usize) -> String {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..10)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect()
}

async fn create_compacted(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let r = admin
        .create_topics(&[new], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

fn compacting_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.size", "16384")
        .set("compression.codec", "lz4")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .unwrap()
}

/// Produces (key, value-or-tombstone) records in order to partition 0; returns each one's
/// offset.
async fn produce_keyed(
    producer: &FutureProducer,
    topic: &str,
    records: impl Iterator<Item = (String, Option<String>)>,
) -> Vec<(i64, String, Option<String>)> {
    let mut pending = Vec::new();
    for (key, value) in records {
        let mut record = FutureRecord::to(topic).partition(0).key(&key);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        let delivery = loop {
            match producer.send_result(record) {
                Ok(d) => break d,
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "enqueue: {e}"
                    );
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        pending.push((key, value, delivery));
    }
    let mut out = Vec::with_capacity(pending.len());
    for (key, value, delivery) in pending {
        let offset = delivery.await.expect("delivery").expect("produce").offset;
        out.push((offset, key, value));
    }
    out
}

/// Records of a read that are not the latest of their key, as (offset, key).
fn superseded(
    records: &[(i64, String, Option<String>)],
    latest_offset: &HashMap<String, i64>,
) -> Vec<(i64, String)> {
    records
        .iter()
        .filter(|(o, k, _)| latest_offset.get(k) != Some(o))
        .map(|(o, k, _)| (*o, k.clone()))
        .collect()
}

/// 100,000 updates over 1,000 keys with tombstones through librdkafka: after cleaning,
/// reading from the start yields exactly the latest record per key (tombstones
/// included, as long as delete.retention.ms has not passed), each at the offset it was
/// produced at; later the tombstones are gone and exactly the latest value of every live
/// key remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_updates_compact_to_the_latest_value_per_key() {
    let broker = TestBroker::start(&[("log.cleaner.backoff.ms", "200")]);
    let bootstrap = broker.bootstrap();
    let topic = "acceptance";
    create_compacted(
        &bootstrap,
        topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "65536"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", DELETE_RETENTION_MS),
        ],
    )
    .await;
    let producer = compacting_producer(&bootstrap);
    let updates = (0..ACCEPT_UPDATES).map(accept_update);
    let filler = (0..FILLER).map(|j| (format!("filler-{j:04}"), Some(incompressible(j))));
    let produced = produce_keyed(&producer, topic, updates.chain(filler)).await;
    assert_eq!(produced.len(), ACCEPT_UPDATES + FILLER);
    assert!(
        produced.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "produced offsets are not consecutive"
    );

    // The latest record of every key, tombstones included.
    let mut latest: HashMap<String, (i64, Option<String>)> = HashMap::new();
    for (offset, key, value) in &produced {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    let latest_offset: HashMap<String, i64> =
        latest.iter().map(|(k, (o, _))| (k.clone(), *o)).collect();
    let tombstones: usize = latest.values().filter(|(_, v)| v.is_none()).count();
    assert_eq!(tombstones, ACCEPT_KEYS / 10);
    let mut expected_with_tombstones: Vec<(i64, String, Option<String>)> = latest
        .iter()
        .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
        .collect();
    expected_with_tombstones.sort();

    // 1. Compacted, tombstones still there.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let records = read_topic(&bootstrap, topic);
        let old = superseded(&records, &latest_offset);
        if old.is_empty() {
            assert_eq!(
                records, expected_with_tombstones,
                "the first fully compacted read must hold exactly the latest record of every \
                 key, tombstones included, at their original offsets"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner never removed the older values: {} records remain, {} superseded \
             (first {:?})",
            records.len(),
            old.len(),
            old.first()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 2. After delete.retention.ms the tombstones go; nothing else changes.
    let expected_live: Vec<(i64, String, Option<String>)> = expected_with_tombstones
        .iter()
        .filter(|(_, _, v)| v.is_some())
        .cloned()
        .collect();
    assert_eq!(expected_live.len(), ACCEPT_KEYS - tombstones + FILLER);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let records = read_topic(&bootstrap, topic);
        let left = records.iter().filter(|(_, _, v)| v.is_none()).count();
        if left == 0 {
            assert_eq!(
                records, expected_live,
                "after delete.retention.ms: exactly the latest value of every live key, at \
                 its original offset"
            );
            break;
        }
        // Until then the read is exactly the compacted log with its tombstones.
        assert_eq!(records, expected_with_tombstones);
        assert!(
            Instant::now() < deadline,
            "{left} tombstones were never removed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = std::fs::read_to_string(broker.log_path()).unwrap();
    assert!(
        log.contains("compacted"),
        "the broker log shows no compaction pass"
    );
}

/// Values of the crash test: big enough that a pass over a round of updates takes a while.
fn crash_value(i: usize) -> String {
    format!("{i:08}-{}", "x".repeat(400 + i % 97))
}

/// Markers of a damaged log in the broker's output.
const CORRUPTION_MARKERS: &[&str] = &["corrupt", "damaged", "unreadable", "panicked", "ERROR"];

/// The crash test's topic settings; `ratio` gates cleaning: 1 never cleans (a dirty
/// ratio cannot exceed it), 0.01 cleans at once.
async fn set_crash_topic_configs(bootstrap: &str, topic: &str, ratio: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    // AlterConfigs replaces the whole set: every setting is given each time.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "1048576")
        .set("min.cleanable.dirty.ratio", ratio);
    let r = admin
        .alter_configs(&[alter], &AdminOptions::new())
        .await
        .expect("AlterConfigs");
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
}

/// kill -9 at different moments of compaction passes: each round produces 40,000 updates
/// over 20,000 keys with cleaning held off, then lets the cleaner start, watches the
/// partition folder for the pass's `.cleaned` files and kills the broker 0 to 160 ms after
/// they appear. After
/// every restart the log still replays to every key's latest value, every record read is
/// the one produced at its offset, and the broker log reports no damage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_compaction_loses_nothing() {
    // Many keys, so that what survives a pass (and is rewritten by the next) is big
    // enough for the rewrite and the swap to take a while.
    const KEYS: usize = 20_000;
    const ROUND_UPDATES: usize = 40_000;
    /// How long after a pass's first `.cleaned` file appears each round kills the broker.
    const KILL_DELAYS_MS: &[u64] = &[0, 2, 5, 10, 20, 40, 80, 160];
    let mut broker = TestBroker::start(&[("log.cleaner.backoff.ms", "100")]);
    let topic = "crash-compacted";
    create_compacted(
        &broker.bootstrap(),
        topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1048576"),
            ("min.cleanable.dirty.ratio", "1"),
        ],
    )
    .await;
    let partition_dir = broker.data_dir().join(format!("{topic}-0"));
    // offset → update number, for every record ever acknowledged.
    let mut produced: HashMap<i64, usize> = HashMap::new();
    // key → latest value (None: tombstone).
    let mut latest: HashMap<String, Option<String>> = HashMap::new();
    let mut next_update = 0usize;
    let mut interrupted_passes = 0usize;
    let mut kills_seen: Vec<String> = Vec::new();

    for (round, delay_ms) in KILL_DELAYS_MS.iter().enumerate() {
        set_crash_topic_configs(&broker.bootstrap(), topic, "1").await;
        let producer = compacting_producer(&broker.bootstrap());
        let start = next_update;
        next_update += ROUND_UPDATES;
        let records = (start..next_update).map(|i| {
            let key = format!("key-{:05}", i % KEYS);
            // Keys ≡ 7 (mod 50) only ever get tombstones.
            let value = (i % 50 != 7).then(|| crash_value(i));
            (key, value)
        });
        let acked = produce_keyed(&producer, topic, records).await;
        drop(producer);
        for (i, (offset, key, value)) in (start..).zip(acked) {
            produced.insert(offset, i);
            latest.insert(key, value);
        }

        // Let the cleaner go, and kill while a pass is writing (its .cleaned files exist)
        // or swapping.
        set_crash_topic_configs(&broker.bootstrap(), topic, "0.01").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut in_pass = false;
        while Instant::now() < deadline {
            if cleaner_files(&partition_dir)
                .iter()
                .any(|n| n.ends_with(".cleaned"))
            {
                in_pass = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(*delay_ms));
        broker.kill();
        let on_disk = cleaner_files(&partition_dir);
        let mid_pass = on_disk
            .iter()
            .any(|n| n.ends_with(".cleaned") || n == "cleaner-swap");
        if mid_pass {
            interrupted_passes += 1;
        }
        kills_seen.push(format!(
            "round {round}: pass seen {in_pass}, killed {delay_ms} ms later, cleaner files \
             left: {on_disk:?}"
        ));
        broker.restart();

        // Compaction never moves the log start (Kafka's cleaner keeps each group's first
        // base offset): a consumer at offset 0 is not out of range.
        assert_eq!(
            low_watermark(&broker.bootstrap(), topic),
            0,
            "round {round}: log start offset after kill -9 ({})",
            kills_seen.last().unwrap()
        );
        // Everything acknowledged is still there, and nothing else.
        let records = read_topic(&broker.bootstrap(), topic);
        let mut replay: HashMap<String, Option<String>> = HashMap::new();
        let mut previous = -1;
        for (offset, key, value) in &records {
            assert!(*offset > previous, "round {round}: offsets must increase");
            previous = *offset;
            let i = *produced
                .get(offset)
                .unwrap_or_else(|| panic!("round {round}: offset {offset} was never produced"));
            assert_eq!(
                key,
                &format!("key-{:05}", i % KEYS),
                "round {round}: key at {offset}"
            );
            let want = (i % 50 != 7).then(|| crash_value(i));
            assert_eq!(value, &want, "round {round}: value at {offset}");
            replay.insert(key.clone(), value.clone());
        }
        for (key, value) in &latest {
            assert_eq!(
                replay.get(key).cloned().flatten(),
                value.clone(),
                "round {round}: latest value of {key} after kill -9 ({})",
                kills_seen.last().unwrap()
            );
        }
    }
    let log = std::fs::read_to_string(broker.log_path()).unwrap();
    for marker in CORRUPTION_MARKERS {
        let hits: Vec<&str> = log.lines().filter(|l| l.contains(marker)).take(5).collect();
        assert!(
            hits.is_empty(),
            "the broker log reports damage ({marker}): {hits:#?}"
        );
    }
    assert!(
        interrupted_passes >= 2,
        "only {interrupted_passes} kills landed inside a compaction pass; the test did not \
         test what it claims:\n{}",
        kills_seen.join("\n")
    );
    println!("{}", kills_seen.join("\n"));
}

/// The log start offset of partition 0 of `topic` (ListOffsets earliest).
fn low_watermark(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
        .0
}

/// Names of the cleaner's working files in a partition folder.
fn cleaner_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".cleaned") || n == "cleaner-swap")
                .collect()
        })
        .unwrap_or_default()
}
