//! Elections and ISR changes, applied through `MetadataImage::apply`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::*;
use crate::records::{ConfigResource, MetadataProposal};
use crate::test_support::*;

fn set_cluster_config(img: &MetadataImage, key: &str, value: &str) -> MetadataImage {
    step(
        img,
        vec![MetadataRecord::SetConfig {
            resource: ConfigResource::ClusterDefault,
            key: key.into(),
            value: value.into(),
        }],
    )
}

/// A bare `FenceBroker` record, without moving anything (what older code proposes).
fn bare_fence(img: &MetadataImage, id: i32) -> MetadataImage {
    let epoch = img.broker(id).unwrap().broker_epoch;
    step(
        img,
        vec![MetadataRecord::FenceBroker {
            broker_id: id,
            broker_epoch: epoch,
        }],
    )
}

#[test]
fn unclean_config_topic_then_cluster_default() {
    let img = cluster(1);
    let (img, _) = add_topic(&img, "plain", &[], &[full(&[1])]);
    let (img, _) = add_topic(
        &img,
        "yes",
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, " TRUE ")],
        &[full(&[1])],
    );
    let (img, _) = add_topic(
        &img,
        "no",
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, "false")],
        &[full(&[1])],
    );
    let (img, _) = add_topic(
        &img,
        "garbage",
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, "yes")],
        &[full(&[1])],
    );
    let allowed =
        |img: &MetadataImage, name: &str| unclean_allowed(img, img.topic_by_name(name).unwrap());
    assert!(!allowed(&img, "plain"));
    assert!(allowed(&img, "yes"));
    assert!(!allowed(&img, "no"));
    assert!(!allowed(&img, "garbage"));
    let img = set_cluster_config(&img, UNCLEAN_LEADER_ELECTION_ENABLE, "true");
    assert!(allowed(&img, "plain"));
    assert!(allowed(&img, "yes"));
    assert!(
        !allowed(&img, "no"),
        "the topic config wins over the default"
    );
    assert!(!allowed(&img, "garbage"));
}

#[test]
fn fencing_the_leader_moves_leadership_and_shrinks_the_isr() {
    let img = cluster(3);
    let (img, t) = add_topic(&img, "t", &[], &[full(&[1, 2, 3]), full(&[2, 1, 3])]);
    let records = fence_broker(&img, 1);
    let epoch = img.broker(1).unwrap().broker_epoch;
    assert_eq!(
        records[0],
        MetadataRecord::FenceBroker {
            broker_id: 1,
            broker_epoch: epoch
        }
    );
    assert_eq!(records.len(), 3);
    let img = step(&img, records);
    assert!(img.broker(1).unwrap().fenced);
    let p0 = part(&img, t, 0);
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 1));
    // A follower leaving changes the ISR but not the leader epoch.
    let p1 = part(&img, t, 1);
    assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p1.leader_epoch, p1.partition_epoch), (0, 1));
    assert!(fence_broker(&img, 1).is_empty(), "already fenced");
    assert!(fence_broker(&img, 9).is_empty(), "unknown");
}

#[test]
fn the_next_leader_skips_inactive_isr_members_in_replica_order() {
    let img = cluster(3);
    let (img, t) = add_topic(&img, "t", &[], &[full(&[1, 2, 3])]);
    // Broker 2 fenced by a bare record: still in the ISR but may not lead.
    let img = bare_fence(&img, 2);
    let img = step(&img, fence_broker(&img, 1));
    let p = part(&img, t, 0);
    assert_eq!((p.leader, p.isr), (3, vec![2, 3]));
}

#[test]
fn fencing_the_last_isr_member_keeps_it_leaderless_until_it_returns() {
    let img = cluster(2);
    let (img, t) = add_topic(
        &img,
        "t",
        &[],
        &[Part {
            replicas: &[1, 2],
            isr: &[1],
            leader: 1,
        }],
    );
    let img = step(&img, fence_broker(&img, 1));
    let p = part(&img, t, 0);
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
    assert_eq!(p.leader_epoch, 1);
    // Broker 2 is active but not in the ISR, and unclean election is off.
    assert!(elect_preferred(&img, None).records.is_empty());
    // Broker 1 comes back: it leads again.
    let records = unfence_broker(&img, 1);
    assert_eq!(records.len(), 2);
    let img = step(&img, records);
    let p = part(&img, t, 0);
    assert_eq!((p.leader, p.isr, p.leader_epoch), (1, vec![1], 2));
}

#[test]
fn unclean_election_on_fencing_only_when_configured() {
    let lone = |configs: &[(&str, &str)], cluster_default: Option<&str>| {
        let mut img = cluster(2);
        if let Some(v) = cluster_default {
            img = set_cluster_config(&img, UNCLEAN_LEADER_ELECTION_ENABLE, v);
        }
        let (img, t) = add_topic(
            &img,
            "t",
            configs,
            &[Part {
                replicas: &[1, 2],
                isr: &[1],
                leader: 1,
            }],
        );
        let img = step(&img, fence_broker(&img, 1));
        part(&img, t, 0)
    };
    let p = lone(&[], None);
    assert_eq!((p.leader, p.isr), (NO_LEADER, vec![1]));
    let p = lone(&[(UNCLEAN_LEADER_ELECTION_ENABLE, "true")], None);
    assert_eq!((p.leader, p.isr), (2, vec![2]));
    let p = lone(&[], Some("true"));
    assert_eq!((p.leader, p.isr), (2, vec![2]));
    let p = lone(&[(UNCLEAN_LEADER_ELECTION_ENABLE, "false")], Some("true"));
    assert_eq!((p.leader, p.isr), (NO_LEADER, vec![1]));
}

#[test]
fn unfencing_restores_leaders_cleanly_or_uncleanly_when_allowed() {
    let img = cluster(3);
    let (img, clean) = add_topic(
        &img,
        "clean",
        &[],
        &[Part {
            replicas: &[1, 2],
            isr: &[1],
            leader: 1,
        }],
    );
    let (img, dirty) = add_topic(
        &img,
        "dirty",
        &[(UNCLEAN_LEADER_ELECTION_ENABLE, "true")],
        &[Part {
            replicas: &[1, 2],
            isr: &[1],
            leader: 1,
        }],
    );
    // Both replicas go: the unclean topic has nobody to elect either.
    let img = step(&img, fence_broker(&img, 2));
    let img = step(&img, fence_broker(&img, 1));
    assert_eq!(part(&img, clean, 0).leader, NO_LEADER);
    assert_eq!(part(&img, dirty, 0).leader, NO_LEADER);
    // Broker 2 (never in the ISR) returns first.
    let img = step(&img, unfence_broker(&img, 2));
    let p = part(&img, clean, 0);
    assert_eq!((p.leader, p.isr), (NO_LEADER, vec![1]));
    let p = part(&img, dirty, 0);
    assert_eq!((p.leader, p.isr), (2, vec![2]));
    let img = step(&img, unfence_broker(&img, 1));
    assert_eq!(part(&img, clean, 0).leader, 1);
    assert!(unfence_broker(&img, 1).is_empty(), "already unfenced");
    assert!(unfence_broker(&img, 9).is_empty(), "unknown");
}

#[test]
fn controlled_shutdown_moves_leadership_and_keeps_the_registration() {
    let img = cluster(3);
    let (img, t) = add_topic(&img, "t", &[], &[full(&[3, 1, 2]), full(&[1, 2])]);
    let records = begin_controlled_shutdown(&img, 3);
    assert!(matches!(
        records[0],
        MetadataRecord::BeginControlledShutdown { broker_id: 3, .. }
    ));
    assert_eq!(records.len(), 2);
    let img = step(&img, records);
    let b = img.broker(3).unwrap();
    assert!(b.in_controlled_shutdown && !b.fenced);
    let p = part(&img, t, 0);
    assert_eq!((p.leader, p.isr), (1, vec![1, 2]));
    assert!(begin_controlled_shutdown(&img, 3).is_empty());
    assert!(unfence_broker(&img, 3).is_empty(), "must register again");
    // When the shutdown completes the broker is fenced; nothing is left to move.
    assert_eq!(fence_broker(&img, 3).len(), 1);
    let img = step(&img, fence_broker(&img, 3));
    assert!(img.broker(3).unwrap().fenced);
}

#[test]
fn preferred_election_results() {
    let img = cluster(4);
    let (img, t) = add_topic(
        &img,
        "t",
        &[],
        &[
            // 0: already led by the preferred replica.
            full(&[1, 2]),
            // 1: the preferred replica is in the ISR but does not lead.
            Part {
                replicas: &[1, 2, 3],
                isr: &[1, 2, 3],
                leader: 2,
            },
            // 2: the preferred replica is active but out of the ISR.
            Part {
                replicas: &[3, 2],
                isr: &[2],
                leader: 2,
            },
            // 3: the preferred replica is in the ISR but fenced (below).
            Part {
                replicas: &[4, 2],
                isr: &[4, 2],
                leader: 2,
            },
        ],
    );
    let img = bare_fence(&img, 4);
    assert_eq!(imbalanced_partitions(&img), vec![(t, 1)]);
    let unknown_topic = (Uuid::new_v4(), 0);
    let targets = [
        (t, 0),
        (t, 1),
        (t, 2),
        (t, 3),
        (t, 9),
        unknown_topic,
        (t, 1),
    ];
    let out = elect_preferred(&img, Some(&targets));
    let results: Vec<ElectionResult> = out.results.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        results,
        vec![
            ElectionResult::NotNeeded,
            ElectionResult::Elected,
            ElectionResult::PreferredNotAvailable,
            ElectionResult::PreferredNotAvailable,
            ElectionResult::UnknownPartition,
            ElectionResult::UnknownPartition,
            ElectionResult::Elected,
        ]
    );
    assert_eq!(out.records.len(), 1, "a repeated target changes once");
    let before = part(&img, t, 1);
    let img = step(&img, out.records);
    let p1 = part(&img, t, 1);
    assert_eq!((p1.leader, p1.isr), (1, vec![1, 2, 3]));
    assert_eq!(p1.leader_epoch, before.leader_epoch + 1);
    assert_eq!(p1.partition_epoch, before.partition_epoch + 1);
    assert!(imbalanced_partitions(&img).is_empty());
    let again = elect_preferred(&img, Some(&[(t, 1)]));
    assert_eq!(again.results, vec![((t, 1), ElectionResult::NotNeeded)]);
    assert!(again.records.is_empty());
}

#[test]
fn preferred_election_for_all_partitions_is_the_rebalance() {
    let img = cluster(3);
    let (img, t) = add_topic(
        &img,
        "t",
        &[],
        &[
            full(&[1, 2]),
            Part {
                replicas: &[1, 2],
                isr: &[1, 2],
                leader: 2,
            },
            Part {
                replicas: &[3, 2],
                isr: &[2, 3],
                leader: 2,
            },
            Part {
                replicas: &[3, 1],
                isr: &[1],
                leader: 1,
            },
        ],
    );
    assert_eq!(imbalanced_partitions(&img), vec![(t, 1), (t, 2)]);
    let out = elect_preferred(&img, None);
    assert_eq!(
        out.results,
        vec![
            ((t, 1), ElectionResult::Elected),
            ((t, 2), ElectionResult::Elected)
        ]
    );
    let img = step(&img, out.records);
    assert_eq!(part(&img, t, 1).leader, 1);
    assert_eq!(part(&img, t, 2).leader, 3);
    assert!(imbalanced_partitions(&img).is_empty());
    assert_eq!(elect_preferred(&img, None), Elections::default());
}

#[test]
fn preferred_election_revives_a_leaderless_partition_like_kafka() {
    let img = cluster(3);
    let (img, t) = add_topic(
        &img,
        "t",
        &[],
        &[Part {
            replicas: &[1, 2, 3],
            isr: &[1, 2, 3],
            leader: 2,
        }],
    );
    // Bare fences leave the leader in place although it may not lead.
    let img = bare_fence(&img, 1);
    let img = bare_fence(&img, 2);
    let out = elect_preferred(&img, Some(&[(t, 0)]));
    assert_eq!(out.results, vec![((t, 0), ElectionResult::Elected)]);
    let img = step(&img, out.records);
    assert_eq!(part(&img, t, 0).leader, 3);
}

#[test]
fn unclean_election_results() {
    let img = cluster(3);
    let (img, t) = add_topic(
        &img,
        "t",
        &[],
        &[
            // 0: leader present.
            full(&[1, 2]),
            // 1: leaderless, active replica 2 outside the ISR.
            Part {
                replicas: &[1, 2],
                isr: &[1],
                leader: 1,
            },
            // 2: leaderless, every replica fenced.
            Part {
                replicas: &[1],
                isr: &[1],
                leader: 1,
            },
        ],
    );
    let img = step(&img, fence_broker(&img, 1));
    assert_eq!(part(&img, t, 1).leader, NO_LEADER);
    let targets = [(t, 0), (t, 1), (t, 2), (t, 7)];
    let out = elect_unclean(&img, Some(&targets));
    let results: Vec<ElectionResult> = out.results.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        results,
        vec![
            ElectionResult::NotNeeded,
            ElectionResult::Elected,
            ElectionResult::EligibleNotAvailable,
            ElectionResult::UnknownPartition,
        ]
    );
    let img = step(&img, out.records);
    let p = part(&img, t, 1);
    assert_eq!((p.leader, p.isr), (2, vec![2]));
    // For all partitions: only the elected ones are reported.
    let (img, u) = add_topic(
        &img,
        "u",
        &[],
        &[Part {
            replicas: &[2, 3],
            isr: &[2],
            leader: 2,
        }],
    );
    let img = step(&img, fence_broker(&img, 2));
    let out = elect_unclean(&img, None);
    assert_eq!(out.results, vec![((u, 0), ElectionResult::Elected)]);
    let img = step(&img, out.records);
    let p = part(&img, u, 0);
    assert_eq!((p.leader, p.isr), (3, vec![3]));
}

#[test]
fn unclean_election_prefers_an_active_isr_member() {
    let img = cluster(3);
    let (img, t) = add_topic(
        &img,
        "t",
        &[],
        &[Part {
            replicas: &[1, 2, 3],
            isr: &[2, 3],
            leader: NO_LEADER,
        }],
    );
    let out = elect_unclean(&img, Some(&[(t, 0)]));
    let img = step(&img, out.records);
    let p = part(&img, t, 0);
    assert_eq!((p.leader, p.isr), (2, vec![2, 3]));
}

fn alter_setup() -> (MetadataImage, Uuid, AlterPartitionRequest) {
    let img = cluster(4);
    let (img, t) = add_topic(&img, "t", &[], &[full(&[1, 2, 3])]);
    let m = |id: i32| IsrMember {
        broker_id: id,
        broker_epoch: img.broker(id).unwrap().broker_epoch,
    };
    let req = AlterPartitionRequest {
        broker_id: 1,
        broker_epoch: img.broker(1).unwrap().broker_epoch,
        topic_id: t,
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: vec![m(1), m(3)],
    };
    (img, t, req)
}

#[test]
fn alter_partition_changes_the_isr_with_a_compare_and_set() {
    let (img, t, req) = alter_setup();
    let AlterPartitionOutcome::Propose(c) = alter_partition(&img, &req).unwrap() else {
        panic!("the ISR shrinks");
    };
    assert_eq!(c.isr, Some(vec![1, 3]));
    assert_eq!(c.leader, None);
    assert_eq!(c.expected_partition_epoch, Some(0));
    let next = step(&img, vec![MetadataRecord::PartitionChange(c.clone())]);
    let p = part(&next, t, 0);
    assert_eq!(
        (p.isr.clone(), p.leader_epoch, p.partition_epoch),
        (vec![1, 3], 0, 1)
    );
    // The same record again no longer applies: the partition epoch moved on.
    assert!(next
        .validate(&MetadataProposal::new(vec![
            MetadataRecord::PartitionChange(c)
        ]))
        .is_err());
    // Asking for the ISR it already has answers with the current state.
    let same = AlterPartitionRequest {
        partition_epoch: 1,
        new_isr: unchecked(&[1, 3]),
        ..req.clone()
    };
    assert_eq!(
        alter_partition(&next, &same),
        Ok(AlterPartitionOutcome::Unchanged(p))
    );
    // A new order is a change.
    let reordered = AlterPartitionRequest {
        new_isr: unchecked(&[3, 1]),
        ..same
    };
    assert!(matches!(
        alter_partition(&next, &reordered),
        Ok(AlterPartitionOutcome::Propose(_))
    ));
}

#[test]
fn alter_partition_errors_in_kafkas_order() {
    use AlterPartitionError as E;
    let (img, t, req) = alter_setup();
    let with = |f: &dyn Fn(&mut AlterPartitionRequest)| {
        let mut r = req.clone();
        f(&mut r);
        alter_partition(&img, &r).unwrap_err()
    };
    assert_eq!(with(&|r| r.broker_epoch += 1), E::StaleBrokerEpoch);
    assert_eq!(with(&|r| r.broker_id = 9), E::StaleBrokerEpoch);
    assert_eq!(with(&|r| r.topic_id = Uuid::new_v4()), E::UnknownTopicId);
    assert_eq!(with(&|r| r.partition = 1), E::UnknownPartition);
    assert_eq!(with(&|r| r.leader_epoch = 1), E::NotController);
    assert_eq!(with(&|r| r.partition_epoch = 1), E::NotController);
    // A follower asking: INVALID_REQUEST in Kafka.
    let follower = with(&|r| {
        r.broker_id = 2;
        r.broker_epoch = img.broker(2).unwrap().broker_epoch;
    });
    assert_eq!(follower, E::NotLeader { leader: 1 });
    assert_eq!(follower.kafka_error_code(), 42);
    for bad in [&[][..], &[1, 1], &[1, 4], &[2, 3]] {
        let e = with(&|r| r.new_isr = unchecked(bad));
        assert!(matches!(e, E::InvalidIsr(_)), "{bad:?}: {e:?}");
    }
    let stale_member = with(&|r| r.new_isr[1].broker_epoch += 1);
    assert_eq!(stale_member, E::IneligibleReplica { broker_id: 3 });

    // Epochs behind: move the partition on by one leader change and one ISR change.
    let moved = step(&img, fence_broker(&img, 2));
    let moved = step(&moved, fence_broker(&moved, 1));
    let p = part(&moved, t, 0);
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (3, 1, 2));
    // The fenced old leader is still registered: its epoch is what is stale.
    assert_eq!(
        alter_partition(&moved, &req),
        Err(E::FencedLeaderEpoch { current: 1 })
    );
    let fresh = AlterPartitionRequest {
        broker_id: 3,
        broker_epoch: moved.broker(3).unwrap().broker_epoch,
        new_isr: unchecked(&[3]),
        ..req.clone()
    };
    // Old leader epoch and not the leader: the epoch check comes first.
    let old_leader = AlterPartitionRequest {
        broker_id: 4,
        broker_epoch: moved.broker(4).unwrap().broker_epoch,
        ..fresh.clone()
    };
    assert_eq!(
        alter_partition(&moved, &old_leader),
        Err(E::FencedLeaderEpoch { current: 1 })
    );
    let behind = AlterPartitionRequest {
        leader_epoch: 1,
        partition_epoch: 1,
        ..fresh.clone()
    };
    assert_eq!(
        alter_partition(&moved, &behind),
        Err(E::InvalidUpdateVersion { current: 2 })
    );
    let current = AlterPartitionRequest {
        leader_epoch: 1,
        partition_epoch: 2,
        ..fresh
    };
    // Fenced, shutting down, unregistered members may not join.
    let grow = |img: &MetadataImage, ids: &[i32]| {
        alter_partition(
            img,
            &AlterPartitionRequest {
                new_isr: unchecked(ids),
                ..current.clone()
            },
        )
    };
    assert_eq!(
        grow(&moved, &[3, 1]),
        Err(E::IneligibleReplica { broker_id: 1 })
    );
    let shutting = step(&moved, vec![register(1)]);
    let shutting = step(&shutting, unfence_broker(&shutting, 1));
    assert!(matches!(
        grow(&shutting, &[3, 1]),
        Ok(AlterPartitionOutcome::Propose(_))
    ));
    let shutting = step(&shutting, begin_controlled_shutdown(&shutting, 1));
    assert_eq!(
        grow(&shutting, &[3, 1]),
        Err(E::IneligibleReplica { broker_id: 1 })
    );
    let epoch2 = moved.broker(2).unwrap().broker_epoch;
    let gone = step(
        &moved,
        vec![MetadataRecord::UnregisterBroker {
            broker_id: 2,
            broker_epoch: epoch2,
        }],
    );
    assert_eq!(
        grow(&gone, &[3, 2]),
        Err(E::IneligibleReplica { broker_id: 2 })
    );
}

#[test]
fn kafka_error_codes_match_the_protocol_table() {
    // The vendored kafka-protocol crate's error table, read as text: this crate must
    // not depend on it.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vendor/kafka-protocol/src/error.rs"
    );
    let table = std::fs::read_to_string(path).expect("vendored kafka-protocol error table");
    let code_of = |name: &str| -> i16 {
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("({name},")))
            .unwrap_or_else(|| panic!("{name} not in the table"));
        line.split(',').nth(1).unwrap().trim().parse().unwrap()
    };
    use AlterPartitionError as E;
    let cases: Vec<(i16, &str)> = vec![
        (
            ElectionResult::NotNeeded.kafka_error_code(),
            "ElectionNotNeeded",
        ),
        (
            ElectionResult::PreferredNotAvailable.kafka_error_code(),
            "PreferredLeaderNotAvailable",
        ),
        (
            ElectionResult::EligibleNotAvailable.kafka_error_code(),
            "EligibleLeadersNotAvailable",
        ),
        (
            ElectionResult::UnknownPartition.kafka_error_code(),
            "UnknownTopicOrPartition",
        ),
        (E::StaleBrokerEpoch.kafka_error_code(), "StaleBrokerEpoch"),
        (E::UnknownTopicId.kafka_error_code(), "UnknownTopicId"),
        (
            E::UnknownPartition.kafka_error_code(),
            "UnknownTopicOrPartition",
        ),
        (E::NotController.kafka_error_code(), "NotController"),
        (
            E::FencedLeaderEpoch { current: 0 }.kafka_error_code(),
            "FencedLeaderEpoch",
        ),
        (
            E::NotLeader { leader: 0 }.kafka_error_code(),
            "InvalidRequest",
        ),
        (
            E::InvalidUpdateVersion { current: 0 }.kafka_error_code(),
            "InvalidUpdateVersion",
        ),
        (
            E::InvalidIsr(String::new()).kafka_error_code(),
            "InvalidRequest",
        ),
        (
            E::IneligibleReplica { broker_id: 0 }.kafka_error_code(),
            "IneligibleReplica",
        ),
    ];
    for (code, name) in cases {
        assert_eq!(code, code_of(name), "{name}");
    }
    assert_eq!(ElectionResult::Elected.kafka_error_code(), 0);
}

/// Checks what every sequence of our records must keep true.
fn check_invariants(img: &MetadataImage) {
    let active = |id: i32| img.broker(id).is_some_and(|b| b.is_active());
    for t in img.topics() {
        for (i, p) in &t.partitions {
            let at = format!("{}-{i} {p:?}", t.name);
            assert!(
                p.leader == NO_LEADER || active(p.leader),
                "inactive leader: {at}"
            );
            assert!(p.leader == NO_LEADER || p.isr.contains(&p.leader), "{at}");
            if p.isr.iter().any(|&r| !active(r)) {
                assert!(
                    p.isr.len() == 1 && p.leader == NO_LEADER,
                    "an inactive broker stays only as the last ISR member: {at}"
                );
            }
            if p.leader == NO_LEADER {
                assert!(
                    p.isr.iter().all(|&r| !active(r)),
                    "leaderless with an active ISR member: {at}"
                );
            }
        }
    }
}

/// Applies `records` if any, checking the epochs of every changed partition.
fn apply_checked(img: &MetadataImage, records: Vec<MetadataRecord>) -> MetadataImage {
    if records.is_empty() {
        return img.clone();
    }
    let next = step(img, records.clone());
    for r in &records {
        if let MetadataRecord::PartitionChange(c) = r {
            let (a, b) = (
                part(img, c.topic_id, c.partition),
                part(&next, c.topic_id, c.partition),
            );
            assert_eq!(b.partition_epoch, a.partition_epoch + 1);
            let bump = i32::from(a.leader != b.leader);
            assert_eq!(b.leader_epoch, a.leader_epoch + bump);
        }
    }
    next
}

#[test]
fn random_fence_unfence_sequences_apply_and_never_elect_an_inactive_leader() {
    for seed in 0..60u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let brokers = rng.gen_range(1..=5);
        let mut img = cluster(brokers);
        if rng.gen_bool(0.3) {
            img = set_cluster_config(&img, UNCLEAN_LEADER_ELECTION_ENABLE, "true");
        }
        let mut topics = Vec::new();
        for n in 0..rng.gen_range(1..=3) {
            let parts: Vec<Vec<i32>> = (0..rng.gen_range(1..=4))
                .map(|_| {
                    let rf = rng.gen_range(1..=brokers.min(3));
                    let mut ids: Vec<i32> = (1..=brokers).collect();
                    for i in (1..ids.len()).rev() {
                        ids.swap(i, rng.gen_range(0..=i));
                    }
                    ids.truncate(rf as usize);
                    ids
                })
                .collect();
            let parts: Vec<Part<'_>> = parts.iter().map(|r| full(r)).collect();
            let configs: &[(&str, &str)] = match rng.gen_range(0..3) {
                0 => &[(UNCLEAN_LEADER_ELECTION_ENABLE, "true")],
                1 => &[(UNCLEAN_LEADER_ELECTION_ENABLE, "false")],
                _ => &[],
            };
            let (next, id) = add_topic(&img, &format!("t{n}"), configs, &parts);
            img = next;
            topics.push(id);
        }
        check_invariants(&img);
        for _ in 0..80 {
            let b = rng.gen_range(1..=brokers);
            let records = match rng.gen_range(0..8) {
                0 | 1 => fence_broker(&img, b),
                2 | 3 => unfence_broker(&img, b),
                4 => begin_controlled_shutdown(&img, b),
                5 => {
                    // A restart: a new incarnation registers once the old one is fenced.
                    let mut r = fence_broker(&img, b);
                    r.push(register(b));
                    r
                }
                6 => {
                    if rng.gen_bool(0.5) {
                        elect_preferred(&img, None).records
                    } else {
                        elect_unclean(&img, None).records
                    }
                }
                _ => {
                    // The leader shrinks or grows the ISR to a random active subset.
                    let t = topics[rng.gen_range(0..topics.len())];
                    let p = part(&img, t, 0);
                    if p.leader == NO_LEADER {
                        continue;
                    }
                    let mut isr: Vec<i32> = p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|&r| r == p.leader || rng.gen_bool(0.5))
                        .collect();
                    isr.retain(|&r| img.broker(r).is_some_and(|x| x.is_active()));
                    let req = leader_asks(&img, t, 0, &isr);
                    match alter_partition(&img, &req) {
                        Ok(AlterPartitionOutcome::Propose(c)) => {
                            vec![MetadataRecord::PartitionChange(c)]
                        }
                        Ok(AlterPartitionOutcome::Unchanged(_)) => Vec::new(),
                        Err(e) => panic!("seed {seed}: valid request refused: {e:?}"),
                    }
                }
            };
            img = apply_checked(&img, records);
            check_invariants(&img);
        }
        // Everyone back: every partition with a replica able to lead has a leader.
        for b in 1..=brokers {
            if img.broker(b).is_some_and(|x| x.in_controlled_shutdown) {
                let r = fence_broker(&img, b);
                img = apply_checked(&img, r);
                img = step(&img, vec![register(b)]);
            }
            let r = unfence_broker(&img, b);
            img = apply_checked(&img, r);
        }
        check_invariants(&img);
    }
}
