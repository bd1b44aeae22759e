//! Durable file operations for every crate that keeps state in files (the broker's metadata
//! and identity files use them too): a directory fsync, and an atomic replace that a crash
//! leaves either old or new.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Makes creations, renames and unlinks in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Replaces `dir/name` with `bytes`: write `name.tmp`, fsync it, rename over, fsync the
/// directory. On failure, says which path failed.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), (PathBuf, io::Error)> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| (tmp.clone(), e))?;
    fs::rename(&tmp, &dst).map_err(|e| (dst.clone(), e))?;
    sync_dir(dir).map_err(|e| (dir.to_path_buf(), e))
}
