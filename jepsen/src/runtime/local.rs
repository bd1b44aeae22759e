//! The local runtime: the cluster as processes on loopback ports, started by the same code
//! as `isthmusctl cluster local`. Kill, restart, pause and resume work; partitions and WAN
//! latency need a network of the runtime's own and are refused.

use std::path::{Path, PathBuf};

use isthmus_ops::local_cluster::{Layout, LocalCluster, LocalClusterError};

use super::{Grudge, NodeRef, Runtime, RuntimeError, RuntimeResult, WanLink};

pub struct LocalRuntime {
    cluster: LocalCluster,
}

fn failed(e: LocalClusterError) -> RuntimeError {
    RuntimeError::Failed(e.to_string())
}

impl LocalRuntime {
    /// Starts `layout` in `dir` with the `isthmus` binary at `binary`.
    pub fn start(layout: &Layout, dir: &Path, binary: &Path) -> RuntimeResult<Self> {
        let cluster = LocalCluster::start(layout, dir, binary).map_err(failed)?;
        Ok(Self { cluster })
    }

    fn unsupported(what: &'static str) -> RuntimeError {
        RuntimeError::Unsupported {
            runtime: "local",
            what,
        }
    }
}

impl Runtime for LocalRuntime {
    fn name(&self) -> &'static str {
        "local"
    }

    fn nodes(&self) -> Vec<NodeRef> {
        super::node_refs(self.cluster.plan())
    }

    fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    fn enter_client(&self, _client: usize) -> RuntimeResult<()> {
        Ok(())
    }

    fn kill(&mut self, id: i32) -> RuntimeResult<()> {
        self.cluster.kill(id).map_err(failed)
    }

    fn restart(&mut self, id: i32) -> RuntimeResult<()> {
        self.cluster.restart(id).map_err(failed)
    }

    fn pause(&mut self, id: i32) -> RuntimeResult<()> {
        self.cluster.pause(id).map_err(failed)
    }

    fn resume(&mut self, id: i32) -> RuntimeResult<()> {
        self.cluster.resume(id).map_err(failed)
    }

    fn partition(&mut self, _grudge: &Grudge) -> RuntimeResult<()> {
        Err(Self::unsupported(
            "partition the network (use --runtime netns)",
        ))
    }

    fn heal_partitions(&mut self) -> RuntimeResult<()> {
        Ok(())
    }

    fn set_wan(&mut self, link: Option<WanLink>) -> RuntimeResult<()> {
        match link {
            None => Ok(()),
            Some(_) => Err(Self::unsupported(
                "add WAN latency between sites (use --runtime netns)",
            )),
        }
    }

    fn log_files(&self) -> Vec<(String, PathBuf)> {
        super::plan_log_files(self.cluster.plan())
    }
}
