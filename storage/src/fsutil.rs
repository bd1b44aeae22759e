//! File naming and the durable-write helpers every on-disk file goes through.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Suffixes of files a crash can leave behind; removed on open.
pub(crate) const LEFTOVER_SUFFIXES: [&str; 3] = ["tmp", "cleaned", "deleted"];

/// `<dir>/<offset:020>.<suffix>`, Kafka's naming, so files sort by offset.
pub(crate) fn offset_file(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

/// The offset in a `<offset:020>.<suffix>` name, if the name has that shape.
pub(crate) fn parse_offset_file(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Makes creations, renames and unlinks in `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    crate::durable::sync_dir(dir).at(dir)
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new
/// content ([`crate::durable::write_atomically`]).
pub(crate) fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    crate::durable::write_atomically(dir, name, bytes).or_else(|(path, e)| Err(e).at(&path))
}

/// Removes a file; a file already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}
