//! [`ControllerClient`]: how a broker (or any non-voter) reaches the active controller
//! over controller RPC — pulling committed metadata, forwarding proposals, reading the
//! quorum status. It finds the leader by asking voters and following their hints.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Voter;
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::network::client::{CallError, PeerClient};
use crate::network::{MetadataDelta, ProposeError, Request, Response, FETCH_WAIT_MS_MAX};
use crate::records::{MetadataProposal, MetadataRecord};
use crate::{NodeId, QuorumStatus};

/// Pause before asking again when no voter knows a leader (an election is running).
const NO_LEADER_BACKOFF_MS: u64 = 100;
/// Bound on one call to one voter beyond the long-poll wait.
const CALL_TIMEOUT_MS: u64 = 5_000;

/// What one metadata pull brought.
#[derive(Debug)]
pub struct PulledMetadata {
    pub leader: NodeId,
    /// The revision reached once `entries` (or `image`) are applied.
    pub revision: u64,
    pub entries: Vec<(u64, MetadataProposal)>,
    /// Set when the leader sent its whole image instead of entries.
    pub image: Option<MetadataImage>,
}

/// A client of the controller quorum. Cheap to share (`Arc`); calls may run concurrently.
pub struct ControllerClient {
    cluster_id: Arc<str>,
    self_id: NodeId,
    voters: BTreeMap<NodeId, String>,
    leader: Mutex<Option<NodeId>>,
    /// Idle connections per voter.
    idle: Mutex<BTreeMap<NodeId, Vec<PeerClient>>>,
    /// Rotates through voters while no leader is known.
    next_voter: Mutex<usize>,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("self_id", &self.self_id)
            .field("voters", &self.voters)
            .finish_non_exhaustive()
    }
}

impl ControllerClient {
    /// A client for node `self_id` of cluster `cluster_id`, reaching the given voters.
    pub fn new(cluster_id: &str, self_id: NodeId, voters: &[Voter]) -> ControllerClient {
        ControllerClient {
            cluster_id: Arc::from(cluster_id),
            self_id,
            voters: voters.iter().map(|v| (v.id, v.addr())).collect(),
            leader: Mutex::new(None),
            idle: Mutex::new(BTreeMap::new()),
            next_voter: Mutex::new(0),
        }
    }

    /// The leader this client last heard of.
    pub fn leader_hint(&self) -> Option<NodeId> {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address of voter `id` as configured.
    pub fn voter_addr(&self, id: NodeId) -> Option<&str> {
        self.voters.get(&id).map(String::as_str)
    }

    fn set_leader(&self, leader: Option<NodeId>) {
        let leader = leader.filter(|l| self.voters.contains_key(l));
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = leader;
    }

    fn pick_target(&self) -> NodeId {
        if let Some(l) = self.leader_hint() {
            return l;
        }
        let mut next = self.next_voter.lock().unwrap_or_else(|p| p.into_inner());
        let ids: Vec<NodeId> = self.voters.keys().copied().collect();
        let id = ids[*next % ids.len().max(1)];
        *next = next.wrapping_add(1);
        id
    }

    /// Sends `req` to the leader (found by following hints) until it answers with
    /// something other than "not the leader", or `timeout` passes.
    async fn call_leader(
        &self,
        req: &Request,
        timeout: Duration,
    ) -> Result<(Response, Vec<u8>), ControllerError> {
        let deadline = Instant::now() + timeout;
        let mut last_error = String::from("no voter answered");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ControllerError::Timeout(format!(
                    "no active controller answered within {} ms ({last_error})",
                    timeout.as_millis()
                )));
            }
            let target = self.pick_target();
            let Some(addr) = self.voters.get(&target).cloned() else {
                return Err(ControllerError::Config(
                    "no controller voters configured".into(),
                ));
            };
            let mut conn = self
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&target)
                .and_then(Vec::pop)
                .unwrap_or_else(|| {
                    PeerClient::new(self.cluster_id.clone(), self.self_id, target, addr.clone())
                });
            let per_call =
                (deadline - now).min(Duration::from_millis(CALL_TIMEOUT_MS + FETCH_WAIT_MS_MAX));
            let res = conn.call_raw(req, &[], per_call).await;
            tracing::debug!(target_node = target, ok = res.is_ok(), error = ?res.as_ref().err(), "controller call");
            match res {
                Ok((resp, raw)) => {
                    self.idle
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(target)
                        .or_default()
                        .push(conn);
                    let hint = match &resp {
                        Response::FetchMetadata(Err(ProposeError::NotLeader {
                            leader, ..
                        }))
                        | Response::Propose(Err(ProposeError::NotLeader { leader, .. })) => {
                            Some(*leader)
                        }
                        _ => None,
                    };
                    match hint {
                        Some(Some(l)) if l != target => {
                            self.set_leader(Some(l));
                            last_error = format!("{target} pointed to {l}");
                        }
                        Some(_) => {
                            self.set_leader(None);
                            last_error = format!("{target} knows no leader");
                            tokio::time::sleep(Duration::from_millis(NO_LEADER_BACKOFF_MS)).await;
                        }
                        None => {
                            if !matches!(resp, Response::QuorumStatus(_)) {
                                self.set_leader(Some(target));
                            }
                            return Ok((resp, raw));
                        }
                    }
                }
                Err(e) => {
                    self.set_leader(None);
                    last_error = format!("controller {target} at {addr}: {e}");
                    if !matches!(e, CallError::Timeout) {
                        tokio::time::sleep(Duration::from_millis(NO_LEADER_BACKOFF_MS)).await;
                    }
                }
            }
        }
    }

    /// Pulls the committed metadata after `after_revision` from the leader, waiting up
    /// to `max_wait` for something new (an empty answer when nothing came).
    pub async fn pull(
        &self,
        after_revision: u64,
        max_wait: Duration,
        timeout: Duration,
    ) -> Result<PulledMetadata, ControllerError> {
        let req = Request::FetchMetadata {
            after_revision,
            max_wait_ms: max_wait.as_millis() as u64,
        };
        match self.call_leader(&req, timeout).await? {
            (Response::FetchMetadata(Ok(delta)), raw) => decode_delta(delta, &raw),
            (Response::FetchMetadata(Err(e)), _) => Err(propose_error(e)),
            (other, _) => Err(ControllerError::Network(format!(
                "unexpected answer to a metadata pull: {other:?}"
            ))),
        }
    }

    /// Commits `records` through the leader; returns their revision.
    pub async fn propose(
        &self,
        records: Vec<MetadataRecord>,
        timeout: Duration,
    ) -> Result<u64, ControllerError> {
        let req = Request::Propose(MetadataProposal::new(records));
        match self.call_leader(&req, timeout).await? {
            (Response::Propose(Ok(revision)), _) => Ok(revision),
            (Response::Propose(Err(e)), _) => Err(propose_error(e)),
            (other, _) => Err(ControllerError::Network(format!(
                "unexpected answer to a proposal: {other:?}"
            ))),
        }
    }

    /// The leader's view of the quorum (DescribeQuorum).
    pub async fn quorum_status(&self, timeout: Duration) -> Result<QuorumStatus, ControllerError> {
        match self.call_leader(&Request::QuorumStatus, timeout).await? {
            (Response::QuorumStatus(s), _) if s.is_leader => Ok(*s),
            (Response::QuorumStatus(s), _) => {
                // Asked a follower: go to the leader it names, once.
                if let Some(l) = s.leader.filter(|l| *l != s.node_id) {
                    self.set_leader(Some(l));
                    if let (Response::QuorumStatus(s), _) =
                        self.call_leader(&Request::QuorumStatus, timeout).await?
                    {
                        return Ok(*s);
                    }
                }
                Ok(*s)
            }
            (other, _) => Err(ControllerError::Network(format!(
                "unexpected answer to a quorum status request: {other:?}"
            ))),
        }
    }
}

fn decode_delta(delta: MetadataDelta, raw: &[u8]) -> Result<PulledMetadata, ControllerError> {
    let image = if delta.snapshot {
        Some(MetadataImage::from_snapshot_bytes(raw).map_err(|e| {
            ControllerError::Network(format!("the leader's image does not decode: {e}"))
        })?)
    } else {
        None
    };
    Ok(PulledMetadata {
        leader: delta.leader,
        revision: delta.revision,
        entries: delta.entries,
        image,
    })
}

fn propose_error(e: ProposeError) -> ControllerError {
    match e {
        ProposeError::Rejected(r) => ControllerError::Rejected(r),
        ProposeError::NotLeader {
            leader,
            leader_addr,
        } => ControllerError::NotLeader {
            leader,
            leader_addr,
        },
        ProposeError::Other(s) => ControllerError::Raft(s),
    }
}
