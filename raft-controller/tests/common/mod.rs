//! A loopback controller cluster for the integration tests.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use isthmus_controller::records::{
    BrokerEndpoint, BrokerRegistrationRecord, MetadataRecord, PartitionRecord, TopicRecord,
};
use isthmus_controller::{format, Controller, ControllerConfig, NodeId, Voter};
use tempfile::TempDir;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(30);
pub const CLUSTER_ID: &str = "test-cluster";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,isthmus_controller=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct TestCluster {
    pub root: TempDir,
    pub configs: Vec<ControllerConfig>,
    pub nodes: Vec<Option<Controller>>,
}

impl TestCluster {
    /// Formats `n` voters (ids 1..=n) on loopback; `tune` adjusts each config.
    pub fn format(n: u64, tune: impl Fn(&mut ControllerConfig)) -> TestCluster {
        let root = TempDir::new().unwrap();
        let voters: Vec<Voter> = (1..=n)
            .map(|id| Voter {
                id,
                host: "127.0.0.1".into(),
                port: free_port(),
            })
            .collect();
        let configs = voters
            .iter()
            .map(|v| {
                let dir = root.path().join(format!("ctrl-{}", v.id));
                format(&dir, CLUSTER_ID, v.id, &voters).unwrap();
                let listen: SocketAddr = v.addr().parse().unwrap();
                let mut c = ControllerConfig::new(v.id, voters.clone(), listen, dir);
                c.election_timeout_min_ms = 500;
                c.election_timeout_max_ms = 1000;
                c.heartbeat_interval_ms = 100;
                c.rpc_timeout_ms = 1500;
                c.request_timeout_ms = 15_000;
                tune(&mut c);
                c
            })
            .collect::<Vec<_>>();
        let nodes = configs.iter().map(|_| None).collect();
        TestCluster {
            root,
            configs,
            nodes,
        }
    }

    pub async fn start_all(&mut self) {
        let futs = self.configs.iter().map(|c| Controller::start(c.clone()));
        let started = futures_join_all(futs).await;
        for (i, c) in started.into_iter().enumerate() {
            self.nodes[i] = Some(c.unwrap());
        }
    }

    pub async fn start(&mut self, id: NodeId) {
        let i = (id - 1) as usize;
        self.nodes[i] = Some(Controller::start(self.configs[i].clone()).await.unwrap());
    }

    pub async fn stop(&mut self, id: NodeId) {
        let i = (id - 1) as usize;
        if let Some(c) = self.nodes[i].take() {
            c.shutdown().await.unwrap();
        }
    }

    pub fn node(&self, id: NodeId) -> &Controller {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("node running")
    }

    pub fn running(&self) -> impl Iterator<Item = &Controller> {
        self.nodes.iter().flatten()
    }

    pub fn dir(&self, id: NodeId) -> PathBuf {
        self.configs[(id - 1) as usize].metadata_dir.clone()
    }

    /// Waits until every running node agrees on one leader; returns it.
    pub async fn leader(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let leaders: Vec<_> = self.running().map(|c| c.leader()).collect();
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l))
                    && self.running().any(|c| c.node_id() == *l && c.is_leader())
                {
                    return *l;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node's image is at `revision` or beyond, and checks they
    /// are all equal.
    pub async fn converge(&self, revision: u64) {
        let mut images = Vec::new();
        for c in self.running() {
            images.push(c.wait_for_revision(revision, WAIT).await.unwrap());
        }
        // Let stragglers reach the same final revision (heartbeats carry no records,
        // but a leader's blank entry may land after our proposal).
        let top = images.iter().map(|i| i.revision()).max().unwrap();
        let mut images = Vec::new();
        for c in self.running() {
            images.push(c.wait_for_revision(top, WAIT).await.unwrap());
        }
        for (c, img) in self.running().zip(&images) {
            assert_eq!(
                img.revision(),
                images[0].revision(),
                "node {} revision",
                c.node_id()
            );
            assert_eq!(**img, *images[0], "node {} image differs", c.node_id());
        }
    }

    pub async fn shutdown(mut self) {
        for id in 1..=self.configs.len() as NodeId {
            self.stop(id).await;
        }
    }
}

async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.collect();
    let mut out = Vec::new();
    // Start them concurrently: every voter must be listening for the first election.
    let mut set = Vec::new();
    for f in handles {
        set.push(Box::pin(f));
    }
    for f in set {
        out.push(f.await);
    }
    out
}

pub fn register(id: i32, rack: &str) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistrationRecord {
        broker_id: id,
        incarnation_id: Uuid::new_v4(),
        rack: Some(rack.into()),
        endpoints: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 19092 + id as u16,
            security_protocol: "PLAINTEXT".into(),
        }],
    })
}

pub fn unfence(id: i32, epoch: u64) -> MetadataRecord {
    MetadataRecord::UnfenceBroker {
        broker_id: id,
        broker_epoch: epoch as i64,
    }
}

pub fn topic(name: &str, replicas: &[&[i32]]) -> Vec<MetadataRecord> {
    let id = Uuid::new_v4();
    let mut v = vec![MetadataRecord::CreateTopic(TopicRecord {
        name: name.into(),
        topic_id: id,
        configs: Default::default(),
    })];
    for (p, r) in replicas.iter().enumerate() {
        v.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition: p as i32,
            replicas: r.to_vec(),
            isr: r.to_vec(),
            leader: r[0],
            leader_epoch: 0,
            partition_epoch: 0,
        }));
    }
    v
}

/// Registers and unfences brokers 1..=3 (racks a, a, b) through `c`.
pub async fn register_brokers(c: &Controller) {
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b")] {
        let epoch = c.propose(vec![register(id, rack)]).await.unwrap();
        c.propose(vec![unfence(id, epoch)]).await.unwrap();
    }
}
