//! The server side: accepts peer connections and answers their requests from the local
//! Raft (and, for `Propose`, from the controller's leader path).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use openraft::storage::Snapshot;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{
    read_frame, write_frame, MetadataDelta, ProposeError, Request, Response, FETCH_BYTES_MAX,
    FETCH_WAIT_MS_MAX, IDLE_TIMEOUT_MS, INBOUND_CONNECTIONS_MAX, RPC_MAGIC,
};
use crate::controller::{leader_propose, quorum_status};
use crate::error::ControllerError;
use crate::storage::state_machine::Catchup;
use crate::storage::state_machine::{StateMachineStore, SNAPSHOT_BYTES_MAX};
use crate::types::{Raft, SnapshotMeta, Vote};
use crate::NodeId;

/// Serves a Kafka-protocol connection that arrived on the controller listener (the
/// embedding broker crate speaks Kafka; this crate only tells the two apart).
pub type KafkaConnHandler = Arc<dyn Fn(TcpStream, SocketAddr) + Send + Sync>;

/// Bound on waiting for a new connection's first four bytes.
const FIRST_BYTES_TIMEOUT_MS: u64 = 10_000;

/// What a connection handler needs.
pub(crate) struct ServerCtx {
    pub(crate) cluster_id: String,
    pub(crate) node_id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) sm: StateMachineStore,
    pub(crate) request_timeout: Duration,
    pub(crate) addrs: Arc<BTreeMap<NodeId, String>>,
    pub(crate) observers: Arc<Observers>,
    pub(crate) kafka: RwLock<Option<KafkaConnHandler>>,
}

/// Brokers (non-voters) that pull metadata from this node, with the revision each asked
/// after and when: DescribeQuorum's observers.
#[derive(Default)]
pub(crate) struct Observers {
    seen: Mutex<BTreeMap<NodeId, (u64, SystemTime)>>,
}

/// An observer not heard from for this long is no longer listed.
const OBSERVER_FORGET_MS: u64 = 5 * 60 * 1000;

impl Observers {
    fn record(&self, id: NodeId, revision: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(id, (revision, SystemTime::now()));
        let horizon = SystemTime::now() - Duration::from_millis(OBSERVER_FORGET_MS);
        seen.retain(|_, (_, at)| *at >= horizon);
    }

    /// Observers by id: revision they had and the time of their last fetch.
    pub(crate) fn snapshot(&self) -> Vec<(NodeId, u64, SystemTime)> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().map(|(id, (r, at))| (*id, *r, *at)).collect()
    }
}

/// Accepts connections until `shutdown` turns true; then closes the listener and every
/// connection.
pub(crate) async fn serve(
    listener: TcpListener,
    ctx: Arc<ServerCtx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "controller listener accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, limit = INBOUND_CONNECTIONS_MAX, "too many controller connections; refusing one");
                    continue;
                };
                let ctx = ctx.clone();
                conns.spawn(async move {
                    match is_rpc(&stream).await {
                        Ok(true) => {
                            if let Err(e) = handle_conn(stream, &ctx).await {
                                tracing::debug!(%peer, error = %e, "controller connection closed");
                            }
                        }
                        Ok(false) => {
                            let handler = ctx.kafka.read().unwrap_or_else(|p| p.into_inner()).clone();
                            match handler {
                                Some(h) => h(stream, peer),
                                None => tracing::debug!(%peer, "a Kafka connection on the controller listener before it serves Kafka; closed"),
                            }
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "controller connection closed before its first bytes"),
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    conns.shutdown().await;
}

struct Receiving {
    vote: Vote,
    meta: SnapshotMeta,
    total_bytes: u64,
    buf: Vec<u8>,
}

/// Whether the connection starts with [`RPC_MAGIC`] (then consumed) rather than a Kafka
/// request.
async fn is_rpc(stream: &TcpStream) -> std::io::Result<bool> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(FIRST_BYTES_TIMEOUT_MS);
    let mut first = [0u8; 4];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut first))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if first[..n] != RPC_MAGIC[..n] {
            return Ok(false);
        }
        if n == 4 {
            break;
        }
        // Only part of the magic so far: wait for the rest.
        if tokio::time::Instant::now() >= deadline {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut consumed = [0u8; 4];
    let mut read = 0;
    while read < 4 {
        stream.readable().await?;
        match stream.try_read(&mut consumed[read..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

async fn handle_conn(stream: TcpStream, ctx: &ServerCtx) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut peer_id: NodeId = 0;
    let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
    let mut greeted = false;
    let mut receiving: Option<Receiving> = None;
    loop {
        let frame = match tokio::time::timeout(idle, read_frame::<_, Request>(&mut r)).await {
            Err(_) => return Ok(()),
            Ok(f) => f?,
        };
        let Some((req, raw)) = frame else {
            return Ok(());
        };
        let resp = match req {
            Request::Hello {
                cluster_id,
                from,
                to,
            } => {
                let verdict = if cluster_id != ctx.cluster_id {
                    Err(format!(
                        "cluster id {cluster_id} is not this cluster's ({})",
                        ctx.cluster_id
                    ))
                } else if to != ctx.node_id {
                    Err(format!("this is controller {}, not {to}", ctx.node_id))
                } else {
                    Ok(())
                };
                if let Err(why) = &verdict {
                    tracing::warn!(from, %why, "refusing a controller connection");
                }
                greeted = verdict.is_ok();
                peer_id = from;
                let refused = verdict.is_err();
                write_frame(&mut w, &Response::Hello(verdict), &[]).await?;
                if refused {
                    return Ok(());
                }
                continue;
            }
            _ if !greeted => {
                write_frame(&mut w, &Response::Error("hello first".into()), &[]).await?;
                return Ok(());
            }
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(ctx.raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(ctx.raft.vote(rpc).await),
            Request::SnapshotChunk {
                vote,
                meta,
                offset,
                total_bytes,
                done,
            } => Response::SnapshotChunk(
                snapshot_chunk(
                    ctx,
                    &mut receiving,
                    vote,
                    meta,
                    offset,
                    total_bytes,
                    done,
                    raw,
                )
                .await,
            ),
            Request::Propose(proposal) => {
                let res = tokio::time::timeout(
                    ctx.request_timeout,
                    leader_propose(&ctx.raft, &ctx.sm, proposal),
                )
                .await
                .unwrap_or_else(|_| Err(ControllerError::Timeout("commit on the leader".into())));
                Response::Propose(res.map_err(|e| match e {
                    ControllerError::Rejected(r) => ProposeError::Rejected(r),
                    ControllerError::NotLeader {
                        leader,
                        leader_addr,
                    } => ProposeError::NotLeader {
                        leader,
                        leader_addr,
                    },
                    other => ProposeError::Other(other.to_string()),
                }))
            }
            Request::FetchMetadata {
                after_revision,
                max_wait_ms,
            } => {
                let (resp, raw) = fetch_metadata(ctx, peer_id, after_revision, max_wait_ms).await;
                write_frame(&mut w, &resp, &raw).await?;
                continue;
            }
            Request::QuorumStatus => Response::QuorumStatus(Box::new(quorum_status(
                &ctx.raft,
                &ctx.sm,
                &ctx.addrs,
                &ctx.observers,
            ))),
        };
        write_frame(&mut w, &resp, &[]).await?;
    }
}

/// Answers a broker's pull: the leader waits (bounded) until it has something after
/// `after`, then sends the entries or, when they are gone, the image.
async fn fetch_metadata(
    ctx: &ServerCtx,
    from: NodeId,
    after: u64,
    max_wait_ms: u64,
) -> (Response, Vec<u8>) {
    let not_leader = |ctx: &ServerCtx| {
        let m = ctx.raft.metrics().borrow().clone();
        if m.state == openraft::ServerState::Leader {
            return None;
        }
        let leader = m.current_leader.filter(|l| *l != ctx.node_id);
        Some(Response::FetchMetadata(Err(ProposeError::NotLeader {
            leader,
            leader_addr: leader.and_then(|l| ctx.addrs.get(&l).cloned()),
        })))
    };
    if let Some(resp) = not_leader(ctx) {
        return (resp, Vec::new());
    }
    if !ctx.addrs.contains_key(&from) {
        ctx.observers.record(from, after);
    }
    let wait = Duration::from_millis(max_wait_ms.min(FETCH_WAIT_MS_MAX));
    let mut rx = ctx.sm.subscribe();
    let _ = tokio::time::timeout(wait, async {
        loop {
            if rx.borrow_and_update().revision() > after {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    if let Some(resp) = not_leader(ctx) {
        return (resp, Vec::new());
    }
    let leader = ctx.node_id;
    match ctx.sm.catchup(after, FETCH_BYTES_MAX) {
        Catchup::UpToDate => (
            Response::FetchMetadata(Ok(MetadataDelta {
                leader,
                revision: after,
                entries: Vec::new(),
                snapshot: false,
            })),
            Vec::new(),
        ),
        Catchup::Entries { entries, revision } => (
            Response::FetchMetadata(Ok(MetadataDelta {
                leader,
                revision,
                entries: entries
                    .into_iter()
                    .map(|(r, p)| (r, p.as_ref().clone()))
                    .collect(),
                snapshot: false,
            })),
            Vec::new(),
        ),
        Catchup::Image(image) => match image.to_snapshot_bytes() {
            Ok(bytes) => (
                Response::FetchMetadata(Ok(MetadataDelta {
                    leader,
                    revision: image.revision(),
                    entries: Vec::new(),
                    snapshot: true,
                })),
                bytes,
            ),
            Err(e) => (
                Response::FetchMetadata(Err(ProposeError::Other(format!(
                    "encoding the image: {e}"
                )))),
                Vec::new(),
            ),
        },
    }
}

#[allow(clippy::too_many_arguments)]
async fn snapshot_chunk(
    ctx: &ServerCtx,
    receiving: &mut Option<Receiving>,
    vote: Vote,
    meta: SnapshotMeta,
    offset: u64,
    total_bytes: u64,
    done: bool,
    raw: Vec<u8>,
) -> Result<Option<openraft::raft::SnapshotResponse<NodeId>>, String> {
    let my_vote = ctx.raft.metrics().borrow().vote;
    if vote < my_vote {
        // A stale leader: tell it our vote so it steps down.
        *receiving = None;
        return Ok(Some(openraft::raft::SnapshotResponse { vote: my_vote }));
    }
    if total_bytes > SNAPSHOT_BYTES_MAX {
        return Err(format!(
            "snapshot of {total_bytes} bytes exceeds {SNAPSHOT_BYTES_MAX}"
        ));
    }
    if offset == 0 {
        *receiving = Some(Receiving {
            vote,
            meta: meta.clone(),
            total_bytes,
            buf: Vec::new(),
        });
    }
    let Some(rx) = receiving.as_mut() else {
        return Err(format!(
            "chunk at offset {offset} without a transfer in progress"
        ));
    };
    if rx.meta.snapshot_id != meta.snapshot_id || rx.vote != vote || rx.total_bytes != total_bytes {
        *receiving = None;
        return Err("chunk of a different snapshot transfer".into());
    }
    if offset != rx.buf.len() as u64 || rx.buf.len() as u64 + raw.len() as u64 > total_bytes {
        let have = rx.buf.len();
        *receiving = None;
        return Err(format!(
            "chunk at offset {offset} does not follow the {have} bytes received"
        ));
    }
    rx.buf.extend_from_slice(&raw);
    if !done {
        return Ok(None);
    }
    let rx = receiving.take().ok_or("no transfer")?;
    if rx.buf.len() as u64 != rx.total_bytes {
        return Err(format!(
            "snapshot ended at {} of {} bytes",
            rx.buf.len(),
            rx.total_bytes
        ));
    }
    let snapshot = Snapshot {
        meta: rx.meta,
        snapshot: Box::new(Cursor::new(rx.buf)),
    };
    ctx.raft
        .install_full_snapshot(rx.vote, snapshot)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}
