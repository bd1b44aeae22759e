//! The Kafka side of the controller listener: what brokers (and admin tools) send to a
//! controller — BrokerRegistration, BrokerHeartbeat, AlterPartition, ElectLeaders,
//! Alter/ListPartitionReassignments, DescribeQuorum and ApiVersions — answered from the local [`Controller`]. The same port
//! carries the quorum's own RPC; `isthmus_controller` tells the two apart and hands Kafka
//! connections here. [`channel`] is the broker's client for these requests.
//!
//! Fields read but not acted on (Isthmus has no JBOD directory ids, feature levels or
//! leader recovery yet): BrokerRegistration `features` and `log_dirs`, BrokerHeartbeat
//! `offline_log_dirs`, AlterPartition `leader_recovery_state`; ElectLeaders and
//! AlterPartitionReassignments answer once their changes are committed, bounded by the
//! controller's request timeout rather than the request's `timeout_ms` (which
//! ListPartitionReassignments, answered from memory, does not need either).

pub mod channel;
mod handlers;
mod reassignments;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use isthmus_controller::{Controller, KafkaConnHandler, Voter};
use isthmus_protocol::codec::{self, api_name};
use isthmus_protocol::frame;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::protocol::VersionRange;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on one request frame on the controller listener.
const REQUEST_BYTES_MAX: usize = 16 * 1024 * 1024;
/// A connection idle this long is closed (brokers heartbeat far more often).
const IDLE_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// What the controller listener serves, and in which versions.
pub const CONTROLLER_APIS: &[(ApiKey, VersionRange)] = &[
    (ApiKey::ApiVersions, VersionRange { min: 0, max: 4 }),
    (ApiKey::BrokerRegistration, VersionRange { min: 0, max: 4 }),
    (ApiKey::BrokerHeartbeat, VersionRange { min: 0, max: 1 }),
    (ApiKey::AlterPartition, VersionRange { min: 2, max: 3 }),
    (ApiKey::ElectLeaders, VersionRange { min: 0, max: 2 }),
    (
        ApiKey::AlterPartitionReassignments,
        VersionRange { min: 0, max: 1 },
    ),
    (
        ApiKey::ListPartitionReassignments,
        VersionRange { min: 0, max: 0 },
    ),
    (ApiKey::DescribeQuorum, VersionRange { min: 0, max: 2 }),
];

/// What the handlers need besides the controller.
pub struct ControllerApi {
    pub controller: Controller,
    pub cluster_id: String,
    pub voters: Vec<Voter>,
    pub listener_name: String,
}

/// The handler to install with [`Controller::serve_kafka`].
pub fn kafka_handler(api: Arc<ControllerApi>) -> KafkaConnHandler {
    Arc::new(move |stream: TcpStream, peer: SocketAddr| {
        let api = api.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(&api, stream).await {
                tracing::debug!(%peer, error = %e, "controller listener connection closed");
            }
        });
    })
}

async fn serve(api: &ControllerApi, mut stream: TcpStream) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
    loop {
        let mut prefix = [0u8; frame::FRAME_PREFIX_BYTES];
        match tokio::time::timeout(idle, stream.read_exact(&mut prefix)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
        let len = frame::body_length(prefix, REQUEST_BYTES_MAX).map_err(|e| e.to_string())?;
        let mut body = BytesMut::zeroed(len);
        tokio::time::timeout(idle, stream.read_exact(&mut body))
            .await
            .map_err(|_| "request body did not arrive".to_string())?
            .map_err(|e| e.to_string())?;
        let body: Bytes = body.freeze();
        let preamble = codec::peek_preamble(&body).map_err(|e| e.to_string())?;
        let api_key = ApiKey::try_from(preamble.api_key)
            .map_err(|_| format!("unknown api key {}", preamble.api_key))?;
        let Some((_, range)) = CONTROLLER_APIS.iter().find(|(k, _)| *k == api_key) else {
            return Err(format!(
                "{} is not served on the controller listener; send it to a broker",
                api_name(api_key)
            ));
        };
        let version = preamble.api_version;
        let response = if version < range.min || version > range.max {
            if api_key != ApiKey::ApiVersions {
                return Err(format!(
                    "{} v{version} is not supported (v{}-v{})",
                    api_name(api_key),
                    range.min,
                    range.max
                ));
            }
            let out = codec::encode_response(
                preamble.correlation_id,
                ApiKey::ApiVersions,
                0,
                &api_versions(ResponseError::UnsupportedVersion.code()),
            )
            .map_err(|e| e.to_string())?;
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
            continue;
        } else {
            let request =
                codec::decode_request(body, api_key, version).map_err(|e| e.to_string())?;
            handlers::handle(api, api_key, version, request.body).await?
        };
        let out = codec::encode_response(preamble.correlation_id, api_key, version, &response)
            .map_err(|e| e.to_string())?;
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
    }
}

fn api_versions(error_code: i16) -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(
                CONTROLLER_APIS
                    .iter()
                    .map(|(k, r)| {
                        ApiVersion::default()
                            .with_api_key(*k as i16)
                            .with_min_version(r.min)
                            .with_max_version(r.max)
                    })
                    .collect(),
            ),
    )
}
