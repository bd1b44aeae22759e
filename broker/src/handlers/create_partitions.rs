//! CreatePartitions: grow a topic's partition count (never shrink), `validate_only`.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsResponse, RequestKind, ResponseKind};

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::topics;

pub fn handle(broker: &Arc<Broker>, _header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::CreatePartitions(req) = body else {
        return mismatched("CreatePartitions");
    };
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            // An empty list means "no assignment", like null.
            let assignments: Option<Vec<Vec<i32>>> =
                t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| {
                    a.iter()
                        .map(|r| r.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                });
            let result = topics::add_partitions(
                broker,
                &t.name.0,
                t.count,
                assignments.as_deref(),
                req.validate_only,
            );
            let base = CreatePartitionsTopicResult::default().with_name(t.name);
            match result {
                Ok(()) => base,
                Err(e) => base
                    .with_error_code(e.response_error().code())
                    .with_error_message(Some(text(e.to_string()))),
            }
        })
        .collect();
    Reply::Now(ResponseKind::CreatePartitions(
        CreatePartitionsResponse::default().with_results(results),
    ))
}
