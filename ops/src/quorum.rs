//! `quorum status`, shaped like `kafka-metadata-quorum.sh describe --status --replication`:
//! the metadata quorum's leader, epoch, high watermark and follower lag, then one row per
//! voter and observer, from DescribeQuorum (API 55).
//!
//! Only the quorum leader knows the followers' progress, so a node that is not the leader
//! (NOT_LEADER_OR_FOLLOWER) is skipped for the next bootstrap address, then for the
//! controller endpoints the answers name.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{
    DescribeQuorumResponse, Node, ReplicaState,
};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use crate::client::ClientOpts;
use crate::groups::client::{check_plaintext, Conn, KafkaCode};
use crate::groups::table;

/// KRaft's metadata log, the partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// Addresses tried before giving up (bootstrap plus endpoints learned from answers).
const NODES_TRIED_MAX: usize = 32;

#[derive(Debug, Subcommand)]
pub enum QuorumCmd {
    /// Leader, epoch, high watermark, lag; one row per voter and observer.
    #[command(after_help = "Examples:
  isthmusctl quorum status
  isthmusctl -b 127.0.0.1:19094 quorum status --human-readable
  isthmusctl quorum status --bootstrap-controller 127.0.0.1:19090 --json")]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Ask these controllers (host:port[,…], their controller listener) instead of the
    /// --bootstrap-server brokers.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub bootstrap_controller: Option<String>,
    /// Timestamps as "N ms ago" instead of epoch milliseconds.
    #[arg(long)]
    pub human_readable: bool,
    /// One JSON object (timestamps and lags unknown to the leader are null).
    #[arg(long, conflicts_with = "human_readable")]
    pub json: bool,
}

pub async fn run(opts: ClientOpts, cmd: QuorumCmd) -> anyhow::Result<()> {
    match cmd {
        QuorumCmd::Status(a) => status(opts, a).await,
    }
}

async fn status(opts: ClientOpts, a: StatusArgs) -> anyhow::Result<()> {
    check_plaintext(&opts)?;
    let bootstrap = a.bootstrap_controller.as_deref().unwrap_or(&opts.bootstrap);
    let (resp, cluster_id) = describe_quorum(bootstrap, opts.request_timeout).await?;
    let view = QuorumView::from_response(&resp, cluster_id)?;
    if a.json {
        println!("{}", serde_json::to_string(&view)?);
    } else {
        let now_ms = chrono::Utc::now().timestamp_millis();
        print!("{}", view.format(a.human_readable.then_some(now_ms)));
    }
    Ok(())
}

/// Asks each address in turn until the quorum leader answers; also returns the cluster id
/// when that node tells it (DescribeCluster).
async fn describe_quorum(
    bootstrap: &str,
    timeout: Duration,
) -> anyhow::Result<(DescribeQuorumResponse, Option<String>)> {
    let mut queue: Vec<String> = bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if queue.is_empty() {
        bail!("no address to ask: the bootstrap list is empty");
    }
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let mut tried = BTreeSet::new();
    let mut errors = Vec::new();
    while let Some(addr) = queue.first().cloned() {
        queue.remove(0);
        if !tried.insert(addr.clone()) || tried.len() > NODES_TRIED_MAX {
            continue;
        }
        let mut conn = match Conn::open(&addr, timeout).await {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("{e:#}"));
                continue;
            }
        };
        let resp = match conn.call(&req).await {
            Ok((resp, _)) => resp,
            Err(e) => {
                errors.push(format!("{e:#}"));
                continue;
            }
        };
        let code = quorum_error(&resp);
        if code == ResponseError::NotLeaderOrFollower.code() {
            errors.push(format!("{addr}: not the quorum leader"));
            queue.extend(controller_endpoints(&resp.nodes));
            continue;
        }
        if code != 0 {
            let message = resp
                .error_message
                .as_ref()
                .or_else(|| partition(&resp).and_then(|p| p.error_message.as_ref()))
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            bail!("DescribeQuorum to {addr}: {}{message}", KafkaCode(code));
        }
        // Best effort: controllers of other implementations may not answer it.
        let cluster_id = conn
            .call(&DescribeClusterRequest::default())
            .await
            .ok()
            .filter(|(r, _)| r.error_code == 0 && !r.cluster_id.is_empty())
            .map(|(r, _)| r.cluster_id.to_string());
        return Ok((resp, cluster_id));
    }
    bail!(
        "no node answered DescribeQuorum as the quorum leader (asked: {}): {}",
        tried.into_iter().collect::<Vec<_>>().join(","),
        errors.join("; ")
    )
}

/// The response's error: top level (v2), else the metadata partition's.
fn quorum_error(resp: &DescribeQuorumResponse) -> i16 {
    if resp.error_code != 0 {
        return resp.error_code;
    }
    match partition(resp) {
        Some(p) => p.error_code,
        None => ResponseError::UnknownTopicOrPartition.code(),
    }
}

fn partition(
    resp: &DescribeQuorumResponse,
) -> Option<&kafka_protocol::messages::describe_quorum_response::PartitionData> {
    resp.topics
        .iter()
        .find(|t| t.topic_name.0.as_str() == METADATA_TOPIC)?
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)
}

/// `host:port` of every listener of the controller nodes (v2's `nodes`).
fn controller_endpoints(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|n| &n.listeners)
        .map(|l| format!("{}:{}", l.host, l.port))
        .collect()
}

/// A voter's or observer's part in the quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReplicaStatus {
    Leader,
    Follower,
    Observer,
}

/// One row of the replication table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaView {
    pub id: i32,
    /// KIP-853's directory id, when the replica reports one.
    pub directory_id: Option<String>,
    pub log_end_offset: Option<i64>,
    /// Entries behind the leader's log end offset.
    pub lag: Option<i64>,
    pub last_fetch_timestamp_ms: Option<i64>,
    pub last_caught_up_timestamp_ms: Option<i64>,
    pub status: ReplicaStatus,
    /// `NAME://host:port` of the node's controller listeners (v2), when known.
    pub endpoints: Vec<String>,
}

/// What `quorum status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumView {
    pub cluster_id: Option<String>,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    /// Largest lag of a voter; unknown when some voter's log end offset is.
    pub max_follower_lag: Option<i64>,
    /// How long the most lagging voter has been behind the leader (Kafka's
    /// MaxFollowerLagTimeMs); 0 when no voter lags.
    pub max_follower_lag_time_ms: Option<i64>,
    /// The leader first, then the other voters by id.
    pub voters: Vec<ReplicaView>,
    pub observers: Vec<ReplicaView>,
}

/// -1 is the protocol's "unknown".
fn known(v: i64) -> Option<i64> {
    (v >= 0).then_some(v)
}

impl QuorumView {
    pub fn from_response(
        resp: &DescribeQuorumResponse,
        cluster_id: Option<String>,
    ) -> anyhow::Result<QuorumView> {
        let p = partition(resp).ok_or_else(|| {
            anyhow!("DescribeQuorum answered without {METADATA_TOPIC} partition 0")
        })?;
        let leader_id = p.leader_id.0;
        let leader_leo = p
            .current_voters
            .iter()
            .find(|v| v.replica_id.0 == leader_id)
            .and_then(|v| known(v.log_end_offset));
        let row = |r: &ReplicaState, status: ReplicaStatus| {
            let leo = known(r.log_end_offset);
            let endpoints = resp
                .nodes
                .iter()
                .filter(|n| n.node_id == r.replica_id)
                .flat_map(|n| &n.listeners)
                .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                .collect();
            ReplicaView {
                id: r.replica_id.0,
                directory_id: (!r.replica_directory_id.is_nil())
                    .then(|| r.replica_directory_id.to_string()),
                log_end_offset: leo,
                lag: leader_leo.zip(leo).map(|(l, e)| (l - e).max(0)),
                last_fetch_timestamp_ms: known(r.last_fetch_timestamp),
                last_caught_up_timestamp_ms: known(r.last_caught_up_timestamp),
                status,
                endpoints,
            }
        };
        let mut voters: Vec<ReplicaView> = p
            .current_voters
            .iter()
            .map(|v| {
                let status = if v.replica_id.0 == leader_id {
                    ReplicaStatus::Leader
                } else {
                    ReplicaStatus::Follower
                };
                row(v, status)
            })
            .collect();
        voters.sort_by_key(|v| (v.status != ReplicaStatus::Leader, v.id));
        let mut observers: Vec<ReplicaView> = p
            .observers
            .iter()
            .map(|o| row(o, ReplicaStatus::Observer))
            .collect();
        observers.sort_by_key(|o| o.id);
        let (max_follower_lag, max_follower_lag_time_ms) = max_lag(&voters);
        Ok(QuorumView {
            cluster_id,
            leader_id,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            max_follower_lag,
            max_follower_lag_time_ms,
            voters,
            observers,
        })
    }

    /// The `--status` block, a blank line, then the `--replication` table. With `now_ms`,
    /// timestamps are shown as "N ms ago".
    pub fn format(&self, now_ms: Option<i64>) -> String {
        let or_na = |v: Option<i64>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
        let time = |v: Option<i64>| match (v, now_ms) {
            (None, _) => "n/a".to_owned(),
            (Some(t), Some(now)) => format!("{} ms ago", (now - t).max(0)),
            (Some(t), None) => t.to_string(),
        };
        let members = |rows: &[ReplicaView]| {
            let items: Vec<String> = rows
                .iter()
                .map(|r| {
                    let endpoints: Vec<String> =
                        r.endpoints.iter().map(|e| format!("\"{e}\"")).collect();
                    if endpoints.is_empty() {
                        format!("{{\"id\": {}}}", r.id)
                    } else {
                        format!(
                            "{{\"id\": {}, \"endpoints\": [{}]}}",
                            r.id,
                            endpoints.join(", ")
                        )
                    }
                })
                .collect();
            format!("[{}]", items.join(", "))
        };
        let leader = if self.leader_id < 0 {
            "none".to_owned()
        } else {
            self.leader_id.to_string()
        };
        let mut out = String::new();
        for (k, v) in [
            (
                "ClusterId",
                self.cluster_id.clone().unwrap_or_else(|| "n/a".into()),
            ),
            ("LeaderId", leader),
            ("LeaderEpoch", self.leader_epoch.to_string()),
            ("HighWatermark", self.high_watermark.to_string()),
            ("MaxFollowerLag", or_na(self.max_follower_lag)),
            ("MaxFollowerLagTimeMs", or_na(self.max_follower_lag_time_ms)),
            ("CurrentVoters", members(&self.voters)),
            ("CurrentObservers", members(&self.observers)),
        ] {
            out.push_str(&format!("{:<24}{v}\n", format!("{k}:")));
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = self
            .voters
            .iter()
            .chain(&self.observers)
            .map(|r| {
                vec![
                    r.id.to_string(),
                    or_na(r.log_end_offset),
                    or_na(r.lag),
                    time(r.last_fetch_timestamp_ms),
                    time(r.last_caught_up_timestamp_ms),
                    format!("{:?}", r.status),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "NodeId",
                "LogEndOffset",
                "Lag",
                "LastFetchTimestamp",
                "LastCaughtUpTimestamp",
                "Status",
            ],
            &rows,
        ));
        out
    }
}

/// Kafka's MaxFollowerLag and MaxFollowerLagTimeMs over the voters: the largest lag, and
/// for that voter how far its last catch-up trails the leader's (0 when nobody lags).
fn max_lag(voters: &[ReplicaView]) -> (Option<i64>, Option<i64>) {
    let Some(lags) = voters.iter().map(|v| v.lag).collect::<Option<Vec<i64>>>() else {
        return (None, None);
    };
    let Some(worst) = voters.iter().zip(&lags).max_by_key(|(_, lag)| **lag) else {
        return (None, None);
    };
    let (voter, &lag) = worst;
    if lag == 0 || voter.status == ReplicaStatus::Leader {
        return (Some(lag), Some(0));
    }
    let leader = voters.iter().find(|v| v.status == ReplicaStatus::Leader);
    let time = leader
        .and_then(|l| l.last_caught_up_timestamp_ms)
        .zip(voter.last_caught_up_timestamp_ms)
        .map(|(l, f)| (l - f).max(0));
    (Some(lag), time)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_quorum_response::{Listener, TopicData};
    use kafka_protocol::messages::BrokerId;

    use super::*;

    fn replica(id: i32, leo: i64, fetch: i64, caught_up: i64) -> ReplicaState {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(leo)
            .with_last_fetch_timestamp(fetch)
            .with_last_caught_up_timestamp(caught_up)
    }

    fn response(voters: Vec<ReplicaState>, observers: Vec<ReplicaState>) -> DescribeQuorumResponse {
        DescribeQuorumResponse::default()
            .with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                .with_partitions(vec![
                    kafka_protocol::messages::describe_quorum_response::PartitionData::default()
                        .with_leader_id(BrokerId(2))
                        .with_leader_epoch(7)
                        .with_high_watermark(100)
                        .with_current_voters(voters)
                        .with_observers(observers),
                ])])
            .with_nodes(vec![Node::default()
                .with_node_id(BrokerId(2))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(19091)])])
    }

    #[test]
    fn leader_first_lags_and_unknowns() {
        let resp = response(
            vec![
                replica(1, 90, 1_000, 900),
                replica(2, 100, 1_000, 1_000),
                replica(3, 100, 1_000, 1_000),
            ],
            vec![replica(101, 95, 1_000, -1), replica(102, -1, -1, -1)],
        );
        let v = QuorumView::from_response(&resp, Some("id-1".into())).unwrap();
        assert_eq!(
            v.voters
                .iter()
                .map(|r| (r.id, r.status))
                .collect::<Vec<_>>(),
            vec![
                (2, ReplicaStatus::Leader),
                (1, ReplicaStatus::Follower),
                (3, ReplicaStatus::Follower)
            ]
        );
        assert_eq!(v.voters[1].lag, Some(10));
        assert_eq!(v.max_follower_lag, Some(10));
        assert_eq!(v.max_follower_lag_time_ms, Some(100));
        assert_eq!(v.observers[0].lag, Some(5));
        assert_eq!(v.observers[1].lag, None);
        assert_eq!(v.voters[0].endpoints, vec!["CONTROLLER://127.0.0.1:19091"]);

        let text = v.format(None);
        assert!(text.contains("ClusterId:              id-1\n"), "{text}");
        assert!(text.contains("LeaderId:               2\n"), "{text}");
        assert!(text.contains("MaxFollowerLag:         10\n"), "{text}");
        assert!(
            text.contains(
                r#"CurrentVoters:          [{"id": 2, "endpoints": ["CONTROLLER://127.0.0.1:19091"]}, {"id": 1}, {"id": 3}]"#
            ),
            "{text}"
        );
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip_while(|l| !l.starts_with("NodeId"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[1], ["2", "100", "0", "1000", "1000", "Leader"]);
        assert_eq!(rows[4], ["101", "95", "5", "1000", "n/a", "Observer"]);
        assert_eq!(rows[5], ["102", "n/a", "n/a", "n/a", "n/a", "Observer"]);

        let human = v.format(Some(1_500));
        assert!(human.contains("500 ms ago"), "{human}");
    }

    #[test]
    fn unknown_follower_progress_is_not_a_number() {
        let resp = response(vec![replica(2, 10, 5, 5), replica(1, -1, -1, -1)], vec![]);
        let v = QuorumView::from_response(&resp, None).unwrap();
        assert_eq!(
            (v.max_follower_lag, v.max_follower_lag_time_ms),
            (None, None)
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["voters"][1]["lag"], serde_json::Value::Null);
        assert_eq!(json["voters"][0]["status"], "Leader");
        assert!(v.format(None).contains("ClusterId:              n/a"));
    }

    #[test]
    fn missing_partition_is_an_error() {
        let err = QuorumView::from_response(&DescribeQuorumResponse::default(), None).unwrap_err();
        assert!(err.to_string().contains("__cluster_metadata"), "{err}");
    }
}
