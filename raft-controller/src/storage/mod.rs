//! Durable Raft storage: the log store ([`log`]) and the state machine with its
//! snapshots ([`state_machine`]), plus the file helpers both use.
//!
//! Layout under the metadata directory:
//! - `raft/state.json`: vote, committed log id, last purged log id (atomic replace).
//! - `raft/log/<first index:020>.log`: log segments, frames `len | crc32c | entry`.
//! - `snapshots/<last index:020>.snap`: the newest snapshot (meta + image, CRC32C).

// openraft's traits fix `StorageError` (large) as the error type.
#![allow(clippy::result_large_err)]

pub(crate) mod log;
pub(crate) mod state_machine;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{ControllerError, IoContext};

/// Makes creations, renames and unlinks in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ControllerError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new
/// content: write `name.tmp`, fsync it, rename over, fsync the directory.
pub(crate) fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ControllerError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, &dst).at(&dst)?;
    fsync_dir(dir)
}

/// Creates `dir` (and missing parents) and makes each creation durable.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), ControllerError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir).at(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// Turns a crate error into openraft's storage error.
pub(crate) fn to_storage_error(
    e: impl std::fmt::Display,
    subject: openraft::ErrorSubject<crate::NodeId>,
    verb: openraft::ErrorVerb,
) -> crate::types::StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

#[cfg(test)]
mod tests;
