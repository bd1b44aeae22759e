//! Bad input against the real `isthmus` process: every case gets the Kafka error a real
//! broker gives (or a closed connection where Kafka closes it), and the broker keeps serving
//! other connections afterwards.

mod common;
mod wire;

use common::TestBroker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use wire::{batch, produce, Wire};

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The broker still answers a fresh connection.
fn assert_serving(broker: &TestBroker) {
    let mut w = Wire::connect(&broker.bootstrap());
    let r = w.call(3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
}

fn create_topic(w: &mut Wire, name: &str, partitions: i32) -> i16 {
    let r = w.call(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(5000),
    );
    r.topics[0].error_code
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

#[test]
fn malformed_frames_close_only_their_own_connection() {
    let broker = TestBroker::start(&[]);
    // A healthy connection opened before the attacks must keep working after them.
    let mut healthy = Wire::connect(&broker.bootstrap());

    // Truncated frame: claims 100 bytes, sends 10, then hangs up.
    let mut w = Wire::connect(&broker.bootstrap());
    w.send_raw(&100i32.to_be_bytes());
    w.send_raw(&[0u8; 10]);
    drop(w);

    // Length far above socket.request.max.bytes: closed without allocating it.
    let mut w = Wire::connect(&broker.bootstrap());
    w.send_raw(&i32::MAX.to_be_bytes());
    assert!(w.is_closed(), "huge frame must close the connection");

    // Negative length.
    let mut w = Wire::connect(&broker.bootstrap());
    w.send_raw(&(-5i32).to_be_bytes());
    assert!(
        w.is_closed(),
        "negative frame size must close the connection"
    );

    // Random bytes inside a well-sized frame.
    let mut w = Wire::connect(&broker.bootstrap());
    let noise: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    w.send_frame(&noise);
    assert!(w.is_closed(), "garbage must close the connection");

    // Unknown api key.
    let mut w = Wire::connect(&broker.bootstrap());
    w.send_frame(&[0x7f, 0x00, 0, 1, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(w.is_closed(), "unknown api key must close the connection");

    // Known api, unsupported version (Metadata v99).
    let mut w = Wire::connect(&broker.bootstrap());
    w.send_frame(&[0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(
        w.is_closed(),
        "unsupported version must close the connection"
    );

    // Produce v2 is below Kafka 4's floor even though ApiVersions advertises v0 (KAFKA-18659).
    let mut w = Wire::connect(&broker.bootstrap());
    w.send_frame(&[
        0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 0, 0,
    ]);
    assert!(w.is_closed(), "Produce v2 must be refused");

    // ApiVersions of a future version is answered in v0 with UNSUPPORTED_VERSION, so the
    // client can retry with a version from the list.
    let mut w = Wire::connect(&broker.bootstrap());
    w.send_frame(&[0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff]);
    let mut frame = w.read_frame().expect("ApiVersions v99 must be answered");
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 7);
    let r = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0)
        .unwrap();
    assert_eq!(r.error_code, code(ResponseError::UnsupportedVersion));
    let produce = r
        .api_keys
        .iter()
        .find(|k| k.api_key == 0)
        .expect("Produce listed");
    assert_eq!((produce.min_version, produce.max_version), (0, 13));

    let r = healthy.call(12, &MetadataRequest::default().with_topics(Some(vec![])));
    assert_eq!(r.brokers.len(), 1);
    assert_serving(&broker);
}

use kafka_protocol::protocol::Decodable;

#[test]
fn bad_requests_get_kafka_error_codes() {
    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]);
    let mut w = Wire::connect(&broker.bootstrap());

    // Unknown topic with auto-create off.
    let r = produce(
        &mut w,
        "no-such-topic",
        0,
        batch(3, -1, -1, -1, Compression::None),
        -1,
    );
    assert_eq!(r.error_code, code(ResponseError::UnknownTopicOrPartition));
    let m = w.call(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("no-such-topic")))
            ]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(
        m.topics[0].error_code,
        code(ResponseError::UnknownTopicOrPartition)
    );

    // Invalid topic names.
    for bad in ["..", ".", "a/b", &"x".repeat(250)] {
        assert_eq!(
            create_topic(&mut w, bad, 1),
            code(ResponseError::InvalidTopicException),
            "name {bad:?}"
        );
    }

    // Existing topic.
    assert_eq!(create_topic(&mut w, "t", 2), 0);
    assert_eq!(
        create_topic(&mut w, "t", 2),
        code(ResponseError::TopicAlreadyExists)
    );

    // Partition out of range.
    let r = produce(&mut w, "t", 7, batch(1, -1, -1, -1, Compression::None), 1);
    assert_eq!(r.error_code, code(ResponseError::UnknownTopicOrPartition));

    // A batch whose CRC does not match.
    let mut damaged = batch(5, -1, -1, -1, Compression::None).to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let r = produce(&mut w, "t", 0, damaged.into(), -1);
    assert_eq!(r.error_code, code(ResponseError::CorruptMessage));

    // Good data still goes in after the refusals, at offset 0: nothing half-written.
    let r = produce(&mut w, "t", 0, batch(5, -1, -1, -1, Compression::Gzip), -1);
    assert_eq!((r.error_code, r.base_offset), (0, 0));

    // Fetch beyond the log end.
    let f = w.call(
        12,
        &FetchRequest::default()
            .with_max_wait_ms(10)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(1000)
                    .with_partition_max_bytes(1 << 20)])]),
    );
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        code(ResponseError::OffsetOutOfRange)
    );

    // Idempotent producer that skips a sequence number.
    let pid = w.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(pid.error_code, 0);
    let (id, epoch) = (pid.producer_id.0, pid.producer_epoch);
    let r = produce(
        &mut w,
        "t",
        1,
        batch(3, id, epoch, 0, Compression::None),
        -1,
    );
    assert_eq!(r.error_code, 0);
    let r = produce(
        &mut w,
        "t",
        1,
        batch(3, id, epoch, 5, Compression::None),
        -1,
    );
    assert_eq!(r.error_code, code(ResponseError::OutOfOrderSequenceNumber));
    // A retry of the first batch is a duplicate: success with the original offset.
    let r = produce(
        &mut w,
        "t",
        1,
        batch(3, id, epoch, 0, Compression::None),
        -1,
    );
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    // The in-order next batch is accepted after the refused one.
    let r = produce(
        &mut w,
        "t",
        1,
        batch(2, id, epoch, 3, Compression::None),
        -1,
    );
    assert_eq!((r.error_code, r.base_offset), (0, 3));
    // A bumped epoch starts again at sequence 0; after it, the old epoch is fenced.
    let r = produce(
        &mut w,
        "t",
        1,
        batch(1, id, epoch + 1, 0, Compression::None),
        -1,
    );
    assert_eq!((r.error_code, r.base_offset), (0, 5));
    let r = produce(
        &mut w,
        "t",
        1,
        batch(1, id, epoch, 5, Compression::None),
        -1,
    );
    assert_eq!(r.error_code, code(ResponseError::InvalidProducerEpoch));

    // acks=0 to a partition that does not exist: no response, and the connection closes.
    let mut fire_and_forget = Wire::connect(&broker.bootstrap());
    fire_and_forget.send(
        9,
        &ProduceRequest::default()
            .with_acks(0)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name("t"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(99)
                    .with_records(Some(batch(1, -1, -1, -1, Compression::None)))])]),
    );
    assert!(
        fire_and_forget.is_closed(),
        "a failed acks=0 produce must close the connection"
    );

    // Settings the log would refuse never reach the metadata (the node could not reopen
    // the topic at its next start).
    for (key, value) in [("max.message.bytes", "0"), ("segment.bytes", "20")] {
        let r = w.call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic_name("bricked"))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_value(Some(StrBytes::from_static_str(value)))])]),
        );
        assert_eq!(
            r.topics[0].error_code,
            code(ResponseError::InvalidConfig),
            "{key}={value}"
        );
    }
    let m = w.call(12, &MetadataRequest::default().with_topics(None));
    assert!(m
        .topics
        .iter()
        .all(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() != "bricked")));

    // A 249-character topic can be deleted, and re-creating it starts empty.
    let long = "L".repeat(249);
    assert_eq!(create_topic(&mut w, &long, 2), 0);
    let r = produce(
        &mut w,
        &long,
        0,
        batch(3, -1, -1, -1, Compression::None),
        -1,
    );
    assert_eq!(r.error_code, 0);
    let d = w.call(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                .with_name(Some(topic_name(&long)))]),
    );
    assert_eq!(
        d.responses[0].error_code, 0,
        "{:?}",
        d.responses[0].error_message
    );
    assert_eq!(create_topic(&mut w, &long, 2), 0);
    let r = produce(
        &mut w,
        &long,
        0,
        batch(1, -1, -1, -1, Compression::None),
        -1,
    );
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 0),
        "old data came back after re-creating the topic"
    );

    // Invalid acks.
    let r = produce(&mut w, "t", 0, batch(1, -1, -1, -1, Compression::None), 2);
    assert_eq!(r.error_code, code(ResponseError::InvalidRequiredAcks));

    assert_serving(&broker);
}
