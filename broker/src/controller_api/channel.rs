//! [`ControllerChannel`]: the broker's Kafka-protocol connection to the active controller,
//! for BrokerRegistration, BrokerHeartbeat, AlterPartition and forwarded ElectLeaders.
//! It follows the leader that the metadata pulls report (`ControllerClient::leader_hint`),
//! and rotates through the voters while none is known.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use isthmus_controller::{ControllerClient, NodeId};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::frame_buffers;

/// Bound on a controller's response frame.
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
const CONNECT_TIMEOUT_MS: u64 = 3_000;

/// One request/response at a time over a cached connection.
pub struct ControllerChannel {
    client: Arc<ControllerClient>,
    voters: Vec<NodeId>,
    client_id: String,
    conn: Mutex<Option<(NodeId, TcpStream)>>,
    correlation: AtomicI32,
    rotate: AtomicUsize,
}

impl ControllerChannel {
    pub fn new(client: Arc<ControllerClient>, voters: Vec<NodeId>, node_id: i32) -> Self {
        ControllerChannel {
            client,
            voters,
            client_id: format!("isthmus-broker-{node_id}"),
            conn: Mutex::new(None),
            correlation: AtomicI32::new(1),
            rotate: AtomicUsize::new(0),
        }
    }

    /// The controller to ask: the known leader, else the next voter in turn.
    fn target(&self) -> NodeId {
        self.client.leader_hint().unwrap_or_else(|| {
            let i = self.rotate.fetch_add(1, Ordering::Relaxed);
            self.voters[i % self.voters.len().max(1)]
        })
    }

    /// Forgets the connection (after NOT_CONTROLLER or a failure) so the next call goes to
    /// the current leader.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    /// Sends `request` as `api_key` v`version` to the active controller and returns its
    /// answer, all within `timeout`.
    pub async fn call(
        &self,
        api_key: ApiKey,
        version: i16,
        request: &RequestKind,
        timeout: Duration,
    ) -> Result<ResponseKind, String> {
        let res = tokio::time::timeout(timeout, self.call_inner(api_key, version, request)).await;
        let res =
            res.unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())));
        if res.is_err() {
            self.reset().await;
        }
        res
    }

    async fn call_inner(
        &self,
        api_key: ApiKey,
        version: i16,
        request: &RequestKind,
    ) -> Result<ResponseKind, String> {
        let mut guard = self.conn.lock().await;
        let target = self.target();
        if guard.as_ref().is_none_or(|(id, _)| *id != target) {
            let addr = self
                .client
                .voter_addr(target)
                .ok_or_else(|| format!("controller {target} is not a configured voter"))?
                .to_string();
            let stream = tokio::time::timeout(
                Duration::from_millis(CONNECT_TIMEOUT_MS),
                TcpStream::connect(&addr),
            )
            .await
            .map_err(|_| format!("connecting to controller {target} at {addr} timed out"))?
            .map_err(|e| format!("connecting to controller {target} at {addr}: {e}"))?;
            let _ = stream.set_nodelay(true);
            *guard = Some((target, stream));
        }
        let Some((_, stream)) = guard.as_mut() else {
            return Err("no connection".into());
        };
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(api_key, version, correlation_id, &self.client_id, request)?;
        stream.write_all(&frame).await.map_err(|e| e.to_string())?;
        read_response(stream, api_key, version, correlation_id, RESPONSE_BYTES_MAX)
            .await
            .map_err(|e| format!("the controller's answer: {e}"))
    }
}

/// Reads the answer to request `correlation_id` (`api_key` v`version`) from `stream`,
/// refusing a frame above `max_frame` bytes before allocating for it.
pub async fn read_response(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    max_frame: usize,
) -> Result<ResponseKind, String> {
    let mut prefix = [0u8; 4];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|e| format!("reading: {e}"))?;
    let len = i32::from_be_bytes(prefix);
    if len < 4 || len as usize > max_frame {
        return Err(format!(
            "a frame of {len} bytes (at most {max_frame} accepted)"
        ));
    }
    // A pooled buffer, read into uninitialised capacity: a follower's answers are
    // megabytes of records, and neither fresh pages nor zeroing them pays.
    let len = len as usize;
    let mut body = match frame_buffers::read_frame(stream, len).await {
        Ok(Ok(body)) => body,
        Ok(Err(got)) => {
            return Err(format!(
                "the connection closed {got} bytes into a {len}-byte frame"
            ))
        }
        Err(e) => return Err(format!("reading: {e}")),
    };
    let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version))
        .map_err(|e| format!("decoding the response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "correlation id {} in the answer to request {correlation_id}",
            header.correlation_id
        ));
    }
    ResponseKind::decode(api_key, &mut body, version).map_err(|e| format!("decoding: {e}"))
}

/// A request frame, size prefix included.
pub fn encode_request(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &RequestKind,
) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut out = BytesMut::new();
    out.put_i32(0);
    header
        .encode(&mut out, api_key.request_header_version(version))
        .map_err(|e| format!("encoding a request header: {e}"))?;
    request
        .encode(&mut out, version)
        .map_err(|e| format!("encoding a request: {e}"))?;
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    let frozen = out.freeze();
    debug_assert!(frozen.remaining() >= 4);
    Ok(frozen)
}
