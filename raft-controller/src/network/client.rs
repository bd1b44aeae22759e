//! The client side: openraft's `RaftNetworkFactory` / `RaftNetwork` over [`PeerClient`],
//! one lazily (re)connected TCP connection per client.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, RPCTypes, Snapshot};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::{
    read_frame, write_frame, Request, Response, CONNECT_TIMEOUT_MS, FRAME_BYTES_MAX, RPC_MAGIC,
    SNAPSHOT_CHUNK_BYTES,
};
use crate::types::{Node, TypeConfig, Vote};
use crate::NodeId;

/// How a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Could not connect or was refused at hello: back off.
    Unreachable(String),
    /// The connection broke mid-call.
    Network(String),
    Timeout,
    /// The request is too large for one frame.
    TooLarge,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(s) => write!(f, "unreachable: {s}"),
            CallError::Network(s) => write!(f, "network: {s}"),
            CallError::Timeout => write!(f, "timed out"),
            CallError::TooLarge => write!(f, "request larger than {FRAME_BYTES_MAX} bytes"),
        }
    }
}

impl std::error::Error for CallError {}

struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A connection to one peer controller.
pub(crate) struct PeerClient {
    cluster_id: Arc<str>,
    self_id: NodeId,
    target: NodeId,
    addr: String,
    conn: Option<Conn>,
}

impl PeerClient {
    pub(crate) fn new(cluster_id: Arc<str>, self_id: NodeId, target: NodeId, addr: String) -> Self {
        PeerClient {
            cluster_id,
            self_id,
            target,
            addr,
            conn: None,
        }
    }

    async fn connect(&mut self, timeout: Duration) -> Result<&mut Conn, CallError> {
        if self.conn.is_none() {
            let connect_timeout = timeout.min(Duration::from_millis(CONNECT_TIMEOUT_MS));
            let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&self.addr))
                .await
                .map_err(|_| CallError::Unreachable(format!("connect to {} timed out", self.addr)))?
                .map_err(|e| CallError::Unreachable(format!("connect to {}: {e}", self.addr)))?;
            let _ = stream.set_nodelay(true);
            let (r, w) = stream.into_split();
            let mut conn = Conn {
                reader: BufReader::new(r),
                writer: w,
            };
            let hello = Request::Hello {
                cluster_id: self.cluster_id.to_string(),
                from: self.self_id,
                to: self.target,
            };
            let reply = tokio::time::timeout(timeout, async {
                conn.writer.write_all(&RPC_MAGIC).await?;
                write_frame(&mut conn.writer, &hello, &[]).await?;
                read_frame::<_, Response>(&mut conn.reader).await
            })
            .await
            .map_err(|_| CallError::Unreachable(format!("hello to {} timed out", self.addr)))?
            .map_err(|e| CallError::Unreachable(format!("hello to {}: {e}", self.addr)))?;
            match reply {
                Some((Response::Hello(Ok(())), _)) => {}
                Some((Response::Hello(Err(why)), _)) => {
                    tracing::warn!(peer = self.target, addr = %self.addr, %why, "controller refused our hello");
                    return Err(CallError::Unreachable(format!(
                        "{} refused us: {why}",
                        self.addr
                    )));
                }
                other => {
                    return Err(CallError::Unreachable(format!(
                        "{} answered hello with {other:?}",
                        self.addr
                    )))
                }
            }
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| CallError::Unreachable("no connection".into()))
    }

    /// Sends one request and waits for its response, all within `timeout`. Any failure
    /// drops the connection; the next call reconnects.
    pub(crate) async fn call(
        &mut self,
        req: &Request,
        raw: &[u8],
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.call_raw(req, raw, timeout).await.map(|(resp, _)| resp)
    }

    /// [`PeerClient::call`], also returning the response frame's raw part.
    pub(crate) async fn call_raw(
        &mut self,
        req: &Request,
        raw: &[u8],
        timeout: Duration,
    ) -> Result<(Response, Vec<u8>), CallError> {
        let res = tokio::time::timeout(timeout, async {
            let conn = self.connect(timeout).await?;
            write_frame(&mut conn.writer, req, raw).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    CallError::TooLarge
                } else {
                    CallError::Network(e.to_string())
                }
            })?;
            match read_frame::<_, Response>(&mut conn.reader).await {
                Ok(Some(answer)) => Ok(answer),
                Ok(None) => Err(CallError::Network("connection closed by peer".into())),
                Err(e) => Err(CallError::Network(e.to_string())),
            }
        })
        .await;
        let res = res.unwrap_or(Err(CallError::Timeout));
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
        action: RPCTypes,
        ttl: Duration,
    ) -> RPCError<NodeId, Node, E> {
        match e {
            CallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(_) => RPCError::Network(NetworkError::new(&e)),
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.self_id,
                target: self.target,
                timeout: ttl,
            }),
            CallError::TooLarge => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

/// Builds a [`PeerClient`] per replication stream; addresses come from the configured
/// voters first (so a changed address in the config wins), then from the membership.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) cluster_id: Arc<str>,
    pub(crate) self_id: NodeId,
    pub(crate) addrs: Arc<BTreeMap<NodeId, String>>,
    pub(crate) backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> RaftPeer {
        let addr = self
            .addrs
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.addr.clone());
        RaftPeer {
            client: PeerClient::new(self.cluster_id.clone(), self.self_id, target, addr),
            backoff: self.backoff,
        }
    }
}

/// openraft's view of one peer.
pub(crate) struct RaftPeer {
    client: PeerClient,
    backoff: Duration,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let n = rpc.entries.len() as u64;
        let ttl = option.hard_ttl();
        match self
            .client
            .call(&Request::AppendEntries(rpc), &[], ttl)
            .await
        {
            Ok(Response::AppendEntries(Ok(r))) => Ok(r),
            Ok(Response::AppendEntries(Err(e))) => Err(RPCError::RemoteError(RemoteError::new(
                self.client.target,
                e,
            ))),
            Ok(other) => Err(unexpected(other)),
            Err(CallError::TooLarge) if n > 1 => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(n / 2),
            )),
            Err(e) => Err(self.client.rpc_error(e, RPCTypes::AppendEntries, ttl)),
        }
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, openraft::error::InstallSnapshotError> {
        // Snapshots go through `full_snapshot` below; openraft's chunked InstallSnapshot
        // is not used.
        Err(RPCError::Network(NetworkError::new(&AnyError::error(
            "InstallSnapshot RPC is not used; snapshots go by full_snapshot",
        ))))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let ttl = option.hard_ttl();
        match self.client.call(&Request::Vote(rpc), &[], ttl).await {
            Ok(Response::Vote(Ok(r))) => Ok(r),
            Ok(Response::Vote(Err(e))) => Err(RPCError::RemoteError(RemoteError::new(
                self.client.target,
                e,
            ))),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(self.client.rpc_error(e, RPCTypes::Vote, ttl)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let data = snapshot.snapshot.into_inner();
        let total = data.len() as u64;
        let ttl = option.hard_ttl();
        tokio::pin!(cancel);
        let mut offset = 0usize;
        loop {
            let end = (offset + SNAPSHOT_CHUNK_BYTES).min(data.len());
            let done = end == data.len();
            let req = Request::SnapshotChunk {
                vote,
                meta: snapshot.meta.clone(),
                offset: offset as u64,
                total_bytes: total,
                done,
            };
            let res = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                res = self.client.call(&req, &data[offset..end], ttl) => res,
            };
            match res {
                Ok(Response::SnapshotChunk(Ok(Some(resp)))) => return Ok(resp),
                Ok(Response::SnapshotChunk(Ok(None))) if !done => offset = end,
                Ok(Response::SnapshotChunk(Err(why))) => {
                    self.client.conn = None;
                    return Err(StreamingError::Network(NetworkError::new(
                        &AnyError::error(format!(
                            "peer {} refused the snapshot: {why}",
                            self.client.target
                        )),
                    )));
                }
                Ok(other) => {
                    self.client.conn = None;
                    return Err(StreamingError::Network(NetworkError::new(
                        &AnyError::error(format!(
                            "unexpected answer to a snapshot chunk: {other:?}"
                        )),
                    )));
                }
                Err(e @ CallError::Timeout) => {
                    let _ = e;
                    return Err(StreamingError::Timeout(Timeout {
                        action: RPCTypes::InstallSnapshot,
                        id: self.client.self_id,
                        target: self.client.target,
                        timeout: ttl,
                    }));
                }
                Err(e @ CallError::Unreachable(_)) => {
                    return Err(StreamingError::Unreachable(Unreachable::new(&e)))
                }
                Err(e) => return Err(StreamingError::Network(NetworkError::new(&e))),
            }
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}

fn unexpected<E: std::error::Error>(resp: Response) -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::new(&AnyError::error(format!(
        "unexpected controller RPC answer: {resp:?}"
    ))))
}
