//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), latest
//! tiered (-5), or the first offset whose timestamp is at least the one asked for.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsResponse, RequestKind, ResponseKind};

use super::{check_leader_epoch, mismatched};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::replica::Partition;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::ListOffsets(req) = body else {
        return mismatched("ListOffsets");
    };
    let image = broker.metadata.image();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = broker
                        .replicas
                        .leader_partition(&image, &topic.name.0, p.partition_index)
                        .and_then(|partition| {
                            check_leader_epoch(p.current_leader_epoch, partition.leader_epoch())
                                .and_then(|()| lookup(&partition, p.timestamp))
                        });
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match answer {
                        Ok((offset, timestamp, epoch)) => base
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch),
                        Err(e) => base
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::ListOffsets(
        ListOffsetsResponse::default().with_topics(topics),
    ))
}

/// (offset, timestamp, leader epoch); offset -1 when no record matches.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64, i32), ResponseError> {
    let epoch = partition.leader_epoch();
    let hw = partition.high_watermark();
    let found = partition
        .with_log(|log| {
            Ok(match timestamp {
                LATEST_TIMESTAMP => (hw, -1, epoch),
                EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                    (log.log_start_offset(), -1, epoch)
                }
                // Nothing is tiered yet.
                LATEST_TIERED_TIMESTAMP => (-1, -1, -1),
                MAX_TIMESTAMP => match log.max_timestamp() {
                    Some((offset, ts)) if offset < hw => (offset, ts, epoch),
                    _ => (-1, -1, -1),
                },
                ts if ts >= 0 => match log.offset_for_timestamp(ts) {
                    Some((offset, found_ts)) if offset < hw => (offset, found_ts, epoch),
                    _ => (-1, -1, -1),
                },
                _ => {
                    return Err(crate::error::BrokerError::kafka(
                        ResponseError::InvalidRequest,
                        "unknown special timestamp",
                    ))
                }
            })
        })
        .map_err(|e| e.response_error())?;
    Ok(found)
}
