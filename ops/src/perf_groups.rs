//! Group benchmarks: `perf rebalance` (how long N librdkafka consumers take to join one
//! group and settle on an assignment) and `perf commit` (committed-offset throughput and
//! latency).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use crate::admin;
use crate::client::{check_topic_name, describe_error, parse_property, ClientOpts, Property};
use crate::groups::client::Cluster;
use crate::groups::describe::describe_raw;
use crate::stats::{LatencyPercentiles, LatencyStats, Spread};

/// How often the rebalance bench looks at the members' assignments.
const CHECK_INTERVAL: Duration = Duration::from_millis(5);
/// Poll timeout of each consumer thread (bounds how fast it notices the stop flag).
const POLL_STEP: Duration = Duration::from_millis(50);
/// Commit errors printed one by one before the rest are only counted.
const COMMIT_ERRORS_PRINTED_MAX: u64 = 10;
/// Tries to delete a benchmark group while its members' LeaveGroups land.
const GROUP_DELETE_ATTEMPTS: u32 = 20;
const GROUP_DELETE_BACKOFF: Duration = Duration::from_millis(100);

/// librdkafka `partition.assignment.strategy`, or `consumer-protocol`: KIP-848's
/// `group.protocol=consumer`, where the broker assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Assignor {
    Range,
    Roundrobin,
    CooperativeSticky,
    ConsumerProtocol,
}

impl Assignor {
    /// As reported in the results.
    fn name(self) -> &'static str {
        match self {
            Assignor::ConsumerProtocol => "consumer-protocol",
            other => other.as_config().1,
        }
    }

    /// The librdkafka settings that select this assignor.
    fn as_config(self) -> (&'static str, &'static str) {
        match self {
            Assignor::Range => ("partition.assignment.strategy", "range"),
            Assignor::Roundrobin => ("partition.assignment.strategy", "roundrobin"),
            Assignor::CooperativeSticky => ("partition.assignment.strategy", "cooperative-sticky"),
            Assignor::ConsumerProtocol => ("group.protocol", "consumer"),
        }
    }
}

#[derive(Debug, Args)]
pub struct PerfRebalanceArgs {
    /// Topic the consumers subscribe to.
    #[arg(long)]
    pub topic: String,
    /// Consumers joining the group, each polled on its own thread.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub consumers: u32,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Replication factor if the topic is created (default: the broker's).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: Option<i32>,
    /// Rounds, each with a fresh group; the summary gives median and max.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Partition assignment strategy of the consumers.
    #[arg(long, value_enum, default_value = "range")]
    pub assignor: Assignor,
    /// Give up on a round after this long.
    #[arg(long, default_value_t = 120_000)]
    pub timeout_ms: u64,
    /// Extra librdkafka consumer properties: k=v [k=v ...].
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_property)]
    pub consumer_props: Vec<Property>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PerfCommitArgs {
    /// Topic whose partitions get offsets committed.
    #[arg(long)]
    pub topic: String,
    /// Create the topic with this many partitions if it does not exist; committers
    /// share them out (partition p goes to committer p mod C).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Replication factor if the topic is created (default: the broker's).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: Option<i32>,
    /// Committers, each a librdkafka consumer on its own thread with one synchronous
    /// commit in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub committers: u32,
    /// Commits in total, shared evenly by the committers.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub commits: u64,
    /// Group to commit for (default: perf-commit-<pid>; deleted afterwards).
    #[arg(long)]
    pub group: Option<String>,
    /// Extra librdkafka consumer properties: k=v [k=v ...].
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_property)]
    pub consumer_props: Vec<Property>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Creates the benchmark topic if needed; returns a client and the topic's partitions.
async fn prepare_topic(
    opts: &ClientOpts,
    topic: &str,
    partitions: i32,
    replication_factor: Option<i32>,
) -> anyhow::Result<(Cluster, BTreeSet<i32>)> {
    check_topic_name(topic)?;
    admin::ensure_topic(opts, topic, partitions, replication_factor).await?;
    let mut cluster = Cluster::connect(opts).await?;
    let meta = cluster.metadata(Some(&[topic.to_owned()])).await?;
    match meta.get(topic) {
        Some(t) if t.error == 0 && !t.leaders.is_empty() => {
            let partitions = t.leaders.keys().copied().collect();
            Ok((cluster, partitions))
        }
        _ => bail!("topic '{topic}' has no partitions in metadata"),
    }
}

pub async fn rebalance(opts: ClientOpts, a: PerfRebalanceArgs) -> anyhow::Result<()> {
    let (mut cluster, partitions) =
        prepare_topic(&opts, &a.topic, a.partitions, a.replication_factor).await?;
    let prefix = format!("perf-rebalance-{}", std::process::id());
    let mut times_ms = Vec::new();
    for round in 1..=a.rounds {
        let group = format!("{prefix}-{round}");
        let ms = rebalance_round(&opts, &a, &mut cluster, &group, &partitions).await?;
        eprintln!(
            "round {round}: {} consumers stable on {} partitions after {ms:.1} ms",
            a.consumers,
            partitions.len()
        );
        times_ms.push(ms);
        delete_group_quietly(&mut cluster, &group).await;
    }
    let summary = RebalanceSummary::new(&a, partitions.len(), times_ms);
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.to_text());
    }
    Ok(())
}

/// Result of `perf rebalance`; field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RebalanceSummary {
    pub consumers: u32,
    pub partitions: usize,
    pub assignor: &'static str,
    pub rounds: usize,
    /// Per round: from the first subscribe to the assignment that completed a stable
    /// group covering every partition exactly once.
    pub rebalance_ms: Vec<f64>,
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
}

impl RebalanceSummary {
    fn new(a: &PerfRebalanceArgs, partitions: usize, times_ms: Vec<f64>) -> Self {
        let spread = Spread::of(&times_ms);
        Self {
            consumers: a.consumers,
            partitions,
            assignor: a.assignor.name(),
            rounds: times_ms.len(),
            rebalance_ms: times_ms,
            min_ms: spread.min,
            median_ms: spread.median,
            max_ms: spread.max,
        }
    }

    pub fn to_text(&self) -> String {
        let rounds: Vec<String> = self
            .rebalance_ms
            .iter()
            .map(|m| format!("{m:.1}"))
            .collect();
        format!(
            "{} consumers, {} partitions, {} assignor, {} rounds: rebalance median {:.1} ms, \
             min {:.1} ms, max {:.1} ms (rounds: {} ms).",
            self.consumers,
            self.partitions,
            self.assignor,
            self.rounds,
            self.median_ms,
            self.min_ms,
            self.max_ms,
            rounds.join(", ")
        )
    }
}

/// What the consumers of one round report through their rebalance callbacks.
#[derive(Debug)]
struct RoundState {
    /// Per consumer: its current partitions of the topic, `None` while it rebalances.
    owned: Vec<Option<BTreeSet<i32>>>,
    first_subscribe: Option<Instant>,
    last_assignment: Option<Instant>,
}

#[derive(Debug)]
struct MemberCtx {
    index: usize,
    topic: String,
    state: Arc<Mutex<RoundState>>,
}

impl MemberCtx {
    fn state(&self) -> std::sync::MutexGuard<'_, RoundState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for MemberCtx {}

impl ConsumerContext for MemberCtx {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Revoke(_)) {
            self.state().owned[self.index] = None;
        }
    }

    fn post_rebalance(&self, c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Error(_)) {
            return;
        }
        let owned: BTreeSet<i32> = c
            .assignment()
            .map(|tpl| {
                tpl.elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        let now = Instant::now();
        let mut s = self.state();
        s.owned[self.index] = Some(owned);
        s.last_assignment = Some(now);
    }
}

/// Every consumer has settled and together they own each partition exactly once.
fn covers_exactly(owned: &[Option<BTreeSet<i32>>], partitions: &BTreeSet<i32>) -> bool {
    let mut seen = BTreeSet::new();
    for o in owned {
        let Some(o) = o else { return false };
        for p in o {
            if !seen.insert(*p) {
                return false;
            }
        }
    }
    &seen == partitions
}

async fn rebalance_round(
    opts: &ClientOpts,
    a: &PerfRebalanceArgs,
    cluster: &mut Cluster,
    group: &str,
    partitions: &BTreeSet<i32>,
) -> anyhow::Result<f64> {
    let n = a.consumers as usize;
    let state = Arc::new(Mutex::new(RoundState {
        owned: vec![None; n],
        first_subscribe: None,
        last_assignment: None,
    }));
    let defaults = [
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "latest"),
        ("allow.auto.create.topics", "false"),
        a.assignor.as_config(),
    ];
    let mut consumers = Vec::with_capacity(n);
    for index in 0..n {
        let ctx = MemberCtx {
            index,
            topic: a.topic.clone(),
            state: Arc::clone(&state),
        };
        let consumer: BaseConsumer<MemberCtx> = opts
            .config(&defaults, &[&a.consumer_props])
            .set("client.id", format!("perf-rebalance-{index}"))
            .create_with_context(ctx)
            .context("creating consumer")?;
        consumers.push(consumer);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<JoinHandle<anyhow::Result<()>>> = consumers
        .into_iter()
        .map(|consumer| {
            let (stop, start, state, topic) = (
                Arc::clone(&stop),
                Arc::clone(&start),
                Arc::clone(&state),
                a.topic.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                let now = Instant::now();
                {
                    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                    s.first_subscribe = Some(s.first_subscribe.map_or(now, |f| f.min(now)));
                }
                consumer.subscribe(&[&topic]).context("subscribing")?;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Err(e)) = consumer.poll(POLL_STEP) {
                        eprintln!("warning: consumer: {}", describe_error(&e));
                    }
                }
                // Dropping the consumer closes it: LeaveGroup, as an application would.
                drop(consumer);
                Ok(())
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_millis(a.timeout_ms);
    let outcome = loop {
        if Instant::now() >= deadline {
            break Err(anyhow::anyhow!(
                "the group did not settle within {} ms (--timeout-ms)",
                a.timeout_ms
            ));
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
        let candidate = {
            let s = state.lock().unwrap_or_else(PoisonError::into_inner);
            if covers_exactly(&s.owned, partitions) {
                s.first_subscribe.zip(s.last_assignment)
            } else {
                None
            }
        };
        let Some((first, last)) = candidate else {
            continue;
        };
        // The members agree; check with the coordinator that the group is Stable with
        // every member and that its view of the assignment agrees.
        if group_is_settled(cluster, group, n, &a.topic, partitions).await? {
            let still = state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_assignment;
            if still == Some(last) {
                break Ok(last.saturating_duration_since(first).as_secs_f64() * 1000.0);
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a consumer thread panicked"))??;
    }
    outcome
}

async fn group_is_settled(
    cluster: &mut Cluster,
    group: &str,
    members: usize,
    topic: &str,
    partitions: &BTreeSet<i32>,
) -> anyhow::Result<bool> {
    let g = describe_raw(cluster, group).await?;
    if g.state != "Stable" || g.members.len() != members {
        return Ok(false);
    }
    let owned: Vec<_> = g
        .members
        .into_iter()
        .map(|m| {
            Some(
                m.assignment
                    .into_iter()
                    .filter(|t| t.topic == topic)
                    .flat_map(|t| t.partitions)
                    .collect(),
            )
        })
        .collect();
    Ok(covers_exactly(&owned, partitions))
}

/// Removes a benchmark's group, waiting for its members' LeaveGroups to land.
async fn delete_group_quietly(cluster: &mut Cluster, group: &str) {
    for _ in 0..GROUP_DELETE_ATTEMPTS {
        match cluster.delete_group(group).await {
            Ok(None) => return,
            Ok(Some(code)) if code.0 == 68 => tokio::time::sleep(GROUP_DELETE_BACKOFF).await,
            Ok(Some(code)) => {
                eprintln!("note: benchmark group '{group}' not deleted: {code}");
                return;
            }
            Err(e) => {
                eprintln!("note: benchmark group '{group}' not deleted: {e:#}");
                return;
            }
        }
    }
    eprintln!("note: benchmark group '{group}' still has members; not deleted");
}

/// Result of `perf commit`; field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommitSummary {
    pub commits: u64,
    pub errors: u64,
    pub committers: u32,
    pub partitions: usize,
    /// Offsets carried by one commit, on average.
    pub offsets_per_commit: f64,
    pub elapsed_s: f64,
    pub commits_per_sec: f64,
    pub offsets_per_sec: f64,
    #[serde(flatten)]
    pub latency: LatencyPercentiles,
}

impl CommitSummary {
    pub fn to_text(&self) -> String {
        let mut line = format!(
            "{} commits ({} committers, {:.1} offsets each), {:.1} commits/sec ({:.1} offsets/sec), \
             {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.commits,
            self.committers,
            self.offsets_per_commit,
            self.commits_per_sec,
            self.offsets_per_sec,
            self.latency.latency_avg_ms,
            self.latency.latency_max_ms,
            self.latency.latency_p50_ms,
            self.latency.latency_p95_ms,
            self.latency.latency_p99_ms,
            self.latency.latency_p999_ms,
        );
        if self.errors > 0 {
            line.push_str(&format!(" {} commits failed.", self.errors));
        }
        line
    }
}

/// What one committer did.
struct CommitterResult {
    latencies: Vec<Duration>,
    offsets: u64,
}

pub async fn commit(opts: ClientOpts, a: PerfCommitArgs) -> anyhow::Result<()> {
    let (mut cluster, partitions) =
        prepare_topic(&opts, &a.topic, a.partitions, a.replication_factor).await?;
    let partitions: Vec<i32> = partitions.into_iter().collect();
    let committers = a.committers as usize;
    if committers > partitions.len() {
        bail!(
            "--committers {committers} is more than the topic's {} partitions: each committer needs one",
            partitions.len()
        );
    }
    let group = a
        .group
        .clone()
        .unwrap_or_else(|| format!("perf-commit-{}", std::process::id()));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(committers + 1));
    let mut threads = Vec::with_capacity(committers);
    for i in 0..committers {
        let mine: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| usize::try_from(*p).unwrap_or(0) % committers == i)
            .collect();
        // Commits shared evenly; the first `rest` committers do one more.
        let count = a.commits / a.committers as u64
            + u64::from((i as u64) < a.commits % a.committers as u64);
        let consumer: BaseConsumer = opts
            .config(
                &[
                    ("group.id", &group),
                    ("enable.auto.commit", "false"),
                    ("allow.auto.create.topics", "false"),
                ],
                &[&a.consumer_props],
            )
            .set("client.id", format!("perf-commit-{i}"))
            .create()
            .context("creating committer")?;
        let (topic, errors, start) = (a.topic.clone(), Arc::clone(&errors), Arc::clone(&start));
        threads.push(std::thread::spawn(
            move || -> anyhow::Result<CommitterResult> {
                let tpl_at = |offset: i64| -> anyhow::Result<TopicPartitionList> {
                    let mut tpl = TopicPartitionList::new();
                    for p in &mine {
                        tpl.add_partition_offset(&topic, *p, Offset::Offset(offset))
                            .map_err(|e| anyhow::anyhow!("offset list: {e}"))?;
                    }
                    Ok(tpl)
                };
                // Warm-up (not counted): finds the coordinator and opens its connection.
                let warm = consumer.commit(&tpl_at(0)?, CommitMode::Sync);
                start.wait();
                warm.map_err(|e| anyhow::anyhow!("first commit failed: {}", describe_error(&e)))?;
                let mut latencies = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                for k in 1..=count {
                    let tpl = tpl_at(i64::try_from(k).unwrap_or(i64::MAX))?;
                    let sent = Instant::now();
                    match consumer.commit(&tpl, CommitMode::Sync) {
                        Ok(()) => latencies.push(sent.elapsed()),
                        Err(e) => {
                            let n = errors.fetch_add(1, Ordering::Relaxed) + 1;
                            if n <= COMMIT_ERRORS_PRINTED_MAX {
                                eprintln!("error: commit failed: {}", describe_error(&e));
                            }
                        }
                    }
                }
                Ok(CommitterResult {
                    latencies,
                    offsets: count * mine.len() as u64,
                })
            },
        ));
    }
    start.wait();
    let began = Instant::now();
    let mut results = Vec::with_capacity(committers);
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a committer thread panicked")),
        }
    }
    let elapsed = began.elapsed();
    if let Some(e) = failure {
        return Err(e);
    }
    let mut stats = LatencyStats::new();
    let mut offsets = 0u64;
    for r in &results {
        for l in &r.latencies {
            stats.record(*l, 0);
        }
        offsets += r.offsets;
    }
    let commits = stats.count();
    let errors = errors.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let summary = CommitSummary {
        commits,
        errors,
        committers: a.committers,
        partitions: partitions.len(),
        offsets_per_commit: offsets as f64 / (a.commits as f64),
        elapsed_s: elapsed.as_secs_f64(),
        commits_per_sec: commits as f64 / secs,
        offsets_per_sec: offsets as f64 / secs,
        latency: stats.percentiles(),
    };
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.to_text());
    }
    if a.group.is_none() {
        delete_group_quietly(&mut cluster, &group).await;
    }
    if errors > 0 {
        bail!("{errors} of {} commits failed", a.commits);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ps: &[i32]) -> Option<BTreeSet<i32>> {
        Some(ps.iter().copied().collect())
    }

    #[test]
    fn coverage_must_be_exact_and_settled() {
        let all: BTreeSet<i32> = (0..4).collect();
        assert!(covers_exactly(&[set(&[0, 2]), set(&[1, 3])], &all));
        assert!(covers_exactly(&[set(&[0, 1, 2, 3]), set(&[])], &all));
        assert!(
            !covers_exactly(&[set(&[0, 1]), set(&[1, 2, 3])], &all),
            "p1 twice"
        );
        assert!(
            !covers_exactly(&[set(&[0, 1]), set(&[2])], &all),
            "p3 missing"
        );
        assert!(
            !covers_exactly(&[set(&[0, 1, 2, 3]), None], &all),
            "one still rebalancing"
        );
    }

    #[test]
    fn median_of_even_and_odd_rounds() {
        let a = PerfRebalanceArgs {
            topic: "t".into(),
            consumers: 2,
            partitions: 2,
            replication_factor: None,
            rounds: 1,
            assignor: Assignor::Range,
            timeout_ms: 1,
            consumer_props: vec![],
            json: false,
        };
        let s = RebalanceSummary::new(&a, 2, vec![30.0, 10.0, 20.0]);
        assert_eq!((s.min_ms, s.median_ms, s.max_ms), (10.0, 20.0, 30.0));
        assert_eq!(
            s.rebalance_ms,
            vec![30.0, 10.0, 20.0],
            "rounds kept in order"
        );
        let s = RebalanceSummary::new(&a, 2, vec![40.0, 10.0, 20.0, 30.0]);
        assert_eq!(s.median_ms, 25.0);
        assert!(
            s.to_text().contains("rebalance median 25.0 ms"),
            "{}",
            s.to_text()
        );
    }
}
