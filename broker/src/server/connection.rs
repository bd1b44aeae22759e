//! One client connection. A reader task frames and decodes requests and runs each handler's
//! ordered part at once (so appends happen in request order, as idempotent producers with
//! several requests in flight require); a writer sends responses in request order as their
//! futures complete. Malformed input is logged and closes this connection only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use isthmus_protocol::codec::{self, api_name};
use isthmus_protocol::frame::{self, FRAME_PREFIX_BYTES};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::dispatch::{self, Reply};
use crate::handlers::api_versions;

/// Requests decoded but not yet answered, per connection. Beyond this the reader stops
/// reading, which pushes back on the client through TCP.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 32;

/// Frames up to this size get their whole buffer at once (a produce request is typically
/// one `batch.size`, about 1 MiB). Larger claims grow the buffer as bytes actually arrive,
/// so a client cannot make the broker reserve `socket.request.max.bytes` by lying.
const FRAME_UPFRONT_BYTES: usize = 4 * 1024 * 1024;

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
                    let out: Option<Bytes> = out;
                    if let Some(bytes) = out {
                        if let Err(e) = writer.write_all(&bytes).await {
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

/// Turns a handler's reply into the encoded response bytes (None = send nothing).
fn respond(p: Pending) -> futures::future::BoxFuture<'static, Option<Bytes>> {
    let Pending {
        correlation_id,
        api_key,
        version,
        reply,
    } = p;
    let encode = move |body: ResponseKind| match codec::encode_response(
        correlation_id,
        api_key,
        version,
        &body,
    ) {
        Ok(bytes) => Some(bytes),
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
    let mut body = BytesMut::with_capacity(len.min(FRAME_UPFRONT_BYTES));
    while body.len() < len {
        // Doubling keeps the number of copies logarithmic while never running more than
        // 2x ahead of what was received.
        let want = (len - body.len()).min(body.capacity().max(FRAME_UPFRONT_BYTES));
        body.reserve(want);
        let n = (&mut *reader)
            .take(want as u64)
            .read_buf(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed after {} of {len} frame bytes",
                body.len()
            ));
        }
    }
    Ok(body.freeze())
}
