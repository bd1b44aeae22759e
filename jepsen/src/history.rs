//! The history: every operation the workload and the nemesis performed, one JSON object per
//! line (`history.jsonl`), in the order the records were made.
//!
//! An operation is usually two records by the same process: an `invoke` when it starts and
//! one completion — `ok` (it happened), `fail` (it definitely did not happen) or `info`
//! (unknown: a timeout, a crash). A process has at most one operation open at a time, as in
//! Jepsen; a process whose operation ended `info` should continue under a new process
//! number. A completion with no open invoke of the same `f` is a standalone event (a
//! rebalance seen by a consumer, a one-shot nemesis record).
//!
//! ```json
//! {"index":0,"time_ns":1200,"process":0,"type":"invoke","f":"send","key":"t-0","value":1}
//! {"index":1,"time_ns":3400,"process":0,"type":"ok","f":"send","key":"t-0","value":1,"offset":0}
//! {"index":2,"time_ns":5000,"process":-1,"type":"info","f":"nemesis","name":"partition","phase":"start","detail":"{n1,n2} | {n3}"}
//! {"index":3,"time_ns":6000,"process":1,"type":"invoke","f":"poll"}
//! {"index":4,"time_ns":9000,"process":1,"type":"ok","f":"poll","reads":{"t-0":[[0,1]]}}
//! ```
//!
//! Writing: [`Recorder`] stamps `index` and `time_ns` and appends each record with one
//! write, so a run that crashes keeps every record made before the crash. Reading:
//! [`History::read`] checks every line and names the line of the first bad one.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{JepsenError, Result};

/// The process number nemesis records use unless the runtime gives each fault its own.
pub const NEMESIS_PROCESS: i64 = -1;
/// Longest history line accepted when reading (a poll that read a great many records).
pub const HISTORY_LINE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The record's place in its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation starts.
    Invoke,
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown whether it happened (timeout, crash, lost connection).
    Info,
}

/// What the operation does. Names not listed here are kept as [`F::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    /// Produce one record: `key` (topic-partition) and `value` (unique per key); `offset`
    /// on `ok` when the broker returned one.
    Send,
    /// Consume: `reads` on `ok` maps each key to the `[offset, value]` pairs in read order.
    Poll,
    /// The consumer was assigned partitions (`keys`, optional).
    Assign,
    /// The consumer subscribed to topics (`keys`, optional).
    Subscribe,
    /// The consumer's group rebalanced (usually a standalone `info` record).
    Rebalance,
    /// A fault starts or stops: `name`, `phase`, `detail`.
    Nemesis,
    #[serde(untagged)]
    Other(String),
}

impl F {
    pub fn as_str(&self) -> &str {
        match self {
            F::Send => "send",
            F::Poll => "poll",
            F::Assign => "assign",
            F::Subscribe => "subscribe",
            F::Rebalance => "rebalance",
            F::Nemesis => "nemesis",
            F::Other(s) => s,
        }
    }

    /// Assign, subscribe and rebalance move a consumer's position legitimately, so the
    /// checker does not compare polls across them.
    pub fn repositions_consumer(&self) -> bool {
        matches!(self, F::Assign | F::Subscribe | F::Rebalance)
    }
}

/// Whether a nemesis record starts or stops its fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Start,
    Stop,
}

/// `key → [(offset, value)]` read by one poll, in read order.
pub type Reads = BTreeMap<String, Vec<(i64, i64)>>;

/// One history record (one line of `history.jsonl`). Unknown fields are ignored when
/// reading, so later harness versions can add some.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Sequence number of the record in its history (stamped by [`Recorder`]).
    pub index: u64,
    /// Nanoseconds since the run started (stamped by [`Recorder`]).
    pub time_ns: u64,
    /// Who did it. Producers and consumers are distinct processes; the nemesis uses
    /// [`NEMESIS_PROCESS`] (or any negative number).
    pub process: i64,
    #[serde(rename = "type")]
    pub op_type: OpType,
    pub f: F,
    /// Send: the topic-partition, e.g. `"t-0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Send: the value written, unique per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// Send `ok`: the offset the broker acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Poll `ok`: what was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads: Option<Reads>,
    /// Poll: part of the final drain (consumers read to the end with faults healed), so
    /// every acknowledged send should have been read by then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
    /// Assign / subscribe: the partitions or topics concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// Nemesis: the fault (`kill`, `pause`, `partition`, `latency`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Nemesis: start or stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Nemesis: free text (targets, grudge…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `fail` / `info`: why (a Kafka error name, "timeout"…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// A bare record; `index` and `time_ns` are 0 until [`Recorder::record`] stamps them.
    pub fn new(process: i64, op_type: OpType, f: F) -> Self {
        Self {
            index: 0,
            time_ns: 0,
            process,
            op_type,
            f,
            key: None,
            value: None,
            offset: None,
            reads: None,
            drain: false,
            keys: None,
            name: None,
            phase: None,
            detail: None,
            error: None,
        }
    }

    /// A send record of `value` to `key`.
    pub fn send(process: i64, op_type: OpType, key: impl Into<String>, value: i64) -> Self {
        let mut op = Self::new(process, op_type, F::Send);
        op.key = Some(key.into());
        op.value = Some(value);
        op
    }

    /// A poll record (add [`Op::with_reads`] on `ok`).
    pub fn poll(process: i64, op_type: OpType) -> Self {
        Self::new(process, op_type, F::Poll)
    }

    /// A nemesis record.
    pub fn nemesis(process: i64, op_type: OpType, name: impl Into<String>, phase: Phase) -> Self {
        let mut op = Self::new(process, op_type, F::Nemesis);
        op.name = Some(name.into());
        op.phase = Some(phase);
        op
    }

    pub fn with_offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }

    pub fn with_reads(mut self, reads: Reads) -> Self {
        self.reads = Some(reads);
        self
    }

    pub fn with_drain(mut self) -> Self {
        self.drain = true;
        self
    }

    pub fn with_keys(mut self, keys: Vec<String>) -> Self {
        self.keys = Some(keys);
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    pub fn with_time_ns(mut self, time_ns: u64) -> Self {
        self.time_ns = time_ns;
        self
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Fail,
    /// Completed `info`: may or may not have happened.
    Info,
    /// Never completed (the run ended first): may or may not have happened.
    Pending,
}

impl Outcome {
    /// Info or pending: the checker never counts such an operation as missing.
    pub fn is_indeterminate(self) -> bool {
        matches!(self, Outcome::Info | Outcome::Pending)
    }
}

/// One operation: its invoke and completion records paired by process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub process: i64,
    pub f: F,
    pub outcome: Outcome,
    /// Position of the invoke record in [`History::ops`]; `None` for a standalone event.
    pub invoke: Option<usize>,
    /// Position of the completion record; `None` while pending.
    pub completion: Option<usize>,
}

impl Operation {
    /// Position of its first record.
    pub fn first(&self) -> usize {
        self.invoke.or(self.completion).unwrap_or_default()
    }

    /// Position of its last record.
    pub fn last(&self) -> usize {
        self.completion.or(self.invoke).unwrap_or_default()
    }
}

/// A checked history: its records in order and the operations they form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    ops: Vec<Op>,
    operations: Vec<Operation>,
    /// Operation of each record.
    operation_of: Vec<usize>,
    /// Line number of a final line without a newline that did not parse and was dropped
    /// (the run crashed while writing it).
    pub truncated_tail_line: Option<usize>,
}

impl History {
    /// Reads and checks `history.jsonl`.
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| JepsenError::io(path, e))?;
        Self::from_reader(BufReader::new(file), path)
    }

    /// Reads JSON lines from `reader`; `path` only names the source in errors. Blank lines
    /// are skipped. A final line that has no newline and does not parse is dropped and
    /// noted in [`History::truncated_tail_line`]; any other bad line is an error naming it.
    pub fn from_reader(mut reader: impl BufRead, path: &Path) -> Result<Self> {
        let mut builder = Builder::default();
        let mut truncated_tail_line = None;
        let mut line_buf = Vec::new();
        let mut line = 0;
        loop {
            line_buf.clear();
            line += 1;
            let n = (&mut reader)
                .take(HISTORY_LINE_BYTES_MAX as u64 + 1)
                .read_until(b'\n', &mut line_buf)
                .map_err(|e| JepsenError::io(path, e))?;
            if n == 0 {
                break;
            }
            let complete = line_buf.last() == Some(&b'\n');
            if !complete && line_buf.len() > HISTORY_LINE_BYTES_MAX {
                return Err(JepsenError::Invalid {
                    path: path.to_owned(),
                    line,
                    message: format!("line longer than {HISTORY_LINE_BYTES_MAX} bytes"),
                });
            }
            if line_buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let op: Op = match serde_json::from_slice(&line_buf) {
                Ok(op) => op,
                Err(_) if !complete => {
                    truncated_tail_line = Some(line);
                    break;
                }
                Err(e) => return Err(JepsenError::parse(path, line, &e)),
            };
            builder.push(op).map_err(|message| JepsenError::Invalid {
                path: path.to_owned(),
                line,
                message,
            })?;
        }
        let mut history = builder.finish();
        history.truncated_tail_line = truncated_tail_line;
        Ok(history)
    }

    /// Checks records made in memory (tests, or a runtime that keeps its history). Errors
    /// name the record's position plus one as its "line".
    pub fn from_ops(ops: impl IntoIterator<Item = Op>) -> Result<Self> {
        let mut builder = Builder::default();
        for (i, op) in ops.into_iter().enumerate() {
            builder.push(op).map_err(|message| JepsenError::Invalid {
                path: PathBuf::from("<memory>"),
                line: i + 1,
                message,
            })?;
        }
        Ok(builder.finish())
    }

    /// All records, in history order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// All operations, ordered by their first record.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation the record at `position` belongs to.
    pub fn operation_of(&self, position: usize) -> &Operation {
        &self.operations[self.operation_of[position]]
    }

    /// A field of an operation: from its completion if set there, else from its invoke.
    pub fn field<'a, T: ?Sized>(
        &'a self,
        operation: &Operation,
        get: impl Fn(&'a Op) -> Option<&'a T>,
    ) -> Option<&'a T> {
        operation
            .completion
            .and_then(|c| get(&self.ops[c]))
            .or_else(|| operation.invoke.and_then(|i| get(&self.ops[i])))
    }

    /// Time of the last record, in nanoseconds since the run started.
    pub fn end_ns(&self) -> u64 {
        self.ops.iter().map(|o| o.time_ns).max().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// Checks records one by one and pairs invokes with completions.
#[derive(Default)]
struct Builder {
    history: History,
    /// Process → its open operation.
    open: HashMap<i64, usize>,
}

impl Builder {
    fn push(&mut self, op: Op) -> Result<(), String> {
        let position = self.history.ops.len();
        let open = self
            .open
            .get(&op.process)
            .copied()
            .filter(|&o| self.history.operations[o].f == op.f);
        if op.op_type == OpType::Invoke {
            if let Some(&o) = self.open.get(&op.process) {
                let other = &self.history.operations[o];
                return Err(format!(
                    "process {} invokes {} while its {} invoked at index {} is still open",
                    op.process,
                    op.f.as_str(),
                    other.f.as_str(),
                    self.history.ops[other.first()].index
                ));
            }
        }
        let invoke = open.and_then(|o| {
            self.history.operations[o]
                .invoke
                .map(|i| &self.history.ops[i])
        });
        check_fields(&op, invoke)?;
        let operation = match (op.op_type, open) {
            (OpType::Invoke, _) => {
                self.history.operations.push(Operation {
                    process: op.process,
                    f: op.f.clone(),
                    outcome: Outcome::Pending,
                    invoke: Some(position),
                    completion: None,
                });
                let o = self.history.operations.len() - 1;
                self.open.insert(op.process, o);
                o
            }
            (t, Some(o)) => {
                let operation = &mut self.history.operations[o];
                operation.completion = Some(position);
                operation.outcome = outcome(t);
                self.open.remove(&op.process);
                o
            }
            (t, None) => {
                self.history.operations.push(Operation {
                    process: op.process,
                    f: op.f.clone(),
                    outcome: outcome(t),
                    invoke: None,
                    completion: Some(position),
                });
                self.history.operations.len() - 1
            }
        };
        self.history.operation_of.push(operation);
        self.history.ops.push(op);
        Ok(())
    }

    fn finish(self) -> History {
        self.history
    }
}

fn outcome(t: OpType) -> Outcome {
    match t {
        OpType::Ok => Outcome::Ok,
        OpType::Fail => Outcome::Fail,
        OpType::Info => Outcome::Info,
        OpType::Invoke => Outcome::Pending,
    }
}

/// The format's rules for one record, given the invoke it completes (if any).
fn check_fields(op: &Op, invoke: Option<&Op>) -> Result<(), String> {
    match op.f {
        F::Send => {
            let key = op.key.as_ref().or(invoke.and_then(|i| i.key.as_ref()));
            let value = op.value.or(invoke.and_then(|i| i.value));
            if key.is_none() {
                return Err("send without a key".into());
            }
            if value.is_none() {
                return Err("send without a value".into());
            }
            if let Some(i) = invoke {
                if op.key.is_some() && op.key != i.key {
                    return Err(format!(
                        "send completion's key {:?} differs from its invoke's {:?}",
                        op.key, i.key
                    ));
                }
                if op.value.is_some() && op.value != i.value {
                    return Err(format!(
                        "send completion's value {:?} differs from its invoke's {:?}",
                        op.value, i.value
                    ));
                }
            }
            if op.offset.is_some() && op.op_type != OpType::Ok {
                return Err("send offset on a record that is not an ok completion".into());
            }
        }
        F::Poll if op.reads.is_some() && op.op_type != OpType::Ok => {
            return Err("poll reads on a record that is not an ok completion".into());
        }
        F::Nemesis => {
            let name = op.name.as_ref().or(invoke.and_then(|i| i.name.as_ref()));
            let phase = op.phase.or(invoke.and_then(|i| i.phase));
            if name.is_none() {
                return Err("nemesis record without a name".into());
            }
            if phase.is_none() {
                return Err("nemesis record without a phase (start or stop)".into());
            }
        }
        _ => {}
    }
    Ok(())
}

/// Appends records to a history file, one line per record, each written with one
/// `write` and flushed, so a crash loses at most the record being written.
#[derive(Debug)]
pub struct HistoryWriter {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
}

impl HistoryWriter {
    /// Creates (or empties) the history file.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| JepsenError::io(path, e))?;
        Ok(Self::from_file(file, path))
    }

    /// Opens an existing history file to add records at its end.
    pub fn append_to(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| JepsenError::io(path, e))?;
        Ok(Self::from_file(file, path))
    }

    fn from_file(file: File, path: &Path) -> Self {
        Self {
            file,
            path: path.to_owned(),
            buf: Vec::new(),
        }
    }

    /// Writes one record as one line.
    pub fn append(&mut self, op: &Op) -> Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, op).map_err(JepsenError::Encode)?;
        self.buf.push(b'\n');
        self.file
            .write_all(&self.buf)
            .and_then(|()| self.file.flush())
            .map_err(|e| JepsenError::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes a whole history at once (tests, conversions).
pub fn write_history(path: &Path, ops: &[Op]) -> Result<()> {
    let mut writer = HistoryWriter::create(path)?;
    ops.iter().try_for_each(|op| writer.append(op))
}

/// The workload's and nemesis's shared recorder: stamps each record with the next index
/// and the time since the run started, then appends it. Safe to share between threads;
/// records reach the file in index order.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    inner: Mutex<RecorderInner>,
}

#[derive(Debug)]
struct RecorderInner {
    writer: HistoryWriter,
    next_index: u64,
}

impl Recorder {
    /// Starts the run clock and creates the history file.
    pub fn create(path: &Path) -> Result<Self> {
        Ok(Self {
            start: Instant::now(),
            inner: Mutex::new(RecorderInner {
                writer: HistoryWriter::create(path)?,
                next_index: 0,
            }),
        })
    }

    /// Stamps `op` (index, time) and appends it; returns the stamped record.
    pub fn record(&self, mut op: Op) -> Result<Op> {
        // A panic elsewhere while holding the lock leaves the writer usable.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        op.index = inner.next_index;
        op.time_ns = self.elapsed_ns();
        inner.writer.append(&op)?;
        inner.next_index += 1;
        Ok(op)
    }

    /// Nanoseconds since the run started.
    pub fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(pairs: &[(&str, &[(i64, i64)])]) -> Reads {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn records_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let recorder = Recorder::create(&path).unwrap();
        let ops = [
            Op::send(0, OpType::Invoke, "t-0", 1),
            Op::send(0, OpType::Ok, "t-0", 1).with_offset(0),
            Op::nemesis(NEMESIS_PROCESS, OpType::Info, "partition", Phase::Start)
                .with_detail("{n1} | {n2 n3}"),
            Op::poll(1, OpType::Invoke),
            Op::poll(1, OpType::Ok).with_reads(reads(&[("t-0", &[(0, 1)])])),
            Op::new(2, OpType::Invoke, F::Other("txn".into())),
        ];
        let stamped: Vec<Op> = ops
            .iter()
            .map(|o| recorder.record(o.clone()).unwrap())
            .collect();
        assert_eq!(
            stamped.iter().map(|o| o.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
        assert!(stamped.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));

        // Flushed as written: readable while the recorder is still open.
        let history = History::read(&path).unwrap();
        assert_eq!(history.ops(), &stamped[..]);
        assert_eq!(history.operations().len(), 4);
        assert_eq!(history.operations()[0].outcome, Outcome::Ok);
        assert_eq!(history.operations()[1].invoke, None);
        assert_eq!(history.operations()[3].outcome, Outcome::Pending);
        assert_eq!(history.operations()[3].f, F::Other("txn".into()));

        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                r#"{{"index":0,"time_ns":{},"process":0,"type":"invoke","f":"send","key":"t-0","value":1}}"#,
                stamped[0].time_ns
            )
        );
        assert!(text.contains(r#""reads":{"t-0":[[0,1]]}"#));
        assert!(text.contains(r#""f":"txn""#));
    }

    #[test]
    fn append_to_adds_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        write_history(&path, &[Op::send(0, OpType::Invoke, "t-0", 1)]).unwrap();
        let mut w = HistoryWriter::append_to(&path).unwrap();
        w.append(&Op::send(0, OpType::Fail, "t-0", 1)).unwrap();
        let h = History::read(&path).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.operations()[0].outcome, Outcome::Fail);
    }

    #[test]
    fn malformed_line_names_its_line() {
        let text = "{\"index\":0,\"time_ns\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"poll\"}\n\
                    \n\
                    {\"index\":1,\"time_ns\":0,\"process\":0,\"type\":\"okay\",\"f\":\"poll\"}\n";
        let err = History::from_reader(text.as_bytes(), Path::new("h.jsonl")).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, JepsenError::Parse { line: 3, .. }), "{msg}");
        assert_eq!(
            msg,
            "h.jsonl: line 3, column 48: not a valid operation record: unknown variant `okay`, \
             expected one of `invoke`, `ok`, `fail`, `info`"
        );

        let err = History::from_reader("not json\n".as_bytes(), Path::new("h")).unwrap_err();
        assert!(matches!(err, JepsenError::Parse { line: 1, .. }));
    }

    #[test]
    fn truncated_last_line_is_dropped_and_noted() {
        let text = "{\"index\":0,\"time_ns\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"poll\"}\n{\"index\":1,\"ti";
        let h = History::from_reader(text.as_bytes(), Path::new("h")).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h.truncated_tail_line, Some(2));
        // A complete last line without its newline is kept.
        let text = "{\"index\":0,\"time_ns\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"poll\"}";
        let h = History::from_reader(text.as_bytes(), Path::new("h")).unwrap();
        assert_eq!((h.len(), h.truncated_tail_line), (1, None));
    }

    #[test]
    fn format_rules_are_enforced_with_line_numbers() {
        let cases: Vec<(Vec<Op>, &str)> = vec![
            (
                vec![Op::new(0, OpType::Invoke, F::Send)],
                "send without a key",
            ),
            (
                {
                    let mut op = Op::new(0, OpType::Invoke, F::Send);
                    op.key = Some("t-0".into());
                    vec![op]
                },
                "send without a value",
            ),
            (
                vec![
                    Op::send(0, OpType::Invoke, "t-0", 1),
                    Op::poll(0, OpType::Invoke),
                ],
                "process 0 invokes poll while its send invoked at index 0 is still open",
            ),
            (
                vec![
                    Op::send(0, OpType::Invoke, "t-0", 1),
                    Op::send(0, OpType::Ok, "t-0", 2),
                ],
                "value",
            ),
            (
                vec![Op::poll(0, OpType::Info).with_reads(Reads::new())],
                "not an ok completion",
            ),
            (
                vec![Op::new(NEMESIS_PROCESS, OpType::Info, F::Nemesis)],
                "without a name",
            ),
        ];
        for (ops, want) in cases {
            let n = ops.len();
            let err = History::from_ops(ops).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{msg} lacks {want}");
            assert!(
                matches!(err, JepsenError::Invalid { line, .. } if line == n),
                "{msg}"
            );
        }
    }

    #[test]
    fn completions_inherit_fields_and_foreign_f_is_standalone() {
        let mut ok = Op::new(0, OpType::Ok, F::Send);
        ok.offset = Some(7);
        let h = History::from_ops([
            Op::send(0, OpType::Invoke, "t-0", 1),
            Op::poll(1, OpType::Invoke),
            Op::new(1, OpType::Info, F::Rebalance),
            Op::poll(1, OpType::Ok),
            ok,
        ])
        .unwrap();
        let send = h.operation_of(4);
        assert_eq!(h.field(send, |o| o.key.as_deref()), Some("t-0"));
        assert_eq!(h.field(send, |o| o.offset.as_ref()), Some(&7));
        let rebalance = h.operation_of(2);
        assert_eq!((rebalance.invoke, rebalance.completion), (None, Some(2)));
        let poll = h.operation_of(3);
        assert_eq!((poll.invoke, poll.completion), (Some(1), Some(3)));
    }

    #[test]
    fn empty_history_is_fine() {
        let h = History::from_reader("".as_bytes(), Path::new("h")).unwrap();
        assert!(h.is_empty());
        assert_eq!(h.end_ns(), 0);
    }
}
