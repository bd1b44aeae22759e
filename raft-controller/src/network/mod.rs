//! Controller RPC over TCP.
//!
//! # Frames
//! `total_len: u32 BE | json_len: u32 BE | json | raw bytes`, where `total_len` counts
//! everything after itself and is at most [`FRAME_BYTES_MAX`] (checked before any
//! allocation). The JSON is a [`Request`] or a [`Response`]; the raw bytes carry snapshot
//! chunks so they are not blown up by JSON.
//!
//! # Conversation
//! A client opens a connection, writes [`RPC_MAGIC`] (so the controller listener can
//! tell this RPC from Kafka requests on the same port: as a Kafka length it would be a
//! 1.2 GB frame, which no Kafka client sends), sends `Hello` (cluster id, its id, the id it expects to
//! reach) and then one request at a time, each answered by one response. A server
//! refuses a connection from another cluster or meant for another node.
//!
//! - `AppendEntries`, `Vote`: openraft's messages, answered by the local Raft.
//! - `SnapshotChunk`: a full snapshot in chunks of [`SNAPSHOT_CHUNK_BYTES`]; the last
//!   one installs it (`Raft::install_full_snapshot`).
//! - `Propose`: a non-leader (or a broker) forwards a proposal to the leader.
//! - `FetchMetadata`: a broker pulls committed records (or the whole image when it is
//!   too far behind) from the leader, long-polling for new ones.
//! - `QuorumStatus`: what DescribeQuorum shows, from the answering node's view.

pub(crate) mod client;
pub(crate) mod server;

use std::io;

use openraft::error::RaftError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::controller::QuorumStatus;
use crate::error::Rejection;
use crate::records::MetadataProposal;
use crate::types::{SnapshotMeta, TypeConfig, Vote};
use crate::NodeId;

/// First bytes of every controller RPC connection ("ISRC").
pub const RPC_MAGIC: [u8; 4] = *b"ISRC";
/// Bound on the encoded proposals of one `FetchMetadata` answer (well inside a frame).
pub const FETCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bound on how long a `FetchMetadata` waits for new records.
pub const FETCH_WAIT_MS_MAX: u64 = 5_000;

/// Bound on one frame (request or response).
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Snapshot bytes per chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Bound on establishing a TCP connection to a peer.
pub const CONNECT_TIMEOUT_MS: u64 = 3000;
/// Bound on inbound connections served at once.
pub const INBOUND_CONNECTIONS_MAX: usize = 64;
/// An inbound connection idle this long is closed.
pub const IDLE_TIMEOUT_MS: u64 = 120_000;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Hello {
        cluster_id: String,
        from: NodeId,
        to: NodeId,
    },
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    /// The chunk's bytes travel as the frame's raw part.
    SnapshotChunk {
        vote: Vote,
        meta: SnapshotMeta,
        offset: u64,
        total_bytes: u64,
        done: bool,
    },
    Propose(MetadataProposal),
    /// Records after `after_revision`, waiting up to `max_wait_ms` for some.
    FetchMetadata {
        after_revision: u64,
        max_wait_ms: u64,
    },
    QuorumStatus,
}

/// Committed metadata after a broker's revision: the entries that changed the image, or
/// (when the leader no longer keeps entries that old) the whole image as raw bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetadataDelta {
    /// The leader that answered.
    pub leader: NodeId,
    /// The revision the receiver is at after applying this answer.
    pub revision: u64,
    /// Applied proposals by revision, ascending (entries that changed nothing, such as
    /// Raft's blank entries and refused proposals, are left out).
    pub entries: Vec<(u64, MetadataProposal)>,
    /// The image itself travels in the frame's raw part.
    pub snapshot: bool,
}

/// Why a forwarded proposal failed on the leader.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ProposeError {
    Rejected(Rejection),
    NotLeader {
        leader: Option<NodeId>,
        leader_addr: Option<String>,
    },
    Other(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Hello(Result<(), String>),
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// `None` acknowledges a chunk; `Some` ends the transfer (installed, or refused
    /// because the receiver has a newer vote).
    SnapshotChunk(Result<Option<SnapshotResponse<NodeId>>, String>),
    Propose(Result<u64, ProposeError>),
    /// With `snapshot: true` the frame's raw part holds the image's snapshot bytes.
    FetchMetadata(Result<MetadataDelta, ProposeError>),
    QuorumStatus(Box<QuorumStatus>),
    /// The request could not be served at all (bad frame, wrong order).
    Error(String),
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Writes one frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
    raw: &[u8],
) -> io::Result<()> {
    let json =
        serde_json::to_vec(msg).map_err(|e| invalid(format!("encoding a controller RPC: {e}")))?;
    let total = 4 + json.len() + raw.len();
    if total > FRAME_BYTES_MAX {
        return Err(invalid(format!(
            "frame of {total} bytes exceeds {FRAME_BYTES_MAX}"
        )));
    }
    let mut buf = Vec::with_capacity(8 + json.len() + raw.len());
    buf.extend_from_slice(&(total as u32).to_be_bytes());
    buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
    buf.extend_from_slice(&json);
    buf.extend_from_slice(raw);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub(crate) async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let total = u32::from_be_bytes(len) as usize;
    if !(4..=FRAME_BYTES_MAX).contains(&total) {
        return Err(invalid(format!(
            "frame length {total} outside 4..={FRAME_BYTES_MAX}"
        )));
    }
    let mut body = vec![0u8; total];
    r.read_exact(&mut body).await?;
    let json_len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if json_len > total - 4 {
        return Err(invalid(format!(
            "JSON length {json_len} beyond the frame of {total}"
        )));
    }
    let msg = serde_json::from_slice(&body[4..4 + json_len])
        .map_err(|e| invalid(format!("decoding a controller RPC: {e}")))?;
    let raw = body.split_off(4 + json_len);
    Ok(Some((msg, raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bounds_are_checked() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let msg = Response::Error("x".into());
        write_frame(&mut a, &msg, b"raw").await.unwrap();
        let (back, raw): (Response, Vec<u8>) = read_frame(&mut b).await.unwrap().unwrap();
        assert!(matches!(back, Response::Error(s) if s == "x"));
        assert_eq!(raw, b"raw");

        // A length beyond the bound is refused before allocating.
        a.write_all(&((FRAME_BYTES_MAX + 1) as u32).to_be_bytes())
            .await
            .unwrap();
        let e = read_frame::<_, Response>(&mut b).await.unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");

        let big = vec![0u8; FRAME_BYTES_MAX];
        let e = write_frame(&mut a, &msg, &big).await.unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");

        drop(a);
        assert!(read_frame::<_, Response>(&mut b).await.unwrap().is_none());
    }
}
