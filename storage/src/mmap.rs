//! Every memory map of the crate, and so its only `unsafe` code.
//!
//! Mapping a file is unsafe because the mapped bytes can change or vanish underneath the
//! program if the file is modified or truncated. The crate keeps three rules that make
//! the maps below sound, relying on the partition directory being owned by this process
//! alone (nothing else writes or truncates its files):
//!
//! 1. Bytes of a `.log` file that a reader may hold (below the segment's logical end) are
//!    never written again: appends go past the logical end, and truncation starts a new
//!    file rather than overwriting (see `Log::truncate_to`).
//! 2. A `.log` file is never shrunk below a region that can still be handed out; deleting
//!    a segment unlinks the file, which keeps the pages of live maps valid.
//! 3. Index maps are private to their [`WriteMap`] owner and dropped before their file is
//!    resized.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Advice, Mmap, MmapMut, MmapOptions};

/// A read-only shared map of the first `len` bytes of a segment's `.log` file. Readers
/// get `Bytes` slices of it that keep it alive after the segment is rolled or deleted.
#[derive(Debug)]
pub(crate) struct ReadMap {
    map: Mmap,
}

impl ReadMap {
    /// Maps `len > 0` bytes; the file must already be at least that long.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<Self> {
        // SAFETY: the file lives in a partition directory owned by this process; bytes
        // below any logical end handed out are never rewritten or truncated away (module
        // rules 1 and 2), so the map never observes a change or loses a page that a
        // reader can reach. The file is at least `len` long (callers `set_len` first).
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(Self { map })
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }
}

impl AsRef<[u8]> for ReadMap {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// A writable shared map of a whole index file, never shared outside its owner.
#[derive(Debug)]
pub(crate) struct WriteMap {
    map: MmapMut,
}

impl WriteMap {
    /// Maps the whole file; `len` must equal its (non-zero) length.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<Self> {
        // SAFETY: index files are owned by one `WriteMap` at a time and are resized only
        // after this map is dropped (module rule 3); no other code writes them, so the
        // mutable slice is the only view of these bytes.
        let map = unsafe { MmapOptions::new().len(len).map_mut(file)? };
        let map = Self { map };
        map.read_ahead(false)?;
        Ok(map)
    }

    /// Whether a fault on a page not in memory reads the pages after it too.
    ///
    /// Off for appends and lookups: an index is written in order and read by binary
    /// search. With read-ahead a fault read `read_ahead_kb` (8 MiB on some disks) of
    /// mostly unwritten pages, which under memory pressure were reclaimed before the
    /// index reached them and read again later, each time allocating megabytes while
    /// the append held the partition lock. On only while an index is scanned front to
    /// back (counting its entries on open), which would otherwise read page by page.
    pub(crate) fn read_ahead(&self, on: bool) -> io::Result<()> {
        self.map
            .advise(if on { Advice::Normal } else { Advice::Random })
    }
}

impl std::ops::Deref for WriteMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl std::ops::DerefMut for WriteMap {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

/// Owner handed to `Bytes::from_owner`: keeps the map alive while any slice exists.
#[derive(Debug)]
pub(crate) struct MapOwner(pub(crate) std::sync::Arc<ReadMap>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The `VmFlags` the kernel lists for the mapping of `path` in `/proc/self/smaps`
    /// (each mapping's block starts with a line ending in its path and ends with them).
    fn vm_flags_of(path: &std::path::Path) -> Option<String> {
        let path = path.canonicalize().ok()?;
        let path = path.to_str()?;
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut lines = smaps.lines().skip_while(|l| !l.ends_with(path));
        lines.find_map(|l| l.strip_prefix("VmFlags:").map(str::to_owned))
    }

    #[test]
    fn index_maps_read_ahead_only_when_asked_and_log_maps_always() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            let path = dir.path().join(name);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            file.set_len(1 << 20).unwrap();
            (path, file)
        };
        let (index_path, index_file) = open("0.index");
        let (log_path, log_file) = open("0.log");
        let index = WriteMap::new(&index_file, 1 << 20).unwrap();
        let log = ReadMap::new(&log_file, 1 << 20).unwrap();
        // `rr`: madvise(MADV_RANDOM).
        let index_flags = vm_flags_of(&index_path).expect("the index is mapped");
        assert!(
            index_flags.split_whitespace().any(|f| f == "rr"),
            "{index_flags}"
        );
        let log_flags = vm_flags_of(&log_path).expect("the log is mapped");
        assert!(
            !log_flags.split_whitespace().any(|f| f == "rr"),
            "{log_flags}"
        );
        drop((index, log));
    }
}
