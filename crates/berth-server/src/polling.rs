//! Keep-alive connections that poll for their next request for a moment
//! after answering, before their worker parks.
//!
//! Parking and being woken is the largest cost of a short request on a VM
//! whose idle vCPUs halt (no guest halt polling): a one-client loopback round
//! trip takes about 110 µs when both sides sleep and 36 µs when one of them
//! polls (BENCHMARKS.md). So a connection that has just answered reads its
//! socket without sleeping for up to `POLL_FOR`, as the kernel's busy polling
//! does for network devices. It is bounded three ways: only right after an
//! answer, only while no request is being served anywhere on this server,
//! only on a connection that has been the only one sending requests for a
//! while (`ALONE_FOR`), and by one connection at a time. So an idle server
//! never spins, and one with several clients at work never polls. Between
//! reads it yields its CPU, so processes sharing the machine (other servers,
//! etcd, the clients) run first when they are waiting for it.
use crate::connection_limits::{deadline, Limits, Tracker};
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long a connection that has just answered reads without sleeping.
pub const POLL_FOR: Duration = Duration::from_micros(100);

/// A connection polls only once it has been the only one sending requests
/// for this long: with several clients at work there is other work to do,
/// and polling would take the CPU from it.
pub const ALONE_FOR: Duration = Duration::from_millis(1);

/// Requests being served (see `Serving`).
static SERVING: AtomicUsize = AtomicUsize::new(0);
/// Set while a connection polls: one at a time.
static POLLING: AtomicBool = AtomicBool::new(false);
/// The connection that read a request last, and when (in `clock` nanoseconds)
/// a different one took over from the one before it.
static LAST_READER: AtomicU64 = AtomicU64::new(0);
static TOOK_OVER_AT: AtomicU64 = AtomicU64::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// How many times a connection began polling.
static POLLS_BEGUN: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds since this process first asked.
fn clock() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Held while a request is being served; connections do not poll meanwhile.
/// Waits that are not work (an agent's long poll) do not hold one.
pub struct Serving(());

impl Serving {
    pub fn begin() -> Serving {
        SERVING.fetch_add(1, Ordering::AcqRel);
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A server-side TCP connection that polls briefly after each answer, and is
/// closed when its phase's deadline passes while it waits for bytes.
pub struct PollingStream {
    tcp: TcpStream,
    id: u64,
    poll_for: Duration,
    /// Something was written since the last read: the peer owes us a request.
    answered: bool,
    tracker: Arc<Tracker>,
    limits: Limits,
    /// Wakes a connection waiting for bytes at its deadline.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Counts it among the listener's open connections while it lives.
    _slot: Option<Slot>,
}

impl PollingStream {
    pub fn new(tcp: TcpStream, poll_for: Duration) -> Self {
        Self::limited(tcp, poll_for, Limits::default(), None)
    }

    fn limited(tcp: TcpStream, poll_for: Duration, limits: Limits, slot: Option<Slot>) -> Self {
        PollingStream {
            tcp,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            poll_for,
            answered: false,
            tracker: Tracker::new(Instant::now()),
            limits,
            timer: None,
            _slot: slot,
        }
    }

    /// Whether the connection's deadline has passed; otherwise its timer is set to
    /// wake it then.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = deadline(self.tracker.phase(), &self.limits) else {
            self.timer = None;
            return false;
        };
        let at = tokio::time::Instant::from_std(at);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// A request came in on this connection.
    fn read_request(&self) {
        if LAST_READER.swap(self.id, Ordering::AcqRel) != self.id {
            TOOK_OVER_AT.store(clock(), Ordering::Release);
        }
    }

    /// This connection alone has sent requests for `ALONE_FOR`.
    fn alone(&self) -> bool {
        LAST_READER.load(Ordering::Acquire) == self.id
            && clock().saturating_sub(TOOK_OVER_AT.load(Ordering::Acquire))
                >= ALONE_FOR.as_nanos() as u64
    }

    /// Reads without sleeping until data comes, the time is up, or other work
    /// starts; None when nothing came.
    fn poll_briefly(&mut self, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
        if self.poll_for.is_zero() || SERVING.load(Ordering::Acquire) != 0 || !self.alone() {
            return None;
        }
        if POLLING.swap(true, Ordering::AcqRel) {
            return None;
        }
        POLLS_BEGUN.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.poll_for;
        let fd = self.tcp.as_raw_fd();
        let got = loop {
            let unfilled = buf.initialize_unfilled();
            // SAFETY: `unfilled` is initialized memory of exactly this length,
            // and `fd` stays open while `self.tcp` is borrowed.
            let n = unsafe {
                libc::recv(
                    fd,
                    unfilled.as_mut_ptr().cast(),
                    unfilled.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                buf.advance(n as usize);
                break Some(Ok(()));
            }
            let err = io::Error::last_os_error();
            if !matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                break Some(Err(err));
            }
            if Instant::now() >= deadline || SERVING.load(Ordering::Acquire) != 0 {
                break None;
            }
            // Another thread or process waiting for this CPU runs meanwhile.
            // SAFETY: sched_yield takes no arguments and cannot fail on Linux.
            unsafe { libc::sched_yield() };
        };
        POLLING.store(false, Ordering::Release);
        got
    }
}

impl AsyncRead for PollingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let out = match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            // The waker is registered: if polling finds nothing, parking is safe.
            Poll::Pending if std::mem::take(&mut this.answered) => {
                this.poll_briefly(buf).map_or(Poll::Pending, Poll::Ready)
            }
            other => {
                this.answered = false;
                other
            }
        };
        if buf.filled().len() > before {
            this.read_request();
            this.tracker.bytes_read(Instant::now());
        }
        if out.is_pending() && this.timed_out(cx) {
            tracing::debug!(phase = ?this.tracker.phase(), "closing a connection past its deadline");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection sent nothing in time",
            )));
        }
        out
    }
}

impl AsyncWrite for PollingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let out = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.answered |= matches!(out, Poll::Ready(Ok(n)) if n > 0);
        out
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let out = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.answered |= matches!(out, Poll::Ready(Ok(n)) if n > 0);
        out
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// One open connection, counted while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts connections as `PollingStream`s, with Nagle's algorithm off (small
/// JSON answers go out at once), up to `Limits::max_connections` at once.
pub struct PollingListener {
    inner: tokio::net::TcpListener,
    poll_for: Duration,
    limits: Limits,
    open: Arc<AtomicUsize>,
    /// When a refusal was last logged (one line a second at most).
    refusal_logged: Option<Instant>,
}

impl PollingListener {
    pub fn new(inner: tokio::net::TcpListener, poll_for: Duration) -> Self {
        Self::with_limits(inner, poll_for, Limits::default())
    }

    pub fn with_limits(inner: tokio::net::TcpListener, poll_for: Duration, limits: Limits) -> Self {
        PollingListener {
            inner,
            poll_for,
            limits,
            open: Arc::new(AtomicUsize::new(0)),
            refusal_logged: None,
        }
    }

    fn refused(&mut self, addr: std::net::SocketAddr, dropped: usize) {
        let now = Instant::now();
        if self
            .refusal_logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.refusal_logged = Some(now);
            tracing::warn!(
                peer = %addr,
                open = self.limits.max_connections,
                refused = dropped,
                "refusing connections: the server holds its most (--max-connections)"
            );
        }
    }
}

impl axum::serve::Listener for PollingListener {
    type Io = PollingStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let mut dropped = 0;
        loop {
            let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            if self.open.load(Ordering::Acquire) >= self.limits.max_connections {
                // Closed at once: the client sees its connection end, not a hang.
                drop(tcp);
                dropped += 1;
                self.refused(addr, dropped);
                continue;
            }
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
            self.open.fetch_add(1, Ordering::AcqRel);
            let slot = Slot(self.open.clone());
            let stream = PollingStream::limited(tcp, self.poll_for, self.limits, Some(slot));
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The peer's address, handed to each request (`aws:SourceIp`), with its
/// connection's phase (see `connection_limits`).
#[derive(Clone, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr, pub Option<Arc<Tracker>>);

impl PeerAddr {
    pub fn tracker(&self) -> Option<&Arc<Tracker>> {
        self.1.as_ref()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, PollingListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, PollingListener>) -> Self {
        PeerAddr(*stream.remote_addr(), Some(stream.io().tracker.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_once(s: &mut PollingStream) -> Poll<Vec<u8>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut bytes = [0u8; 64];
        let mut buf = ReadBuf::new(&mut bytes);
        match Pin::new(s).poll_read(&mut cx, &mut buf) {
            Poll::Ready(r) => {
                r.unwrap();
                Poll::Ready(buf.filled().to_vec())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn answer(s: &mut PollingStream) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let n = Pin::new(s).poll_write(&mut cx, b"answer");
        assert!(matches!(n, Poll::Ready(Ok(n)) if n == 6));
    }

    fn polls_begun() -> u64 {
        POLLS_BEGUN.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until some connection is polling.
    fn until_polling() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !POLLING.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "no connection began polling");
            std::thread::yield_now();
        }
    }

    /// The peer sends `bytes` once a connection is polling, from another thread.
    fn send_when_polling(
        peer: &std::net::TcpStream,
        bytes: &'static [u8],
    ) -> std::thread::JoinHandle<()> {
        let mut peer = peer.try_clone().unwrap();
        std::thread::spawn(move || {
            until_polling();
            peer.write_all(bytes).unwrap();
        })
    }

    /// A read that must not poll: with nothing to read it parks at once,
    /// and no poll began; then the request comes and is read.
    fn parks_without_polling(s: &mut PollingStream, peer: &std::net::TcpStream, bytes: &[u8]) {
        let before = polls_begun();
        assert_eq!(read_once(s), Poll::Pending);
        assert_eq!(polls_begun(), before, "the read polled");
        let mut peer = peer.try_clone().unwrap();
        peer.write_all(bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match read_once(s) {
                Poll::Ready(got) => {
                    assert_eq!(got, bytes);
                    return;
                }
                Poll::Pending => assert!(Instant::now() < deadline, "the request never came"),
            }
            std::thread::yield_now();
        }
    }

    // One test: the polling budget and the serving count are process-wide.
    // Every wait is on a condition (a poll begun, bytes arrived), never on a
    // sleep outlasting another thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn polls_only_after_an_answer_alone_and_while_nothing_else_is_served() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_nonblocking(true).unwrap();
        let tcp = TcpStream::from_std(tcp).unwrap();
        // Long enough that a poll ends only by what the test sends.
        let mut s = PollingStream::new(tcp, Duration::from_secs(60));

        // Nothing answered yet: a read with nothing to read parks at once.
        parks_without_polling(&mut s, &peer, b"first");

        // Just answered, and alone for a while: the read keeps reading until
        // the next request comes (sent only once the poll has begun).
        std::thread::sleep(ALONE_FOR * 2);
        answer(&mut s);
        let before = polls_begun();
        let sent = send_when_polling(&peer, b"second");
        assert_eq!(read_once(&mut s), Poll::Ready(b"second".to_vec()));
        sent.join().unwrap();
        assert_eq!(polls_begun(), before + 1);

        // Polling found its request; the next read with nothing there parks at once.
        let before = polls_begun();
        assert_eq!(read_once(&mut s), Poll::Pending);
        assert_eq!(polls_begun(), before);

        // Answered, but another request is being served: no polling.
        answer(&mut s);
        let serving = Serving::begin();
        let before = polls_begun();
        assert_eq!(read_once(&mut s), Poll::Pending);
        assert_eq!(polls_begun(), before, "polled while another was served");
        drop(serving);
        (&peer).write_all(b"third").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while read_once(&mut s) != Poll::Ready(b"third".to_vec()) {
            assert!(Instant::now() < deadline, "the third request never came");
            std::thread::yield_now();
        }

        // Answered, but another connection sent a request lately: no polling.
        let other_peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (other, _) = listener.accept().unwrap();
        other.set_nonblocking(true).unwrap();
        let mut other = PollingStream::new(TcpStream::from_std(other).unwrap(), Duration::ZERO);
        parks_without_polling(&mut other, &other_peer, b"other");
        answer(&mut s);
        parks_without_polling(&mut s, &peer, b"fourth");

        // The peer closing while polled for reads as the end of the stream.
        std::thread::sleep(ALONE_FOR * 2);
        answer(&mut s);
        let closer = std::thread::spawn(move || {
            // Unread answers would turn the close into a reset.
            let mut answers = [0u8; 24];
            std::io::Read::read_exact(&mut &peer, &mut answers).unwrap();
            assert_eq!(&answers[..6], b"answer");
            until_polling();
            drop(peer);
        });
        assert_eq!(read_once(&mut s), Poll::Ready(vec![]));
        closer.join().unwrap();
    }
}
