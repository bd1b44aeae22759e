//! One partition's log on disk, for Isthmus. No networking, no Raft, no async.
//!
//! # Parts
//! - [`Log`] (`log.rs`): the partition log and its public API.
//! - `log/cleaner.rs`: log compaction ([`Log::cleanable`], [`Log::clean`]), its
//!   crash-safe segment swap and the cleaner checkpoint.
//! - `records.rs`: records inside batches: decompression, parsing, rebuilding a batch
//!   from some of its records, the compacted-topic key check.
//! - `segment.rs`: one `.log` file with its indexes; preallocation, sealing, recovery scans.
//! - `index.rs`: the sparse `.index` (offset → position) and `.timeindex` (time → offset).
//! - `epoch.rs`: the leader-epoch cache (`leader-epoch-checkpoint`).
//! - `producer.rs`: idempotent-producer state and its snapshots.
//! - `mmap.rs`: every memory map, and the crate's only `unsafe` code.
//! - `fsutil.rs`: file naming; atomic replace and directory fsync on top of [`durable`].
//! - [`durable`]: directory fsync and atomic replace, public for the broker's own files.
//! - [`LogConfig`] (`config.rs`), [`StorageError`] (`error.rs`).
//!
//! # Files in a partition directory (Kafka's layout)
//! - `<base:020>.log`: whole v2 record batches. The active one is preallocated (sparse)
//!   to `segment.bytes` and trimmed when sealed.
//! - `<base:020>.index`, `<base:020>.timeindex`: mmap'd sparse indexes, one entry per
//!   `index.interval.bytes`, preallocated to `segment.index.bytes` while active.
//! - `leader-epoch-checkpoint`: Kafka's text format.
//! - `<offset:020>.snapshot`: producer state as of that offset (own format, CRC32C).
//! - `partition.checkpoint`: log start offset and recovery point (own format, CRC32C).
//! - `cleaner.checkpoint`: end of the compacted section and the next tombstone delete
//!   horizon (own format, CRC32C).
//! - `cleaner-swap` and `<base>.log.cleaned`: a compaction pass in progress; see
//!   `log/cleaner.rs` for the recovery rules.
//!
//! # API
//! ```text
//! Log::open(dir, LogConfig, clean_shutdown) -> Result<Log>
//! log.append_as_leader(&records, leader_epoch, now_ms) -> Result<AppendOutcome>
//! log.append_as_follower(&records) -> Result<AppendOutcome>
//! log.read(offset, max_bytes, upper_bound, min_one_batch) -> Result<ReadResult>
//! log.log_start_offset() / log_end_offset() / size_bytes() / recovery_point()
//! log.unflushed() -> Option<FlushJob>;  job.sync();  log.mark_flushed(&job)
//! log.unflushed_messages() -> u64;  log.checkpoint()
//! log.take_checkpoint() -> Result<PendingCheckpoint>;  pending.write()   (outside the lock)
//! log.apply_retention(now_ms, high_watermark) -> Result<usize>
//! log.cleanable(now_ms, first_uncleanable) -> Result<Option<Cleanable>>
//! log.clean(now_ms, first_uncleanable) -> Result<CleanStats>
//! log.delete_records_before(offset) -> Result<i64>
//! log.truncate_to(offset);  log.truncate_fully_and_start_at(offset);  log.roll(now_ms)
//! log.offset_for_timestamp(ts) / max_timestamp() -> Option<(offset, ts)>
//! log.end_offset_for_epoch(epoch) -> Option<(epoch, end_offset)>;  log.latest_epoch()
//! log.producer_state(pid) -> Option<&ProducerStateEntry>
//! log.config() / set_config(LogConfig);  log.close();  log.delete()
//! ```
//!
//! # Durability
//! Appends are positioned writes into the page cache; nothing is fsynced on the append
//! path. The broker decides when: [`Log::unflushed`] (under its lock) names the files and
//! the offset they cover, [`FlushJob::sync`] runs outside the lock (group commit), and
//! [`Log::mark_flushed`] advances the recovery point. [`Log::checkpoint`] makes the
//! recovery point durable; after a crash only data from it on is scanned. Periodic
//! checkpoints are taken under the lock ([`Log::take_checkpoint`]) and written outside it;
//! one written late never replaces a newer one, and none is written once the log is closed
//! or deleted. Files are
//! created, renamed and deleted with a directory fsync; small state files are replaced
//! atomically (tmp, fsync, rename, fsync dir).
//!
//! # Zero-copy reads
//! [`ReadResult::records`] is a `Bytes` slice of the segment's memory map. Bytes once
//! readable are never rewritten: truncation seals the cut segment and continues in a new
//! file, and deletion unlinks (live maps stay valid).
//!
//! # Concurrency
//! `Log` is a plain struct (`&mut self` to change it); the broker wraps it in its own
//! lock. One `Log` per directory: nothing stops a second instance, so the broker must.

mod config;
pub mod durable;
mod epoch;
mod error;
mod fsutil;
mod index;
mod log;
mod mmap;
mod producer;
mod records;
mod segment;

pub use config::{CleanupPolicy, LogConfig, TimestampType};
pub use epoch::EpochEntry;
pub use error::StorageError;
pub use log::cleaner::{
    CleanReason, CleanStats, Cleanable, CrashPoint, CLEANER_CHECKPOINT_FILE, CLEANER_SWAP_FILE,
};
pub use log::{
    AppendOutcome, FlushJob, Log, PendingCheckpoint, ReadResult, PARTITION_CHECKPOINT_FILE,
};
pub use producer::{BatchMetadata, ProducerStateEntry, PRODUCER_BATCHES_RETAINED};
