//! Reassignments started, completed and cancelled, applied through `MetadataImage::apply`.

use super::*;
use crate::leadership::{alter_partition, fence_broker, AlterPartitionOutcome};
use crate::test_support::*;

/// Applies what `alter_reassignments` proposes and returns the new image and results.
fn run(
    img: &MetadataImage,
    requests: &[ReassignmentRequest],
    allow_rf_change: bool,
) -> (MetadataImage, Vec<Result<(), ReassignmentError>>) {
    let plan = alter_reassignments(img, requests, allow_rf_change);
    let next = if plan.records.is_empty() {
        img.clone()
    } else {
        step(img, plan.records)
    };
    (next, plan.results.into_iter().map(|(_, r)| r).collect())
}

fn to(t: uuid::Uuid, partition: i32, target: Option<&[i32]>) -> ReassignmentRequest {
    ReassignmentRequest {
        partition: (t, partition),
        target: target.map(<[i32]>::to_vec),
    }
}

/// The leader of partition 0 asks for `isr`; the change is applied.
fn leader_sets_isr(img: &MetadataImage, t: uuid::Uuid, isr: &[i32]) -> MetadataImage {
    let req = leader_asks(img, t, 0, isr);
    match alter_partition(img, &req).expect("accepted") {
        AlterPartitionOutcome::Propose(c) => step(img, vec![MetadataRecord::PartitionChange(c)]),
        AlterPartitionOutcome::Unchanged(_) => img.clone(),
    }
}

#[test]
fn a_move_adds_then_completes_when_the_target_is_in_sync() {
    let (img, t) = add_topic(&cluster(4), "t", &[], &[full(&[1, 2, 3])]);
    let (img, results) = run(&img, &[to(t, 0, Some(&[2, 3, 4]))], false);
    assert_eq!(results, vec![Ok(())]);
    let p = part(&img, t, 0);
    assert_eq!(p.replicas, vec![2, 3, 4, 1]);
    assert_eq!(p.adding_replicas, vec![4]);
    assert_eq!(p.removing_replicas, vec![1]);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
    assert_eq!(
        list_reassignments(&img, None)
            .iter()
            .map(|(t, i, _)| (t.name.as_str(), *i))
            .collect::<Vec<_>>(),
        vec![("t", 0)]
    );

    // Broker 4 catches up: the leader's ISR expansion completes the move, and the
    // removed leader hands over to the first target replica.
    let img = leader_sets_isr(&img, t, &[1, 2, 3, 4]);
    let p = part(&img, t, 0);
    assert_eq!(p.replicas, vec![2, 3, 4]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert_eq!(p.leader, 2);
    assert_eq!(p.leader_epoch, 1);
    assert!(!p.is_reassigning());
    assert!(list_reassignments(&img, None).is_empty());
}

#[test]
fn a_target_already_in_sync_completes_at_once() {
    let (img, t) = add_topic(&cluster(3), "t", &[], &[full(&[1, 2, 3])]);
    // Reordering only: the leader stays, the preferred replica changes.
    let (img, results) = run(&img, &[to(t, 0, Some(&[3, 1, 2]))], false);
    assert_eq!(results, vec![Ok(())]);
    let p = part(&img, t, 0);
    assert_eq!((p.replicas.clone(), p.leader), (vec![3, 1, 2], 1));
    assert!(!p.is_reassigning());
    // Shrinking the replication factor when allowed.
    let (img, results) = run(&img, &[to(t, 0, Some(&[2, 3]))], true);
    assert_eq!(results, vec![Ok(())]);
    let p = part(&img, t, 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 3], vec![2, 3], 2)
    );
    // The same replicas again change nothing.
    let (same, results) = run(&img, &[to(t, 0, Some(&[2, 3]))], false);
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(same.revision(), img.revision());
}

#[test]
fn cancelling_reverts_to_the_original_replicas() {
    let (img, t) = add_topic(&cluster(5), "t", &[], &[full(&[1, 2, 3])]);
    let (img, _) = run(&img, &[to(t, 0, Some(&[3, 4, 5]))], false);
    let img = leader_sets_isr(&img, t, &[1, 2, 3, 4]);
    assert_eq!(part(&img, t, 0).replicas, vec![3, 4, 5, 1, 2]);
    let (img, results) = run(&img, &[to(t, 0, None)], false);
    assert_eq!(results, vec![Ok(())]);
    let p = part(&img, t, 0);
    assert_eq!(p.replicas, vec![3, 1, 2]);
    assert_eq!(p.isr, vec![1, 2, 3]);
    assert_eq!(p.leader, 1);
    assert!(!p.is_reassigning());
    // Nothing left to cancel.
    let (_, results) = run(&img, &[to(t, 0, None)], false);
    assert_eq!(results, vec![Err(ReassignmentError::NoneInProgress)]);
    assert_eq!(results[0].as_ref().unwrap_err().kafka_error_code(), 85);
}

#[test]
fn a_revert_that_needs_an_unclean_election_is_refused() {
    let unclean = [("unclean.leader.election.enable", "true")];
    let (img, t) = add_topic(&cluster(3), "t", &unclean, &[full(&[1])]);
    let (img, _) = run(&img, &[to(t, 0, Some(&[2, 3]))], true);
    // Broker 1 dies before the others caught up; an unclean election makes 2 the whole
    // ISR, which is not yet the whole target.
    let img = step(&img, fence_broker(&img, 1));
    let p = part(&img, t, 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 3, 1], vec![2], 2)
    );
    let (_, results) = run(&img, &[to(t, 0, None)], false);
    assert!(matches!(
        results[0],
        Err(ReassignmentError::InvalidAssignment(ref m)) if m.contains("unclean")
    ));
}

#[test]
fn an_election_that_brings_the_target_in_sync_completes_the_move() {
    let unclean = [("unclean.leader.election.enable", "true")];
    let (img, t) = add_topic(&cluster(2), "t", &unclean, &[full(&[1])]);
    let (img, _) = run(&img, &[to(t, 0, Some(&[2]))], false);
    assert_eq!(part(&img, t, 0).replicas, vec![2, 1]);
    // Broker 1 dies; the unclean election makes 2, the whole target, the ISR.
    let img = step(&img, fence_broker(&img, 1));
    let p = part(&img, t, 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2], vec![2], 2)
    );
    assert!(!p.is_reassigning());
}

#[test]
fn a_new_target_while_moving_starts_from_the_current_replicas() {
    let (img, t) = add_topic(&cluster(5), "t", &[], &[full(&[1, 2, 3])]);
    let (img, _) = run(&img, &[to(t, 0, Some(&[2, 3, 4]))], false);
    let (img, results) = run(&img, &[to(t, 0, Some(&[2, 3, 5]))], false);
    assert_eq!(results, vec![Ok(())]);
    let p = part(&img, t, 0);
    assert_eq!(p.replicas, vec![2, 3, 5, 4, 1]);
    assert_eq!(p.adding_replicas, vec![5]);
    assert_eq!(p.removing_replicas, vec![4, 1]);
    assert_eq!(p.target_replicas(), vec![2, 3, 5]);
}

#[test]
fn bad_targets_are_refused_with_kafkas_codes() {
    let (img, t) = add_topic(&cluster(4), "t", &[], &[full(&[1, 2, 3])]);
    let cases: Vec<(ReassignmentRequest, i16)> = vec![
        (to(t, 0, Some(&[])), 39),
        (to(t, 0, Some(&[2, 2, 3])), 39),
        (to(t, 0, Some(&[2, 3, 9])), 39),
        (to(t, 7, Some(&[1, 2, 3])), 3),
        (to(uuid::Uuid::new_v4(), 0, Some(&[1, 2, 3])), 3),
        (to(t, 0, Some(&[1, 2, 3, 4])), 38),
    ];
    for (request, code) in cases {
        let plan = alter_reassignments(&img, std::slice::from_ref(&request), false);
        assert!(plan.records.is_empty(), "{request:?}");
        let err = plan.results[0].1.clone().unwrap_err();
        assert_eq!(err.kafka_error_code(), code, "{request:?}: {err}");
    }
    // Named twice: both refused, nothing proposed.
    let twice = [to(t, 0, Some(&[2, 3, 4])), to(t, 0, Some(&[1, 2, 4]))];
    let plan = alter_reassignments(&img, &twice, false);
    assert!(plan.records.is_empty());
    assert!(plan.results.iter().all(|(_, r)| r.is_err()));
}

#[test]
fn the_image_refuses_inconsistent_reassignment_state() {
    let (img, t) = add_topic(&cluster(4), "t", &[], &[full(&[1, 2, 3])]);
    let bad = |adding: Vec<i32>, removing: Vec<i32>| PartitionChangeRecord {
        topic_id: t,
        partition: 0,
        adding_replicas: Some(adding),
        removing_replicas: Some(removing),
        ..PartitionChangeRecord::default()
    };
    for change in [
        bad(vec![4], vec![]),
        bad(vec![1], vec![1]),
        bad(vec![], vec![1, 2, 3]),
        bad(vec![2, 2], vec![]),
    ] {
        let proposal =
            crate::records::MetadataProposal::new(vec![MetadataRecord::PartitionChange(change)]);
        assert!(img.apply(img.revision() + 1, &proposal).is_err());
    }
}
