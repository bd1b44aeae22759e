//! ISR upkeep by partition leaders: every `replica.lag.time.max.ms / 2` (as Kafka checks),
//! and at once when a follower catches up, each led partition says which ISR change it
//! needs ([`Partition::take_isr_change`]: shrink a follower not caught up for
//! `replica.lag.time.max.ms`, expand one that reached the high watermark in this leader
//! epoch). The changes go to the active controller in one AlterPartition, with the leader
//! and partition epochs it holds, so a stale leader's change is refused
//! (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION); the answer commits the new ISR locally,
//! a refusal drops the pending change so the next round asks again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{
    AlterPartitionRequest, ApiKey, BrokerId, RequestKind, ResponseKind,
};
use uuid::Uuid;

use crate::broker::{now_ms, Broker};
use crate::replica::partition::IsrRequest;
use crate::replica::replication::IsrChange;
use crate::replica::Partition;

/// A change sent and not answered yet: (partition, leader epoch, the change).
type Sent = (Arc<Partition>, i32, IsrChange);

/// Runs until shutdown.
pub async fn run(broker: Arc<Broker>) {
    let lag_max_ms = broker
        .node
        .settings
        .i64("replica.lag.time.max.ms")
        .unwrap_or(30_000);
    let every = Duration::from_millis((lag_max_ms as u64 / 2).max(50));
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = broker.isr_wakeup.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
        let epoch = broker.metadata.broker_epoch();
        if epoch < 0 || broker.metadata.is_fenced() {
            continue;
        }
        let now = now_ms();
        let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
        let mut sent: BTreeMap<(Uuid, i32), Sent> = BTreeMap::new();
        for p in broker.replicas.all_partitions() {
            let Some(IsrRequest {
                change,
                leader_epoch,
                partition_epoch,
                members,
            }) = p.take_isr_change(now, lag_max_ms)
            else {
                continue;
            };
            let new_isr = members
                .iter()
                .map(|(id, broker_epoch)| {
                    BrokerState::default()
                        .with_broker_id(BrokerId(*id))
                        .with_broker_epoch(if *id == broker.node_id() {
                            epoch
                        } else {
                            *broker_epoch
                        })
                })
                .collect();
            by_topic.entry(p.topic_id).or_default().push(
                PartitionData::default()
                    .with_partition_index(p.index)
                    .with_leader_epoch(leader_epoch)
                    .with_partition_epoch(partition_epoch)
                    .with_new_isr_with_epochs(new_isr),
            );
            sent.insert((p.topic_id, p.index), (p, leader_epoch, change));
        }
        if sent.is_empty() {
            continue;
        }
        let request = RequestKind::AlterPartition(
            AlterPartitionRequest::default()
                .with_broker_id(BrokerId(broker.node_id()))
                .with_broker_epoch(epoch)
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(topic_id, partitions)| {
                            TopicData::default()
                                .with_topic_id(topic_id)
                                .with_partitions(partitions)
                        })
                        .collect(),
                ),
        );
        match broker
            .metadata
            .call_controller(ApiKey::AlterPartition, 3, request)
            .await
        {
            Ok(ResponseKind::AlterPartition(r)) if r.error_code == 0 => {
                for topic in r.topics {
                    for answer in topic.partitions {
                        let Some((p, leader_epoch, change)) =
                            sent.remove(&(topic.topic_id, answer.partition_index))
                        else {
                            continue;
                        };
                        if answer.error_code != 0 {
                            let error = ResponseError::try_from_code(answer.error_code);
                            tracing::info!(topic = %p.topic, partition = p.index, ?error, ?change, "the controller refused an ISR change");
                            p.clear_pending_isr(leader_epoch);
                            continue;
                        }
                        let isr: Vec<i32> = answer.isr.iter().map(|b| b.0).collect();
                        match change {
                            IsrChange::Shrink(_) => broker.replication_stats.record_shrink(),
                            IsrChange::Expand(_) => broker.replication_stats.record_expand(),
                        }
                        tracing::info!(topic = %p.topic, partition = p.index, ?isr, partition_epoch = answer.partition_epoch,
                            kind = match change { IsrChange::Shrink(_) => "shrink", IsrChange::Expand(_) => "expand" },
                            "ISR changed");
                        p.commit_isr(answer.leader_epoch, answer.partition_epoch, &isr, now_ms());
                    }
                }
                // Anything the answer did not mention is asked again next round.
                for (p, leader_epoch, _) in sent.into_values() {
                    p.clear_pending_isr(leader_epoch);
                }
            }
            other => {
                match other {
                    Ok(ResponseKind::AlterPartition(r)) => {
                        tracing::info!(
                            error_code = r.error_code,
                            "AlterPartition refused; retrying"
                        )
                    }
                    Ok(other) => tracing::debug!(?other, "unexpected AlterPartition answer"),
                    Err(e) => tracing::debug!(error = %e, "AlterPartition failed; retrying"),
                }
                for (p, leader_epoch, _) in sent.into_values() {
                    p.clear_pending_isr(leader_epoch);
                }
            }
        }
    }
}
