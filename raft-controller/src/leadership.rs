//! TEMPORARY stand-in until the leadership module lands (same signatures).
use uuid::Uuid;

use crate::image::MetadataImage;
use crate::records::{MetadataRecord, PartitionChangeRecord};

#[derive(Clone, Debug)]
pub struct AlterPartitionRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub new_isr: Vec<i32>,
    pub partition_epoch: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterPartitionError {
    UnknownTopicOrPartition,
}
impl AlterPartitionError {
    pub fn kafka_error_code(&self) -> i16 {
        3
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionResult {
    Elected,
}
impl ElectionResult {
    pub fn kafka_error_code(&self) -> i16 {
        0
    }
}

pub fn fence_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    image.broker(broker_id).map_or(vec![], |b| {
        vec![MetadataRecord::FenceBroker {
            broker_id,
            broker_epoch: b.broker_epoch,
        }]
    })
}
pub fn unfence_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    image.broker(broker_id).map_or(vec![], |b| {
        vec![MetadataRecord::UnfenceBroker {
            broker_id,
            broker_epoch: b.broker_epoch,
        }]
    })
}
pub fn begin_controlled_shutdown(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    image.broker(broker_id).map_or(vec![], |b| {
        vec![MetadataRecord::BeginControlledShutdown {
            broker_id,
            broker_epoch: b.broker_epoch,
        }]
    })
}
pub fn imbalanced_partitions(_image: &MetadataImage) -> Vec<(Uuid, i32)> {
    vec![]
}
pub fn elect_preferred(
    _image: &MetadataImage,
    _t: Option<&[(Uuid, i32)]>,
) -> (Vec<MetadataRecord>, Vec<((Uuid, i32), ElectionResult)>) {
    (vec![], vec![])
}
pub fn elect_unclean(
    _image: &MetadataImage,
    _t: Option<&[(Uuid, i32)]>,
) -> (Vec<MetadataRecord>, Vec<((Uuid, i32), ElectionResult)>) {
    (vec![], vec![])
}
pub fn alter_partition(
    _image: &MetadataImage,
    _r: &AlterPartitionRequest,
) -> Result<Option<PartitionChangeRecord>, AlterPartitionError> {
    Err(AlterPartitionError::UnknownTopicOrPartition)
}
