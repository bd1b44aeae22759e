//! The reassignment JSON of Kafka's `kafka-reassign-partitions.sh`, and the pure parts of
//! `execute` and `verify` built on it:
//!
//! - [`Assignment`]: partition → replicas (first = preferred leader), read from and written
//!   as `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,4],
//!   "log_dirs":["any","any","any"]}]}` with every mistake named ([`parse`], [`to_json`]);
//! - [`throttles`]: the throttle configs `execute --throttle` sets, as Kafka's tool does;
//! - [`verify`]: each partition's state (complete, in progress, different) from Metadata
//!   and ListPartitionReassignments.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// The only version of the format.
pub const PLAN_VERSION: i64 = 1;
/// The one `log_dirs` entry understood: no particular directory.
pub const ANY_LOG_DIR: &str = "any";

/// A partition: (topic, index).
pub type Tp = (String, i32);
/// Partition → replicas in order (first = preferred leader).
pub type Assignment = BTreeMap<Tp, Vec<i32>>;

/// `topic-partition`, as Kafka's tools print it.
pub fn tp_name((topic, partition): &Tp) -> String {
    format!("{topic}-{partition}")
}

/// `[1,2,3]`.
pub fn list(ids: &[i32]) -> String {
    let inner: Vec<String> = ids.iter().map(i32::to_string).collect();
    format!("[{}]", inner.join(","))
}

#[derive(Debug, Deserialize)]
struct PlanFile {
    version: Option<serde_json::Value>,
    partitions: Option<Vec<PlanPartition>>,
}

#[derive(Debug, Deserialize, Serialize)]
struct PlanPartition {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_dirs: Option<Vec<String>>,
}

/// Reads a reassignment plan, refusing anything Kafka's tool refuses (and duplicates it
/// would silently merge): malformed JSON, a version other than 1, no partitions, a
/// partition listed twice, empty or repeated replicas, negative ids, and log directories
/// other than `any` (moving between a broker's directories is not supported).
pub fn parse(text: &str) -> Result<Assignment, String> {
    let file: PlanFile = serde_json::from_str(text).map_err(|e| {
        format!("not a reassignment plan ({e}); expected {{\"version\":1,\"partitions\":[{{\"topic\":\"t\",\"partition\":0,\"replicas\":[1,2,3]}}]}}")
    })?;
    match &file.version {
        None => return Err("the plan has no \"version\" (expected 1)".into()),
        Some(v) if v.as_i64() == Some(PLAN_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "unsupported plan version {v}; only version {PLAN_VERSION} is known"
            ))
        }
    }
    let partitions = file
        .partitions
        .ok_or("the plan has no \"partitions\" list")?;
    if partitions.is_empty() {
        return Err("the plan lists no partitions".into());
    }
    let mut out = Assignment::new();
    for p in partitions {
        let tp = (p.topic.clone(), p.partition);
        let name = tp_name(&tp);
        if p.topic.is_empty() {
            return Err(format!("partition {}: empty topic name", p.partition));
        }
        if p.partition < 0 {
            return Err(format!("{name}: negative partition index"));
        }
        if p.replicas.is_empty() {
            return Err(format!("{name}: empty replica list"));
        }
        if let Some(b) = p.replicas.iter().find(|b| **b < 0) {
            return Err(format!("{name}: negative broker id {b}"));
        }
        let mut seen = BTreeSet::new();
        if let Some(b) = p.replicas.iter().find(|b| !seen.insert(**b)) {
            return Err(format!(
                "{name}: broker {b} appears more than once in replicas {}",
                list(&p.replicas)
            ));
        }
        if let Some(dirs) = &p.log_dirs {
            if dirs.len() != p.replicas.len() {
                return Err(format!(
                    "{name}: {} log_dirs for {} replicas (give one per replica, or leave log_dirs out)",
                    dirs.len(),
                    p.replicas.len()
                ));
            }
            if let Some(d) = dirs.iter().find(|d| d.as_str() != ANY_LOG_DIR) {
                return Err(format!(
                    "{name}: log directory \"{d}\": only \"{ANY_LOG_DIR}\" is supported (moving replicas between a broker's directories is not)"
                ));
            }
        }
        if out.insert(tp, p.replicas).is_some() {
            return Err(format!("{name} appears more than once in the plan"));
        }
    }
    Ok(out)
}

/// The plan as JSON: one partition per line, each with `log_dirs` all `any`, as Kafka's
/// tool writes them (so either tool reads what the other writes).
pub fn to_json(assignment: &Assignment) -> String {
    let mut out = format!("{{\"version\":{PLAN_VERSION},\"partitions\":[");
    for (i, ((topic, partition), replicas)) in assignment.iter().enumerate() {
        let p = PlanPartition {
            topic: topic.clone(),
            partition: *partition,
            replicas: replicas.clone(),
            log_dirs: Some(vec![ANY_LOG_DIR.to_owned(); replicas.len()]),
        };
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        out.push_str(&serde_json::to_string(&p).expect("plain data serializes"));
    }
    out.push_str("\n]}");
    out
}

/// Broker-level throttle rate, bytes/s of replication a leader sends.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// Broker-level throttle rate, bytes/s of replication a follower fetches.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// Topic-level `partition:broker,…` list of replicas whose leader side is throttled.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// Topic-level `partition:broker,…` list of replicas whose follower side is throttled.
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// The throttle configs for moving `current` to `target`, as Kafka's tool sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttles {
    /// Brokers that send or receive the moving data (current and target replicas of
    /// moving partitions): each gets both rate configs.
    pub brokers: BTreeSet<i32>,
    /// Topic → (leader list: every current replica of its moving partitions,
    /// follower list: the replicas being added), as `p:b,p:b`.
    pub topics: BTreeMap<String, (String, String)>,
}

/// Throttles for the partitions of `target` whose replica set changes (a new order alone
/// moves no data). Partitions unknown in `current` are left out: the broker refuses them.
pub fn throttles(current: &Assignment, target: &Assignment) -> Throttles {
    let mut brokers = BTreeSet::new();
    // Topic → (leader, follower) `(partition, broker)` pairs.
    type Pairs = Vec<(i32, i32)>;
    let mut lists: BTreeMap<String, (Pairs, Pairs)> = BTreeMap::new();
    for (tp, wanted) in target {
        let Some(now) = current.get(tp) else {
            continue;
        };
        let adding: Vec<i32> = wanted
            .iter()
            .copied()
            .filter(|b| !now.contains(b))
            .collect();
        if adding.is_empty() {
            continue;
        }
        brokers.extend(now.iter().copied());
        brokers.extend(wanted.iter().copied());
        let (leader, follower) = lists.entry(tp.0.clone()).or_default();
        leader.extend(now.iter().map(|b| (tp.1, *b)));
        follower.extend(adding.iter().map(|b| (tp.1, *b)));
    }
    let join = |mut pairs: Vec<(i32, i32)>| {
        pairs.sort_unstable();
        pairs.dedup();
        pairs
            .iter()
            .map(|(p, b)| format!("{p}:{b}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    Throttles {
        brokers,
        topics: lists
            .into_iter()
            .map(|(t, (l, f))| (t, (join(l), join(f))))
            .collect(),
    }
}

/// A reassignment the controller reports as ongoing (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ongoing {
    /// Every replica now: target plus those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Ongoing {
    /// The replicas before the reassignment started (what cancelling returns to).
    pub fn original(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.adding.contains(b))
            .collect()
    }

    /// What the partition's replicas will be once it completes.
    pub fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.removing.contains(b))
            .collect()
    }
}

/// One partition's state against the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The replicas are the plan's, in its order, and nothing is in progress.
    Complete,
    /// The plan's reassignment is under way.
    InProgress {
        adding: Vec<i32>,
        removing: Vec<i32>,
    },
    /// Not what the plan asks, and not on its way there.
    Different(String),
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Complete => write!(f, "complete"),
            State::InProgress { adding, removing } => write!(
                f,
                "in progress (adding {}, removing {})",
                list(adding),
                list(removing)
            ),
            State::Different(why) => write!(f, "failed/different: {why}"),
        }
    }
}

/// Each plan partition's [`State`], from the replicas Metadata shows (`current`; a missing
/// partition does not exist) and the ongoing reassignments.
pub fn verify(
    plan: &Assignment,
    current: &Assignment,
    ongoing: &BTreeMap<Tp, Ongoing>,
) -> Vec<(Tp, State)> {
    plan.iter()
        .map(|(tp, wanted)| {
            let state = match (ongoing.get(tp), current.get(tp)) {
                (Some(o), _) => {
                    let target = o.target();
                    if same_set(&target, wanted) {
                        State::InProgress {
                            adding: o.adding.clone(),
                            removing: o.removing.clone(),
                        }
                    } else {
                        State::Different(format!(
                            "a reassignment to {} is in progress, the plan says {}",
                            list(&target),
                            list(wanted)
                        ))
                    }
                }
                (None, None) => State::Different("no such partition".into()),
                (None, Some(now)) if now == wanted => State::Complete,
                (None, Some(now)) => State::Different(format!(
                    "no reassignment in progress, but the replicas are {} rather than {}",
                    list(now),
                    list(wanted)
                )),
            };
            (tp.clone(), state)
        })
        .collect()
}

fn same_set(a: &[i32], b: &[i32]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

/// `verify`'s exit code: 0 all complete, 1 some in progress (none different), 2 any
/// different.
pub fn verify_exit_code(states: &[(Tp, State)]) -> u8 {
    if states.iter().any(|(_, s)| matches!(s, State::Different(_))) {
        2
    } else if states
        .iter()
        .any(|(_, s)| matches!(s, State::InProgress { .. }))
    {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> Tp {
        (t.to_owned(), p)
    }

    fn assignment(entries: &[(&str, i32, &[i32])]) -> Assignment {
        entries
            .iter()
            .map(|(t, p, r)| (tp(t, *p), r.to_vec()))
            .collect()
    }

    #[test]
    fn reads_kafka_plans_with_and_without_log_dirs() {
        let text = r#"{"version":1,"partitions":[
            {"topic":"t","partition":1,"replicas":[3,4,2],"log_dirs":["any","any","any"]},
            {"topic":"t","partition":0,"replicas":[2,3,4]},
            {"topic":"u","partition":0,"replicas":[4],"extra":"ignored"}]}"#;
        let plan = parse(text).unwrap();
        assert_eq!(
            plan,
            assignment(&[("t", 0, &[2, 3, 4]), ("t", 1, &[3, 4, 2]), ("u", 0, &[4])])
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let plan = assignment(&[("t", 0, &[2, 3, 4]), ("a \"q\"", 7, &[1])]);
        let text = to_json(&plan);
        assert_eq!(
            text,
            "{\"version\":1,\"partitions\":[\n\
             {\"topic\":\"a \\\"q\\\"\",\"partition\":7,\"replicas\":[1],\"log_dirs\":[\"any\"]},\n\
             {\"topic\":\"t\",\"partition\":0,\"replicas\":[2,3,4],\"log_dirs\":[\"any\",\"any\",\"any\"]}\n\
             ]}"
        );
        assert_eq!(parse(&text).unwrap(), plan);
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| parse(text).unwrap_err();
        assert!(err("{\"version\":1,").contains("not a reassignment plan"));
        assert!(err("[]").contains("not a reassignment plan"));
        assert!(err(r#"{"partitions":[]}"#).contains("no \"version\""));
        assert!(err(r#"{"version":2,"partitions":[]}"#).contains("unsupported plan version 2"));
        assert!(err(r#"{"version":"1","partitions":[]}"#).contains("unsupported plan version"));
        assert!(err(r#"{"version":1}"#).contains("no \"partitions\""));
        assert!(err(r#"{"version":1,"partitions":[]}"#).contains("no partitions"));
        let one = |p: &str| err(&format!("{{\"version\":1,\"partitions\":[{p}]}}"));
        assert!(
            one(r#"{"topic":"t","partition":0,"replicas":[]}"#).contains("t-0: empty replica list")
        );
        assert!(one(r#"{"topic":"t","partition":0,"replicas":[1,2,1]}"#)
            .contains("t-0: broker 1 appears more than once in replicas [1,2,1]"));
        assert!(
            one(r#"{"topic":"t","partition":-1,"replicas":[1]}"#).contains("negative partition")
        );
        assert!(
            one(r#"{"topic":"t","partition":0,"replicas":[-1]}"#).contains("negative broker id -1")
        );
        assert!(one(r#"{"topic":"","partition":0,"replicas":[1]}"#).contains("empty topic name"));
        assert!(
            one(r#"{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any"]}"#)
                .contains("1 log_dirs for 2 replicas")
        );
        assert!(
            one(r#"{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/d"]}"#)
                .contains("only \"any\"")
        );
        assert!(one(r#"{"topic":"t","partition":0,"replicas":"1"}"#)
            .contains("not a reassignment plan"));
        assert!(one(
            r#"{"topic":"t","partition":0,"replicas":[1]},{"topic":"t","partition":0,"replicas":[2]}"#
        )
        .contains("t-0 appears more than once in the plan"));
    }

    #[test]
    fn throttles_cover_moving_partitions_like_kafka() {
        let current = assignment(&[
            ("t", 0, &[1, 2, 3]),
            ("t", 1, &[2, 3, 1]),
            ("t", 10, &[1, 2, 3]),
            ("u", 0, &[5, 6]),
        ]);
        let target = assignment(&[
            ("t", 0, &[2, 3, 4]),
            // Order only: no data moves.
            ("t", 1, &[3, 2, 1]),
            ("t", 10, &[4, 2, 3]),
            ("u", 0, &[6, 7]),
            // Unknown to the cluster: the broker will refuse it.
            ("v", 0, &[1]),
        ]);
        let th = throttles(&current, &target);
        assert_eq!(th.brokers, BTreeSet::from([1, 2, 3, 4, 5, 6, 7]));
        assert_eq!(
            th.topics,
            BTreeMap::from([
                (
                    "t".to_owned(),
                    (
                        "0:1,0:2,0:3,10:1,10:2,10:3".to_owned(),
                        "0:4,10:4".to_owned()
                    )
                ),
                ("u".to_owned(), ("0:5,0:6".to_owned(), "0:7".to_owned())),
            ])
        );
        assert!(throttles(&current, &current).topics.is_empty());
    }

    #[test]
    fn verify_states() {
        let plan = assignment(&[
            ("t", 0, &[2, 3, 4]),
            ("t", 1, &[2, 3, 4]),
            ("t", 2, &[2, 3, 4]),
            ("t", 3, &[2, 3, 4]),
            ("t", 4, &[2, 3, 4]),
            ("gone", 0, &[1]),
        ]);
        let current = assignment(&[
            ("t", 0, &[2, 3, 4]),
            ("t", 1, &[2, 3, 4, 1]),
            ("t", 2, &[3, 2, 4]),
            ("t", 3, &[1, 2, 3]),
            ("t", 4, &[1, 2, 3, 5]),
        ]);
        let ongoing = BTreeMap::from([
            (
                tp("t", 1),
                Ongoing {
                    replicas: vec![2, 3, 4, 1],
                    adding: vec![4],
                    removing: vec![1],
                },
            ),
            (
                tp("t", 4),
                Ongoing {
                    replicas: vec![1, 2, 3, 5],
                    adding: vec![5],
                    removing: vec![1],
                },
            ),
        ]);
        assert_eq!(ongoing[&tp("t", 1)].original(), vec![2, 3, 1]);
        assert_eq!(ongoing[&tp("t", 1)].target(), vec![2, 3, 4]);
        let states = verify(&plan, &current, &ongoing);
        let shown: Vec<String> = states
            .iter()
            .map(|(tp, s)| format!("{}: {s}", tp_name(tp)))
            .collect();
        assert_eq!(
            shown,
            vec![
                "gone-0: failed/different: no such partition",
                "t-0: complete",
                "t-1: in progress (adding [4], removing [1])",
                "t-2: failed/different: no reassignment in progress, but the replicas are [3,2,4] rather than [2,3,4]",
                "t-3: failed/different: no reassignment in progress, but the replicas are [1,2,3] rather than [2,3,4]",
                "t-4: failed/different: a reassignment to [2,3,5] is in progress, the plan says [2,3,4]",
            ]
        );
        assert_eq!(verify_exit_code(&states), 2);
        assert_eq!(verify_exit_code(&states[1..3]), 1);
        assert_eq!(verify_exit_code(&states[1..2]), 0);
    }
}
