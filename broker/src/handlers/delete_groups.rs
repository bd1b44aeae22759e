//! DeleteGroups: only groups without members; their offsets and metadata get tombstones.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsResponse, RequestKind, ResponseKind};

use super::mismatched;
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::group::records::{group_key, offset_key};

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DeleteGroups(req) = body else {
        return mismatched("DeleteGroups");
    };
    let results = req
        .groups_names
        .iter()
        .map(|id| {
            let name = id.0.to_string();
            let removed = broker.groups.with_groups(|groups| match groups.get(&name) {
                None => Err(ResponseError::GroupIdNotFound),
                Some(g) if !g.is_empty() => Err(ResponseError::NonEmptyGroup),
                Some(_) => Ok(groups.remove(&name).map(|g| g.offsets.into_keys().collect::<Vec<_>>()).unwrap_or_default()),
            });
            let code = match removed {
                Err(e) => e.code(),
                Ok(keys) => {
                    let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys.iter().map(|(t, p)| (offset_key(&name, t, *p), None)).collect();
                    records.push((group_key(&name), None));
                    match crate::group::log::append(broker, &name, records) {
                        Ok(_) => 0,
                        Err(e) => {
                            tracing::warn!(group = %name, error = %e, "writing group tombstones failed");
                            e.response_error().code()
                        }
                    }
                }
            };
            DeletableGroupResult::default().with_group_id(id.clone()).with_error_code(code)
        })
        .collect();
    Reply::Now(ResponseKind::DeleteGroups(
        DeleteGroupsResponse::default().with_results(results),
    ))
}
