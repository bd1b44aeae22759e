//! The HTML report, `DIR/index.html`: the verdict, a table of anomaly kinds with counts
//! and examples, operation counts, throughput and latency over time as inline SVG with
//! fault intervals shaded, the fault timeline, and links to the history and node logs.
//!
//! One self-contained file: no scripts, no stylesheets or fonts from elsewhere. Every
//! string that comes from the history is HTML-escaped.
//!
//! A run's folder is laid out as `RUN/history.jsonl`, `RUN/logs/…` (node logs, optional)
//! and `RUN/report/index.html`; links are relative so the folder can be moved or served.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::checker::{AnomalyKind, CheckResult};
use crate::error::{JepsenError, Result};
use crate::history::{History, Outcome, Phase, F};
use crate::plot::{Band, Plot, Series};

/// Buckets per plot at most: runs longer than this many seconds get wider buckets.
const BUCKETS_MAX: u64 = 2_000;
/// Node log files linked at most.
pub const LOG_LINKS_MAX: usize = 500;
const NS_PER_S: f64 = 1e9;
const NS_PER_MS: f64 = 1e6;
/// Line colors, one per operation function in order of appearance.
const PALETTE: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
];
const FAULT_COLOR: &str = "#d62728";

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Links the report shows, as relative URLs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    /// The history file.
    pub history: Option<String>,
    /// (label, url) of each node log file.
    pub logs: Vec<(String, String)>,
    /// Node log files not listed past [`LOG_LINKS_MAX`].
    pub logs_omitted: usize,
}

/// A fault's active interval, from its start record to its stop's last record (or the
/// end of the history if it never stopped).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultInterval {
    pub name: String,
    pub detail: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// No stop record: still active when the history ends.
    pub open: bool,
}

/// Pairs nemesis start and stop operations by name.
pub fn fault_intervals(history: &History) -> Vec<FaultInterval> {
    let ops = history.ops();
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<FaultInterval> = Vec::new();
    for operation in history.operations() {
        if operation.f != F::Nemesis {
            continue;
        }
        let (Some(name), Some(&phase)) = (
            history.field(operation, |o| o.name.as_deref()),
            history.field(operation, |o| o.phase.as_ref()),
        ) else {
            continue;
        };
        match phase {
            Phase::Start => {
                if open.contains_key(name) {
                    continue; // Already active: keep the earliest start.
                }
                let detail = history
                    .field(operation, |o| o.detail.as_deref())
                    .unwrap_or_default();
                open.insert(name.to_owned(), out.len());
                out.push(FaultInterval {
                    name: name.to_owned(),
                    detail: detail.to_owned(),
                    start_ns: ops[operation.first()].time_ns,
                    end_ns: 0,
                    open: true,
                });
            }
            Phase::Stop => {
                if let Some(i) = open.remove(name) {
                    out[i].end_ns = ops[operation.last()].time_ns;
                    out[i].open = false;
                }
            }
        }
    }
    let end = history.end_ns();
    for interval in out.iter_mut().filter(|i| i.open) {
        interval.end_ns = end;
    }
    out
}

/// Seconds per bucket for a run of `end_ns`.
fn bucket_s(end_ns: u64) -> u64 {
    let seconds = end_ns / 1_000_000_000 + 1;
    seconds.div_ceil(BUCKETS_MAX).max(1)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Operation functions in order of first appearance, without the nemesis.
fn functions(history: &History) -> Vec<F> {
    let mut fs: Vec<F> = Vec::new();
    for operation in history.operations() {
        if operation.f != F::Nemesis && !fs.contains(&operation.f) {
            fs.push(operation.f.clone());
        }
    }
    fs
}

fn color(fs: &[F], f: &F) -> &'static str {
    let i = fs.iter().position(|x| x == f).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

fn fault_bands(faults: &[FaultInterval]) -> Vec<Band> {
    faults
        .iter()
        .map(|i| Band {
            start: i.start_ns as f64 / NS_PER_S,
            end: i.end_ns as f64 / NS_PER_S,
            label: if i.detail.is_empty() {
                i.name.clone()
            } else {
                format!("{}: {}", i.name, i.detail)
            },
            color: FAULT_COLOR,
        })
        .collect()
}

/// `ok` completions per second, by function.
pub fn throughput_plot(history: &History, faults: &[FaultInterval]) -> Plot {
    let width = bucket_s(history.end_ns());
    let buckets = (history.end_ns() / 1_000_000_000 / width + 1) as usize;
    let fs = functions(history);
    let mut counts: BTreeMap<&F, Vec<u64>> = BTreeMap::new();
    for operation in history.operations() {
        if operation.f == F::Nemesis || operation.outcome != Outcome::Ok {
            continue;
        }
        let Some(c) = operation.completion else {
            continue;
        };
        let b = (history.ops()[c].time_ns / 1_000_000_000 / width) as usize;
        let v = counts
            .entry(&operation.f)
            .or_insert_with(|| vec![0; buckets]);
        v[b.min(buckets - 1)] += 1;
    }
    let series = fs
        .iter()
        .filter_map(|f| {
            let v = counts.get(f)?;
            Some(Series {
                label: format!("{} ok", f.as_str()),
                color: color(&fs, f),
                dashed: false,
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| {
                        let x = (i as f64 + 0.5) * width as f64;
                        (x, n as f64 / width as f64)
                    })
                    .collect(),
            })
        })
        .collect();
    Plot {
        title: "Throughput".into(),
        x_label: "time since start (s)".into(),
        y_label: "ok operations / s".into(),
        log_y: false,
        x_max: history.end_ns() as f64 / NS_PER_S,
        series,
        bands: fault_bands(faults),
    }
}

/// Invoke → completion latency, p50 and p99 per bucket of invoke time, by function.
pub fn latency_plot(history: &History, faults: &[FaultInterval]) -> Plot {
    let width = bucket_s(history.end_ns());
    let fs = functions(history);
    let ops = history.ops();
    // f → bucket → latencies (ms)
    let mut samples: BTreeMap<&F, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for operation in history.operations() {
        if operation.f == F::Nemesis {
            continue;
        }
        let (Some(i), Some(c)) = (operation.invoke, operation.completion) else {
            continue;
        };
        let (start, end) = (ops[i].time_ns, ops[c].time_ns);
        let ms = end.saturating_sub(start) as f64 / NS_PER_MS;
        samples
            .entry(&operation.f)
            .or_default()
            .entry(start / 1_000_000_000 / width)
            .or_default()
            .push(ms);
    }
    let mut series = Vec::new();
    for f in &fs {
        let Some(buckets) = samples.get_mut(f) else {
            continue;
        };
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for (&b, v) in buckets.iter_mut() {
            v.sort_by(f64::total_cmp);
            let x = (b as f64 + 0.5) * width as f64;
            p50.push((x, percentile(v, 0.50)));
            p99.push((x, percentile(v, 0.99)));
        }
        for (label, dashed, points) in [("p50", false, p50), ("p99", true, p99)] {
            series.push(Series {
                label: format!("{} {label}", f.as_str()),
                color: color(&fs, f),
                dashed,
                points,
            });
        }
    }
    Plot {
        title: "Latency (invoke to completion)".into(),
        x_label: "time since start (s)".into(),
        y_label: "ms (log scale)".into(),
        log_y: true,
        x_max: history.end_ns() as f64 / NS_PER_S,
        series,
        bands: fault_bands(faults),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.fails td{background:#fde8e8}tr.allowed td{background:#fff6dc}\
.verdict{font-size:1.3em;font-weight:bold;padding:.4em .8em;display:inline-block}\
.valid{background:#e3f6e3;color:#145214}.invalid{background:#fde8e8;color:#8a1010}\
code,ul.examples{font-family:ui-monospace,monospace;font-size:.9em}\
ul.examples{margin:0;padding-left:1.2em}";

/// The whole report page.
pub fn render_report(history: &History, result: &CheckResult, links: &Links) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Isthmus fault-injection report</title><style>{STYLE}</style></head><body>\n<h1>Isthmus fault-injection report</h1>\n"
    );
    let failing: Vec<&str> = result.failing().map(AnomalyKind::name).collect();
    if failing.is_empty() {
        h.push_str("<p class=\"verdict valid\">VALID</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<p class=\"verdict invalid\">INVALID: {}</p>",
            escape(&failing.join(", "))
        );
    }

    let s = &result.stats;
    h.push_str("<p>");
    if let Some(url) = &links.history {
        let _ = write!(
            h,
            "History: <a href=\"{}\">history.jsonl</a>. ",
            escape(url)
        );
    }
    let _ = write!(
        h,
        "{} records, {} operations, {} keys over {:.1} s; sends {} ok, {} failed, {} indeterminate; {} ok polls read {} values.",
        s.records,
        s.operations,
        s.keys,
        s.duration_ns as f64 / NS_PER_S,
        s.sends_ok,
        s.sends_fail,
        s.sends_indeterminate,
        s.polls_ok,
        s.values_read
    );
    if s.reads_of_unknown_values > 0 {
        let _ = write!(
            h,
            " {} reads of values no send in this history wrote.",
            s.reads_of_unknown_values
        );
    }
    if let Some(line) = history.truncated_tail_line {
        let _ = write!(
            h,
            " The history's last line ({line}) was cut short (the run stopped while writing it) and was left out."
        );
    }
    let drain = if result.final_drain {
        "The run ended with a final drain, so unseen sends are anomalies."
    } else {
        "No final drain, so unseen sends are reported but are not anomalies."
    };
    let _ = writeln!(h, " {drain}</p>");

    // Anomalies.
    h.push_str("<h2>Anomalies</h2>\n<table class=\"anomalies\"><tr><th>kind</th><th>count</th><th>status</th><th>meaning</th><th>examples (key, offsets, values, record indexes)</th></tr>\n");
    for (kind, summary) in &result.kinds {
        let (class, status) = if summary.count == 0 {
            ("", "none")
        } else if !summary.is_anomaly {
            ("", "not an anomaly (no final drain)")
        } else if summary.allowed {
            ("allowed", "allowed")
        } else {
            ("fails", "ANOMALY")
        };
        let _ = write!(
            h,
            "<tr id=\"kind-{name}\" class=\"{class}\"><td><code>{name}</code></td><td class=\"n\">{count}</td><td>{status}</td><td>{meaning}</td><td>",
            name = kind.name(),
            count = summary.count,
            meaning = escape(kind.description()),
        );
        if !summary.examples.is_empty() {
            h.push_str("<ul class=\"examples\">");
            for e in &summary.examples {
                let _ = write!(
                    h,
                    "<li>{} {:?} {:?} {:?}",
                    escape(&e.key),
                    e.offsets,
                    e.values,
                    e.ops
                );
                if !e.note.is_empty() {
                    let _ = write!(h, " — {}", escape(&e.note));
                }
                h.push_str("</li>");
            }
            if summary.count > summary.examples.len() {
                let _ = write!(
                    h,
                    "<li>… and {} more</li>",
                    summary.count - summary.examples.len()
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("</td></tr>\n");
    }
    h.push_str("</table>\n");

    // Operation counts by function and outcome.
    let mut counts: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for operation in history.operations() {
        let row = counts.entry(operation.f.as_str()).or_default();
        row[match operation.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
            Outcome::Pending => 3,
        }] += 1;
    }
    h.push_str("<h2>Operations</h2>\n<table class=\"operations\"><tr><th>f</th><th>ok</th><th>fail</th><th>info</th><th>never completed</th></tr>\n");
    for (f, row) in &counts {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(f),
            row[0],
            row[1],
            row[2],
            row[3]
        );
    }
    h.push_str("</table>\n");

    // Plots.
    let faults = fault_intervals(history);
    h.push_str("<h2>Throughput</h2>\n");
    h.push_str(&throughput_plot(history, &faults).render());
    h.push_str("\n<h2>Latency</h2>\n");
    h.push_str(&latency_plot(history, &faults).render());
    h.push('\n');

    // Faults.
    h.push_str("<h2>Faults</h2>\n");
    if faults.is_empty() {
        h.push_str("<p>No nemesis records.</p>\n");
    } else {
        h.push_str("<table class=\"faults\"><tr><th>fault</th><th>start (s)</th><th>end (s)</th><th>detail</th></tr>\n");
        for f in &faults {
            let end = if f.open {
                format!("{:.3} (never stopped)", f.end_ns as f64 / NS_PER_S)
            } else {
                format!("{:.3}", f.end_ns as f64 / NS_PER_S)
            };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"n\">{:.3}</td><td class=\"n\">{end}</td><td>{}</td></tr>",
                escape(&f.name),
                f.start_ns as f64 / NS_PER_S,
                escape(&f.detail)
            );
        }
        h.push_str("</table>\n");
    }

    // Logs.
    if !links.logs.is_empty() {
        h.push_str("<h2>Node logs</h2>\n<ul class=\"logs\">\n");
        for (label, url) in &links.logs {
            let _ = writeln!(
                h,
                "<li><a href=\"{}\">{}</a></li>",
                escape(url),
                escape(label)
            );
        }
        if links.logs_omitted > 0 {
            let _ = writeln!(h, "<li>… and {} more files</li>", links.logs_omitted);
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Writes `out_dir/index.html` for the history read from `history_path`, linking the
/// history and the files under a `logs/` folder next to it. Returns the page's path.
pub fn write_report(
    out_dir: &Path,
    history_path: &Path,
    history: &History,
    result: &CheckResult,
) -> Result<PathBuf> {
    fs::create_dir_all(out_dir).map_err(|e| JepsenError::io(out_dir, e))?;
    let base = fs::canonicalize(out_dir).map_err(|e| JepsenError::io(out_dir, e))?;
    let history_abs =
        fs::canonicalize(history_path).map_err(|e| JepsenError::io(history_path, e))?;
    let mut links = Links {
        history: Some(href(&base, &history_abs)),
        ..Links::default()
    };
    if let Some(logs_dir) = history_abs.parent().map(|p| p.join("logs")) {
        if logs_dir.is_dir() {
            let mut files = Vec::new();
            list_files(&logs_dir, 2, &mut files).map_err(|e| JepsenError::io(&logs_dir, e))?;
            files.sort();
            links.logs_omitted = files.len().saturating_sub(LOG_LINKS_MAX);
            links.logs = files
                .iter()
                .take(LOG_LINKS_MAX)
                .map(|f| {
                    let label = f
                        .strip_prefix(&logs_dir)
                        .unwrap_or(f)
                        .to_string_lossy()
                        .into_owned();
                    (label, href(&base, f))
                })
                .collect();
        }
    }
    let page = out_dir.join("index.html");
    fs::write(&page, render_report(history, result, &links))
        .map_err(|e| JepsenError::io(&page, e))?;
    Ok(page)
}

/// Files under `dir`, descending `depth` levels (node folders, then their logs).
fn list_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if depth > 1 {
                list_files(&path, depth - 1, out)?;
            }
        } else if out.len() <= LOG_LINKS_MAX * 4 {
            out.push(path);
        }
    }
    Ok(())
}

/// A relative URL from folder `base` to `target` (both absolute), percent-encoded.
fn href(base: &Path, target: &Path) -> String {
    let b: Vec<Component> = base.components().collect();
    let t: Vec<Component> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); b.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| percent_encode(&c.as_os_str().to_string_lossy())),
    );
    parts.join("/")
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
fn percent_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check, CheckOptions};
    use crate::history::{write_history, Op, OpType, Reads, NEMESIS_PROCESS};

    /// A run of ~6 s: producers and a consumer, a partition from 2 s to 4 s, one lost
    /// write, a key with markup in it.
    fn synthetic() -> Vec<Op> {
        let mut ops = Vec::new();
        let mut push = |op: Op, t_ms: u64| {
            let mut op = op.with_time_ns(t_ms * 1_000_000);
            op.index = ops.len() as u64;
            ops.push(op);
        };
        let key = "t-0<script>";
        for v in 0..50i64 {
            let t = v as u64 * 100;
            push(Op::send(0, OpType::Invoke, key, v), t);
            push(
                Op::send(0, OpType::Ok, key, v).with_offset(v),
                t + 5 + v as u64,
            );
            if v == 20 {
                push(
                    Op::nemesis(NEMESIS_PROCESS, OpType::Info, "partition", Phase::Start)
                        .with_detail("{n1} | {n2 n3} & more"),
                    t + 50,
                );
            }
            if v == 40 {
                push(
                    Op::nemesis(NEMESIS_PROCESS, OpType::Info, "partition", Phase::Stop),
                    t + 50,
                );
            }
        }
        let reads: Reads = [(
            key.to_string(),
            (0..50).filter(|&v| v != 7).map(|v| (v, v)).collect(),
        )]
        .into_iter()
        .collect();
        push(Op::poll(1, OpType::Invoke), 5_500);
        push(Op::poll(1, OpType::Ok).with_reads(reads), 5_600);
        push(
            Op::nemesis(NEMESIS_PROCESS, OpType::Info, "kill", Phase::Start),
            5_800,
        );
        ops
    }

    #[test]
    fn report_has_table_plots_shaded_faults_and_no_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run 1");
        fs::create_dir_all(run.join("logs/n1")).unwrap();
        fs::write(run.join("logs/n1/isthmus.log"), "hello").unwrap();
        let history_path = run.join("history.jsonl");
        write_history(&history_path, &synthetic()).unwrap();

        let history = History::read(&history_path).unwrap();
        let result = check(&history, &CheckOptions::default());
        assert_eq!(result.kind(AnomalyKind::LostWrite).count, 1);
        let page = write_report(&run.join("report"), &history_path, &history, &result).unwrap();
        assert_eq!(page, run.join("report/index.html"));
        let html = fs::read_to_string(&page).unwrap();

        assert!(html.contains("INVALID: lost-write"));
        for kind in AnomalyKind::ALL {
            assert!(
                html.contains(&format!("<tr id=\"kind-{}\"", kind.name())),
                "{kind}"
            );
        }
        assert!(html.contains("<tr id=\"kind-lost-write\" class=\"fails\"><td><code>lost-write</code></td><td class=\"n\">1</td>"));
        assert!(html.contains("<svg"));
        assert_eq!(html.matches("<svg").count(), 2);
        // Partition and kill shaded in both plots; the kill never stopped.
        assert_eq!(html.matches("class=\"nemesis\"").count(), 4);
        assert!(html.contains("partition: {n1} | {n2 n3} &amp; more"));
        assert!(html.contains("(never stopped)"));
        // Everything from the history is escaped.
        assert!(!html.contains("<script"));
        assert!(html.contains("t-0&lt;script&gt;"));
        // Relative, encoded links.
        assert!(html.contains("<a href=\"../history.jsonl\">"));
        assert!(html.contains("<a href=\"../logs/n1/isthmus.log\">n1/isthmus.log</a>"));
        assert!(html.contains("<h2>Node logs</h2>"));
    }

    #[test]
    fn report_of_an_empty_history() {
        let history = History::from_ops([]).unwrap();
        let result = check(&history, &CheckOptions::default());
        let html = render_report(&history, &result, &Links::default());
        assert!(html.contains("VALID"));
        assert!(html.contains("<svg"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("NaN"));
    }

    #[test]
    fn fault_intervals_pair_start_and_stop_by_name() {
        let ops: Vec<Op> = [
            (Op::nemesis(-1, OpType::Invoke, "pause", Phase::Start), 1),
            (Op::nemesis(-1, OpType::Info, "pause", Phase::Start), 2),
            (
                Op::nemesis(-2, OpType::Info, "latency", Phase::Start).with_detail("100ms"),
                3,
            ),
            (Op::nemesis(-1, OpType::Invoke, "pause", Phase::Stop), 4),
            (Op::nemesis(-1, OpType::Info, "pause", Phase::Stop), 5),
            (Op::nemesis(-2, OpType::Info, "latency", Phase::Stop), 6),
            (Op::nemesis(-2, OpType::Info, "latency", Phase::Stop), 7), // unmatched: ignored
            (Op::poll(3, OpType::Invoke), 9),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (op, t))| {
            let mut op = op.with_time_ns(t * 1_000_000_000);
            op.index = i as u64;
            op
        })
        .collect();
        let history = History::from_ops(ops).unwrap();
        let intervals = fault_intervals(&history);
        let spans: Vec<(&str, u64, u64, bool)> = intervals
            .iter()
            .map(|i| {
                let s = 1_000_000_000;
                (i.name.as_str(), i.start_ns / s, i.end_ns / s, i.open)
            })
            .collect();
        assert_eq!(spans, [("pause", 1, 5, false), ("latency", 3, 6, false)]);
        assert_eq!(intervals[1].detail, "100ms");
    }

    #[test]
    fn latency_percentiles_per_bucket() {
        assert_eq!(percentile(&[1.0], 0.99), 1.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
        let history = History::from_ops(synthetic()).unwrap();
        let plot = latency_plot(&history, &[]);
        let send_p50 = &plot.series[0];
        assert_eq!(send_p50.label, "send p50");
        // Sends invoked in second 0 took 5..=14 ms.
        assert_eq!(send_p50.points[0], (0.5, 9.0));
        assert_eq!(plot.series[1].points[0], (0.5, 14.0));
        let throughput = throughput_plot(&history, &[]);
        assert_eq!(throughput.series[0].points[0], (0.5, 10.0));
    }

    #[test]
    fn escape_and_href() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            href(
                Path::new("/r/run 1/report"),
                Path::new("/r/run 1/history.jsonl")
            ),
            "../history.jsonl"
        );
        assert_eq!(
            href(Path::new("/out"), Path::new("/r/run#1/h.jsonl")),
            "../r/run%231/h.jsonl"
        );
        assert_eq!(bucket_s(0), 1);
        assert_eq!(bucket_s(3_600_000_000_000), 2);
    }
}
