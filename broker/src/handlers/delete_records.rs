//! DeleteRecords: move a partition's log start offset forward (offset -1 = the high
//! watermark); whole segments below it are deleted.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsResponse, RequestKind, ResponseKind};

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DeleteRecords(req) = body else {
        return mismatched("DeleteRecords");
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
                    let result = broker
                        .replicas
                        .leader_partition(&image, &topic.name.0, p.partition_index)
                        .and_then(|partition| {
                            let hw = partition.high_watermark();
                            let target = if p.offset == -1 { hw } else { p.offset };
                            if target < 0 || target > hw {
                                Err(ResponseError::OffsetOutOfRange)
                            } else {
                                partition
                                    .with_log(|log| Ok(log.delete_records_before(target)?))
                                    .map_err(|e| e.response_error())
                            }
                        });
                    let base = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok(low) => base.with_low_watermark(low),
                        Err(e) => base.with_error_code(e.code()).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseKind::DeleteRecords(
        DeleteRecordsResponse::default().with_topics(topics),
    ))
}
