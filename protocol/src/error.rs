//! The protocol crate's one error type. Handlers turn these into Kafka error codes or a
//! closed connection; nothing here knows about sockets.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProtocolError {
    #[error("frame size {claimed} is below the smallest request header")]
    FrameTooSmall { claimed: i32 },
    #[error("frame size {claimed} exceeds the limit of {max} bytes (socket.request.max.bytes)")]
    FrameTooLarge { claimed: usize, max: usize },
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("api {api} does not support version {version}")]
    UnsupportedVersion { api: &'static str, version: i16 },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    /// A record batch (see [`crate::batch`]) is shorter than its header or its length says.
    #[error("record batch at byte {position} is truncated: {needed} bytes needed, {available} available")]
    BatchTruncated {
        position: usize,
        needed: usize,
        available: usize,
    },
    #[error("record batch at byte {position} has invalid length {length}")]
    InvalidBatchLength { position: usize, length: i32 },
    /// Magic 0 or 1: the pre-0.11 message formats, which Isthmus refuses.
    #[error("record batch at byte {position} uses message format v{magic}; only v2 is accepted")]
    UnsupportedMagic { position: usize, magic: i8 },
    #[error("record batch at byte {position} has invalid magic {magic}")]
    InvalidMagic { position: usize, magic: i8 },
    #[error("record batch at byte {position} failed its CRC32C check: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        position: usize,
        stored: u32,
        computed: u32,
    },
    #[error("record batch at byte {position} has unknown compression codec {codec}")]
    UnknownCompression { position: usize, codec: u8 },
    #[error("record batch at byte {position} is invalid: {reason}")]
    InvalidBatch { position: usize, reason: String },
    #[error("record {index} of its batch is invalid: {reason}")]
    InvalidRecord { index: usize, reason: String },
}
