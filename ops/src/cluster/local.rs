//! `cluster local`: starts a [`LocalCluster`], prints where its nodes listen, watches for
//! nodes that exit, and on Ctrl-C or SIGTERM stops every node (SIGTERM, then SIGKILL after
//! [`TERMINATE_TIMEOUT`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use isthmus_ops::local_cluster::{
    find_isthmus_binary, parse_setting, parse_sites, Layout, LocalCluster, SiteCount,
    DEFAULT_BASE_PORT, LOG_TAIL_LINES, TERMINATE_TIMEOUT,
};
use tokio::signal::unix::{signal, SignalKind};

use crate::groups::table;

/// How often nodes are checked for an unexpected exit.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// `site:count[,site:count…]`, one flag's worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sites(pub Vec<SiteCount>);

fn parse_sites_arg(text: &str) -> Result<Sites, String> {
    parse_sites(text).map(Sites)
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Folder for every node's config, data and log (created if missing; reused on restart).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub layout: LayoutArgs,
}

impl LocalArgs {
    pub fn layout(&self) -> Layout {
        self.layout.layout()
    }
}

/// Which nodes run where, and what they share: the flags of `cluster local`, also taken
/// by `perf failover`.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Dedicated controllers per site [default: a:2,b:1].
    #[arg(long, value_name = "SITE:N,...", value_parser = parse_sites_arg)]
    pub controllers: Option<Sites>,
    /// Dedicated brokers per site [default: a:2,b:2].
    #[arg(long, value_name = "SITE:N,...", value_parser = parse_sites_arg)]
    pub brokers: Option<Sites>,
    /// Nodes that are broker and controller, per site, instead of dedicated ones.
    #[arg(
        long,
        value_name = "SITE:N,...",
        value_parser = parse_sites_arg,
        conflicts_with_all = ["controllers", "brokers"]
    )]
    pub combined: Option<Sites>,
    /// First port to try; ports in use are skipped.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub base_port: u16,
    /// The isthmus binary [default: next to isthmusctl, else on PATH].
    #[arg(long, value_name = "PATH")]
    pub isthmus: Option<PathBuf>,
    /// A setting for every node, by its Kafka name (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
}

impl LayoutArgs {
    pub fn layout(&self) -> Layout {
        let defaults = Layout::default();
        let mut layout = match &self.combined {
            Some(Sites(sites)) => Layout::combined(sites.clone()),
            None => Layout {
                controllers: self
                    .controllers
                    .clone()
                    .map_or(defaults.controllers, |s| s.0),
                brokers: self.brokers.clone().map_or(defaults.brokers, |s| s.0),
                ..defaults
            },
        };
        layout.base_port = self.base_port;
        layout.settings = self.settings.clone();
        layout
    }

    /// `--isthmus`, else the binary next to isthmusctl or on `PATH`.
    pub fn binary(&self) -> anyhow::Result<PathBuf> {
        match self.isthmus.clone() {
            Some(p) => Ok(p),
            None => Ok(find_isthmus_binary()?),
        }
    }
}

pub async fn run(a: LocalArgs) -> anyhow::Result<()> {
    let layout = a.layout();
    layout.validate()?;
    let binary = a.layout.binary()?;
    // Installed before anything starts, so a Ctrl-C never leaves nodes behind.
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let cancel = Arc::new(AtomicBool::new(false));
    let mut stop_requested = {
        let cancel = Arc::clone(&cancel);
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            cancel.store(true, Ordering::Relaxed);
        })
    };
    let count = layout.plan_with(&a.dir, |_| true)?.nodes.len();
    println!(
        "Starting {count} node{} in {} with {}…",
        if count == 1 { "" } else { "s" },
        a.dir.display(),
        binary.display()
    );
    let dir = a.dir.clone();
    let mut cluster = tokio::task::spawn_blocking(move || {
        LocalCluster::start_cancellable(&layout, &dir, &binary, &cancel)
    })
    .await
    .context("the start task failed")??;
    print!("{}", summary(&cluster));
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    let all_exited = loop {
        tokio::select! {
            _ = &mut stop_requested => break false,
            _ = watch.tick() => {
                for (id, status) in cluster.exited() {
                    eprintln!(
                        "node {id} exited ({status}); last lines of its log:\n{}",
                        cluster.log_tail(id, LOG_TAIL_LINES)
                    );
                }
                if cluster.nodes().iter().all(|n| n.pid.is_none()) {
                    break true;
                }
            }
        }
    };
    println!("Stopping every node (SIGTERM, SIGKILL after {TERMINATE_TIMEOUT:?})…");
    let stopped = tokio::task::spawn_blocking(move || cluster.stop_all())
        .await
        .context("the stop task failed")?;
    for (id, status) in stopped {
        println!("node {id}: {status}");
    }
    if all_exited {
        bail!(
            "every node has exited; see DIR/node-<id>/isthmus.log in {}",
            a.dir.display()
        );
    }
    Ok(())
}

/// The nodes, then the lines people copy: bootstrap servers and the quorum.
fn summary(cluster: &LocalCluster) -> String {
    let rows: Vec<Vec<String>> = cluster
        .nodes()
        .into_iter()
        .map(|n| {
            let addr = |a: Option<std::net::SocketAddr>| a.map_or("-".into(), |a| a.to_string());
            vec![
                n.id.to_string(),
                n.role.process_roles().to_owned(),
                n.rack,
                addr(n.client_addr),
                addr(n.controller_addr),
                n.pid.map_or("-".into(), |p| p.to_string()),
                n.log_path.display().to_string(),
            ]
        })
        .collect();
    let bootstrap = cluster.bootstrap_servers();
    format!(
        "Cluster {} is up in {}\n\n{}\n\
         Bootstrap servers: {bootstrap}\n\
         Controller quorum: {}\n\n\
         Try:  isthmusctl -b {bootstrap} cluster describe\n      \
         isthmusctl -b {bootstrap} quorum status\n\
         Ctrl-C stops every node.\n",
        cluster.cluster_id(),
        cluster.dir().display(),
        table(
            &[
                "NodeId",
                "Roles",
                "Site",
                "Client",
                "Controller",
                "Pid",
                "Log"
            ],
            &rows
        ),
        cluster.controller_quorum(),
    )
}
