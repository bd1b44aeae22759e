//! `cluster describe`: the cluster id, the active controller and every broker with its
//! endpoint, rack, fenced state and how many partition leaderships and replicas it holds.
//!
//! Brokers come from DescribeCluster v2 with `include_fenced_brokers` (older brokers answer
//! v0/v1, which lists only unfenced brokers, so the fenced state is then unknown); the
//! counts come from Metadata of every topic. A broker id that holds replicas but is not in
//! DescribeCluster is listed too, as not registered, since that is where data is stranded.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::Args;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest, MetadataResponse};
use serde::Serialize;

use crate::client::ClientOpts;
use crate::groups::client::{Cluster, KafkaCode};
use crate::groups::table;

/// DescribeCluster `endpoint_type` for brokers.
const ENDPOINT_TYPE_BROKERS: i8 = 1;
/// The first DescribeCluster version that lists fenced brokers.
const FENCED_BROKERS_MIN_VERSION: i16 = 2;

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One broker row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerView {
    pub id: i32,
    /// `None` for a broker that holds replicas but is not registered.
    pub host: Option<String>,
    pub port: Option<i32>,
    pub rack: Option<String>,
    /// `None` when the broker answered DescribeCluster below v2, or is not registered.
    pub fenced: Option<bool>,
    pub registered: bool,
    /// Partitions it leads.
    pub leaders: usize,
    /// Partition replicas it holds (leaders included).
    pub replicas: usize,
}

/// What `cluster describe` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    pub cluster_id: String,
    /// `None` while there is no active controller.
    pub controller_id: Option<i32>,
    /// Whether fenced brokers are listed (DescribeCluster v2).
    pub fenced_known: bool,
    pub topics: usize,
    pub partitions: usize,
    pub brokers: Vec<BrokerView>,
}

pub async fn run(opts: ClientOpts, a: DescribeArgs) -> anyhow::Result<()> {
    let mut cluster = Cluster::connect(&opts).await?;
    let req = DescribeClusterRequest::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_include_fenced_brokers(true);
    let (described, version) = cluster.call_any(&req).await?;
    if described.error_code != 0 {
        let message = described
            .error_message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        bail!(
            "DescribeCluster: {}{message}",
            KafkaCode(described.error_code)
        );
    }
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let (metadata, _) = cluster.call_any(&req).await?;
    let view = ClusterView::build(&described, version, &metadata);
    if a.json {
        println!("{}", serde_json::to_string(&view)?);
    } else {
        print!("{}", view.format());
    }
    Ok(())
}

impl ClusterView {
    /// Joins DescribeCluster (answered at `version`) with the partitions of `metadata`.
    pub fn build(
        described: &DescribeClusterResponse,
        version: i16,
        metadata: &MetadataResponse,
    ) -> ClusterView {
        let fenced_known = version >= FENCED_BROKERS_MIN_VERSION;
        let mut brokers: BTreeMap<i32, BrokerView> = described
            .brokers
            .iter()
            .map(|b| {
                let view = BrokerView {
                    id: b.broker_id.0,
                    host: Some(b.host.to_string()),
                    port: Some(b.port),
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                    fenced: fenced_known.then_some(b.is_fenced),
                    registered: true,
                    leaders: 0,
                    replicas: 0,
                };
                (view.id, view)
            })
            .collect();
        let unregistered = |id: i32| BrokerView {
            id,
            host: None,
            port: None,
            rack: None,
            fenced: None,
            registered: false,
            leaders: 0,
            replicas: 0,
        };
        let mut partitions = 0;
        for t in &metadata.topics {
            for p in &t.partitions {
                partitions += 1;
                let leader = p.leader_id.0;
                if leader >= 0 {
                    brokers
                        .entry(leader)
                        .or_insert_with(|| unregistered(leader))
                        .leaders += 1;
                }
                for r in &p.replica_nodes {
                    brokers
                        .entry(r.0)
                        .or_insert_with(|| unregistered(r.0))
                        .replicas += 1;
                }
            }
        }
        ClusterView {
            cluster_id: described.cluster_id.to_string(),
            controller_id: (described.controller_id.0 >= 0).then_some(described.controller_id.0),
            fenced_known,
            topics: metadata.topics.len(),
            partitions,
            brokers: brokers.into_values().collect(),
        }
    }

    pub fn format(&self) -> String {
        let registered = self.brokers.iter().filter(|b| b.registered).count();
        let fenced = self
            .brokers
            .iter()
            .filter(|b| b.fenced == Some(true))
            .count();
        let brokers = if self.fenced_known {
            format!("{registered} ({fenced} fenced)")
        } else {
            format!("{registered} unfenced (this broker does not list fenced ones: DescribeCluster below v2)")
        };
        let mut out = String::new();
        for (k, v) in [
            ("ClusterId", self.cluster_id.clone()),
            (
                "ControllerId",
                self.controller_id
                    .map_or_else(|| "none".to_owned(), |c| c.to_string()),
            ),
            ("Brokers", brokers),
            (
                "Partitions",
                format!(
                    "{} in {} topic{}",
                    self.partitions,
                    self.topics,
                    if self.topics == 1 { "" } else { "s" }
                ),
            ),
        ] {
            out.push_str(&format!("{:<14}{v}\n", format!("{k}:")));
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = self
            .brokers
            .iter()
            .map(|b| {
                let endpoint = match (&b.host, b.port) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    _ => "not registered".to_owned(),
                };
                let fenced = match b.fenced {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                };
                vec![
                    b.id.to_string(),
                    endpoint,
                    b.rack.clone().unwrap_or_else(|| "-".into()),
                    fenced.to_owned(),
                    b.leaders.to_string(),
                    b.replicas.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "BrokerId", "Endpoint", "Rack", "Fenced", "Leaders", "Replicas",
            ],
            &rows,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn broker(id: i32, rack: &str, fenced: bool) -> DescribeClusterBroker {
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(19000 + id)
            .with_rack(Some(StrBytes::from_string(rack.to_owned())))
            .with_is_fenced(fenced)
    }

    fn partition(leader: i32, replicas: &[i32]) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_leader_id(BrokerId(leader))
            .with_replica_nodes(replicas.iter().copied().map(BrokerId).collect())
    }

    fn sample() -> (DescribeClusterResponse, MetadataResponse) {
        let described = DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_static_str("abc"))
            .with_controller_id(BrokerId(1))
            .with_brokers(vec![broker(101, "a", false), broker(102, "b", true)]);
        let metadata =
            MetadataResponse::default().with_topics(vec![MetadataResponseTopic::default()
                .with_partitions(vec![
                    partition(101, &[101, 102, 103]),
                    partition(101, &[101, 102]),
                    partition(-1, &[102]),
                ])]);
        (described, metadata)
    }

    #[test]
    fn counts_leaders_and_replicas_per_broker() {
        let (described, metadata) = sample();
        let v = ClusterView::build(&described, 2, &metadata);
        let summary: Vec<_> = v
            .brokers
            .iter()
            .map(|b| (b.id, b.fenced, b.registered, b.leaders, b.replicas))
            .collect();
        assert_eq!(
            summary,
            vec![
                (101, Some(false), true, 2, 2),
                (102, Some(true), true, 0, 3),
                (103, None, false, 0, 1),
            ]
        );
        assert_eq!((v.topics, v.partitions), (1, 3));
        let text = v.format();
        assert!(text.contains("ControllerId: 1\n"), "{text}");
        assert!(text.contains("Brokers:      2 (1 fenced)\n"), "{text}");
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip_while(|l| !l.starts_with("BrokerId"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[1], ["101", "127.0.0.1:19101", "a", "no", "2", "2"]);
        assert_eq!(rows[2], ["102", "127.0.0.1:19102", "b", "yes", "0", "3"]);
        assert_eq!(rows[3], ["103", "not", "registered", "-", "?", "0", "1"]);
    }

    #[test]
    fn old_brokers_leave_fenced_unknown() {
        let (described, metadata) = sample();
        let v = ClusterView::build(&described, 1, &metadata);
        assert!(!v.fenced_known);
        assert!(v.brokers.iter().all(|b| b.fenced.is_none()));
        assert!(v.format().contains("below v2"));
        let no_controller = described.with_controller_id(BrokerId(-1));
        let v = ClusterView::build(&no_controller, 2, &metadata);
        assert_eq!(v.controller_id, None);
        assert!(v.format().contains("ControllerId: none"));
    }
}
