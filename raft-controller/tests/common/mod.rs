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

/// Binds a listener on a loopback port below the ephemeral range (32768+), so no
/// outgoing connection can take the port between a node's stop and its restart.
pub fn bind_port() -> TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Spread processes (nextest runs each test in its own) over the range.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return l;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN);
}

/// A port that is free now (for configs that never start).
pub fn free_port() -> u16 {
    bind_port().local_addr().unwrap().port()
}

/// Binds `port` again for a restart (other tests may hold it for a moment).
fn rebind(port: u16) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} stays taken");
}

pub struct TestCluster {
    pub root: TempDir,
    pub configs: Vec<ControllerConfig>,
    pub nodes: Vec<Option<Controller>>,
    /// Listeners bound at format time, handed over at first start.
    listeners: Vec<Option<TcpListener>>,
}

impl TestCluster {
    /// Formats `n` voters (ids 1..=n) on loopback; `tune` adjusts each config.
    pub fn format(n: u64, tune: impl Fn(&mut ControllerConfig)) -> TestCluster {
        let root = TempDir::new().unwrap();
        let listeners: Vec<TcpListener> = (1..=n).map(|_| bind_port()).collect();
        let voters: Vec<Voter> = listeners
            .iter()
            .zip(1..)
            .map(|(l, id)| Voter {
                id,
                host: "127.0.0.1".into(),
                port: l.local_addr().unwrap().port(),
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
            listeners: listeners.into_iter().map(Some).collect(),
        }
    }

    /// Starts every node; `start` returns without waiting for the others, so the
    /// first election happens once they are all up.
    pub async fn start_all(&mut self) {
        for id in 1..=self.configs.len() as NodeId {
            self.start(id).await;
        }
    }

    pub async fn start(&mut self, id: NodeId) {
        let i = (id - 1) as usize;
        let config = self.configs[i].clone();
        let listener = match self.listeners[i].take() {
            Some(l) => l,
            None => rebind(config.listen_addr.port()),
        };
        self.nodes[i] = Some(
            Controller::start_with_listener(config, listener)
                .await
                .unwrap(),
        );
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
