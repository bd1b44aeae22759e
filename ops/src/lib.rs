//! `isthmus-ops` as a library: the parts of `isthmusctl` that tests and other programs
//! drive directly rather than through the command line.
//!
//! - [`local_cluster`]: a stretch cluster of `isthmus` processes on one machine
//!   (`isthmusctl cluster local`), with per-node kill, terminate and restart for tests.
//! - [`log_dump`]: `isthmusctl log dump`, a read-only listing of a partition folder's record
//!   batches (offsets, epochs, producer ids, CRCs, digests), also used by tests to compare
//!   replicas.

// Doc comments on clap arguments are also the CLI help, where `<name>` placeholders are
// the convention; rustdoc would read them as unclosed HTML tags.
#![allow(rustdoc::invalid_html_tags)]

pub mod local_cluster;
pub mod log_dump;
