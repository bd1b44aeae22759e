//! Controller node configuration, the voter list (`controller.quorum.voters`), and
//! [`format()`], which initialises a metadata directory.
//!
//! `meta.json` (written by `format`, read by `start`):
//! `{"version":1,"cluster_id":"…","node_id":1,"voters":[{"id":1,"host":"…","port":9093},…]}`

use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ControllerError, IoContext};
use crate::storage::{atomic_write, create_dir_durable};
use crate::NodeId;

const META_FILE: &str = "meta.json";
const META_FORMAT_VERSION: u16 = 1;
/// Bound on a cluster id's length.
const CLUSTER_ID_LEN_MAX: usize = 64;

/// One voter of the metadata quorum: `id@host:port`, as in KRaft's
/// `controller.quorum.voters`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Voter {
    pub id: NodeId,
    pub host: String,
    pub port: u16,
}

impl Voter {
    /// `host:port`, with brackets around an IPv6 literal.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Voter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr())
    }
}

impl FromStr for Voter {
    type Err = ControllerError;

    fn from_str(s: &str) -> Result<Voter, ControllerError> {
        let bad = |why: &str| {
            ControllerError::Config(format!(
                "voter `{s}`: {why}; expected id@host:port, e.g. 1@ctrl-a:9093"
            ))
        };
        let s_trim = s.trim();
        let (id, hostport) = s_trim.split_once('@').ok_or_else(|| bad("missing '@'"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| bad("the id is not a non-negative integer"))?;
        if id > i32::MAX as NodeId {
            return Err(bad("the id does not fit Kafka's int32 node ids"));
        }
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in an IPv6 address"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("missing ':port'"))?;
            (host, port)
        } else {
            hostport
                .rsplit_once(':')
                .ok_or_else(|| bad("missing ':port'"))?
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad("empty or blank host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number in 1..=65535"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Voter {
            id,
            host: host.to_string(),
            port,
        })
    }
}

/// Parses `controller.quorum.voters`: comma-separated `id@host:port`, ids unique.
pub fn parse_voters(s: &str) -> Result<Vec<Voter>, ControllerError> {
    let voters = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Voter::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    check_voters(&voters)?;
    Ok(voters)
}

/// The voters as `controller.quorum.voters` text, sorted by id.
pub fn voters_to_string(voters: &[Voter]) -> String {
    let mut v = voters.to_vec();
    v.sort();
    v.iter().map(Voter::to_string).collect::<Vec<_>>().join(",")
}

fn check_voters(voters: &[Voter]) -> Result<(), ControllerError> {
    if voters.is_empty() {
        return Err(ControllerError::Config(
            "controller.quorum.voters is empty; name at least this node as id@host:port".into(),
        ));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut addrs = std::collections::BTreeSet::new();
    for v in voters {
        if !ids.insert(v.id) {
            return Err(ControllerError::Config(format!(
                "voter id {} appears twice in controller.quorum.voters",
                v.id
            )));
        }
        if !addrs.insert(v.addr()) {
            return Err(ControllerError::Config(format!(
                "voter address {} appears twice in controller.quorum.voters",
                v.addr()
            )));
        }
    }
    Ok(())
}

/// A controller node's configuration.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// `controller.quorum.voters`.
    pub voters: Vec<Voter>,
    /// Where the controller RPC listener binds (may be `0.0.0.0:port`); peers reach this
    /// node at its voter address.
    pub listen_addr: SocketAddr,
    /// `metadata.log.dir`: formatted by [`format()`].
    pub metadata_dir: PathBuf,
    /// When set, must match the formatted cluster id.
    pub cluster_id: Option<String>,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// The leader's heartbeat period; below `election_timeout_min_ms`.
    pub heartbeat_interval_ms: u64,
    /// Bound on one controller RPC (AppendEntries, Vote, one snapshot chunk).
    pub rpc_timeout_ms: u64,
    /// Bound on `propose`: forwarding, commit and the local image catching up.
    pub request_timeout_ms: u64,
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot (for followers slightly behind).
    pub log_entries_kept_after_snapshot: u64,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `auto.leader.rebalance.enable`: move leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds.
    pub leader_imbalance_check_interval_ms: u64,
}

impl ControllerConfig {
    /// A configuration with the default timeouts (KRaft-like: election 1–2 s, heartbeat
    /// 100 ms).
    pub fn new(
        node_id: NodeId,
        voters: Vec<Voter>,
        listen_addr: SocketAddr,
        metadata_dir: impl Into<PathBuf>,
    ) -> Self {
        ControllerConfig {
            node_id,
            voters,
            listen_addr,
            metadata_dir: metadata_dir.into(),
            cluster_id: None,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            heartbeat_interval_ms: 100,
            rpc_timeout_ms: 2000,
            request_timeout_ms: 30_000,
            snapshot_after_entries: 10_000,
            log_entries_kept_after_snapshot: 1000,
            broker_session_timeout_ms: 9000,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
        }
    }

    /// Checks the values a person sets; messages name the setting to fix.
    pub fn validate(&self) -> Result<(), ControllerError> {
        check_voters(&self.voters)?;
        if self.node_id > i32::MAX as NodeId {
            return Err(ControllerError::Config(format!(
                "node.id {} does not fit Kafka's int32 node ids",
                self.node_id
            )));
        }
        if !self.voters.iter().any(|v| v.id == self.node_id) {
            return Err(ControllerError::Config(format!(
                "node.id {} is not among controller.quorum.voters `{}`; this slice runs voters only",
                self.node_id,
                voters_to_string(&self.voters)
            )));
        }
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms >= self.election_timeout_min_ms
        {
            return Err(ControllerError::Config(format!(
                "heartbeat interval {} ms must be above 0 and below the minimum election timeout {} ms",
                self.heartbeat_interval_ms, self.election_timeout_min_ms
            )));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(ControllerError::Config(format!(
                "election timeout range {}..{} ms is empty",
                self.election_timeout_min_ms, self.election_timeout_max_ms
            )));
        }
        if self.rpc_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(ControllerError::Config(
                "RPC and request timeouts must be above 0 ms".into(),
            ));
        }
        if self.broker_session_timeout_ms == 0 || self.leader_imbalance_check_interval_ms == 0 {
            return Err(ControllerError::Config(
                "broker.session.timeout.ms and leader.imbalance.check.interval.seconds must be above 0".into(),
            ));
        }
        if self.snapshot_after_entries == 0 {
            return Err(ControllerError::Config(
                "snapshot_after_entries must be above 0".into(),
            ));
        }
        Ok(())
    }
}

/// What `meta.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaProperties {
    pub version: u16,
    pub cluster_id: String,
    pub node_id: NodeId,
    pub voters: Vec<Voter>,
}

/// Initialises `dir` as node `node_id`'s metadata directory in cluster `cluster_id`
/// with the given voters. Refuses a directory that already holds anything.
pub fn format(
    dir: &Path,
    cluster_id: &str,
    node_id: NodeId,
    voters: &[Voter],
) -> Result<(), ControllerError> {
    if cluster_id.is_empty()
        || cluster_id.len() > CLUSTER_ID_LEN_MAX
        || !cluster_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ControllerError::Config(format!(
            "cluster id `{cluster_id}`: use 1..={CLUSTER_ID_LEN_MAX} of [A-Za-z0-9_-] (Kafka's are base64 UUIDs)"
        )));
    }
    check_voters(voters)?;
    if !voters.iter().any(|v| v.id == node_id) {
        return Err(ControllerError::Config(format!(
            "node id {node_id} is not among the voters `{}`",
            voters_to_string(voters)
        )));
    }
    if dir.exists() {
        let mut entries = fs::read_dir(dir).at(dir)?;
        if entries.next().is_some() {
            return Err(ControllerError::DirectoryNotEmpty {
                path: dir.to_path_buf(),
            });
        }
    }
    create_dir_durable(dir)?;
    let mut sorted = voters.to_vec();
    sorted.sort();
    let meta = MetaProperties {
        version: META_FORMAT_VERSION,
        cluster_id: cluster_id.to_string(),
        node_id,
        voters: sorted,
    };
    let bytes =
        serde_json::to_vec_pretty(&meta).map_err(|e| ControllerError::Config(e.to_string()))?;
    atomic_write(dir, META_FILE, &bytes)
}

/// Whether `dir` holds a formatted controller (`meta.json`). The default single-node
/// broker, its own only voter, may [`format()`] an empty directory when this is false.
pub fn is_formatted(dir: &Path) -> bool {
    dir.join(META_FILE).is_file()
}

/// Reads `meta.json` and checks it against `config`.
pub(crate) fn load_and_check_meta(
    config: &ControllerConfig,
) -> Result<MetaProperties, ControllerError> {
    let dir = &config.metadata_dir;
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ControllerError::NotFormatted { path: dir.clone() })
        }
        Err(e) => return Err(ControllerError::io(&path, e)),
    };
    let meta: MetaProperties = serde_json::from_slice(&bytes)
        .map_err(|e| ControllerError::corrupt(&path, format!("cannot decode: {e}")))?;
    if meta.version != META_FORMAT_VERSION {
        return Err(ControllerError::corrupt(
            &path,
            format!(
                "meta format version {} (this node reads {META_FORMAT_VERSION})",
                meta.version
            ),
        ));
    }
    if meta.node_id != config.node_id {
        return Err(ControllerError::IdentityMismatch {
            what: "node.id",
            configured: config.node_id.to_string(),
            stored: meta.node_id.to_string(),
            path,
        });
    }
    if let Some(cid) = &config.cluster_id {
        if *cid != meta.cluster_id {
            return Err(ControllerError::IdentityMismatch {
                what: "cluster id",
                configured: cid.clone(),
                stored: meta.cluster_id.clone(),
                path,
            });
        }
    }
    let ids = |v: &[Voter]| {
        v.iter()
            .map(|v| v.id)
            .collect::<std::collections::BTreeSet<_>>()
    };
    if ids(&meta.voters) != ids(&config.voters) {
        return Err(ControllerError::VoterMismatch {
            configured: voters_to_string(&config.voters),
            stored: voters_to_string(&meta.voters),
            path,
        });
    }
    for v in &config.voters {
        if let Some(stored) = meta.voters.iter().find(|s| s.id == v.id) {
            if stored.addr() != v.addr() {
                tracing::warn!(
                    voter = v.id,
                    stored = %stored.addr(),
                    configured = %v.addr(),
                    "voter address differs from the formatted one; using the configured address"
                );
            }
        }
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kraft_voter_lists() {
        let v = parse_voters("1@ctrl-a:9093, 2@10.0.0.2:9093,3@[::1]:9095").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            Voter {
                id: 1,
                host: "ctrl-a".into(),
                port: 9093
            }
        );
        assert_eq!(v[2].host, "::1");
        assert_eq!(v[2].addr(), "[::1]:9095");
        assert_eq!(
            voters_to_string(&v),
            "1@ctrl-a:9093,2@10.0.0.2:9093,3@[::1]:9095"
        );
        assert_eq!(parse_voters(&voters_to_string(&v)).unwrap(), v);
    }

    #[test]
    fn refuses_bad_voter_lists() {
        for bad in [
            "",
            "1@host",
            "x@h:1",
            "1h:2",
            "1@h:0",
            "1@h:70000",
            "1@:9",
            "-1@h:1",
            "1@h:1,1@g:2",
            "1@h:1,2@h:1",
            "4294967296@h:1",
        ] {
            let e = parse_voters(bad).unwrap_err().to_string();
            assert!(e.contains("invalid controller configuration"), "{bad}: {e}");
        }
    }

    #[test]
    fn config_validation_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let voters = parse_voters("1@127.0.0.1:1").unwrap();
        let mut c = ControllerConfig::new(1, voters, "127.0.0.1:0".parse().unwrap(), dir.path());
        c.validate().unwrap();
        c.node_id = 2;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not among controller.quorum.voters"));
        c.node_id = 1;
        c.heartbeat_interval_ms = 5000;
        assert!(c.validate().unwrap_err().to_string().contains("heartbeat"));
    }

    #[test]
    fn format_refuses_non_empty_dirs_and_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let voters = parse_voters("1@127.0.0.1:1,2@127.0.0.1:2").unwrap();
        let d = dir.path().join("meta");
        assert!(!is_formatted(&d));
        format(&d, "abc_DEF-1", 1, &voters).unwrap();
        assert!(is_formatted(&d));
        let e = format(&d, "abc", 1, &voters).unwrap_err();
        assert!(
            matches!(e, ControllerError::DirectoryNotEmpty { .. }),
            "{e}"
        );
        let other = dir.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("stray"), b"x").unwrap();
        assert!(matches!(
            format(&other, "abc", 1, &voters),
            Err(ControllerError::DirectoryNotEmpty { .. })
        ));
        let e = format(&dir.path().join("x"), "bad id!", 1, &voters).unwrap_err();
        assert!(e.to_string().contains("cluster id"), "{e}");
        let e = format(&dir.path().join("y"), "abc", 3, &voters).unwrap_err();
        assert!(e.to_string().contains("not among the voters"), "{e}");
        // An empty existing directory is fine.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        format(&empty, "abc", 2, &voters).unwrap();
    }

    #[test]
    fn meta_checks_node_cluster_and_voters() {
        let dir = tempfile::tempdir().unwrap();
        let voters = parse_voters("1@127.0.0.1:1,2@127.0.0.1:2").unwrap();
        format(dir.path(), "c1", 1, &voters).unwrap();
        let mut c = ControllerConfig::new(
            1,
            voters.clone(),
            "127.0.0.1:0".parse().unwrap(),
            dir.path(),
        );
        load_and_check_meta(&c).unwrap();
        c.cluster_id = Some("c2".into());
        assert!(matches!(
            load_and_check_meta(&c),
            Err(ControllerError::IdentityMismatch {
                what: "cluster id",
                ..
            })
        ));
        c.cluster_id = None;
        c.voters = parse_voters("1@127.0.0.1:1,3@127.0.0.1:3").unwrap();
        let e = load_and_check_meta(&c).unwrap_err().to_string();
        assert!(
            e.contains("1@127.0.0.1:1,3@127.0.0.1:3") && e.contains("1@127.0.0.1:1,2@127.0.0.1:2"),
            "{e}"
        );
        let unformatted = tempfile::tempdir().unwrap();
        c.metadata_dir = unformatted.path().to_path_buf();
        assert!(matches!(
            load_and_check_meta(&c),
            Err(ControllerError::NotFormatted { .. })
        ));
    }
}
