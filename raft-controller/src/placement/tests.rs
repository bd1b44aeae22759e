//! Property-style tests: random clusters (rack counts and sizes, brokers without
//! racks), random partition counts and replication factors, fixed seeds.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::records::{BrokerEndpoint, BrokerRegistrationRecord, MetadataProposal};

fn brokers(racks: &[(&str, usize)]) -> Vec<BrokerInfo> {
    let mut v = Vec::new();
    let mut id = 1;
    for (rack, n) in racks {
        for _ in 0..*n {
            v.push(BrokerInfo {
                id,
                rack: if rack.is_empty() {
                    None
                } else {
                    Some(rack.to_string())
                },
            });
            id += 1;
        }
    }
    v
}

fn code(e: ControllerError) -> RejectCode {
    match e {
        ControllerError::Rejected(r) => r.code,
        other => panic!("not a rejection: {other}"),
    }
}

fn random_cluster(rng: &mut StdRng) -> Vec<BrokerInfo> {
    let racks = rng.gen_range(1..=4);
    let mut ids: Vec<i32> = (0..200).collect();
    let mut out = Vec::new();
    for r in 0..racks {
        for _ in 0..rng.gen_range(1..=4) {
            let i = rng.gen_range(0..ids.len());
            out.push(BrokerInfo {
                id: ids.swap_remove(i) * 3 + 1,
                rack: Some(format!("rack-{r}")),
            });
        }
    }
    out
}

/// Checks every property of one placement.
fn check(brokers: &[BrokerInfo], partitions: i32, rf: i16, start: usize, placed: &[Vec<i32>]) {
    let rack_of: BTreeMap<i32, Option<&str>> =
        brokers.iter().map(|b| (b.id, b.rack.as_deref())).collect();
    let racks: BTreeSet<Option<&str>> = rack_of.values().copied().collect();
    let rack_size = |r: Option<&str>| rack_of.values().filter(|x| **x == r).count();
    let ctx = format!("brokers {brokers:?} partitions {partitions} rf {rf} start {start}");
    assert_eq!(placed.len(), partitions as usize, "{ctx}");
    for (p, replicas) in placed.iter().enumerate() {
        assert_eq!(replicas.len(), rf as usize, "{ctx} p{p}");
        let set: BTreeSet<_> = replicas.iter().collect();
        assert_eq!(
            set.len(),
            replicas.len(),
            "duplicate replica {ctx} p{p}: {replicas:?}"
        );
        assert!(
            replicas.iter().all(|r| rack_of.contains_key(r)),
            "unknown broker {ctx}"
        );
        // As many racks as possible.
        let mut count: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        for r in replicas {
            *count.entry(rack_of[r]).or_default() += 1;
        }
        assert_eq!(
            count.len(),
            (rf as usize).min(racks.len()),
            "rack spread {ctx} p{p}: {replicas:?}"
        );
        // Counts differ by more than one only when the smaller rack is exhausted.
        for (ra, ca) in &count {
            for rb in &racks {
                let cb = count.get(rb).copied().unwrap_or(0);
                if *ca >= cb + 2 {
                    assert_eq!(
                        cb,
                        rack_size(*rb),
                        "rack {rb:?} under-used while {ra:?} has {ca} {ctx} p{p}: {replicas:?}"
                    );
                }
            }
        }
    }
    // Leaders balanced over brokers.
    let mut leaders: BTreeMap<i32, usize> = brokers.iter().map(|b| (b.id, 0)).collect();
    for replicas in placed {
        *leaders.get_mut(&replicas[0]).unwrap() += 1;
    }
    let (lo, hi) = (
        leaders.values().min().unwrap(),
        leaders.values().max().unwrap(),
    );
    assert!(hi - lo <= 1, "leader counts {leaders:?} {ctx}");
    // With racks of equal size, leaders are balanced over racks too.
    let sizes: BTreeSet<usize> = racks.iter().map(|r| rack_size(*r)).collect();
    if sizes.len() == 1 {
        let mut per_rack: BTreeMap<Option<&str>, usize> = racks.iter().map(|r| (*r, 0)).collect();
        for replicas in placed {
            *per_rack.get_mut(&rack_of[&replicas[0]]).unwrap() += 1;
        }
        let (lo, hi) = (
            per_rack.values().min().unwrap(),
            per_rack.values().max().unwrap(),
        );
        assert!(hi - lo <= 1, "leaders per rack {per_rack:?} {ctx}");
    }
}

#[test]
fn random_clusters_keep_every_property() {
    let mut rng = StdRng::seed_from_u64(0x1574_u64);
    for _ in 0..500 {
        let brokers = random_cluster(&mut rng);
        let rf = rng.gen_range(1..=brokers.len().min(5)) as i16;
        let partitions = rng.gen_range(1..=60);
        let start = rng.gen_range(0..1000);
        let placed = place_replicas(&brokers, partitions, rf, start).unwrap();
        check(&brokers, partitions, rf, start, &placed);
    }
}

#[test]
fn stretch_layout_rf3_on_two_sites_uses_both_racks_everywhere() {
    // The layout: racks a, a, b, b; RF=3.
    let b = brokers(&[("a", 2), ("b", 2)]);
    let placed = place_replicas(&b, 12, 3, 0).unwrap();
    check(&b, 12, 3, 0, &placed);
    let mut replicas_per_broker: BTreeMap<i32, usize> = BTreeMap::new();
    for r in placed.iter().flatten() {
        *replicas_per_broker.entry(*r).or_default() += 1;
    }
    // 36 replicas over 4 brokers: evenly 9 each.
    assert!(
        replicas_per_broker.values().all(|c| *c == 9),
        "{replicas_per_broker:?}"
    );
}

#[test]
fn uneven_racks_and_rackless_brokers() {
    let b = brokers(&[("a", 3), ("b", 1)]);
    for rf in 1..=4 {
        let placed = place_replicas(&b, 8, rf, 3).unwrap();
        check(&b, 8, rf, 3, &placed);
        if rf >= 2 {
            // The lone broker of rack b is in every partition.
            assert!(placed.iter().all(|r| r.contains(&4)), "rf {rf}: {placed:?}");
        }
    }
    let rackless = brokers(&[("", 3)]);
    let placed = place_replicas(&rackless, 6, 2, 0).unwrap();
    check(&rackless, 6, 2, 0, &placed);
}

#[test]
fn start_rotates_leaders() {
    let b = brokers(&[("a", 2), ("b", 2)]);
    let first: Vec<i32> = (0..4)
        .map(|s| place_replicas(&b, 1, 2, s).unwrap()[0][0])
        .collect();
    let set: BTreeSet<_> = first.iter().collect();
    assert_eq!(set.len(), 4, "{first:?}");
}

#[test]
fn too_few_brokers_and_bad_counts_are_refused() {
    let b = brokers(&[("a", 1), ("b", 1)]);
    assert_eq!(
        code(place_replicas(&b, 3, 3, 0).unwrap_err()),
        RejectCode::InvalidReplicationFactor
    );
    assert_eq!(
        code(place_replicas(&b, 3, 0, 0).unwrap_err()),
        RejectCode::InvalidReplicationFactor
    );
    assert_eq!(
        code(place_replicas(&b, 3, -1, 0).unwrap_err()),
        RejectCode::InvalidReplicationFactor
    );
    assert_eq!(
        code(place_replicas(&[], 3, 1, 0).unwrap_err()),
        RejectCode::InvalidReplicationFactor
    );
    assert_eq!(
        code(place_replicas(&b, 0, 1, 0).unwrap_err()),
        RejectCode::InvalidPartitions
    );
    assert_eq!(
        code(place_replicas(&b, -4, 1, 0).unwrap_err()),
        RejectCode::InvalidPartitions
    );
    let msg = place_replicas(&b, 1, 3, 0).unwrap_err().to_string();
    assert!(msg.contains("larger than the 2 available"), "{msg}");
}

fn image_with_brokers(ids: &[i32]) -> MetadataImage {
    let mut img = MetadataImage::default();
    for id in ids {
        let rec = MetadataRecord::RegisterBroker(BrokerRegistrationRecord {
            broker_id: *id,
            incarnation_id: Uuid::new_v4(),
            rack: Some("a".into()),
            endpoints: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "h".into(),
                port: 1,
                security_protocol: "PLAINTEXT".into(),
            }],
        });
        img = img
            .apply(img.revision() + 1, &MetadataProposal::new(vec![rec]))
            .unwrap();
        let epoch = img.broker(*id).unwrap().broker_epoch;
        let unfence = MetadataRecord::UnfenceBroker {
            broker_id: *id,
            broker_epoch: epoch,
        };
        img = img
            .apply(img.revision() + 1, &MetadataProposal::new(vec![unfence]))
            .unwrap();
    }
    img
}

#[test]
fn explicit_assignments_are_validated() {
    let img = image_with_brokers(&[1, 2, 3]);
    validate_assignment(&img, &[vec![1, 2], vec![2, 3], vec![3, 1]]).unwrap();
    let cases: Vec<(Vec<Vec<i32>>, &str)> = vec![
        (vec![], "no partition"),
        (vec![vec![1, 2], vec![]], "empty replica list"),
        (vec![vec![1, 2], vec![3]], "inconsistent replication factor"),
        (vec![vec![1, 1]], "twice"),
        (vec![vec![1, 9]], "not registered"),
    ];
    for (a, want) in cases {
        let e = validate_assignment(&img, &a).unwrap_err();
        assert!(e.to_string().contains(want), "{a:?}: {e}");
        assert_eq!(code(e), RejectCode::InvalidReplicaAssignment);
    }
}

#[test]
fn placed_topics_apply_to_the_image() {
    let img = image_with_brokers(&[1, 2, 3]);
    let brokers = placeable_brokers(&img);
    assert_eq!(brokers.len(), 3);
    let placed = place_replicas(&brokers, 5, 3, img.topic_count()).unwrap();
    validate_assignment(&img, &placed).unwrap();
    let id = Uuid::new_v4();
    let records = topic_creation_records("placed", id, BTreeMap::new(), &placed);
    let img = img
        .apply(img.revision() + 1, &MetadataProposal::new(records))
        .unwrap();
    let t = img.topic(&id).unwrap();
    assert_eq!(t.partitions.len(), 5);
    assert!(t
        .partitions
        .values()
        .all(|p| p.leader == p.replicas[0] && p.isr == p.replicas));
}
