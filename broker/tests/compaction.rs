//! Log compaction through the real `isthmus` process with librdkafka: a compacted topic
//! keeps the latest value per key (tombstones honoured), offsets of survivors unchanged,
//! and keyless records are refused.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const KEYS: usize = 100;
const UPDATES: usize = 5000;

/// Reads the whole partition: (offset, key, value) in order.
fn read_all(bootstrap: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("compacted", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "reading the compacted topic timed out"
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
