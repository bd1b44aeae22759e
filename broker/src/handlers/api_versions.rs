//! ApiVersions: generated from the dispatch table, so it lists exactly what is implemented.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, RequestKind, ResponseKind};

use crate::broker::Broker;
use crate::dispatch::{Reply, RequestContext, APIS};

pub fn handle(_broker: &Arc<Broker>, _header: &RequestContext, _body: RequestKind) -> Reply {
    Reply::Now(ResponseKind::ApiVersions(response(0)))
}

/// The v0 answer to an ApiVersions request of a version we do not know.
pub fn unsupported_version() -> ResponseKind {
    ResponseKind::ApiVersions(response(ResponseError::UnsupportedVersion.code()))
}

fn response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            APIS.iter()
                .map(|a| {
                    let range = a.advertised();
                    ApiVersion::default()
                        .with_api_key(a.key as i16)
                        .with_min_version(range.min)
                        .with_max_version(range.max)
                })
                .collect(),
        )
        .with_finalized_features_epoch(-1)
}
