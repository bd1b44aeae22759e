//! Starting and stopping the real `isthmus` process: no-argument defaults, configuration
//! errors that say what to change, and a SIGTERM shutdown that leaves the logs clean.

mod common;
mod wire;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestBroker;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiVersionsRequest, CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use wire::{batch, produce, Wire};

fn isthmus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isthmus"))
}

/// (flags, environment, words the error message must contain)
type BadConfig<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn bad_configuration_stops_startup_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [BadConfig; 4] = [
        (
            &["--log.segment.bytes", "big"],
            &[],
            &["log.segment.bytes", "integer"],
        ),
        (
            &[],
            &[("ISTHMUS_AUTO_CREATE_TOPICS_ENABLE", "maybe")],
            &["ISTHMUS_AUTO_CREATE_TOPICS_ENABLE", "true or false"],
        ),
        (
            &["--listeners", "SASL_SSL://127.0.0.1:9093"],
            &[],
            &["only PLAINTEXT"],
        ),
        (
            &["--config", "/nonexistent/isthmus.toml"],
            &[],
            &["cannot read config file"],
        ),
    ];
    for (args, env, expected) in cases {
        let out = isthmus()
            .args(args)
            .args(["--log.dirs", dir.path().to_str().unwrap()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{args:?} {env:?}: message lacks {needle:?}: {stderr}"
            );
        }
    }
}

#[test]
fn a_log_dir_of_another_node_is_refused() {
    let mut broker = TestBroker::start(&[]);
    broker.terminate();
    let out = isthmus()
        .args([
            "--node.id",
            "7",
            "--log.dirs",
            broker.data_dir().to_str().unwrap(),
        ])
        .args(["--listeners", "PLAINTEXT://127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("node.id 1") && stderr.contains("this node is 7"),
        "{stderr}"
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_restart_needs_no_recovery() {
    let mut broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap());
    let topic = TopicName(StrBytes::from_static_str("clean"));
    let created = w.call(
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(topic.clone())
            .with_num_partitions(1)
            .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    for _ in 0..3 {
        let r = produce(
            &mut w,
            topic.0.as_str(),
            0,
            batch(100, -1, -1, -1, Compression::Lz4),
            -1,
        );
        assert_eq!(r.error_code, 0);
    }
    drop(w);
    let status = broker.terminate();
    assert!(
        status.success(),
        "SIGTERM must end the process with status 0, got {status:?}"
    );
    assert!(
        broker.log_tail(20).contains("stopped cleanly"),
        "{}",
        broker.log_tail(20)
    );
    assert!(
        broker.data_dir().join(".clean_shutdown").exists(),
        "no clean-shutdown marker"
    );

    broker.restart();
    let log = broker.log_tail(200);
    let since_restart = log.rsplit("start #2").next().unwrap_or(&log);
    assert!(
        !since_restart.contains("recovering"),
        "a clean restart must not recover: {since_restart}"
    );
    assert!(
        !since_restart.contains("rebuilding indexes"),
        "a clean restart must not rebuild indexes: {since_restart}"
    );
    assert!(
        !broker.data_dir().join(".clean_shutdown").exists(),
        "marker must go once the node runs"
    );
}

/// `isthmus` with no arguments serves on 127.0.0.1:9092 with data under ./data.
#[test]
fn no_arguments_serve_on_9092_with_data_under_dot_data() {
    if std::net::TcpStream::connect("127.0.0.1:9092").is_ok() {
        panic!("something already listens on 127.0.0.1:9092; stop it to run this test");
    }
    let cwd = tempfile::tempdir().unwrap();
    let mut child = isthmus()
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut wire = loop {
        if let Ok(s) = std::net::TcpStream::connect("127.0.0.1:9092") {
            drop(s);
            break Wire::connect("127.0.0.1:9092");
        }
        assert!(Instant::now() < deadline, "no listener on 127.0.0.1:9092");
        assert!(child.try_wait().unwrap().is_none(), "isthmus exited early");
        std::thread::sleep(Duration::from_millis(50));
    };
    let versions = wire.call(3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    assert!(
        cwd.path().join("data").join("meta.properties").exists(),
        "data not under ./data"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Reordering `log.dirs` (or adding a new first one) must not lose a single partition, and
/// a partition directory the metadata does not know is set aside, never deleted.
#[test]
fn reordered_log_dirs_keep_every_partition_and_strays_are_set_aside() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );
    let port = common::free_port();
    let start = |dirs: String| {
        let child = isthmus()
            .args([
                "--listeners",
                &format!("PLAINTEXT://127.0.0.1:{port}"),
                "--log.dirs",
                &dirs,
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not start with log.dirs {dirs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    };
    let stop = |mut child: std::process::Child| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
    };
    let child = start(format!("{},{}", a.display(), b.display()));
    let mut w = Wire::connect(&format!("127.0.0.1:{port}"));
    let topic = TopicName(StrBytes::from_static_str("keep"));
    let created = w.call(
        7,
        &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(topic.clone())
            .with_num_partitions(4)
            .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    for partition in 0..4 {
        let r = produce(
            &mut w,
            topic.0.as_str(),
            partition,
            batch(10, -1, -1, -1, Compression::None),
            -1,
        );
        assert_eq!(r.error_code, 0);
    }
    drop(w);
    stop(child);
    // Partitions were spread over both dirs.
    assert!(a.join("keep-0").exists() != b.join("keep-0").exists());
    let in_a = (0..4)
        .filter(|p| a.join(format!("keep-{p}")).exists())
        .count();
    assert!(in_a > 0 && in_a < 4, "all partitions landed in one log dir");
    // A stray partition directory nobody knows about.
    std::fs::create_dir_all(b.join("ghost-0")).unwrap();
    std::fs::write(b.join("ghost-0").join("marker"), b"x").unwrap();

    let child = start(format!("{},{},{}", c.display(), b.display(), a.display()));
    let mut w = Wire::connect(&format!("127.0.0.1:{port}"));
    for partition in 0..4 {
        let r = produce(
            &mut w,
            topic.0.as_str(),
            partition,
            batch(1, -1, -1, -1, Compression::None),
            -1,
        );
        let p = &r;
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, 10),
            "partition {partition} lost its data"
        );
    }
    drop(w);
    stop(child);
    assert!(!b.join("ghost-0").exists(), "stray left in place");
    let kept = std::fs::read_dir(b.join(".stray"))
        .unwrap()
        .flatten()
        .any(|d| d.path().join("ghost-0").join("marker").exists());
    assert!(kept, "stray partition was deleted instead of set aside");

    // Metadata missing while partition data exists: refuse to start.
    std::fs::rename(a.join("metadata"), root.path().join("moved-metadata")).unwrap();
    let out = isthmus()
        .args([
            "--listeners",
            "PLAINTEXT://127.0.0.1:0",
            "--log.dirs",
            &format!("{},{}", a.display(), b.display()),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no metadata"),
        "{stderr}"
    );
    assert!(
        a.join("keep-0").exists() || b.join("keep-0").exists(),
        "data touched by a refused start"
    );
}
