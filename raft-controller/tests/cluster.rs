//! Three controllers over real TCP on loopback, in one process.

mod common;

use std::time::Duration;

use common::*;
use isthmus_controller::{parse_voters, Controller, ControllerConfig, ControllerError, RejectCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_commit_from_any_node_and_converge() {
    init_tracing();
    let mut cluster = TestCluster::format(3, |_| {});
    cluster.start_all().await;
    let leader = cluster.leader().await;

    // Proposals from every node, leader and followers (forwarded).
    register_brokers(cluster.node(1)).await;
    let mut last = 0;
    for id in 1..=3 {
        let rev = cluster
            .node(id)
            .propose(topic(&format!("from-node-{id}"), &[&[1, 3], &[2, 3]]))
            .await
            .unwrap();
        assert!(rev > last, "revisions grow: {rev} after {last}");
        last = rev;
        // propose returns once the proposing node's own image has the entry.
        assert!(cluster
            .node(id)
            .image()
            .topic_by_name(&format!("from-node-{id}"))
            .is_some());
    }
    cluster.converge(last).await;
    let img = cluster.node(leader).image();
    assert_eq!(img.topic_count(), 3);
    assert_eq!(img.brokers().len(), 3);
    assert!(img.brokers().values().all(|b| !b.fenced));

    // A bad record is refused with a Kafka-named code, from a follower too.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let err = cluster
        .node(follower)
        .propose(topic("from-node-1", &[&[1]]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControllerError::Rejected(r) if r.code == RejectCode::TopicAlreadyExists),
        "{err}"
    );
    let err = cluster
        .node(follower)
        .propose(topic("bad", &[&[1, 42]]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControllerError::Rejected(r) if r.code == RejectCode::InvalidReplicaAssignment),
        "{err}"
    );

    // DescribeQuorum's view from the leader: every voter caught up.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = cluster.node(leader).quorum_status();
        assert!(st.is_leader);
        assert_eq!(st.voters.len(), 3);
        if st.voters.iter().all(|v| v.lag == Some(0)) {
            assert!(st
                .voters
                .iter()
                .all(|v| v.log_end_offset == Some(st.log_end_offset)));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "voters never caught up: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = cluster.node(follower).quorum_status();
    assert_eq!(st.leader, Some(leader));
    assert!(!st.is_leader);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_then_restart_catches_up() {
    init_tracing();
    let mut cluster = TestCluster::format(3, |_| {});
    cluster.start_all().await;
    let old = cluster.leader().await;
    register_brokers(cluster.node(old)).await;
    let rev = cluster
        .node(old)
        .propose(topic("before", &[&[1, 2, 3]]))
        .await
        .unwrap();
    cluster.converge(rev).await;

    cluster.stop(old).await;
    let new = cluster.leader().await;
    assert_ne!(new, old, "a new leader among the two left");
    let other = (1..=3).find(|id| *id != old && *id != new).unwrap();
    let mut last = 0;
    for i in 0..5 {
        let via = if i % 2 == 0 { new } else { other };
        last = cluster
            .node(via)
            .propose(topic(&format!("after-{i}"), &[&[1, 3]]))
            .await
            .unwrap();
    }
    cluster.converge(last).await;

    // The old leader restarts from its directory and catches up.
    cluster.start(old).await;
    cluster.converge(last).await;
    let img = cluster.node(old).image();
    assert!(img.topic_by_name("before").is_some());
    assert!(img.topic_by_name("after-4").is_some());
    assert_eq!(cluster.leader().await, new, "the restarted node follows");
    // It can propose again (forwarded).
    let rev = cluster
        .node(old)
        .propose(topic("from-restarted", &[&[2]]))
        .await
        .unwrap();
    cluster.converge(rev).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_gets_a_snapshot_after_the_leader_purged_its_log() {
    init_tracing();
    let mut cluster = TestCluster::format(3, |c| {
        c.snapshot_after_entries = 10;
        c.log_entries_kept_after_snapshot = 0;
    });
    cluster.start_all().await;
    let leader = cluster.leader().await;
    register_brokers(cluster.node(leader)).await;
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    let stopped_at = cluster.node(lagging).image().revision();
    cluster.stop(lagging).await;

    let mut last = 0;
    for i in 0..30 {
        last = cluster
            .node(leader)
            .propose(topic(&format!("t{i}"), &[&[1, 2]]))
            .await
            .unwrap();
    }
    cluster.node(leader).trigger_snapshot().await.unwrap();
    // Wait until the leader's log no longer holds what the lagging node needs.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = cluster.node(leader).quorum_status();
        if st.log_start_offset > stopped_at + 1 && st.snapshot_index.is_some_and(|s| s >= last) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leader never purged: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cluster.start(lagging).await;
    cluster.converge(last).await;
    // The image got there by a snapshot: metrics report it (they trail the image a
    // little, so poll).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = cluster.node(lagging).quorum_status();
        if st.snapshot_index.is_some_and(|s| s > stopped_at) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lagging node never reported an installed snapshot: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cluster.node(lagging).image().topic_by_name("t29").is_some());
    // Its snapshot is on disk and it restarts from it.
    cluster.stop(lagging).await;
    cluster.start(lagging).await;
    assert!(
        cluster.node(lagging).image().revision() > stopped_at,
        "image from the snapshot at start"
    );
    let rev = cluster
        .node(lagging)
        .propose(topic("after-snapshot", &[&[3]]))
        .await
        .unwrap();
    cluster.converge(rev).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_voter_list_refuses_to_start() {
    init_tracing();
    let cluster = TestCluster::format(3, |_| {});
    let mut c: ControllerConfig = cluster.configs[0].clone();
    let p = free_port();
    c.voters = parse_voters(&format!(
        "1@{},2@{},4@127.0.0.1:{p}",
        cluster.configs[0].voters[0].addr(),
        cluster.configs[0].voters[1].addr()
    ))
    .unwrap();
    let err = Controller::start(c).await.unwrap_err();
    assert!(
        matches!(err, ControllerError::VoterMismatch { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("refusing to start") && msg.contains("4@127.0.0.1"),
        "{msg}"
    );

    // A node started with the wrong id is refused too.
    let mut c = cluster.configs[0].clone();
    c.node_id = 2;
    let err = Controller::start(c).await.unwrap_err();
    assert!(err.to_string().contains("node.id mismatch"), "{err}");
}

#[tokio::test]
async fn format_refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leftover"), b"x").unwrap();
    let voters = parse_voters("1@127.0.0.1:19093").unwrap();
    let err = isthmus_controller::format(dir.path(), CLUSTER_ID, 1, &voters).unwrap_err();
    assert!(
        matches!(err, ControllerError::DirectoryNotEmpty { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not empty"));
    // And start refuses an unformatted one.
    let empty = tempfile::tempdir().unwrap();
    let c = ControllerConfig::new(1, voters, "127.0.0.1:0".parse().unwrap(), empty.path());
    let err = Controller::start(c).await.unwrap_err();
    assert!(matches!(err, ControllerError::NotFormatted { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_voter_starts_commits_and_restarts() {
    init_tracing();
    let mut cluster = TestCluster::format(1, |_| {});
    cluster.start_all().await;
    assert_eq!(cluster.leader().await, 1);
    let c = cluster.node(1).clone();
    assert!(c.is_leader());
    let mut rx = c.subscribe();
    register_brokers(&c).await;
    let rev = c.propose(topic("solo", &[&[1], &[2], &[3]])).await.unwrap();
    assert_eq!(c.image().revision(), rev);
    assert!(
        rx.borrow_and_update().revision() >= rev,
        "subscribers see the new image"
    );
    let before = c.image();
    cluster.stop(1).await;
    cluster.start(1).await;
    let c = cluster.node(1).clone();
    // The image comes back by replaying the committed log.
    let img = c.wait_for_revision(rev, WAIT).await.unwrap();
    assert_eq!(img.topic_by_name("solo"), before.topic_by_name("solo"));
    assert_eq!(img.brokers(), before.brokers());
    cluster.leader().await;
    let rev2 = c.propose(topic("solo-2", &[&[1]])).await.unwrap();
    assert!(rev2 > rev);
    let st = c.quorum_status();
    assert_eq!(st.voters.len(), 1);
    assert_eq!(st.voters[0].lag, Some(0));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_propose_fails_in_bounded_time() {
    init_tracing();
    let mut cluster = TestCluster::format(3, |c| c.request_timeout_ms = 4000);
    cluster.start_all().await;
    let leader = cluster.leader().await;
    register_brokers(cluster.node(leader)).await;
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    for id in 1..=3 {
        if id != survivor {
            cluster.stop(id).await;
        }
    }
    let started = tokio::time::Instant::now();
    let err = cluster
        .node(survivor)
        .propose(topic("nobody-commits", &[&[1]]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::NotLeader { .. }
                | ControllerError::Network(_)
                | ControllerError::Timeout(_)
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(cluster
        .node(survivor)
        .image()
        .topic_by_name("nobody-commits")
        .is_none());
    cluster.shutdown().await;
}
