//! The `queue` workload, through librdkafka as users run it.
//!
//! - Producer processes each send one record at a time (Jepsen's model: one operation open
//!   per process) to a random partition of the workload's topics, with a value unique per
//!   partition, through a few shared producer clients (`acks` and idempotence as the run
//!   says). An acknowledgement is `ok` with its offset; a record the client refused to
//!   queue is `fail`; any other error (a timeout, a fatal idempotence error) leaves it
//!   unknown, `info`, and the process goes on under a new number.
//! - Consumers poll in `assign` mode (every partition, from the beginning) or `subscribe`
//!   mode (one group, auto-committing). Each poll is one operation of up to
//!   [`POLL_SPAN`]; a rebalance ends the poll in progress and is recorded on its own, so the
//!   checker never compares reads across it.
//! - [`drain`]: once the faults are healed and the producers stopped, a fresh consumer reads
//!   every partition from the beginning up to its high watermark (`"drain": true` polls).
//!
//! Every client is made on a thread that first entered its place in the runtime's network
//! (a client namespace), so librdkafka's own threads start there too.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::history::{Op, OpType, Reads, Recorder, F};

/// Longest a poll operation lasts.
pub const POLL_SPAN: Duration = Duration::from_millis(200);
/// Most records one poll operation takes.
const POLL_RECORDS_MAX: usize = 500;
/// The consumer group of subscribe-mode consumers.
const GROUP: &str = "isthmus-jepsen";

/// Puts the calling thread at client `n`'s place in the network.
pub type Place = Arc<dyn Fn(usize) -> Result<(), String> + Send + Sync>;

/// One partition of the workload: its history key is `topic-partition`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub topic: String,
    pub partition: i32,
}

impl Key {
    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// What the queue workload does.
#[derive(Clone, Debug)]
pub struct QueueSpec {
    pub bootstrap: String,
    pub topics: Vec<String>,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs for creation (`min.insync.replicas`, `unclean.leader.election.enable`).
    pub topic_configs: Vec<(String, String)>,
    pub producer_processes: usize,
    pub producer_clients: usize,
    /// Producer settings on top of the harness's (`acks`, `enable.idempotence`).
    pub producer_config: Vec<(String, String)>,
    pub assign_consumers: usize,
    pub subscribe_consumers: usize,
    /// Sends per second over all producer processes.
    pub rate: f64,
    /// `message.timeout.ms`: how long one send may stay unknown.
    pub send_timeout: Duration,
    pub seed: u64,
}

impl QueueSpec {
    pub fn keys(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        for topic in &self.topics {
            for partition in 0..self.partitions {
                keys.push(Key {
                    topic: topic.clone(),
                    partition,
                });
            }
        }
        keys
    }

    /// Process numbers: consumers first, then the drain, then producers (whose numbers
    /// move on by `producer_processes` after each unknown outcome).
    fn consumer_process(&self, i: usize) -> i64 {
        i as i64
    }

    pub fn drain_process(&self) -> i64 {
        (self.assign_consumers + self.subscribe_consumers) as i64
    }

    fn producer_process(&self, i: usize) -> i64 {
        self.drain_process() + 1 + i as i64
    }
}

/// Runs `f` on a new thread placed at client `client`.
fn on_client_thread<T: Send + 'static>(
    place: &Place,
    client: usize,
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<Result<T, String>>, String> {
    let place = Arc::clone(place);
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            place(client)?;
            Ok(f())
        })
        .map_err(|e| format!("starting a client thread: {e}"))
}

/// Runs `f` at client `client`'s place and waits for it.
pub fn at_client<T: Send + 'static>(
    place: &Place,
    client: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    on_client_thread(place, client, "jepsen-client".into(), f)?
        .join()
        .map_err(|_| "a client thread panicked".to_string())?
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.max.ms", "1000");
    c
}

/// Creates the workload's topics (an existing one with the same name is an error: a run
/// starts on a fresh cluster).
pub fn create_topics(spec: &QueueSpec, place: &Place) -> Result<(), String> {
    let spec = spec.clone();
    at_client(place, 0, move || {
        let admin: AdminClient<DefaultClientContext> = base_config(&spec.bootstrap)
            .create()
            .map_err(|e| format!("admin client: {e}"))?;
        let topics: Vec<NewTopic> = spec
            .topics
            .iter()
            .map(|t| {
                spec.topic_configs.iter().fold(
                    NewTopic::new(
                        t,
                        spec.partitions,
                        TopicReplication::Fixed(spec.replication_factor),
                    ),
                    |nt, (k, v)| nt.set(k, v),
                )
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(admin.create_topics(&topics, &opts))
            .map_err(|e| format!("creating topics: {e}"))?;
        for r in results {
            r.map_err(|(t, e)| format!("creating topic {t}: {e}"))?;
        }
        Ok(())
    })?
}

/// A running workload: producer and consumer threads until [`Workload::stop`].
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<Result<(), String>, String>>>,
}

impl Workload {
    /// Starts every producer process and consumer.
    pub fn start(spec: &QueueSpec, place: &Place, recorder: Arc<Recorder>) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let keys = Arc::new(spec.keys());
        let counters: Arc<HashMap<Key, AtomicI64>> = Arc::new(
            keys.iter()
                .map(|k| (k.clone(), AtomicI64::new(0)))
                .collect(),
        );
        let clients = spec.producer_clients.max(1);
        let producers: Vec<Arc<Mutex<Arc<FutureProducer>>>> = (0..clients)
            .map(|_| {
                let spec = spec.clone();
                at_client(place, 0, move || make_producer(&spec))?
                    .map(|p| Arc::new(Mutex::new(Arc::new(p))))
            })
            .collect::<Result<_, String>>()?;
        let pace = Duration::from_secs_f64(spec.producer_processes as f64 / spec.rate.max(0.001));
        for i in 0..spec.producer_processes {
            let ctx = ProducerProcess {
                spec: spec.clone(),
                place: Arc::clone(place),
                client: Arc::clone(&producers[i % clients]),
                keys: Arc::clone(&keys),
                counters: Arc::clone(&counters),
                recorder: Arc::clone(&recorder),
                stop: Arc::clone(&stop),
                process: spec.producer_process(i),
                stride: spec.producer_processes as i64,
                pace,
                rng: StdRng::seed_from_u64(spec.seed ^ (0x5eed_0000 + i as u64)),
            };
            threads.push(on_client_thread(
                place,
                0,
                format!("jepsen-producer-{i}"),
                move || ctx.run(),
            )?);
        }
        let consumers = spec.assign_consumers + spec.subscribe_consumers;
        for i in 0..consumers {
            let mode = if i < spec.assign_consumers {
                Mode::Assign
            } else {
                Mode::Subscribe
            };
            let c = ConsumerProcess {
                spec: spec.clone(),
                keys: Arc::clone(&keys),
                recorder: Arc::clone(&recorder),
                stop: Arc::clone(&stop),
                process: spec.consumer_process(i),
                mode,
            };
            threads.push(on_client_thread(
                place,
                0,
                format!("jepsen-consumer-{i}"),
                move || c.run(),
            )?);
        }
        Ok(Self { stop, threads })
    }

    /// Stops every process (a send in flight finishes first, within the send timeout) and
    /// returns the first error any of them hit.
    pub fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut first = Ok(());
        for t in self.threads {
            let r = t
                .join()
                .map_err(|_| "a workload thread panicked".to_string())
                .and_then(|r| r.and_then(|inner| inner));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

fn make_producer(spec: &QueueSpec) -> Result<FutureProducer, String> {
    let mut c = base_config(&spec.bootstrap);
    c.set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            spec.send_timeout.as_millis().to_string(),
        )
        .set("retry.backoff.ms", "100");
    for (k, v) in &spec.producer_config {
        c.set(k, v);
    }
    c.create().map_err(|e| format!("producer client: {e}"))
}

fn record(recorder: &Recorder, op: Op) -> Result<(), String> {
    recorder
        .record(op)
        .map(|_| ())
        .map_err(|e| format!("recording the history: {e}"))
}

/// One producer process: one send open at a time.
struct ProducerProcess {
    spec: QueueSpec,
    place: Place,
    client: Arc<Mutex<Arc<FutureProducer>>>,
    keys: Arc<Vec<Key>>,
    counters: Arc<HashMap<Key, AtomicI64>>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    process: i64,
    stride: i64,
    pace: Duration,
    rng: StdRng,
}

impl ProducerProcess {
    fn run(mut self) -> Result<(), String> {
        let mut next = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if next > now {
                thread::sleep((next - now).min(Duration::from_millis(100)));
                continue;
            }
            next = (next + self.pace).max(now);
            let Some(key) = self.keys.choose(&mut self.rng).cloned() else {
                return Ok(());
            };
            let value = self.counters[&key].fetch_add(1, Ordering::SeqCst);
            self.send(&key, value)?;
        }
        Ok(())
    }

    fn send(&mut self, key: &Key, value: i64) -> Result<(), String> {
        let name = key.name();
        record(
            &self.recorder,
            Op::send(self.process, OpType::Invoke, name.clone(), value),
        )?;
        let producer = Arc::clone(&self.client.lock().expect("producer lock"));
        let payload = value.to_string();
        let queued = producer.send_result(
            FutureRecord::<(), str>::to(&key.topic)
                .partition(key.partition)
                .payload(&payload),
        );
        let outcome = match queued {
            Err((e, _)) => {
                Op::send(self.process, OpType::Fail, name, value).with_error(error_name(&e))
            }
            Ok(delivery) => match futures::executor::block_on(delivery) {
                Ok(Ok(d)) => Op::send(self.process, OpType::Ok, name, value).with_offset(d.offset),
                Ok(Err((e, _))) => {
                    Op::send(self.process, OpType::Info, name, value).with_error(error_name(&e))
                }
                Err(_) => Op::send(self.process, OpType::Info, name, value)
                    .with_error("delivery report lost"),
            },
        };
        let unknown = outcome.op_type == OpType::Info;
        record(&self.recorder, outcome)?;
        if unknown {
            self.process += self.stride;
            if producer.client().fatal_error().is_some() {
                self.replace_client(&producer)?;
            }
        }
        Ok(())
    }

    /// A fatal error (idempotence lost its sequence) ends a librdkafka producer for good;
    /// the processes sharing it go on with a new one.
    fn replace_client(&self, dead: &Arc<FutureProducer>) -> Result<(), String> {
        let mut slot = self.client.lock().expect("producer lock");
        if !Arc::ptr_eq(&slot, dead) {
            return Ok(());
        }
        let spec = self.spec.clone();
        let fresh = at_client(&self.place, 0, move || make_producer(&spec))??;
        *slot = Arc::new(fresh);
        Ok(())
    }
}

fn error_name(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => e.to_string(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Assign,
    Subscribe,
}

/// Collects rebalances as the consumer's poll sees them, for the poll loop to record
/// between polls.
struct RebalanceLog {
    events: Mutex<Vec<(String, Vec<String>)>>,
}

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (what, list) = match rebalance {
            Rebalance::Assign(list) => ("assigned", Some(*list)),
            Rebalance::Revoke(list) => ("revoked", Some(*list)),
            Rebalance::Error(_) => ("error", None),
        };
        let keys = list
            .map(|l| {
                l.elements()
                    .iter()
                    .map(|e| format!("{}-{}", e.topic(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        self.events
            .lock()
            .expect("rebalance log lock")
            .push((what.to_string(), keys));
    }
}

struct ConsumerProcess {
    spec: QueueSpec,
    keys: Arc<Vec<Key>>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    process: i64,
    mode: Mode,
}

impl ConsumerProcess {
    fn run(self) -> Result<(), String> {
        let mut c = base_config(&self.spec.bootstrap);
        c.set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("auto.commit.interval.ms", "1000");
        match self.mode {
            // Assign mode commits nothing, but librdkafka wants a group id anyway.
            Mode::Assign => c
                .set("group.id", format!("{GROUP}-assign-{}", self.process))
                .set("enable.auto.commit", "false"),
            Mode::Subscribe => c.set("group.id", GROUP).set("enable.auto.commit", "true"),
        };
        let context = RebalanceLog {
            events: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<RebalanceLog> = c
            .create_with_context(context)
            .map_err(|e| format!("consumer client: {e}"))?;
        match self.mode {
            Mode::Assign => {
                record(&self.recorder, self.assign_op(OpType::Invoke))?;
                consumer
                    .assign(&from_beginning(&self.keys))
                    .map_err(|e| format!("assigning partitions: {e}"))?;
                record(&self.recorder, self.assign_op(OpType::Ok))?;
            }
            Mode::Subscribe => {
                let topics: Vec<&str> = self.spec.topics.iter().map(String::as_str).collect();
                let op =
                    |t| Op::new(self.process, t, F::Subscribe).with_keys(self.spec.topics.clone());
                record(&self.recorder, op(OpType::Invoke))?;
                consumer
                    .subscribe(&topics)
                    .map_err(|e| format!("subscribing: {e}"))?;
                record(&self.recorder, op(OpType::Ok))?;
            }
        }
        while !self.stop.load(Ordering::SeqCst) {
            poll_once(&consumer, &self.recorder, self.process, false)?;
        }
        Ok(())
    }

    fn assign_op(&self, t: OpType) -> Op {
        Op::new(self.process, t, F::Assign).with_keys(self.keys.iter().map(Key::name).collect())
    }
}

fn from_beginning(keys: &[Key]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for k in keys {
        // Adding a partition to a fresh list cannot fail for a valid offset.
        let _ = tpl.add_partition_offset(&k.topic, k.partition, Offset::Beginning);
    }
    tpl
}

/// Records rebalances the context collected, each as a standalone `info` event.
fn flush_rebalances(
    consumer: &BaseConsumer<RebalanceLog>,
    recorder: &Recorder,
    process: i64,
) -> Result<bool, String> {
    let events: Vec<_> = std::mem::take(&mut *consumer.context().events.lock().expect("lock"));
    let any = !events.is_empty();
    for (what, keys) in events {
        record(
            recorder,
            Op::new(process, OpType::Info, F::Rebalance)
                .with_keys(keys)
                .with_detail(what),
        )?;
    }
    Ok(any)
}

/// One poll operation: up to [`POLL_SPAN`] or [`POLL_RECORDS_MAX`] records. A rebalance
/// seen meanwhile ends it early (the reads before it are this poll's).
fn poll_once(
    consumer: &BaseConsumer<RebalanceLog>,
    recorder: &Recorder,
    process: i64,
    drain: bool,
) -> Result<usize, String> {
    let poll_op = |t| {
        let op = Op::poll(process, t);
        if drain {
            op.with_drain()
        } else {
            op
        }
    };
    record(recorder, poll_op(OpType::Invoke))?;
    let started = Instant::now();
    let mut reads: Reads = BTreeMap::new();
    let mut count = 0;
    let mut error: Option<String> = None;
    loop {
        let left = POLL_SPAN.saturating_sub(started.elapsed());
        if left.is_zero() || count >= POLL_RECORDS_MAX {
            break;
        }
        let polled = consumer.poll(left);
        if !consumer.context().events.lock().expect("lock").is_empty() {
            // What this call returned came after the rebalance: close the poll without it,
            // record the rebalance, and open a new poll holding it.
            let before = std::mem::take(&mut reads);
            record(recorder, poll_op(OpType::Ok).with_reads(before))?;
            flush_rebalances(consumer, recorder, process)?;
            record(recorder, poll_op(OpType::Invoke))?;
        }
        match polled {
            None => {}
            Some(Ok(m)) => {
                let value = m
                    .payload()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|s| s.parse::<i64>().ok());
                if let Some(value) = value {
                    let key = format!("{}-{}", m.topic(), m.partition());
                    reads.entry(key).or_default().push((m.offset(), value));
                    count += 1;
                }
            }
            Some(Err(e)) => {
                error = Some(error_name(&e));
                break;
            }
        }
    }
    match error {
        Some(e) if reads.is_empty() => record(recorder, poll_op(OpType::Fail).with_error(e))?,
        _ => record(recorder, poll_op(OpType::Ok).with_reads(reads))?,
    }
    Ok(count)
}

/// The partitions' high watermarks, once every one answers.
fn high_watermarks(
    consumer: &BaseConsumer<RebalanceLog>,
    keys: &[Key],
    limit: Instant,
) -> Result<BTreeMap<Key, i64>, String> {
    let mut out = BTreeMap::new();
    for k in keys {
        loop {
            match consumer.fetch_watermarks(&k.topic, k.partition, Duration::from_secs(5)) {
                Ok((_, high)) => {
                    out.insert(k.clone(), high);
                    break;
                }
                Err(e) if Instant::now() >= limit => {
                    return Err(format!("high watermark of {}: {e}", k.name()))
                }
                Err(_) => thread::sleep(Duration::from_millis(500)),
            }
        }
    }
    Ok(out)
}

/// The final drain: every partition from the beginning up to its high watermark (asked
/// again at the end, in case it moved), as `"drain": true` polls. Gives up at `limit`.
pub fn drain(
    spec: &QueueSpec,
    place: &Place,
    recorder: Arc<Recorder>,
    limit: Duration,
) -> Result<(), String> {
    let spec = spec.clone();
    at_client(place, 0, move || {
        let deadline = Instant::now() + limit;
        let keys = spec.keys();
        let mut c = base_config(&spec.bootstrap);
        c.set("group.id", format!("{GROUP}-drain"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer<RebalanceLog> = c
            .create_with_context(RebalanceLog {
                events: Mutex::new(Vec::new()),
            })
            .map_err(|e| format!("drain consumer: {e}"))?;
        let process = spec.drain_process();
        let assign =
            |t| Op::new(process, t, F::Assign).with_keys(keys.iter().map(Key::name).collect());
        record(&recorder, assign(OpType::Invoke))?;
        consumer
            .assign(&from_beginning(&keys))
            .map_err(|e| format!("drain assign: {e}"))?;
        record(&recorder, assign(OpType::Ok))?;
        let mut targets = high_watermarks(&consumer, &keys, deadline)?;
        loop {
            let done = |targets: &BTreeMap<Key, i64>| {
                targets.iter().all(|(k, &hw)| {
                    hw <= 0
                        || consumer
                            .position()
                            .ok()
                            .and_then(|tpl| {
                                tpl.find_partition(&k.topic, k.partition).and_then(|e| {
                                    match e.offset() {
                                        Offset::Offset(o) => Some(o),
                                        _ => None,
                                    }
                                })
                            })
                            .is_some_and(|pos| pos >= hw)
                })
            };
            if done(&targets) {
                let again = high_watermarks(&consumer, &keys, deadline)?;
                if again == targets {
                    return Ok(());
                }
                targets = again;
                continue;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the drain did not reach every high watermark within {limit:?} ({targets:?})"
                ));
            }
            poll_once(&consumer, &recorder, process, true)?;
        }
    })?
}
