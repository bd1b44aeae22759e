//! OffsetForLeaderEpoch: the end offset of the requested epoch (the start of the next one),
//! from the leader-epoch cache; how consumers detect truncation and followers find where to
//! truncate.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochResponse, RequestKind, ResponseKind};

use super::{check_leader_epoch, mismatched};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::OffsetForLeaderEpoch(req) = body else {
        return mismatched("OffsetForLeaderEpoch");
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
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    let answer = broker
                        .replicas
                        .leader_partition(&image, &topic.topic.0, p.partition)
                        .and_then(|partition| {
                            check_leader_epoch(p.current_leader_epoch, partition.leader_epoch())
                                .and_then(|()| {
                                    partition
                                        .with_log(
                                            |log| Ok(log.end_offset_for_epoch(p.leader_epoch)),
                                        )
                                        .map_err(|e| e.response_error())
                                })
                        });
                    match answer {
                        Ok(Some((epoch, end))) => {
                            base.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        Ok(None) => base.with_leader_epoch(-1).with_end_offset(-1),
                        Err(e) => base
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::OffsetForLeaderEpoch(
        OffsetForLeaderEpochResponse::default().with_topics(topics),
    ))
}
