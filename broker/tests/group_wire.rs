//! Consumer-group APIs over the raw wire against the real `isthmus` process:
//!
//! - bad input gets exactly the error codes Apache Kafka 4.x answers (unknown members,
//!   stale generations, unknown topics and partitions, oversized metadata, unknown groups,
//!   inconsistent protocols, expired sessions, empty group ids), and the connection keeps
//!   serving after every error answer; truncated bodies close only their own connection;
//! - committed offsets are durable: an acknowledged commit survives `kill -9`, for many
//!   groups spread over the `__consumer_offsets` partitions.

mod common;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestBroker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use wire::Wire;

const NONE: i16 = 0;
const TOPIC: &str = "t";
const TOPIC_PARTITIONS: i32 = 3;
/// offset.metadata.max.bytes for these brokers.
const METADATA_MAX_BYTES: usize = 1024;
/// Session timeout of members that are left to expire.
const SHORT_SESSION_MS: i32 = 1000;
const SESSION_MS: i32 = 30_000;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn gid(text: &str) -> GroupId {
    GroupId(s(text))
}

fn tname(text: &str) -> TopicName {
    TopicName(s(text))
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn create_topic(w: &mut Wire, name: &str, partitions: i32) {
    let r = w.call(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(tname(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(5000),
    );
    assert_eq!(r.topics[0].error_code, NONE, "create topic {name}");
}

fn protocols(names: &[&str]) -> Vec<JoinGroupRequestProtocol> {
    names
        .iter()
        .map(|n| {
            JoinGroupRequestProtocol::default()
                .with_name(s(n))
                .with_metadata(Bytes::from_static(b"\x00\x01meta"))
        })
        .collect()
}

fn join_request(
    group: &str,
    member: &str,
    protocol_type: &str,
    protocol_names: &[&str],
    session_ms: i32,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(session_ms)
        .with_member_id(s(member))
        .with_protocol_type(s(protocol_type))
        .with_protocols(protocols(protocol_names))
}

/// JoinGroup v5 with the MEMBER_ID_REQUIRED round trip, then SyncGroup as the only member
/// (so the leader): returns (member id, generation) of a Stable group of one.
fn join_alone(w: &mut Wire, group: &str, session_ms: i32) -> (String, i32) {
    let first = w.call(
        5,
        &join_request(group, "", "consumer", &["range"], session_ms),
    );
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let joined = w.call(
        5,
        &join_request(group, &member, "consumer", &["range"], session_ms),
    );
    assert_eq!(joined.error_code, NONE, "join {group}");
    assert_eq!(joined.leader.as_str(), member);
    let generation = joined.generation_id;
    let synced = w.call(
        5,
        &SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(&member))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"assigned"))]),
    );
    assert_eq!(synced.error_code, NONE, "sync {group}");
    assert_eq!(synced.assignment.as_ref(), b"assigned");
    (member, generation)
}

fn heartbeat(w: &mut Wire, group: &str, generation: i32, member: &str) -> i16 {
    w.call(
        4,
        &HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(member)),
    )
    .error_code
}

fn sync(w: &mut Wire, group: &str, generation: i32, member: &str, protocol: &str) -> i16 {
    w.call(
        5,
        &SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s(protocol))),
    )
    .error_code
}

/// One partition of a commit: (topic, partition, offset, metadata).
type Commit<'a> = (&'a str, i32, i64, Option<String>);

fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[Commit<'_>],
) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (topic, partition, offset, metadata) in offsets {
        topics.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(metadata.as_deref().map(s)),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(tname(name))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// OffsetCommit at `version`; the answer as (topic, partition) → error code.
fn commit_at(
    w: &mut Wire,
    version: i16,
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[Commit<'_>],
) -> BTreeMap<(String, i32), i16> {
    let r = w.call(version, &commit_request(group, generation, member, offsets));
    let mut out = BTreeMap::new();
    for t in &r.topics {
        for p in &t.partitions {
            let previous = out.insert((t.name.0.to_string(), p.partition_index), p.error_code);
            assert!(previous.is_none(), "partition answered twice: {r:?}");
        }
    }
    assert_eq!(
        out.len(),
        offsets.len(),
        "every committed partition must be answered once: {r:?}"
    );
    out
}

fn commit(
    w: &mut Wire,
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[Commit<'_>],
) -> BTreeMap<(String, i32), i16> {
    commit_at(w, 8, group, generation, member, offsets)
}

fn expect(codes: &[(&str, i32, i16)]) -> BTreeMap<(String, i32), i16> {
    codes
        .iter()
        .map(|(t, p, c)| ((t.to_string(), *p), *c))
        .collect()
}

/// OffsetFetch v7 (one group): (topic, partition) → (offset, metadata), for the named
/// partitions, or all of the group's when `partitions` is None.
fn fetch_offsets(
    w: &mut Wire,
    group: &str,
    partitions: Option<&[(&str, i32)]>,
) -> BTreeMap<(String, i32), (i64, String)> {
    let topics = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in ps {
            by_topic.entry(t).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(tname(t))
                    .with_partition_indexes(ps)
            })
            .collect()
    });
    let r = w.call(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(topics),
    );
    assert_eq!(r.error_code, NONE, "OffsetFetch {group}: {r:?}");
    let mut out = BTreeMap::new();
    for t in &r.topics {
        for p in &t.partitions {
            assert_eq!(p.error_code, NONE, "OffsetFetch {group}: {r:?}");
            out.insert(
                (t.name.0.to_string(), p.partition_index),
                (
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                ),
            );
        }
    }
    out
}

fn describe(w: &mut Wire, version: i16, group: &str) -> describe_groups_response::DescribedGroup {
    let r = w.call(
        version,
        &DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
    );
    assert_eq!(r.groups.len(), 1);
    r.groups[0].clone()
}

/// The connection still answers a normal request after an error answer.
fn assert_usable(w: &mut Wire) {
    let r = w.call(3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, NONE);
}

#[test]
fn group_requests_get_kafkas_error_codes() {
    let metadata_max = METADATA_MAX_BYTES.to_string();
    let broker = TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "1000"),
        ("offset.metadata.max.bytes", &metadata_max),
        ("auto.create.topics.enable", "false"),
    ]);
    let mut w = Wire::connect(&broker.bootstrap());
    create_topic(&mut w, TOPIC, TOPIC_PARTITIONS);

    let (member, generation) = join_alone(&mut w, "g", SESSION_MS);
    assert_eq!(generation, 1);

    // -- OffsetCommit: unknown member, stale and future generations.
    assert_eq!(
        commit(&mut w, "g", generation, "nobody", &[(TOPIC, 0, 5, None)]),
        expect(&[(TOPIC, 0, code(ResponseError::UnknownMemberId))]),
        "commit from an unknown member"
    );
    assert_usable(&mut w);
    for stale in [generation - 1, generation + 1] {
        assert_eq!(
            commit(&mut w, "g", stale, &member, &[(TOPIC, 0, 5, None)]),
            expect(&[(TOPIC, 0, code(ResponseError::IllegalGeneration))]),
            "commit with generation {stale} while the group is at {generation}"
        );
    }
    assert_usable(&mut w);
    // Kafka checks topics before the group: unknown topics and partitions are answered
    // UNKNOWN_TOPIC_OR_PARTITION whatever the member, the rest gets the group's verdict.
    assert_eq!(
        commit(
            &mut w,
            "g",
            generation,
            "nobody",
            &[
                (TOPIC, 1, 5, None),
                ("missing", 0, 5, None),
                (TOPIC, 9, 5, None)
            ]
        ),
        expect(&[
            (TOPIC, 1, code(ResponseError::UnknownMemberId)),
            ("missing", 0, code(ResponseError::UnknownTopicOrPartition)),
            (TOPIC, 9, code(ResponseError::UnknownTopicOrPartition)),
        ]),
        "unknown member committing to known and unknown partitions"
    );
    // Nothing of the refused commits was stored.
    let all = fetch_offsets(&mut w, "g", None);
    assert!(all.is_empty(), "refused commits were stored: {all:?}");

    // -- OffsetCommit from the member: unknown topics and partitions, metadata too large;
    //    the other partitions of the same request still commit.
    let at_limit = "m".repeat(METADATA_MAX_BYTES);
    let over_limit = "o".repeat(METADATA_MAX_BYTES + 1);
    let one_mib = "x".repeat(1 << 20);
    assert_eq!(
        commit(
            &mut w,
            "g",
            generation,
            &member,
            &[
                (TOPIC, 0, 10, Some("first".into())),
                (TOPIC, 1, 11, Some(one_mib.clone())),
                (TOPIC, 2, 12, Some(at_limit.clone())),
                (TOPIC, TOPIC_PARTITIONS, 13, None),
                ("missing", 0, 14, None),
            ]
        ),
        expect(&[
            (TOPIC, 0, NONE),
            (TOPIC, 1, code(ResponseError::OffsetMetadataTooLarge)),
            (TOPIC, 2, NONE),
            (
                TOPIC,
                TOPIC_PARTITIONS,
                code(ResponseError::UnknownTopicOrPartition)
            ),
            ("missing", 0, code(ResponseError::UnknownTopicOrPartition)),
        ])
    );
    assert_eq!(
        commit(
            &mut w,
            "g",
            generation,
            &member,
            &[(TOPIC, 1, 21, Some(over_limit)), (TOPIC, 0, 20, None)]
        ),
        expect(&[
            (TOPIC, 1, code(ResponseError::OffsetMetadataTooLarge)),
            (TOPIC, 0, NONE),
        ])
    );
    let fetched = fetch_offsets(
        &mut w,
        "g",
        Some(&[(TOPIC, 0), (TOPIC, 1), (TOPIC, 2), ("missing", 0)]),
    );
    let want: BTreeMap<(String, i32), (i64, String)> = [
        ((TOPIC.to_string(), 0), (20, String::new())),
        ((TOPIC.to_string(), 1), (-1, String::new())),
        ((TOPIC.to_string(), 2), (12, at_limit.clone())),
        (("missing".to_string(), 0), (-1, String::new())),
    ]
    .into_iter()
    .collect();
    assert_eq!(fetched, want, "offsets after partly refused commits");

    // -- OffsetCommit to a group that does not exist, from a would-be member: Kafka 4
    //    answers GROUP_ID_NOT_FOUND from v9 and ILLEGAL_GENERATION before.
    assert_eq!(
        commit_at(&mut w, 9, "ghost", 3, "someone", &[(TOPIC, 0, 1, None)]),
        expect(&[(TOPIC, 0, code(ResponseError::GroupIdNotFound))]),
        "v9 commit to an unknown group"
    );
    assert_eq!(
        commit_at(&mut w, 8, "ghost", 3, "someone", &[(TOPIC, 0, 1, None)]),
        expect(&[(TOPIC, 0, code(ResponseError::IllegalGeneration))]),
        "v8 commit to an unknown group"
    );
    // A standalone consumer (generation -1, no member) may commit to a new group.
    assert_eq!(
        commit(&mut w, "standalone", -1, "", &[(TOPIC, 0, 7, None)]),
        expect(&[(TOPIC, 0, NONE)])
    );
    // …but not into a group that has members.
    assert_eq!(
        commit(&mut w, "g", -1, "", &[(TOPIC, 0, 7, None)]),
        expect(&[(TOPIC, 0, code(ResponseError::UnknownMemberId))]),
        "generation -1 commit into an active group"
    );
    assert_usable(&mut w);

    // -- Empty group id: refused by the membership APIs (INVALID_GROUP_ID); Kafka keeps
    //    accepting it for offset commits and fetches (and describe) for old clients.
    let r = w.call(5, &join_request("", "", "consumer", &["range"], SESSION_MS));
    assert_eq!(
        r.error_code,
        code(ResponseError::InvalidGroupId),
        "JoinGroup ''"
    );
    assert_eq!(
        sync(&mut w, "", 1, "m", "range"),
        code(ResponseError::InvalidGroupId),
        "SyncGroup ''"
    );
    assert_eq!(
        heartbeat(&mut w, "", 1, "m"),
        code(ResponseError::InvalidGroupId),
        "Heartbeat ''"
    );
    for version in [0i16, 5] {
        let r = w.call(
            version,
            &LeaveGroupRequest::default()
                .with_group_id(gid(""))
                .with_member_id(s("m"))
                .with_members(vec![MemberIdentity::default().with_member_id(s("m"))]),
        );
        assert_eq!(
            r.error_code,
            code(ResponseError::InvalidGroupId),
            "LeaveGroup v{version} ''"
        );
        assert!(r.members.is_empty());
    }
    assert_eq!(
        commit(
            &mut w,
            "",
            -1,
            "",
            &[(TOPIC, 0, 7, Some("anonymous".into()))]
        ),
        expect(&[(TOPIC, 0, NONE)]),
        "OffsetCommit ''"
    );
    assert_eq!(
        fetch_offsets(&mut w, "", None),
        [((TOPIC.to_string(), 0), (7, "anonymous".to_string()))]
            .into_iter()
            .collect(),
        "OffsetFetch v7 ''"
    );
    let r = w.call(
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(gid(""))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(gid("g"))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(tname(TOPIC))
                    .with_partition_indexes(vec![0])])),
        ]),
    );
    assert_eq!(r.groups.len(), 2);
    assert_eq!(r.groups[0].error_code, NONE, "OffsetFetch v8 '': {r:?}");
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 7);
    assert_eq!(r.groups[1].error_code, NONE);
    assert_eq!(r.groups[1].topics[0].partitions[0].committed_offset, 20);
    assert_usable(&mut w);

    // -- DescribeGroups of an unknown group: Dead with no error before v6,
    //    GROUP_ID_NOT_FOUND (still Dead) from v6.
    for version in [0, 5] {
        let d = describe(&mut w, version, "ghost");
        assert_eq!(d.error_code, NONE, "v{version}: {d:?}");
        assert_eq!(d.group_state.as_str(), "Dead", "v{version}");
        assert_eq!(d.protocol_type.as_str(), "", "v{version}");
        assert_eq!(d.protocol_data.as_str(), "", "v{version}");
        assert!(d.members.is_empty(), "v{version}");
    }
    let d = describe(&mut w, 6, "ghost");
    assert_eq!(d.error_code, code(ResponseError::GroupIdNotFound), "{d:?}");
    assert_eq!(d.group_state.as_str(), "Dead");
    assert!(d.members.is_empty());
    // The standalone group exists, empty and without a protocol.
    let d = describe(&mut w, 6, "standalone");
    assert_eq!(
        (
            d.error_code,
            d.group_state.as_str(),
            d.protocol_type.as_str()
        ),
        (NONE, "Empty", "")
    );
    let d = describe(&mut w, 6, "g");
    assert_eq!(
        (
            d.error_code,
            d.group_state.as_str(),
            d.protocol_data.as_str()
        ),
        (NONE, "Stable", "range")
    );
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id.as_str(), member);

    // -- JoinGroup: other protocol type, no common protocol, no protocols, empty type,
    //    session timeout out of bounds, unknown member ids.
    for (what, r) in [
        (
            "protocol type differs from the group's",
            w.call(5, &join_request("g", "", "connect", &["range"], SESSION_MS)),
        ),
        (
            "no protocol in common with the members",
            w.call(
                5,
                &join_request("g", "", "consumer", &["roundrobin"], SESSION_MS),
            ),
        ),
        (
            "no protocols",
            w.call(5, &join_request("fresh", "", "consumer", &[], SESSION_MS)),
        ),
        (
            "empty protocol type",
            w.call(5, &join_request("fresh", "", "", &["range"], SESSION_MS)),
        ),
    ] {
        assert_eq!(
            r.error_code,
            code(ResponseError::InconsistentGroupProtocol),
            "JoinGroup with {what}: {r:?}"
        );
        assert_eq!(r.member_id.as_str(), "", "{what}");
        assert_eq!(r.generation_id, -1, "{what}");
    }
    assert_usable(&mut w);
    for session in [999, 1_800_001] {
        let r = w.call(
            5,
            &join_request("fresh", "", "consumer", &["range"], session),
        );
        assert_eq!(
            r.error_code,
            code(ResponseError::InvalidSessionTimeout),
            "session timeout {session}"
        );
    }
    let r = w.call(
        5,
        &join_request("g", "impostor", "consumer", &["range"], SESSION_MS),
    );
    assert_eq!(
        r.error_code,
        code(ResponseError::UnknownMemberId),
        "JoinGroup with a member id the group never gave"
    );
    let r = w.call(
        5,
        &join_request("ghost", "impostor", "consumer", &["range"], SESSION_MS),
    );
    assert_eq!(
        r.error_code,
        code(ResponseError::UnknownMemberId),
        "JoinGroup with a member id into an unknown group"
    );

    // -- SyncGroup: wrong generation, unknown member, unknown group, other protocol.
    assert_eq!(
        sync(&mut w, "g", generation + 1, &member, "range"),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        sync(&mut w, "g", generation - 1, &member, "range"),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        sync(&mut w, "g", generation, "nobody", "range"),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        sync(&mut w, "ghost", 1, "nobody", "range"),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        sync(&mut w, "g", generation, &member, "roundrobin"),
        code(ResponseError::InconsistentGroupProtocol)
    );
    // The member is unaffected by all of the above.
    assert_eq!(sync(&mut w, "g", generation, &member, "range"), NONE);
    assert_eq!(heartbeat(&mut w, "g", generation, &member), NONE);

    // -- Heartbeat: wrong generation, unknown member, unknown group.
    assert_eq!(
        heartbeat(&mut w, "g", generation + 1, &member),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        heartbeat(&mut w, "g", generation, "nobody"),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        heartbeat(&mut w, "ghost", 1, "nobody"),
        code(ResponseError::UnknownMemberId)
    );

    // -- LeaveGroup of an unknown member or group: per-member UNKNOWN_MEMBER_ID from v3
    //    (top-level before); the group stays.
    let r = w.call(
        5,
        &LeaveGroupRequest::default()
            .with_group_id(gid("ghost"))
            .with_members(vec![MemberIdentity::default().with_member_id(s("nobody"))]),
    );
    assert_eq!(r.error_code, NONE, "{r:?}");
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        r.members[0].error_code,
        code(ResponseError::UnknownMemberId)
    );
    let r = w.call(
        2,
        &LeaveGroupRequest::default()
            .with_group_id(gid("ghost"))
            .with_member_id(s("nobody")),
    );
    assert_eq!(r.error_code, code(ResponseError::UnknownMemberId), "{r:?}");
    let r = w.call(
        2,
        &LeaveGroupRequest::default()
            .with_group_id(gid("g"))
            .with_member_id(s("nobody")),
    );
    assert_eq!(r.error_code, code(ResponseError::UnknownMemberId), "{r:?}");
    let r = w.call(
        5,
        &LeaveGroupRequest::default()
            .with_group_id(gid("g"))
            .with_members(vec![MemberIdentity::default().with_member_id(s("nobody"))]),
    );
    assert_eq!(r.error_code, NONE, "{r:?}");
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        r.members[0].error_code,
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(heartbeat(&mut w, "g", generation, &member), NONE);

    // -- A member whose session expires: its heartbeats, commits and syncs are refused
    //    with UNKNOWN_MEMBER_ID once the coordinator has removed it.
    let (lapsed, lapsed_generation) = join_alone(&mut w, "lapsing", SHORT_SESSION_MS);
    assert_eq!(
        commit(
            &mut w,
            "lapsing",
            lapsed_generation,
            &lapsed,
            &[(TOPIC, 0, 3, Some("kept".into()))]
        ),
        expect(&[(TOPIC, 0, NONE)])
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = describe(&mut w, 5, "lapsing");
        if d.members.is_empty() {
            assert_eq!(d.group_state.as_str(), "Empty", "{d:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a member without heartbeats was never removed: {d:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        heartbeat(&mut w, "lapsing", lapsed_generation, &lapsed),
        code(ResponseError::UnknownMemberId),
        "heartbeat after the session expired"
    );
    assert_eq!(
        commit(
            &mut w,
            "lapsing",
            lapsed_generation,
            &lapsed,
            &[(TOPIC, 0, 4, None)]
        ),
        expect(&[(TOPIC, 0, code(ResponseError::UnknownMemberId))]),
        "commit after the session expired"
    );
    assert_eq!(
        sync(&mut w, "lapsing", lapsed_generation, &lapsed, "range"),
        code(ResponseError::UnknownMemberId),
        "sync after the session expired"
    );
    // What was committed before stays.
    assert_eq!(
        fetch_offsets(&mut w, "lapsing", None),
        [((TOPIC.to_string(), 0), (3, "kept".to_string()))]
            .into_iter()
            .collect()
    );

    // -- Truncated request bodies close that connection only, as Kafka does.
    for (api_key, version, body) in [
        (ApiKey::JoinGroup, 5i16, {
            let mut b = bytes::BytesMut::new();
            encode_body(
                &join_request("g", "", "consumer", &["range"], SESSION_MS),
                5,
                &mut b,
            );
            b
        }),
        (ApiKey::OffsetCommit, 8, {
            let mut b = bytes::BytesMut::new();
            encode_body(
                &commit_request("g", generation, &member, &[(TOPIC, 0, 99, None)]),
                8,
                &mut b,
            );
            b
        }),
        (ApiKey::SyncGroup, 5, {
            let mut b = bytes::BytesMut::new();
            encode_body(
                &SyncGroupRequest::default()
                    .with_group_id(gid("g"))
                    .with_generation_id(generation)
                    .with_member_id(s(&member)),
                5,
                &mut b,
            );
            b
        }),
    ] {
        for keep in [1usize, body.len() / 2, body.len() - 1] {
            let mut t = Wire::connect(&broker.bootstrap());
            t.send_truncated(api_key, version, &body[..keep]);
            assert!(
                t.is_closed(),
                "{api_key:?} v{version} cut to {keep} of {} body bytes must close the connection",
                body.len()
            );
        }
    }
    // Nothing of the truncated commit was applied, and the first connection still works.
    assert_eq!(heartbeat(&mut w, "g", generation, &member), NONE);
    assert_eq!(
        fetch_offsets(&mut w, "g", Some(&[(TOPIC, 0)]))[&(TOPIC.to_string(), 0)].0,
        20
    );
    assert_eq!(
        commit(&mut w, "g", generation, &member, &[(TOPIC, 0, 30, None)]),
        expect(&[(TOPIC, 0, NONE)])
    );
    assert!(broker
        .log_tail(400)
        .lines()
        .all(|l| !l.contains("panicked")));
}

fn encode_body<R: kafka_protocol::protocol::Encodable>(
    request: &R,
    version: i16,
    out: &mut bytes::BytesMut,
) {
    request.encode(out, version).expect("encode request body");
}

/// Java's `String.hashCode` of `group`, modulo the partitions: where Kafka (and Isthmus)
/// keeps a group's records in `__consumer_offsets`.
fn offsets_partition_of(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

/// The log end offset of every `__consumer_offsets` partition.
fn offsets_topic_ends(w: &mut Wire, partitions: i32) -> BTreeMap<i32, i64> {
    let r = w.call(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(tname("__consumer_offsets"))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )]),
    );
    r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, NONE, "{p:?}");
            (p.partition_index, p.offset)
        })
        .collect()
}

/// group → (topic, partition) → (offset, metadata) as last acknowledged.
type Committed = BTreeMap<String, BTreeMap<(String, i32), (i64, String)>>;

const DURABLE_GROUPS: usize = 120;
const DURABLE_TOPIC_PARTITIONS: i32 = 4;

#[test]
fn acknowledged_commits_survive_kill_9_for_many_groups() {
    let mut broker = TestBroker::start(&[("group.initial.rebalance.delay.ms", "0")]);
    let mut w = Wire::connect(&broker.bootstrap());
    create_topic(&mut w, "d1", DURABLE_TOPIC_PARTITIONS);
    create_topic(&mut w, "d2", DURABLE_TOPIC_PARTITIONS);

    // (group, topic, partition) → (offset, metadata) as last acknowledged.
    let mut committed: Committed = BTreeMap::new();
    // A third of the groups commit as members of a joined group, the rest standalone;
    // every group commits several times, so only the last value may come back.
    let mut members: BTreeMap<String, (String, i32)> = BTreeMap::new();
    for round in 0..3i64 {
        for g in 0..DURABLE_GROUPS {
            let group = format!("durable-group-{g}");
            if round == 0 && g % 3 == 0 {
                members.insert(group.clone(), join_alone(&mut w, &group, SESSION_MS));
            }
            let (member, generation) = members.get(&group).cloned().unwrap_or((String::new(), -1));
            let mut offsets: Vec<Commit<'_>> = Vec::new();
            for topic in ["d1", "d2"] {
                for p in 0..DURABLE_TOPIC_PARTITIONS {
                    // Not every partition in every round: older values must stay where
                    // no newer commit replaced them.
                    if (g + p as usize + round as usize) % 3 == 2 {
                        continue;
                    }
                    let offset = round * 1_000_000 + (g as i64) * 100 + i64::from(p);
                    let metadata = format!("{group}/{topic}/{p}/r{round}");
                    offsets.push((topic, p, offset, Some(metadata)));
                }
            }
            let answer = commit(&mut w, &group, generation, &member, &offsets);
            assert!(
                answer.values().all(|c| *c == NONE),
                "commit of {group} round {round} refused: {answer:?}"
            );
            let entry = committed.entry(group).or_default();
            for (topic, p, offset, metadata) in offsets {
                entry.insert((topic.to_string(), p), (offset, metadata.unwrap()));
            }
        }
    }

    // Groups land on many different partitions of __consumer_offsets, exactly where
    // Kafka's hash puts them.
    let expected_partitions: BTreeSet<i32> = committed
        .keys()
        .map(|g| offsets_partition_of(g, 50))
        .collect();
    assert!(expected_partitions.len() > 30, "{expected_partitions:?}");
    let ends = offsets_topic_ends(&mut w, 50);
    let non_empty: BTreeSet<i32> = ends
        .iter()
        .filter(|(_, end)| **end > 0)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(
        non_empty, expected_partitions,
        "__consumer_offsets partitions holding records"
    );

    // The last commit was acknowledged: crash now.
    drop(w);
    broker.kill();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap());
    let check = |w: &mut Wire, committed: &Committed, when: &str| {
        for (group, want) in committed {
            let got = fetch_offsets(w, group, None);
            assert_eq!(&got, want, "committed offsets of {group} {when}");
        }
        // And through the batched v8 form, several groups in one request, named partitions.
        let groups: Vec<&String> = committed.keys().take(25).collect();
        let r = w.call(
            8,
            &OffsetFetchRequest::default().with_groups(
                groups
                    .iter()
                    .map(|g| {
                        OffsetFetchRequestGroup::default()
                            .with_group_id(gid(g))
                            .with_topics(Some(
                                ["d1", "d2"]
                                    .iter()
                                    .map(|t| {
                                        OffsetFetchRequestTopics::default()
                                            .with_name(tname(t))
                                            .with_partition_indexes(
                                                (0..DURABLE_TOPIC_PARTITIONS).collect(),
                                            )
                                    })
                                    .collect(),
                            ))
                    })
                    .collect(),
            ),
        );
        assert_eq!(r.groups.len(), groups.len());
        for (answer, group) in r.groups.iter().zip(&groups) {
            assert_eq!(answer.group_id.0.as_str(), group.as_str());
            assert_eq!(answer.error_code, NONE);
            for t in &answer.topics {
                for p in &t.partitions {
                    let key = (t.name.0.to_string(), p.partition_index);
                    let want = committed[*group]
                        .get(&key)
                        .cloned()
                        .unwrap_or((-1, String::new()));
                    let got = (
                        p.committed_offset,
                        p.metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                    );
                    assert_eq!(got, want, "{group} {key:?} {when} (OffsetFetch v8)");
                }
            }
        }
    };
    check(&mut w, &committed, "after kill -9 and restart");

    // Commit once more after the restart (members rejoin first), crash again, check again.
    for (group, (member, generation)) in members.iter_mut() {
        let (m, gen) = join_alone(&mut w, group, SESSION_MS);
        *member = m;
        *generation = gen;
        let answer = commit(
            &mut w,
            group,
            *generation,
            member,
            &[("d1", 0, 42, Some("after restart".into()))],
        );
        assert_eq!(answer, expect(&[("d1", 0, NONE)]), "{group}");
        committed
            .get_mut(group)
            .unwrap()
            .insert(("d1".to_string(), 0), (42, "after restart".to_string()));
    }
    drop(w);
    broker.kill();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap());
    check(&mut w, &committed, "after a second kill -9");
    // A clean stop keeps them as well.
    drop(w);
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap());
    check(&mut w, &committed, "after SIGTERM and restart");
}

/// A member blocked in SyncGroup waits for the leader's assignment as long as it takes:
/// Kafka counts a member awaiting join or sync as alive (`hasSatisfiedHeartbeat`), so its
/// session does not expire meanwhile, and the session starts again when the assignment
/// arrives.
#[test]
fn a_member_waiting_for_the_leaders_sync_keeps_its_session() {
    let broker = TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "1000"),
    ]);
    let mut leader = Wire::connect(&broker.bootstrap());
    create_topic(&mut leader, TOPIC, TOPIC_PARTITIONS);
    let group = "slow-leader";
    let (a, _) = join_alone(&mut leader, group, SESSION_MS);

    // B joins; its JoinGroup waits for the leader to rejoin.
    let mut follower = Wire::connect(&broker.bootstrap());
    let first = follower.call(
        5,
        &join_request(group, "", "consumer", &["range"], SHORT_SESSION_MS),
    );
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    let b = first.member_id.to_string();
    follower.send(
        5,
        &join_request(group, &b, "consumer", &["range"], SHORT_SESSION_MS),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while describe(&mut leader, 5, group).group_state.as_str() != "PreparingRebalance" {
        assert!(
            Instant::now() < deadline,
            "B's join never started a rebalance"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        heartbeat(&mut leader, group, 1, &a),
        code(ResponseError::RebalanceInProgress)
    );
    let rejoined = leader.call(
        5,
        &join_request(group, &a, "consumer", &["range"], SESSION_MS),
    );
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.leader.as_str(), a, "the first member stays leader");
    assert_eq!(rejoined.members.len(), 2);
    let generation = rejoined.generation_id;
    let joined = follower.receive::<JoinGroupRequest>(5);
    assert_eq!(
        (joined.error_code, joined.generation_id),
        (NONE, generation)
    );

    // B asks for its assignment; the leader takes several of B's session timeouts to
    // send it, heartbeating meanwhile.
    follower.send(
        5,
        &SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(&b))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range"))),
    );
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_millis(3 * SHORT_SESSION_MS as u64) {
        assert_eq!(heartbeat(&mut leader, group, generation, &a), NONE);
        std::thread::sleep(Duration::from_millis(200));
    }
    let synced = leader.call(
        5,
        &SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(&a))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&a))
                    .with_assignment(Bytes::from_static(b"for-a")),
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&b))
                    .with_assignment(Bytes::from_static(b"for-b")),
            ]),
    );
    assert_eq!(synced.error_code, NONE, "leader's SyncGroup");
    let got = follower.receive::<SyncGroupRequest>(5);
    assert_eq!(
        got.error_code, NONE,
        "the waiting member was dropped while it waited for the leader"
    );
    assert_eq!(got.assignment.as_ref(), b"for-b");
    // Its session starts again now: a heartbeat right away is fine.
    assert_eq!(heartbeat(&mut follower, group, generation, &b), NONE);
    let d = describe(&mut leader, 5, group);
    assert_eq!((d.group_state.as_str(), d.members.len()), ("Stable", 2));
}

/// Kafka's pending-sync timeout: a leader that keeps heartbeating but never sends SyncGroup
/// does not hold the group forever. Once the rebalance timeout has passed since the join
/// phase ended, members that never synced are removed and the group rebalances.
#[test]
fn a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let broker = TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "1000"),
    ]);
    let mut leader = Wire::connect(&broker.bootstrap());
    create_topic(&mut leader, TOPIC, TOPIC_PARTITIONS);
    let group = "silent-leader";
    // Both members use a 1 s session and rebalance timeout.
    let (a, _) = join_alone(&mut leader, group, SHORT_SESSION_MS);
    let mut follower = Wire::connect(&broker.bootstrap());
    let first = follower.call(
        5,
        &join_request(group, "", "consumer", &["range"], SHORT_SESSION_MS),
    );
    let b = first.member_id.to_string();
    follower.send(
        5,
        &join_request(group, &b, "consumer", &["range"], SHORT_SESSION_MS),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while describe(&mut leader, 5, group).group_state.as_str() != "PreparingRebalance" {
        assert!(
            Instant::now() < deadline,
            "B's join never started a rebalance"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rejoined = leader.call(
        5,
        &join_request(group, &a, "consumer", &["range"], SHORT_SESSION_MS),
    );
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.leader.as_str(), a);
    let generation = rejoined.generation_id;
    let joined = follower.receive::<JoinGroupRequest>(5);
    assert_eq!(joined.generation_id, generation);

    // B waits for its assignment; A heartbeats but never syncs.
    follower.send(
        5,
        &SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(&b))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range"))),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let fenced = loop {
        let code_now = heartbeat(&mut leader, group, generation, &a);
        if code_now != NONE {
            break code_now;
        }
        assert!(
            Instant::now() < deadline,
            "a leader that never synced was kept for 20 s (rebalance timeout 1 s)"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(fenced, code(ResponseError::UnknownMemberId));
    // B, which did sync, is told to rejoin rather than left waiting.
    let got = follower.receive::<SyncGroupRequest>(5);
    assert_eq!(got.error_code, code(ResponseError::RebalanceInProgress));
    let d = describe(&mut leader, 5, group);
    assert_eq!(d.members.len(), 1, "only B is left");
    assert_eq!(d.members[0].member_id.as_str(), b);
}
