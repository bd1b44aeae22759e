//! `isthmusctl groups …` against a real `isthmus` broker with live librdkafka members.
//!
//! Needs the broker binary next to `isthmusctl` (`cargo build -p isthmus-broker` first).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use common::{ctl, ctl_with_stdin, wait_for, TestBroker, FAST_GROUP_SETTINGS};

const GROUP_WAIT: Duration = Duration::from_secs(60);

/// A librdkafka group member polled on its own thread until closed.
struct Member {
    consumer: Arc<BaseConsumer>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn join(bootstrap: &str, group: &str, topic: &str, client_id: &str) -> Member {
        Member::join_with(bootstrap, group, topic, client_id, "classic")
    }

    /// `protocol` is librdkafka's `group.protocol`: classic, or consumer (KIP-848).
    fn join_with(
        bootstrap: &str,
        group: &str,
        topic: &str,
        client_id: &str,
        protocol: &str,
    ) -> Member {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("client.id", client_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("group.protocol", protocol);
        if protocol == "classic" {
            // With the consumer protocol the broker sets these.
            config
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "300");
        }
        let consumer: BaseConsumer = config.create().expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (consumer, stop) = (Arc::clone(&consumer), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = consumer.poll(Duration::from_millis(100));
                }
            })
        };
        Member {
            consumer,
            stop,
            thread: Some(thread),
        }
    }

    /// Commits `offsets` for the partitions of `topic` this member owns.
    fn commit_owned(&self, topic: &str, offsets: &BTreeMap<i32, i64>) {
        let owned = self.consumer.assignment().expect("assignment");
        let mut tpl = TopicPartitionList::new();
        for e in owned.elements_for_topic(topic) {
            if let Some(o) = offsets.get(&e.partition()) {
                tpl.add_partition_offset(topic, e.partition(), Offset::Offset(*o))
                    .expect("add partition");
            }
        }
        if tpl.count() > 0 {
            self.consumer
                .commit(&tpl, CommitMode::Sync)
                .expect("member commit");
        }
    }

    /// Stops polling and closes the consumer (LeaveGroup).
    fn close(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("poll thread");
        }
        // The poll thread's clone is gone: this drop is the last one and closes.
        drop(self.consumer);
    }
}

fn produce(bootstrap: &str, topic: &str, partition: i32, n: usize) {
    let lines: String = (0..n).map(|i| format!("record-{i}\n")).collect();
    ctl_with_stdin(
        bootstrap,
        &[
            "produce",
            "--topic",
            topic,
            "--partition",
            &partition.to_string(),
        ],
        Some(lines.as_bytes()),
    )
    .ok();
}

fn describe_json(bootstrap: &str, group: &str) -> Value {
    let out = ctl(
        bootstrap,
        &["groups", "describe", "--group", group, "--json"],
    );
    serde_json::from_str(out.ok().trim()).expect("describe --json is one JSON object")
}

/// (current, log end, lag, owner) of each partition of the offsets view.
type Row = (Option<i64>, Option<i64>, Option<i64>, Option<String>);

fn offset_rows(v: &Value) -> BTreeMap<(String, i64), Row> {
    v["offsets"]
        .as_array()
        .expect("offsets array")
        .iter()
        .map(|r| {
            (
                (
                    r["topic"].as_str().unwrap().to_owned(),
                    r["partition"].as_i64().unwrap(),
                ),
                (
                    r["current_offset"].as_i64(),
                    r["log_end_offset"].as_i64(),
                    r["lag"].as_i64(),
                    r["member_id"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

/// Member id → partitions of `topic`, from describe --json.
fn assignments(v: &Value, topic: &str) -> BTreeMap<String, Vec<i64>> {
    v["members"]
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| {
            let parts = m["assignment"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["topic"] == topic)
                .flat_map(|a| {
                    a["partitions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_i64().unwrap())
                })
                .collect();
            (m["member_id"].as_str().unwrap().to_owned(), parts)
        })
        .collect()
}

fn committed(v: &Value) -> BTreeMap<(String, i64), Option<i64>> {
    offset_rows(v).into_iter().map(|(k, r)| (k, r.0)).collect()
}

fn utc_now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[test]
fn describe_lag_refusals_and_every_reset_target() {
    let broker = TestBroker::start(FAST_GROUP_SETTINGS);
    let b = broker.bootstrap();
    let (topic, group) = ("orders", "billing");
    ctl(
        &b,
        &["topics", "create", "--topic", topic, "--partitions", "3"],
    )
    .ok();
    // p0: 10 records, then a time mark, then 5 more; p1: 6 records; p2: none.
    produce(&b, topic, 0, 10);
    thread::sleep(Duration::from_millis(50));
    let mark = utc_now_text();
    thread::sleep(Duration::from_millis(50));
    produce(&b, topic, 0, 5);
    produce(&b, topic, 1, 6);

    // Two live members; wait until they own every partition exactly once.
    let m1 = Member::join(&b, group, topic, "client-one");
    let m2 = Member::join(&b, group, topic, "client-two");
    let v = wait_for(
        "a stable group of two owning 3 partitions",
        GROUP_WAIT,
        || {
            // Until the first member has joined, the group does not exist.
            let out = ctl(&b, &["groups", "describe", "--group", group, "--json"]);
            let v: Value = serde_json::from_str(out.stdout.trim()).ok()?;
            let owned: Vec<i64> = assignments(&v, topic).into_values().flatten().collect();
            let distinct: BTreeSet<i64> = owned.iter().copied().collect();
            (v["state"] == "Stable"
                && v["members"].as_array().unwrap().len() == 2
                && owned.len() == 3
                && distinct == BTreeSet::from([0, 1, 2]))
            .then_some(v)
        },
    );
    assert_eq!(v["protocol_type"], "consumer");
    assert_eq!(v["exists"], true);
    assert_eq!(v["coordinator"]["id"], 1);
    let clients: BTreeSet<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(clients, BTreeSet::from(["client-one", "client-two"]));
    let owner_of: BTreeMap<i64, String> = assignments(&v, topic)
        .into_iter()
        .flat_map(|(m, ps)| ps.into_iter().map(move |p| (p, m.clone())))
        .collect();

    // Members commit p0 → 4 and p1 → 6 (p2 stays uncommitted).
    let commits = BTreeMap::from([(0, 4), (1, 6)]);
    m1.commit_owned(topic, &commits);
    m2.commit_owned(topic, &commits);
    let rows = offset_rows(&describe_json(&b, group));
    let t = |p: i64| (topic.to_owned(), p);
    assert_eq!(
        rows[&t(0)],
        (Some(4), Some(15), Some(11), Some(owner_of[&0].clone()))
    );
    assert_eq!(
        rows[&t(1)],
        (Some(6), Some(6), Some(0), Some(owner_of[&1].clone()))
    );
    assert_eq!(
        rows[&t(2)],
        (None, Some(0), None, Some(owner_of[&2].clone()))
    );
    assert_eq!(rows.len(), 3);

    // Human views.
    let text = ctl(&b, &["groups", "describe", "--group", group])
        .ok()
        .to_owned();
    let p0: Vec<&str> = text
        .lines()
        .find(|l| l.split_whitespace().take(3).eq([group, topic, "0"]))
        .unwrap_or_else(|| panic!("no p0 line in\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        &p0[3..7],
        ["4", "15", "11", owner_of[&0].as_str()],
        "{text}"
    );
    let members = ctl(&b, &["groups", "describe", "--group", group, "--members"])
        .ok()
        .to_owned();
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(
        members
            .lines()
            .next()
            .unwrap()
            .ends_with("#PARTITIONS  ASSIGNMENT"),
        "{members}"
    );
    assert!(members.contains(&format!("{topic}(")), "{members}");
    let state = ctl(&b, &["groups", "describe", "--group", group, "--state"])
        .ok()
        .to_owned();
    let fields: Vec<&str> = state.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(fields[0], group);
    assert_eq!(&fields[fields.len() - 2..], ["Stable", "2"], "{state}");
    let list = ctl(&b, &["groups", "list"]).ok().to_owned();
    assert!(
        list.lines().any(|l| l
            .split_whitespace()
            .eq([group, "Stable", "classic", "consumer"])),
        "{list}"
    );
    let stable = ctl(&b, &["groups", "list", "--state", "stable", "--json"])
        .ok()
        .to_owned();
    assert!(
        stable.contains(&format!("\"group\":\"{group}\"")),
        "{stable}"
    );
    let empty = ctl(&b, &["groups", "list", "--state", "Empty", "--json"])
        .ok()
        .to_owned();
    assert!(!empty.contains(group), "{empty}");

    // Refusals while members are active.
    let err = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            group,
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
    )
    .fails_with(1)
    .to_owned();
    assert!(
        err.contains("inactive, but the current state is Stable"),
        "{err}"
    );
    let err = ctl(&b, &["groups", "delete", "--group", group])
        .fails_with(1)
        .to_owned();
    assert!(err.contains("NON_EMPTY_GROUP (68)"), "{err}");
    assert!(err.contains("active members"), "{err}");
    assert_eq!(committed(&describe_json(&b, group))[&t(0)], Some(4));

    // Members leave: the group is Empty and keeps its offsets.
    m1.close();
    m2.close();
    let v = wait_for("the group to be Empty", GROUP_WAIT, || {
        let v = describe_json(&b, group);
        (v["state"] == "Empty").then_some(v)
    });
    let rows = offset_rows(&v);
    assert_eq!(rows[&t(0)], (Some(4), Some(15), Some(11), None));
    assert_eq!(rows[&t(1)], (Some(6), Some(6), Some(0), None));
    assert!(
        !rows.contains_key(&t(2)),
        "p2 has no commit and no owner now"
    );
    let text = ctl(&b, &["groups", "describe", "--group", group])
        .ok()
        .to_owned();
    assert!(
        text.starts_with("Consumer group 'billing' has no active members.\n"),
        "{text}"
    );

    let reset = |args: &[&str]| {
        let mut all = vec!["groups", "reset-offsets", "--group", group, "--json"];
        all.extend(args);
        let out = ctl(&b, &all);
        let v: Value = serde_json::from_str(out.ok().trim()).expect("plan JSON");
        let plan: BTreeMap<i64, (Option<i64>, i64)> = v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["topic"], topic);
                (
                    r["partition"].as_i64().unwrap(),
                    (
                        r["current_offset"].as_i64(),
                        r["new_offset"].as_i64().unwrap(),
                    ),
                )
            })
            .collect();
        (plan, out.stderr.clone())
    };

    // Dry run (the default) shows the plan and changes nothing.
    let (plan, err) = reset(&["--topic", topic, "--to-earliest"]);
    assert_eq!(
        plan,
        BTreeMap::from([(0, (Some(4), 0)), (1, (Some(6), 0)), (2, (None, 0))])
    );
    assert!(err.contains("Dry run"), "{err}");
    let (plan, _) = reset(&["--topic", topic, "--to-earliest", "--dry-run"]);
    assert_eq!(plan[&0], (Some(4), 0));
    assert_eq!(committed(&describe_json(&b, group))[&t(0)], Some(4));
    let text = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            group,
            "--all-topics",
            "--to-latest",
        ],
    )
    .ok()
    .to_owned();
    assert_eq!(
        text,
        "GROUP    TOPIC   PARTITION  CURRENT-OFFSET  NEW-OFFSET\n\
         billing  orders  0          4               15\n\
         billing  orders  1          6               6\n"
    );

    // --to-earliest --execute on p0 and p1 only (the topic:partitions form).
    let (plan, _) = reset(&["--topic", "orders:0,1", "--to-earliest", "--execute"]);
    assert_eq!(plan, BTreeMap::from([(0, (Some(4), 0)), (1, (Some(6), 0))]));
    let now = committed(&describe_json(&b, group));
    assert_eq!((now[&t(0)], now[&t(1)]), (Some(0), Some(0)));
    assert!(!now.contains_key(&t(2)));

    // --to-latest on p0.
    reset(&["--topic", "orders:0", "--to-latest", "--execute"]);
    let now = committed(&describe_json(&b, group));
    assert_eq!((now[&t(0)], now[&t(1)]), (Some(15), Some(0)));

    // --to-offset on every committed partition; 7 is past p1's end (6): clamped.
    let (plan, err) = reset(&["--all-topics", "--to-offset", "7", "--execute"]);
    assert_eq!(
        plan,
        BTreeMap::from([(0, (Some(15), 7)), (1, (Some(0), 6))])
    );
    assert!(
        err.contains("New offset (7) is higher than latest offset for topic partition orders-1"),
        "{err}"
    );
    let now = committed(&describe_json(&b, group));
    assert_eq!((now[&t(0)], now[&t(1)]), (Some(7), Some(6)));

    // --shift-by back 3 on p0; back 100 clamps to the log start.
    reset(&["--topic", "orders:0", "--shift-by", "-3", "--execute"]);
    assert_eq!(committed(&describe_json(&b, group))[&t(0)], Some(4));
    let (plan, _) = reset(&["--topic", "orders:1", "--shift-by", "-100"]);
    assert_eq!(plan[&1], (Some(6), 0));
    // p2 has no committed offset to shift.
    let err = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            group,
            "--topic",
            "orders:2",
            "--shift-by",
            "1",
        ],
    )
    .fails_with(1)
    .to_owned();
    assert!(err.contains("no committed offset"), "{err}");

    // --to-datetime: the first record at or after the mark is p0's offset 10; p1's six
    // records came after the mark (offset 0); p2 has none and falls back to its end.
    let (plan, err) = reset(&["--topic", topic, "--to-datetime", &mark, "--execute"]);
    assert_eq!(
        plan,
        BTreeMap::from([(0, (Some(4), 10)), (1, (Some(6), 0)), (2, (None, 0))])
    );
    assert!(
        err.contains("Partition 2 from topic orders has no record"),
        "{err}"
    );
    let now = committed(&describe_json(&b, group));
    assert_eq!(
        (now[&t(0)], now[&t(1)], now[&t(2)]),
        (Some(10), Some(0), Some(0))
    );
    // A time after every record: the log end everywhere.
    let (plan, _) = reset(&[
        "--all-topics",
        "--to-datetime",
        "2999-01-01T00:00:00.000+02:00",
    ]);
    assert_eq!(
        plan,
        BTreeMap::from([(0, (Some(10), 15)), (1, (Some(0), 6)), (2, (Some(0), 0))])
    );

    // Delete the now empty group: gone from list and describe.
    let out = ctl(&b, &["groups", "delete", "--group", group])
        .ok()
        .to_owned();
    assert_eq!(
        out,
        "Deletion of requested consumer groups ('billing') was successful.\n"
    );
    let list = ctl(&b, &["groups", "list", "--json"]).ok().to_owned();
    assert_eq!(list.trim(), "[]");
    let err = ctl(&b, &["groups", "describe", "--group", group])
        .fails_with(1)
        .to_owned();
    assert!(
        err.contains("Consumer group 'billing' does not exist."),
        "{err}"
    );
}

#[test]
fn consumer_protocol_groups_are_described_and_not_reset_while_active() {
    let mut settings = FAST_GROUP_SETTINGS.to_vec();
    settings.push(("group.consumer.heartbeat.interval.ms", "300"));
    let broker = TestBroker::start(&settings);
    let b = broker.bootstrap();
    let (topic, group) = ("events", "kip848");
    ctl(
        &b,
        &["topics", "create", "--topic", topic, "--partitions", "4"],
    )
    .ok();
    produce(&b, topic, 0, 3);
    let m1 = Member::join_with(&b, group, topic, "new-one", "consumer");
    let m2 = Member::join_with(&b, group, topic, "new-two", "consumer");
    let v = wait_for(
        "a stable consumer-protocol group of two",
        GROUP_WAIT,
        || {
            let out = ctl(&b, &["groups", "describe", "--group", group, "--json"]);
            let v: Value = serde_json::from_str(out.stdout.trim()).ok()?;
            let owned: BTreeSet<i64> = assignments(&v, topic).into_values().flatten().collect();
            let members = v["members"].as_array()?.len();
            (v["state"] == "Stable" && members == 2 && owned == BTreeSet::from([0, 1, 2, 3]))
                .then_some(v)
        },
    );
    assert_eq!(v["protocol_type"], "consumer");
    assert_eq!(v["assignment_strategy"], "uniform");
    let per_member: Vec<usize> = assignments(&v, topic)
        .into_values()
        .map(|p| p.len())
        .collect();
    assert_eq!(per_member, vec![2, 2]);
    let refused = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            group,
            "--topic",
            topic,
            "--to-earliest",
            "--execute",
        ],
    );
    let stderr = refused.fails_with(1);
    assert!(stderr.contains("Stable"), "{stderr}");
    let listed = ctl(&b, &["groups", "list"]).ok().to_owned();
    assert!(
        listed.contains(group) && listed.contains("consumer"),
        "{listed}"
    );
    m1.close();
    m2.close();
    let v = wait_for("the group empties", GROUP_WAIT, || {
        let v = describe_json(&b, group);
        (v["state"] == "Empty").then_some(v)
    });
    assert_eq!(v["members"].as_array().unwrap().len(), 0);
    ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            group,
            "--topic",
            topic,
            "--to-latest",
            "--execute",
        ],
    )
    .ok();
    let rows = offset_rows(&describe_json(&b, group));
    assert_eq!(rows[&(topic.to_owned(), 0)].0, Some(3));
}

#[test]
fn unknown_groups_topics_and_bad_arguments() {
    let broker = TestBroker::start(FAST_GROUP_SETTINGS);
    let b = broker.bootstrap();
    ctl(
        &b,
        &["topics", "create", "--topic", "t", "--partitions", "2"],
    )
    .ok();
    produce(&b, "t", 1, 3);

    // Unknown group.
    let err = ctl(&b, &["groups", "describe", "--group", "ghost"])
        .fails_with(1)
        .to_owned();
    assert_eq!(err, "error: Consumer group 'ghost' does not exist.\n");
    let err = ctl(&b, &["groups", "delete", "--group", "ghost"])
        .fails_with(1)
        .to_owned();
    assert!(
        err.contains("Group 'ghost' could not be deleted: GROUP_ID_NOT_FOUND (69)"),
        "{err}"
    );
    let err = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "ghost",
            "--all-topics",
            "--to-earliest",
        ],
    )
    .fails_with(1)
    .to_owned();
    assert!(
        err.contains("group 'ghost' has no committed offsets"),
        "{err}"
    );

    // Unknown topic and partition.
    let err = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "ghost",
            "--topic",
            "nosuch",
            "--to-earliest",
        ],
    )
    .fails_with(1)
    .to_owned();
    assert!(err.contains("topic 'nosuch' does not exist"), "{err}");
    let err = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "ghost",
            "--topic",
            "t:5",
            "--to-earliest",
        ],
    )
    .fails_with(1)
    .to_owned();
    assert!(
        err.contains("partition 5 of topic 't' does not exist (it has 2 partitions)"),
        "{err}"
    );

    // As in Kafka, resetting a group that does not exist creates it, with no members.
    let out = ctl(
        &b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "fresh",
            "--topic",
            "t",
            "--to-offset",
            "2",
            "--execute",
        ],
    );
    assert_eq!(
        out.ok(),
        "GROUP  TOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET\n\
         fresh  t      0          -               0\n\
         fresh  t      1          -               2\n"
    );
    assert!(
        out.stderr
            .contains("group 'fresh' does not exist; it is created"),
        "{}",
        out.stderr
    );
    let v = describe_json(&b, "fresh");
    assert_eq!(v["state"], "Empty");
    assert_eq!(v["members"].as_array().unwrap().len(), 0);
    let rows = offset_rows(&v);
    assert_eq!(
        rows[&("t".to_owned(), 1)],
        (Some(2), Some(3), Some(1), None)
    );
    let list = ctl(&b, &["groups", "list"]).ok().to_owned();
    assert_eq!(
        list,
        "GROUP  STATE  TYPE     PROTOCOL-TYPE\nfresh  Empty  classic  -\n"
    );
    let members = ctl(&b, &["groups", "describe", "--group", "fresh", "--members"])
        .ok()
        .to_owned();
    assert_eq!(members, "Consumer group 'fresh' has no active members.\n");

    // Command-line mistakes are clap errors: exit 2, nothing sent.
    let usage = |args: &[&str], needle: &str| {
        let mut all = vec!["groups"];
        all.extend(args);
        let err = ctl(&b, &all).fails_with(2).to_owned();
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    let base = ["reset-offsets", "--group", "fresh", "--topic", "t"];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    usage(
        &with(&["--to-datetime", "2026-01-01"]),
        "invalid datetime '2026-01-01'",
    );
    usage(
        &with(&["--to-datetime", "2026-01-01T00:00:00+25:00"]),
        "expected YYYY-MM-DDTHH:mm:SS",
    );
    usage(
        &with(&["--to-earliest", "--to-latest"]),
        "cannot be used with",
    );
    usage(
        &with(&["--to-offset", "3", "--shift-by", "1"]),
        "cannot be used with",
    );
    usage(&with(&[]), "required");
    usage(
        &with(&["--to-earliest", "--dry-run", "--execute"]),
        "cannot be used with",
    );
    usage(
        &with(&["--to-earliest", "--all-topics"]),
        "cannot be used with",
    );
    usage(&with(&["--to-offset", "-1"]), "-1");
    usage(
        &["reset-offsets", "--group", "fresh", "--to-earliest"],
        "required",
    );
    usage(
        &["describe", "--group", "fresh", "--members", "--state"],
        "cannot be used with",
    );
    usage(
        &["list", "--state", "running"],
        "unknown group state 'running'",
    );
    usage(&["delete"], "--group");
}

#[test]
fn unreachable_broker_is_reported_clearly() {
    let port = common::free_port();
    let err = ctl(&format!("127.0.0.1:{port}"), &["groups", "list"])
        .fails_with(1)
        .to_owned();
    assert!(err.contains("no broker answered"), "{err}");
    assert!(err.contains("is the broker up"), "{err}");
}
