//! The server side: accepts peer connections and answers their requests from the local
//! Raft (and, for `Propose`, from the controller's leader path).

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::Snapshot;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{
    read_frame, write_frame, ProposeError, Request, Response, IDLE_TIMEOUT_MS,
    INBOUND_CONNECTIONS_MAX,
};
use crate::controller::leader_propose;
use crate::error::ControllerError;
use crate::storage::state_machine::{StateMachineStore, SNAPSHOT_BYTES_MAX};
use crate::types::{Raft, SnapshotMeta, Vote};
use crate::NodeId;

/// What a connection handler needs.
pub(crate) struct ServerCtx {
    pub(crate) cluster_id: String,
    pub(crate) node_id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) sm: StateMachineStore,
    pub(crate) request_timeout: Duration,
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
                    if let Err(e) = handle_conn(stream, &ctx).await {
                        tracing::debug!(%peer, error = %e, "controller connection closed");
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

async fn handle_conn(stream: TcpStream, ctx: &ServerCtx) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
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
        };
        write_frame(&mut w, &resp, &[]).await?;
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
