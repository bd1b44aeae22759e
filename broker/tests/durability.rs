//! SIGKILL in the middle of a 1,000,000-record idempotent acks=all produce: after restart
//! every acknowledged record is there exactly once, offsets are contiguous, the indexes
//! answer lookups correctly, and the same producer carries on.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::TestBroker;
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TOTAL_RECORDS: usize = 1_000_000;
const KILL_AFTER_ACKED: usize = 300_000;
const PARTITIONS: i32 = 2;
const TOPIC: &str = "durable";

/// Records which sends librdkafka reported as acknowledged.
struct Tracker {
    acked: Mutex<Vec<bool>>,
    acked_count: AtomicUsize,
    failed_count: AtomicUsize,
}

impl ClientContext for Tracker {}

impl ProducerContext for Tracker {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<usize>) {
        if result.is_ok() {
            self.acked.lock()[*id] = true;
            self.acked_count.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed_count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_produce_loses_no_acknowledged_record() {
    // Small segments so the kill lands among rolls, indexes and snapshots, not in one file.
    let mut broker = TestBroker::start(&[("log.segment.bytes", "4194304")]);
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let r = admin
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");

    let tracker = Tracker {
        acked: Mutex::new(vec![false; TOTAL_RECORDS]),
        acked_count: AtomicUsize::new(0),
        failed_count: AtomicUsize::new(0),
    };
    let producer: ThreadedProducer<Tracker> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .set("queue.buffering.max.messages", "200000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .create_with_context(tracker)
        .unwrap();

    let mut killed = false;
    for i in 0..TOTAL_RECORDS {
        let payload = format!("{i:08}");
        let mut record = BaseRecord::<(), _, Box<usize>>::with_opaque_to(TOPIC, Box::new(i))
            .partition((i % PARTITIONS as usize) as i32)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => panic!("enqueue of record {i} failed: {e}"),
            }
        }
        if !killed && producer.context().acked_count.load(Ordering::Relaxed) >= KILL_AFTER_ACKED {
            broker.kill();
            killed = true;
            std::thread::sleep(Duration::from_millis(300));
            broker.restart();
        }
    }
    producer.flush(Duration::from_secs(180)).unwrap();
    assert!(
        killed,
        "the producer finished before the kill point; raise TOTAL_RECORDS"
    );
    let acked_ids = producer.context().acked.lock().clone();
    let acked_total = acked_ids.iter().filter(|a| **a).count();
    let failed = producer.context().failed_count.load(Ordering::Relaxed);
    assert!(
        acked_total > KILL_AFTER_ACKED + 100_000,
        "the producer did not carry on after the restart ({acked_total} acked)"
    );
    eprintln!("acknowledged {acked_total}, failed {failed}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "10485760")
        .set("group.id", "assign-only")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen = vec![0u8; TOTAL_RECORDS];
    let mut next_offset = vec![0i64; PARTITIONS as usize];
    let (_, high0) = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .unwrap();
    let (_, high1) = consumer
        .fetch_watermarks(TOPIC, 1, Duration::from_secs(10))
        .unwrap();
    let total_in_log = (high0 + high1) as usize;
    let mut read = 0usize;
    let deadline = Instant::now() + Duration::from_secs(180);
    while read < total_in_log {
        assert!(
            Instant::now() < deadline,
            "read only {read} of {total_in_log} records"
        );
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let p = msg.partition() as usize;
        assert_eq!(
            msg.offset(),
            next_offset[p],
            "partition {p}: offsets are not contiguous"
        );
        next_offset[p] += 1;
        let id: usize = std::str::from_utf8(msg.payload().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        seen[id] += 1;
        assert_eq!(seen[id], 1, "record {id} is in the log twice");
        assert_eq!(
            id % PARTITIONS as usize,
            p,
            "record {id} in the wrong partition"
        );
        read += 1;
    }
    let lost: Vec<usize> = (0..TOTAL_RECORDS)
        .filter(|i| acked_ids[*i] && seen[*i] == 0)
        .take(10)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged records missing after the kill: {lost:?}"
    );

    // The rebuilt indexes answer random lookups: a fetch at offset N starts with the batch
    // holding N.
    for (p, end) in [(0, high0), (1, high1)] {
        for probe in [0, end / 3, end / 2, end - 1] {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(TOPIC, p, Offset::Offset(probe))
                .unwrap();
            consumer.assign(&tpl).unwrap();
            let msg = loop {
                if let Some(m) = consumer.poll(Duration::from_millis(500)) {
                    break m.expect("consume");
                }
            };
            assert_eq!(
                msg.offset(),
                probe,
                "lookup of offset {probe} in partition {p}"
            );
        }
    }
}
