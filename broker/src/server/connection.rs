//! One client connection. A reader task frames and decodes requests and runs each handler's
//! ordered part at once (so appends happen in request order, as idempotent producers with
//! several requests in flight require); a writer sends responses in request order as their
//! futures complete. Malformed input is logged and closes this connection only.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use isthmus_protocol::codec::{self, api_name};
use isthmus_protocol::frame::{self, FRAME_PREFIX_BYTES};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::dispatch::{self, Reply};
use crate::frame_buffers;
use crate::handlers::api_versions;

/// Requests decoded but not yet answered, per connection. Beyond this the reader stops
/// reading, which pushes back on the client through TCP.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 32;

struct Pending {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    reply: Reply,
}

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT_REQUESTS);
    let read_side = async {
        if let Err(reason) = read_requests(&broker, &mut reader, &tx, peer).await {
            tracing::warn!(%peer, %reason, "closing connection");
        }
        drop(tx);
    };
    let write_side = async {
        let mut in_flight = FuturesOrdered::new();
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                Some(out) = in_flight.next(), if !in_flight.is_empty() => {
                    let out: Option<Vec<Bytes>> = out;
                    if let Some(mut chunks) = out {
                        if let Err(e) = write_chunks(&mut writer, &mut chunks).await {
                            tracing::debug!(%peer, error = %e, "write failed");
                            return;
                        }
                    }
                }
                next = rx.recv(), if open && in_flight.len() < MAX_IN_FLIGHT_REQUESTS => match next {
                    Some(p) => in_flight.push_back(respond(p)),
                    None => open = false,
                },
                else => return,
            }
            if !open && in_flight.is_empty() {
                let _ = writer.shutdown().await;
                return;
            }
        }
    };
    tokio::join!(read_side, write_side);
}

/// Chunks of one response written at most this many at a time (well under `IOV_MAX`).
const WRITE_CHUNKS_MAX: usize = 64;

/// Writes `chunks` in order with vectored writes, so the record data of a Fetch response
/// goes from the log's memory maps straight to the socket.
async fn write_chunks(
    writer: &mut (impl AsyncWrite + Unpin),
    chunks: &mut [Bytes],
) -> std::io::Result<()> {
    let mut first = 0;
    loop {
        while chunks.get(first).is_some_and(Bytes::is_empty) {
            first += 1;
        }
        if first == chunks.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(WRITE_CHUNKS_MAX)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[first];
            let n = written.min(chunk.len());
            chunk.advance(n);
            written -= n;
            if chunk.is_empty() {
                first += 1;
            }
        }
    }
}

/// Turns a handler's reply into the encoded response chunks (None = send nothing).
fn respond(p: Pending) -> futures::future::BoxFuture<'static, Option<Vec<Bytes>>> {
    let Pending {
        correlation_id,
        api_key,
        version,
        reply,
    } = p;
    let encode = move |body: ResponseKind| match codec::encode_response_chunks(
        correlation_id,
        api_key,
        version,
        &body,
    ) {
        Ok(chunks) => Some(chunks),
        Err(e) => {
            tracing::error!(api = api_name(api_key), version, error = %e, "cannot encode response");
            None
        }
    };
    match reply {
        Reply::Now(body) => futures::future::ready(encode(body)).boxed(),
        Reply::Later(fut) => fut.map(encode).boxed(),
        Reply::Nothing | Reply::Close(_) => futures::future::ready(None).boxed(),
    }
}

async fn read_requests(
    broker: &Arc<Broker>,
    reader: &mut (impl AsyncRead + Unpin),
    tx: &mpsc::Sender<Pending>,
    peer: SocketAddr,
) -> Result<(), String> {
    let idle = Duration::from_millis(broker.node.connections_max_idle_ms);
    loop {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        match tokio::time::timeout(idle, reader.read_exact(&mut prefix)).await {
            Err(_) => {
                return Err(format!(
                    "idle for {} ms (connections.max.idle.ms)",
                    idle.as_millis()
                ))
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
        let len =
            frame::body_length(prefix, broker.node.max_frame_bytes).map_err(|e| e.to_string())?;
        // The whole frame must arrive within the idle limit too, so a client cannot hold a
        // buffer open by trickling bytes.
        let body = match tokio::time::timeout(idle, read_body(reader, len)).await {
            Ok(body) => body?,
            Err(_) => {
                return Err(format!(
                    "a {len}-byte frame did not arrive within {} ms",
                    idle.as_millis()
                ))
            }
        };
        let preamble = codec::peek_preamble(&body).map_err(|e| e.to_string())?;
        let Some(api) = dispatch::find(preamble.api_key) else {
            return Err(format!(
                "unknown api key {} (correlation id {})",
                preamble.api_key, preamble.correlation_id
            ));
        };
        let pending = if !api.supports(preamble.api_version) {
            if api.key != ApiKey::ApiVersions {
                return Err(format!(
                    "{} v{} is not supported (supported: v{}-v{})",
                    api_name(api.key),
                    preamble.api_version,
                    api.versions.min,
                    api.versions.max
                ));
            }
            // Kafka answers an ApiVersions it cannot parse in v0 form so the client can retry.
            Pending {
                correlation_id: preamble.correlation_id,
                api_key: ApiKey::ApiVersions,
                version: 0,
                reply: Reply::Now(api_versions::unsupported_version()),
            }
        } else {
            let request = codec::decode_request(body, api.key, preamble.api_version)
                .map_err(|e| e.to_string())?;
            let context = dispatch::RequestContext {
                header: request.header,
                peer,
            };
            let reply = (api.handler)(broker, &context, request.body);
            if let Reply::Close(reason) = reply {
                return Err(reason);
            }
            Pending {
                correlation_id: preamble.correlation_id,
                api_key: api.key,
                version: preamble.api_version,
                reply,
            }
        };
        if tx.send(pending).await.is_err() {
            return Ok(());
        }
    }
}

async fn read_body(reader: &mut (impl AsyncRead + Unpin), len: usize) -> Result<Bytes, String> {
    match frame_buffers::read_frame(reader, len).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(got)) => Err(format!(
            "connection closed after {got} of {len} frame bytes"
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_arrive_whole_and_in_order_through_partial_writes() {
        // A 7-byte pipe makes every vectored write partial, often mid-chunk; more empty
        // chunks than one vectored write takes come first.
        let (mut tx, mut rx) = tokio::io::duplex(7);
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut chunks = vec![Bytes::new(); WRITE_CHUNKS_MAX + 6];
        chunks.extend([
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from(big.clone()),
            Bytes::new(),
            Bytes::from_static(b"xyz"),
            Bytes::new(),
        ]);
        let mut want = b"abc".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"xyz");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).await.unwrap();
            got
        });
        write_chunks(&mut tx, &mut chunks).await.unwrap();
        drop(tx);
        assert_eq!(reader.await.unwrap(), want);
    }
}
