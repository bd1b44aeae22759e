//! Harness for `isthmusctl` tests against a real `isthmus` process.
//!
//! - [`TestBroker`], [`free_port`], [`isthmus_binary`]: the broker's own test harness
//!   (`broker/tests/common/mod.rs`, included here), which finds the `isthmus` binary in
//!   the same target folder: build the workspace first.
//! - [`ctl`]: runs `isthmusctl` against a broker with a time limit and captures its output.
//! - [`kafka`]: a local cluster for a test ([`kafka::TestCluster`]), topic creation,
//!   Metadata views and `log dump` of replica folders, through librdkafka and `isthmusctl`.
#![allow(dead_code)] // each test binary uses a different subset

pub mod kafka;

#[path = "../../../broker/tests/common/mod.rs"]
mod broker;
#[allow(unused_imports)] // not every test binary uses both
pub use broker::{file_tail, free_port, isthmus_binary, TestBroker};

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one `isthmusctl` run may take before it is killed.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(120);

/// Broker settings that keep group tests quick: no initial rebalance delay, few offsets
/// partitions to create.
pub const FAST_GROUP_SETTINGS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "4"),
];

/// `isthmusctl` under test.
pub fn isthmusctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isthmusctl"))
}

/// What one `isthmusctl` run did.
#[derive(Debug)]
pub struct CtlOutput {
    /// `None` when it was killed for running past [`CTL_TIMEOUT`].
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl CtlOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Stdout, after asserting a zero exit.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code(),
            Some(0),
            "isthmusctl failed\n{}",
            self.describe()
        );
        &self.stdout
    }

    /// Stderr, after asserting the exit code.
    pub fn fails_with(&self, code: i32) -> &str {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit {code}\n{}",
            self.describe()
        );
        &self.stderr
    }

    pub fn describe(&self) -> String {
        format!(
            "args: {:?}\nstatus: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `isthmusctl -b BOOTSTRAP ARGS…` with stdin closed and a time limit.
pub fn ctl(bootstrap: &str, args: &[&str]) -> CtlOutput {
    ctl_with_stdin(bootstrap, args, None)
}

/// Like [`ctl`], writing `stdin` to the program first.
pub fn ctl_with_stdin(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> CtlOutput {
    use std::io::Write;
    let mut all = vec![
        "-b".to_owned(),
        bootstrap.to_owned(),
        "--request-timeout-ms".to_owned(),
        "10000".to_owned(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let mut child = Command::new(isthmusctl())
        .args(&all)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("isthmusctl runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input).expect("write stdin");
    }
    let out = spawn_reader(child.stdout.take().expect("stdout piped"));
    let err = spawn_reader(child.stderr.take().expect("stderr piped"));
    let deadline = Instant::now() + CTL_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for isthmusctl") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    CtlOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        args: all,
    }
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Polls `f` until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A base port for a local cluster: random in 20000..29000 (below the kernel's ephemeral
/// range), so clusters of tests running at once start far apart; `LocalCluster` still
/// skips ports found busy.
pub fn cluster_base_port() -> u16 {
    20_000 + rand::random::<u16>() % 9_000
}
