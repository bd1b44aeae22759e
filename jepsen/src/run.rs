//! One run, start to verdict: start the cluster, create the topics, run the workload while
//! the nemesis injects faults until the time limit, heal, drain, stop the cluster, check
//! the history and write the report.
//!
//! The run's folder: `history.jsonl`, `cluster/` (the nodes' configs, data and logs),
//! `logs/` (each node's log, copied for the report) and `report/index.html`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use isthmus_ops::local_cluster::Layout;
use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::SeedableRng;

use crate::checker::{check, AnomalyKind, CheckOptions, CheckResult};
use crate::history::{History, Op, OpType, Phase, Recorder, NEMESIS_PROCESS};
use crate::nemesis::{self, NemesisKind, Started};
use crate::observer::Observer;
use crate::report::write_report;
use crate::runtime::local::LocalRuntime;
use crate::runtime::netns::NetnsRuntime;
use crate::runtime::{Runtime, WanLink};
use crate::workload::{self, Place, QueueSpec, Workload};

/// Where the cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Processes on loopback ports: kill and pause faults only.
    Local,
    /// A network namespace per node, routed through a hub: every fault (needs root).
    Netns,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub runtime: RuntimeKind,
    pub dir: PathBuf,
    pub isthmus: PathBuf,
    /// The sites, in order (the netns runtime numbers their subnets so).
    pub sites: Vec<String>,
    /// Sites, controllers, brokers and node settings (ports are the runtime's business).
    pub layout: Layout,
    /// The workload; `bootstrap` is filled in once the cluster runs.
    pub queue: QueueSpec,
    pub nemeses: BTreeSet<NemesisKind>,
    /// Typical calm and fault length.
    pub interval: Duration,
    pub time_limit: Duration,
    pub wan: WanLink,
    pub seed: u64,
    /// How long healing may take before the drain starts anyway.
    pub recovery_limit: Duration,
    pub allowed: BTreeSet<AnomalyKind>,
}

/// How a run ended.
pub struct RunOutcome {
    pub result: CheckResult,
    pub report: PathBuf,
    /// Faults that could not be started or undone, and other trouble that does not void
    /// the history but a reader should know about.
    pub problems: Vec<String>,
    pub interrupted: bool,
}

/// Set by SIGINT / SIGTERM: the run stops injecting, heals and writes what it has.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Watches for SIGINT and SIGTERM on a thread of its own (tokio's signal handling: no
/// unsafe code here) and sets [`INTERRUPTED`].
fn catch_interrupts() {
    let _ = thread::Builder::new()
        .name("jepsen-signals".into())
        .spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    eprintln!("interrupted: healing, stopping the cluster, writing the report");
                    INTERRUPTED.store(true, Ordering::SeqCst);
                }
            });
        });
}

fn start_runtime(spec: &RunSpec) -> Result<Box<dyn Runtime>, String> {
    let cluster_dir = spec.dir.join("cluster");
    match spec.runtime {
        RuntimeKind::Local => {
            let rt = LocalRuntime::start(&spec.layout, &cluster_dir, &spec.isthmus)
                .map_err(|e| format!("starting the cluster: {e}"))?;
            Ok(Box::new(rt))
        }
        RuntimeKind::Netns => {
            let rt = NetnsRuntime::start(&spec.layout, &spec.sites, &cluster_dir, &spec.isthmus)
                .map_err(|e| format!("starting the cluster: {e}"))?;
            Ok(Box::new(rt))
        }
    }
}

/// Runs `spec` and checks its history.
pub fn run(spec: &RunSpec) -> Result<RunOutcome, String> {
    let unsupported: Vec<&str> = spec
        .nemeses
        .iter()
        .filter(|k| spec.runtime == RuntimeKind::Local && k.needs_network())
        .map(|k| k.as_str())
        .collect();
    if !unsupported.is_empty() {
        return Err(format!(
            "--runtime local cannot inject {} (no network of its own); use --runtime netns or drop them",
            unsupported.join(", ")
        ));
    }
    fs::create_dir_all(&spec.dir).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    let history_path = spec.dir.join("history.jsonl");
    if history_path.exists() {
        return Err(format!(
            "{} already holds a run; pick a new --dir",
            spec.dir.display()
        ));
    }
    catch_interrupts();
    let recorder = Arc::new(
        Recorder::create(&history_path).map_err(|e| format!("creating the history: {e}"))?,
    );
    eprintln!("starting the cluster in {}", spec.dir.display());
    let runtime = Arc::new(Mutex::new(start_runtime(spec)?));
    let log_files = runtime.lock().expect("runtime lock").log_files();
    let mut problems = Vec::new();
    let body = drive(spec, &runtime, &recorder, &mut problems);
    // Stop every node (and remove the runtime's network) before reading their logs and
    // the history. `drive`'s client threads hold only weak handles, so this drop is the last.
    drop(runtime);
    copy_logs(&log_files, &spec.dir.join("logs"));
    let interrupted = body?;
    let history = History::read(&history_path).map_err(|e| e.to_string())?;
    let result = check(
        &history,
        &CheckOptions {
            allowed: spec.allowed.clone(),
            final_drain: !interrupted,
        },
    );
    let report = write_report(&spec.dir.join("report"), &history_path, &history, &result)
        .map_err(|e| format!("writing the report: {e}"))?;
    Ok(RunOutcome {
        result,
        report,
        problems,
        interrupted,
    })
}

/// The run between cluster start and stop. Returns whether it was interrupted.
fn drive(
    spec: &RunSpec,
    runtime: &Arc<Mutex<Box<dyn Runtime>>>,
    recorder: &Arc<Recorder>,
    problems: &mut Vec<String>,
) -> Result<bool, String> {
    // Client threads (the observer's among them) may outlive this function; a weak handle
    // lets `run` drop the runtime, and so stop the nodes and remove what the runtime made,
    // at a moment of its choosing rather than whenever the last such thread ends.
    let place: Place = {
        let runtime = Arc::downgrade(runtime);
        Arc::new(move |client| {
            runtime
                .upgrade()
                .ok_or_else(|| "the cluster is stopped".to_string())?
                .lock()
                .expect("runtime lock")
                .enter_client(client)
                .map_err(|e| e.to_string())
        })
    };
    let mut queue = spec.queue.clone();
    queue.bootstrap = runtime.lock().expect("runtime lock").bootstrap_servers();
    workload::create_topics(&queue, &place)?;
    let mut observer = Observer::start(&place, &queue.bootstrap, queue.keys())?;
    if let Err(e) = wait_healthy(&observer, Duration::from_secs(60)) {
        return Err(format!("the cluster never became healthy: {e}"));
    }
    eprintln!(
        "workload on {} partitions; nemeses: {}; {:?}",
        queue.keys().len(),
        if spec.nemeses.is_empty() {
            "none".to_string()
        } else {
            spec.nemeses
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        },
        spec.time_limit
    );
    let workload = Workload::start(&queue, &place, Arc::clone(recorder))?;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let ends = Instant::now() + spec.time_limit;
    let mut active: Option<Started> = None;
    let mut next_change = Instant::now() + nemesis::jittered(spec.interval, &mut rng);
    while Instant::now() < ends && !INTERRUPTED.load(Ordering::SeqCst) {
        if Instant::now() < next_change {
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        match active.take() {
            Some(started) => {
                heal(&started, runtime, recorder, problems);
                next_change = Instant::now() + nemesis::jittered(spec.interval, &mut rng);
            }
            None => {
                let Some(kind) = spec.nemeses.iter().copied().choose(&mut rng) else {
                    next_change = ends;
                    continue;
                };
                let mut rt = runtime.lock().expect("runtime lock");
                match nemesis::start(kind, rt.as_mut(), &mut observer, spec.wan, &mut rng) {
                    Ok(Some(started)) => {
                        note(
                            recorder,
                            problems,
                            Op::nemesis(NEMESIS_PROCESS, OpType::Info, kind.as_str(), Phase::Start)
                                .with_detail(&started.detail),
                        );
                        eprintln!("nemesis: {kind} {}", started.detail);
                        active = Some(started);
                        next_change = Instant::now() + spec.interval;
                    }
                    Ok(None) => {
                        next_change = Instant::now() + nemesis::jittered(spec.interval, &mut rng);
                    }
                    Err(e) => {
                        problems.push(format!("starting {kind}: {e}"));
                        note(
                            recorder,
                            problems,
                            Op::nemesis(NEMESIS_PROCESS, OpType::Info, kind.as_str(), Phase::Start)
                                .with_error(e.to_string()),
                        );
                        next_change = Instant::now() + nemesis::jittered(spec.interval, &mut rng);
                    }
                }
            }
        }
    }
    if let Some(started) = active.take() {
        heal(&started, runtime, recorder, problems);
    }
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    eprintln!("stopping the workload");
    if let Err(e) = workload.stop() {
        problems.push(format!("workload: {e}"));
    }
    if interrupted {
        return Ok(true);
    }
    if let Err(e) = wait_healthy(&observer, spec.recovery_limit) {
        problems.push(format!(
            "the cluster did not recover within {:?}: {e}; draining anyway",
            spec.recovery_limit
        ));
    }
    eprintln!("draining every partition");
    if let Err(e) = workload::drain(&queue, &place, Arc::clone(recorder), spec.recovery_limit) {
        problems.push(format!("drain: {e}"));
    }
    Ok(false)
}

fn note(recorder: &Recorder, problems: &mut Vec<String>, op: Op) {
    if let Err(e) = recorder.record(op) {
        problems.push(format!("recording the history: {e}"));
    }
}

fn heal(
    started: &Started,
    runtime: &Arc<Mutex<Box<dyn Runtime>>>,
    recorder: &Recorder,
    problems: &mut Vec<String>,
) {
    let kind = started.kind;
    let result = nemesis::stop(
        &started.fault,
        runtime.lock().expect("runtime lock").as_mut(),
    );
    let mut op = Op::nemesis(NEMESIS_PROCESS, OpType::Info, kind.as_str(), Phase::Stop)
        .with_detail(&started.detail);
    if let Err(e) = result {
        problems.push(format!("undoing {kind} ({}): {e}", started.detail));
        op = op.with_error(e.to_string());
    }
    eprintln!("nemesis: {kind} healed");
    note(recorder, problems, op);
}

/// Waits until every workload partition has a leader and a full ISR.
fn wait_healthy(observer: &Observer, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let status = observer.partitions().and_then(|parts| {
            let sick: Vec<String> = parts
                .iter()
                .filter(|p| p.leader < 0 || p.isr.len() < p.replicas.len())
                .map(|p| {
                    format!(
                        "{} (leader {}, isr {:?} of {:?})",
                        p.key.name(),
                        p.leader,
                        p.isr,
                        p.replicas
                    )
                })
                .collect();
            if parts.len() < observer.keys().len() {
                Err(format!(
                    "{} of {} partitions in metadata",
                    parts.len(),
                    observer.keys().len()
                ))
            } else if sick.is_empty() {
                Ok(())
            } else {
                Err(sick.join(", "))
            }
        });
        match status {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Copies each node's log to `logs/<label>.log` for the report (best effort).
fn copy_logs(files: &[(String, PathBuf)], to: &Path) {
    if fs::create_dir_all(to).is_err() {
        return;
    }
    for (label, path) in files {
        let _ = fs::copy(path, to.join(format!("{label}.log")));
    }
}
