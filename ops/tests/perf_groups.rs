//! `isthmusctl perf rebalance` and `perf commit` once each with tiny sizes against a real
//! `isthmus`, to prove they run and report what they did (no timing is asserted).

mod common;

use serde_json::Value;

use common::{ctl, TestBroker, FAST_GROUP_SETTINGS};

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).expect("one JSON object on stdout")
}

#[test]
fn rebalance_bench_reports_each_round() {
    let broker = TestBroker::start(FAST_GROUP_SETTINGS);
    let b = broker.bootstrap();
    let args = [
        "perf",
        "rebalance",
        "--topic",
        "rb",
        "--consumers",
        "2",
        "--partitions",
        "3",
        "--rounds",
        "2",
        "--consumer-props",
        "heartbeat.interval.ms=300",
        "--json",
    ];
    let out = ctl(&b, &args);
    let v = json(out.ok());
    assert_eq!(v["consumers"], 2);
    assert_eq!(v["partitions"], 3);
    assert_eq!(v["assignor"], "range");
    assert_eq!(v["rounds"], 2);
    let rounds = v["rebalance_ms"].as_array().expect("rebalance_ms");
    assert_eq!(rounds.len(), 2);
    assert!(
        rounds.iter().all(|r| r.as_f64().is_some_and(|ms| ms > 0.0)),
        "{v}"
    );
    assert!(v["min_ms"].as_f64() <= v["median_ms"].as_f64());
    assert!(v["median_ms"].as_f64() <= v["max_ms"].as_f64());
    assert_eq!(
        out.stderr
            .matches("consumers stable on 3 partitions")
            .count(),
        2,
        "{}",
        out.stderr
    );
    // Each round's group is deleted afterwards.
    assert_eq!(ctl(&b, &["groups", "list", "--json"]).ok().trim(), "[]");
}

#[test]
fn commit_bench_commits_exactly_what_it_reports() {
    let broker = TestBroker::start(FAST_GROUP_SETTINGS);
    let b = broker.bootstrap();
    let out = ctl(
        &b,
        &[
            "perf",
            "commit",
            "--topic",
            "cm",
            "--partitions",
            "3",
            "--committers",
            "2",
            "--commits",
            "21",
            "--group",
            "pc",
            "--json",
        ],
    );
    let v = json(out.ok());
    assert_eq!(v["commits"], 21);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["committers"], 2);
    assert_eq!(v["partitions"], 3);
    for key in [
        "commits_per_sec",
        "offsets_per_sec",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_max_ms",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    // Committer 0 owns p0 and p2 and makes 11 commits; committer 1 owns p1 and makes 10.
    // The k-th commit writes offset k, so the last committed offsets are exact.
    let per_commit = v["offsets_per_commit"].as_f64().unwrap();
    assert!((per_commit - 32.0 / 21.0).abs() < 1e-9, "{per_commit}");
    let d = json(ctl(&b, &["groups", "describe", "--group", "pc", "--json"]).ok());
    let committed: Vec<(i64, i64)> = d["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["current_offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(committed, vec![(0, 11), (1, 10), (2, 11)]);

    let human = ctl(&b, &["perf", "commit", "--topic", "cm", "--commits", "3"]);
    assert!(
        human
            .ok()
            .starts_with("3 commits (1 committers, 3.0 offsets each), "),
        "{}",
        human.stdout
    );
    let err = ctl(
        &b,
        &[
            "perf",
            "commit",
            "--topic",
            "cm",
            "--committers",
            "4",
            "--commits",
            "4",
        ],
    )
    .fails_with(1)
    .to_owned();
    assert!(err.contains("more than the topic's 3 partitions"), "{err}");
}
