//! `groups reset-offsets`: works out each partition's new committed offset (the plan),
//! prints it, and with `--execute` commits it, as `kafka-consumer-groups.sh --reset-offsets`
//! does: only while the group has no active members, targets clamped into
//! [log start, log end], `--to-datetime` falling back to the log end for a partition with
//! no record that recent.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _};
use clap::{ArgGroup, Args};
use kafka_protocol::error::ResponseError;
use serde::Serialize;

use super::client::{Cluster, KafkaCode, Tp, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::datetime::parse_datetime_ms;
use super::{describe, table};
use crate::client::ClientOpts;

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])),
    group(ArgGroup::new("target").required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])),
)]
pub struct ResetArgs {
    /// The consumer group.
    #[arg(long)]
    pub group: String,
    /// Topic, optionally with partitions: `orders` or `orders:0,2,5` (repeatable).
    #[arg(long, value_parser = parse_topic_spec, value_name = "TOPIC[:P,P..]")]
    pub topic: Vec<TopicSpec>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// The log start offset of each partition.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset of each partition.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset (clamped into the partition's range).
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
    /// The first offset whose timestamp is at or after this time.
    #[arg(long, value_name = "YYYY-MM-DDTHH:mm:SS[.sss][Z|±hh:mm]", value_parser = parse_datetime_ms)]
    pub to_datetime: Option<i64>,
    /// Move the committed offset by N (negative: back), clamped into the partition's range.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Only print the plan (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
    /// Print the plan as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--topic` value: a topic and, optionally, some of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub topic: String,
    pub partitions: Option<Vec<i32>>,
}

fn parse_topic_spec(arg: &str) -> Result<TopicSpec, String> {
    let (topic, parts) = match arg.split_once(':') {
        None => (arg, None),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| {
                            format!("bad partition '{p}' in '{arg}' (expected TOPIC:0,1,2)")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            (t, Some(parts))
        }
    };
    crate::client::check_topic_name(topic).map_err(|e| e.to_string())?;
    Ok(TopicSpec {
        topic: topic.to_owned(),
        partitions: parts,
    })
}

/// What to reset to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Datetime(i64),
    ShiftBy(i64),
}

impl Target {
    fn from_args(a: &ResetArgs) -> Target {
        if a.to_earliest {
            Target::Earliest
        } else if a.to_latest {
            Target::Latest
        } else if let Some(o) = a.to_offset {
            Target::Offset(o)
        } else if let Some(t) = a.to_datetime {
            Target::Datetime(t)
        } else if let Some(n) = a.shift_by {
            Target::ShiftBy(n)
        } else {
            unreachable!("clap requires one target")
        }
    }
}

/// What is known about one partition when planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub current: Option<i64>,
    pub log_start: i64,
    pub log_end: i64,
    /// For `--to-datetime`: the offset ListOffsets found (`None`: no record that recent).
    pub by_time: Option<i64>,
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanRow {
    pub topic: String,
    pub partition: i32,
    pub current_offset: Option<i64>,
    pub new_offset: i64,
}

/// The new offset for one partition, plus a warning when it had to be adjusted.
pub fn new_offset(
    tp: &Tp,
    target: Target,
    s: PartitionState,
) -> anyhow::Result<(i64, Option<String>)> {
    let clamp = |offset: i64| {
        if offset > s.log_end {
            (
                s.log_end,
                Some(format!(
                    "New offset ({offset}) is higher than latest offset for topic partition {}-{}. Value will be set to {}",
                    tp.0, tp.1, s.log_end
                )),
            )
        } else if offset < s.log_start {
            (
                s.log_start,
                Some(format!(
                    "New offset ({offset}) is lower than earliest offset for topic partition {}-{}. Value will be set to {}",
                    tp.0, tp.1, s.log_start
                )),
            )
        } else {
            (offset, None)
        }
    };
    Ok(match target {
        Target::Earliest => (s.log_start, None),
        Target::Latest => (s.log_end, None),
        Target::Offset(o) => clamp(o),
        Target::ShiftBy(n) => {
            let Some(current) = s.current else {
                bail!(
                    "cannot shift the offset of {}:{}: the group has no committed offset for it",
                    tp.0,
                    tp.1
                );
            };
            clamp(current.saturating_add(n))
        }
        Target::Datetime(_) => match s.by_time {
            Some(o) => (o, None),
            None => (
                s.log_end,
                Some(format!(
                    "Partition {} from topic {} has no record at or after that time. Falling back to latest known offset ({}).",
                    tp.1, tp.0, s.log_end
                )),
            ),
        },
    })
}

#[derive(Debug, Serialize)]
struct PlanJson<'a> {
    group: &'a str,
    executed: bool,
    partitions: &'a [PlanRow],
}

pub async fn run(opts: ClientOpts, a: ResetArgs) -> anyhow::Result<()> {
    let target = Target::from_args(&a);
    let mut cluster = Cluster::connect(&opts).await?;
    let group = describe::describe_raw(&mut cluster, &a.group).await?;
    if group.exists && !matches!(group.state.as_str(), "Empty" | "Dead") {
        bail!(
            "Assignments can only be reset if the group '{}' is inactive, but the current state is {} \
             ({} active member(s)). Stop its consumers first.",
            a.group,
            group.state,
            group.members.len()
        );
    }
    let committed = cluster.committed_offsets(&a.group).await?;
    let partitions = select_partitions(&mut cluster, &a, &committed).await?;
    if !group.exists {
        eprintln!(
            "note: group '{}' does not exist{}",
            a.group,
            if a.execute {
                "; it is created with these offsets"
            } else {
                "; --execute would create it with these offsets"
            }
        );
    }

    let starts = offsets_or_fail(&mut cluster, &partitions, EARLIEST_TIMESTAMP).await?;
    let ends = offsets_or_fail(&mut cluster, &partitions, LATEST_TIMESTAMP).await?;
    let by_time = match target {
        Target::Datetime(ms) => Some(offsets_or_fail(&mut cluster, &partitions, ms).await?),
        _ => None,
    };
    let mut plan = Vec::with_capacity(partitions.len());
    for tp in &partitions {
        let state = PartitionState {
            current: committed.get(tp).copied(),
            log_start: starts[tp],
            log_end: ends[tp],
            by_time: by_time.as_ref().map(|m| m[tp]).filter(|o| *o >= 0),
        };
        let (offset, warning) = new_offset(tp, target, state)?;
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        plan.push(PlanRow {
            topic: tp.0.clone(),
            partition: tp.1,
            current_offset: state.current,
            new_offset: offset,
        });
    }

    if a.execute {
        let offsets: BTreeMap<Tp, i64> = plan
            .iter()
            .map(|r| ((r.topic.clone(), r.partition), r.new_offset))
            .collect();
        cluster
            .commit_offsets(&a.group, &offsets)
            .await
            .context("applying the new offsets")?;
    }
    if a.json {
        let json = PlanJson {
            group: &a.group,
            executed: a.execute,
            partitions: &plan,
        };
        println!("{}", serde_json::to_string(&json)?);
    } else {
        print!("{}", format_plan(&a.group, &plan));
    }
    if !a.execute {
        eprintln!("Dry run: nothing was changed. Add --execute to commit these offsets.");
    }
    Ok(())
}

/// The partitions to reset: those named with `--topic` (checked against Metadata), or
/// with `--all-topics` those the group has committed offsets for.
async fn select_partitions(
    cluster: &mut Cluster,
    a: &ResetArgs,
    committed: &BTreeMap<Tp, i64>,
) -> anyhow::Result<Vec<Tp>> {
    if a.all_topics {
        if committed.is_empty() {
            bail!(
                "group '{}' has no committed offsets, so --all-topics selects nothing; name the topics with --topic",
                a.group
            );
        }
        return Ok(committed.keys().cloned().collect());
    }
    let names: Vec<String> = a.topic.iter().map(|s| s.topic.clone()).collect();
    let meta = cluster.metadata(Some(&names)).await?;
    let mut out = BTreeSet::new();
    for spec in &a.topic {
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let Some(t) = meta.get(&spec.topic).filter(|t| t.error != unknown) else {
            bail!("topic '{}' does not exist", spec.topic);
        };
        if t.error != 0 {
            bail!("topic '{}': {}", spec.topic, KafkaCode(t.error));
        }
        match &spec.partitions {
            None => out.extend(t.leaders.keys().map(|p| (spec.topic.clone(), *p))),
            Some(ps) => {
                for p in ps {
                    if !t.leaders.contains_key(p) {
                        bail!(
                            "partition {p} of topic '{}' does not exist (it has {} partitions)",
                            spec.topic,
                            t.leaders.len()
                        );
                    }
                    out.insert((spec.topic.clone(), *p));
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// ListOffsets at `timestamp` for every partition; any partition error fails the run.
async fn offsets_or_fail(
    cluster: &mut Cluster,
    partitions: &[Tp],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<Tp, i64>> {
    let got = cluster.list_offsets(partitions, timestamp).await?;
    got.into_iter()
        .map(|(tp, r)| match r {
            Ok(o) => Ok((tp, o)),
            Err(code) => bail!("listing offsets of {}:{}: {code}", tp.0, tp.1),
        })
        .collect()
}

/// The plan as a table: GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET.
pub fn format_plan(group: &str, plan: &[PlanRow]) -> String {
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|r| {
            vec![
                group.to_owned(),
                r.topic.clone(),
                r.partition.to_string(),
                r.current_offset.map_or("-".into(), |o| o.to_string()),
                r.new_offset.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> Tp {
        ("t".into(), 0)
    }

    fn state(current: Option<i64>) -> PartitionState {
        PartitionState {
            current,
            log_start: 10,
            log_end: 100,
            by_time: None,
        }
    }

    #[test]
    fn targets_and_clamping() {
        let n = |t, s| new_offset(&tp(), t, s).unwrap();
        assert_eq!(n(Target::Earliest, state(Some(50))), (10, None));
        assert_eq!(n(Target::Latest, state(None)), (100, None));
        assert_eq!(n(Target::Offset(42), state(None)), (42, None));
        let (o, w) = n(Target::Offset(500), state(None));
        assert_eq!(o, 100);
        assert!(w.unwrap().contains("higher than latest offset"));
        let (o, w) = n(Target::Offset(3), state(None));
        assert_eq!(o, 10);
        assert!(w.unwrap().contains("lower than earliest offset"));
        assert_eq!(n(Target::ShiftBy(-20), state(Some(50))), (30, None));
        assert_eq!(n(Target::ShiftBy(5), state(Some(50))), (55, None));
        assert_eq!(n(Target::ShiftBy(-100), state(Some(50))).0, 10);
        assert_eq!(n(Target::ShiftBy(i64::MAX), state(Some(50))).0, 100);
        let err = new_offset(&tp(), Target::ShiftBy(1), state(None)).unwrap_err();
        assert!(err.to_string().contains("no committed offset"), "{err}");
    }

    #[test]
    fn datetime_falls_back_to_log_end() {
        let mut s = state(Some(50));
        s.by_time = Some(77);
        assert_eq!(
            new_offset(&tp(), Target::Datetime(0), s).unwrap(),
            (77, None)
        );
        s.by_time = None;
        let (o, w) = new_offset(&tp(), Target::Datetime(0), s).unwrap();
        assert_eq!(o, 100);
        assert!(w.unwrap().contains("Falling back to latest"));
    }

    #[test]
    fn topic_specs() {
        assert_eq!(
            parse_topic_spec("orders").unwrap(),
            TopicSpec {
                topic: "orders".into(),
                partitions: None
            }
        );
        assert_eq!(
            parse_topic_spec("orders:0,2, 5").unwrap().partitions,
            Some(vec![0, 2, 5])
        );
        assert!(parse_topic_spec("orders:x").is_err());
        assert!(parse_topic_spec("orders:-1").is_err());
        assert!(parse_topic_spec("bad topic").is_err());
    }

    #[test]
    fn plan_table() {
        let plan = vec![
            PlanRow {
                topic: "orders".into(),
                partition: 0,
                current_offset: Some(5),
                new_offset: 0,
            },
            PlanRow {
                topic: "orders".into(),
                partition: 1,
                current_offset: None,
                new_offset: 7,
            },
        ];
        assert_eq!(
            format_plan("g", &plan),
            "GROUP  TOPIC   PARTITION  CURRENT-OFFSET  NEW-OFFSET\n\
             g      orders  0          5               0\n\
             g      orders  1          -               7\n"
        );
    }
}
