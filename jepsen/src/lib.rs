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
//! - [`runtime`]: where the cluster runs and how faults reach it: [`runtime::netns`] (a
//!   network namespace per node, routed through a hub, as [`runtime::topology`] lays it
//!   out; partitions and loss with iptables, WAN delay through [`runtime::wan_proxy`]) or
//!   [`runtime::local`] (processes on loopback ports; kills and pauses only).
//! - [`workload`]: the queue workload through librdkafka, and the final drain.
//! - [`nemesis`]: the faults, how each is aimed and undone.
//! - [`observer`]: partition leaders, ISRs and the active controller, for aiming and for
//!   waiting out recovery.
//! - [`run`]: one run from cluster start to verdict.

pub mod checker;
pub mod error;
pub mod history;
pub mod nemesis;
pub mod observer;
mod plot;
pub mod report;
pub mod run;
pub mod runtime;
pub mod workload;

pub use checker::{check, AnomalyKind, CheckOptions, CheckResult};
pub use error::{JepsenError, Result};
pub use history::{History, Op, OpType, Recorder, F};
