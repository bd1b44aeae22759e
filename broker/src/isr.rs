//! ISR upkeep by partition leaders: a leader asks the controller (AlterPartition) to add
//! replicas back to the ISR of the partitions it leads.
//!
//! Until followers replicate (the replication issue), a follower holds no data to catch
//! up on, so the rule is interim: a replica rejoins the ISR once its broker is registered,
//! unfenced and not shutting down. This is what lets a restarted broker become leader of
//! its preferred partitions again. With replication, "caught up to the high watermark"
//! replaces "unfenced" here, and shrinking on lag joins it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use isthmus_controller::MetadataImage;
use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{
    AlterPartitionRequest, ApiKey, BrokerId, RequestKind, ResponseKind,
};
use uuid::Uuid;

use crate::broker::Broker;

/// How often a leader re-checks even without a metadata change (retries refusals).
const RECHECK_MS: u64 = 1_000;

/// The AlterPartition changes this broker, as leader, would ask for: partitions whose ISR
/// lacks an active replica.
pub fn expansions(image: &MetadataImage, me: i32) -> Vec<TopicData> {
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for topic in image.topics() {
        for (index, p) in &topic.partitions {
            if p.leader != me {
                continue;
            }
            let active = |id: &i32| image.broker(*id).is_some_and(|b| b.is_active());
            if !p.replicas.iter().any(|r| !p.isr.contains(r) && active(r)) {
                continue;
            }
            let new_isr: Vec<BrokerState> = p
                .replicas
                .iter()
                .filter(|r| p.isr.contains(r) || active(r))
                .map(|r| {
                    BrokerState::default()
                        .with_broker_id(BrokerId(*r))
                        .with_broker_epoch(image.broker(*r).map_or(-1, |b| b.broker_epoch))
                })
                .collect();
            by_topic.entry(topic.topic_id).or_default().push(
                PartitionData::default()
                    .with_partition_index(*index)
                    .with_leader_epoch(p.leader_epoch)
                    .with_partition_epoch(p.partition_epoch)
                    .with_new_isr_with_epochs(new_isr),
            );
        }
    }
    by_topic
        .into_iter()
        .map(|(topic_id, partitions)| {
            TopicData::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect()
}

/// Runs until shutdown: after each metadata change (and every [`RECHECK_MS`]), asks for the
/// ISR expansions this broker's leaderships need.
pub async fn run(broker: Arc<Broker>) {
    let mut rx = broker.metadata.subscribe();
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = rx.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(RECHECK_MS)) => {}
        }
        let epoch = broker.metadata.broker_epoch();
        if epoch < 0 || broker.metadata.is_fenced() {
            continue;
        }
        let topics = expansions(&broker.metadata.controller_image(), broker.node_id());
        if topics.is_empty() {
            continue;
        }
        let count: usize = topics.iter().map(|t| t.partitions.len()).sum();
        let request = RequestKind::AlterPartition(
            AlterPartitionRequest::default()
                .with_broker_id(BrokerId(broker.node_id()))
                .with_broker_epoch(epoch)
                .with_topics(topics),
        );
        match broker
            .metadata
            .call_controller(ApiKey::AlterPartition, 3, request)
            .await
        {
            Ok(ResponseKind::AlterPartition(r)) => {
                let refused: Vec<i16> = r
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .filter(|p| p.error_code != 0)
                    .map(|p| p.error_code)
                    .collect();
                if r.error_code != 0 || !refused.is_empty() {
                    tracing::debug!(
                        error_code = r.error_code,
                        ?refused,
                        "ISR expansion refused; retrying on the next change"
                    );
                } else {
                    tracing::info!(
                        partitions = count,
                        "added returning replicas back to the ISR"
                    );
                }
            }
            Ok(other) => tracing::debug!(?other, "unexpected AlterPartition answer"),
            Err(e) => tracing::debug!(error = %e, "AlterPartition failed; retrying"),
        }
    }
}
