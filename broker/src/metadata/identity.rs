//! The node's identity on disk: `meta.properties` in every log dir (cluster id, node id, as
//! Kafka writes it) and an exclusive lock so two processes never share a directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::store::write_atomically;
use crate::error::BrokerError;

const META_PROPERTIES: &str = "meta.properties";
const LOCK_FILE: &str = ".lock";

/// Held for the life of the process; dropping it releases the directory lock.
#[derive(Debug)]
pub struct LogDirLock {
    _lock: Flock<File>,
    pub dir: PathBuf,
}

/// Locks every log dir, checks or writes `meta.properties`, and returns the cluster id:
/// the one the dirs already have, else `wanted` (`isthmus format --cluster-id`), else a new
/// random one. Dirs of another node or cluster (or not of `wanted`) are refused.
pub fn claim_log_dirs(
    dirs: &[PathBuf],
    node_id: i32,
    wanted: Option<&str>,
) -> Result<(String, Vec<LogDirLock>), BrokerError> {
    let mut locks = Vec::new();
    let mut cluster_id: Option<String> = None;
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|e| {
            BrokerError::Fatal(format!(
                "cannot create log dir {}: {e}; check log.dirs and permissions",
                dir.display()
            ))
        })?;
        let file = File::create(dir.join(LOCK_FILE)).map_err(|e| BrokerError::io(dir, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            BrokerError::Fatal(format!(
                "log dir {} is in use by another Isthmus process; stop it or choose another log.dirs",
                dir.display()
            ))
        })?;
        locks.push(LogDirLock {
            _lock: lock,
            dir: dir.clone(),
        });
        if let Some(props) = read_properties(&dir.join(META_PROPERTIES))? {
            let found_node = props.get("node.id").and_then(|v| v.parse::<i32>().ok());
            if found_node != Some(node_id) {
                return Err(BrokerError::Fatal(format!(
                    "log dir {} belongs to node.id {} but this node is {node_id}; set node.id accordingly or use an empty log dir",
                    dir.display(),
                    props.get("node.id").map(String::as_str).unwrap_or("?")
                )));
            }
            let found_cluster = props.get("cluster.id").cloned().unwrap_or_default();
            match &cluster_id {
                Some(c) if *c != found_cluster => {
                    return Err(BrokerError::Fatal(format!(
                        "log dir {} belongs to cluster {found_cluster}, the others to {c}; log dirs of different clusters cannot be mixed",
                        dir.display()
                    )))
                }
                _ => cluster_id = Some(found_cluster),
            }
        }
    }
    if let (Some(found), Some(wanted)) = (&cluster_id, wanted) {
        if found != wanted {
            return Err(BrokerError::Fatal(format!(
                "the log dirs belong to cluster {found}, not {wanted}; give --cluster-id {found} or use empty log dirs"
            )));
        }
    }
    let cluster_id = cluster_id
        .or_else(|| wanted.map(String::from))
        .unwrap_or_else(new_cluster_id);
    for dir in dirs {
        if read_properties(&dir.join(META_PROPERTIES))?.is_none() {
            let text = format!("version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n");
            write_atomically(dir, META_PROPERTIES, text.as_bytes())?;
        }
    }
    Ok((cluster_id, locks))
}

/// The cluster id `isthmus format` (or a first start) wrote into these log dirs, if any.
pub fn formatted_cluster_id(dirs: &[PathBuf]) -> Result<Option<String>, BrokerError> {
    for dir in dirs {
        if let Some(props) = read_properties(&dir.join(META_PROPERTIES))? {
            return Ok(props.get("cluster.id").cloned());
        }
    }
    Ok(None)
}

fn read_properties(path: &Path) -> Result<Option<BTreeMap<String, String>>, BrokerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BrokerError::io(path, e)),
    }
}

/// A Kafka-style cluster id: a random UUID in URL-safe base64 without padding (22 chars).
/// Like Kafka's `Uuid.randomUuid`, never one starting with `-`: command lines would take it
/// for an option (`isthmus format --cluster-id -x…`).
pub fn new_cluster_id() -> String {
    loop {
        let id = encode_cluster_id(uuid::Uuid::new_v4());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn encode_cluster_id(uuid: uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid.into_bytes();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | b as u32;
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_never_start_with_a_dash() {
        // 0b111110 first: the encoding alone would start with `-`.
        let dashing = uuid::Uuid::from_bytes([0xF8; 16]);
        assert!(encode_cluster_id(dashing).starts_with('-'));
        for _ in 0..2_000 {
            let id = new_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
        }
    }

    #[test]
    fn identity_is_written_once_and_checked_after() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().join("a"), dir.path().join("b")];
        let (cluster, locks) = claim_log_dirs(&dirs, 3, None).unwrap();
        assert_eq!(cluster.len(), 22);
        // A second claimant is refused while the first holds the locks.
        let e = claim_log_dirs(&dirs, 3, None).unwrap_err().to_string();
        assert!(e.contains("in use"), "{e}");
        drop(locks);
        let (again, _locks) = claim_log_dirs(&dirs, 3, None).unwrap();
        assert_eq!(again, cluster);
        drop(_locks);
        let e = claim_log_dirs(&dirs, 4, None).unwrap_err().to_string();
        assert!(e.contains("node.id 3"), "{e}");
        let e = claim_log_dirs(&dirs, 3, Some("other"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("--cluster-id {cluster}")), "{e}");
        let fresh = vec![dir.path().join("c")];
        let (given, _l) = claim_log_dirs(&fresh, 3, Some("given-id")).unwrap();
        assert_eq!(given, "given-id");
    }
}
