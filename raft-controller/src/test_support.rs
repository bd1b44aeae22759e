//! Image builders shared by the controller's unit tests.

use uuid::Uuid;

use crate::image::{MetadataImage, PartitionImage};
use crate::leadership::{unfence_broker, AlterPartitionRequest, IsrMember, BROKER_EPOCH_UNCHECKED};
use crate::records::{
    BrokerEndpoint, BrokerRegistrationRecord, MetadataProposal, MetadataRecord, PartitionRecord,
    TopicRecord,
};

pub(crate) fn register(id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistrationRecord {
        broker_id: id,
        incarnation_id: Uuid::new_v4(),
        rack: None,
        endpoints: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
            security_protocol: "PLAINTEXT".into(),
        }],
    })
}

/// Applies `records` as the next log entry; panics with the rejection.
pub(crate) fn step(image: &MetadataImage, records: Vec<MetadataRecord>) -> MetadataImage {
    image
        .apply(image.revision() + 1, &MetadataProposal::new(records))
        .unwrap_or_else(|r| panic!("rejected: {r}"))
}

/// `n` registered, unfenced brokers with ids 1..=n.
pub(crate) fn cluster(n: i32) -> MetadataImage {
    let mut img = MetadataImage::default();
    for id in 1..=n {
        img = step(&img, vec![register(id)]);
        img = step(&img, unfence_broker(&img, id));
    }
    img
}

/// A partition with an explicit ISR and leader.
pub(crate) struct Part<'a> {
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
    pub leader: i32,
}

pub(crate) fn full(replicas: &[i32]) -> Part<'_> {
    Part {
        replicas,
        isr: replicas,
        leader: replicas[0],
    }
}

pub(crate) fn add_topic(
    img: &MetadataImage,
    name: &str,
    configs: &[(&str, &str)],
    parts: &[Part<'_>],
) -> (MetadataImage, Uuid) {
    let id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::CreateTopic(TopicRecord {
        name: name.into(),
        topic_id: id,
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })];
    for (i, p) in parts.iter().enumerate() {
        records.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition: i as i32,
            replicas: p.replicas.to_vec(),
            isr: p.isr.to_vec(),
            leader: p.leader,
            leader_epoch: 0,
            partition_epoch: 0,
        }));
    }
    (step(img, records), id)
}

pub(crate) fn part(img: &MetadataImage, id: Uuid, p: i32) -> PartitionImage {
    img.partition(&id, p).unwrap().clone()
}

/// ISR members without broker epochs (AlterPartition before v3).
pub(crate) fn unchecked(ids: &[i32]) -> Vec<IsrMember> {
    ids.iter()
        .map(|&broker_id| IsrMember {
            broker_id,
            broker_epoch: BROKER_EPOCH_UNCHECKED,
        })
        .collect()
}

/// The current leader's AlterPartition asking for `isr`, at the partition's epochs.
pub(crate) fn leader_asks(
    img: &MetadataImage,
    t: Uuid,
    partition: i32,
    isr: &[i32],
) -> AlterPartitionRequest {
    let p = part(img, t, partition);
    AlterPartitionRequest {
        broker_id: p.leader,
        broker_epoch: img.broker(p.leader).unwrap().broker_epoch,
        topic_id: t,
        partition,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: unchecked(isr),
    }
}
