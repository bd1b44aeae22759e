//! `isthmus-jepsen`: check a recorded history and write its report.
//!
//! Exit codes: 0 when the history is valid, 1 when it holds anomalies that are not
//! allowed, 2 when it cannot be read (or the command line is wrong).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use isthmus_jepsen::report::write_report;
use isthmus_jepsen::{check, AnomalyKind, CheckOptions, CheckResult, History};

#[derive(Debug, Parser)]
#[command(
    name = "isthmus-jepsen",
    version,
    about = "Fault-injection harness for Isthmus: checks queue histories with Jepsen's Kafka checks",
    after_help = "Examples:
  isthmus-jepsen check --history runs/1/history.jsonl
  isthmus-jepsen check --history runs/1/history.jsonl --allow lost-write,unseen
  isthmus-jepsen report --history runs/1/history.jsonl --out runs/1/report

Anomaly kinds: lost-write, unseen, duplicate, inconsistent-offsets, g1a, poll-skip,
nonmonotonic-poll, nonmonotonic-send (see jepsen/README.md).

Running a cluster and injecting faults (`run`, `clean`) is not built yet."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check a history: print the anomalies, write the report, exit 1 on anomalies not
    /// allowed.
    Check {
        #[command(flatten)]
        check: CheckArgs,
        /// Folder for index.html [default: `report/` next to the history].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write a history's HTML report (exits 0 whatever the history holds).
    Report {
        #[command(flatten)]
        check: CheckArgs,
        /// Folder for index.html.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The history, one JSON operation per line.
    #[arg(long, value_name = "FILE")]
    history: PathBuf,
    /// Anomaly kinds this run tolerates (reported, but not failing), comma-separated or
    /// repeated.
    #[arg(long, value_name = "KIND[,KIND...]", value_delimiter = ',')]
    allow: Vec<AnomalyKind>,
    /// The run ended with a final drain: acknowledged sends never read are anomalies
    /// (implied by `"drain": true` polls in the history).
    #[arg(long)]
    final_drain: bool,
}

impl CheckArgs {
    fn run(&self) -> anyhow::Result<(History, CheckResult)> {
        let history = History::read(&self.history)?;
        let options = CheckOptions {
            allowed: self.allow.iter().copied().collect(),
            final_drain: self.final_drain,
        };
        let result = check(&history, &options);
        Ok((history, result))
    }
}

fn default_out(history: &Path) -> PathBuf {
    history
        .parent()
        .map(|p| p.join("report"))
        .unwrap_or_else(|| PathBuf::from("report"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.cmd {
        Cmd::Check { check, out } => check.run().and_then(|(history, result)| {
            print!("{}", result.summary());
            if let Some(line) = history.truncated_tail_line {
                println!("note: line {line} was cut short and left out");
            }
            let out = out.unwrap_or_else(|| default_out(&check.history));
            let page = write_report(&out, &check.history, &history, &result)
                .context("writing the report")?;
            println!("report: {}", page.display());
            Ok(result.valid)
        }),
        Cmd::Report { check, out } => check.run().and_then(|(history, result)| {
            let page = write_report(&out, &check.history, &history, &result)
                .context("writing the report")?;
            println!("report: {}", page.display());
            Ok(true)
        }),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn allow_takes_kind_lists() {
        let cli = Cli::try_parse_from([
            "isthmus-jepsen",
            "check",
            "--history",
            "h.jsonl",
            "--allow",
            "lost-write,unseen",
            "--allow",
            "g1a",
        ])
        .unwrap();
        let Cmd::Check { check, out } = cli.cmd else {
            panic!("check")
        };
        assert_eq!(
            check.allow,
            [
                AnomalyKind::LostWrite,
                AnomalyKind::Unseen,
                AnomalyKind::G1a
            ]
        );
        assert_eq!(out, None);
        assert_eq!(default_out(&check.history), PathBuf::from("report"));
        let err = Cli::try_parse_from([
            "isthmus-jepsen",
            "check",
            "--history",
            "h",
            "--allow",
            "lost",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("unknown anomaly kind"), "{err}");
    }
}
