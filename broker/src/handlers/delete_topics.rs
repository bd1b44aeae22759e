//! DeleteTopics: by name (all versions) or by topic id (v6+).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsResponse, RequestKind, ResponseKind, TopicName};
use uuid::Uuid;

use super::{mismatched, text};
use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::topics;

pub fn handle(broker: &Arc<Broker>, header: &RequestContext, body: RequestKind) -> Reply {
    let RequestKind::DeleteTopics(req) = body else {
        return mismatched("DeleteTopics");
    };
    let wanted: Vec<(Option<TopicName>, Uuid)> = if header.request_api_version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let by_id = if id.is_nil() { None } else { Some(id) };
            match topics::delete(broker, name.as_ref().map(|n| n.0.as_str()), by_id) {
                Ok((deleted, deleted_id)) => DeletableTopicResult::default()
                    .with_name(Some(TopicName(text(deleted))))
                    .with_topic_id(deleted_id),
                Err(e) => DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_error_code(e.response_error().code())
                    .with_error_message(Some(text(e.to_string()))),
            }
        })
        .collect();
    Reply::Now(ResponseKind::DeleteTopics(
        DeleteTopicsResponse::default().with_responses(responses),
    ))
}
