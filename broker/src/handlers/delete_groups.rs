//! DeleteGroups: only groups without members. Their offsets and metadata get tombstones,
//! and a group leaves memory only once its tombstones are durable, so a failed write never
//! answers with an error while the group is already gone (or comes back after a restart).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsResponse, GroupId, RequestKind, ResponseKind};

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::records::{group_key, offset_key};

/// Kafka's offsets.commit.timeout.ms default, for the tombstones' write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DeleteGroups(req) = body else {
        return mismatched("DeleteGroups");
    };
    let broker = Arc::clone(broker);
    Reply::Later(
        async move {
            let mut results = Vec::with_capacity(req.groups_names.len());
            for id in &req.groups_names {
                let code = match delete(&broker, id).await {
                    Ok(()) => 0,
                    Err(e) => e.code(),
                };
                results.push(
                    DeletableGroupResult::default()
                        .with_group_id(id.clone())
                        .with_error_code(code),
                );
            }
            ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
        }
        .boxed(),
    )
}

async fn delete(broker: &Broker, id: &GroupId) -> Result<(), ResponseError> {
    let name = id.0.to_string();
    broker.groups.check_coordinator(&name)?;
    let keys = broker
        .groups
        .with_groups(|groups| match groups.get(&name) {
            None => Err(ResponseError::GroupIdNotFound),
            Some(g) if !g.is_empty() => Err(ResponseError::NonEmptyGroup),
            Some(g) => Ok(g.offsets.keys().cloned().collect::<Vec<_>>()),
        })?;
    let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys
        .iter()
        .map(|(t, p)| (offset_key(&name, t, *p), None))
        .collect();
    records.push((group_key(&name), None));
    let (partition, end) = crate::group::log::append(broker, &name, records).map_err(|e| {
        tracing::warn!(group = %name, error = %e, "writing group tombstones failed");
        e.response_error()
    })?;
    match tokio::time::timeout(WRITE_TIMEOUT, partition.wait_high_watermark(end)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.response_error()),
        Err(_) => return Err(ResponseError::RequestTimedOut),
    }
    broker
        .groups
        .with_groups(|groups| match groups.get_mut(&name) {
            Some(g) if g.is_empty() => {
                groups.remove(&name);
            }
            // A member joined meanwhile: the group stays, without the offsets now deleted on
            // disk, so memory and __consumer_offsets agree.
            Some(g) => {
                for k in &keys {
                    g.offsets.remove(k);
                }
            }
            None => {}
        });
    Ok(())
}
