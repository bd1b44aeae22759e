//! End-to-end runs of the `isthmusctl` binary against librdkafka's in-process mock
//! cluster: real client code, real TCP on loopback, no broker to install. The mock has no
//! CreateTopics/DescribeConfigs, so those paths are checked only for clear failures; the
//! same flows against a live Isthmus broker belong in the broker's integration tests.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use rdkafka::mocking::MockCluster;

const TOPIC: &str = "events";

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = MockCluster::new(3).expect("mock cluster starts");
    c.create_topic(TOPIC, 3, 3).expect("mock topic");
    c
}

fn ctl(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_isthmusctl"))
        .args(["-b", bootstrap, "--request-timeout-ms", "5000"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("isthmusctl runs");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(stdin)
        .expect("stdin written");
    child.wait_with_output().expect("isthmusctl exits")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "failed: {:?}\nstderr: {stderr}",
        out.status
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

#[test]
fn console_round_trip_with_keys_and_headers() {
    let c = cluster();
    let b = c.bootstrap_servers();
    ok(&ctl(
        &b,
        &[
            "produce",
            "--topic",
            TOPIC,
            "--key-separator",
            ":",
            "--header",
            "src=test",
        ],
        b"k1:v1\nk2:v2:with:colons\r\nk3:\n",
    ));
    let out = ok(&ctl(
        &b,
        &[
            "consume",
            "--topic",
            TOPIC,
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "10000",
            "--print-key",
            "--print-headers",
        ],
        b"",
    ));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "src:test\tk1\tv1",
            "src:test\tk2\tv2:with:colons",
            "src:test\tk3\t"
        ]
    );
}

#[test]
fn bad_input_line_fails_after_sending_the_good_ones() {
    let c = cluster();
    let b = c.bootstrap_servers();
    let out = ctl(
        &b,
        &["produce", "--topic", TOPIC, "--key-separator", ":"],
        b"a:1\nno-key\nb:2\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: no key separator"), "{err}");
    let out = ok(&ctl(
        &b,
        &[
            "consume",
            "--topic",
            TOPIC,
            "--from-beginning",
            "--timeout-ms",
            "5000",
        ],
        b"",
    ));
    assert_eq!(out, "1\n", "only the line before the bad one was sent");
}

#[test]
fn consume_one_partition_from_an_offset() {
    let c = cluster();
    let b = c.bootstrap_servers();
    ok(&ctl(
        &b,
        &["produce", "--topic", TOPIC, "--partition", "1"],
        b"a\nb\nc\n",
    ));
    let out = ok(&ctl(
        &b,
        &[
            "consume",
            "--topic",
            TOPIC,
            "--partition",
            "1",
            "--offset",
            "1",
            "--print-offset",
            "--print-partition",
            "--max-messages",
            "2",
            "--timeout-ms",
            "10000",
        ],
        b"",
    ));
    assert_eq!(out, "Partition:1\tOffset:1\tb\nPartition:1\tOffset:2\tc\n");
}

#[test]
fn perf_produce_then_consume() {
    let c = cluster();
    let b = c.bootstrap_servers();
    let out = ok(&ctl(
        &b,
        &[
            "perf",
            "produce",
            "--topic",
            TOPIC,
            "--num-records",
            "1000",
            "--record-size",
            "64",
            "--throughput",
            "2000",
            "--json",
            "--linger-ms",
            "1",
        ],
        b"",
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["records"], 1000);
    assert_eq!(v["errors"], 0);
    let elapsed = v["elapsed_s"].as_f64().unwrap();
    assert!(
        elapsed >= 0.49,
        "1000 records at 2000/s cannot finish in {elapsed} s"
    );
    assert!(v["latency_p99_ms"].as_f64().unwrap() >= v["latency_p50_ms"].as_f64().unwrap());

    let out = ok(&ctl(
        &b,
        &[
            "perf",
            "consume",
            "--topic",
            TOPIC,
            "--messages",
            "1000",
            "--json",
        ],
        b"",
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["records"], 1000);
    assert_eq!(v["bytes"], 64_000);

    let out = ctl(
        &b,
        &[
            "perf",
            "consume",
            "--topic",
            TOPIC,
            "--messages",
            "1001",
            "--timeout-ms",
            "1500",
        ],
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only 1000 of 1001 records arrived"), "{err}");
}

#[test]
fn topics_list_and_describe_partitions() {
    let c = cluster();
    let b = c.bootstrap_servers();
    let out = ok(&ctl(&b, &["topics", "list"], b""));
    assert!(out.lines().any(|l| l == TOPIC), "{out}");
    // The mock cannot describe configs, so describe exits non-zero but still shows the
    // partitions it read from metadata.
    let out = ctl(&b, &["topics", "describe", "--topic", TOPIC], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Topic: events\tPartitionCount: 3\tReplicationFactor: 3"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("\tTopic: events\tPartition: ").count(),
        3,
        "{stdout}"
    );
}

#[test]
fn missing_topic_is_a_clear_error() {
    let c = cluster();
    let b = c.bootstrap_servers();
    let out = ctl(
        &b,
        &["consume", "--topic", "nope", "--timeout-ms", "1000"],
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    let out = ctl(&b, &["topics", "describe", "--topic", "nope"], b"");
    assert!(!out.status.success());
}
