//! `isthmusctl perf metadata` and `perf failover` once each with tiny sizes against real
//! `isthmus` processes, so they keep running and reporting; no timing is asserted.

mod common;

use serde_json::Value;

use common::{ctl, isthmus_binary, TestBroker};

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).expect("one JSON object on stdout")
}

fn positive(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| x > 0.0)
}

#[test]
fn metadata_bench_creates_and_deletes_every_topic() {
    let broker = TestBroker::start(&[]);
    let b = broker.bootstrap();
    let out = ctl(
        &b,
        &[
            "perf",
            "metadata",
            "--topics",
            "10",
            "--concurrency",
            "3",
            "--topics-per-request",
            "2",
            "--topic-prefix",
            "pm",
            "--json",
        ],
    );
    let v = json(out.ok());
    assert_eq!(v["topics"], 10);
    assert_eq!(v["topics_per_request"], 2);
    let levels = v["levels"].as_array().expect("levels");
    let concurrency: Vec<&Value> = levels.iter().map(|l| &l["concurrency"]).collect();
    assert_eq!(concurrency, [1, 3], "the baseline runs first: {v}");
    for l in levels {
        for phase in ["create", "delete"] {
            let p = &l[phase];
            assert_eq!(p["ok"], 10, "{phase}: {v}");
            assert_eq!(p["errors"], 0, "{phase}: {v}");
            assert_eq!(p["requests"], 5, "{phase}: {v}");
            for key in ["topics_per_sec", "latency_p50_ms", "latency_p99_ms"] {
                assert!(positive(&p[key]), "{phase} {key}: {v}");
            }
        }
    }
    assert!(positive(&v["create_speedup"]), "{v}");
    assert!(positive(&v["delete_speedup"]), "{v}");
    // Everything it created is gone again.
    let listed = ctl(&b, &["topics", "list"]);
    assert!(
        !listed.ok().lines().any(|t| t.starts_with("pm-")),
        "{}",
        listed.stdout
    );
}

#[test]
fn metadata_bench_text_names_both_levels() {
    let broker = TestBroker::start(&[]);
    let out = ctl(
        &broker.bootstrap(),
        &["perf", "metadata", "--topics", "3", "--concurrency", "2"],
    );
    let text = out.ok();
    assert!(text.contains("concurrency 1: created 3 in"), "{text}");
    assert!(text.contains("concurrency 2: created 3 in"), "{text}");
    assert!(text.contains("concurrency 2 vs 1: creations"), "{text}");
}

#[test]
fn failover_bench_moves_leaders_after_kill_and_sigterm() {
    let binary = isthmus_binary();
    // Below the ephemeral range, and apart from the 30000 the local cluster tests start at
    // and from other runs of this test (ports in use are skipped, but not atomically).
    let base_port = common::cluster_base_port().to_string();
    // -b is not used by `perf failover`; it starts its own cluster.
    let out = ctl(
        "127.0.0.1:1",
        &[
            "perf",
            "failover",
            "--partitions",
            "20",
            "--runs",
            "1",
            "--base-port",
            &base_port,
            "--isthmus",
            binary.to_str().unwrap(),
            "--json",
        ],
    );
    let v = json(out.ok());
    assert_eq!(v["controllers"], 3, "{v}");
    assert_eq!(v["brokers"], 4, "{v}");
    assert_eq!(v["partitions"], 20, "{v}");
    assert_eq!(v["session_timeout_ms"], 3000, "{v}");
    let kills = v["kill"]["runs"].as_array().expect("kill runs");
    assert_eq!(kills.len(), 1, "{v}");
    let k = &kills[0];
    assert!(positive(&k["partitions_moved"]), "{v}");
    assert!(positive(&k["fenced_ms"]), "{v}");
    assert!(positive(&k["total_ms"]), "{v}");
    assert!(k["elections_ms"].as_f64().is_some_and(|x| x >= 0.0), "{v}");
    assert!(positive(&v["kill"]["total_ms"]["median"]), "{v}");
    let shutdowns = v["controlled_shutdown"]["runs"]
        .as_array()
        .expect("controlled shutdown runs");
    assert_eq!(shutdowns.len(), 1, "{v}");
    assert!(positive(&shutdowns[0]["partitions_moved"]), "{v}");
    assert!(positive(&shutdowns[0]["moved_ms"]), "{v}");
    assert!(positive(&shutdowns[0]["exit_ms"]), "{v}");
    // The temporary cluster folder is removed after a successful run.
    assert!(!out.stderr.contains("are kept in"), "{}", out.stderr);
}
