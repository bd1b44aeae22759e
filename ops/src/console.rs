//! Console producer and consumer, shaped like `kafka-console-producer.sh` and
//! `kafka-console-consumer.sh`: stdin lines become records, records become stdout lines.

use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::client::{
    self, check_topic_name, describe_error, parse_property, Acks, ClientOpts, Compression, Property,
};

/// How long to back off when librdkafka's local queue is full before retrying the send.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);
/// Longest stdin line accepted, far above any broker's `message.max.bytes`, so that a
/// stray binary file fails fast instead of being buffered whole.
const LINE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Delivery errors printed one by one before the rest are only counted.
const DELIVERY_ERRORS_PRINTED_MAX: u64 = 10;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  printf 'hello\\nworld\\n' | isthmusctl produce --topic orders
  printf 'k1:v1\\nk2:v2\\n' | isthmusctl produce --topic orders --key-separator :
  isthmusctl produce --topic orders --acks all --compression zstd --header source=batch < lines.txt

Each stdin line is one record (the line ending is not part of it). Ctrl-D ends input;
the command then waits for every record to be acknowledged.")]
pub struct ProduceArgs {
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    /// Split each line into key and value at the first SEP (`\t` means a tab).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Send every record to this partition instead of letting the partitioner choose.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Replicas that must have a record before it counts as sent (default: all).
    #[arg(long, value_enum)]
    pub acks: Option<Acks>,
    /// Batch compression (default: none).
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Header added to every record (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub headers: Vec<Property>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  isthmusctl consume --topic orders --from-beginning --max-messages 10
  isthmusctl consume --topic orders --partition 2 --offset 1500 --print-offset --print-key
  isthmusctl consume --topic orders --group billing --from-beginning --timeout-ms 5000

Without --group the consumer assigns itself the partitions (no group, no commits) and
starts at the end unless --from-beginning or --offset says otherwise. With --group it
subscribes, and commits its position when it stops.")]
pub struct ConsumeArgs {
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    /// Read only this partition (assign mode).
    #[arg(long, conflicts_with = "group", value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Where to start in assign mode: beginning, end, or an offset (needs --partition).
    #[arg(long, value_parser = parse_start_offset, conflicts_with_all = ["from_beginning", "group"])]
    pub offset: Option<StartOffset>,
    /// Start at the oldest record (with --group: when the group has no committed offset).
    #[arg(long)]
    pub from_beginning: bool,
    /// Exit after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Exit when no record arrived for this long (default: run until Ctrl-C).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Consumer group: subscribe instead of assign, and commit offsets.
    #[arg(long)]
    pub group: Option<String>,
    /// Print the key before the value ("null" when absent).
    #[arg(long)]
    pub print_key: bool,
    /// Print "Offset:N".
    #[arg(long)]
    pub print_offset: bool,
    /// Print "Partition:N".
    #[arg(long)]
    pub print_partition: bool,
    /// Print headers as k:v,k:v ("NO_HEADERS" when none).
    #[arg(long)]
    pub print_headers: bool,
    /// Print "CreateTime:MS" or "LogAppendTime:MS".
    #[arg(long)]
    pub print_timestamp: bool,
}

/// Where an assign-mode consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Beginning,
    End,
    At(i64),
}

pub fn parse_start_offset(arg: &str) -> Result<StartOffset, String> {
    match arg {
        "beginning" | "earliest" => Ok(StartOffset::Beginning),
        "end" | "latest" => Ok(StartOffset::End),
        n => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(StartOffset::At(n)),
            _ => Err(format!(
                "expected beginning, end or a non-negative offset, got '{arg}'"
            )),
        },
    }
}

/// `\t` typed literally on a command line means a tab, as in Kafka's `key.separator`.
pub fn unescape_separator(sep: &str) -> anyhow::Result<Vec<u8>> {
    let sep = match sep {
        "\\t" => "\t",
        other => other,
    };
    if sep.is_empty() {
        bail!("--key-separator must not be empty");
    }
    Ok(sep.as_bytes().to_vec())
}

/// Removes the `\n` or `\r\n` that ended a line read from stdin.
pub fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits a line into `(key, value)` at the first separator; without a separator the
/// whole line is the value. A line lacking the separator is refused, as Kafka does, so
/// a record is never sent with a silently missing key.
pub fn split_record<'a>(
    line: &'a [u8],
    sep: Option<&[u8]>,
) -> Result<(Option<&'a [u8]>, &'a [u8]), String> {
    let Some(sep) = sep else {
        return Ok((None, line));
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => Ok((Some(&line[..i]), &line[i + sep.len()..])),
        None => Err(format!(
            "no key separator {:?} found; every line must be KEY{0}VALUE",
            String::from_utf8_lossy(sep)
        )),
    }
}

/// Counts failed deliveries, reported on librdkafka's background thread.
#[derive(Debug, Default)]
struct DeliveryCounter {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Err((err, msg)) = result else { return };
        let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= DELIVERY_ERRORS_PRINTED_MAX {
            eprintln!(
                "error: delivery to {}-{} failed: {}",
                msg.topic(),
                msg.partition(),
                describe_error(err)
            );
        }
        if n == DELIVERY_ERRORS_PRINTED_MAX {
            eprintln!("error: further delivery errors are counted but not printed");
        }
    }
}

pub async fn produce(opts: ClientOpts, args: ProduceArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || produce_blocking(&opts, &args)).await?
}

fn produce_blocking(opts: &ClientOpts, args: &ProduceArgs) -> anyhow::Result<()> {
    check_topic_name(&args.topic)?;
    let sep = args
        .key_separator
        .as_deref()
        .map(unescape_separator)
        .transpose()?;
    let mut flags: Vec<Property> = Vec::new();
    if let Some(acks) = args.acks {
        flags.push(("acks".into(), acks.as_config().into()));
    }
    if let Some(c) = args.compression {
        flags.push(("compression.type".into(), c.as_config().into()));
    }
    let producer: ThreadedProducer<DeliveryCounter> = opts
        .config(&[], &[&flags])
        .create_with_context(DeliveryCounter::default())
        .context("creating producer")?;
    let headers = args.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    });

    let read = send_lines(&producer, args, sep.as_deref(), &headers);
    // Flush even when input was bad: everything read before the bad line was sent.
    let flushed = producer.flush(rdkafka::util::Timeout::Never);
    let failed = producer.context().failed.load(Ordering::Relaxed);
    let (sent, send_failed) = read?;
    if let Err(e) = flushed {
        bail!("waiting for delivery: {}", describe_error(&e));
    }
    let failed = failed + send_failed;
    if failed > 0 {
        bail!(
            "{failed} of {} records were not delivered",
            sent + send_failed
        );
    }
    Ok(())
}

/// Sends one record per stdin line; returns (enqueued, refused at enqueue).
fn send_lines(
    producer: &ThreadedProducer<DeliveryCounter>,
    args: &ProduceArgs,
    sep: Option<&[u8]>,
    headers: &OwnedHeaders,
) -> anyhow::Result<(u64, u64)> {
    let mut stdin = io::stdin().lock();
    let mut buf = Vec::new();
    let (mut sent, mut refused, mut line_no) = (0u64, 0u64, 0u64);
    loop {
        buf.clear();
        let limit = LINE_BYTES_MAX as u64 + 1;
        let n = (&mut stdin)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .context("reading stdin")?;
        if n == 0 {
            return Ok((sent, refused));
        }
        line_no += 1;
        if buf.len() > LINE_BYTES_MAX && !buf.ends_with(b"\n") {
            bail!("line {line_no} is longer than {LINE_BYTES_MAX} bytes; stopped reading input");
        }
        let (key, value) = split_record(strip_line_ending(&buf), sep)
            .map_err(|e| anyhow!("line {line_no}: {e}; stopped reading input"))?;
        let mut record = BaseRecord::to(&args.topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        if headers.count() > 0 {
            record = record.headers(headers.clone());
        }
        loop {
            match producer.send(record) {
                Ok(()) => {
                    sent += 1;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((e, _)) => {
                    refused += 1;
                    eprintln!("error: line {line_no} not sent: {}", describe_error(&e));
                    break;
                }
            }
        }
    }
}

/// Which fields `consume` prints, in Kafka's `DefaultMessageFormatter` order.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintOptions {
    pub timestamp: bool,
    pub partition: bool,
    pub offset: bool,
    pub headers: bool,
    pub key: bool,
}

/// The parts of a record `format_record` needs, borrowed from whatever holds them.
#[derive(Debug)]
pub struct RecordView<'a> {
    pub timestamp: Timestamp,
    pub partition: i32,
    pub offset: i64,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Appends one output line: the selected fields, tab-separated, then the value, exactly
/// as Kafka's console consumer prints them so existing scripts keep parsing.
pub fn format_record(p: PrintOptions, r: &RecordView<'_>, out: &mut Vec<u8>) {
    const NULL: &[u8] = b"null";
    if p.timestamp {
        match r.timestamp {
            Timestamp::CreateTime(t) => out.extend_from_slice(format!("CreateTime:{t}").as_bytes()),
            Timestamp::LogAppendTime(t) => {
                out.extend_from_slice(format!("LogAppendTime:{t}").as_bytes())
            }
            Timestamp::NotAvailable => out.extend_from_slice(b"NO_TIMESTAMP"),
        }
        out.push(b'\t');
    }
    if p.partition {
        out.extend_from_slice(format!("Partition:{}\t", r.partition).as_bytes());
    }
    if p.offset {
        out.extend_from_slice(format!("Offset:{}\t", r.offset).as_bytes());
    }
    if p.headers {
        if r.headers.is_empty() {
            out.extend_from_slice(b"NO_HEADERS");
        }
        for (i, (k, v)) in r.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k.as_bytes());
            out.push(b':');
            out.extend_from_slice(v.unwrap_or(NULL));
        }
        out.push(b'\t');
    }
    if p.key {
        out.extend_from_slice(r.key.unwrap_or(NULL));
        out.push(b'\t');
    }
    out.extend_from_slice(r.value.unwrap_or(NULL));
    out.push(b'\n');
}

pub async fn consume(opts: ClientOpts, args: ConsumeArgs) -> anyhow::Result<()> {
    check_topic_name(&args.topic)?;
    if matches!(args.offset, Some(StartOffset::At(_))) && args.partition.is_none() {
        bail!("--offset N needs --partition: an offset means nothing across partitions");
    }
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let defaults = client::consumer_defaults(args.group.as_deref(), reset);
    let consumer: StreamConsumer = opts
        .config(&defaults, &[])
        .create()
        .context("creating consumer")?;

    let timeout = opts.request_timeout;
    let partitions = tokio::task::block_in_place(|| {
        let md = client::fetch_metadata(consumer.client(), Some(&args.topic), timeout)?;
        client::topic_partitions(&md, &args.topic)
    })?;
    if args.group.is_some() {
        consumer.subscribe(&[&args.topic]).context("subscribing")?;
    } else {
        let start = match (args.offset, args.from_beginning) {
            (Some(StartOffset::At(n)), _) => Offset::Offset(n),
            (Some(StartOffset::Beginning), _) | (None, true) => Offset::Beginning,
            (Some(StartOffset::End), _) | (None, false) => Offset::End,
        };
        let chosen = match args.partition {
            Some(p) if !partitions.contains(&p) => bail!(
                "topic '{}' has no partition {p}; it has {} (numbered from 0)",
                args.topic,
                partitions.len()
            ),
            Some(p) => vec![p],
            None => partitions,
        };
        let mut tpl = TopicPartitionList::new();
        for p in chosen {
            tpl.add_partition_offset(&args.topic, p, start)
                .map_err(|e| anyhow!("bad start offset: {e}"))?;
        }
        consumer.assign(&tpl).context("assigning partitions")?;
    }

    let print = PrintOptions {
        timestamp: args.print_timestamp,
        partition: args.print_partition,
        offset: args.print_offset,
        headers: args.print_headers,
        key: args.print_key,
    };
    let idle = args.timeout_ms.map(Duration::from_millis);
    let mut count = 0u64;
    let mut line = Vec::new();
    let mut stdout = io::stdout();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while args.max_messages.is_none_or(|max| count < max) {
        let next = async {
            match idle {
                Some(d) => tokio::time::timeout(d, consumer.recv()).await.ok(),
                None => Some(consumer.recv().await),
            }
        };
        let msg = tokio::select! {
            _ = &mut ctrl_c => break,
            m = next => m,
        };
        let msg = match msg {
            None => break, // idle timeout
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // librdkafka reports transient problems (a broker down, a rebalance) as
                // consumer errors and recovers by itself; show them and keep going.
                eprintln!("warning: {}", describe_error(&e));
                continue;
            }
        };
        let headers = msg
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        let view = RecordView {
            timestamp: msg.timestamp(),
            partition: msg.partition(),
            offset: msg.offset(),
            headers,
            key: msg.key(),
            value: msg.payload(),
        };
        line.clear();
        format_record(print, &view, &mut line);
        match stdout.write_all(&line).and_then(|()| stdout.flush()) {
            Ok(()) => count += 1,
            // The reader went away (`| head`): stop quietly, as shell tools do.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e).context("writing to stdout"),
        }
    }
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_stripped() {
        assert_eq!(strip_line_ending(b"abc\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc"), b"abc");
        assert_eq!(strip_line_ending(b"\n"), b"");
    }

    #[test]
    fn records_split_at_first_separator() {
        assert_eq!(split_record(b"v", None).unwrap(), (None, &b"v"[..]));
        assert_eq!(
            split_record(b"k:v:w", Some(b":")).unwrap(),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(
            split_record(b":v", Some(b":")).unwrap(),
            (Some(&b""[..]), &b"v"[..])
        );
        assert_eq!(
            split_record(b"k::v", Some(b"::")).unwrap(),
            (Some(&b"k"[..]), &b"v"[..])
        );
        assert_eq!(
            split_record(b"k\tv", Some(b"\t")).unwrap(),
            (Some(&b"k"[..]), &b"v"[..])
        );
        let err = split_record(b"no-sep", Some(b":")).unwrap_err();
        assert!(err.contains("no key separator"), "{err}");
        // Non-UTF-8 bytes pass through untouched.
        assert_eq!(
            split_record(b"\xff:\xfe", Some(b":")).unwrap(),
            (Some(&b"\xff"[..]), &b"\xfe"[..])
        );
    }

    #[test]
    fn separator_escapes() {
        assert_eq!(unescape_separator("\\t").unwrap(), b"\t");
        assert_eq!(unescape_separator("|").unwrap(), b"|");
        assert!(unescape_separator("").is_err());
    }

    #[test]
    fn start_offsets() {
        assert_eq!(parse_start_offset("beginning"), Ok(StartOffset::Beginning));
        assert_eq!(parse_start_offset("earliest"), Ok(StartOffset::Beginning));
        assert_eq!(parse_start_offset("end"), Ok(StartOffset::End));
        assert_eq!(parse_start_offset("42"), Ok(StartOffset::At(42)));
        assert!(parse_start_offset("-1").is_err());
        assert!(parse_start_offset("soon").is_err());
    }

    fn view<'a>(headers: Vec<(&'a str, Option<&'a [u8]>)>) -> RecordView<'a> {
        RecordView {
            timestamp: Timestamp::CreateTime(1700000000000),
            partition: 3,
            offset: 42,
            headers,
            key: Some(b"k"),
            value: Some(b"v"),
        }
    }

    #[test]
    fn value_only_by_default() {
        let mut out = Vec::new();
        format_record(PrintOptions::default(), &view(vec![]), &mut out);
        assert_eq!(out, b"v\n");
    }

    #[test]
    fn all_fields_in_kafka_order() {
        let all = PrintOptions {
            timestamp: true,
            partition: true,
            offset: true,
            headers: true,
            key: true,
        };
        let mut out = Vec::new();
        format_record(all, &view(vec![("a", Some(b"1")), ("b", None)]), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CreateTime:1700000000000\tPartition:3\tOffset:42\ta:1,b:null\tk\tv\n"
        );
        let mut out = Vec::new();
        let mut r = view(vec![]);
        r.key = None;
        r.value = None;
        r.timestamp = Timestamp::NotAvailable;
        format_record(all, &r, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NO_TIMESTAMP\tPartition:3\tOffset:42\tNO_HEADERS\tnull\tnull\n"
        );
    }
}
