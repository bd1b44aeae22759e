//! A Kafka-protocol connection from this broker to another one (a partition leader), for
//! the replica fetcher: one request at a time, the answer's size bounded before anything
//! is allocated for it.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::controller_api::channel::encode_request;

const CONNECT_TIMEOUT_MS: u64 = 3_000;

pub struct PeerConnection {
    stream: TcpStream,
    client_id: String,
    correlation: AtomicI32,
    /// Largest answer frame accepted (a fetch's byte limit plus room for one batch
    /// above it, which KIP-74 allows).
    max_frame: usize,
}

impl PeerConnection {
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: String,
        max_frame: usize,
    ) -> Result<PeerConnection, String> {
        let addr = format!("{host}:{port}");
        let stream = tokio::time::timeout(
            Duration::from_millis(CONNECT_TIMEOUT_MS),
            TcpStream::connect(&addr),
        )
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(PeerConnection {
            stream,
            client_id,
            correlation: AtomicI32::new(1),
            max_frame,
        })
    }

    /// Sends `request` as `api_key` v`version` and reads its answer, within `timeout`.
    /// After an error the connection must be dropped (a late answer may still come).
    pub async fn call(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &RequestKind,
        timeout: Duration,
    ) -> Result<ResponseKind, String> {
        tokio::time::timeout(timeout, self.call_inner(api_key, version, request))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
    }

    async fn call_inner(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &RequestKind,
    ) -> Result<ResponseKind, String> {
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(api_key, version, correlation_id, &self.client_id, request)?;
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("sending: {e}"))?;
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        let len = i32::from_be_bytes(prefix);
        if len < 4 || len as usize > self.max_frame {
            return Err(format!(
                "answer frame of {len} bytes (at most {} accepted)",
                self.max_frame
            ));
        }
        let mut body = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version))
            .map_err(|e| format!("decoding the response header: {e}"))?;
        if header.correlation_id != correlation_id {
            return Err(format!(
                "answer to correlation id {} for request {correlation_id}",
                header.correlation_id
            ));
        }
        ResponseKind::decode(api_key, &mut body, version)
            .map_err(|e| format!("decoding the response: {e}"))
    }
}
