//! The broker on its embedded metadata quorum (`process.roles=broker,controller`, one node):
//! acknowledged admin changes survive kill -9 with their ids, `isthmus format` and its
//! refusals, the import of a data directory written by the single-node store, and admin
//! refusals from the controller's rules answered with Kafka's error codes.

mod common;
mod wire;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, TestBroker};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use uuid::Uuid;
use wire::{batch, produce, Wire};

fn isthmus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isthmus"))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn name(s: &str) -> TopicName {
    TopicName(text(s))
}

fn new_topic(topic: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(text(k))
                        .with_value(Some(text(v)))
                })
                .collect(),
        )
}

fn create(w: &mut Wire, topic: CreatableTopic) -> create_topics_response::CreatableTopicResult {
    let r = w.call(7, &CreateTopicsRequest::default().with_topics(vec![topic]));
    r.topics[0].clone()
}

/// Per partition: (leader, leader epoch, replicas, ISR).
type Described = Vec<(i32, i32, Vec<i32>, Vec<i32>)>;

fn metadata(w: &mut Wire) -> MetadataResponse {
    w.call(12, &MetadataRequest::default().with_topics(None))
}

fn topic_of(md: &MetadataResponse, topic: &str) -> Option<(Uuid, Described)> {
    md.topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.leader_id.0,
                        p.leader_epoch,
                        p.replica_nodes.iter().map(|b| b.0).collect(),
                        p.isr_nodes.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            (t.topic_id, parts)
        })
}

fn config_value(w: &mut Wire, resource_type: i8, resource: &str, key: &str) -> Option<String> {
    let r = w.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(resource))
            .with_configuration_keys(Some(vec![text(key)]))]),
    );
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    r.results[0].configs[0]
        .value
        .as_ref()
        .map(|v| v.to_string())
}

fn set_config(w: &mut Wire, resource_type: i8, resource: &str, key: &str, value: &str) -> i16 {
    let r = w.call(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(text(resource))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(text(key))
                    .with_config_operation(0)
                    .with_value(Some(text(value)))]),
        ]),
    );
    r.responses[0].error_code
}

fn producer_id(w: &mut Wire) -> i64 {
    let r = w.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(r.error_code, 0);
    r.producer_id.0
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// An `isthmus` process on `port` with `args`; waits until the port accepts connections.
fn spawn(port: u16, args: &[&str], log: &Path) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = isthmus()
        .args(["--listeners", &format!("PLAINTEXT://127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + common::START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "isthmus exited ({status}) during startup:\n{}",
                common::file_tail(log, 40)
            );
        }
        assert!(Instant::now() < deadline, "isthmus did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn sigterm(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn acknowledged_admin_changes_survive_kill_9_with_their_ids() {
    let mut broker = TestBroker::start(&[("broker.rack", "site-a")]);
    let mut w = Wire::connect(&broker.bootstrap());
    let a = create(
        &mut w,
        new_topic("orders", 3, 1, &[("retention.ms", "3600000")]),
    );
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    assert_eq!(a.replication_factor, 1);
    assert_eq!(create(&mut w, new_topic("gone", 1, 1, &[])).error_code, 0);
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("orders"))
            .with_count(5)])
        .with_timeout_ms(10_000);
    assert_eq!(w.call(3, &grow).results[0].error_code, 0);
    assert_eq!(set_config(&mut w, 2, "orders", "segment.ms", "7200000"), 0);
    assert_eq!(
        set_config(&mut w, 4, "", "log.retention.bytes", "1000000000"),
        0
    );
    let deleted = w.call(
        5,
        &DeleteTopicsRequest::default().with_topic_names(vec![name("gone")]),
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    let r = produce(
        &mut w,
        "orders",
        4,
        batch(3, -1, -1, -1, Compression::None),
        -1,
    );
    assert_eq!(r.error_code, 0);
    let first_pid = producer_id(&mut w);
    let md = metadata(&mut w);
    let (orders_id, partitions) = topic_of(&md, "orders").expect("orders listed");
    assert_eq!(partitions.len(), 5);
    for (leader, epoch, replicas, isr) in &partitions {
        assert_eq!((*leader, *epoch), (1, 0));
        assert_eq!((replicas.as_slice(), isr.as_slice()), (&[1][..], &[1][..]));
    }
    assert_eq!(md.controller_id.0, 1);
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(
        md.brokers[0]
            .rack
            .as_ref()
            .map(|r| r.to_string())
            .as_deref(),
        Some("site-a")
    );
    drop(w);

    broker.kill();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap());
    let md = metadata(&mut w);
    let (id, partitions) = topic_of(&md, "orders").expect("orders lost by kill -9");
    assert_eq!(id, orders_id, "the topic id changed across kill -9");
    assert_eq!(partitions.len(), 5);
    assert!(topic_of(&md, "gone").is_none(), "a deleted topic came back");
    assert!(!broker.data_dir().join("gone-0").exists());
    assert_eq!(
        config_value(&mut w, 2, "orders", "retention.ms").as_deref(),
        Some("3600000")
    );
    assert_eq!(
        config_value(&mut w, 2, "orders", "segment.ms").as_deref(),
        Some("7200000")
    );
    assert_eq!(
        config_value(&mut w, 4, "1", "log.retention.bytes").as_deref(),
        Some("1000000000")
    );
    let r = produce(
        &mut w,
        "orders",
        4,
        batch(1, -1, -1, -1, Compression::None),
        -1,
    );
    assert_eq!((r.error_code, r.base_offset), (0, 3));
    let second_pid = producer_id(&mut w);
    assert!(
        second_pid > first_pid,
        "producer id {second_pid} handed out again after kill -9 (first run: {first_pid})"
    );
    // The restarted process registered a new incarnation and is the only live broker.
    let c = w.call(1, &DescribeClusterRequest::default());
    assert_eq!(
        (c.error_code, c.controller_id.0, c.brokers.len()),
        (0, 1, 1)
    );
}

#[test]
fn controller_rules_answer_with_kafka_error_codes() {
    let broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());
    let assigned = |replicas: &[&[i32]]| {
        CreatableTopic::default()
            .with_name(name("assigned"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                replicas
                    .iter()
                    .enumerate()
                    .map(|(p, r)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(p as i32)
                            .with_broker_ids(r.iter().copied().map(BrokerId).collect())
                    })
                    .collect(),
            )
    };
    let cases: Vec<(CreatableTopic, ResponseError)> = vec![
        (
            new_topic("rf3", 1, 3, &[]),
            ResponseError::InvalidReplicationFactor,
        ),
        (
            new_topic("negative", -5, 1, &[]),
            ResponseError::InvalidPartitions,
        ),
        (
            new_topic("cfg", 1, 1, &[("no.such.config", "1")]),
            ResponseError::InvalidConfig,
        ),
        (
            new_topic("cfg2", 1, 1, &[("retention.ms", "soon")]),
            ResponseError::InvalidConfig,
        ),
        (assigned(&[&[7]]), ResponseError::InvalidReplicaAssignment),
        (
            assigned(&[&[1, 1]]),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            new_topic("bad/name", 1, 1, &[]),
            ResponseError::InvalidTopicException,
        ),
        (
            new_topic("huge", 10_001, 1, &[]),
            ResponseError::InvalidPartitions,
        ),
    ];
    for (topic, expected) in cases {
        let shown = topic.name.0.to_string();
        let r = create(&mut w, topic);
        assert_eq!(
            r.error_code,
            code(expected),
            "{shown}: {:?}",
            r.error_message
        );
        assert!(r.error_message.is_some(), "{shown}: no message");
    }
    let ok = create(&mut w, assigned(&[&[1], &[1]]));
    assert_eq!(ok.error_code, 0, "{:?}", ok.error_message);
    assert_eq!(ok.num_partitions, 2);
    assert_eq!(
        create(&mut w, assigned(&[&[1]])).error_code,
        code(ResponseError::TopicAlreadyExists)
    );
    let grow = |assignment: Vec<i32>| {
        CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("assigned"))
                .with_count(3)
                .with_assignments(Some(vec![CreatePartitionsAssignment::default()
                    .with_broker_ids(
                        assignment.into_iter().map(BrokerId).collect(),
                    )]))])
            .with_timeout_ms(10_000)
    };
    assert_eq!(
        w.call(3, &grow(vec![9])).results[0].error_code,
        code(ResponseError::InvalidReplicaAssignment)
    );
    assert_eq!(w.call(3, &grow(vec![1])).results[0].error_code, 0);
    let md = metadata(&mut w);
    assert_eq!(topic_of(&md, "assigned").unwrap().1.len(), 3);
    // Nothing of the refused topics reached the metadata or the disk.
    for refused in ["rf3", "negative", "cfg", "cfg2", "huge"] {
        assert!(topic_of(&md, refused).is_none(), "{refused} was created");
        assert!(!broker.data_dir().join(format!("{refused}-0")).exists());
    }
}

#[test]
fn format_initialises_a_node_and_refuses_what_it_must_not_touch() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let log = root.path().join("isthmus.log");
    let data_arg = data.to_str().unwrap().to_string();

    let out = isthmus().arg("random-uuid").output().unwrap();
    assert!(out.status.success());
    let cluster_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(cluster_id.len(), 22, "{cluster_id}");

    let format = |id: &str| {
        isthmus()
            .args(["format", "--cluster-id", id, "--log.dirs", &data_arg])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = format("bad id!");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cluster id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !data.join("metadata").exists(),
        "a refused format wrote metadata"
    );

    let out = format(&cluster_id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join("metadata").join("meta.json").exists());
    let props = std::fs::read_to_string(data.join("meta.properties")).unwrap();
    assert!(
        props.contains(&format!("cluster.id={cluster_id}")),
        "{props}"
    );

    let out = format(&cluster_id);
    assert!(!out.status.success(), "formatting twice must be refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The node starts on the formatted directory and reports its cluster id.
    let port = free_port();
    let child = spawn(port, &["--log.dirs", &data_arg], &log);
    let mut w = Wire::connect(&format!("127.0.0.1:{port}"));
    let c = w.call(1, &DescribeClusterRequest::default());
    assert_eq!(c.cluster_id.to_string(), cluster_id);
    assert_eq!(create(&mut w, new_topic("kept", 1, 1, &[])).error_code, 0);
    drop(w);
    sigterm(child);

    // Log dirs of another cluster are refused by format, and nothing is written.
    let foreign = root.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(
        foreign.join("meta.properties"),
        "version=1\nnode.id=1\ncluster.id=someone-else\n",
    )
    .unwrap();
    let out = isthmus()
        .args(["format", "--cluster-id", &cluster_id])
        .args(["--log.dirs", foreign.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cluster-id someone-else"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!foreign.join("metadata").exists());

    // A metadata directory that is neither formatted nor empty is never formatted by the
    // node itself.
    let other = root.path().join("other");
    std::fs::create_dir_all(other.join("metadata")).unwrap();
    std::fs::write(other.join("metadata").join("notes.txt"), b"x").unwrap();
    let out = isthmus()
        .args(["--listeners", "PLAINTEXT://127.0.0.1:0"])
        .args(["--log.dirs", other.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not formatted") && stderr.contains("isthmus format"),
        "{stderr}"
    );
    assert!(other.join("metadata").join("notes.txt").exists());

    // A broker-only node without voters is refused with what to change.
    let out = isthmus()
        .args([
            "--process.roles",
            "broker",
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
            "--log.dirs",
            &data_arg,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs controller.quorum.voters"));
}

/// A data directory written by the single-node store (metadata/image.json and
/// metadata/producer-id-block next to the partitions) is imported at the first start:
/// same topic ids, partition counts, configs and data; producer ids past the old ones.
#[test]
fn a_single_node_store_directory_is_imported() {
    let mut broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());
    assert_eq!(
        create(
            &mut w,
            new_topic("legacy.t", 2, 1, &[("retention.ms", "123456")])
        )
        .error_code,
        0
    );
    let r = produce(
        &mut w,
        "legacy.t",
        1,
        batch(5, -1, -1, -1, Compression::None),
        -1,
    );
    assert_eq!(r.error_code, 0);
    let (id, _) = topic_of(&metadata(&mut w), "legacy.t").unwrap();
    drop(w);
    broker.terminate();

    // Rewrite the metadata as the single-node store kept it.
    let data = broker.data_dir();
    std::fs::remove_dir_all(data.join("metadata")).unwrap();
    std::fs::create_dir(data.join("metadata")).unwrap();
    let image = serde_json::json!({
        "revision": 7,
        "topics": {"legacy.t": {"name": "legacy.t", "id": id, "partitions": 2,
            "configs": {"retention.ms": "123456"}, "leader_epoch": 0}},
        "broker_configs": {"log.retention.ms": "3600000"}
    });
    std::fs::write(
        data.join("metadata").join("image.json"),
        serde_json::to_vec_pretty(&image).unwrap(),
    )
    .unwrap();
    std::fs::write(data.join("metadata").join("producer-id-block"), b"5000").unwrap();

    broker.restart();
    assert!(
        broker
            .log_tail(200)
            .contains("imported the single-node metadata"),
        "{}",
        broker.log_tail(60)
    );
    let check = |broker: &TestBroker, next_offset: i64| {
        let mut w = Wire::connect(&broker.bootstrap());
        let (got, partitions) = topic_of(&metadata(&mut w), "legacy.t").expect("topic imported");
        assert_eq!(got, id, "the imported topic got a new id");
        assert_eq!(partitions.len(), 2);
        assert_eq!(
            config_value(&mut w, 2, "legacy.t", "retention.ms").as_deref(),
            Some("123456")
        );
        assert_eq!(
            config_value(&mut w, 4, "", "log.retention.ms").as_deref(),
            Some("3600000")
        );
        let r = produce(
            &mut w,
            "legacy.t",
            1,
            batch(1, -1, -1, -1, Compression::None),
            -1,
        );
        assert_eq!((r.error_code, r.base_offset), (0, next_offset), "data lost");
        let pid = producer_id(&mut w);
        assert!(
            pid >= 5000,
            "producer id {pid} may repeat one handed out before"
        );
    };
    check(&broker, 5);
    assert!(data.join("metadata").join("meta.json").exists());
    assert!(data
        .join("metadata-legacy.imported")
        .join("image.json")
        .exists());
    assert!(!data.join("metadata-legacy").exists());
    // A second start does not import again.
    broker.terminate();
    broker.restart();
    check(&broker, 6);
}

#[test]
fn describe_quorum_reports_the_single_voter() {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    let broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());
    let versions = w.call(3, &ApiVersionsRequest::default());
    let quorum = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == 55)
        .expect("DescribeQuorum advertised");
    assert_eq!((quorum.min_version, quorum.max_version), (0, 2));
    assert_eq!(create(&mut w, new_topic("q", 1, 1, &[])).error_code, 0);
    let ask = |topic: &str, partition: i32| {
        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(name(topic))
            .with_partitions(vec![
                PartitionData::default().with_partition_index(partition)
            ])])
    };
    let r = w.call(2, &ask("__cluster_metadata", 0));
    assert_eq!(r.error_code, 0);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    assert_eq!(p.leader_id.0, 1);
    assert!(p.leader_epoch >= 1);
    // Registration, unfencing and the topic are committed entries.
    assert!(p.high_watermark >= 4, "high watermark {}", p.high_watermark);
    assert_eq!(p.current_voters.len(), 1);
    assert_eq!(p.current_voters[0].replica_id.0, 1);
    assert!(p.current_voters[0].log_end_offset >= p.high_watermark);
    assert!(p.observers.is_empty());
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].listeners[0].port, 9093);
    for (topic, partition) in [("__cluster_metadata", 1), ("orders", 0)] {
        let r = w.call(1, &ask(topic, partition));
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            code(ResponseError::UnknownTopicOrPartition),
            "{topic}-{partition}"
        );
    }
}

/// `metadata.log.dir` outside `log.dirs` holds the quorum (with its own meta.properties and
/// lock); pointing it at an empty folder while the log dirs hold partitions is refused.
#[test]
fn a_separate_metadata_log_dir_holds_the_quorum() {
    let root = tempfile::tempdir().unwrap();
    let (data, meta) = (root.path().join("data"), root.path().join("meta"));
    let log = root.path().join("isthmus.log");
    let args = |meta: &Path| {
        vec![
            "--log.dirs".to_string(),
            data.to_str().unwrap().to_string(),
            "--metadata.log.dir".to_string(),
            meta.to_str().unwrap().to_string(),
        ]
    };
    let port = free_port();
    let first = args(&meta);
    let child = spawn(
        port,
        &first.iter().map(String::as_str).collect::<Vec<_>>(),
        &log,
    );
    let mut w = Wire::connect(&format!("127.0.0.1:{port}"));
    assert_eq!(create(&mut w, new_topic("m", 1, 1, &[])).error_code, 0);
    drop(w);
    sigterm(child);
    assert!(meta.join("metadata").join("meta.json").exists());
    assert!(meta.join("meta.properties").exists());
    assert!(!data.join("metadata").exists());
    assert!(data.join("m-0").exists());

    let elsewhere = args(&root.path().join("empty"));
    let out = isthmus()
        .args(["--listeners", "PLAINTEXT://127.0.0.1:0"])
        .args(&elsewhere)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("hold partitions but no metadata"),
        "{stderr}"
    );
    assert!(data.join("m-0").exists(), "data touched by a refused start");
}
