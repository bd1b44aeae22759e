//! The APIs real clients exercise less often, checked over the wire against the real
//! `isthmus` process: ListOffsets by timestamp and max timestamp, DeleteRecords,
//! OffsetForLeaderEpoch, DescribeLogDirs, DescribeCluster, dynamic broker configs,
//! validate-only admin requests, topic ids, acks=0 and long-polling fetches.

mod common;
mod wire;

use std::time::{Duration, Instant};

use common::TestBroker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use uuid::Uuid;
use wire::{batch, Wire};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn create(
    w: &mut Wire,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> create_topics_response::CreatableTopicResult {
    let r = w.call(
        7,
        &CreateTopicsRequest::default()
            .with_validate_only(validate_only)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(text(k))
                                .with_value(Some(text(v)))
                        })
                        .collect(),
                )]),
    );
    r.topics.into_iter().next().unwrap()
}

fn produce(w: &mut Wire, topic: &str, partition: i32, records: bytes::Bytes) -> i64 {
    let p = wire::produce(w, topic, partition, records, -1);
    assert_eq!(p.error_code, 0, "produce failed: {:?}", p.error_message);
    p.base_offset
}

fn list_offset(w: &mut Wire, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let r = w.call(
        8,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)])]),
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[test]
fn offsets_by_time_deletion_and_epochs() {
    let broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());
    // The test records carry 2023 timestamps: keep time-based retention out of the way.
    assert_eq!(
        create(&mut w, "t", 1, &[("retention.ms", "-1")], false).error_code,
        0
    );
    // Three batches of 10 records; record i of batch b has timestamp 1_700_000_000_000 + i
    // (the wire helper's pattern), so use distinct batches to tell them apart.
    let b0 = produce(&mut w, "t", 0, batch(10, -1, -1, -1, Compression::None));
    let b1 = produce(&mut w, "t", 0, batch(10, -1, -1, -1, Compression::None));
    let b2 = produce(&mut w, "t", 0, batch(10, -1, -1, -1, Compression::Gzip));
    assert_eq!((b0, b1, b2), (0, 10, 20));

    assert_eq!(list_offset(&mut w, "t", -2), (0, 0, -1), "earliest");
    assert_eq!(list_offset(&mut w, "t", -1), (0, 30, -1), "latest");
    // The first record with timestamp >= base + 5 is offset 5 (uncompressed batch: exact).
    assert_eq!(
        list_offset(&mut w, "t", 1_700_000_000_005),
        (0, 5, 1_700_000_000_005)
    );
    // Past every timestamp: no offset.
    assert_eq!(list_offset(&mut w, "t", 1_800_000_000_000), (0, -1, -1));
    // Max timestamp: 1_700_000_000_009 first appears at offset 9.
    let (err, offset, ts) = list_offset(&mut w, "t", -3);
    assert_eq!((err, ts), (0, 1_700_000_000_009));
    assert_eq!(offset, 9, "the first record carrying the max timestamp");

    // OffsetForLeaderEpoch: epoch 0 runs to the log end.
    let r = w.call(
        4,
        &OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_leader_epoch(0)
                    .with_current_leader_epoch(0)])]),
    );
    let e = &r.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, 0, 30));
    // A client that believes in a newer epoch than ours is told so.
    let r = w.call(
        4,
        &OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_leader_epoch(0)
                .with_current_leader_epoch(5)])]),
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::UnknownLeaderEpoch.code()
    );

    // DeleteRecords moves the log start; fetching below it is out of range.
    let r = w.call(
        2,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(10)])]),
    );
    let d = &r.topics[0].partitions[0];
    assert_eq!((d.error_code, d.low_watermark), (0, 10));
    assert_eq!(list_offset(&mut w, "t", -2), (0, 10, -1));
    let r = w.call(
        2,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(99)])]),
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    let f = fetch(&mut w, "t", 5, Duration::ZERO);
    assert_eq!(f.error_code, ResponseError::OffsetOutOfRange.code());

    // DescribeLogDirs reports the partition and the disk.
    let r = w.call(4, &DescribeLogDirsRequest::default().with_topics(None));
    let dir = &r.results[0];
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
    let part = &dir
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "t")
        .expect("topic listed")
        .partitions[0];
    assert!(part.partition_size > 0);

    // The log start survives a restart (it is checkpointed when it moves).
    drop(w);
    let mut broker = broker;
    broker.kill();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap());
    assert_eq!(list_offset(&mut w, "t", -2), (0, 10, -1));
    assert_eq!(list_offset(&mut w, "t", -1), (0, 30, -1));
}

fn fetch(
    w: &mut Wire,
    topic: &str,
    offset: i64,
    max_wait: Duration,
) -> fetch_response::PartitionData {
    let r = w.call(
        12,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]),
    );
    r.responses
        .into_iter()
        .next()
        .unwrap()
        .partitions
        .into_iter()
        .next()
        .unwrap()
}

#[test]
fn long_poll_is_woken_by_a_produce_and_acks_zero_sends_nothing() {
    let broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());
    assert_eq!(create(&mut w, "poll", 1, &[], false).error_code, 0);

    // An empty partition: the fetch waits, then a produce on another connection wakes it.
    let bootstrap = broker.bootstrap();
    let waiter = std::thread::spawn(move || {
        let mut f = Wire::connect(&bootstrap);
        let started = Instant::now();
        let data = fetch(&mut f, "poll", 0, Duration::from_secs(20));
        (data, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // acks=0: no response at all; the next request's answer must not be confused with it.
    w.send(
        9,
        &ProduceRequest::default()
            .with_acks(0)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("poll"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(4, -1, -1, -1, Compression::None)))])]),
    );
    let versions = w.call(3, &ApiVersionsRequest::default());
    assert_eq!(
        versions.error_code, 0,
        "the response after an acks=0 produce belongs to the next request"
    );
    let (data, waited) = waiter.join().unwrap();
    assert_eq!(data.error_code, 0);
    assert!(
        waited < Duration::from_secs(10),
        "the long poll was not woken by the produce ({waited:?})"
    );
    assert!(
        data.records.as_ref().is_some_and(|r| !r.is_empty()),
        "woken fetch returned no records"
    );
    assert_eq!(data.high_watermark, 4);

    // min_bytes 0 answers at once, as in Kafka, even with a long max_wait.
    let started = Instant::now();
    let r = w.call(
        12,
        &FetchRequest::default()
            .with_max_wait_ms(5000)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("poll"))
                .with_partitions(vec![FetchPartition::default()
                    .with_fetch_offset(4)
                    .with_partition_max_bytes(1 << 20)])]),
    );
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "min_bytes=0 waited {:?}",
        started.elapsed()
    );

    // With nothing new, the fetch answers empty once max_wait passes.
    let started = Instant::now();
    let data = fetch(&mut w, "poll", 4, Duration::from_millis(300));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "returned before max_wait"
    );
    assert_eq!(data.error_code, 0);
    assert!(data.records.as_ref().is_none_or(|r| r.is_empty()));
}

#[test]
fn admin_requests_validate_only_ids_and_dynamic_configs() {
    let broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());

    // validate_only creates nothing; bad configs are refused with INVALID_CONFIG.
    let r = create(&mut w, "dry", 3, &[("retention.ms", "1000")], true);
    assert_eq!((r.error_code, r.num_partitions), (0, 3));
    let m = w.call(12, &MetadataRequest::default().with_topics(None));
    assert!(m.topics.is_empty(), "validate_only created a topic");
    let r = create(
        &mut w,
        "bad-config",
        1,
        &[("retention.ms", "forever")],
        false,
    );
    assert_eq!(r.error_code, ResponseError::InvalidConfig.code());
    let r = create(&mut w, "bad-config", 1, &[("no.such.setting", "1")], false);
    assert_eq!(r.error_code, ResponseError::InvalidConfig.code());
    let r = create(
        &mut w,
        "compacted",
        1,
        &[("cleanup.policy", "compact")],
        false,
    );
    assert_eq!(r.error_code, 0, "compacted topics are supported");
    let r = create(
        &mut w,
        "bad-ratio",
        1,
        &[("min.cleanable.dirty.ratio", "2")],
        false,
    );
    assert_eq!(r.error_code, ResponseError::InvalidConfig.code());

    // Topic ids: Metadata by id, DeleteTopics by id.
    let created = create(&mut w, "ids", 2, &[], false);
    assert_eq!(created.error_code, 0);
    assert!(!created.topic_id.is_nil());
    let m = w.call(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_topic_id(created.topic_id)
        ])),
    );
    assert_eq!(m.topics[0].name.as_ref().map(|n| n.0.as_str()), Some("ids"));
    assert_eq!(m.topics[0].partitions.len(), 2);
    let m = w.call(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_topic_id(Uuid::new_v4())
        ])),
    );
    assert_eq!(m.topics[0].error_code, ResponseError::UnknownTopicId.code());

    // CreatePartitions: validate_only changes nothing, shrinking is refused.
    let grow = |count: i32, validate_only: bool| {
        CreatePartitionsRequest::default()
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("ids"))
                .with_count(count)])
    };
    assert_eq!(w.call(3, &grow(4, true)).results[0].error_code, 0);
    assert_eq!(
        w.call(3, &grow(1, false)).results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    let m = w.call(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("ids")))
        ])),
    );
    assert_eq!(m.topics[0].partitions.len(), 2);
    assert_eq!(w.call(3, &grow(4, false)).results[0].error_code, 0);

    let r = w.call(
        6,
        &DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_topic_id(created.topic_id)
        ]),
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        r.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some("ids")
    );

    // DescribeCluster names this node as controller.
    let c = w.call(1, &DescribeClusterRequest::default());
    assert_eq!(c.error_code, 0);
    assert_eq!(c.controller_id.0, 1);
    assert_eq!(c.brokers.len(), 1);
    assert_eq!(c.cluster_id.len(), 22);
    // v2 asking for fenced brokers too: this node is registered and unfenced.
    let c = w.call(
        2,
        &DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .with_include_fenced_brokers(true),
    );
    assert_eq!(c.error_code, 0);
    assert_eq!(c.brokers.len(), 1);
    assert_eq!(c.brokers[0].broker_id.0, 1);
    assert!(!c.brokers[0].is_fenced);

    // A dynamic broker default changes what topics without an override report.
    assert_eq!(create(&mut w, "inherits", 1, &[], false).error_code, 0);
    let set = |op: i8, value: Option<&str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(text(""))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(text("log.retention.ms"))
                    .with_config_operation(op)
                    .with_value(value.map(text))]),
        ])
    };
    assert_eq!(
        w.call(1, &set(0, Some("3600000"))).responses[0].error_code,
        0
    );
    let retention = |w: &mut Wire| {
        let r = w.call(
            4,
            &DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(text("inherits"))
                    .with_configuration_keys(Some(vec![text("retention.ms")]))]),
        );
        let c = &r.results[0].configs[0];
        (c.value.as_ref().map(|v| v.to_string()), c.config_source)
    };
    assert_eq!(
        retention(&mut w),
        (Some("3600000".to_string()), 3),
        "dynamic default, source DYNAMIC_DEFAULT_BROKER_CONFIG"
    );
    // Node-level settings cannot change at run time; bad values are refused.
    let fixed = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(text("1"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(text("log.dirs"))
                .with_value(Some(text("/elsewhere")))]),
    ]);
    assert_eq!(
        w.call(1, &fixed).responses[0].error_code,
        ResponseError::InvalidRequest.code()
    );
    assert_eq!(
        w.call(1, &set(0, Some("soon"))).responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    // The dynamic value survives a restart, and DELETE returns to the default.
    drop(w);
    let mut broker = broker;
    broker.terminate();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap());
    assert_eq!(retention(&mut w).0.as_deref(), Some("3600000"));
    assert_eq!(w.call(1, &set(1, None)).responses[0].error_code, 0);
    assert_eq!(retention(&mut w), (Some("604800000".to_string()), 5));
}

/// Replication throttles (KIP-73): the topic lists accept only empty, `*` or
/// `partition:broker` pairs, refused otherwise with INVALID_CONFIG through CreateTopics,
/// AlterConfigs and IncrementalAlterConfigs; the rates are dynamic broker settings.
#[test]
fn replication_throttle_configs_are_validated() {
    let broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());
    const LEADER: &str = "leader.replication.throttled.replicas";
    const FOLLOWER: &str = "follower.replication.throttled.replicas";

    let r = create(&mut w, "throttle-bad", 1, &[(LEADER, "0-1")], false);
    assert_eq!(r.error_code, ResponseError::InvalidConfig.code());
    let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(
        message.contains(LEADER) && message.contains("partitionId:brokerId"),
        "{message}"
    );
    let r = create(&mut w, "throttle-bad", 1, &[(FOLLOWER, "*,0:1")], false);
    assert_eq!(r.error_code, ResponseError::InvalidConfig.code());
    let r = create(
        &mut w,
        "throttled",
        2,
        &[(LEADER, "0:1, 1:1"), (FOLLOWER, "*")],
        false,
    );
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);

    let alter_topic = |op: i8, key: &str, value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("throttled"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(text(key))
                    .with_config_operation(op)
                    .with_value(Some(text(value)))]),
        ])
    };
    let r = w.call(1, &alter_topic(0, LEADER, "all"));
    assert_eq!(
        r.responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    assert!(r.responses[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("partitionId:brokerId")));
    // APPEND keeps the list valid or is refused.
    assert_eq!(
        w.call(1, &alter_topic(2, LEADER, "1:2")).responses[0].error_code,
        0
    );
    assert_eq!(
        w.call(1, &alter_topic(2, FOLLOWER, "0:1")).responses[0].error_code,
        ResponseError::InvalidConfig.code(),
        "'*,0:1' is not a valid list"
    );
    // Legacy AlterConfigs validates the same way.
    let legacy = |value: &str| {
        AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("throttled"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(text(FOLLOWER))
                    .with_value(Some(text(value)))]),
        ])
    };
    assert_eq!(
        w.call(1, &legacy("0:x")).responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );

    let describe = |w: &mut Wire, resource_type: i8, name: &str, key: &str| {
        let r = w.call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(text(name))
                    .with_configuration_keys(Some(vec![text(key)])),
            ]),
        );
        let c = &r.results[0].configs[0];
        (c.value.as_ref().map(|v| v.to_string()), c.config_source)
    };
    assert_eq!(
        describe(&mut w, 2, "throttled", LEADER),
        (Some("0:1,1:1,1:2".to_string()), 1)
    );
    assert_eq!(
        describe(&mut w, 2, "throttled", FOLLOWER).0.as_deref(),
        Some("*")
    );
    assert_eq!(create(&mut w, "unthrottled", 1, &[], false).error_code, 0);
    assert_eq!(
        describe(&mut w, 2, "unthrottled", LEADER),
        (Some(String::new()), 5),
        "empty by default"
    );

    // The rates: dynamic, per broker id or cluster default, LONG from 0.
    let rate = |name: &str, value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(text(name))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(text("leader.replication.throttled.rate"))
                    .with_config_operation(0)
                    .with_value(Some(text(value)))]),
        ])
    };
    assert_eq!(
        describe(&mut w, 4, "1", "leader.replication.throttled.rate")
            .0
            .as_deref(),
        Some("9223372036854775807")
    );
    assert_eq!(
        w.call(1, &rate("1", "-1")).responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    assert_eq!(w.call(1, &rate("1", "1048576")).responses[0].error_code, 0);
    assert_eq!(
        describe(&mut w, 4, "1", "leader.replication.throttled.rate")
            .0
            .as_deref(),
        Some("1048576")
    );
    assert_eq!(w.call(1, &rate("", "0")).responses[0].error_code, 0);
    assert_eq!(
        describe(&mut w, 4, "", "leader.replication.throttled.rate")
            .0
            .as_deref(),
        Some("0")
    );
    let log = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
    assert!(
        log.contains("replication throttle rates"),
        "the broker logs rate changes"
    );
}
