//! Kafka wire protocol for Isthmus. No I/O lives here.
//!
//! Parts:
//! - [`frame`]: the 4-byte length prefix, checked before anything is allocated.
//! - [`codec`]: request decoding (header first, so an unsupported api or version is known
//!   before the body is parsed) and response encoding, on top of the `kafka-protocol` crate.
//! - [`shared_buf`]: an encoding buffer that keeps record data as the log's own `Bytes`
//!   (zero-copy Fetch responses); the crate's only `unsafe` code.
//! - [`batch`]: the v2 record-batch view: header fields, CRC32C check, in-place rewrites.
//! - [`error`]: the crate's one error type.

pub mod batch;
pub mod codec;
pub mod error;
pub mod frame;
pub mod shared_buf;

pub use kafka_protocol;
