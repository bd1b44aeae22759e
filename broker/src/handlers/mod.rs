//! One file per Kafka API. Each handler checks its input, calls into the replicas, topics or
//! metadata, and turns errors into Kafka error codes here, at the edge.

pub mod api_versions;
pub mod configs;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod fetch;
pub mod find_coordinator;
pub mod forwarded;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::dispatch::Reply;
use crate::metadata::Image;

pub fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A request routed to the wrong handler: a bug in the table, so refuse it loudly rather
/// than guess.
pub fn mismatched(api: &str) -> Reply {
    Reply::Close(format!("internal routing error: request is not {api}"))
}

/// Checks a client's CurrentLeaderEpoch against ours as Kafka does: older → fenced, newer →
/// we have not learned it yet. -1 means the client does not know.
pub fn check_leader_epoch(client_epoch: i32, ours: i32) -> Result<(), ResponseError> {
    if client_epoch < 0 || client_epoch == ours {
        Ok(())
    } else if client_epoch < ours {
        Err(ResponseError::FencedLeaderEpoch)
    } else {
        Err(ResponseError::UnknownLeaderEpoch)
    }
}

/// The leader of `topic`-`index` as the image has it, (broker id, leader epoch), or
/// (-1, -1): what a NOT_LEADER_OR_FOLLOWER answer points the client to (KIP-951), so it
/// moves to the new leader without waiting for a metadata refresh.
pub fn current_leader(image: &Image, topic: &str, index: i32) -> (i32, i32) {
    image
        .topic(topic)
        .and_then(|t| t.partition(index))
        .filter(|p| p.leader >= 0)
        .map_or((-1, -1), |p| (p.leader, p.leader_epoch))
}

/// The live brokers among `ids`, at the endpoint clients use here: KIP-951's
/// `node_endpoints` for the leaders named in `current_leader` fields.
pub fn leader_endpoints(
    broker: &Broker,
    image: &Image,
    ids: impl IntoIterator<Item = i32>,
) -> Vec<metadata::LiveBroker> {
    let ids: std::collections::BTreeSet<i32> = ids.into_iter().filter(|id| *id >= 0).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    metadata::live_brokers(broker, image)
        .into_iter()
        .filter(|b| ids.contains(&b.id))
        .collect()
}
