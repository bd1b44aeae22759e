//! What the nemesis and the run ask of the cluster while faults come and go: partition
//! leaders and ISRs (Metadata, through librdkafka) and the active controller
//! (DescribeCluster's `controller_id`, over a plain socket). It lives on one thread at a
//! client's place in the network; callers on any thread send it questions.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rand::seq::SliceRandom;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::nemesis::Targets;
use crate::workload::{Key, Place};

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
const DESCRIBE_CLUSTER_VERSION: i16 = 0;

/// One partition as Metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub key: Key,
    /// -1 when it has none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

enum Question {
    Partitions(Sender<Result<Vec<PartitionState>, String>>),
    Controller(Sender<Option<i32>>),
}

/// A handle on the observer thread; dropping it ends the thread.
pub struct Observer {
    ask: Sender<Question>,
    keys: Vec<Key>,
}

impl Observer {
    pub fn start(place: &Place, bootstrap: &str, keys: Vec<Key>) -> Result<Self, String> {
        let (ask, questions) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let place = std::sync::Arc::clone(place);
        let bootstrap = bootstrap.to_owned();
        let topics: Vec<String> = {
            let mut t: Vec<String> = keys.iter().map(|k| k.topic.clone()).collect();
            t.dedup();
            t
        };
        thread::Builder::new()
            .name("jepsen-observer".into())
            .spawn(move || {
                let setup = place(0).and_then(|()| {
                    rdkafka::config::ClientConfig::new()
                        .set("bootstrap.servers", &bootstrap)
                        .set("socket.timeout.ms", "5000")
                        .create::<BaseConsumer>()
                        .map_err(|e| format!("observer client: {e}"))
                });
                let consumer = match setup {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                serve(&consumer, &bootstrap, &topics, questions);
            })
            .map_err(|e| format!("starting the observer: {e}"))?;
        ready
            .recv()
            .map_err(|_| "the observer thread ended".to_string())??;
        Ok(Self { ask, keys })
    }

    /// Every workload partition's leader, replicas and ISR.
    pub fn partitions(&self) -> Result<Vec<PartitionState>, String> {
        let (tx, rx) = mpsc::channel();
        self.ask
            .send(Question::Partitions(tx))
            .map_err(|_| "the observer thread ended".to_string())?;
        rx.recv()
            .map_err(|_| "the observer thread ended".to_string())?
    }

    /// The active controller as the brokers tell it.
    pub fn controller(&self) -> Option<i32> {
        let (tx, rx) = mpsc::channel();
        self.ask.send(Question::Controller(tx)).ok()?;
        rx.recv().ok().flatten()
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}

impl Targets for Observer {
    fn some_partition_leader(&mut self, rng: &mut dyn rand::RngCore) -> Option<i32> {
        let leaders: Vec<i32> = self
            .partitions()
            .ok()?
            .into_iter()
            .map(|p| p.leader)
            .filter(|&l| l >= 0)
            .collect();
        leaders.choose(rng).copied()
    }

    fn active_controller(&mut self) -> Option<i32> {
        self.controller()
    }
}

fn serve(
    consumer: &BaseConsumer,
    bootstrap: &str,
    topics: &[String],
    questions: Receiver<Question>,
) {
    for q in questions {
        match q {
            Question::Partitions(reply) => {
                let _ = reply.send(partitions(consumer, topics));
            }
            Question::Controller(reply) => {
                let answer = bootstrap
                    .split(',')
                    .find_map(|addr| describe_cluster(addr.trim()).ok())
                    .filter(|&id| id >= 0);
                let _ = reply.send(answer);
            }
        }
    }
}

fn partitions(consumer: &BaseConsumer, topics: &[String]) -> Result<Vec<PartitionState>, String> {
    let mut out = Vec::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|e| format!("metadata of {topic}: {e}"))?;
        for t in md.topics() {
            if let Some(e) = t.error() {
                return Err(format!("metadata of {topic}: error {e:?}"));
            }
            for p in t.partitions() {
                out.push(PartitionState {
                    key: Key {
                        topic: t.name().to_owned(),
                        partition: p.id(),
                    },
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                });
            }
        }
    }
    Ok(out)
}

/// DescribeCluster v0 to one broker: its view of the active controller.
fn describe_cluster(addr: &str) -> Result<i32, String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&sock, SOCKET_TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(SOCKET_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(SOCKET_TIMEOUT)))
        .map_err(|e| format!("{addr}: {e}"))?;
    let key = ApiKey::DescribeCluster;
    let version = DESCRIBE_CLUSTER_VERSION;
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("isthmus-jepsen")));
    let mut out = BytesMut::new();
    out.put_i32(0);
    header
        .encode(&mut out, key.request_header_version(version))
        .and_then(|()| DescribeClusterRequest::default().encode(&mut out, version))
        .map_err(|e| format!("encoding DescribeCluster: {e}"))?;
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&out).map_err(|e| format!("{addr}: {e}"))?;
    let mut prefix = [0u8; 4];
    stream
        .read_exact(&mut prefix)
        .map_err(|e| format!("{addr}: {e}"))?;
    let size = i32::from_be_bytes(prefix);
    if !(4..=1 << 20).contains(&size) {
        return Err(format!("{addr}: response size {size} out of range"));
    }
    let mut body = vec![0u8; size as usize];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, DescribeClusterResponse::header_version(version))
        .and_then(|_| DescribeClusterResponse::decode(&mut body, version))
        .map_err(|e| format!("{addr}: decoding DescribeCluster: {e}"))
        .and_then(|r| {
            if r.error_code != 0 {
                Err(format!("{addr}: DescribeCluster error {}", r.error_code))
            } else {
                Ok(r.controller_id.0)
            }
        })
}
