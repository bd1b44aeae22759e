//! Harness for `isthmusctl` tests against a real `isthmus` process.
//!
//! - [`TestBroker`]: one broker on a free loopback port with a fresh data folder, started
//!   with `--kafka.setting value` pairs; dropping it kills the process, and a failing test
//!   keeps the folder (data + `broker.log`) and prints where it is.
//! - [`ctl`]: runs `isthmusctl` against a broker with a time limit and captures its output.
//!
//! The broker binary is not a dependency of this crate, so it is looked up next to
//! `isthmusctl` in the target folder: build the workspace (or `cargo build -p
//! isthmus-broker`) first.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a started broker may take to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `isthmusctl` run may take before it is killed.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of the broker log shown when a test fails.
pub const LOG_TAIL_LINES: usize = 60;
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

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

/// The `isthmus` broker binary built next to `isthmusctl`.
pub fn isthmus() -> PathBuf {
    let ctl = isthmusctl();
    let path = ctl
        .parent()
        .expect("isthmusctl has a parent folder")
        .join("isthmus");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo build` at the repository root, \
         or `cargo build -p isthmus-broker`) with the same profile as this test",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// The last `n` lines of a text file ("" when it cannot be read).
pub fn file_tail(path: &Path, n: usize) -> String {
    let mut bytes = Vec::new();
    if File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One `isthmus` process with its own port and data folder.
pub struct TestBroker {
    child: Option<Child>,
    port: u16,
    dir: Option<tempfile::TempDir>,
}

impl TestBroker {
    /// Starts `isthmus --listeners PLAINTEXT://127.0.0.1:PORT --log.dirs DIR --k v…` and
    /// waits until it accepts connections.
    pub fn start(settings: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::Builder::new()
            .prefix("isthmusctl-test-")
            .tempdir()
            .expect("create a temporary folder for the broker");
        let port = free_port();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("broker.log"))
            .expect("open broker.log");
        let mut cmd = Command::new(isthmus());
        cmd.arg("--listeners")
            .arg(format!("PLAINTEXT://127.0.0.1:{port}"))
            .arg("--log.dirs")
            .arg(dir.path().join("data"));
        for (k, v) in settings {
            cmd.arg(format!("--{k}")).arg(v);
        }
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", isthmus().display()));
        let mut broker = TestBroker {
            child: Some(child),
            port,
            dir: Some(dir),
        };
        broker.wait_until_listening();
        broker
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        let dir = self.dir.as_ref().expect("broker folder");
        file_tail(&dir.path().join("broker.log"), LOG_TAIL_LINES)
    }

    fn wait_until_listening(&mut self) {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("child running");
            if let Some(status) = child.try_wait().expect("wait for the broker") {
                panic!(
                    "isthmus exited during startup ({status}). Log:\n{}",
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "isthmus did not listen on {addr} within {START_TIMEOUT:?}. Log:\n{}",
                self.log_tail()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            if thread::panicking() {
                let tail = file_tail(&dir.path().join("broker.log"), LOG_TAIL_LINES);
                let path = dir.keep();
                eprintln!(
                    "broker folder kept: {}\n--- broker.log (tail) ---\n{tail}\n--- end ---",
                    path.display()
                );
            }
        }
    }
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
