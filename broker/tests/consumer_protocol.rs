//! The consumer group protocol of KIP-848 over the wire, against the real `isthmus`
//! process: ConsumerGroupHeartbeat joins, revocation before reassignment, epochs checked on
//! heartbeats, commits and fetches, session expiry, leaving, ConsumerGroupDescribe,
//! ListGroups types, clashes with the classic protocol, and the request checks Kafka makes.

mod common;
mod wire;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestBroker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use wire::Wire;

const TOPIC: &str = "kip848";
const GROUP: &str = "g848";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn start() -> TestBroker {
    TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.heartbeat.interval.ms", "250"),
        ("group.consumer.session.timeout.ms", "1500"),
    ])
}

fn create_topic(w: &mut Wire, partitions: i32) -> Uuid {
    let r = w.call(
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(text(TOPIC)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]),
    );
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    r.topics[0].topic_id
}

fn join(member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(GROUP)))
        .with_member_id(text(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(5000)
        .with_subscribed_topic_names(Some(vec![TopicName(text(TOPIC))]))
        .with_server_assignor(None)
        .with_instance_id(None)
        .with_rack_id(None)
        .with_subscribed_topic_regex(None)
        .with_topic_partitions(Some(vec![]))
}

fn beat(member: &str, epoch: i32, owned: &[(Uuid, Vec<i32>)]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(GROUP)))
        .with_member_id(text(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_subscribed_topic_names(None)
        .with_server_assignor(None)
        .with_instance_id(None)
        .with_rack_id(None)
        .with_subscribed_topic_regex(None)
        .with_topic_partitions(Some(
            owned
                .iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps.clone())
                })
                .collect(),
        ))
}

fn heartbeat(w: &mut Wire, req: &ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    w.call(1, req)
}

/// The partitions of the one topic in a heartbeat answer's assignment (None if absent).
fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<i32>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect()
    })
}

fn commit(w: &mut Wire, member: &str, epoch: i32, offset: i64) -> i16 {
    let r = w.call(
        9,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_member_id(text(member))
            .with_generation_id_or_member_epoch(epoch)
            .with_group_instance_id(None)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(text(TOPIC)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)
                    .with_committed_metadata(Some(text("")))])]),
    );
    r.topics[0].partitions[0].error_code
}

/// (group error, committed offset of partition 0) as a member (or an admin, member None).
fn fetch(w: &mut Wire, member: Option<&str>, epoch: i32) -> (i16, i64) {
    let r = w.call(
        9,
        &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_member_id(member.map(text))
            .with_member_epoch(epoch)
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(text(TOPIC)))
                .with_partition_indexes(vec![0])]))]),
    );
    let g = &r.groups[0];
    let offset = g
        .topics
        .first()
        .map_or(-2, |t| t.partitions[0].committed_offset);
    (g.error_code, offset)
}

fn list_groups(w: &mut Wire, types: &[&str]) -> Vec<(String, String, String, String)> {
    let r = w.call(
        5,
        &ListGroupsRequest::default().with_types_filter(types.iter().map(|t| text(t)).collect()),
    );
    r.groups
        .into_iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect()
}

#[test]
fn members_revoke_before_reassignment_and_epochs_are_enforced() {
    let broker = start();
    let mut w = Wire::connect(&broker.bootstrap());
    let topic = create_topic(&mut w, 4);
    let all: BTreeSet<i32> = (0..4).collect();

    // a joins alone and gets everything at epoch 1.
    let a = heartbeat(&mut w, &join("member-a"));
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    assert_eq!(a.member_id.as_deref(), Some("member-a"));
    assert_eq!(a.member_epoch, 1);
    assert_eq!(assigned(&a), Some(all.clone()));
    assert!(a.heartbeat_interval_ms == 250);

    // b joins: epoch 2, but nothing until a gives partitions up.
    let b = heartbeat(&mut w, &join("member-b"));
    assert_eq!(b.member_epoch, 2);
    assert_eq!(assigned(&b), Some(BTreeSet::new()));

    // a is told to keep two; it stays at epoch 1 until it reports the others released.
    let a = heartbeat(
        &mut w,
        &beat("member-a", 1, &[(topic, all.iter().copied().collect())]),
    );
    assert_eq!(a.member_epoch, 1);
    let kept = assigned(&a).expect("a's assignment changed");
    assert_eq!(kept.len(), 2);
    let given_up: Vec<i32> = all.difference(&kept).copied().collect();

    // Nothing for b while a still holds them.
    let b = heartbeat(&mut w, &beat("member-b", 2, &[]));
    assert_eq!(b.member_epoch, 2);
    assert!(assigned(&b).is_none_or(|p| p.is_empty()), "{b:?}");

    // A commit with a's old epoch is fine (still epoch 1); a future epoch is not.
    assert_eq!(commit(&mut w, "member-a", 1, 7), 0);
    assert_eq!(
        commit(&mut w, "member-a", 2, 7),
        code(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        commit(&mut w, "nobody", 1, 7),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        commit(&mut w, "", -1, 7),
        code(ResponseError::UnknownMemberId)
    );

    let a = heartbeat(
        &mut w,
        &beat("member-a", 1, &[(topic, kept.iter().copied().collect())]),
    );
    assert_eq!(a.member_epoch, 2);
    let b = heartbeat(&mut w, &beat("member-b", 2, &[]));
    assert_eq!(assigned(&b), Some(given_up.iter().copied().collect()));
    assert_eq!(fetch(&mut w, Some("member-a"), 2), (0, 7));
    assert_eq!(
        fetch(&mut w, Some("member-a"), 1).0,
        code(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        fetch(&mut w, Some("ghost"), 2).0,
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(fetch(&mut w, None, -1), (0, 7));

    // A heartbeat from the future is fenced.
    let fenced = heartbeat(&mut w, &beat("member-a", 9, &[]));
    assert_eq!(fenced.error_code, code(ResponseError::FencedMemberEpoch));

    // The group as the admin APIs see it.
    let d: ConsumerGroupDescribeResponse = w.call(
        1,
        &ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(text(GROUP)), GroupId(text("nope"))]),
    );
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    for m in &g.members {
        assert_eq!(m.member_epoch, 2);
        assert_eq!(m.subscribed_topic_names[0].0.as_str(), TOPIC);
        assert_eq!(
            m.assignment.topic_partitions[0].topic_name.0.as_str(),
            TOPIC
        );
        assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 2);
        assert_eq!(
            m.assignment.topic_partitions[0].partitions,
            m.target_assignment.topic_partitions[0].partitions
        );
    }
    assert_eq!(d.groups[1].error_code, code(ResponseError::GroupIdNotFound));
    assert_eq!(
        list_groups(&mut w, &[]),
        vec![(
            GROUP.into(),
            "consumer".into(),
            "Stable".into(),
            "consumer".into()
        )]
    );
    assert!(list_groups(&mut w, &["classic"]).is_empty());

    // The classic APIs see a group that is not theirs.
    let described: DescribeGroupsResponse = w.call(
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(text(GROUP))]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Dead");
    let joined: JoinGroupResponse = w.call(
        7,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(text(""))
            .with_group_instance_id(None)
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0]))]),
    );
    assert_eq!(
        joined.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    let deleted: DeleteGroupsResponse = w.call(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text(GROUP))]),
    );
    assert_eq!(
        deleted.results[0].error_code,
        code(ResponseError::NonEmptyGroup)
    );

    // b goes silent while a keeps heartbeating: after b's session times out, a gets
    // everything at a new epoch.
    let (mut epoch, mut owned) = (2, kept.clone());
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(250));
        let a = heartbeat(
            &mut w,
            &beat(
                "member-a",
                epoch,
                &[(topic, owned.iter().copied().collect())],
            ),
        );
        assert_eq!(a.error_code, 0, "{:?}", a.error_message);
        epoch = a.member_epoch;
        if let Some(p) = assigned(&a) {
            owned = p;
        }
    }
    assert_eq!(epoch, 3);
    assert_eq!(owned, all);
    let b = heartbeat(&mut w, &beat("member-b", 2, &[]));
    assert_eq!(b.error_code, code(ResponseError::UnknownMemberId));

    // a leaves: the group is empty and may be deleted.
    let left = heartbeat(&mut w, &beat("member-a", -1, &[]));
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    assert_eq!(list_groups(&mut w, &["consumer"])[0].2, "Empty");
    let deleted: DeleteGroupsResponse = w.call(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text(GROUP))]),
    );
    assert_eq!(deleted.results[0].error_code, 0);
}

#[test]
fn members_are_unknown_after_a_restart_but_commits_survive() {
    let mut broker = start();
    let mut w = Wire::connect(&broker.bootstrap());
    create_topic(&mut w, 2);
    let a = heartbeat(&mut w, &join("member-a"));
    assert_eq!(commit(&mut w, "member-a", a.member_epoch, 42), 0);
    broker.kill();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap());
    // Member state is not persisted: the member learns it must rejoin.
    let r = heartbeat(&mut w, &beat("member-a", a.member_epoch, &[]));
    assert_eq!(r.error_code, code(ResponseError::UnknownMemberId));
    let a = heartbeat(&mut w, &join("member-a"));
    assert_eq!(a.error_code, 0);
    assert_eq!(assigned(&a).map(|p| p.len()), Some(2));
    assert_eq!(fetch(&mut w, Some("member-a"), a.member_epoch), (0, 42));
}

#[test]
fn bad_heartbeats_get_kafka_errors_and_the_connection_stays_usable() {
    let broker = start();
    let mut w = Wire::connect(&broker.bootstrap());
    create_topic(&mut w, 1);
    let invalid = code(ResponseError::InvalidRequest);
    let cases: Vec<(&str, ConsumerGroupHeartbeatRequest, i16)> = vec![
        ("empty member id at v1", join(""), invalid),
        (
            "empty group id",
            join("m").with_group_id(GroupId(text(""))),
            invalid,
        ),
        (
            "join without a rebalance timeout",
            join("m").with_rebalance_timeout_ms(-1),
            invalid,
        ),
        (
            "join claiming partitions",
            join("m").with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic_id(Uuid::new_v4())
                .with_partitions(vec![0])])),
            invalid,
        ),
        (
            "join with neither topics nor regex",
            join("m").with_subscribed_topic_names(None),
            invalid,
        ),
        (
            "empty instance id",
            join("m").with_instance_id(Some(text(""))),
            invalid,
        ),
        (
            "empty rack id",
            join("m").with_rack_id(Some(text(""))),
            invalid,
        ),
        ("epoch below -2", beat("m", -3, &[]), invalid),
        (
            "static leave without instance id",
            beat("m", -2, &[]),
            invalid,
        ),
        (
            "unknown server assignor",
            join("m").with_server_assignor(Some(text("sticky"))),
            code(ResponseError::UnsupportedAssignor),
        ),
        (
            "invalid regex",
            join("m")
                .with_subscribed_topic_names(None)
                .with_subscribed_topic_regex(Some(text("(unclosed"))),
            code(ResponseError::InvalidRegularExpression),
        ),
        (
            "heartbeat of an unknown member",
            beat("stranger", 3, &[]),
            code(ResponseError::UnknownMemberId),
        ),
        (
            "leave of an unknown member",
            beat("stranger", -1, &[]),
            code(ResponseError::UnknownMemberId),
        ),
    ];
    for (what, req, expected) in cases {
        let r = heartbeat(&mut w, &req);
        assert_eq!(r.error_code, expected, "{what}: {:?}", r.error_message);
        assert!(r.error_message.is_some(), "{what}: no message");
    }
    // v0 may join without an id: the broker makes one.
    let r: ConsumerGroupHeartbeatResponse = w.call(0, &join(""));
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert!(!r.member_id.unwrap().is_empty());
    // A classic group with members is not taken over.
    let classic: JoinGroupResponse = w.call(
        3,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(text("classic-group")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(text(""))
            .with_group_instance_id(None)
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0]))]),
    );
    assert_eq!(classic.error_code, 0);
    let r = heartbeat(
        &mut w,
        &join("m").with_group_id(GroupId(text("classic-group"))),
    );
    assert_eq!(r.error_code, code(ResponseError::GroupIdNotFound));
    let d: ConsumerGroupDescribeResponse = w.call(
        0,
        &ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(text("classic-group")), GroupId(text(""))]),
    );
    assert_eq!(d.groups[0].error_code, code(ResponseError::GroupIdNotFound));
    assert_eq!(d.groups[1].error_code, code(ResponseError::InvalidGroupId));
}
