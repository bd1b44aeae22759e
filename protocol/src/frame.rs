//! Length-prefixed framing: every Kafka request and response is an `i32` size followed by
//! that many bytes. The size is checked against a limit before any buffer is sized from it,
//! so a hostile or corrupt prefix can never make the broker allocate what it claims.

use crate::error::ProtocolError;

/// Bytes in the size prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Kafka's `socket.request.max.bytes` default (100 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Smallest body that can hold a request header: api key, api version, correlation id.
pub const MIN_REQUEST_BYTES: usize = 8;

/// Validates a size prefix and returns the body length it announces.
pub fn body_length(
    prefix: [u8; FRAME_PREFIX_BYTES],
    max_frame_bytes: usize,
) -> Result<usize, ProtocolError> {
    let claimed = i32::from_be_bytes(prefix);
    if claimed < MIN_REQUEST_BYTES as i32 {
        return Err(ProtocolError::FrameTooSmall { claimed });
    }
    let claimed = claimed as usize;
    if claimed > max_frame_bytes {
        return Err(ProtocolError::FrameTooLarge {
            claimed,
            max: max_frame_bytes,
        });
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sizes_within_limits() {
        assert_eq!(body_length(8i32.to_be_bytes(), 100).unwrap(), 8);
        assert_eq!(body_length(100i32.to_be_bytes(), 100).unwrap(), 100);
    }

    #[test]
    fn refuses_negative_tiny_and_huge_sizes() {
        assert!(matches!(
            body_length((-1i32).to_be_bytes(), 100),
            Err(ProtocolError::FrameTooSmall { .. })
        ));
        assert!(matches!(
            body_length(3i32.to_be_bytes(), 100),
            Err(ProtocolError::FrameTooSmall { .. })
        ));
        assert!(matches!(
            body_length(101i32.to_be_bytes(), 100),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            body_length(i32::MAX.to_be_bytes(), DEFAULT_MAX_FRAME_BYTES),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }
}
