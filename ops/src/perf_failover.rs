//! `perf failover`: how long a cluster takes to give new leaders to the partitions of a
//! broker that dies (SIGKILL) or stops cleanly (SIGTERM, controlled shutdown), measured
//! on a local layout of real processes that the command starts and stops itself.
//!
//! One run is: the broker leading the most partitions of the topic is killed, and a
//! surviving broker is asked for Metadata every `--poll-interval-ms` until no partition is
//! led by the dead broker and every partition has a live leader; the time from the kill is
//! split at the first answer that no longer lists the dead broker (it was fenced). The
//! broker is restarted and, once it is back in every ISR, preferred elections restore the
//! leadership it had. Then the same with SIGTERM: the time until no partition is led by
//! the stopping broker, and until its process exited. Runs repeat `--runs` times.
//!
//! Times are as a client sees them: the controller noticing, committing the change, and
//! the surviving broker learning it from the metadata log, to within one poll interval.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use isthmus_ops::local_cluster::{Layout, LocalCluster, Role};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, ElectLeadersRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};

use crate::client::{check_topic_name, ClientOpts};
use crate::cluster::local::LayoutArgs;
use crate::groups::client::{Conn, KafkaCode};
use crate::stats::Spread;

/// The session timeout the benchmark gives brokers unless `--set` says otherwise (Kafka's
/// default of 9 s would make every run mostly waiting).
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 3_000;
/// The heartbeat interval to go with it.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 500;
/// How often the cluster is looked at while setting up or restoring between runs.
const SETUP_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often preferred elections are asked for again while restoring leadership.
const ELECTION_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// ElectLeaders `election_type` of a preferred-replica election.
const ELECTION_PREFERRED: i8 = 0;

#[derive(Debug, Args)]
pub struct PerfFailoverArgs {
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
    /// Replication factor of the benchmark topic (at most the number of brokers).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i16).range(2..))]
    pub replication_factor: i16,
    /// Runs, each one kill and one controlled shutdown; the summary gives min/median/max.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Skip the controlled-shutdown (SIGTERM) half of each run.
    #[arg(long)]
    pub no_controlled_shutdown: bool,
    /// Metadata is asked for this often while leaders move (the resolution of the times).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub poll_interval_ms: u64,
    /// Bound on every wait (cluster up, topic ready, leaders moved, broker back).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Folder for the cluster (kept afterwards) [default: a new temporary folder, removed
    /// after a successful run].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The benchmark's broker settings, then the user's (`--set`), which win.
fn bench_settings(user: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "broker.session.timeout.ms".to_owned(),
            SESSION_TIMEOUT_MS_DEFAULT.to_string(),
        ),
        (
            "broker.heartbeat.interval.ms".to_owned(),
            HEARTBEAT_INTERVAL_MS_DEFAULT.to_string(),
        ),
    ];
    out.extend(user.iter().cloned());
    out
}

/// The last value given for `key`.
fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One partition as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// What one Metadata answer says about the brokers and the topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The brokers listed (Metadata lists unfenced brokers only).
    pub live: BTreeSet<i32>,
    /// The topic's error code (0 once it exists).
    pub topic_error: i16,
    pub partitions: BTreeMap<i32, PartitionView>,
}

impl Snapshot {
    pub fn from_response(resp: &MetadataResponse, topic: &str) -> Snapshot {
        let mut out = Snapshot {
            live: resp.brokers.iter().map(|b| b.node_id.0).collect(),
            ..Snapshot::default()
        };
        match resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        {
            Some(t) => {
                out.topic_error = t.error_code;
                out.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition_index,
                            PartitionView {
                                leader: p.leader_id.0,
                                replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
                                isr: p.isr_nodes.iter().map(|r| r.0).collect(),
                            },
                        )
                    })
                    .collect();
            }
            None => out.topic_error = -1,
        }
        out
    }

    /// Partitions `broker` leads.
    pub fn led_by(&self, broker: i32) -> usize {
        self.partitions
            .values()
            .filter(|p| p.leader == broker)
            .count()
    }

    /// Partitions without a leader that is listed (unfenced) and is not `gone`.
    pub fn without_live_leader(&self, gone: i32) -> usize {
        self.partitions
            .values()
            .filter(|p| p.leader < 0 || p.leader == gone || !self.live.contains(&p.leader))
            .count()
    }

    /// All `expected` partitions are there, each with a live leader other than `gone`.
    pub fn all_led_without(&self, expected: usize, gone: i32) -> bool {
        self.partitions.len() == expected && self.without_live_leader(gone) == 0
    }

    /// All `expected` partitions have a live leader and every replica in the ISR.
    pub fn settled(&self, expected: usize) -> bool {
        self.all_led_without(expected, i32::MIN)
            && self.partitions.values().all(|p| {
                p.isr.len() == p.replicas.len() && p.isr.iter().all(|r| self.live.contains(r))
            })
    }

    /// Partitions whose leader is not their first (preferred) replica.
    pub fn not_preferred(&self) -> Vec<i32> {
        self.partitions
            .iter()
            .filter(|(_, p)| p.replicas.first() != Some(&p.leader))
            .map(|(i, _)| *i)
            .collect()
    }

    /// The broker leading the most partitions (the lowest id on a tie) and how many.
    pub fn busiest(&self) -> Option<(i32, usize)> {
        let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
        for p in self.partitions.values().filter(|p| p.leader >= 0) {
            *counts.entry(p.leader).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by(|(a_id, a), (b_id, b)| a.cmp(b).then(b_id.cmp(a_id)))
    }
}

/// One kill: times from the SIGKILL, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillRun {
    pub broker: i32,
    /// Partitions it led, all of which got a new leader.
    pub partitions_moved: usize,
    /// Until a surviving broker no longer listed it (fenced after its session timeout).
    pub fenced_ms: f64,
    /// From then until every partition had a live leader.
    pub elections_ms: f64,
    /// From the kill until every partition had a live leader.
    pub total_ms: f64,
}

/// One controlled shutdown: times from the SIGTERM, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlledRun {
    pub broker: i32,
    pub partitions_moved: usize,
    /// Until no partition was led by it (and every one had a live leader).
    pub moved_ms: f64,
    /// Until its process exited.
    pub exit_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillSummary {
    pub runs: Vec<KillRun>,
    pub total_ms: Spread,
    pub fenced_ms: Spread,
    pub elections_ms: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlledSummary {
    pub runs: Vec<ControlledRun>,
    pub moved_ms: Spread,
    pub exit_ms: Spread,
}

/// Result of `perf failover`; field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverSummary {
    pub controllers: usize,
    pub brokers: usize,
    /// Whether the nodes are broker and controller at once.
    pub combined: bool,
    pub partitions: i32,
    pub replication_factor: i16,
    pub session_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub poll_interval_ms: u64,
    pub kill: KillSummary,
    /// `null` with `--no-controlled-shutdown`.
    pub controlled_shutdown: Option<ControlledSummary>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl FailoverSummary {
    fn kill_summary(runs: Vec<KillRun>) -> KillSummary {
        let of = |f: fn(&KillRun) -> f64| Spread::of(&runs.iter().map(f).collect::<Vec<_>>());
        KillSummary {
            total_ms: of(|r| r.total_ms),
            fenced_ms: of(|r| r.fenced_ms),
            elections_ms: of(|r| r.elections_ms),
            runs,
        }
    }

    fn controlled_summary(runs: Vec<ControlledRun>) -> ControlledSummary {
        let of = |f: fn(&ControlledRun) -> f64| Spread::of(&runs.iter().map(f).collect::<Vec<_>>());
        ControlledSummary {
            moved_ms: of(|r| r.moved_ms),
            exit_ms: of(|r| r.exit_ms),
            runs,
        }
    }

    pub fn to_text(&self) -> String {
        let spread = |s: &Spread| {
            format!(
                "median {:.0} ms (min {:.0}, max {:.0})",
                s.median, s.min, s.max
            )
        };
        let moved = |counts: Vec<usize>| {
            counts
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let k = &self.kill;
        let mut out = format!(
            "{}, {} partitions RF {}, broker.session.timeout.ms={}, broker.heartbeat.interval.ms={}:\n\
             kill (SIGKILL), {} run{}: every partition led again after {}\n  \
             until fenced {}\n  elections after fencing {}\n  partitions moved per run: {}\n",
            self.layout_text(),
            self.partitions,
            self.replication_factor,
            self.session_timeout_ms
                .map_or_else(|| "?".to_owned(), |v| v.to_string()),
            self.heartbeat_interval_ms
                .map_or_else(|| "?".to_owned(), |v| v.to_string()),
            k.runs.len(),
            if k.runs.len() == 1 { "" } else { "s" },
            spread(&k.total_ms),
            spread(&k.fenced_ms),
            spread(&k.elections_ms),
            moved(k.runs.iter().map(|r| r.partitions_moved).collect()),
        );
        if let Some(c) = &self.controlled_shutdown {
            out.push_str(&format!(
                "controlled shutdown (SIGTERM), {} run{}: no partition led by it after {}\n  \
                 process exited after {}\n  partitions moved per run: {}\n",
                c.runs.len(),
                if c.runs.len() == 1 { "" } else { "s" },
                spread(&c.moved_ms),
                spread(&c.exit_ms),
                moved(c.runs.iter().map(|r| r.partitions_moved).collect()),
            ));
        }
        out
    }

    fn layout_text(&self) -> String {
        if self.combined {
            format!("{} combined nodes", self.brokers)
        } else {
            format!("{} controllers, {} brokers", self.controllers, self.brokers)
        }
    }
}

pub async fn run(opts: ClientOpts, a: PerfFailoverArgs) -> anyhow::Result<()> {
    let mut layout = a.layout.layout();
    layout.settings = bench_settings(&layout.settings);
    layout.validate()?;
    let binary = a.layout.binary()?;
    let plan = layout.plan_with(std::path::Path::new("."), |_| true)?;
    let brokers = plan.nodes.iter().filter(|n| n.role.is_broker()).count();
    if usize::try_from(a.replication_factor).unwrap_or(usize::MAX) > brokers {
        bail!(
            "--replication-factor {} needs at least that many brokers; the layout has {brokers}",
            a.replication_factor
        );
    }
    let (dir, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (make_temp_dir()?, true),
    };
    // Installed before anything starts, so a Ctrl-C never leaves nodes behind.
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let cancel = Arc::new(AtomicBool::new(false));
    let mut stop_requested = {
        let cancel = Arc::clone(&cancel);
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            cancel.store(true, Ordering::Relaxed);
        })
    };
    eprintln!(
        "Starting {} nodes in {} with {}…",
        plan.nodes.len(),
        dir.display(),
        binary.display()
    );
    let started = {
        let (layout, dir, binary, cancel) = (layout.clone(), dir.clone(), binary.clone(), cancel);
        tokio::task::spawn_blocking(move || {
            LocalCluster::start_cancellable(&layout, &dir, &binary, &cancel)
        })
        .await
        .context("the start task failed")?
    };
    let mut cluster = match started {
        Ok(c) => c,
        Err(e) => {
            keep_or_remove(&dir, temporary, false);
            return Err(e.into());
        }
    };
    let result = tokio::select! {
        r = bench(&mut cluster, &layout, &a, &opts) => r,
        _ = &mut stop_requested => Err(anyhow!("interrupted")),
    };
    eprintln!("Stopping the cluster…");
    let stopped = tokio::task::block_in_place(|| cluster.stop_all());
    let unclean: Vec<String> = stopped
        .iter()
        .filter(|(_, s)| !s.success())
        .map(|(id, s)| format!("node {id}: {s}"))
        .collect();
    if !unclean.is_empty() {
        eprintln!(
            "note: not every node stopped cleanly: {}",
            unclean.join(", ")
        );
    }
    keep_or_remove(&dir, temporary, result.is_ok());
    let summary = result?;
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

/// A new folder under the system's temporary folder.
fn make_temp_dir() -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "isthmus-perf-failover-{}-{nanos:09}",
        std::process::id()
    ));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Removes the temporary folder after a successful run; otherwise says where the logs are.
fn keep_or_remove(dir: &std::path::Path, temporary: bool, ok: bool) {
    if temporary && ok {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            eprintln!("note: could not remove {}: {e}", dir.display());
        }
    } else if !ok {
        eprintln!(
            "The nodes' configs and logs are kept in {} (node-<id>/isthmus.log).",
            dir.display()
        );
    }
}

/// Everything between start and stop: the topic, then the runs.
async fn bench(
    cluster: &mut LocalCluster,
    layout: &Layout,
    a: &PerfFailoverArgs,
    opts: &ClientOpts,
) -> anyhow::Result<FailoverSummary> {
    let topic = "perf-failover";
    check_topic_name(topic)?;
    let limit = Duration::from_millis(a.timeout_ms);
    let poll = Duration::from_millis(a.poll_interval_ms);
    let expected = usize::try_from(a.partitions).context("--partitions")?;
    let brokers: Vec<i32> = cluster
        .nodes()
        .iter()
        .filter(|n| n.role.is_broker())
        .map(|n| n.id)
        .collect();
    let all: BTreeSet<i32> = brokers.iter().copied().collect();
    let request_timeout = opts.request_timeout;
    let mut admin = Watcher::new(cluster, brokers[0], topic, request_timeout).await?;
    admin
        .wait(limit, "every broker registered and unfenced", |s| {
            all.is_subset(&s.live)
        })
        .await?;
    admin
        .create_topic(a.partitions, a.replication_factor)
        .await?;
    eprintln!(
        "Created topic {topic}: {} partitions, RF {}.",
        a.partitions, a.replication_factor
    );
    admin
        .wait(limit, "every partition led, every ISR full", |s| {
            s.settled(expected)
        })
        .await?;

    let mut kills = Vec::new();
    let mut controlled = Vec::new();
    for run in 1..=a.runs {
        // SIGKILL.
        let snap = admin.snapshot().await?;
        let (victim, led) = snap
            .busiest()
            .ok_or_else(|| anyhow!("no partition of {topic} has a leader"))?;
        let survivor = *brokers
            .iter()
            .find(|b| **b != victim)
            .ok_or_else(|| anyhow!("the layout has one broker; a failover needs two"))?;
        let mut watcher = Watcher::new(cluster, survivor, topic, request_timeout).await?;
        let t0 = Instant::now();
        tokio::task::block_in_place(|| cluster.kill(victim))?;
        let seen = watcher
            .until_moved(victim, expected, t0, poll, limit)
            .await?;
        let fenced = seen.fenced.unwrap_or(seen.moved);
        let r = KillRun {
            broker: victim,
            partitions_moved: led,
            fenced_ms: ms(fenced),
            elections_ms: ms(seen.moved.saturating_sub(fenced)),
            total_ms: ms(seen.moved),
        };
        eprintln!(
            "run {run}/{}: SIGKILL broker {victim} (leading {led} partitions): fenced after {:.0} ms, \
             every partition led again {:.0} ms later ({:.0} ms in all)",
            a.runs, r.fenced_ms, r.elections_ms, r.total_ms
        );
        kills.push(r);
        restore(cluster, &mut watcher, victim, expected, limit).await?;
        admin = watcher;

        if a.no_controlled_shutdown {
            continue;
        }
        // SIGTERM: controlled shutdown.
        let snap = admin.snapshot().await?;
        let (victim, led) = snap
            .busiest()
            .ok_or_else(|| anyhow!("no partition of {topic} has a leader"))?;
        let survivor = *brokers
            .iter()
            .find(|b| **b != victim)
            .ok_or_else(|| anyhow!("the layout has one broker; a failover needs two"))?;
        let watcher = Watcher::new(cluster, survivor, topic, request_timeout).await?;
        let t0 = Instant::now();
        let watching = tokio::spawn(async move {
            watcher
                .until_moved_owned(victim, expected, t0, poll, limit)
                .await
        });
        let exited = tokio::task::block_in_place(|| cluster.terminate(victim));
        let exit = t0.elapsed();
        let (mut watcher, seen) = watching.await.context("the watching task failed")??;
        exited?;
        let r = ControlledRun {
            broker: victim,
            partitions_moved: led,
            moved_ms: ms(seen.moved),
            exit_ms: ms(exit),
        };
        eprintln!(
            "run {run}/{}: SIGTERM broker {victim} (leading {led} partitions): no partition led by it after {:.0} ms, \
             process exited after {:.0} ms",
            a.runs, r.moved_ms, r.exit_ms
        );
        controlled.push(r);
        if run < a.runs {
            restore(cluster, &mut watcher, victim, expected, limit).await?;
        }
        admin = watcher;
    }
    let settings = &layout.settings;
    let number = |key| setting(settings, key).and_then(|v| v.trim().parse().ok());
    Ok(FailoverSummary {
        controllers: cluster
            .nodes()
            .iter()
            .filter(|n| n.role.is_controller())
            .count(),
        brokers: brokers.len(),
        combined: cluster.nodes().iter().any(|n| n.role == Role::Combined),
        partitions: a.partitions,
        replication_factor: a.replication_factor,
        session_timeout_ms: number("broker.session.timeout.ms"),
        heartbeat_interval_ms: number("broker.heartbeat.interval.ms"),
        poll_interval_ms: a.poll_interval_ms,
        kill: FailoverSummary::kill_summary(kills),
        controlled_shutdown: (!a.no_controlled_shutdown)
            .then(|| FailoverSummary::controlled_summary(controlled)),
    })
}

/// Restarts `broker`, waits until it is back in every ISR, then asks for preferred
/// elections until every partition is led by its first replica again, so each run starts
/// from the same leadership.
async fn restore(
    cluster: &mut LocalCluster,
    watcher: &mut Watcher,
    broker: i32,
    expected: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    tokio::task::block_in_place(|| cluster.restart(broker))?;
    watcher
        .wait(
            limit,
            &format!("broker {broker} back and in every ISR"),
            |s| s.live.contains(&broker) && s.settled(expected),
        )
        .await?;
    let deadline = Instant::now() + limit;
    loop {
        let snap = watcher.snapshot().await?;
        let pending = snap.not_preferred();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} partitions still not led by their preferred replica after {limit:?}",
                pending.len()
            );
        }
        watcher.elect_preferred(&pending).await?;
        tokio::time::sleep(ELECTION_RETRY_INTERVAL).await;
    }
}

/// What a watcher saw while leaders moved, as times since the kill or SIGTERM.
#[derive(Debug, Clone, Copy)]
struct Moved {
    /// The first answer without the broker in its list of live brokers.
    fenced: Option<Duration>,
    /// The first answer with every partition led by a live broker other than it.
    moved: Duration,
}

/// A connection to one broker that asks it about the benchmark topic.
struct Watcher {
    addr: String,
    topic: String,
    timeout: Duration,
    conn: Option<Conn>,
}

impl Watcher {
    /// Connected to `broker`'s client listener (connecting is not part of any time).
    async fn new(
        cluster: &LocalCluster,
        broker: i32,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<Watcher> {
        let addr = cluster
            .node(broker)
            .and_then(|n| n.client_addr)
            .ok_or_else(|| anyhow!("node {broker} has no client listener"))?
            .to_string();
        let conn = Conn::open(&addr, timeout).await?;
        Ok(Watcher {
            addr,
            topic: topic.to_owned(),
            timeout,
            conn: Some(conn),
        })
    }

    async fn conn(&mut self) -> anyhow::Result<&mut Conn> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.addr, self.timeout).await?);
        }
        Ok(self.conn.as_mut().expect("connection just opened"))
    }

    /// Calls the broker; a failed call drops the connection so the next one reconnects.
    async fn call<R: kafka_protocol::protocol::Request>(
        &mut self,
        req: &R,
    ) -> anyhow::Result<R::Response> {
        let result = match self.conn().await {
            Ok(conn) => conn.call(req).await.map(|(r, _)| r),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(self.topic.clone())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let resp = self.call(&req).await?;
        Ok(Snapshot::from_response(&resp, &self.topic))
    }

    /// Polls until `done` holds, failing after `limit` with the last state seen.
    async fn wait(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Snapshot) -> bool,
    ) -> anyhow::Result<Snapshot> {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.snapshot().await {
                Ok(s) if done(&s) => return Ok(s),
                Ok(s) => format!(
                    "live brokers {:?}, {} partitions, {} without a live leader",
                    s.live,
                    s.partitions.len(),
                    s.without_live_leader(i32::MIN)
                ),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "waiting for {what}: not reached within {limit:?} (last seen from {}: {last})",
                    self.addr
                );
            }
            tokio::time::sleep(SETUP_POLL_INTERVAL).await;
        }
    }

    async fn create_topic(
        &mut self,
        partitions: i32,
        replication_factor: i16,
    ) -> anyhow::Result<()> {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)])
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let resp = self.call(&req).await?;
        match resp.topics.first() {
            Some(t) if t.error_code == 0 => Ok(()),
            Some(t) => bail!(
                "creating topic '{}': {}{}",
                self.topic,
                KafkaCode(t.error_code),
                t.error_message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            None => bail!("creating topic '{}': empty response", self.topic),
        }
    }

    /// Asks for preferred elections of `partitions`. Per-partition errors (the preferred
    /// replica not in the ISR yet, say) are not looked at: the caller checks the leaders
    /// again and asks again. A request-level error fails.
    async fn elect_preferred(&mut self, partitions: &[i32]) -> anyhow::Result<()> {
        let req = ElectLeadersRequest::default()
            .with_election_type(ELECTION_PREFERRED)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(partitions.to_vec())]))
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let resp = self.call(&req).await?;
        if resp.error_code != 0 {
            bail!("ElectLeaders: {}", KafkaCode(resp.error_code));
        }
        Ok(())
    }

    /// Polls every `poll` until no partition is led by `gone` and every one has a live
    /// leader, noting when `gone` first drops out of the live brokers.
    async fn until_moved(
        &mut self,
        gone: i32,
        expected: usize,
        t0: Instant,
        poll: Duration,
        limit: Duration,
    ) -> anyhow::Result<Moved> {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fenced = None;
        loop {
            tick.tick().await;
            let last = match self.snapshot().await {
                Ok(s) => {
                    let at = t0.elapsed();
                    if fenced.is_none() && !s.live.contains(&gone) {
                        fenced = Some(at);
                    }
                    if s.all_led_without(expected, gone) {
                        return Ok(Moved { fenced, moved: at });
                    }
                    format!(
                        "{} partitions still led by {gone}, {} without a live leader",
                        s.led_by(gone),
                        s.without_live_leader(gone)
                    )
                }
                Err(e) => format!("{e:#}"),
            };
            if t0.elapsed() >= limit {
                bail!(
                    "partitions of broker {gone} did not all get new leaders within {limit:?} (last seen from {}: {last})",
                    self.addr
                );
            }
        }
    }

    /// [`Watcher::until_moved`] for a spawned task, handing the watcher back.
    async fn until_moved_owned(
        mut self,
        gone: i32,
        expected: usize,
        t0: Instant,
        poll: Duration,
        limit: Duration,
    ) -> anyhow::Result<(Watcher, Moved)> {
        let moved = self.until_moved(gone, expected, t0, poll, limit).await?;
        Ok((self, moved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionView {
        PartitionView {
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    fn snapshot(live: &[i32], parts: Vec<PartitionView>) -> Snapshot {
        Snapshot {
            live: live.iter().copied().collect(),
            topic_error: 0,
            partitions: parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i as i32, p))
                .collect(),
        }
    }

    #[test]
    fn leaders_move_only_to_live_brokers() {
        let before = snapshot(
            &[1, 2, 3],
            vec![
                part(1, &[1, 2, 3], &[1, 2, 3]),
                part(2, &[2, 3, 1], &[2, 3, 1]),
            ],
        );
        assert!(before.settled(2));
        assert_eq!(
            before.busiest(),
            Some((1, 1)),
            "a tie goes to the lowest id"
        );
        assert!(!before.all_led_without(2, 1));
        // Fenced, not yet moved: the leader is no longer live.
        let fenced = snapshot(
            &[2, 3],
            vec![
                part(1, &[1, 2, 3], &[1, 2, 3]),
                part(2, &[2, 3, 1], &[2, 3]),
            ],
        );
        assert_eq!(fenced.without_live_leader(1), 1);
        assert!(!fenced.settled(2));
        let moved = snapshot(
            &[2, 3],
            vec![part(2, &[1, 2, 3], &[2, 3]), part(2, &[2, 3, 1], &[2, 3])],
        );
        assert!(moved.all_led_without(2, 1));
        assert!(!moved.all_led_without(3, 1), "a partition is missing");
        assert_eq!(moved.not_preferred(), vec![0]);
        assert_eq!(moved.busiest(), Some((2, 2)));
        let leaderless = snapshot(&[2, 3], vec![part(-1, &[1], &[1])]);
        assert!(!leaderless.all_led_without(1, 1));
    }

    #[test]
    fn user_settings_win_over_the_benchmark_defaults() {
        let s = bench_settings(&[("broker.session.timeout.ms".into(), "6000".into())]);
        assert_eq!(setting(&s, "broker.session.timeout.ms"), Some("6000"));
        assert_eq!(setting(&s, "broker.heartbeat.interval.ms"), Some("500"));
    }

    #[test]
    fn summary_spreads_and_text() {
        let kill = |total: f64| KillRun {
            broker: 101,
            partitions_moved: 250,
            fenced_ms: total - 10.0,
            elections_ms: 10.0,
            total_ms: total,
        };
        let s = FailoverSummary {
            controllers: 3,
            brokers: 4,
            combined: false,
            partitions: 1000,
            replication_factor: 3,
            session_timeout_ms: Some(3000),
            heartbeat_interval_ms: Some(500),
            poll_interval_ms: 20,
            kill: FailoverSummary::kill_summary(vec![kill(3100.0), kill(3300.0), kill(3200.0)]),
            controlled_shutdown: Some(FailoverSummary::controlled_summary(vec![ControlledRun {
                broker: 102,
                partitions_moved: 250,
                moved_ms: 200.0,
                exit_ms: 400.0,
            }])),
        };
        assert_eq!(s.kill.total_ms.median, 3200.0);
        assert_eq!(s.kill.fenced_ms.min, 3090.0);
        let text = s.to_text();
        assert!(
            text.contains("every partition led again after median 3200 ms (min 3100, max 3300)"),
            "{text}"
        );
        assert!(
            text.contains("no partition led by it after median 200 ms"),
            "{text}"
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["kill"]["total_ms"]["median"], 3200.0);
        assert_eq!(v["controlled_shutdown"]["runs"][0]["exit_ms"], 400.0);
    }
}
