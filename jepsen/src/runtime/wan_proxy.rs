//! A transparent TCP proxy that adds WAN delay and jitter between sites.
//!
//! Why: this kernel has no `netem`, so latency cannot be added to the links themselves.
//! Instead the netns runtime REDIRECTs (`iptables -t nat PREROUTING … -j REDIRECT`) every
//! TCP connection that crosses from one site to another to a [`WanProxy`] listening in the
//! hub namespace. The proxy looks up where the client meant to go (`SO_ORIGINAL_DST`),
//! dials it, and relays both directions, holding each chunk until its delivery time. It is
//! transparent for Kafka: the client dialled the real address, so metadata, bootstrap
//! addresses and TLS names stay as they are. The accepting side sees the connection come
//! from the hub's address, not the client's.
//!
//! How: per direction, a reader stamps every chunk it reads with
//! `deliver_at = max(previous deliver_at, now + delay ± jitter)` and passes it through a
//! bounded queue (back-pressure) to a writer that sleeps until then and writes it. Bytes
//! are never reordered; EOF is passed on as a half-close after the queued bytes; an error
//! on either side closes both sockets abortively.
//!
//! Not done here: packet loss (the runtime does that with iptables `statistic`; the
//! [`WanLink::loss`] field is ignored), UDP, IPv6 original destinations.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::runtime::WanLink;

/// Most bytes read (and later written) as one chunk.
pub const CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Chunks queued per direction of a connection before its reader waits (back-pressure):
/// at most `CHUNK_QUEUE_MAX * CHUNK_BYTES_MAX` bytes held per direction.
pub const CHUNK_QUEUE_MAX: usize = 64;
/// How long dialling the destination may take before the client is turned away.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors…) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Where an accepted connection is relayed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The destination the client dialled before iptables REDIRECT (SO_ORIGINAL_DST).
    OriginalDestination,
    /// Always this address (tests on loopback, no iptables).
    Fixed(SocketAddr),
}

#[derive(Debug, Default)]
struct Counters {
    connections_accepted: AtomicU64,
    bytes_relayed: AtomicU64,
}

/// A running proxy. Dropping it stops accepting, closes every relayed connection and
/// joins its thread.
pub struct WanProxy {
    local_addr: SocketAddr,
    target: Target,
    link: watch::Sender<Option<WanLink>>,
    counters: Arc<Counters>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for WanProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WanProxy")
            .field("local_addr", &self.local_addr)
            .field("target", &self.target)
            .field("link", &*self.link.borrow())
            .field("connections_accepted", &self.connections_accepted())
            .field("bytes_relayed", &self.bytes_relayed())
            .finish()
    }
}

impl WanProxy {
    /// Binds `listen` on the CALLING thread, so in the caller's network namespace, then
    /// serves on a thread of its own spawned from the caller. A new thread inherits its
    /// creator's network namespace, so the connections the proxy dials (and anything its
    /// runtime starts) are made in that namespace too: call this from a thread that has
    /// entered the hub. Returns once listening.
    pub fn start(listen: SocketAddr, target: Target) -> io::Result<WanProxy> {
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        // Built here so that every failure is returned to the caller; a current-thread
        // runtime starts no threads of its own.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let (link, link_rx) = watch::channel(None);
        let counters = Arc::new(Counters::default());
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name(format!("wan-proxy-{}", local_addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = shutdown_rx => {}
                        () = accept_loop(listener, target, link_rx, thread_counters) => {}
                    }
                });
                // Dropping the runtime drops every connection task and with it its sockets.
                drop(runtime);
            })?;
        Ok(WanProxy {
            local_addr,
            target,
            link,
            counters,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Delay and jitter from now on for every connection, old and new (for chunks read
    /// from now on); `None` relays at once. `loss` is ignored here: the runtime drops
    /// packets with iptables.
    pub fn set_link(&self, link: Option<WanLink>) {
        self.link.send_replace(link);
    }

    /// Connections accepted so far (including ones whose destination could not be reached).
    pub fn connections_accepted(&self) -> u64 {
        self.counters.connections_accepted.load(Ordering::Relaxed)
    }

    /// Bytes relayed so far (written to the other side), both directions.
    pub fn bytes_relayed(&self) -> u64 {
        self.counters.bytes_relayed.load(Ordering::Relaxed)
    }
}

impl Drop for WanProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // Fails only if the thread is gone already.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Target,
    link: watch::Receiver<Option<WanLink>>,
    counters: Arc<Counters>,
) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                counters
                    .connections_accepted
                    .fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_connection(
                    client,
                    target,
                    link.clone(),
                    Arc::clone(&counters),
                ));
            }
            Err(_) => tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await,
        }
    }
}

async fn serve_connection(
    mut client: TcpStream,
    target: Target,
    link: watch::Receiver<Option<WanLink>>,
    counters: Arc<Counters>,
) {
    let mut upstream = match connect_upstream(&client, target).await {
        Ok(upstream) => upstream,
        Err(_) => {
            // The client sees a reset, as a refused connect would have given it.
            close_abortively(client);
            return;
        }
    };
    let nodelay = client
        .set_nodelay(true)
        .and_then(|()| upstream.set_nodelay(true));
    let result = match nodelay {
        Err(e) => Err(e),
        Ok(()) => {
            let (client_read, client_write) = client.split();
            let (upstream_read, upstream_write) = upstream.split();
            tokio::try_join!(
                relay(client_read, upstream_write, link.clone(), &counters),
                relay(upstream_read, client_write, link, &counters),
            )
            .map(|_| ())
        }
    };
    if result.is_err() {
        close_abortively(client);
        close_abortively(upstream);
    }
}

async fn connect_upstream(client: &TcpStream, target: Target) -> io::Result<TcpStream> {
    let destination = match target {
        Target::Fixed(addr) => addr,
        Target::OriginalDestination => {
            let destination = SocketAddr::V4(original_destination(client)?);
            // A connection dialled to the proxy itself (not redirected) would loop.
            if destination == client.local_addr()? {
                return Err(io::Error::other(
                    "connection was not redirected: its destination is the proxy",
                ));
            }
            destination
        }
    };
    match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(destination)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {destination} timed out"),
        )),
    }
}

/// The address the client dialled before iptables REDIRECTed it here (IPv4 only).
fn original_destination(client: &TcpStream) -> io::Result<SocketAddrV4> {
    let addr = nix::sys::socket::getsockopt(client, nix::sys::socket::sockopt::OriginalDst)
        .map_err(io::Error::from)?;
    // Both fields are in network byte order.
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ))
}

/// Closes with a reset rather than a FIN.
fn close_abortively(stream: TcpStream) {
    // A zero linger makes close send RST at once; tokio deprecates `set_linger` because a
    // non-zero linger blocks the thread on drop, which a zero one never does.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// One direction: reads chunks from `from`, delays them, writes them to `to`; on EOF
/// shuts down `to`'s write half once the queued chunks are written.
async fn relay<R, W>(
    mut from: R,
    mut to: W,
    link: watch::Receiver<Option<WanLink>>,
    counters: &Counters,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNK_QUEUE_MAX);
    let reader = async move {
        let mut rng = StdRng::from_entropy();
        let mut buf = vec![0u8; CHUNK_BYTES_MAX];
        let mut previous: Option<Instant> = None;
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                // Dropping `tx` tells the writer to half-close after the queue.
                return Ok::<(), io::Error>(());
            }
            let current = *link.borrow();
            let at = deliver_at(previous, Instant::now(), current, &mut rng);
            previous = Some(at);
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                // The writer is gone: it failed, and its error ends the connection.
                return Ok(());
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            to.write_all(&chunk).await?;
            counters
                .bytes_relayed
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        to.shutdown().await
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// When a chunk read at `now` is to be written: `now + delay ± jitter` (never before
/// `now`), and never before the chunk before it in the same direction.
fn deliver_at(
    previous: Option<Instant>,
    now: Instant,
    link: Option<WanLink>,
    rng: &mut impl Rng,
) -> Instant {
    let at = match link {
        None => now,
        Some(link) => {
            let jitter = i128::from(link.jitter_ms);
            let offset = if jitter == 0 {
                0
            } else {
                rng.gen_range(-jitter..=jitter)
            };
            let ms = (i128::from(link.delay_ms) + offset).clamp(0, i128::from(u64::MAX));
            let ms = u64::try_from(ms).unwrap_or(u64::MAX);
            now.checked_add(Duration::from_millis(ms))
                .unwrap_or_else(|| now + Duration::from_secs(24 * 60 * 60))
        }
    };
    match previous {
        Some(previous) if previous > at => previous,
        _ => at,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener as StdListener, TcpStream as StdStream};
    use std::time::Instant as StdInstant;

    use super::*;

    /// Safety net against hangs only; no test asserts that anything is fast.
    const IO_TIMEOUT: Duration = Duration::from_secs(20);

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    /// A server on loopback that runs `handle` on a thread for every connection.
    fn server(handle: fn(StdStream)) -> SocketAddr {
        let listener = StdListener::bind(loopback()).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || handle(stream));
            }
        });
        addr
    }

    /// Writes back everything it reads; half-closes on EOF.
    fn echo(mut stream: StdStream) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
    }

    fn proxy_to(server: SocketAddr) -> WanProxy {
        WanProxy::start(loopback(), Target::Fixed(server)).unwrap()
    }

    fn connect(proxy: &WanProxy) -> StdStream {
        let stream = StdStream::connect(proxy.local_addr()).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    fn link(delay_ms: u64, jitter_ms: u64) -> Option<WanLink> {
        Some(WanLink {
            delay_ms,
            jitter_ms,
            loss: 0.0,
        })
    }

    /// Writes `data` from another thread, half-closes, and returns all that comes back.
    fn send_and_read_back(stream: &StdStream, data: Vec<u8>, pause_every_write: bool) -> Vec<u8> {
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            if pause_every_write {
                for piece in data.chunks(4) {
                    writer.write_all(piece).unwrap();
                    std::thread::sleep(Duration::from_micros(500));
                }
            } else {
                writer.write_all(&data).unwrap();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        let mut reader = stream;
        reader.read_to_end(&mut back).unwrap();
        sender.join().unwrap();
        back
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = StdInstant::now() + IO_TIMEOUT;
        while !done() {
            assert!(StdInstant::now() < deadline, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn round_trip(stream: &mut StdStream, message: &[u8]) -> Duration {
        let started = StdInstant::now();
        stream.write_all(message).unwrap();
        let mut back = vec![0u8; message.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, message);
        started.elapsed()
    }

    #[test]
    fn relays_bytes_both_ways_exactly() {
        let proxy = proxy_to(server(echo));
        let stream = connect(&proxy);
        let data: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
            .collect();
        let back = send_and_read_back(&stream, data.clone(), false);
        assert_eq!(back.len(), data.len());
        assert!(back == data, "the echoed bytes differ from those sent");
        assert_eq!(proxy.connections_accepted(), 1);
        let expected = 2 * data.len() as u64;
        wait_for("the byte count", || proxy.bytes_relayed() >= expected);
        assert_eq!(proxy.bytes_relayed(), expected);
    }

    #[test]
    fn delay_applies_to_open_connections_and_can_be_removed() {
        let proxy = proxy_to(server(echo));
        let mut stream = connect(&proxy);
        round_trip(&mut stream, b"before");
        proxy.set_link(link(150, 0));
        let delayed = round_trip(&mut stream, b"delayed");
        assert!(
            delayed >= Duration::from_millis(300),
            "round trip took {delayed:?}, expected two crossings of 150 ms"
        );
        // A new connection is delayed too.
        let mut other = connect(&proxy);
        let delayed = round_trip(&mut other, b"new");
        assert!(delayed >= Duration::from_millis(300), "took {delayed:?}");
        proxy.set_link(None);
        round_trip(&mut stream, b"after");
        round_trip(&mut other, b"after");
        assert_eq!(proxy.connections_accepted(), 2);
    }

    #[test]
    fn order_is_kept_under_heavy_jitter() {
        let proxy = proxy_to(server(echo));
        proxy.set_link(link(5, 20));
        let stream = connect(&proxy);
        let data: Vec<u8> = (0..1000u32).flat_map(u32::to_be_bytes).collect();
        let back = send_and_read_back(&stream, data.clone(), true);
        assert_eq!(back.len(), data.len());
        assert!(back == data, "bytes came back out of order or changed");
    }

    #[test]
    fn half_close_passes_through() {
        fn reply_after_eof(mut stream: StdStream) {
            let mut request = Vec::new();
            stream.read_to_end(&mut request).unwrap();
            let reply = format!("got {} bytes", request.len());
            stream.write_all(reply.as_bytes()).unwrap();
            // Dropping closes.
        }
        let proxy = proxy_to(server(reply_after_eof));
        let mut stream = connect(&proxy);
        stream.write_all(b"hello").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "got 5 bytes");
    }

    #[test]
    fn refused_upstream_ends_the_client_connection() {
        let unused = StdListener::bind(loopback()).unwrap();
        let nobody = unused.local_addr().unwrap();
        drop(unused);
        let proxy = proxy_to(nobody);
        let mut stream = connect(&proxy);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 16];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("read {n} bytes from a connection with no upstream"),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ),
                "expected EOF or a reset, got {e}"
            ),
        }
        assert_eq!(proxy.connections_accepted(), 1);
        assert_eq!(proxy.bytes_relayed(), 0);
    }

    #[test]
    fn drop_closes_connections_and_stops_accepting() {
        let proxy = proxy_to(server(echo));
        let addr = proxy.local_addr();
        let mut stream = connect(&proxy);
        round_trip(&mut stream, b"alive");
        drop(proxy);
        let mut buf = [0u8; 16];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("read {n} bytes after the proxy was dropped"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(StdStream::connect(addr).is_err(), "still accepting");
    }

    #[test]
    fn deliver_at_keeps_order_and_never_goes_back_in_time() {
        let mut rng = StdRng::seed_from_u64(7);
        let now = Instant::now();
        assert_eq!(deliver_at(None, now, None, &mut rng), now);
        let later = now + Duration::from_secs(1);
        assert_eq!(deliver_at(Some(later), now, None, &mut rng), later);
        let mut clamped = 0;
        for _ in 0..1000 {
            let at = deliver_at(None, now, link(5, 20), &mut rng);
            assert!(at >= now && at <= now + Duration::from_millis(25));
            if at == now {
                clamped += 1;
            }
        }
        assert!(
            clamped > 0,
            "a delay of 5 ± 20 ms is clamped at 0 sometimes"
        );
        let mut previous = None;
        for _ in 0..1000 {
            let at = deliver_at(previous, now, link(5, 20), &mut rng);
            if let Some(previous) = previous {
                assert!(at >= previous, "a chunk overtook the one before it");
            }
            previous = Some(at);
        }
        let at = deliver_at(None, now, link(150, 0), &mut rng);
        assert_eq!(at, now + Duration::from_millis(150));
    }
}
