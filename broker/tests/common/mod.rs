//! Harness for integration tests that run the real `isthmus` binary.
//!
//! - [`TestBroker`]: one broker process on a free loopback port with a fresh data
//!   folder; start, kill (SIGKILL), terminate (SIGTERM), restart on the same port and
//!   folder, read its log. Dropping it kills the process; when the test is failing the
//!   folder (data + `broker.log`) is kept and its path printed.
//! - [`run_with_timeout`]: runs a helper program (a client) with a time limit and
//!   captures what it printed.
//! - [`repo_root`], [`venv_python`], [`require_tool`]: where the test dependencies are
//!   (installed by `scripts/install-test-deps.sh`).
//!
//! Each integration test file does `mod common;` and uses the parts it needs.
#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// How long a started broker may take to accept TCP connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`TestBroker::terminate`] waits for a clean exit after SIGTERM.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the broker log shown when a start fails or a test panics.
pub const LOG_TAIL_LINES: usize = 60;
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// The command the scripts tell people to run when a test tool is missing.
pub const INSTALL_HINT: &str = "run `bash scripts/install-test-deps.sh` from the repository root";

/// The `isthmus` binary. Cargo names it for the broker's own tests; another crate's tests
/// (ops/, which includes this harness) find it in the same target folder, so the workspace
/// must be built first, as `cargo nextest run --workspace` does.
pub fn isthmus_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_isthmus") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test binary> → target/<profile>/isthmus
    let exe = std::env::current_exe().expect("path of the test binary");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary inside target/<profile>/deps")
        .join("isthmus");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo build` at the repository root)",
        path.display()
    );
    path
}

/// The workspace root (the folder holding `Cargo.toml`, `scripts/`, `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("broker/ has a parent folder")
        .to_path_buf()
}

/// The Python of the test venv (`.venv/` at the repository root).
pub fn venv_python() -> PathBuf {
    repo_root().join(".venv").join("bin").join("python")
}

/// Finds `program` on `PATH`; panics naming the install script when it is missing.
pub fn require_tool(program: &str) -> PathBuf {
    find_on_path(program).unwrap_or_else(|| {
        panic!("`{program}` is not installed (not found on PATH): {INSTALL_HINT}")
    })
}

/// Finds `program` on `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Lowest port [`free_port`] hands out.
const TEST_PORT_MIN: u16 = 10_000;
/// Attempts [`free_port`] makes before falling back to a kernel-chosen port.
const FREE_PORT_ATTEMPTS: usize = 100;

/// A free TCP port on 127.0.0.1 for a broker to listen on.
///
/// Picked at random *below* the kernel's ephemeral range, so that no client connection's
/// local port can take it while a broker is down between [`TestBroker::kill`] and
/// [`TestBroker::restart`]; checked by binding it once.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_min = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_min > TEST_PORT_MIN + 1_000 {
        let span = u64::from(ephemeral_min - TEST_PORT_MIN);
        for _ in 0..FREE_PORT_ATTEMPTS {
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = TEST_PORT_MIN + u16::try_from(random % span).expect("span fits in u16");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
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
    /// `None` only after Drop has kept or removed it.
    dir: Option<tempfile::TempDir>,
    extra: Vec<(String, String)>,
    starts: u32,
}

impl TestBroker {
    /// Starts `isthmus --listeners PLAINTEXT://127.0.0.1:PORT --log.dirs DIR` plus each
    /// `extra` pair as `--key value`, and waits until the port accepts connections.
    pub fn start(extra: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::Builder::new()
            .prefix("isthmus-test-")
            .tempdir()
            .expect("create a temporary folder for the broker");
        fs::create_dir_all(dir.path().join("data")).expect("create the data folder");
        let mut broker = TestBroker {
            child: None,
            port: free_port(),
            dir: Some(dir),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts: 0,
        };
        broker.spawn_and_wait();
        broker
    }

    /// `127.0.0.1:PORT`, for clients' `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary folder holding `data/` and `broker.log`.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("broker folder").path()
    }

    /// The folder passed as `--log.dirs`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The file receiving the broker's stdout and stderr (all starts, appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("broker.log")
    }

    /// The process id, while a process is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last `n` lines of the broker log.
    pub fn log_tail(&self, n: usize) -> String {
        file_tail(&self.log_path(), n)
    }

    /// SIGKILL, then wait for the process: a crash, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (at most [`TERMINATE_TIMEOUT`]) and return the exit status.
    /// Panics, with the log tail, if the process does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .expect("terminate(): the broker is not running");
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        signal::kill(pid, Signal::SIGTERM).expect("send SIGTERM to the broker");
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the broker") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker (pid {pid}) did not exit within {TERMINATE_TIMEOUT:?} after SIGTERM; \
                     killed it. Log tail:\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts the broker again with the same port, folder and arguments, and waits
    /// until it accepts connections. A broker still running is first stopped with
    /// SIGTERM (use [`kill`](Self::kill) before for a crash-restart).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.spawn_and_wait();
    }

    fn spawn_and_wait(&mut self) {
        self.starts += 1;
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open broker.log");
        let mut cmd = Command::new(isthmus_binary());
        cmd.arg("--listeners")
            .arg(format!("PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--log.dirs")
            .arg(self.data_dir());
        for (key, value) in &self.extra {
            cmd.arg(format!("--{key}")).arg(value);
        }
        let _ = writeln!(
            log,
            "===== isthmus test harness: start #{} =====\n===== {} =====",
            self.starts,
            render_command(&cmd)
        );
        let stderr = log.try_clone().expect("clone broker.log handle");
        cmd.current_dir(self.dir())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", isthmus_binary().display()));
        self.child = Some(child);
        self.wait_until_listening();
    }

    fn wait_until_listening(&mut self) {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("child just spawned");
            if let Some(status) = child.try_wait().expect("wait for the broker") {
                self.child = None;
                panic!(
                    "isthmus exited during startup ({status}) before listening on {addr}. \
                     Log ({}):\n{}",
                    self.log_path().display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "isthmus did not accept connections on {addr} within {START_TIMEOUT:?}. \
                     Log ({}):\n{}",
                    self.log_path().display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            if thread::panicking() {
                let tail = file_tail(&dir.path().join("broker.log"), LOG_TAIL_LINES);
                let path = dir.keep();
                eprintln!(
                    "isthmus test broker folder kept for inspection: {}\n\
                     --- broker.log (last {LOG_TAIL_LINES} lines) ---\n{tail}\n--- end of broker.log ---",
                    path.display()
                );
            }
        }
    }
}

fn render_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a program run by [`run_with_timeout`] did.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` when it was killed for running past the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub command: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// A readable account for failure messages: command, status, both outputs (tails).
    pub fn describe(&self, tail_lines: usize) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed: it ran past its time limit".to_string(),
        };
        format!(
            "command: {}\nstatus: {status} after {:.1}s\n--- stdout (last {tail_lines} lines) ---\n{}\n\
             --- stderr (last {tail_lines} lines) ---\n{}",
            self.command,
            self.elapsed.as_secs_f64(),
            last_lines(&self.stdout, tail_lines),
            last_lines(&self.stderr, tail_lines),
        )
    }
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) in its own process group and
/// kills the whole group if it runs longer than `limit` (and any leftovers once it has
/// exited, so no grandchild keeps the pipes open). Never hangs.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> RunOutput {
    use std::os::unix::process::CommandExt;
    let command = render_command(cmd);
    let started = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{command}`: {e}"));
    let out_reader = spawn_reader(child.stdout.take().expect("piped stdout"));
    let err_reader = spawn_reader(child.stderr.take().expect("piped stderr"));
    let group = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        if started.elapsed() >= limit {
            let _ = signal::killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        thread::sleep(POLL_INTERVAL);
    };
    // Leftover members of the group (none for a well-behaved program).
    let _ = signal::killpg(group, Signal::SIGKILL);
    RunOutput {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: started.elapsed(),
        command,
    }
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
