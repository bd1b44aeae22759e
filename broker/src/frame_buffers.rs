//! Reusable buffers for incoming frames (client requests, and the answers a follower reads
//! from its leaders).
//!
//! A produce request or a follower's fetch answer is up to a few MiB that live until the
//! write it carries is appended, and under acks=all until it is acknowledged. Allocated
//! fresh for every frame, such buffers went back to the allocator, which returned their
//! pages to the kernel; the next frame then faulted new pages in and the kernel zeroed
//! them: about a tenth of a broker's CPU at peak replication. Here a frame's buffer comes
//! back to a small shared pool when the last slice of it is dropped, and the next frame
//! reads into it.

use std::sync::LazyLock;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Buffers the pool keeps at most; more are freed.
pub const POOLED_BUFFERS_MAX: usize = 32;
/// Bytes of buffers the pool keeps at most; more are freed.
pub const POOLED_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Smaller frames (most requests but produce and follower answers) get a buffer of their
/// own: small allocations are cheap, and a small request held for seconds (a long poll, a
/// group join) must not hold a pooled buffer of megabytes.
pub const POOLED_FRAME_BYTES_MIN: usize = 64 * 1024;
/// Frames up to this size get their whole buffer at once (a produce request is typically
/// one `batch.size`, about 1 MiB). Larger claims grow the buffer as bytes actually arrive,
/// so a peer cannot make the broker reserve the frame limit by lying about a length.
pub const FRAME_UPFRONT_BYTES: usize = 4 * 1024 * 1024;

/// The process's pool: frames of every connection share it.
pub static FRAME_POOL: LazyLock<FramePool> = LazyLock::new(FramePool::default);

/// Empty buffers waiting for the next frame.
#[derive(Default)]
pub struct FramePool {
    free: Mutex<Free>,
}

#[derive(Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl FramePool {
    /// An empty buffer holding at least `want` bytes: the smallest such in the pool (at most
    /// twice the size a new one would have, so a small frame never pins a big buffer),
    /// else a new one of the next power of two, so that buffers come in few sizes and get
    /// reused. A taken buffer grows only for frames above [`FRAME_UPFRONT_BYTES`], as their
    /// bytes arrive.
    fn take(&'static self, want: usize) -> Pooled {
        let new_size = want.next_power_of_two();
        let mut free = self.free.lock();
        let pick = free
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= want && b.capacity() <= 2 * new_size)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        let buf = match pick {
            Some(i) => {
                let buf = free.buffers.swap_remove(i);
                free.bytes -= buf.capacity();
                buf
            }
            None => Vec::with_capacity(new_size),
        };
        Pooled { buf, pool: self }
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut free = self.free.lock();
        if free.buffers.len() < POOLED_BUFFERS_MAX
            && free.bytes + buf.capacity() <= POOLED_BYTES_MAX
        {
            free.bytes += buf.capacity();
            free.buffers.push(buf);
        }
    }
}

/// A pooled buffer holding a frame; it goes back to its pool when the frame's last slice
/// is dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: &'static FramePool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// Reads exactly `len` bytes of one frame body into a buffer from [`FRAME_POOL`].
/// `Ok(Err(n))` when the peer closed the connection after only `n` bytes of it; I/O errors
/// are passed on.
pub async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    len: usize,
) -> std::io::Result<Result<Bytes, usize>> {
    read_frame_into(&FRAME_POOL, reader, len).await
}

async fn read_frame_into(
    pool: &'static FramePool,
    reader: &mut (impl AsyncRead + Unpin),
    len: usize,
) -> std::io::Result<Result<Bytes, usize>> {
    if len < POOLED_FRAME_BYTES_MIN {
        let mut body = Vec::with_capacity(len);
        return Ok(match fill(reader, &mut body, len).await? {
            true => Ok(body.into()),
            false => Err(body.len()),
        });
    }
    let mut buf = pool.take(len.min(FRAME_UPFRONT_BYTES));
    Ok(match fill(reader, &mut buf.buf, len).await? {
        true => Ok(Bytes::from_owner(buf)),
        false => Err(buf.buf.len()),
    })
}

/// Reads into `body` until it holds `len` bytes (false: the stream ended first), growing
/// it only as bytes arrive and never reading past the frame.
async fn fill(
    reader: &mut (impl AsyncRead + Unpin),
    body: &mut Vec<u8>,
    len: usize,
) -> std::io::Result<bool> {
    while body.len() < len {
        // Doubling keeps the number of copies logarithmic while never running more than
        // 2x ahead of what was received.
        let want = (len - body.len()).min(body.capacity().max(FRAME_UPFRONT_BYTES));
        if body.capacity() - body.len() < want {
            body.reserve_exact(want);
        }
        if (&mut *reader).take(want as u64).read_buf(body).await? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_pool() -> &'static FramePool {
        Box::leak(Box::default())
    }

    /// Reads a frame of `len` bytes of `fill` through `pool`.
    async fn frame_of(pool: &'static FramePool, fill: u8, len: usize) -> Bytes {
        let data = vec![fill; len];
        let frame = read_frame_into(pool, &mut &data[..], len).await;
        let frame = frame.unwrap().unwrap();
        assert_eq!(frame, data);
        frame
    }

    #[tokio::test]
    async fn a_frame_reads_whole_and_its_buffer_is_reused_once_its_last_slice_drops() {
        let pool = own_pool();
        let data: Vec<u8> = (0..(2 * POOLED_FRAME_BYTES_MIN) as u32)
            .map(|i| (i * 7) as u8)
            .collect();
        let frame = read_frame_into(pool, &mut &data[..], data.len())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame, data);
        let first = frame.as_ptr();
        let slice = frame.slice(10..20);
        drop(frame);
        assert!(
            pool.free.lock().buffers.is_empty(),
            "returned while a slice lives"
        );
        drop(slice);
        assert_eq!(pool.free.lock().buffers.len(), 1);
        let len = POOLED_FRAME_BYTES_MIN + 1;
        let again = read_frame_into(pool, &mut &data[..len], len)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.as_ptr(), first, "the pooled buffer was not reused");
        assert_eq!(again, data[..len]);
        drop(again);
        let small = read_frame_into(pool, &mut &data[..500], 500)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(small, data[..500]);
        assert_eq!(
            pool.free.lock().buffers.len(),
            1,
            "a small frame took a pooled buffer"
        );
    }

    #[tokio::test]
    async fn a_small_frame_does_not_take_a_much_bigger_buffer() {
        let pool = own_pool();
        drop(frame_of(pool, 1, FRAME_UPFRONT_BYTES).await);
        let _small = frame_of(pool, 2, POOLED_FRAME_BYTES_MIN).await;
        assert_eq!(
            pool.free.lock().buffers.len(),
            1,
            "the 4 MiB buffer was taken"
        );
    }

    #[tokio::test]
    async fn the_pool_keeps_a_bounded_number_of_buffers() {
        let pool = own_pool();
        let mut frames = Vec::new();
        for _ in 0..POOLED_BUFFERS_MAX + 5 {
            frames.push(frame_of(pool, 5, POOLED_FRAME_BYTES_MIN).await);
        }
        drop(frames);
        assert_eq!(pool.free.lock().buffers.len(), POOLED_BUFFERS_MAX);
        // Few large buffers: the byte bound applies first.
        let pool = own_pool();
        let mut frames = Vec::new();
        for _ in 0..POOLED_BUFFERS_MAX {
            frames.push(frame_of(pool, 6, FRAME_UPFRONT_BYTES).await);
        }
        drop(frames);
        let free = pool.free.lock();
        assert_eq!(free.buffers.len(), POOLED_BYTES_MAX / FRAME_UPFRONT_BYTES);
        assert!(free.bytes <= POOLED_BYTES_MAX);
    }

    #[tokio::test]
    async fn a_short_stream_reports_how_much_came() {
        let data = [1u8; 10];
        for want in [50, 2 * POOLED_FRAME_BYTES_MIN] {
            let got = read_frame_into(own_pool(), &mut &data[..], want).await;
            assert_eq!(got.unwrap().unwrap_err(), 10, "frame of {want}");
        }
    }
}
