//! A Kafka-protocol connection from this broker to another one (a partition leader), for
//! the replica fetcher: one request at a time, the answer's size bounded before anything
//! is allocated for it.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::controller_api::channel::{encode_request, read_response};

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
        read_response(
            &mut self.stream,
            api_key,
            version,
            correlation_id,
            self.max_frame,
        )
        .await
    }
}
