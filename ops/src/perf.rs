//! `perf produce` and `perf consume`, after Kafka's `kafka-producer-perf-test.sh` and
//! `kafka-consumer-perf-test.sh`, so numbers from either cluster compare directly; the
//! group benchmarks `perf rebalance` and `perf commit` are in [`crate::perf_groups`],
//! `perf metadata` in [`crate::perf_metadata`] and `perf failover` in
//! [`crate::perf_failover`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::admin;
use crate::client::{
    self, check_topic_name, describe_error, parse_bool, parse_property, Acks, ClientOpts,
    Compression, Property,
};
use crate::stats::{ConsumeSummary, LatencyStats};
use crate::throttle::Throttle;

/// How often a progress line goes to stderr.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How long to let delivery reports free queue space when librdkafka's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);
/// Check interval while waiting for in-flight records at the end of `perf produce`.
const DRAIN_STEP: Duration = Duration::from_millis(10);
/// Delivery errors printed one by one before the rest are only counted.
const DELIVERY_ERRORS_PRINTED_MAX: u64 = 10;

#[derive(Debug, Subcommand)]
pub enum PerfCmd {
    /// Produce records at a target rate and report throughput and latency percentiles.
    #[command(after_help = "Examples:
  isthmusctl perf produce --topic bench --num-records 1000000 --record-size 1024 --throughput -1
  isthmusctl perf produce --topic bench --num-records 300000 --record-size 512 --throughput 10000 \\
      --acks all --compression lz4 --partitions 12 --linger-ms 5 --json

Latency is per record, from the first attempt to enqueue it (time spent waiting for
space in librdkafka's queue counts) to its delivery report. Payloads are random
uppercase letters generated once, as in Kafka's tool, so compression ratios compare.")]
    Produce(PerfProduceArgs),
    /// Read N records as fast as possible and report throughput.
    #[command(after_help = "Examples:
  isthmusctl perf consume --topic bench --messages 1000000
  isthmusctl perf consume --topic bench --messages 1000000 --group perf-1 --json

Without --group every partition is read from the beginning (assign mode, no commits).")]
    Consume(PerfConsumeArgs),
    /// Time N consumers joining one group until they share every partition exactly once.
    #[command(after_help = "Examples:
  isthmusctl perf rebalance --topic bench-groups --consumers 10 --partitions 12 --rounds 3
  isthmusctl perf rebalance --topic bench-groups --assignor cooperative-sticky --json

Each round uses a fresh group: all consumers are created first, then subscribe at
once (each polled on its own thread). The time runs from the first subscribe to the
rebalance callback that completed an assignment covering every partition exactly once,
confirmed by DescribeGroups (state Stable, every member present). The broker's
group.initial.rebalance.delay.ms (3000 by default, as in Kafka) is part of it.")]
    Rebalance(crate::perf_groups::PerfRebalanceArgs),
    /// Commit offsets as fast as synchronous commits allow and report commits/s and latency.
    #[command(after_help = "Examples:
  isthmusctl perf commit --topic bench-commits --partitions 8 --committers 4 --commits 20000
  isthmusctl perf commit --topic bench-commits --commits 5000 --json

Each committer is a librdkafka consumer (no subscription) committing its share of the
partitions with one synchronous commit in flight; latency is per commit call.")]
    Commit(crate::perf_groups::PerfCommitArgs),
    /// Topic creations and deletions per second committed by the metadata quorum.
    #[command(after_help = "Examples:
  isthmusctl -b 127.0.0.1:19093 perf metadata
  isthmusctl -b 127.0.0.1:19093 perf metadata --topics 1000 --concurrency 16 --replication-factor 3 --json

C tasks (--concurrency), each with its own connection (spread over the brokers) and one
CreateTopics request of --topics-per-request topics in flight, create --topics topics;
then delete them the same way. A topic counts when the response reports no error for
it (Isthmus answers once the change is committed and applied on the answering broker).
A baseline with one request in flight runs first, so the result is also a ratio to it.")]
    Metadata(crate::perf_metadata::PerfMetadataArgs),
    /// Time from a broker's death (or clean stop) to new leaders for all its partitions.
    #[command(after_help = "Examples:
  isthmusctl perf failover
      # 3 controllers (a:2, b:1), 4 brokers (a:2, b:2), 1000 partitions RF 3, 3 runs
  isthmusctl perf failover --combined a:2,b:1 --partitions 300 --runs 5 --json
  isthmusctl perf failover --set broker.session.timeout.ms=6000 --set broker.heartbeat.interval.ms=1000

Starts its own local cluster (as `cluster local` does) in a temporary folder, with
broker.session.timeout.ms=3000 and broker.heartbeat.interval.ms=500 unless --set says
otherwise, and stops it at the end. Each run kills (SIGKILL) the broker leading the most
partitions and polls Metadata from a surviving broker until every partition has a live
leader; then restarts it, restores preferred leaders, and does the same with SIGTERM
(controlled shutdown). The -b flag is not used.")]
    Failover(crate::perf_failover::PerfFailoverArgs),
}

#[derive(Debug, Args)]
pub struct PerfProduceArgs {
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub num_records: u64,
    /// Value size of each record in bytes.
    #[arg(long)]
    pub record_size: usize,
    /// Target records/s; -1 means as fast as possible.
    #[arg(long, allow_negative_numbers = true)]
    pub throughput: f64,
    /// Replicas that must have a record before it counts as sent (default: all).
    #[arg(long, value_enum)]
    pub acks: Option<Acks>,
    /// Batch compression (default: none).
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Replication factor when --partitions creates the topic (default: broker default).
    #[arg(long, requires = "partitions", value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: Option<i32>,
    /// Extra librdkafka producer properties: k=v [k=v ...].
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_parser = parse_property)]
    pub producer_props: Vec<Property>,
    /// librdkafka batch.size (bytes per partition batch).
    #[arg(long)]
    pub batch_size: Option<u64>,
    /// librdkafka linger.ms (how long to wait to fill a batch).
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// librdkafka enable.idempotence.
    #[arg(long, value_parser = parse_bool, value_name = "true|false")]
    pub idempotence: Option<bool>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl PerfProduceArgs {
    /// The dedicated flags as librdkafka properties; they win over `--producer-props`.
    pub fn flag_properties(&self) -> Vec<Property> {
        let mut out: Vec<Property> = Vec::new();
        let mut set = |k: &str, v: String| out.push((k.to_owned(), v));
        if let Some(a) = self.acks {
            set("acks", a.as_config().to_owned());
        }
        if let Some(c) = self.compression {
            set("compression.type", c.as_config().to_owned());
        }
        if let Some(b) = self.batch_size {
            set("batch.size", b.to_string());
        }
        if let Some(l) = self.linger_ms {
            set("linger.ms", l.to_string());
        }
        if let Some(i) = self.idempotence {
            set("enable.idempotence", i.to_string());
        }
        out
    }
}

#[derive(Debug, Args)]
pub struct PerfConsumeArgs {
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    /// Number of records to read.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Fail if no record arrives for this long (Kafka's --timeout).
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Consumer group: subscribe (from the committed offset, else the beginning).
    #[arg(long)]
    pub group: Option<String>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(opts: ClientOpts, cmd: PerfCmd) -> anyhow::Result<()> {
    match cmd {
        PerfCmd::Produce(a) => {
            check_topic_name(&a.topic)?;
            if let Some(p) = a.partitions {
                admin::ensure_topic(&opts, &a.topic, p, a.replication_factor).await?;
            }
            tokio::task::spawn_blocking(move || produce(&opts, &a)).await?
        }
        PerfCmd::Consume(a) => {
            check_topic_name(&a.topic)?;
            tokio::task::spawn_blocking(move || consume(&opts, &a)).await?
        }
        PerfCmd::Rebalance(a) => crate::perf_groups::rebalance(opts, a).await,
        PerfCmd::Commit(a) => crate::perf_groups::commit(opts, a).await,
        PerfCmd::Metadata(a) => crate::perf_metadata::run(opts, a).await,
        PerfCmd::Failover(a) => crate::perf_failover::run(opts, a).await,
    }
}

/// Delivery accounting, updated by delivery reports on the producer's polling thread.
#[derive(Debug)]
struct PerfContext {
    stats: Mutex<LatencyStats>,
    errors: AtomicU64,
    /// Nanoseconds from `origin` to the latest delivery report, for the run's duration.
    last_report_ns: AtomicU64,
    origin: Instant,
}

impl PerfContext {
    fn new(origin: Instant) -> Self {
        Self {
            stats: Mutex::new(LatencyStats::new()),
            errors: AtomicU64::new(0),
            last_report_ns: AtomicU64::new(0),
            origin,
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, LatencyStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for PerfContext {}

impl ProducerContext for PerfContext {
    /// When the record was first offered to librdkafka.
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Box<Instant>) {
        let now = Instant::now();
        let since_origin = now.saturating_duration_since(self.origin).as_nanos();
        let since_origin = u64::try_from(since_origin).unwrap_or(u64::MAX);
        self.last_report_ns
            .fetch_max(since_origin, Ordering::Relaxed);
        match result {
            Ok(m) => self.stats().record(
                now.saturating_duration_since(*sent_at),
                m.payload_len() as u64,
            ),
            Err((e, _)) => {
                let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n <= DELIVERY_ERRORS_PRINTED_MAX {
                    eprintln!("error: delivery failed: {}", describe_error(e));
                }
                if n == DELIVERY_ERRORS_PRINTED_MAX {
                    eprintln!("error: further delivery errors are counted but not printed");
                }
            }
        }
    }
}

/// Kafka's payload: random uppercase letters, made once and sent for every record.
fn make_payload(len: usize) -> Vec<u8> {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| rng.gen_range(b'A'..=b'Z')).collect()
}

/// Prints a progress line to stderr when the interval has passed.
struct Progress {
    window_start: Instant,
}

impl Progress {
    fn tick(&mut self, ctx: &PerfContext, now: Instant) {
        let window = now.saturating_duration_since(self.window_start);
        if window >= REPORT_INTERVAL {
            eprintln!("{}", ctx.stats().take_window_line(window));
            self.window_start = now;
        }
    }

    fn until_next(&self, now: Instant) -> Duration {
        (self.window_start + REPORT_INTERVAL).saturating_duration_since(now)
    }
}

fn produce(opts: &ClientOpts, a: &PerfProduceArgs) -> anyhow::Result<()> {
    let throttle = Throttle::new(a.throughput)?;
    let flags = a.flag_properties();
    let config = opts.config(&[], &[&a.producer_props, &flags]);
    let origin = Instant::now();
    let ctx = PerfContext::new(origin);
    // Delivery reports are served on the producer's own thread as they arrive, so the
    // measured latency does not depend on when this thread gets around to polling.
    let producer: ThreadedProducer<PerfContext> = config
        .create_with_context(ctx)
        .context("creating producer")?;
    let ctx = producer.context().clone();
    let payload = make_payload(a.record_size);

    let start = Instant::now();
    let mut progress = Progress {
        window_start: start,
    };
    let mut refused: Option<KafkaError> = None;
    'records: for i in 0..a.num_records {
        loop {
            let now = Instant::now();
            progress.tick(&ctx, now);
            let Some(wait) = throttle.wait(i, now - start) else {
                break;
            };
            std::thread::sleep(wait.min(progress.until_next(now)));
        }
        let mut record: BaseRecord<'_, (), [u8], _> =
            BaseRecord::with_opaque_to(&a.topic, Box::new(Instant::now())).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The polling thread frees queue space as delivery reports come in.
                    record = r;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                    progress.tick(&ctx, Instant::now());
                }
                Err((e, _)) => {
                    // Refused before sending (e.g. record too large): every later record
                    // would be refused the same way, so stop and report what we have.
                    refused = Some(e);
                    break 'records;
                }
            }
        }
    }
    while producer.in_flight_count() > 0 {
        std::thread::sleep(DRAIN_STEP);
        progress.tick(&ctx, Instant::now());
    }

    let last = Duration::from_nanos(ctx.last_report_ns.load(Ordering::Relaxed));
    let elapsed = (origin + last).saturating_duration_since(start);
    let errors = ctx.errors.load(Ordering::Relaxed);
    let summary = ctx.stats().summary(elapsed, errors);
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.to_text());
    }
    if let Some(e) = refused {
        bail!(
            "librdkafka refused a record, run stopped early: {}",
            describe_error(&e)
        );
    }
    if errors > 0 {
        bail!("{errors} of {} records were not delivered", a.num_records);
    }
    Ok(())
}

fn consume(opts: &ClientOpts, a: &PerfConsumeArgs) -> anyhow::Result<()> {
    let defaults = client::consumer_defaults(a.group.as_deref(), "earliest");
    let consumer: BaseConsumer = opts
        .config(&defaults, &[])
        .create()
        .context("creating consumer")?;
    let md = client::fetch_metadata(consumer.client(), Some(&a.topic), opts.request_timeout)?;
    let partitions = client::topic_partitions(&md, &a.topic)?;
    if a.group.is_some() {
        consumer.subscribe(&[&a.topic]).context("subscribing")?;
    } else {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(&a.topic, p, Offset::Beginning)
                .map_err(|e| anyhow::anyhow!("assigning partition {p}: {e}"))?;
        }
        consumer.assign(&tpl).context("assigning partitions")?;
    }

    let idle_max = Duration::from_millis(a.timeout_ms);
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, start);
    let (mut window_start, mut window_records, mut window_bytes) = (start, 0u64, 0u64);
    while records < a.messages {
        let now = Instant::now();
        let window = now - window_start;
        if window >= REPORT_INTERVAL {
            let secs = window.as_secs_f64();
            eprintln!(
                "{records} records received, {:.1} records/sec ({:.2} MB/sec).",
                window_records as f64 / secs,
                window_bytes as f64 / (1024.0 * 1024.0) / secs
            );
            (window_start, window_records, window_bytes) = (now, 0, 0);
        }
        let idle = now - last;
        if idle >= idle_max {
            let partial =
                ConsumeSummary::new(records, bytes, last - start, first.unwrap_or_default());
            eprintln!("{}", partial.to_text());
            bail!(
                "only {records} of {} records arrived: none for {} ms (--timeout-ms)",
                a.messages,
                a.timeout_ms
            );
        }
        let wait = (idle_max - idle).min(REPORT_INTERVAL);
        match consumer.poll(wait) {
            None => {}
            Some(Ok(m)) => {
                let now = Instant::now();
                first.get_or_insert(now - start);
                last = now;
                let size = (m.key_len() + m.payload_len()) as u64;
                records += 1;
                bytes += size;
                window_records += 1;
                window_bytes += size;
            }
            // Transient problems (a broker restart, a rebalance) are reported and retried
            // by librdkafka; the idle timeout bounds how long we wait for it.
            Some(Err(e)) => eprintln!("warning: {}", describe_error(&e)),
        }
    }
    let summary = ConsumeSummary::new(records, bytes, last - start, first.unwrap_or_default());
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.to_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(subcommand)]
        cmd: PerfCmd,
    }

    fn produce_args(args: &[&str]) -> PerfProduceArgs {
        let argv = [
            "perf",
            "produce",
            "--topic",
            "t",
            "--num-records",
            "10",
            "--record-size",
            "8",
        ];
        match Wrap::try_parse_from(argv.iter().chain(args)).unwrap().cmd {
            PerfCmd::Produce(a) => a,
            other => unreachable!("parsed a produce command, got {other:?}"),
        }
    }

    #[test]
    fn flags_become_librdkafka_properties() {
        let a = produce_args(&[
            "--throughput",
            "-1",
            "--acks",
            "all",
            "--compression",
            "zstd",
            "--batch-size",
            "65536",
            "--linger-ms",
            "5",
            "--idempotence",
            "true",
            "--producer-props",
            "acks=1",
            "client.id=x",
        ]);
        assert_eq!(a.throughput, -1.0);
        assert_eq!(
            a.producer_props,
            vec![
                ("acks".into(), "1".into()),
                ("client.id".into(), "x".into())
            ]
        );
        let opts = ClientOpts {
            bootstrap: "b:1".into(),
            command_config: vec![],
            request_timeout: Duration::from_secs(1),
        };
        let c = opts.config(&[], &[&a.producer_props, &a.flag_properties()]);
        assert_eq!(
            c.get("acks"),
            Some("all"),
            "--acks wins over --producer-props"
        );
        assert_eq!(c.get("client.id"), Some("x"));
        assert_eq!(c.get("compression.type"), Some("zstd"));
        assert_eq!(c.get("batch.size"), Some("65536"));
        assert_eq!(c.get("linger.ms"), Some("5"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn bad_values_are_refused_by_the_parser() {
        let base = [
            "perf",
            "produce",
            "--topic",
            "t",
            "--record-size",
            "8",
            "--throughput",
            "1",
        ];
        assert!(Wrap::try_parse_from(base.iter().chain(&["--num-records", "0"])).is_err());
        let with_n = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend(["--num-records", "1"]);
            v.extend(extra);
            Wrap::try_parse_from(v)
        };
        assert!(with_n(&["--idempotence", "maybe"]).is_err());
        assert!(with_n(&["--acks", "2"]).is_err());
        assert!(with_n(&["--partitions", "0"]).is_err());
        assert!(
            with_n(&["--replication-factor", "3"]).is_err(),
            "needs --partitions"
        );
        assert!(with_n(&["--producer-props", "novalue"]).is_err());
    }

    #[test]
    fn payload_is_printable_and_sized() {
        let p = make_payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!(make_payload(0).is_empty());
    }
}
