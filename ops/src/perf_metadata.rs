//! `perf metadata`: metadata throughput of a running cluster, i.e. topic creations (then
//! deletions) per second that the metadata quorum commits, from concurrent admin requests.
//!
//! Each level of concurrency C runs C tasks, each with its own connection (spread over
//! the cluster's brokers) and one CreateTopics request in flight, taking the next
//! `--topics-per-request` names until `--topics` are asked for; then the same for
//! DeleteTopics. A topic counts when its result in the response carries no error (Isthmus
//! answers only once the change is committed by the quorum and applied on the answering
//! broker). The baseline, one request in flight, runs first in the same invocation so the
//! figure at C is also given as a ratio to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use crate::client::{check_topic_name, ClientOpts};
use crate::groups::client::{Cluster, Conn, KafkaCode};
use crate::stats::{LatencyPercentiles, LatencyStats};

/// Most concurrent admin requests (each has its own connection).
const CONCURRENCY_MAX: u32 = 1_000;
/// Failed topics printed one by one before the rest are only counted.
const ERRORS_PRINTED_MAX: usize = 10;
/// How often the cluster is asked whether enough brokers are up for the replication factor.
const BROKERS_CHECK_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
pub struct PerfMetadataArgs {
    /// Topics to create (and delete) at each level of concurrency.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub topics: u32,
    /// Admin requests in flight at once, each from its own task and connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=i64::from(CONCURRENCY_MAX)))]
    pub concurrency: u32,
    /// Topics named in each CreateTopics / DeleteTopics request.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub topics_per_request: u32,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Replication factor of each topic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i16).range(1..))]
    pub replication_factor: i16,
    /// Skip the baseline run with one request in flight.
    #[arg(long)]
    pub no_baseline: bool,
    /// Topic names are PREFIX-c<concurrency>-<n> [default: perf-metadata-<pid>].
    #[arg(long, value_name = "PREFIX")]
    pub topic_prefix: Option<String>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One phase (creations or deletions) at one level of concurrency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseSummary {
    pub requests: u64,
    /// Topics the responses report as done.
    pub ok: u64,
    /// Topics with an error in the response, or in a request that failed as a whole.
    pub errors: u64,
    /// From the first request sent to the last response.
    pub elapsed_s: f64,
    /// `ok` per second of `elapsed_s`.
    pub topics_per_sec: f64,
    /// Per request, from sending to the response.
    #[serde(flatten)]
    pub latency: LatencyPercentiles,
}

impl PhaseSummary {
    fn to_text(&self, verb: &str) -> String {
        let mut line = format!(
            "{verb} {} in {:.3} s, {:.1} topics/s, request latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.ok,
            self.elapsed_s,
            self.topics_per_sec,
            self.latency.latency_p50_ms,
            self.latency.latency_p99_ms,
            self.latency.latency_max_ms,
        );
        if self.errors > 0 {
            line.push_str(&format!(" ({} failed)", self.errors));
        }
        line
    }
}

/// Both phases at one level of concurrency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelSummary {
    pub concurrency: u32,
    pub create: PhaseSummary,
    pub delete: PhaseSummary,
}

/// Result of `perf metadata`; field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataSummary {
    pub topics: u32,
    pub partitions: i32,
    pub replication_factor: i16,
    pub topics_per_request: u32,
    /// Brokers the requests were spread over.
    pub brokers: usize,
    /// The baseline (concurrency 1) first, unless skipped.
    pub levels: Vec<LevelSummary>,
    /// Creations/s at `--concurrency` over the baseline's (`null` without a baseline).
    pub create_speedup: Option<f64>,
    pub delete_speedup: Option<f64>,
}

impl MetadataSummary {
    fn new(a: &PerfMetadataArgs, brokers: usize, levels: Vec<LevelSummary>) -> Self {
        let ratio = |f: fn(&LevelSummary) -> f64| match levels.as_slice() {
            [base, .., last] if base.concurrency == 1 && levels.len() > 1 => {
                let b = f(base);
                (b > 0.0).then(|| f(last) / b)
            }
            _ => None,
        };
        MetadataSummary {
            topics: a.topics,
            partitions: a.partitions,
            replication_factor: a.replication_factor,
            topics_per_request: a.topics_per_request,
            brokers,
            create_speedup: ratio(|l| l.create.topics_per_sec),
            delete_speedup: ratio(|l| l.delete.topics_per_sec),
            levels,
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} topics of {} partition{}, RF {}, {} topic{} per request, over {} broker{}:\n",
            self.topics,
            self.partitions,
            if self.partitions == 1 { "" } else { "s" },
            self.replication_factor,
            self.topics_per_request,
            if self.topics_per_request == 1 {
                ""
            } else {
                "s"
            },
            self.brokers,
            if self.brokers == 1 { "" } else { "s" },
        );
        for l in &self.levels {
            out.push_str(&format!(
                "concurrency {}: {}\n{:>15}  {}\n",
                l.concurrency,
                l.create.to_text("created"),
                "",
                l.delete.to_text("deleted"),
            ));
        }
        if let (Some(c), Some(d), Some(last)) =
            (self.create_speedup, self.delete_speedup, self.levels.last())
        {
            out.push_str(&format!(
                "concurrency {} vs 1: creations {c:.2}x, deletions {d:.2}x\n",
                last.concurrency
            ));
        }
        out
    }
}

pub async fn run(opts: ClientOpts, a: PerfMetadataArgs) -> anyhow::Result<()> {
    let prefix = a
        .topic_prefix
        .clone()
        .unwrap_or_else(|| format!("perf-metadata-{}", std::process::id()));
    check_topic_name(&format!("{prefix}-c{}-{}", a.concurrency, a.topics))?;
    let brokers = wait_for_brokers(&opts, a.replication_factor).await?;
    let mut concurrencies = Vec::new();
    if !a.no_baseline && a.concurrency != 1 {
        concurrencies.push(1);
    }
    concurrencies.push(a.concurrency);
    let mut levels = Vec::new();
    let mut failed = 0;
    for c in concurrencies {
        let names: Vec<String> = (0..a.topics)
            .map(|i| format!("{prefix}-c{c}-{i}"))
            .collect();
        let names = Arc::new(names);
        let create = run_phase(&opts, &brokers, &a, c, &names, Phase::Create).await?;
        eprintln!("concurrency {c}: {}", create.to_text("created"));
        let delete = run_phase(&opts, &brokers, &a, c, &names, Phase::Delete).await?;
        eprintln!("concurrency {c}: {}", delete.to_text("deleted"));
        failed += create.errors + delete.errors;
        levels.push(LevelSummary {
            concurrency: c,
            create,
            delete,
        });
    }
    let summary = MetadataSummary::new(&a, brokers.len(), levels);
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    if failed > 0 {
        bail!("{failed} topic creations or deletions failed");
    }
    Ok(())
}

/// The client addresses of the live brokers, once there are at least `replication_factor`
/// of them (a cluster just started registers its brokers one by one), bounded by the
/// request timeout.
async fn wait_for_brokers(
    opts: &ClientOpts,
    replication_factor: i16,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + opts.request_timeout;
    let mut cluster = Cluster::connect(opts).await?;
    loop {
        let brokers: Vec<String> = cluster.brokers().values().cloned().collect();
        if brokers.len() >= usize::try_from(replication_factor).unwrap_or(usize::MAX) {
            return Ok(brokers);
        }
        if Instant::now() >= deadline {
            bail!(
                "the cluster lists {} live broker{}; replication factor {replication_factor} needs more (waited {} ms, --request-timeout-ms)",
                brokers.len(),
                if brokers.len() == 1 { "" } else { "s" },
                opts.request_timeout.as_millis()
            );
        }
        tokio::time::sleep(BROKERS_CHECK_INTERVAL).await;
        cluster.metadata(Some(&[])).await?;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Create,
    Delete,
}

impl Phase {
    fn verb(self) -> &'static str {
        match self {
            Phase::Create => "creating",
            Phase::Delete => "deleting",
        }
    }
}

/// What one task did.
#[derive(Debug, Default)]
struct TaskResult {
    requests: u64,
    ok: u64,
    /// `(topic, what went wrong)`, all of them.
    errors: Vec<(String, String)>,
    latencies: Vec<Duration>,
    /// When its last response arrived.
    last: Option<Instant>,
}

/// `concurrency` tasks share out `names` in requests of `topics_per_request`.
async fn run_phase(
    opts: &ClientOpts,
    brokers: &[String],
    a: &PerfMetadataArgs,
    concurrency: u32,
    names: &Arc<Vec<String>>,
    phase: Phase,
) -> anyhow::Result<PhaseSummary> {
    // Connections are opened before the clock starts.
    let mut conns = Vec::new();
    for i in 0..concurrency as usize {
        let addr = &brokers[i % brokers.len()];
        conns.push(Conn::open(addr, opts.request_timeout).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let per_request = a.topics_per_request as usize;
    let timeout_ms = i32::try_from(opts.request_timeout.as_millis()).unwrap_or(i32::MAX);
    let (partitions, replication_factor) = (a.partitions, a.replication_factor);
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (next, names) = (Arc::clone(&next), Arc::clone(names));
            tokio::spawn(async move {
                let mut out = TaskResult::default();
                loop {
                    let from = next.fetch_add(per_request, Ordering::Relaxed);
                    if from >= names.len() {
                        break;
                    }
                    let batch = &names[from..(from + per_request).min(names.len())];
                    let sent = Instant::now();
                    let result = match phase {
                        Phase::Create => {
                            create(&mut conn, batch, partitions, replication_factor, timeout_ms)
                                .await
                        }
                        Phase::Delete => delete(&mut conn, batch, timeout_ms).await,
                    };
                    let now = Instant::now();
                    out.requests += 1;
                    out.latencies.push(now.saturating_duration_since(sent));
                    out.last = Some(now);
                    match result {
                        Ok(errors) => {
                            out.ok += (batch.len() - errors.len()) as u64;
                            out.errors.extend(errors);
                        }
                        Err(e) => {
                            // The connection may be unusable now: stop this task, keep the rest.
                            let what = format!("{e:#}");
                            out.errors
                                .extend(batch.iter().map(|t| (t.clone(), what.clone())));
                            break;
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut all = TaskResult::default();
    for t in tasks {
        let r = t.await.context("a benchmark task failed")?;
        all.requests += r.requests;
        all.ok += r.ok;
        all.errors.extend(r.errors);
        all.latencies.extend(r.latencies);
        all.last = all.last.max(r.last);
    }
    // Topics no task got to (every task stopped on a failed request) count as failed.
    let asked = next.load(Ordering::Relaxed).min(names.len());
    let mut errors = all.errors;
    errors.extend(names[asked..].iter().map(|t| {
        (
            t.clone(),
            "not attempted: every connection failed".to_owned(),
        )
    }));
    for (topic, what) in errors.iter().take(ERRORS_PRINTED_MAX) {
        eprintln!("error: {} topic '{topic}': {what}", phase.verb());
    }
    if errors.len() > ERRORS_PRINTED_MAX {
        eprintln!(
            "error: {} more topics failed (not printed)",
            errors.len() - ERRORS_PRINTED_MAX
        );
    }
    let elapsed = all.last.unwrap_or(start).saturating_duration_since(start);
    let mut stats = LatencyStats::new();
    for l in &all.latencies {
        stats.record(*l, 0);
    }
    Ok(PhaseSummary {
        requests: all.requests,
        ok: all.ok,
        errors: errors.len() as u64,
        elapsed_s: elapsed.as_secs_f64(),
        topics_per_sec: all.ok as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        latency: stats.percentiles(),
    })
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// One CreateTopics request; returns the topics that failed, with why.
async fn create(
    conn: &mut Conn,
    names: &[String],
    partitions: i32,
    replication_factor: i16,
    timeout_ms: i32,
) -> anyhow::Result<Vec<(String, String)>> {
    let req = CreateTopicsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(topic_name(n))
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication_factor)
                })
                .collect(),
        )
        .with_timeout_ms(timeout_ms);
    let (resp, _) = conn.call(&req).await?;
    let results = resp
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.error_code, t.error_message.clone()));
    Ok(failures(names, results))
}

/// One DeleteTopics request (by name); returns the topics that failed, with why.
async fn delete(
    conn: &mut Conn,
    names: &[String],
    timeout_ms: i32,
) -> anyhow::Result<Vec<(String, String)>> {
    let req = DeleteTopicsRequest::default()
        .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
        .with_timeout_ms(timeout_ms);
    let (resp, _) = conn.call(&req).await?;
    let results = resp.responses.iter().map(|t| {
        (
            t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
            t.error_code,
            t.error_message.clone(),
        )
    });
    Ok(failures(names, results))
}

/// The asked-for topics that a response reports with an error or leaves out.
fn failures(
    asked: &[String],
    results: impl Iterator<Item = (String, i16, Option<StrBytes>)>,
) -> Vec<(String, String)> {
    let mut answered = std::collections::HashMap::new();
    for (name, code, message) in results {
        answered.insert(name, (code, message));
    }
    asked
        .iter()
        .filter_map(|name| match answered.get(name) {
            None => Some((name.clone(), "missing from the response".to_owned())),
            Some((0, _)) => None,
            Some((code, message)) => Some((
                name.clone(),
                match message {
                    Some(m) if !m.is_empty() => format!("{}: {m}", KafkaCode(*code)),
                    _ => KafkaCode(*code).to_string(),
                },
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(topics_per_sec: f64) -> PhaseSummary {
        PhaseSummary {
            requests: 10,
            ok: 10,
            errors: 0,
            elapsed_s: 1.0,
            topics_per_sec,
            latency: LatencyStats::new().percentiles(),
        }
    }

    fn args(concurrency: u32) -> PerfMetadataArgs {
        PerfMetadataArgs {
            topics: 10,
            concurrency,
            topics_per_request: 1,
            partitions: 1,
            replication_factor: 1,
            no_baseline: false,
            topic_prefix: None,
            json: true,
        }
    }

    #[test]
    fn speedup_is_against_the_baseline_of_the_same_run() {
        let level = |c, create, delete| LevelSummary {
            concurrency: c,
            create: phase(create),
            delete: phase(delete),
        };
        let s = MetadataSummary::new(
            &args(8),
            4,
            vec![level(1, 100.0, 50.0), level(8, 400.0, 100.0)],
        );
        assert_eq!(s.create_speedup, Some(4.0));
        assert_eq!(s.delete_speedup, Some(2.0));
        assert!(s.to_text().contains("creations 4.00x, deletions 2.00x"));
        let alone = MetadataSummary::new(&args(8), 4, vec![level(8, 400.0, 100.0)]);
        assert_eq!(alone.create_speedup, None);
        let v = serde_json::to_value(&s).unwrap();
        for key in [
            "topics_per_sec",
            "latency_p50_ms",
            "latency_p99_ms",
            "ok",
            "errors",
        ] {
            assert!(v["levels"][0]["create"].get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn failures_name_errors_and_missing_topics() {
        let asked = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let got = failures(
            &asked,
            vec![
                ("a".to_owned(), 0, None),
                (
                    "b".to_owned(),
                    36,
                    Some(StrBytes::from_static_str("exists")),
                ),
            ]
            .into_iter(),
        );
        assert_eq!(
            got,
            vec![
                (
                    "b".to_owned(),
                    "TOPIC_ALREADY_EXISTS (36): exists".to_owned()
                ),
                ("c".to_owned(), "missing from the response".to_owned()),
            ]
        );
    }
}
