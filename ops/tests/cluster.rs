//! The multi-broker cluster, with real processes and real clients (librdkafka through the
//! rdkafka crate, and isthmusctl):
//!
//! - separate controllers and brokers (3 + 4 on racks a, a, b, b; and 3 + 3) and combined
//!   nodes (3 × broker,controller) form a cluster; RF=3 spreads over both racks with
//!   leaders balanced;
//! - kill -9 of the active controller: another is elected and topic creation goes on; the
//!   restarted controller catches up;
//! - kill -9 of a broker under librdkafka load: new leaders from the ISR, producers and
//!   consumers follow them; the restarted broker re-registers with a new incarnation and
//!   gets its preferred leaderships back;
//! - a burst of 200 topic creations and deletions leaves every broker at the same revision;
//! - bad input: impossible replication factors and assignments, bad configs, a second
//!   broker claiming a live broker's id, a controller whose voters disagree with its store.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::kafka::{admin, block, create_topics, partitions, PartitionView};
use common::{cluster_base_port, ctl, free_port, isthmus_binary, wait_for};
use isthmus_ops::local_cluster::{parse_sites, Layout, LocalCluster};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

/// Cluster settings that keep the tests short: fencing after 3 s without heartbeats and a
/// preferred-leader check every 2 s.
const SESSION_TIMEOUT_MS: u64 = 3000;

fn fast_settings() -> Vec<(String, String)> {
    vec![
        (
            "broker.session.timeout.ms".into(),
            SESSION_TIMEOUT_MS.to_string(),
        ),
        ("broker.heartbeat.interval.ms".into(), "500".into()),
        ("leader.imbalance.check.interval.seconds".into(), "2".into()),
    ]
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("isthmus-ops-cluster-")
        .tempdir()
        .expect("temporary folder")
}

fn start(controllers: &str, brokers: &str, combined: &str) -> (tempfile::TempDir, LocalCluster) {
    let dir = temp_dir();
    let sites = |s: &str| {
        if s.is_empty() {
            Vec::new()
        } else {
            parse_sites(s).unwrap()
        }
    };
    let layout = Layout {
        controllers: sites(controllers),
        brokers: sites(brokers),
        combined: sites(combined),
        base_port: cluster_base_port(),
        settings: fast_settings(),
        hosts: Default::default(),
    };
    let cluster = LocalCluster::start(&layout, dir.path(), &isthmus_binary())
        .unwrap_or_else(|e| panic!("starting {controllers}/{brokers}/{combined}: {e}"));
    (dir, cluster)
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    let outcome = create_topics(
        bootstrap,
        &[NewTopic::new(name, partitions, TopicReplication::Fixed(rf))],
    );
    assert_eq!(outcome, vec![Ok(name.to_string())]);
}

fn quorum_status(bootstrap: &str) -> Option<Value> {
    let out = ctl(bootstrap, &["quorum", "status", "--json"]);
    serde_json::from_str(&out.stdout).ok()
}

fn rack_of(cluster: &LocalCluster, id: i32) -> String {
    cluster
        .node(id)
        .map(|n| n.rack.clone())
        .unwrap_or_else(|| panic!("node {id} is not in the layout"))
}

/// Every partition's replicas cover both racks, and leaders are spread within one of an
/// even share.
fn assert_rack_spread_and_balanced(cluster: &LocalCluster, parts: &[PartitionView]) {
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for p in parts {
        let racks: BTreeSet<String> = p.replicas.iter().map(|r| rack_of(cluster, *r)).collect();
        assert_eq!(racks.len(), 2, "partition {p:?} must span racks a and b");
        *leaders.entry(p.leader).or_default() += 1;
    }
    let brokers = cluster
        .nodes()
        .iter()
        .filter(|n| n.role.is_broker())
        .count();
    let share = parts.len() / brokers;
    assert_eq!(
        leaders.len(),
        brokers,
        "every broker leads some: {leaders:?}"
    );
    for (b, n) in &leaders {
        assert!(
            (share.saturating_sub(1)..=share + 1).contains(n),
            "broker {b} leads {n} of {} partitions: {leaders:?}",
            parts.len()
        );
    }
}

fn round_trip(bootstrap: &str, topic: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    producer
        .send(BaseRecord::to(topic).partition(0).key("k").payload("hello"))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(20)).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "round-trip")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let got = wait_for(
        "the record back",
        Duration::from_secs(20),
        || match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => Some(m.payload().map(|p| p.to_vec())),
            _ => None,
        },
    );
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
}

#[test]
fn separate_controllers_and_brokers_spread_replicas_over_racks() {
    let (_dir, cluster) = start("a:2,b:1", "a:2,b:2", "");
    let bootstrap = cluster.bootstrap_servers();
    create_topic(&bootstrap, "spread", 12, 3);
    let parts = wait_for(
        "leaders for every partition",
        Duration::from_secs(20),
        || partitions(&bootstrap, "spread").filter(|ps| ps.iter().all(|p| p.leader >= 0)),
    );
    assert_eq!(parts.len(), 12);
    assert_rack_spread_and_balanced(&cluster, &parts);
    round_trip(&bootstrap, "spread");
}

#[test]
fn three_plus_three_and_combined_nodes_form_clusters() {
    for (controllers, brokers, combined) in [("a:2,b:1", "a:2,b:1", ""), ("", "", "a:2,b:1")] {
        let (_dir, cluster) = start(controllers, brokers, combined);
        let bootstrap = cluster.bootstrap_servers();
        create_topic(&bootstrap, "formed", 6, 3);
        let parts = wait_for("leaders", Duration::from_secs(20), || {
            partitions(&bootstrap, "formed").filter(|ps| ps.iter().all(|p| p.leader >= 0))
        });
        for p in &parts {
            let racks: BTreeSet<String> =
                p.replicas.iter().map(|r| rack_of(&cluster, *r)).collect();
            assert_eq!(racks.len(), 2, "{p:?}");
            assert_eq!(p.isr.len(), 3, "{p:?}");
        }
        round_trip(&bootstrap, "formed");
        let q = quorum_status(&bootstrap).expect("quorum status");
        assert_eq!(q["voters"].as_array().map(Vec::len), Some(3), "{q}");
    }
}

#[test]
fn killing_the_active_controller_elects_another_and_it_catches_up_after_restart() {
    let (_dir, mut cluster) = start("a:2,b:1", "a:1,b:1", "");
    let bootstrap = cluster.bootstrap_servers();
    create_topic(&bootstrap, "before", 2, 2);
    let q = quorum_status(&bootstrap).expect("quorum status");
    let leader = q["leader_id"].as_i64().expect("a leader") as i32;
    cluster.kill(leader).unwrap();
    let killed = Instant::now();
    // Bounded, not timed: the election timeout is 1–2 s; creation must resume well
    // within a few of them.
    let created = wait_for(
        "a topic created after the kill",
        Duration::from_secs(15),
        || {
            let outcome = create_topics(
                &bootstrap,
                &[NewTopic::new("after", 2, TopicReplication::Fixed(2))],
            );
            match &outcome[0] {
                Ok(_) | Err(RDKafkaErrorCode::TopicAlreadyExists) => Some(killed.elapsed()),
                Err(_) => None,
            }
        },
    );
    eprintln!("topic creation resumed {created:?} after the active controller was killed");
    let q = quorum_status(&bootstrap).expect("quorum status");
    assert_ne!(q["leader_id"].as_i64(), Some(leader as i64), "{q}");

    cluster.restart(leader).unwrap_or_else(|e| panic!("{e}"));
    create_topic(&bootstrap, "later", 1, 2);
    wait_for(
        "the restarted controller caught up",
        Duration::from_secs(20),
        || {
            let q = quorum_status(&bootstrap)?;
            let me = q["voters"]
                .as_array()?
                .iter()
                .find(|v| v["id"].as_i64() == Some(leader as i64))?
                .clone();
            (me["lag"].as_i64() == Some(0)).then_some(())
        },
    );
}

/// A producer sending to every partition in the background until finished; finishing
/// asserts that everything sent was delivered (librdkafka retried against new leaders).
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<Result<(), String>>>,
}

impl Load {
    fn start(bootstrap: &str, topic: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("message.timeout.ms", "60000")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let (s, n, topic) = (stop.clone(), sent.clone(), topic.to_string());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let value = format!("v{}", n.load(Ordering::Relaxed));
                if producer
                    .send(BaseRecord::<str, str>::to(&topic).payload(&value))
                    .is_ok()
                {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                producer.poll(Duration::from_millis(2));
            }
            producer
                .flush(Duration::from_secs(60))
                .map_err(|e| e.to_string())
        });
        Load {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Stops sending and waits until everything sent is delivered.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let flushed = self.thread.take().map(|t| t.join().unwrap());
        assert_eq!(
            flushed,
            Some(Ok(())),
            "records sent across the failover not delivered"
        );
        self.sent.load(Ordering::Relaxed)
    }
}

/// Produces `count` records with `prefix` to every partition, each delivery confirmed;
/// returns the values per partition.
fn produce_confirmed(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    prefix: &str,
) -> BTreeMap<i32, String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let mut values = BTreeMap::new();
    for p in 0..partitions {
        let value = format!("{prefix}-{p}");
        producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .partition(p)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        values.insert(p, value);
    }
    producer
        .flush(Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("records after the failover not delivered: {e}"));
    values
}

#[test]
fn killing_a_broker_moves_leaders_and_clients_follow_then_it_comes_back() {
    let (_dir, mut cluster) = start("a:2,b:1", "a:2,b:2", "");
    let bootstrap = cluster.bootstrap_servers();
    let topic = "moving";
    let count = 8;
    create_topic(&bootstrap, topic, count, 3);
    let before = wait_for("leaders", Duration::from_secs(20), || {
        partitions(&bootstrap, topic).filter(|ps| ps.iter().all(|p| p.leader >= 0))
    });
    let load = Load::start(&bootstrap, topic);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "follower-check")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    // Start at each partition's log end as ListOffsets gives it now: explicit offsets, so
    // the consumer is positioned before the failover whenever librdkafka gets to it
    // (its own "End" is resolved lazily, and its position() stays unset until a record
    // is consumed).
    let mut tpl = TopicPartitionList::new();
    for p in 0..count {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("log end of partition {p}: {e}"));
        tpl.add_partition_offset(topic, p, Offset::Offset(high))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();

    // The broker leading the most partitions dies.
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for p in &before {
        *led.entry(p.leader).or_default() += 1;
    }
    let victim = *led.iter().max_by_key(|(_, n)| **n).unwrap().0;
    let first_incarnation = registration_line(&cluster, victim);
    let survivors: String = cluster
        .nodes()
        .iter()
        .filter(|n| n.role.is_broker() && n.id != victim)
        .filter_map(|n| n.client_addr.map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(",");
    cluster.kill(victim).unwrap();
    let killed = Instant::now();
    let after = wait_for("new leaders from the ISR", Duration::from_secs(20), || {
        partitions(&survivors, topic)
            .filter(|ps| ps.iter().all(|p| p.leader >= 0 && p.leader != victim))
    });
    let moved_in = killed.elapsed();
    eprintln!(
        "{} partitions of broker {victim} had new leaders {moved_in:?} after kill -9",
        led[&victim]
    );
    assert!(
        moved_in < Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(10),
        "leaders moved only after {moved_in:?}"
    );
    for (b, a) in before.iter().zip(&after) {
        if b.leader == victim {
            assert!(
                b.isr.contains(&a.leader),
                "new leader from the ISR: {b:?} -> {a:?}"
            );
        }
        assert!(!a.isr.contains(&victim), "{a:?}");
    }

    // librdkafka follows: records sent now reach every partition and are read back.
    let sent = produce_confirmed(&bootstrap, topic, count, "after-failover");
    let mut seen: BTreeSet<String> = BTreeSet::new();
    wait_for(
        "the consumer reads records sent after the failover",
        Duration::from_secs(40),
        || {
            // Bounded per round: the background load keeps records coming.
            for _ in 0..500 {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        if let Some(Ok(v)) = m.payload_view::<str>() {
                            seen.insert(v.to_string());
                        }
                    }
                    _ => break,
                }
            }
            sent.values().all(|v| seen.contains(v)).then_some(())
        },
    );
    let delivered = load.finish();
    assert!(delivered > 0);

    // The broker comes back as a new incarnation and gets its preferred leaderships back.
    cluster.restart(victim).unwrap_or_else(|e| panic!("{e}"));
    let second_incarnation = wait_for("its new registration", Duration::from_secs(30), || {
        let line = registration_line(&cluster, victim);
        (line != first_incarnation).then_some(line)
    });
    assert!(
        second_incarnation.contains("incarnation="),
        "{second_incarnation}"
    );
    wait_for("preferred leaders again", Duration::from_secs(30), || {
        partitions(&bootstrap, topic).filter(|ps| {
            ps.iter()
                .all(|p| p.leader == p.replicas[0] && p.isr.len() == p.replicas.len())
        })
    });

    // A clean stop is a controlled shutdown: leadership moves before the process exits.
    let status = cluster
        .terminate(victim)
        .expect("terminate")
        .expect("it was running");
    assert!(status.success(), "{status}");
    assert!(
        cluster
            .log_tail(victim, 50)
            .contains("controlled shutdown complete: this broker leads nothing"),
        "{}",
        cluster.log_tail(victim, 50)
    );
    wait_for(
        "leaders away from the stopped broker",
        Duration::from_secs(5),
        || {
            partitions(&survivors, topic)
                .filter(|ps| ps.iter().all(|p| p.leader >= 0 && p.leader != victim))
        },
    );
}

/// The last "registered this broker" line of node `id`'s log (epoch and incarnation).
fn registration_line(cluster: &LocalCluster, id: i32) -> String {
    cluster
        .log_tail(id, 400)
        .lines()
        .rfind(|l| l.contains("registered this broker"))
        .map(|l| {
            l.split_once("registered this broker")
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

#[test]
fn every_broker_reaches_the_same_revision_after_a_burst_of_creations_and_deletions() {
    let (_dir, cluster) = start("a:2,b:1", "a:2,b:2", "");
    let brokers: Vec<String> = cluster
        .nodes()
        .iter()
        .filter_map(|n| n.client_addr.map(|a| a.to_string()))
        .collect();
    // 100 creations and 100 deletions, ten per request, sent to every broker in turn.
    let names: Vec<String> = (0..100).map(|i| format!("burst-{i}")).collect();
    for (i, chunk) in names.chunks(10).enumerate() {
        let topics: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(2)))
            .collect();
        let outcome = create_topics(&brokers[i % brokers.len()], &topics);
        assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for (i, chunk) in names.chunks(10).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let outcome = block(admin(&brokers[(i + 1) % brokers.len()]).delete_topics(&refs, &opts))
            .expect("DeleteTopics answered");
        assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
    }
    // Every broker (an observer of the quorum) pulled up to the leader's log end, and
    // each one's Metadata has the same topics.
    let bootstrap = cluster.bootstrap_servers();
    wait_for(
        "every broker at the leader's revision",
        Duration::from_secs(20),
        || {
            let q = quorum_status(&bootstrap)?;
            let leader_end = q["high_watermark"].as_i64()?;
            let observers = q["observers"].as_array()?;
            (observers.len() == 4
                && observers
                    .iter()
                    .all(|o| o["log_end_offset"].as_i64() == Some(leader_end)))
            .then_some(())
        },
    );
    let topic_sets: Vec<BTreeSet<String>> = brokers
        .iter()
        .map(|b| {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", b)
                .create()
                .unwrap();
            let md = consumer
                .fetch_metadata(None, Duration::from_secs(10))
                .unwrap();
            md.topics()
                .iter()
                .map(|t| t.name().to_string())
                .filter(|n| n.starts_with("burst-"))
                .collect()
        })
        .collect();
    assert!(topic_sets.iter().all(BTreeSet::is_empty), "{topic_sets:?}");
}

#[test]
fn bad_cluster_input_gets_kafka_errors_and_clear_refusals() {
    let (dir, cluster) = start("a:2,b:1", "a:1,b:1", "");
    let bootstrap = cluster.bootstrap_servers();
    let codes = create_topics(
        &bootstrap,
        &[
            NewTopic::new("too-many-replicas", 1, TopicReplication::Fixed(3)),
            NewTopic::new(
                "unknown-broker",
                1,
                TopicReplication::Variable(&[&[101, 999]]),
            ),
            NewTopic::new("bad-config", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
            NewTopic::new("unknown-config", 1, TopicReplication::Fixed(1))
                .set("no.such.setting", "1"),
        ],
    );
    assert_eq!(
        codes,
        vec![
            Err(RDKafkaErrorCode::InvalidReplicationFactor),
            Err(RDKafkaErrorCode::InvalidReplicaAssignment),
            Err(RDKafkaErrorCode::InvalidConfig),
            Err(RDKafkaErrorCode::InvalidConfig),
        ]
    );
    // Negative partition counts go over the raw client (librdkafka refuses them itself).
    let out = ctl(
        &bootstrap,
        &[
            "topics",
            "create",
            "--topic",
            "negative",
            "--partitions",
            "-3",
        ],
    );
    assert_ne!(out.code(), Some(0), "{}", out.describe());

    // A second broker claiming live broker 101's id is refused and stops with a message.
    let plan = cluster.plan();
    let node = plan.node(101).unwrap().clone();
    let twin_dir = dir.path().join("twin");
    std::fs::create_dir_all(&twin_dir).unwrap();
    let twin_port = free_port();
    let config = plan
        .config_toml(&node)
        .replace(
            &node.client_addr().unwrap().to_string(),
            &format!("127.0.0.1:{twin_port}"),
        )
        .replace(
            &plan.data_dir(101).display().to_string(),
            &twin_dir.join("data").display().to_string(),
        )
        .replace(
            &plan.metadata_dir(101).display().to_string(),
            &twin_dir.join("data").display().to_string(),
        );
    let twin_config = twin_dir.join("isthmus.toml");
    std::fs::write(&twin_config, config).unwrap();
    let isthmus = isthmus_binary();
    let formatted = Command::new(&isthmus)
        .arg("format")
        .arg(format!("--cluster-id={}", cluster.cluster_id()))
        .arg("--config")
        .arg(&twin_config)
        .env_remove("ISTHMUS_CONFIG")
        .output()
        .unwrap();
    assert!(formatted.status.success(), "{formatted:?}");
    let twin = run_bounded(
        Command::new(&isthmus).arg("--config").arg(&twin_config),
        Duration::from_secs(60),
    );
    assert!(!twin.0, "the twin broker must not run");
    assert!(
        twin.1
            .contains("another running broker is registered as node.id 101"),
        "{}",
        twin.1
    );

    // A controller whose voter list disagrees with its stored one refuses to start.
    let controller = plan.node(3).unwrap().clone();
    let wrong = plan.config_toml(&controller).replace(
        &plan.voters(),
        &format!("{},9@127.0.0.1:{}", plan.voters(), free_port()),
    );
    let wrong_config = dir.path().join("wrong-voters.toml");
    std::fs::write(&wrong_config, wrong).unwrap();
    drop(cluster);
    let refused = run_bounded(
        Command::new(&isthmus).arg("--config").arg(&wrong_config),
        Duration::from_secs(30),
    );
    assert!(!refused.0);
    assert!(refused.1.contains("disagrees"), "{}", refused.1);
}

/// Runs `cmd` until it exits or `limit` passes (then kills it); returns whether it
/// exited successfully and its stderr.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .env_remove("ISTHMUS_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        thread::sleep(Duration::from_millis(100));
    };
    (ok, reader.join().unwrap_or_default())
}

/// One Kafka request over a fresh connection (for APIs librdkafka's admin client lacks).
fn kafka_call(
    addr: &str,
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    request: &kafka_protocol::messages::RequestKind,
) -> kafka_protocol::messages::ResponseKind {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::{RequestHeader, ResponseHeader, ResponseKind};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use std::io::{Read, Write};
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("cluster-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&buf).unwrap();
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = bytes::Bytes::from(body);
    let answer =
        ResponseHeader::decode(&mut body, api_key.response_header_version(version)).unwrap();
    assert_eq!(answer.correlation_id, 7);
    ResponseKind::decode(api_key, &mut body, version).unwrap()
}

/// ElectLeaders results as (topic, partition) → error code.
fn elect(
    addr: &str,
    election_type: i8,
    targets: Option<&[(&str, &[i32])]>,
) -> BTreeMap<(String, i32), i16> {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::{
        ApiKey, ElectLeadersRequest, RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(20_000)
        .with_topic_partitions(targets.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps.to_vec())
                })
                .collect()
        }));
    let ResponseKind::ElectLeaders(r) = kafka_call(
        addr,
        ApiKey::ElectLeaders,
        2,
        &RequestKind::ElectLeaders(request),
    ) else {
        panic!("not an ElectLeaders answer");
    };
    assert_eq!(r.error_code, 0, "{r:?}");
    r.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(move |p| ((t.topic.to_string(), p.partition_id), p.error_code))
        })
        .collect()
}

#[test]
fn elect_leaders_moves_leadership_back_on_demand() {
    // Automatic rebalancing off, so only ElectLeaders can bring the preferred leaders back.
    let dir = temp_dir();
    let mut settings = fast_settings();
    settings.push(("auto.leader.rebalance.enable".into(), "false".into()));
    let layout = Layout {
        controllers: parse_sites("a:1").unwrap(),
        brokers: parse_sites("a:1,b:1").unwrap(),
        base_port: cluster_base_port(),
        settings,
        ..Layout::default()
    };
    let mut cluster = LocalCluster::start(&layout, dir.path(), &isthmus_binary())
        .unwrap_or_else(|e| panic!("{e}"));
    let bootstrap = cluster.bootstrap_servers();
    let topic = "electable";
    create_topic(&bootstrap, topic, 4, 2);
    let before = wait_for("leaders", Duration::from_secs(20), || {
        partitions(&bootstrap, topic).filter(|ps| ps.iter().all(|p| p.leader >= 0))
    });
    let victim = before[0].leader;
    let survivor = cluster
        .nodes()
        .iter()
        .find(|n| n.role.is_broker() && n.id != victim)
        .and_then(|n| n.client_addr)
        .unwrap()
        .to_string();

    // Nothing to do while every partition is led by its preferred replica.
    let results = elect(
        &survivor,
        0,
        Some(&[(topic, &[0, 1, 2, 3]), ("no-such-topic", &[0])]),
    );
    for p in 0..4 {
        assert_eq!(
            results[&(topic.to_string(), p)],
            84,
            "ELECTION_NOT_NEEDED: {results:?}"
        );
    }
    assert_eq!(results[&("no-such-topic".to_string(), 0)], 3, "{results:?}");

    cluster.kill(victim).unwrap();
    wait_for("leaders moved", Duration::from_secs(20), || {
        partitions(&survivor, topic)
            .filter(|ps| ps.iter().all(|p| p.leader >= 0 && p.leader != victim))
    });
    cluster.restart(victim).unwrap_or_else(|e| panic!("{e}"));
    let back = wait_for(
        "the restarted broker in every ISR",
        Duration::from_secs(30),
        || partitions(&survivor, topic).filter(|ps| ps.iter().all(|p| p.isr.len() == 2)),
    );
    let displaced: Vec<i32> = back
        .iter()
        .filter(|p| p.leader != p.replicas[0])
        .map(|p| p.id)
        .collect();
    assert!(
        !displaced.is_empty(),
        "without auto rebalance some stay moved: {back:?}"
    );

    // An unclean election is not needed where a leader exists.
    let results = elect(&survivor, 1, Some(&[(topic, &displaced)]));
    assert!(results.values().all(|c| *c == 84), "{results:?}");
    // A preferred election of every partition moves exactly the displaced ones back.
    let results = elect(&survivor, 0, None);
    let elected: Vec<i32> = results
        .iter()
        .filter(|(_, code)| **code == 0)
        .map(|((_, p), _)| *p)
        .collect();
    assert_eq!(elected, displaced, "{results:?}");
    wait_for("preferred leaders again", Duration::from_secs(10), || {
        partitions(&survivor, topic).filter(|ps| ps.iter().all(|p| p.leader == p.replicas[0]))
    });
}
