//! `isthmusctl quorum status` and `isthmusctl cluster describe` against a real `isthmus`
//! (one combined node from the shared harness, with a rack): the leader and its voter row,
//! the broker with its rack, fenced state (so DescribeCluster v2 was used) and partition
//! counts, in text and JSON; and the errors when nothing answers.

mod common;

use common::{ctl, free_port, TestBroker};
use serde_json::Value;

/// The rows of the table that starts with the line beginning with `header`, split on
/// whitespace (header included).
fn table_rows<'a>(text: &'a str, header: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .skip_while(|l| !l.starts_with(header))
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// The value after `key:` in the status block.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
}

#[test]
fn quorum_status_shows_the_leader_and_its_voter_row() {
    let broker = TestBroker::start(&[("broker.rack", "site-a")]);
    let out = ctl(&broker.bootstrap(), &["quorum", "status"]);
    let text = out.ok();
    assert_eq!(field(text, "LeaderId"), Some("1"), "{text}");
    assert_eq!(field(text, "MaxFollowerLag"), Some("0"), "{text}");
    assert_eq!(field(text, "CurrentObservers"), Some("[]"), "{text}");
    let cluster_id = field(text, "ClusterId").expect("ClusterId line");
    assert_eq!(cluster_id.len(), 22, "Kafka-style cluster id: {text}");
    let epoch: i64 = field(text, "LeaderEpoch").unwrap().parse().unwrap();
    assert!(epoch >= 1, "{text}");
    let hw: i64 = field(text, "HighWatermark").unwrap().parse().unwrap();
    let rows = table_rows(text, "NodeId");
    assert_eq!(
        rows[0],
        [
            "NodeId",
            "LogEndOffset",
            "Lag",
            "LastFetchTimestamp",
            "LastCaughtUpTimestamp",
            "Status"
        ]
    );
    assert_eq!(rows.len(), 2, "one voter: {text}");
    assert_eq!(rows[1][0], "1");
    assert!(rows[1][1].parse::<i64>().unwrap() >= hw, "{text}");
    assert_eq!(rows[1][2], "0");
    assert_eq!(rows[1][5], "Leader");

    let out = ctl(
        &broker.bootstrap(),
        &["quorum", "status", "--human-readable"],
    );
    assert!(out.ok().contains(" ms ago"), "{}", out.describe());

    let out = ctl(&broker.bootstrap(), &["quorum", "status", "--json"]);
    let json: Value = serde_json::from_str(out.ok()).expect("JSON");
    assert_eq!(json["cluster_id"], cluster_id);
    assert_eq!(json["leader_id"], 1);
    assert_eq!(json["voters"].as_array().unwrap().len(), 1);
    assert_eq!(json["voters"][0]["status"], "Leader");
    assert_eq!(json["voters"][0]["lag"], 0);
    assert_eq!(json["observers"], Value::Array(vec![]));
}

#[test]
fn cluster_describe_shows_the_broker_with_rack_and_counts() {
    let broker = TestBroker::start(&[("broker.rack", "site-a")]);
    let b = broker.bootstrap();
    ctl(
        &b,
        &["topics", "create", "--topic", "four", "--partitions", "4"],
    )
    .ok();
    ctl(
        &b,
        &["topics", "create", "--topic", "one", "--partitions", "1"],
    )
    .ok();

    let out = ctl(&b, &["cluster", "describe"]);
    let text = out.ok();
    assert_eq!(field(text, "ControllerId"), Some("1"), "{text}");
    assert_eq!(field(text, "Brokers"), Some("1 (0 fenced)"), "{text}");
    assert_eq!(field(text, "Partitions"), Some("5 in 2 topics"), "{text}");
    let rows = table_rows(text, "BrokerId");
    assert_eq!(
        rows[0],
        ["BrokerId", "Endpoint", "Rack", "Fenced", "Leaders", "Replicas"]
    );
    assert_eq!(
        rows[1],
        ["1", b.as_str(), "site-a", "no", "5", "5"],
        "{text}"
    );

    let out = ctl(&b, &["cluster", "describe", "--json"]);
    let json: Value = serde_json::from_str(out.ok()).expect("JSON");
    assert_eq!(json["controller_id"], 1);
    assert_eq!(
        json["fenced_known"], true,
        "the broker answers DescribeCluster v2"
    );
    let brokers = json["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0]["id"], 1);
    assert_eq!(brokers[0]["rack"], "site-a");
    assert_eq!(brokers[0]["port"], broker.port());
    assert_eq!(brokers[0]["fenced"], false);
    assert_eq!(brokers[0]["leaders"], 5);
    assert_eq!(brokers[0]["replicas"], 5);

    // Both commands name the same cluster.
    let quorum: Value =
        serde_json::from_str(ctl(&b, &["quorum", "status", "--json"]).ok()).unwrap();
    assert_eq!(quorum["cluster_id"], json["cluster_id"]);
}

#[test]
fn nothing_listening_is_a_clear_error() {
    let nobody = format!("127.0.0.1:{}", free_port());
    let out = ctl(&nobody, &["quorum", "status"]);
    let err = out.fails_with(1);
    assert!(
        err.contains("no node answered DescribeQuorum as the quorum leader"),
        "{err}"
    );
    assert!(err.contains(&nobody), "{err}");
    let out = ctl(&nobody, &["cluster", "describe"]);
    let err = out.fails_with(1);
    assert!(err.contains("no broker answered"), "{err}");
}
