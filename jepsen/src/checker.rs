//! Jepsen's Kafka queue checks (the anomalies of `jepsen.tests.kafka`), reimplemented over
//! our [`History`].
//!
//! A key is one topic-partition; each send writes a value unique to its key. The checker
//! gathers what is known about each key — offsets acknowledged to producers and
//! `[offset, value]` pairs read by consumers — and looks for:
//!
//! | kind | meaning |
//! |---|---|
//! | `lost-write` | an acknowledged send whose offset is below the highest offset read for its key, whose value no poll ever read |
//! | `unseen` | an acknowledged send never read, not counted as lost (its offset is above every read, or unknown); an anomaly only when the run ended with a final drain |
//! | `duplicate` | one value at more than one offset of a key |
//! | `inconsistent-offsets` | one offset of a key with more than one value (acks and reads together) |
//! | `g1a` | a value read whose send definitely failed (`fail`) |
//! | `poll-skip` | a consumer's successive reads of a key jump over offsets known to exist |
//! | `nonmonotonic-poll` | a consumer's successive reads of a key go back, or repeat an offset |
//! | `nonmonotonic-send` | a producer's successive acknowledged offsets of a key go back, or repeat |
//!
//! "Successive reads" are taken per process and key, across polls and within one poll. An
//! `assign`, `subscribe` or `rebalance` record of the consumer, or any `info` completion
//! of it (its position is then unknown), comes between two reads to explain a jump, so
//! the reads on either side are not compared. Sends that ended `info` or never completed
//! may or may not have happened: never an anomaly if missing, fine if read.
//!
//! [`check`] counts every anomaly and keeps a few examples of each; [`CheckOptions`] says
//! which kinds a run tolerates (deliberately unsafe configurations).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Bound::Excluded;
use std::str::FromStr;

use crate::history::{History, OpType, Outcome, F};

/// Examples kept per anomaly kind; the count covers all of them.
pub const EXAMPLES_PER_KIND_MAX: usize = 8;
/// Record indexes listed in one example.
const OPS_PER_EXAMPLE_MAX: usize = 8;
/// Skipped offsets named in one poll-skip example.
const SKIPPED_OFFSETS_SHOWN_MAX: usize = 5;

/// The kinds of anomaly the checker finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    LostWrite,
    Unseen,
    Duplicate,
    InconsistentOffsets,
    G1a,
    PollSkip,
    NonmonotonicPoll,
    NonmonotonicSend,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 8] = [
        AnomalyKind::LostWrite,
        AnomalyKind::Unseen,
        AnomalyKind::Duplicate,
        AnomalyKind::InconsistentOffsets,
        AnomalyKind::G1a,
        AnomalyKind::PollSkip,
        AnomalyKind::NonmonotonicPoll,
        AnomalyKind::NonmonotonicSend,
    ];

    /// Jepsen's name for it.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::LostWrite => "lost-write",
            AnomalyKind::Unseen => "unseen",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::InconsistentOffsets => "inconsistent-offsets",
            AnomalyKind::G1a => "g1a",
            AnomalyKind::PollSkip => "poll-skip",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyKind::NonmonotonicSend => "nonmonotonic-send",
        }
    }

    /// One sentence for reports.
    pub fn description(self) -> &'static str {
        match self {
            AnomalyKind::LostWrite => {
                "acknowledged send below the highest offset read for its key, never read"
            }
            AnomalyKind::Unseen => "acknowledged send never read (above every read offset)",
            AnomalyKind::Duplicate => "one value at more than one offset of a key",
            AnomalyKind::InconsistentOffsets => "one offset of a key with different values",
            AnomalyKind::G1a => "value read whose send definitely failed",
            AnomalyKind::PollSkip => "consumer's successive reads of a key skip existing offsets",
            AnomalyKind::NonmonotonicPoll => "consumer's successive reads of a key go backwards",
            AnomalyKind::NonmonotonicSend => {
                "producer's successive acknowledged offsets of a key go backwards"
            }
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AnomalyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        AnomalyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = AnomalyKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown anomaly kind '{s}'; known: {}", names.join(", "))
            })
    }
}

/// One anomaly, as an example for people to look up in the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub key: String,
    pub offsets: Vec<i64>,
    pub values: Vec<i64>,
    /// `index` of the history records involved.
    pub ops: Vec<u64>,
    pub note: String,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {} offsets {:?} values {:?} ops {:?}",
            self.key, self.offsets, self.values, self.ops
        )?;
        if !self.note.is_empty() {
            write!(f, ": {}", self.note)?;
        }
        Ok(())
    }
}

/// What the run tolerates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Kinds reported but not failing the check (for deliberately unsafe runs, e.g.
    /// `acks=1` tolerates `lost-write`).
    pub allowed: BTreeSet<AnomalyKind>,
    /// The run ended with a final drain, so `unseen` sends are anomalies. Also implied by
    /// any `ok` poll with `"drain": true` in the history.
    pub final_drain: bool,
}

/// All anomalies of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindSummary {
    pub count: usize,
    /// The first [`EXAMPLES_PER_KIND_MAX`] in key and offset order.
    pub examples: Vec<Anomaly>,
    /// Listed in [`CheckOptions::allowed`].
    pub allowed: bool,
    /// Counts against validity (`unseen` without a final drain does not).
    pub is_anomaly: bool,
}

impl KindSummary {
    /// Found, counts, and not allowed.
    pub fn fails(&self) -> bool {
        self.count > 0 && self.is_anomaly && !self.allowed
    }
}

/// Counts of what the history holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    pub records: usize,
    pub operations: usize,
    pub keys: usize,
    pub sends_ok: usize,
    pub sends_fail: usize,
    /// Sends that ended `info` or never completed.
    pub sends_indeterminate: usize,
    pub polls_ok: usize,
    /// Distinct (key, value) pairs read.
    pub values_read: usize,
    /// Reads of values no send in the history wrote (a topic with older data, or a
    /// workload bug); not an anomaly kind of Jepsen's, listed for a person to judge.
    pub reads_of_unknown_values: usize,
    pub nemesis_records: usize,
    pub duration_ns: u64,
}

/// The checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// Every kind, found or not.
    pub kinds: BTreeMap<AnomalyKind, KindSummary>,
    /// No kind fails.
    pub valid: bool,
    /// Unseen sends count as anomalies (final drain).
    pub final_drain: bool,
    pub stats: CheckStats,
}

impl CheckResult {
    /// Kinds that make the run invalid.
    pub fn failing(&self) -> impl Iterator<Item = AnomalyKind> + '_ {
        self.kinds
            .iter()
            .filter(|(_, s)| s.fails())
            .map(|(k, _)| *k)
    }

    pub fn kind(&self, kind: AnomalyKind) -> &KindSummary {
        &self.kinds[&kind]
    }

    /// The plain-text summary `isthmus-jepsen check` prints.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let s = &self.stats;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "history: {} records, {} operations, {} keys, {:.1} s",
            s.records,
            s.operations,
            s.keys,
            s.duration_ns as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "sends: {} ok, {} failed, {} indeterminate; polls: {} ok; values read: {}",
            s.sends_ok, s.sends_fail, s.sends_indeterminate, s.polls_ok, s.values_read
        );
        if s.reads_of_unknown_values > 0 {
            let _ = writeln!(
                out,
                "note: {} reads of values no send in this history wrote",
                s.reads_of_unknown_values
            );
        }
        for (kind, summary) in &self.kinds {
            let status = if summary.count == 0 {
                ""
            } else if !summary.is_anomaly {
                "  (no final drain: not an anomaly)"
            } else if summary.allowed {
                "  (allowed)"
            } else {
                "  ANOMALY"
            };
            let _ = writeln!(out, "{:<22}{:>8}{status}", kind.name(), summary.count);
            for example in &summary.examples {
                let _ = writeln!(out, "    {example}");
            }
        }
        let failing: Vec<_> = self.failing().map(|k| k.name()).collect();
        if failing.is_empty() {
            let _ = writeln!(out, "result: valid");
        } else {
            let _ = writeln!(out, "result: INVALID ({})", failing.join(", "));
        }
        out
    }
}

/// One send, as the history tells it.
struct Send {
    outcome: Outcome,
    offset: Option<i64>,
    /// `index` of its records.
    ops: Vec<u64>,
}

/// Everything known about one key.
#[derive(Default)]
struct KeyState {
    /// Value → its send (the first, if the workload broke uniqueness).
    sends: HashMap<i64, Send>,
    /// Offset → value → record indexes that tie them (acks and reads).
    by_offset: BTreeMap<i64, BTreeMap<i64, Vec<u64>>>,
    /// Value → offset → record indexes.
    by_value: BTreeMap<i64, BTreeMap<i64, Vec<u64>>>,
    /// Value → record indexes of the polls that read it.
    read_values: BTreeMap<i64, Vec<u64>>,
    max_read_offset: Option<i64>,
}

impl KeyState {
    fn observe(&mut self, offset: i64, value: i64, index: u64) {
        push_bounded(
            self.by_offset
                .entry(offset)
                .or_default()
                .entry(value)
                .or_default(),
            index,
        );
        push_bounded(
            self.by_value
                .entry(value)
                .or_default()
                .entry(offset)
                .or_default(),
            index,
        );
    }

    /// Offsets known to exist strictly between `low` and `high`.
    fn offsets_between(&self, low: i64, high: i64) -> impl Iterator<Item = i64> + '_ {
        let range = if low < high {
            Some(self.by_offset.range((Excluded(low), Excluded(high))))
        } else {
            None
        };
        range.into_iter().flatten().map(|(o, _)| *o)
    }
}

fn push_bounded(v: &mut Vec<u64>, index: u64) {
    if v.len() < OPS_PER_EXAMPLE_MAX && v.last() != Some(&index) {
        v.push(index);
    }
}

/// Collects anomalies of every kind.
struct Found {
    kinds: BTreeMap<AnomalyKind, (usize, Vec<Anomaly>)>,
}

impl Found {
    fn new() -> Self {
        Self {
            kinds: AnomalyKind::ALL
                .into_iter()
                .map(|k| (k, (0, Vec::new())))
                .collect(),
        }
    }

    fn add(&mut self, anomaly: Anomaly) {
        let (count, examples) = self.kinds.get_mut(&anomaly.kind).expect("every kind");
        *count += 1;
        if examples.len() < EXAMPLES_PER_KIND_MAX {
            examples.push(anomaly);
        }
    }
}

fn anomaly(
    kind: AnomalyKind,
    key: &str,
    offsets: Vec<i64>,
    values: Vec<i64>,
    mut ops: Vec<u64>,
    note: String,
) -> Anomaly {
    ops.sort_unstable();
    ops.dedup();
    ops.truncate(OPS_PER_EXAMPLE_MAX);
    Anomaly {
        kind,
        key: key.to_owned(),
        offsets,
        values,
        ops,
        note,
    }
}

/// Checks a history. Deterministic: the same history gives the same result.
pub fn check(history: &History, options: &CheckOptions) -> CheckResult {
    let ops = history.ops();
    let mut keys: BTreeMap<&str, KeyState> = BTreeMap::new();
    let mut stats = CheckStats {
        records: ops.len(),
        operations: history.operations().len(),
        duration_ns: history.end_ns(),
        ..CheckStats::default()
    };
    let mut found = Found::new();
    let mut drained = false;

    // Sends: what producers were told.
    for operation in history.operations() {
        match operation.f {
            F::Send => {}
            F::Nemesis => {
                stats.nemesis_records +=
                    operation.invoke.iter().count() + operation.completion.iter().count();
                continue;
            }
            _ => continue,
        }
        let (Some(key), Some(&value)) = (
            history.field(operation, |o| o.key.as_deref()),
            history.field(operation, |o| o.value.as_ref()),
        ) else {
            continue; // History::from_* refuses these.
        };
        let offset = match operation.outcome {
            Outcome::Ok => {
                stats.sends_ok += 1;
                operation.completion.and_then(|c| ops[c].offset)
            }
            Outcome::Fail => {
                stats.sends_fail += 1;
                None
            }
            Outcome::Info | Outcome::Pending => {
                stats.sends_indeterminate += 1;
                None
            }
        };
        let indexes: Vec<u64> = [operation.invoke, operation.completion]
            .into_iter()
            .flatten()
            .map(|p| ops[p].index)
            .collect();
        let state = keys.entry(key).or_default();
        if let Some(o) = offset {
            if let Some(&completion) = indexes.last() {
                state.observe(o, value, completion);
            }
        }
        state.sends.entry(value).or_insert(Send {
            outcome: operation.outcome,
            offset,
            ops: indexes,
        });
    }

    // Reads: what consumers saw.
    for op in ops {
        if op.f != F::Poll || op.op_type != OpType::Ok {
            continue;
        }
        stats.polls_ok += 1;
        drained |= op.drain;
        for (key, pairs) in op.reads.iter().flatten() {
            let state = keys.entry(key.as_str()).or_default();
            for &(offset, value) in pairs {
                state.observe(offset, value, op.index);
                push_bounded(state.read_values.entry(value).or_default(), op.index);
                state.max_read_offset = state.max_read_offset.max(Some(offset));
            }
        }
    }
    stats.keys = keys.len();
    let final_drain = options.final_drain || drained;

    for (key, state) in &keys {
        stats.values_read += state.read_values.len();
        check_key(key, state, &mut found, &mut stats);
    }
    check_consumers(history, &keys, &mut found);
    check_producers(history, &mut found);

    let kinds: BTreeMap<AnomalyKind, KindSummary> = found
        .kinds
        .into_iter()
        .map(|(kind, (count, examples))| {
            let summary = KindSummary {
                count,
                examples,
                allowed: options.allowed.contains(&kind),
                is_anomaly: kind != AnomalyKind::Unseen || final_drain,
            };
            (kind, summary)
        })
        .collect();
    let valid = !kinds.values().any(KindSummary::fails);
    CheckResult {
        kinds,
        valid,
        final_drain,
        stats,
    }
}

/// The per-key checks: duplicates, inconsistent offsets, lost and unseen sends, reads of
/// failed sends.
fn check_key(key: &str, state: &KeyState, found: &mut Found, stats: &mut CheckStats) {
    for (&value, offsets) in &state.by_value {
        if offsets.len() > 1 {
            found.add(anomaly(
                AnomalyKind::Duplicate,
                key,
                offsets.keys().copied().collect(),
                vec![value],
                offsets.values().flatten().copied().collect(),
                format!("value {value} at {} offsets", offsets.len()),
            ));
        }
    }
    for (&offset, values) in &state.by_offset {
        if values.len() > 1 {
            found.add(anomaly(
                AnomalyKind::InconsistentOffsets,
                key,
                vec![offset],
                values.keys().copied().collect(),
                values.values().flatten().copied().collect(),
                format!("offset {offset} holds {} values", values.len()),
            ));
        }
    }

    // Acknowledged sends never read, in offset order (unknown offsets last).
    let mut unread: Vec<(&i64, &Send)> = state
        .sends
        .iter()
        .filter(|(v, s)| s.outcome == Outcome::Ok && !state.read_values.contains_key(v))
        .collect();
    unread.sort_by_key(|(v, s)| (s.offset.is_none(), s.offset, **v));
    for (&value, send) in unread {
        match (send.offset, state.max_read_offset) {
            (Some(offset), Some(max)) if offset < max => found.add(anomaly(
                AnomalyKind::LostWrite,
                key,
                vec![offset],
                vec![value],
                send.ops.clone(),
                format!("acknowledged at offset {offset}; offsets up to {max} were read"),
            )),
            (offset, max) => found.add(anomaly(
                AnomalyKind::Unseen,
                key,
                offset.into_iter().collect(),
                vec![value],
                send.ops.clone(),
                match (offset, max) {
                    (None, _) => "acknowledged without an offset, never read".to_owned(),
                    (Some(o), None) => format!("acknowledged at offset {o}; nothing read"),
                    (Some(o), Some(m)) => {
                        format!("acknowledged at offset {o}; highest read offset {m}")
                    }
                },
            )),
        }
    }

    for (&value, polls) in &state.read_values {
        match state.sends.get(&value) {
            Some(send) if send.outcome == Outcome::Fail => {
                let offsets = state
                    .by_value
                    .get(&value)
                    .map(|o| o.keys().copied().collect())
                    .unwrap_or_default();
                found.add(anomaly(
                    AnomalyKind::G1a,
                    key,
                    offsets,
                    vec![value],
                    send.ops.iter().chain(polls).copied().collect(),
                    format!("send failed, yet {} poll(s) read it", polls.len()),
                ));
            }
            Some(_) => {}
            None => stats.reads_of_unknown_values += 1,
        }
    }
}

/// The last read of one key by one consumer.
struct LastRead {
    offset: i64,
    value: i64,
    index: u64,
}

/// Poll skips and nonmonotonic polls: successive reads of a key by one consumer.
fn check_consumers(history: &History, keys: &BTreeMap<&str, KeyState>, found: &mut Found) {
    let mut last: HashMap<(i64, &str), LastRead> = HashMap::new();
    for op in history.ops() {
        let resets = op.f.repositions_consumer() || (op.op_type == OpType::Info);
        if resets {
            last.retain(|(process, _), _| *process != op.process);
            continue;
        }
        if op.f != F::Poll || op.op_type != OpType::Ok {
            continue;
        }
        for (key, pairs) in op.reads.iter().flatten() {
            let Some(state) = keys.get(key.as_str()) else {
                continue;
            };
            for &(offset, value) in pairs {
                let current = LastRead {
                    offset,
                    value,
                    index: op.index,
                };
                let Some(prev) = last.insert((op.process, key.as_str()), current) else {
                    continue;
                };
                let within = if prev.index == op.index {
                    " within one poll"
                } else {
                    ""
                };
                if offset <= prev.offset {
                    found.add(anomaly(
                        AnomalyKind::NonmonotonicPoll,
                        key,
                        vec![prev.offset, offset],
                        vec![prev.value, value],
                        vec![prev.index, op.index],
                        format!(
                            "process {} read offset {} then {offset}{within}",
                            op.process, prev.offset
                        ),
                    ));
                    continue;
                }
                let skipped: Vec<i64> = state.offsets_between(prev.offset, offset).collect();
                if !skipped.is_empty() {
                    let shown: Vec<String> = skipped
                        .iter()
                        .take(SKIPPED_OFFSETS_SHOWN_MAX)
                        .map(i64::to_string)
                        .collect();
                    let more = if skipped.len() > SKIPPED_OFFSETS_SHOWN_MAX {
                        ", …"
                    } else {
                        ""
                    };
                    found.add(anomaly(
                        AnomalyKind::PollSkip,
                        key,
                        vec![prev.offset, offset],
                        vec![prev.value, value],
                        vec![prev.index, op.index],
                        format!(
                            "process {} read offset {} then {offset}{within}, skipping {} known offset(s): {}{more}",
                            op.process,
                            prev.offset,
                            skipped.len(),
                            shown.join(", ")
                        ),
                    ));
                }
            }
        }
    }
}

/// Nonmonotonic sends: successive acknowledged offsets of a key by one producer.
fn check_producers(history: &History, found: &mut Found) {
    let ops = history.ops();
    // (process, key) → (offset, value, completion index)
    let mut last: HashMap<(i64, &str), (i64, i64, u64)> = HashMap::new();
    // A process has one operation open at a time, so operation order is its completion
    // order.
    for operation in history.operations() {
        if operation.f != F::Send || operation.outcome != Outcome::Ok {
            continue;
        }
        let Some(completion) = operation.completion else {
            continue;
        };
        let (Some(key), Some(&value), Some(offset)) = (
            history.field(operation, |o| o.key.as_deref()),
            history.field(operation, |o| o.value.as_ref()),
            ops[completion].offset,
        ) else {
            continue;
        };
        let index = ops[completion].index;
        if let Some((prev_offset, prev_value, prev_index)) =
            last.insert((operation.process, key), (offset, value, index))
        {
            if offset <= prev_offset {
                found.add(anomaly(
                    AnomalyKind::NonmonotonicSend,
                    key,
                    vec![prev_offset, offset],
                    vec![prev_value, value],
                    vec![prev_index, index],
                    format!(
                        "process {} was acknowledged offset {prev_offset} then {offset}",
                        operation.process
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, Phase, Reads, NEMESIS_PROCESS};

    /// Builds histories tersely; indexes and times follow record order.
    #[derive(Default)]
    struct H {
        ops: Vec<Op>,
    }

    impl H {
        fn push(&mut self, mut op: Op) -> &mut Self {
            op.index = self.ops.len() as u64;
            op.time_ns = op.index * 1_000_000;
            self.ops.push(op);
            self
        }

        /// A send by `p` of `v` to `k` that ends `t` (offset `o` if ok).
        fn send(&mut self, p: i64, k: &str, v: i64, t: OpType, o: Option<i64>) -> &mut Self {
            self.push(Op::send(p, OpType::Invoke, k, v));
            let mut done = Op::send(p, t, k, v);
            done.offset = o;
            self.push(done)
        }

        fn ok(&mut self, p: i64, k: &str, v: i64, o: i64) -> &mut Self {
            self.send(p, k, v, OpType::Ok, Some(o))
        }

        fn poll(&mut self, p: i64, reads: &[(&str, &[(i64, i64)])]) -> &mut Self {
            let reads: Reads = reads
                .iter()
                .map(|(k, r)| (k.to_string(), r.to_vec()))
                .collect();
            self.push(Op::poll(p, OpType::Invoke));
            self.push(Op::poll(p, OpType::Ok).with_reads(reads))
        }

        fn assign(&mut self, p: i64) -> &mut Self {
            self.push(Op::new(p, OpType::Invoke, F::Assign));
            self.push(Op::new(p, OpType::Ok, F::Assign))
        }

        fn check(&self, options: &CheckOptions) -> CheckResult {
            check(&History::from_ops(self.ops.clone()).unwrap(), options)
        }

        fn check_default(&self) -> CheckResult {
            self.check(&CheckOptions::default())
        }
    }

    /// The kinds found, with their counts.
    fn found(result: &CheckResult) -> Vec<(AnomalyKind, usize)> {
        result
            .kinds
            .iter()
            .filter(|(_, s)| s.count > 0)
            .map(|(k, s)| (*k, s.count))
            .collect()
    }

    /// Three producers on two keys, one consumer reading everything.
    fn clean() -> H {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(1, "t-1", 1, 0)
            .ok(0, "t-0", 2, 1)
            .ok(2, "t-0", 3, 2)
            .ok(1, "t-1", 2, 1)
            .poll(10, &[("t-0", &[(0, 1), (1, 2)]), ("t-1", &[(0, 1)])])
            .poll(10, &[("t-0", &[(2, 3)]), ("t-1", &[(1, 2)])]);
        h
    }

    #[test]
    fn clean_history_passes() {
        let r = clean().check_default();
        assert_eq!(found(&r), []);
        assert!(r.valid);
        assert_eq!(r.stats.sends_ok, 5);
        assert_eq!(r.stats.values_read, 5);
        assert_eq!(r.stats.keys, 2);
        assert!(r.summary().contains("result: valid"), "{}", r.summary());
    }

    #[test]
    fn empty_history_passes() {
        let r = H::default().check_default();
        assert!(r.valid);
        assert_eq!(found(&r), []);
        assert_eq!(r.stats, CheckStats::default());
    }

    #[test]
    fn lost_write() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 1)
            .ok(0, "t-0", 3, 2)
            .poll(10, &[("t-0", &[(0, 1)])])
            .poll(11, &[("t-0", &[(2, 3)])]);
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::LostWrite, 1)]);
        let ex = &r.kind(AnomalyKind::LostWrite).examples[0];
        assert_eq!(
            (ex.key.as_str(), &ex.offsets[..], &ex.values[..]),
            ("t-0", &[1][..], &[2][..])
        );
        assert_eq!(ex.ops, [2, 3]);
        assert!(!r.valid);
        assert!(
            r.summary().contains("INVALID (lost-write)"),
            "{}",
            r.summary()
        );

        // One consumer reading across the hole also skipped it.
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 1)
            .ok(0, "t-0", 3, 2)
            .poll(10, &[("t-0", &[(0, 1), (2, 3)])]);
        let r = h.check_default();
        assert_eq!(
            found(&r),
            [(AnomalyKind::LostWrite, 1), (AnomalyKind::PollSkip, 1)]
        );
    }

    #[test]
    fn unseen_counts_only_with_a_final_drain() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 1)
            .poll(10, &[("t-0", &[(0, 1)])]);
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::Unseen, 1)]);
        assert!(r.valid, "no drain: unseen is reported, not an anomaly");
        assert!(!r.kind(AnomalyKind::Unseen).is_anomaly);

        let r = h.check(&CheckOptions {
            final_drain: true,
            ..CheckOptions::default()
        });
        assert!(!r.valid);
        assert_eq!(r.failing().collect::<Vec<_>>(), [AnomalyKind::Unseen]);

        // A drain poll in the history says the same.
        h.push(Op::poll(11, OpType::Invoke));
        h.push(Op::poll(11, OpType::Ok).with_drain());
        let r = h.check_default();
        assert!(r.final_drain && !r.valid);
    }

    #[test]
    fn duplicate() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 1)
            .poll(10, &[("t-0", &[(0, 1), (1, 2), (2, 1)])]);
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::Duplicate, 1)]);
        let ex = &r.kind(AnomalyKind::Duplicate).examples[0];
        assert_eq!((&ex.offsets[..], &ex.values[..]), (&[0, 2][..], &[1][..]));
    }

    #[test]
    fn inconsistent_offsets_between_ack_and_read() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(1, "t-0", 2, 0) // acknowledged at the same offset
            .poll(10, &[("t-0", &[(0, 1)])]);
        let r = h.check_default();
        // Value 2 is acknowledged at 0 and never read: above no read, so unseen.
        assert_eq!(
            found(&r),
            [
                (AnomalyKind::Unseen, 1),
                (AnomalyKind::InconsistentOffsets, 1)
            ]
        );
        let ex = &r.kind(AnomalyKind::InconsistentOffsets).examples[0];
        assert_eq!((&ex.offsets[..], &ex.values[..]), (&[0][..], &[1, 2][..]));
        assert!(ex.ops.contains(&1) && ex.ops.contains(&3) && ex.ops.contains(&5));
    }

    #[test]
    fn inconsistent_offsets_between_reads() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .send(0, "t-0", 2, OpType::Info, None)
            .poll(10, &[("t-0", &[(0, 1)])])
            .poll(11, &[("t-0", &[(0, 2)])]);
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::InconsistentOffsets, 1)]);
    }

    #[test]
    fn g1a_read_of_a_failed_send() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .send(0, "t-0", 2, OpType::Fail, None)
            .poll(10, &[("t-0", &[(0, 1), (1, 2)])]);
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::G1a, 1)]);
        let ex = &r.kind(AnomalyKind::G1a).examples[0];
        assert_eq!((&ex.offsets[..], &ex.values[..]), (&[1][..], &[2][..]));
        assert_eq!(ex.ops, [2, 3, 5]);
    }

    #[test]
    fn poll_skip_across_polls_and_within_one() {
        let mut h = H::default();
        for (v, o) in [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)] {
            h.ok(0, "t-0", v, o);
        }
        h.poll(10, &[("t-0", &[(0, 1)])])
            .poll(10, &[("t-0", &[(2, 3), (4, 5)])]) // skips 1, then 3
            .poll(11, &[("t-0", &[(1, 2), (2, 3), (3, 4)])]); // another consumer reads all
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::PollSkip, 2)]);
        let ex = &r.kind(AnomalyKind::PollSkip).examples;
        assert_eq!(ex[0].offsets, [0, 2]);
        assert_eq!(ex[0].ops, [11, 13]);
        assert_eq!(ex[1].offsets, [2, 4]);
        assert!(ex[1].note.contains("within one poll"), "{}", ex[1].note);
    }

    #[test]
    fn gaps_with_no_known_offset_are_not_skips() {
        // Offsets 1 and 2 were never acknowledged nor read (transaction markers,
        // compaction, an indeterminate send): jumping them is fine.
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 3)
            .poll(10, &[("t-0", &[(0, 1)])])
            .poll(10, &[("t-0", &[(3, 2)])]);
        assert_eq!(found(&h.check_default()), []);
    }

    #[test]
    fn nonmonotonic_poll() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 1)
            .poll(10, &[("t-0", &[(0, 1), (1, 2)])])
            .poll(10, &[("t-0", &[(0, 1)])]);
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::NonmonotonicPoll, 1)]);
        assert_eq!(
            r.kind(AnomalyKind::NonmonotonicPoll).examples[0].offsets,
            [1, 0]
        );
    }

    #[test]
    fn reassignment_explains_skips_and_rewinds() {
        let mut h = H::default();
        for (v, o) in [(1, 0), (2, 1), (3, 2)] {
            h.ok(0, "t-0", v, o);
        }
        h.poll(10, &[("t-0", &[(0, 1), (1, 2)])])
            .assign(10)
            .poll(10, &[("t-0", &[(0, 1)])]) // rewound after the assign: fine
            .push(Op::new(10, OpType::Info, F::Rebalance))
            .poll(10, &[("t-0", &[(2, 3)])]) // skipped 1 across a rebalance: fine
            .push(Op::new(10, OpType::Invoke, F::Subscribe))
            .push(Op::new(10, OpType::Ok, F::Subscribe))
            .poll(10, &[("t-0", &[(0, 1)])]);
        assert_eq!(found(&h.check_default()), []);

        // Another consumer's reassignment explains nothing.
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 1)
            .poll(10, &[("t-0", &[(0, 1), (1, 2)])])
            .assign(11)
            .poll(10, &[("t-0", &[(0, 1)])]);
        assert_eq!(
            found(&h.check_default()),
            [(AnomalyKind::NonmonotonicPoll, 1)]
        );
    }

    #[test]
    fn an_indeterminate_poll_resets_the_consumer() {
        let mut h = H::default();
        for (v, o) in [(1, 0), (2, 1), (3, 2)] {
            h.ok(0, "t-0", v, o);
        }
        h.poll(10, &[("t-0", &[(0, 1)])])
            .push(Op::poll(10, OpType::Invoke))
            .push(Op::poll(10, OpType::Info).with_error("timeout"))
            .poll(10, &[("t-0", &[(2, 3)])])
            .poll(11, &[("t-0", &[(1, 2)])]);
        assert_eq!(found(&h.check_default()), []);
    }

    #[test]
    fn nonmonotonic_send() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 5)
            .ok(0, "t-0", 2, 3)
            .ok(1, "t-0", 3, 4) // another producer: compared with nobody
            .ok(0, "t-1", 1, 0) // another key
            .poll(
                10,
                &[("t-0", &[(3, 2), (4, 3), (5, 1)]), ("t-1", &[(0, 1)])],
            );
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::NonmonotonicSend, 1)]);
        let ex = &r.kind(AnomalyKind::NonmonotonicSend).examples[0];
        assert_eq!(
            (&ex.offsets[..], &ex.values[..]),
            (&[5, 3][..], &[1, 2][..])
        );
    }

    #[test]
    fn indeterminate_sends_may_be_missing_or_read() {
        let mut h = H::default();
        h.send(0, "t-0", 1, OpType::Info, None) // missing: fine
            .send(1, "t-0", 2, OpType::Info, None) // read: fine
            .ok(2, "t-0", 3, 1)
            .push(Op::send(3, OpType::Invoke, "t-0", 4)); // never completed, missing
        h.poll(10, &[("t-0", &[(0, 2), (1, 3)])]);
        let r = h.check(&CheckOptions {
            final_drain: true,
            ..CheckOptions::default()
        });
        assert_eq!(found(&r), []);
        assert!(r.valid);
        assert_eq!(r.stats.sends_indeterminate, 3);
    }

    #[test]
    fn allowed_kinds_are_reported_but_pass() {
        let mut h = H::default();
        h.ok(0, "t-0", 1, 0)
            .ok(0, "t-0", 2, 1)
            .poll(10, &[("t-0", &[(1, 2)])]);
        let options = CheckOptions {
            allowed: [AnomalyKind::LostWrite].into(),
            final_drain: true,
        };
        let r = h.check(&options);
        assert_eq!(found(&r), [(AnomalyKind::LostWrite, 1)]);
        assert!(r.valid);
        assert!(r.summary().contains("(allowed)"));
    }

    #[test]
    fn multiple_keys_are_independent() {
        let mut h = H::default();
        // Same values and offsets on both keys: no duplicates across keys.
        h.ok(0, "t-0", 1, 0)
            .ok(1, "t-1", 1, 0)
            .ok(0, "t-0", 2, 1)
            .ok(1, "t-1", 2, 1)
            .ok(1, "t-1", 3, 2)
            // t-0 read fully; t-1 misses offset 1 while 2 is read.
            .poll(10, &[("t-0", &[(0, 1), (1, 2)]), ("t-1", &[(0, 1)])])
            .poll(11, &[("t-1", &[(2, 3)])]);
        let r = h.check_default();
        assert_eq!(found(&r), [(AnomalyKind::LostWrite, 1)]);
        assert_eq!(r.kind(AnomalyKind::LostWrite).examples[0].key, "t-1");
    }

    #[test]
    fn examples_are_bounded_but_counts_are_not() {
        let mut h = H::default();
        let n = EXAMPLES_PER_KIND_MAX as i64 + 5;
        for v in 0..n {
            h.ok(0, "t-0", v, v);
        }
        h.ok(0, "t-0", n, n);
        h.poll(10, &[("t-0", &[(n, n)])]);
        let r = h.check_default();
        let lost = r.kind(AnomalyKind::LostWrite);
        assert_eq!(lost.count, n as usize);
        assert_eq!(lost.examples.len(), EXAMPLES_PER_KIND_MAX);
        assert_eq!(lost.examples[0].offsets, [0]);
    }

    #[test]
    fn nemesis_records_are_counted_not_checked() {
        let mut h = clean();
        h.push(Op::nemesis(
            NEMESIS_PROCESS,
            OpType::Invoke,
            "kill",
            Phase::Start,
        ))
        .push(Op::nemesis(
            NEMESIS_PROCESS,
            OpType::Info,
            "kill",
            Phase::Start,
        ));
        let r = h.check_default();
        assert!(r.valid);
        assert_eq!(r.stats.nemesis_records, 2);
    }

    #[test]
    fn kinds_parse_by_name() {
        for kind in AnomalyKind::ALL {
            assert_eq!(kind.name().parse::<AnomalyKind>(), Ok(kind));
        }
        let err = "lost".parse::<AnomalyKind>().unwrap_err();
        assert!(err.contains("lost-write"), "{err}");
    }
}
