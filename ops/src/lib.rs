//! `isthmus-ops` as a library: the parts of `isthmusctl` that tests and other programs
//! drive directly rather than through the command line.
//!
//! - [`local_cluster`]: a stretch cluster of `isthmus` processes on one machine
//!   (`isthmusctl cluster local`), with per-node kill, terminate and restart for tests.

pub mod local_cluster;
