//! `isthmus-jepsen`: run a cluster under faults, check a recorded history, write reports.
//!
//! Exit codes: 0 when the history is valid, 1 when it holds anomalies that are not
//! allowed, 2 when the run or the history failed (or the command line is wrong), 130 when
//! a run was interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use isthmus_jepsen::nemesis::parse_nemesis_list;
use isthmus_jepsen::report::write_report;
use isthmus_jepsen::run::{run, RunSpec, RuntimeKind};
use isthmus_jepsen::runtime::WanLink;
use isthmus_jepsen::workload::QueueSpec;
use isthmus_jepsen::{check, AnomalyKind, CheckOptions, CheckResult, History};

#[derive(Debug, Parser)]
#[command(
    name = "isthmus-jepsen",
    version,
    about = "Fault-injection harness for Isthmus: checks queue histories with Jepsen's Kafka checks",
    after_help = "Examples:
  isthmus-jepsen run --nemesis kill,pause,partition-sites --time-limit 120s --seed 1
  isthmus-jepsen run --runtime local --nemesis kill,pause --time-limit 60s --seed 1
  isthmus-jepsen clean
  isthmus-jepsen check --history runs/1/history.jsonl
  isthmus-jepsen check --history runs/1/history.jsonl --allow lost-write,unseen
  isthmus-jepsen report --history runs/1/history.jsonl --out runs/1/report

Anomaly kinds: lost-write, unseen, duplicate, inconsistent-offsets, g1a, poll-skip,
nonmonotonic-poll, nonmonotonic-send (see jepsen/README.md).

The netns runtime (the default) puts every node in a network namespace of its own and
needs root, iproute2 and iptables; --runtime local runs the nodes on loopback ports with
kill and pause faults only."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a cluster, run the queue workload under faults, check the history and write
    /// the report into the run's folder.
    Run(Box<RunArgs>),
    /// Check a history: print the anomalies, write the report, exit 1 on anomalies not
    /// allowed.
    Check {
        #[command(flatten)]
        check: CheckArgs,
        /// Folder for index.html [default: `report/` next to the history].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Remove what killed runs left behind: their network namespaces and the nodes still
    /// running in them.
    Clean,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RuntimeArg {
    /// Processes on loopback ports (kill and pause faults only).
    Local,
    /// A network namespace per node (every fault; needs root).
    Netns,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum WorkloadArg {
    Queue,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "netns")]
    runtime: RuntimeArg,
    /// The run's folder [default: jepsen-runs/<seed>-<unix time>].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The sites, comma-separated.
    #[arg(long, default_value = "a,b", value_delimiter = ',')]
    sites: Vec<String>,
    #[arg(long, default_value_t = 2)]
    brokers_per_site: u32,
    /// Dedicated controllers per site.
    #[arg(long, default_value = "a:2,b:1")]
    controllers: String,
    #[arg(long, value_enum, default_value = "queue")]
    workload: WorkloadArg,
    /// Faults: kinds or groups (kills, pauses, partitions, all, none), comma-separated.
    #[arg(long, default_value = "kill,pause")]
    nemesis: String,
    /// Typical length of a calm and of a fault.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    interval: Duration,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    time_limit: Duration,
    /// Sends per second over all producers.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seed of the fault schedule and the workload's choices [default: from the clock].
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 2)]
    topics: usize,
    #[arg(long, default_value_t = 2)]
    partitions: i32,
    #[arg(long, default_value_t = 3)]
    replication_factor: i32,
    #[arg(long, default_value_t = 2)]
    min_insync: u32,
    /// Producer acks: all, 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Allow unclean leader election on the topics (unsafe).
    #[arg(long)]
    unclean_leader_election: bool,
    /// Producer processes (one send open each).
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Consumers in assign mode (every partition from the beginning).
    #[arg(long, default_value_t = 1)]
    assign_consumers: usize,
    /// Consumers in subscribe mode (one group).
    #[arg(long, default_value_t = 2)]
    subscribe_consumers: usize,
    /// How long one send may stay unknown (message.timeout.ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    send_timeout: Duration,
    /// How long healing may take before the final drain starts anyway.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    recovery_limit: Duration,
    /// The latency fault: delay between sites.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    wan_delay: Duration,
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    wan_jitter: Duration,
    /// The latency fault: share of packets lost between sites (0..1).
    #[arg(long, default_value_t = 0.0)]
    wan_loss: f64,
    /// A node setting, key=value (repeatable), after the harness's own.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Anomaly kinds this run tolerates, comma-separated.
    #[arg(long, value_name = "KIND[,KIND...]", value_delimiter = ',')]
    allow: Vec<AnomalyKind>,
    /// Local runtime: node ports are taken from here upward, skipping ports in use.
    #[arg(long, default_value_t = isthmus_ops::local_cluster::Layout::default().base_port)]
    base_port: u16,
    /// The isthmus binary [default: next to this program, else on PATH].
    #[arg(long, value_name = "PATH")]
    isthmus: Option<PathBuf>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    isthmus_ops::local_cluster::parse_setting(text)
}

/// Node settings every fault run uses: brokers notice a dead peer within seconds.
const HARNESS_SETTINGS: [(&str, &str); 2] = [
    ("broker.session.timeout.ms", "6000"),
    ("broker.heartbeat.interval.ms", "500"),
];

impl RunArgs {
    fn spec(&self) -> anyhow::Result<RunSpec> {
        use isthmus_ops::local_cluster::{find_isthmus_binary, parse_sites, Layout, SiteCount};
        anyhow::ensure!(self.rate > 0.0, "--rate must be above 0");
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.wan_loss),
            "--wan-loss must be between 0 and 1"
        );
        anyhow::ensure!(self.producers > 0, "--producers must be at least 1");
        anyhow::ensure!(
            self.topics > 0 && self.partitions > 0,
            "--topics and --partitions must be at least 1"
        );
        anyhow::ensure!(
            matches!(self.acks.as_str(), "all" | "-1" | "1" | "0"),
            "--acks must be all, 1 or 0"
        );
        let controllers = parse_sites(&self.controllers).map_err(anyhow::Error::msg)?;
        for c in &controllers {
            anyhow::ensure!(
                self.sites.contains(&c.site),
                "--controllers names site '{}', which is not in --sites",
                c.site
            );
        }
        let brokers: Vec<SiteCount> = self
            .sites
            .iter()
            .map(|s| SiteCount {
                site: s.clone(),
                count: self.brokers_per_site,
            })
            .collect();
        let mut settings: Vec<(String, String)> = HARNESS_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings.extend(self.settings.iter().cloned());
        let layout = Layout {
            controllers,
            brokers,
            combined: Vec::new(),
            settings,
            base_port: self.base_port,
            hosts: Default::default(),
        };
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        let dir = self.dir.clone().unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from("jepsen-runs").join(format!("{seed}-{now}"))
        });
        let isthmus = match &self.isthmus {
            Some(p) => p.clone(),
            None => find_isthmus_binary()?,
        };
        let safe_acks = matches!(self.acks.as_str(), "all" | "-1");
        let queue = QueueSpec {
            bootstrap: String::new(),
            topics: (0..self.topics).map(|i| format!("jepsen-{i}")).collect(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            topic_configs: vec![
                ("min.insync.replicas".into(), self.min_insync.to_string()),
                (
                    "unclean.leader.election.enable".into(),
                    self.unclean_leader_election.to_string(),
                ),
            ],
            producer_processes: self.producers,
            producer_clients: self.producers.div_ceil(4),
            producer_config: vec![
                ("acks".into(), self.acks.clone()),
                // librdkafka's idempotence needs acks=all.
                ("enable.idempotence".into(), safe_acks.to_string()),
            ],
            assign_consumers: self.assign_consumers,
            subscribe_consumers: self.subscribe_consumers,
            rate: self.rate,
            send_timeout: self.send_timeout,
            seed,
        };
        Ok(RunSpec {
            runtime: match self.runtime {
                RuntimeArg::Local => RuntimeKind::Local,
                RuntimeArg::Netns => RuntimeKind::Netns,
            },
            dir,
            isthmus,
            sites: self.sites.clone(),
            layout,
            queue,
            nemeses: parse_nemesis_list(&self.nemesis).map_err(anyhow::Error::msg)?,
            interval: self.interval,
            time_limit: self.time_limit,
            wan: WanLink {
                delay_ms: self.wan_delay.as_millis() as u64,
                jitter_ms: self.wan_jitter.as_millis() as u64,
                loss: self.wan_loss,
            },
            seed,
            recovery_limit: self.recovery_limit,
            allowed: self.allow.iter().copied().collect(),
        })
    }
}

/// Runs and reports; `Ok(Some(code))` for the exit code.
fn run_command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let WorkloadArg::Queue = args.workload;
    let spec = args.spec()?;
    println!("run: seed {}, folder {}", spec.seed, spec.dir.display());
    let outcome = run(&spec).map_err(anyhow::Error::msg)?;
    print!("{}", outcome.result.summary());
    for p in &outcome.problems {
        println!("problem: {p}");
    }
    println!("report: {}", outcome.report.display());
    Ok(if outcome.interrupted {
        ExitCode::from(130)
    } else if outcome.result.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
        Cmd::Run(args) => {
            return run_command(&args).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            })
        }
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
        Cmd::Clean => isthmus_jepsen::runtime::netns::clean()
            .map(|removed| {
                if removed.is_empty() {
                    println!("nothing to clean");
                }
                for ns in removed {
                    println!("removed network namespace {ns}");
                }
                true
            })
            .map_err(anyhow::Error::from),
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
