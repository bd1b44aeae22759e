//! Record application and validation.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;

fn endpoint(port: u16) -> BrokerEndpoint {
    BrokerEndpoint {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port,
        security_protocol: "PLAINTEXT".into(),
    }
}

fn register(id: i32, rack: &str, incarnation: Uuid) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistrationRecord {
        broker_id: id,
        incarnation_id: incarnation,
        rack: Some(rack.into()),
        endpoints: vec![endpoint(9092 + id as u16)],
    })
}

fn step(image: &MetadataImage, records: Vec<MetadataRecord>) -> MetadataImage {
    let rev = image.revision() + 1;
    image
        .apply(rev, &MetadataProposal::new(records))
        .unwrap_or_else(|r| panic!("rejected: {r}"))
}

fn reject(image: &MetadataImage, records: Vec<MetadataRecord>) -> Rejection {
    let p = MetadataProposal::new(records);
    let r = image.validate(&p).expect_err("should be rejected");
    assert_eq!(
        image.apply(image.revision() + 1, &p),
        Err(r.clone()),
        "validate == apply"
    );
    r
}

/// Three unfenced brokers in racks a, a, b.
fn cluster() -> MetadataImage {
    let mut img = MetadataImage::default();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b")] {
        img = step(&img, vec![register(id, rack, Uuid::new_v4())]);
        let epoch = img.broker(id).unwrap().broker_epoch;
        img = step(
            &img,
            vec![MetadataRecord::UnfenceBroker {
                broker_id: id,
                broker_epoch: epoch,
            }],
        );
    }
    img
}

fn topic(name: &str, id: Uuid, parts: &[&[i32]]) -> Vec<MetadataRecord> {
    let mut v = vec![MetadataRecord::CreateTopic(TopicRecord {
        name: name.into(),
        topic_id: id,
        configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
    })];
    for (i, r) in parts.iter().enumerate() {
        v.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition: i as i32,
            replicas: r.to_vec(),
            isr: r.to_vec(),
            leader: r.first().copied().unwrap_or(NO_LEADER),
            leader_epoch: 0,
            partition_epoch: 0,
        }));
    }
    v
}

#[test]
fn registration_sets_epoch_to_revision_and_starts_fenced() {
    let img = step(
        &MetadataImage::default(),
        vec![register(7, "a", Uuid::new_v4())],
    );
    let b = img.broker(7).unwrap();
    assert_eq!(b.broker_epoch, 1);
    assert!(b.fenced);
    assert!(!b.is_active());
    assert_eq!(img.revision(), 1);
}

#[test]
fn duplicate_registration_of_a_live_broker_is_refused() {
    let img = cluster();
    let r = reject(&img, vec![register(1, "a", Uuid::new_v4())]);
    assert_eq!(r.code, RejectCode::DuplicateBrokerRegistration);
    // Once fenced, a new incarnation may register and gets a new epoch.
    let epoch = img.broker(1).unwrap().broker_epoch;
    let img = step(
        &img,
        vec![MetadataRecord::FenceBroker {
            broker_id: 1,
            broker_epoch: epoch,
        }],
    );
    let img = step(&img, vec![register(1, "a", Uuid::new_v4())]);
    assert!(img.broker(1).unwrap().broker_epoch > epoch);
}

#[test]
fn stale_broker_epoch_is_refused() {
    let img = cluster();
    let r = reject(
        &img,
        vec![MetadataRecord::FenceBroker {
            broker_id: 2,
            broker_epoch: 1,
        }],
    );
    assert_eq!(r.code, RejectCode::StaleBrokerEpoch);
    let r = reject(
        &img,
        vec![MetadataRecord::FenceBroker {
            broker_id: 99,
            broker_epoch: 1,
        }],
    );
    assert_eq!(r.code, RejectCode::BrokerIdNotRegistered);
}

#[test]
fn controlled_shutdown_blocks_unfence_and_leadership() {
    let img = cluster();
    let e3 = img.broker(3).unwrap().broker_epoch;
    let img = step(
        &img,
        vec![MetadataRecord::BeginControlledShutdown {
            broker_id: 3,
            broker_epoch: e3,
        }],
    );
    assert!(img.broker(3).unwrap().in_controlled_shutdown);
    reject(
        &img,
        vec![MetadataRecord::UnfenceBroker {
            broker_id: 3,
            broker_epoch: e3,
        }],
    );
    let r = reject(&img, topic("t", Uuid::new_v4(), &[&[3, 1]]));
    assert_eq!(r.code, RejectCode::IneligibleReplica);
}

#[test]
fn topic_creation_and_lookup() {
    let img = cluster();
    let id = Uuid::new_v4();
    let img = step(&img, topic("orders", id, &[&[1, 3], &[3, 2]]));
    let t = img.topic_by_name("orders").unwrap();
    assert_eq!(t.topic_id, id);
    assert_eq!(t.partitions.len(), 2);
    assert_eq!(t.configs["min.insync.replicas"], "2");
    assert_eq!(img.partition(&id, 1).unwrap().leader, 3);
}

#[test]
fn bad_topics_are_refused() {
    let img = cluster();
    let id = Uuid::new_v4();
    let img = step(&img, topic("a.b", id, &[&[1]]));
    let cases: Vec<(Vec<MetadataRecord>, RejectCode)> = vec![
        (
            topic("a.b", Uuid::new_v4(), &[&[1]]),
            RejectCode::TopicAlreadyExists,
        ),
        (topic("other", id, &[&[1]]), RejectCode::TopicAlreadyExists),
        (
            topic("a_b", Uuid::new_v4(), &[&[1]]),
            RejectCode::InvalidTopicName,
        ),
        (
            topic("", Uuid::new_v4(), &[&[1]]),
            RejectCode::InvalidTopicName,
        ),
        (
            topic("..", Uuid::new_v4(), &[&[1]]),
            RejectCode::InvalidTopicName,
        ),
        (
            topic("sp ace", Uuid::new_v4(), &[&[1]]),
            RejectCode::InvalidTopicName,
        ),
        (
            topic(&"x".repeat(250), Uuid::new_v4(), &[&[1]]),
            RejectCode::InvalidTopicName,
        ),
        (
            topic("nil", Uuid::nil(), &[&[1]]),
            RejectCode::InvalidRequest,
        ),
        (
            topic("noparts", Uuid::new_v4(), &[]),
            RejectCode::InvalidPartitions,
        ),
        (
            topic("unknown", Uuid::new_v4(), &[&[1, 9]]),
            RejectCode::InvalidReplicaAssignment,
        ),
        (
            topic("dup", Uuid::new_v4(), &[&[1, 1]]),
            RejectCode::InvalidReplicaAssignment,
        ),
        (
            topic("empty", Uuid::new_v4(), &[&[]]),
            RejectCode::InvalidReplicationFactor,
        ),
    ];
    for (records, code) in cases {
        let name = match &records[0] {
            MetadataRecord::CreateTopic(t) => t.name.clone(),
            _ => unreachable!(),
        };
        let r = reject(&img, records);
        assert_eq!(r.code, code, "topic `{name}`: {r}");
    }
}

#[test]
fn partitions_must_be_contiguous_and_consistent() {
    let img = cluster();
    let id = Uuid::new_v4();
    let img = step(&img, topic("t", id, &[&[1, 2]]));
    let part = |p: i32, replicas: Vec<i32>, isr: Vec<i32>, leader: i32| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition: p,
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        })
    };
    assert_eq!(
        reject(&img, vec![part(2, vec![1], vec![1], 1)]).code,
        RejectCode::InvalidPartitions
    );
    assert_eq!(
        reject(&img, vec![part(0, vec![1], vec![1], 1)]).code,
        RejectCode::InvalidPartitions
    );
    assert_eq!(
        reject(&img, vec![part(1, vec![1], vec![2], 2)]).code,
        RejectCode::InvalidRequest
    );
    assert_eq!(
        reject(&img, vec![part(1, vec![1, 2], vec![1], 2)]).code,
        RejectCode::IneligibleReplica
    );
    let img = step(&img, vec![part(1, vec![2, 3], vec![2, 3], 2)]);
    assert_eq!(img.topic(&id).unwrap().partitions.len(), 2);
    let other = Uuid::new_v4();
    let r = reject(
        &img,
        vec![MetadataRecord::Partition(PartitionRecord {
            topic_id: other,
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        })],
    );
    assert_eq!(r.code, RejectCode::UnknownTopicId);
}

#[test]
fn partition_change_bumps_epochs_like_kraft() {
    let img = cluster();
    let id = Uuid::new_v4();
    let img = step(&img, topic("t", id, &[&[1, 2, 3]]));
    // ISR shrink: partition epoch only.
    let img = step(
        &img,
        vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: id,
            partition: 0,
            isr: Some(vec![1, 2]),
            ..Default::default()
        })],
    );
    let p = img.partition(&id, 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 1));
    // Leader change: both.
    let img = step(
        &img,
        vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: id,
            partition: 0,
            leader: Some(2),
            isr: Some(vec![2]),
            ..Default::default()
        })],
    );
    let p = img.partition(&id, 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
    assert_eq!(p.isr, vec![2]);
    // No leader: allowed, bumps the leader epoch.
    let img = step(
        &img,
        vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: id,
            partition: 0,
            leader: Some(NO_LEADER),
            ..Default::default()
        })],
    );
    let p = img.partition(&id, 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch, p.partition_epoch),
        (NO_LEADER, 2, 3)
    );
}

#[test]
fn partition_change_validation() {
    let img = cluster();
    let id = Uuid::new_v4();
    let img = step(&img, topic("t", id, &[&[1, 2, 3]]));
    let change = |c: PartitionChangeRecord| {
        vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: id,
            ..c
        })]
    };
    let r = reject(
        &img,
        change(PartitionChangeRecord {
            partition: 5,
            isr: Some(vec![1]),
            ..Default::default()
        }),
    );
    assert_eq!(r.code, RejectCode::UnknownTopicOrPartition);
    let r = reject(
        &img,
        change(PartitionChangeRecord {
            leader: Some(1),
            ..Default::default()
        }),
    );
    assert_eq!(r.code, RejectCode::InvalidRequest, "no-op");
    let r = reject(
        &img,
        change(PartitionChangeRecord {
            isr: Some(vec![2, 3]),
            ..Default::default()
        }),
    );
    assert_eq!(r.code, RejectCode::IneligibleReplica, "leader left the ISR");
    let r = reject(
        &img,
        change(PartitionChangeRecord {
            isr: Some(vec![1, 4]),
            ..Default::default()
        }),
    );
    assert_eq!(r.code, RejectCode::InvalidRequest, "ISR outside replicas");
    let r = reject(
        &img,
        change(PartitionChangeRecord {
            isr: Some(vec![1]),
            expected_partition_epoch: Some(3),
            ..Default::default()
        }),
    );
    assert_eq!(r.code, RejectCode::InvalidUpdateVersion);
    let r = reject(
        &img,
        change(PartitionChangeRecord {
            replicas: Some(vec![1, 2, 3, 8]),
            ..Default::default()
        }),
    );
    assert_eq!(r.code, RejectCode::InvalidReplicaAssignment);
    // A fenced broker cannot become leader.
    let e2 = img.broker(2).unwrap().broker_epoch;
    let fenced = step(
        &img,
        vec![MetadataRecord::FenceBroker {
            broker_id: 2,
            broker_epoch: e2,
        }],
    );
    let r = reject(
        &fenced,
        change(PartitionChangeRecord {
            leader: Some(2),
            ..Default::default()
        }),
    );
    assert_eq!(r.code, RejectCode::IneligibleReplica);
    // A replica that is no longer registered may stay in the replica set.
    let gone = step(
        &fenced,
        vec![MetadataRecord::UnregisterBroker {
            broker_id: 2,
            broker_epoch: e2,
        }],
    );
    step(
        &gone,
        change(PartitionChangeRecord {
            isr: Some(vec![1, 3]),
            expected_partition_epoch: Some(0),
            ..Default::default()
        }),
    );
}

#[test]
fn a_failing_record_rolls_back_the_whole_proposal() {
    let img = cluster();
    let mut records = topic("t", Uuid::new_v4(), &[&[1]]);
    records.push(MetadataRecord::RemoveTopic {
        topic_id: Uuid::new_v4(),
    });
    let r = reject(&img, records);
    assert!(r.message.starts_with("record 2:"), "{}", r.message);
    assert!(img.topic_by_name("t").is_none());
}

#[test]
fn topic_removal_frees_the_name() {
    let img = cluster();
    let id = Uuid::new_v4();
    let img = step(&img, topic("t.x", id, &[&[1]]));
    let img = step(&img, vec![MetadataRecord::RemoveTopic { topic_id: id }]);
    assert!(img.topic_by_name("t.x").is_none());
    assert_eq!(img.topic_count(), 0);
    let img = step(&img, topic("t_x", Uuid::new_v4(), &[&[2]]));
    assert!(img.topic_by_name("t_x").is_some());
    assert_eq!(
        reject(&img, vec![MetadataRecord::RemoveTopic { topic_id: id }]).code,
        RejectCode::UnknownTopicId
    );
}

#[test]
fn configs_set_and_delete() {
    let img = cluster();
    let img = step(&img, topic("t", Uuid::new_v4(), &[&[1]]));
    let set = |resource: ConfigResource, k: &str, v: &str| MetadataRecord::SetConfig {
        resource,
        key: k.into(),
        value: v.into(),
    };
    let img = step(
        &img,
        vec![
            set(
                ConfigResource::Topic { name: "t".into() },
                "retention.ms",
                "1000",
            ),
            set(
                ConfigResource::Broker { broker_id: 2 },
                "log.retention.ms",
                "5",
            ),
            set(
                ConfigResource::ClusterDefault,
                "auto.leader.rebalance.enable",
                "true",
            ),
        ],
    );
    assert_eq!(
        img.topic_by_name("t").unwrap().configs["retention.ms"],
        "1000"
    );
    assert_eq!(img.broker_configs(2).unwrap()["log.retention.ms"], "5");
    assert_eq!(
        img.cluster_configs()["auto.leader.rebalance.enable"],
        "true"
    );
    let img = step(
        &img,
        vec![
            MetadataRecord::DeleteConfig {
                resource: ConfigResource::Topic { name: "t".into() },
                key: "retention.ms".into(),
            },
            MetadataRecord::DeleteConfig {
                resource: ConfigResource::Broker { broker_id: 2 },
                key: "log.retention.ms".into(),
            },
        ],
    );
    assert!(!img
        .topic_by_name("t")
        .unwrap()
        .configs
        .contains_key("retention.ms"));
    assert!(img.broker_configs(2).is_none());
    let r = reject(
        &img,
        vec![set(
            ConfigResource::Topic {
                name: "nope".into(),
            },
            "a",
            "b",
        )],
    );
    assert_eq!(r.code, RejectCode::UnknownTopicOrPartition);
    let r = reject(
        &img,
        vec![set(ConfigResource::ClusterDefault, "bad key", "b")],
    );
    assert_eq!(r.code, RejectCode::InvalidConfig);
}

#[test]
fn producer_id_blocks_are_contiguous_and_unique() {
    let img = cluster();
    let e1 = img.broker(1).unwrap().broker_epoch;
    let grant = |first: i64, size: i64| {
        vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: e1,
            first_producer_id: first,
            block_size: size,
        })]
    };
    let img = step(&img, grant(0, 1000));
    let img = step(&img, grant(1000, 1000));
    assert_eq!(img.next_producer_id(), 2000);
    assert_eq!(
        reject(&img, grant(1000, 1000)).code,
        RejectCode::InvalidRequest,
        "stale block"
    );
    assert_eq!(
        reject(&img, grant(2000, 0)).code,
        RejectCode::InvalidRequest
    );
    assert_eq!(
        reject(&img, grant(2000, PRODUCER_ID_BLOCK_SIZE_MAX + 1)).code,
        RejectCode::InvalidRequest
    );
}

#[test]
fn unsupported_version_and_empty_proposals_are_refused() {
    let img = cluster();
    let mut p = MetadataProposal::new(vec![MetadataRecord::RemoveTopic {
        topic_id: Uuid::new_v4(),
    }]);
    p.version = RECORD_FORMAT_VERSION + 1;
    assert_eq!(
        img.validate(&p).unwrap_err().code,
        RejectCode::UnsupportedVersion
    );
    assert_eq!(
        img.validate(&MetadataProposal::new(vec![]))
            .unwrap_err()
            .code,
        RejectCode::InvalidRequest
    );
}

#[test]
fn snapshot_round_trip_rebuilds_indexes() {
    let img = cluster();
    let id = Uuid::new_v4();
    let img = step(&img, topic("orders", id, &[&[1, 3], &[2, 3]]));
    let bytes = img.to_snapshot_bytes().unwrap();
    let back = MetadataImage::from_snapshot_bytes(&bytes).unwrap();
    assert_eq!(back, img);
    assert_eq!(back.topic_by_name("orders").unwrap().topic_id, id);
    // The collision index came back too.
    assert_eq!(
        reject(&back, topic("orders", Uuid::new_v4(), &[&[1]])).code,
        RejectCode::TopicAlreadyExists
    );
    assert!(MetadataImage::from_snapshot_bytes(b"{\"version\":9,\"image\":{}}").is_err());
    assert!(MetadataImage::from_snapshot_bytes(b"garbage").is_err());
}

#[test]
fn records_encode_with_a_type_tag_and_tolerate_missing_optional_fields() {
    let r = MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id: Uuid::nil(),
        partition: 3,
        leader: Some(2),
        ..Default::default()
    });
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"type\":\"partition_change\""), "{json}");
    let old = format!(
        "{{\"type\":\"partition_change\",\"topic_id\":\"{}\",\"partition\":3}}",
        Uuid::nil()
    );
    let back: MetadataRecord = serde_json::from_str(&old).unwrap();
    assert!(
        matches!(back, MetadataRecord::PartitionChange(c) if c.leader.is_none() && c.expected_partition_epoch.is_none())
    );
}

#[test]
fn applying_the_same_records_gives_the_same_image() {
    let seq = |seed: u128| {
        let mut img = cluster_with(seed);
        for i in 0..20u128 {
            let id = Uuid::from_u128(seed * 1000 + i + 1);
            let name = format!("t{i}");
            let p = MetadataProposal::new(topic(&name, id, &[&[1, 2], &[3, 1]]));
            img = match img.apply(img.revision() + 1, &p) {
                Ok(n) => n,
                Err(_) => img.advanced_to(img.revision() + 1),
            };
        }
        img
    };
    assert_eq!(seq(7), seq(7));
}

fn cluster_with(seed: u128) -> MetadataImage {
    let mut img = MetadataImage::default();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b")] {
        img = step(
            &img,
            vec![register(id, rack, Uuid::from_u128(seed + id as u128))],
        );
        let epoch = img.broker(id).unwrap().broker_epoch;
        img = step(
            &img,
            vec![MetadataRecord::UnfenceBroker {
                broker_id: id,
                broker_epoch: epoch,
            }],
        );
    }
    img
}
