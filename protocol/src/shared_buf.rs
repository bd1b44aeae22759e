//! An encoding buffer that does not copy the record data it is told about.
//!
//! A Fetch response is mostly record batches, handed out by the log as slices of segment
//! memory maps. Encoding them into one contiguous buffer copies every fetched byte once more
//! in user space before the kernel copies it again into the socket. [`SharingBuf`] instead
//! ends its current chunk when the encoder writes one of the registered `Bytes` and keeps
//! that `Bytes` itself as the next chunk, so the response goes out with one vectored write.
//!
//! This module holds the protocol crate's only `unsafe` code: `BufMut` is an unsafe trait,
//! and its three required methods here forward unchanged to the inner `BytesMut`, which
//! upholds their contracts.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Slices shorter than this are copied anyway: a separate chunk costs more than the copy.
pub const SHARE_MIN_BYTES: usize = 4096;

/// The encoded output as a list of chunks, in order: inline bytes written by the encoder
/// and, between them, the registered `Bytes` it wrote, uncopied.
#[derive(Debug, Default)]
pub struct SharingBuf {
    done: Vec<Bytes>,
    done_len: usize,
    inline: BytesMut,
    /// Registered slices by start address (their length is checked on a match).
    shared: HashMap<usize, Bytes>,
}

impl SharingBuf {
    pub fn with_capacity(inline_bytes: usize) -> SharingBuf {
        SharingBuf {
            inline: BytesMut::with_capacity(inline_bytes),
            ..SharingBuf::default()
        }
    }

    /// Lets a later `put_slice` of exactly this memory keep `bytes` instead of copying it.
    pub fn share(&mut self, bytes: &Bytes) {
        if bytes.len() >= SHARE_MIN_BYTES {
            self.shared.insert(bytes.as_ptr() as usize, bytes.clone());
        }
    }

    /// The chunks written so far, in order.
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        self.end_inline();
        self.done
    }

    fn end_inline(&mut self) {
        if !self.inline.is_empty() {
            let chunk = self.inline.split().freeze();
            self.done_len += chunk.len();
            self.done.push(chunk);
        }
    }

    /// Copies everything into one inline buffer again: for the rare caller that seeks back
    /// before a shared chunk (no message encoder does; the trait allows it).
    fn flatten(&mut self) {
        if self.done.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.done_len + self.inline.len());
        for chunk in self.done.drain(..) {
            all.extend_from_slice(&chunk);
        }
        all.extend_from_slice(&self.inline);
        self.inline = all;
        self.done_len = 0;
    }

    fn shared_match(&self, src: &[u8]) -> Option<Bytes> {
        if src.len() < SHARE_MIN_BYTES {
            return None;
        }
        self.shared
            .get(&(src.as_ptr() as usize))
            .filter(|b| b.len() == src.len())
            .cloned()
    }
}

// SAFETY: the three required methods forward to `BytesMut`'s implementation on
// `self.inline`, the only buffer `chunk_mut` hands out, so `BytesMut` upholds the trait's
// contracts; the `put_slice` override is safe code that only appends or ends chunks.
unsafe impl BufMut for SharingBuf {
    fn remaining_mut(&self) -> usize {
        self.inline.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the slice `chunk_mut` returned,
        // which is `self.inline`'s.
        unsafe { self.inline.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.inline.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.shared_match(src) {
            Some(bytes) => {
                self.end_inline();
                self.done_len += bytes.len();
                self.done.push(bytes);
            }
            None => self.inline.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for SharingBuf {
    fn offset(&self) -> usize {
        self.done_len + self.inline.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.done_len {
            self.flatten();
        }
        self.inline.resize(offset - self.done_len, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.done_len {
            self.flatten();
        }
        let base = self.done_len;
        &mut self.inline[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn registered_slices_are_kept_others_copied() {
        let big = Bytes::from(vec![7u8; SHARE_MIN_BYTES]);
        let unregistered = vec![9u8; SHARE_MIN_BYTES];
        let mut buf = SharingBuf::with_capacity(16);
        buf.share(&big);
        buf.put_i32(5);
        buf.put_slice(&big);
        buf.put_slice(&unregistered);
        buf.put_u8(1);
        assert_eq!(buf.offset(), 4 + 2 * SHARE_MIN_BYTES + 1);
        let chunks = buf.into_chunks();
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[1].as_ptr(),
            big.as_ptr(),
            "the shared chunk was copied"
        );
        let mut want = 5i32.to_be_bytes().to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(&unregistered);
        want.push(1);
        assert_eq!(concat(&chunks), want);
    }

    #[test]
    fn a_sub_slice_of_a_registered_buffer_is_copied() {
        let big = Bytes::from(vec![3u8; 2 * SHARE_MIN_BYTES]);
        let mut buf = SharingBuf::default();
        buf.share(&big);
        buf.put_slice(&big[..SHARE_MIN_BYTES]);
        let chunks = buf.into_chunks();
        assert_eq!(chunks.len(), 1);
        assert_ne!(chunks[0].as_ptr(), big.as_ptr());
    }

    #[test]
    fn seeking_back_over_a_shared_chunk_flattens_and_stays_correct() {
        let big = Bytes::from(vec![1u8; SHARE_MIN_BYTES]);
        let mut buf = SharingBuf::default();
        buf.share(&big);
        buf.put_u8(0);
        buf.put_slice(&big);
        buf.put_u8(2);
        buf.range(0..1)[0] = 42;
        let chunks = buf.into_chunks();
        assert_eq!(chunks.len(), 1);
        let all = concat(&chunks);
        assert_eq!(all.len(), SHARE_MIN_BYTES + 2);
        assert_eq!((all[0], all[1], all[SHARE_MIN_BYTES + 1]), (42, 1, 2));
    }
}
