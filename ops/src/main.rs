//! `isthmusctl`: the operator CLI for Isthmus, built on librdkafka so it works against any
//! Kafka-compatible cluster (Isthmus, Apache Kafka, Redpanda…).
//!
//! Parts, one job each:
//! - `main.rs`: the command line and dispatch.
//! - [`client`]: librdkafka config layering, `KEY=VALUE` parsing, Kafka error names.
//! - [`admin`]: `topics create|list|describe|delete|alter-config`.
//! - [`groups`]: `groups list|describe|delete|reset-offsets`, on a small client of its own
//!   (librdkafka's safe API lacks these group admin calls).
//! - [`quorum`]: `quorum status` (DescribeQuorum), on the same small client.
//! - [`cluster`]: `cluster describe` (DescribeCluster + Metadata) and `cluster local` (a
//!   stretch cluster on this machine, from the library's `local_cluster`).
//! - [`reassign`]: `reassign generate|execute|verify` (partition moves with throttles,
//!   after `kafka-reassign-partitions.sh`), on the same small client.
//! - [`console`]: `produce` (stdin lines → records) and `consume` (records → stdout).
//! - [`perf`]: `perf produce|consume` benchmarks.
//! - [`perf_groups`]: `perf rebalance|commit` group benchmarks.
//! - [`perf_metadata`]: `perf metadata`, topic creations/deletions per second.
//! - [`perf_failover`]: `perf failover`, new leaders after a broker dies or stops, on a
//!   local cluster it starts itself.
//! - [`throttle`]: the send schedule behind `perf produce --throughput`.
//! - [`stats`]: latency histogram, progress lines and summaries.
//! - `log dump` (in the library, `isthmus_ops::log_dump`): a partition folder's batches.

// Doc comments on clap arguments are also the CLI help, where `<name>` placeholders are
// the convention; rustdoc would read them as unclosed HTML tags.
#![allow(rustdoc::invalid_html_tags)]

mod admin;
mod client;
mod cluster;
mod console;
mod groups;
mod perf;
mod perf_failover;
mod perf_groups;
mod perf_metadata;
mod quorum;
mod reassign;
mod stats;
mod throttle;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::{ClientOpts, Property};

#[derive(Debug, Parser)]
#[command(
    name = "isthmusctl",
    version,
    about = "Admin, console and benchmark tool for Isthmus and any Kafka-compatible cluster",
    after_help = "Examples:
  isthmusctl topics create --topic orders --partitions 6 --replication-factor 3
  echo hello | isthmusctl produce --topic orders
  isthmusctl consume --topic orders --from-beginning --max-messages 1
  isthmusctl groups describe --group billing
  isthmusctl groups reset-offsets --group billing --topic orders --to-earliest --execute
  isthmusctl quorum status
  isthmusctl cluster describe
  isthmusctl reassign generate --topics orders --brokers 2,3,4 --output plan.json
  isthmusctl reassign execute --plan plan.json --throttle 50000000
  isthmusctl reassign verify --plan plan.json
  isthmusctl cluster local --dir /tmp/stretch
  isthmusctl log dump --dir /var/lib/isthmus/data/orders-0
  isthmusctl -b broker-a:9092 perf produce --topic bench --num-records 100000 --record-size 1024 --throughput -1
  isthmusctl --command-config security.protocol=SASL_SSL --command-config client.properties topics list

Set RUST_LOG=info (or debug) to see librdkafka's own log lines; warnings are shown by default."
)]
struct Cli {
    /// Broker(s) to bootstrap from, host:port[,host:port...].
    #[arg(
        short = 'b',
        long,
        global = true,
        help_heading = "Connection",
        env = "ISTHMUS_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap_server: String,
    /// librdkafka property KEY=VALUE, or a Java-style properties file (repeatable; later wins).
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "KEY=VALUE|FILE",
        value_parser = parse_command_config
    )]
    command_config: Vec<Vec<Property>>,
    /// Timeout for admin requests and metadata lookups.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        default_value_t = 30_000
    )]
    request_timeout_ms: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create, list, describe, delete topics and change their configs.
    Topics {
        #[command(subcommand)]
        cmd: admin::TopicsCmd,
    },
    /// List, describe, delete consumer groups and reset their offsets.
    Groups {
        #[command(subcommand)]
        cmd: groups::GroupsCmd,
    },
    /// Send stdin lines as records (like kafka-console-producer).
    Produce(console::ProduceArgs),
    /// Print records to stdout (like kafka-console-consumer).
    Consume(console::ConsumeArgs),
    /// Benchmarks (like kafka-producer-perf-test and kafka-consumer-perf-test).
    Perf {
        #[command(subcommand)]
        cmd: perf::PerfCmd,
    },
    /// The metadata quorum (like kafka-metadata-quorum describe).
    Quorum {
        #[command(subcommand)]
        cmd: quorum::QuorumCmd,
    },
    /// Describe the cluster's brokers, or run a local stretch cluster.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Move partitions between brokers (like kafka-reassign-partitions).
    Reassign {
        #[command(subcommand)]
        cmd: reassign::ReassignCmd,
    },
    /// Read a partition's segment files on this machine (like kafka-dump-log).
    Log {
        #[command(subcommand)]
        cmd: isthmus_ops::log_dump::LogCmd,
    },
}

/// `KEY=VALUE` is one property; anything else is read as a properties file, so the
/// `client.properties` files operators pass to Kafka's tools work here too.
fn parse_command_config(arg: &str) -> Result<Vec<Property>, String> {
    if arg.contains('=') {
        return client::parse_property(arg).map(|p| vec![p]);
    }
    let text = std::fs::read_to_string(arg)
        .map_err(|e| format!("'{arg}' is neither KEY=VALUE nor a readable properties file: {e}"))?;
    parse_properties_file(&text).map_err(|e| format!("{arg}: {e}"))
}

/// The plain subset of Java properties files: `key=value` or `key: value` lines, with
/// `#` and `!` comments. Line continuations and escapes are not supported.
fn parse_properties_file(text: &str) -> Result<Vec<Property>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let at = line
            .find(['=', ':'])
            .ok_or_else(|| format!("line {}: expected key=value", i + 1))?;
        let (k, v) = (line[..at].trim(), line[at + 1..].trim());
        if k.is_empty() {
            return Err(format!("line {}: empty key", i + 1));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let opts = ClientOpts {
        bootstrap: cli.bootstrap_server,
        command_config: cli.command_config.into_iter().flatten().collect(),
        request_timeout: Duration::from_millis(cli.request_timeout_ms),
    };
    let result = match cli.cmd {
        Cmd::Topics { cmd } => admin::run(opts, cmd).await,
        Cmd::Groups { cmd } => groups::run(opts, cmd).await,
        Cmd::Produce(a) => console::produce(opts, a).await,
        Cmd::Consume(a) => console::consume(opts, a).await,
        Cmd::Perf { cmd } => perf::run(opts, cmd).await,
        Cmd::Quorum { cmd } => quorum::run(opts, cmd).await,
        Cmd::Cluster { cmd } => cluster::run(opts, cmd).await,
        Cmd::Reassign { cmd } => reassign::run(opts, cmd).await,
        Cmd::Log { cmd } => isthmus_ops::log_dump::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<client::Exit>() => {
            ExitCode::from(e.downcast_ref::<client::Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Routes librdkafka's log lines (connection refused, auth failures…) to stderr; without
/// this an unreachable broker would only show up as a timeout.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_and_command_config() {
        let cli = Cli::try_parse_from([
            "isthmusctl",
            "topics",
            "list",
            "-b",
            "h:1",
            "--command-config",
            "a=1",
            "--command-config",
            "sasl.jaas.config=x=y",
        ])
        .unwrap();
        assert_eq!(cli.bootstrap_server, "h:1");
        let props: Vec<Property> = cli.command_config.into_iter().flatten().collect();
        assert_eq!(
            props,
            vec![
                ("a".into(), "1".into()),
                ("sasl.jaas.config".into(), "x=y".into())
            ]
        );
    }

    #[test]
    fn command_config_missing_file_is_a_clear_error() {
        let err = parse_command_config("/nonexistent/client.properties").unwrap_err();
        assert!(
            err.contains("neither KEY=VALUE nor a readable properties file"),
            "{err}"
        );
    }

    #[test]
    fn properties_file_subset() {
        let text =
            "# comment\n! also\n\nsecurity.protocol=SASL_SSL\nsasl.mechanism : PLAIN\nx=a=b\n";
        assert_eq!(
            parse_properties_file(text).unwrap(),
            vec![
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.mechanism".into(), "PLAIN".into()),
                ("x".into(), "a=b".into()),
            ]
        );
        assert!(parse_properties_file("novalue\n")
            .unwrap_err()
            .contains("line 1"));
    }

    #[test]
    fn console_flags_conflict_like_kafka() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["isthmusctl", "consume", "--topic", "t"].iter().chain(args))
        };
        assert!(parse(&["--group", "g", "--partition", "0"]).is_err());
        assert!(parse(&["--offset", "5", "--from-beginning"]).is_err());
        assert!(parse(&["--offset", "5", "--partition", "0"]).is_ok());
        assert!(parse(&["--offset", "-3"]).is_err());
    }

    #[test]
    fn cluster_local_layouts() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["isthmusctl", "cluster", "local", "--dir", "/tmp/x"]
                    .iter()
                    .chain(args),
            )
        };
        let layout = |args: &[&str]| match parse(args).unwrap().cmd {
            Cmd::Cluster {
                cmd: cluster::ClusterCmd::Local(a),
            } => a.layout(),
            other => panic!("parsed as {other:?}"),
        };
        let default = layout(&[]);
        assert_eq!(default, isthmus_ops::local_cluster::Layout::default());
        let l = layout(&[
            "--brokers",
            "a:1,c:3",
            "--set",
            "x.y=1",
            "--base-port",
            "20000",
        ]);
        assert_eq!(l.controllers, default.controllers);
        assert_eq!(l.brokers.len(), 2);
        assert_eq!(l.settings, vec![("x.y".to_string(), "1".to_string())]);
        assert_eq!(l.base_port, 20000);
        assert_eq!(layout(&["--combined", "a:1"]).combined.len(), 1);
        assert!(parse(&["--combined", "a:1", "--brokers", "a:1"]).is_err());
        assert!(parse(&["--set", "node.id=4"]).is_err());
        assert!(parse(&["--controllers", "a"]).is_err());
        assert!(parse(&["--base-port", "0"]).is_err());
    }

    #[test]
    fn alter_config_needs_a_change() {
        let base = ["isthmusctl", "topics", "alter-config", "--topic", "t"];
        assert!(Cli::try_parse_from(base).is_err());
        let cli = Cli::try_parse_from(base.iter().chain(&["--delete-config", "a,b"])).unwrap();
        let Cmd::Topics {
            cmd: admin::TopicsCmd::AlterConfig(a),
        } = cli.cmd
        else {
            panic!("parsed as {:?}", cli.cmd)
        };
        assert_eq!(a.delete_config, vec!["a", "b"]);
    }
}
