//! File naming and the durable-write helpers every on-disk file goes through.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
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
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new
/// content: write `name.tmp`, fsync it, rename over, fsync the directory.
pub(crate) fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
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

/// Removes a file; a file already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}
