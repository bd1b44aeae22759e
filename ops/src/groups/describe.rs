//! `groups describe`: state and coordinator, members with the partitions assigned to them
//! (decoded from the consumer protocol's assignment bytes), and per partition the
//! committed offset, log end offset, lag and owner, in the views of
//! `kafka-consumer-groups.sh --describe` (`--offsets`, the default; `--members`; `--state`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use bytes::Bytes;
use clap::{ArgGroup, Args};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as ConsumerDescribedGroup;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{Decodable, Message};
use serde::Serialize;

use super::client::{Cluster, Coordinator, KafkaCode, Tp, LATEST_TIMESTAMP};
use super::table;
use crate::client::ClientOpts;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("view").args(["members", "offsets", "state"])))]
pub struct DescribeArgs {
    /// The consumer group (repeatable).
    #[arg(long, required = true)]
    pub group: Vec<String>,
    /// One line per member: id, instance id, host, client id, assigned partitions.
    #[arg(long)]
    pub members: bool,
    /// One line per partition: committed offset, log end offset, lag, owner (the default).
    #[arg(long)]
    pub offsets: bool,
    /// One line per group: coordinator, assignment strategy, state, member count.
    #[arg(long)]
    pub state: bool,
    /// Print everything about each group as one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// The partitions of one topic assigned to a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicAssignment {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<TopicAssignment>,
}

/// What DescribeGroups and FindCoordinator say about a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    pub group: String,
    /// False for a group the coordinator does not know (state `Dead`).
    pub exists: bool,
    pub state: String,
    pub protocol_type: String,
    /// The chosen assignor (`range`, `cooperative-sticky`…) for consumer groups.
    pub assignment_strategy: String,
    pub coordinator: Coordinator,
    pub members: Vec<Member>,
}

/// One partition of the offsets view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsetRow {
    pub topic: String,
    pub partition: i32,
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub lag: Option<i64>,
    pub member_id: Option<String>,
    pub host: Option<String>,
    pub client_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct DescribeJson<'a> {
    #[serde(flatten)]
    group: &'a GroupDescription,
    offsets: &'a [OffsetRow],
}

/// Decodes a consumer-protocol assignment; newer versions only add fields at the end, so
/// they are read as the newest version this code knows.
pub fn decode_assignment(bytes: &Bytes) -> anyhow::Result<Vec<TopicAssignment>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes.clone();
    let version = bytes::Buf::try_get_i16(&mut buf)?;
    let version = version.clamp(0, ConsumerProtocolAssignment::VERSIONS.max);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version)?;
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in a.assigned_partitions {
        by_topic
            .entry(tp.topic.0.to_string())
            .or_default()
            .extend(tp.partitions);
    }
    Ok(by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            TopicAssignment { topic, partitions }
        })
        .collect())
}

/// DescribeGroups plus the coordinator's address.
pub async fn describe_raw(cluster: &mut Cluster, group: &str) -> anyhow::Result<GroupDescription> {
    let g = cluster.describe_group(group).await?;
    let not_found = g.error_code == ResponseError::GroupIdNotFound.code();
    if g.error_code != 0 && !not_found {
        bail!("describing group '{group}': {}", KafkaCode(g.error_code));
    }
    let coordinator = cluster.coordinator(group).await?;
    // A consumer-protocol (KIP-848) group is not a classic group: DescribeGroups does not
    // know it, ConsumerGroupDescribe does (Kafka's admin client asks in the same order).
    if not_found || g.group_state.as_str() == "Dead" {
        if let Some(c) = cluster.consumer_group_describe(group).await? {
            return Ok(from_consumer_group(group, c, coordinator));
        }
    }
    let protocol_type = g.protocol_type.to_string();
    let members = g
        .members
        .iter()
        .map(|m| {
            let assignment = if protocol_type == "consumer" {
                decode_assignment(&m.member_assignment).unwrap_or_else(|e| {
                    eprintln!(
                        "warning: member {} of group '{group}' has an assignment that is not the consumer protocol's: {e}",
                        m.member_id
                    );
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            Member {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(ToString::to_string),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment,
            }
        })
        .collect();
    let state = g.group_state.to_string();
    Ok(GroupDescription {
        group: group.to_owned(),
        exists: !not_found && state != "Dead",
        state,
        protocol_type,
        assignment_strategy: g.protocol_data.to_string(),
        coordinator,
        members,
    })
}

/// The same view of a consumer-protocol group, from ConsumerGroupDescribe.
fn from_consumer_group(
    group: &str,
    c: ConsumerDescribedGroup,
    coordinator: Coordinator,
) -> GroupDescription {
    let members = c
        .members
        .into_iter()
        .map(|m| {
            let mut assignment: Vec<TopicAssignment> = m
                .assignment
                .topic_partitions
                .into_iter()
                .map(|t| {
                    let mut partitions = t.partitions;
                    partitions.sort_unstable();
                    TopicAssignment {
                        topic: t.topic_name.0.to_string(),
                        partitions,
                    }
                })
                .collect();
            assignment.sort_by(|a, b| a.topic.cmp(&b.topic));
            Member {
                member_id: m.member_id.to_string(),
                group_instance_id: m.instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment,
            }
        })
        .collect();
    GroupDescription {
        group: group.to_owned(),
        exists: true,
        state: c.group_state.to_string(),
        protocol_type: "consumer".to_owned(),
        assignment_strategy: c.assignor_name.to_string(),
        coordinator,
        members,
    }
}

/// Rows of the offsets view: every partition assigned to a member or with a committed
/// offset, sorted by topic and partition. Lag is log end minus committed offset.
pub fn offset_rows(
    g: &GroupDescription,
    committed: &BTreeMap<Tp, i64>,
    log_ends: &BTreeMap<Tp, Option<i64>>,
) -> Vec<OffsetRow> {
    let mut owners: BTreeMap<Tp, &Member> = BTreeMap::new();
    for m in &g.members {
        for a in &m.assignment {
            for p in &a.partitions {
                owners.insert((a.topic.clone(), *p), m);
            }
        }
    }
    let all: BTreeSet<Tp> = owners.keys().chain(committed.keys()).cloned().collect();
    all.into_iter()
        .map(|tp| {
            let current = committed.get(&tp).copied();
            let end = log_ends.get(&tp).copied().flatten();
            let owner = owners.get(&tp);
            OffsetRow {
                current_offset: current,
                log_end_offset: end,
                lag: current.zip(end).map(|(c, e)| e - c),
                member_id: owner.map(|m| m.member_id.clone()),
                host: owner.map(|m| m.host.clone()),
                client_id: owner.map(|m| m.client_id.clone()),
                topic: tp.0,
                partition: tp.1,
            }
        })
        .collect()
}

pub async fn run(opts: ClientOpts, a: DescribeArgs) -> anyhow::Result<()> {
    let mut cluster = super::client::Cluster::connect(&opts).await?;
    let mut missing = Vec::new();
    for group in &a.group {
        let g = describe_raw(&mut cluster, group).await?;
        if !g.exists {
            if a.group.len() == 1 {
                bail!("Consumer group '{group}' does not exist.");
            }
            eprintln!("Error: Consumer group '{group}' does not exist.");
            missing.push(group.clone());
            continue;
        }
        let committed = cluster.committed_offsets(group).await?;
        let mut wanted: BTreeSet<Tp> = committed.keys().cloned().collect();
        for m in &g.members {
            for t in &m.assignment {
                wanted.extend(t.partitions.iter().map(|p| (t.topic.clone(), *p)));
            }
        }
        let wanted: Vec<Tp> = wanted.into_iter().collect();
        let log_ends: BTreeMap<Tp, Option<i64>> = cluster
            .list_offsets(&wanted, LATEST_TIMESTAMP)
            .await?
            .into_iter()
            .map(|(tp, r)| {
                if let Err(code) = &r {
                    eprintln!("warning: no log end offset for {}:{}: {code}", tp.0, tp.1);
                }
                (tp, r.ok())
            })
            .collect();
        let rows = offset_rows(&g, &committed, &log_ends);
        if a.json {
            let json = DescribeJson {
                group: &g,
                offsets: &rows,
            };
            println!("{}", serde_json::to_string(&json)?);
        } else if a.state {
            print!("{}", format_state(&g));
        } else if a.members {
            print!("{}", format_members(&g));
        } else {
            print!("{}", format_offsets(&g, &rows));
        }
        if !a.json && a.group.len() > 1 {
            println!();
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} of {} group(s) do not exist: {}",
            missing.len(),
            a.group.len(),
            missing.join(", ")
        );
    }
    Ok(())
}

fn no_members_line(g: &GroupDescription) -> String {
    format!("Consumer group '{}' has no active members.\n", g.group)
}

/// Kafka's `--state` view.
pub fn format_state(g: &GroupDescription) -> String {
    let strategy = if g.assignment_strategy.is_empty() {
        "-".to_owned()
    } else {
        g.assignment_strategy.clone()
    };
    table(
        &[
            "GROUP",
            "COORDINATOR (ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "#MEMBERS",
        ],
        &[vec![
            g.group.clone(),
            format!("{} ({})", g.coordinator.addr(), g.coordinator.id),
            strategy,
            g.state.clone(),
            g.members.len().to_string(),
        ]],
    )
}

/// `orders(0,1,2), audit(3)` as Kafka prints assignments; `-` for none.
pub fn format_assignment(assignment: &[TopicAssignment]) -> String {
    if assignment.is_empty() {
        return "-".into();
    }
    assignment
        .iter()
        .map(|t| {
            let ps: Vec<String> = t.partitions.iter().map(ToString::to_string).collect();
            format!("{}({})", t.topic, ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Kafka's `--members --verbose` view.
pub fn format_members(g: &GroupDescription) -> String {
    if g.members.is_empty() {
        return no_members_line(g);
    }
    let mut members: Vec<&Member> = g.members.iter().collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            let count: usize = m.assignment.iter().map(|t| t.partitions.len()).sum();
            vec![
                g.group.clone(),
                m.member_id.clone(),
                m.group_instance_id.clone().unwrap_or_else(|| "-".into()),
                m.host.clone(),
                m.client_id.clone(),
                count.to_string(),
                format_assignment(&m.assignment),
            ]
        })
        .collect();
    table(
        &[
            "GROUP",
            "CONSUMER-ID",
            "GROUP-INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
            "ASSIGNMENT",
        ],
        &rows,
    )
}

/// Kafka's default `--offsets` view.
pub fn format_offsets(g: &GroupDescription, rows: &[OffsetRow]) -> String {
    let mut out = String::new();
    if g.members.is_empty() {
        out.push_str(&no_members_line(g));
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let num = |o: Option<i64>| o.map_or("-".into(), |v| v.to_string());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                g.group.clone(),
                r.topic.clone(),
                r.partition.to_string(),
                num(r.current_offset),
                num(r.log_end_offset),
                num(r.lag),
                dash(&r.member_id),
                dash(&r.host),
                dash(&r.client_id),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &cells,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn assignment_bytes(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            parts
                .iter()
                .map(|(t, ps)| {
                    TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string((*t).to_owned())))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut buf, version);
        a.encode(&mut buf, version.min(3)).unwrap();
        buf.freeze()
    }

    fn group(members: Vec<Member>) -> GroupDescription {
        GroupDescription {
            group: "g".into(),
            exists: true,
            state: if members.is_empty() {
                "Empty"
            } else {
                "Stable"
            }
            .into(),
            protocol_type: "consumer".into(),
            assignment_strategy: "range".into(),
            coordinator: Coordinator {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
            },
            members,
        }
    }

    fn member(id: &str, assignment: Vec<TopicAssignment>) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "rdkafka".into(),
            host: "/127.0.0.1".into(),
            assignment,
        }
    }

    #[test]
    fn decodes_every_assignment_version() {
        for v in 0..=3 {
            let got =
                decode_assignment(&assignment_bytes(v, &[("b", &[3, 1]), ("a", &[0])])).unwrap();
            assert_eq!(
                got,
                vec![
                    TopicAssignment {
                        topic: "a".into(),
                        partitions: vec![0]
                    },
                    TopicAssignment {
                        topic: "b".into(),
                        partitions: vec![1, 3]
                    },
                ],
                "version {v}"
            );
        }
        // A future version is read as the newest known one.
        let got = decode_assignment(&assignment_bytes(7, &[("a", &[2])])).unwrap();
        assert_eq!(got[0].partitions, vec![2]);
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
    }

    #[test]
    fn rows_join_members_commits_and_log_ends() {
        let g = group(vec![member(
            "m1",
            vec![TopicAssignment {
                topic: "t".into(),
                partitions: vec![0, 1],
            }],
        )]);
        let committed = BTreeMap::from([(("t".to_string(), 0), 4), (("u".to_string(), 0), 9)]);
        let ends = BTreeMap::from([
            (("t".to_string(), 0), Some(10)),
            (("t".to_string(), 1), Some(3)),
            (("u".to_string(), 0), None),
        ]);
        let rows = offset_rows(&g, &committed, &ends);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].current_offset, rows[0].log_end_offset, rows[0].lag),
            (Some(4), Some(10), Some(6))
        );
        assert_eq!(rows[0].member_id.as_deref(), Some("m1"));
        assert_eq!((rows[1].current_offset, rows[1].lag), (None, None));
        assert_eq!(
            (
                rows[2].topic.as_str(),
                rows[2].member_id.as_deref(),
                rows[2].lag
            ),
            ("u", None, None)
        );
        let text = format_offsets(&g, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("GROUP  TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG"),
            "{text}"
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["g", "t", "0", "4", "10", "6", "m1", "/127.0.0.1", "rdkafka"]
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["g", "u", "0", "9", "-", "-", "-", "-", "-"]
        );
    }

    #[test]
    fn empty_group_views() {
        let g = group(vec![]);
        assert_eq!(
            format_members(&g),
            "Consumer group 'g' has no active members.\n"
        );
        assert!(
            format_offsets(&g, &[]).starts_with("Consumer group 'g' has no active members.\nGROUP")
        );
        assert_eq!(
            format_state(&g),
            "GROUP  COORDINATOR (ID)    ASSIGNMENT-STRATEGY  STATE  #MEMBERS\n\
             g      127.0.0.1:9092 (1)  range                Empty  0\n"
        );
    }

    #[test]
    fn members_view_shows_assignments() {
        let g = group(vec![member(
            "m1",
            vec![
                TopicAssignment {
                    topic: "a".into(),
                    partitions: vec![0, 2],
                },
                TopicAssignment {
                    topic: "b".into(),
                    partitions: vec![1],
                },
            ],
        )]);
        let text = format_members(&g);
        let line = text.lines().nth(1).unwrap();
        assert!(line.ends_with("3            a(0,2), b(1)"), "{text}");
    }
}
