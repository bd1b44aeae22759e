//! `isthmus-jepsen`: the fault-injection harness. It runs an Isthmus cluster, drives a
//! queue workload through real Kafka clients while injecting faults, records every
//! operation, checks the history with Jepsen's Kafka queue checks, and writes a report.
//!
//! Parts, one job each:
//! - [`history`]: the operation record (`history.jsonl`, one JSON object per line), its
//!   reader (checks every line, names the bad one) and the crash-safe [`history::Recorder`].
//! - [`checker`]: the queue anomalies (lost writes, unseen, duplicates, inconsistent
//!   offsets, reads of failed sends, poll skips, nonmonotonic polls and sends), with counts,
//!   examples and a per-run list of tolerated kinds.
//! - [`report`]: `report/index.html`, one self-contained page: verdict, anomaly table,
//!   throughput and latency plots with fault intervals shaded, links to history and logs.
//! - `plot`: the small SVG line-plot drawer behind the report.
//! - [`error`]: the crate's error type.
//!
//! Not built yet: the runtime (a cluster in network namespaces), the nemeses and the
//! workload; they write histories through [`history::Recorder`] and hand them to
//! [`checker::check`] and [`report::write_report`].

pub mod checker;
pub mod error;
pub mod history;
mod plot;
pub mod report;
pub mod runtime;

pub use checker::{check, AnomalyKind, CheckOptions, CheckResult};
pub use error::{JepsenError, Result};
pub use history::{History, Op, OpType, Recorder, F};
