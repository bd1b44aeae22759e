//! `cluster` subcommands:
//! - `mod.rs`: the arguments and dispatch.
//! - [`describe`]: `cluster describe` (DescribeCluster + Metadata).
//! - [`local`]: `cluster local`, the command-line side of [`isthmus_ops::local_cluster`]
//!   (start, print the addresses, stop every node on Ctrl-C or SIGTERM).

pub mod describe;
pub mod local;

use clap::Subcommand;

use crate::client::ClientOpts;

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Cluster id, controller, and every broker: endpoint, rack, fenced, leaders, replicas.
    #[command(after_help = "Examples:
  isthmusctl cluster describe
  isthmusctl -b 127.0.0.1:19094 cluster describe --json")]
    Describe(describe::DescribeArgs),
    /// Run a stretch cluster of isthmus processes on this machine until Ctrl-C.
    #[command(after_help = "Examples:
  isthmusctl cluster local --dir /tmp/stretch
      # 3 controllers (a:2, b:1) and 4 brokers (a:2, b:2)
  isthmusctl cluster local --dir /tmp/stretch --controllers a:1,b:1,c:1 --brokers a:2,b:2 \\
      --set broker.session.timeout.ms=3000
  isthmusctl cluster local --dir /tmp/one --combined a:1

Each node gets DIR/node-<id>/ (isthmus.toml, isthmus.log, data/, metadata/). Running the
same command again on the same DIR reuses its cluster id and ports. Nodes inherit no
ISTHMUS_* variables, which would override their configs.")]
    Local(local::LocalArgs),
}

pub async fn run(opts: ClientOpts, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Describe(a) => describe::run(opts, a).await,
        ClusterCmd::Local(a) => local::run(a).await,
    }
}
