//! One HTTP/1.1 keep-alive connection and the request/response exchange: a
//! minimal client over TCP, or TLS over TCP. Requests arrive pre-serialized
//! (see `plan.rs`) and go out in one write; responses are parsed by
//! [`ResponseParser`] from a per-connection buffer and their bodies
//! discarded, so a request allocates nothing.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::http1::{BodySink, MAX_HEAD, ResponseParser};
use super::stats::{FailureKind, latency_histogram, record_n};

pub(crate) type Outcome = Result<(), FailureKind>;

/// Initial read buffer per connection; it grows (up to `MAX_BUF`) only for
/// response heads or chunk lines that do not fit.
const INITIAL_BUF: usize = 4 * 1024;
/// Larger than every limit of the parser, so a response it accepts fits.
const MAX_BUF: usize = 2 * MAX_HEAD;

/// Where connections of one endpoint go, and how they are secured.
#[derive(Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    pub tls: Option<TlsTarget>,
}

#[derive(Clone)]
pub(crate) struct TlsTarget {
    /// Built from a `ClientConfig` shared by every worker, so a reconnect
    /// resumes an earlier session.
    pub connector: TlsConnector,
    /// SNI and the name verified.
    pub name: ServerName<'static>,
    /// A handshake slower than this fails as `tls` ("handshake timeout").
    pub handshake_timeout: Duration,
}

#[cfg(test)]
impl Target {
    pub fn plain(addr: SocketAddr) -> Target {
        Target { addr, tls: None }
    }
}

/// A connection's byte stream: plain TCP or TLS over TCP. Bytes moved are
/// counted here (decrypted bytes for TLS), for both HTTP versions.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The protocol the server chose by ALPN.
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }
}

impl AsyncRead for Stream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        };
        let n = buf.filled().len() - before;
        if n > 0 {
            BYTES.with(|b| b.set((b.get().0 + n as u64, b.get().1)));
        }
        r
    }
}

impl AsyncWrite for Stream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, bytes),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, bytes),
        };
        if let Poll::Ready(Ok(n)) = r {
            BYTES.with(|b| b.set((b.get().0, b.get().1 + n as u64)));
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Opens a connection to `target`: TCP, then the TLS handshake if any,
/// each timed into this thread's connection figures.
pub(crate) async fn open(target: &Target) -> Result<Stream, FailureKind> {
    let t0 = Instant::now();
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|_| FailureKind::Connect)?;
    // Small requests must not wait for Nagle.
    tcp.set_nodelay(true).map_err(|_| FailureKind::Connect)?;
    let t1 = Instant::now();
    let Some(tls) = &target.tls else {
        note_opened(t1 - t0, None);
        return Ok(Stream::Plain(tcp));
    };
    let handshake = tls.connector.connect(tls.name.clone(), tcp);
    match tokio::time::timeout(tls.handshake_timeout, handshake).await {
        Ok(Ok(s)) => {
            note_opened(t1 - t0, Some(t1.elapsed()));
            Ok(Stream::Tls(Box::new(s)))
        }
        Ok(Err(e)) => {
            note_tls_failure(crate::tls::io_reason(&e).unwrap_or_else(|| e.to_string()));
            Err(FailureKind::Tls)
        }
        Err(_) => {
            note_tls_failure(format!(
                "handshake timeout (no handshake within {:.1} s)",
                tls.handshake_timeout.as_secs_f64()
            ));
            Err(FailureKind::Tls)
        }
    }
}

/// Connections opened by this worker thread, their setup times, and the
/// reasons TLS failed.
#[derive(Debug)]
pub(crate) struct ConnFigures {
    pub opened: u64,
    /// TCP connect times, µs.
    pub connect: Histogram<u64>,
    /// TLS handshake times, µs.
    pub tls: Histogram<u64>,
    /// Each distinct TLS failure reason and how often it happened.
    pub tls_failures: Vec<(String, u64)>,
}

impl ConnFigures {
    fn new() -> Self {
        ConnFigures {
            opened: 0,
            connect: latency_histogram(),
            tls: latency_histogram(),
            tls_failures: Vec::new(),
        }
    }
}

thread_local! {
    static CONNS: RefCell<Option<ConnFigures>> = const { RefCell::new(None) };
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn note_opened(connect: Duration, tls: Option<Duration>) {
    CONNS.with(|c| {
        let mut c = c.borrow_mut();
        let f = c.get_or_insert_with(ConnFigures::new);
        f.opened += 1;
        record_n(&mut f.connect, micros(connect), 1);
        if let Some(t) = tls {
            record_n(&mut f.tls, micros(t), 1);
        }
    });
}

/// A TLS failure with its reason (kept per distinct reason, bounded).
pub(crate) fn note_tls_failure(reason: String) {
    CONNS.with(|c| {
        let mut c = c.borrow_mut();
        let f = c.get_or_insert_with(ConnFigures::new);
        if let Some(e) = f.tls_failures.iter_mut().find(|(r, _)| *r == reason) {
            e.1 += 1;
        } else if f.tls_failures.len() < 16 {
            f.tls_failures.push((reason, 1));
        }
    });
}

/// This thread's connection figures so far, leaving it with none.
pub(crate) fn take_conn_figures() -> ConnFigures {
    CONNS
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(ConnFigures::new)
}

/// One request as sent on the wire, with what the exchange must know of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// Request line, headers and body.
    pub bytes: &'a [u8],
    /// A HEAD request: its response has no body.
    pub head: bool,
    /// Safe to send again if a reused connection turns out to have been
    /// closed before any response byte arrived (GET, HEAD, OPTIONS, TRACE).
    pub replayable: bool,
    /// The request asks for `Connection: close`.
    pub close: bool,
    pub expect_status: Option<u16>,
}

pub(crate) struct Conn {
    stream: Stream,
    buf: Box<[u8]>,
    /// `buf[pos..end]` holds bytes read but not yet parsed.
    pos: usize,
    end: usize,
    parser: ResponseParser,
}

/// How a round trip failed.
enum Failed {
    /// Nothing was written; the request can be sent on another connection.
    Unwritten,
    /// The connection ended (or was reset) before any response byte.
    ClosedEarly,
    Other,
}

impl Conn {
    async fn connect(target: &Target) -> Result<Conn, FailureKind> {
        let stream = open(target).await?;
        Ok(Conn {
            stream,
            buf: vec![0; INITIAL_BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            parser: ResponseParser::new(),
        })
    }

    /// The server closed (or wrote to) this idle connection. Costs no system
    /// call unless the socket was reported readable: an idle keep-alive
    /// connection has nothing to read, so any byte or EOF means it is unusable.
    pub(crate) fn is_closed(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match &mut self.stream {
            Stream::Plain(s) => match s.try_read(&mut probe) {
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
                Ok(_) => true,
            },
            // Through rustls, so what an idle TLS connection may carry
            // (session tickets, a close_notify) is read as TLS, not lost.
            Stream::Tls(s) => {
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(Waker::noop());
                !matches!(
                    Pin::new(&mut **s).poll_read(&mut cx, &mut buf),
                    Poll::Pending
                )
            }
        }
    }

    /// Writes `req` and reads its whole response. `Ok(keep_alive)`.
    async fn round_trip<S: BodySink>(
        &mut self,
        req: &Outgoing<'_>,
        sink: &mut S,
    ) -> Result<(u16, bool), Failed> {
        let mut written = 0;
        while written < req.bytes.len() {
            match write_some(&mut self.stream, &req.bytes[written..]).await {
                Ok(0) | Err(_) if written == 0 => return Err(Failed::Unwritten),
                Ok(0) | Err(_) => return Err(Failed::Other),
                Ok(n) => written += n,
            }
        }
        if let Stream::Tls(_) = self.stream
            && poll_fn(|cx| Pin::new(&mut self.stream).poll_flush(cx))
                .await
                .is_err()
        {
            return Err(Failed::Other);
        }
        self.parser.start(req.head);
        let mut received = false;
        loop {
            let (used, done) = self
                .parser
                .feed_to(&self.buf[self.pos..self.end], sink)
                .map_err(|_| Failed::Other)?;
            self.pos += used;
            if let Some(resp) = done {
                // We never pipeline: bytes beyond the response were not asked
                // for, so the connection is out of step and is not reused.
                let clean = self.pos == self.end;
                return Ok((resp.status, resp.keep_alive && clean && !req.close));
            }
            self.make_room().ok_or(Failed::Other)?;
            match read_some(&mut self.stream, &mut self.buf[self.end..]).await {
                Ok(0) => {
                    if !received {
                        return Err(Failed::ClosedEarly);
                    }
                    let resp = self.parser.eof().map_err(|_| Failed::Other)?;
                    if !sink.complete_at_eof() {
                        return Err(Failed::Other);
                    }
                    return Ok((resp.status, false));
                }
                Ok(n) => {
                    received = true;
                    self.end += n;
                }
                Err(e) if !received && e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(Failed::ClosedEarly);
                }
                Err(_) => return Err(Failed::Other),
            }
        }
    }

    /// Ensures free space after `end`: moves unparsed bytes to the front, or
    /// grows the buffer. `None` if it is already at its maximum and full
    /// (the parser's limits make that unreachable).
    fn make_room(&mut self) -> Option<()> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        }
        if self.end < self.buf.len() {
            return Some(());
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            return Some(());
        }
        if self.buf.len() >= MAX_BUF {
            return None;
        }
        let mut bigger = vec![0; (self.buf.len() * 2).min(MAX_BUF)];
        bigger[..self.end].copy_from_slice(&self.buf[..self.end]);
        self.buf = bigger.into_boxed_slice();
        Some(())
    }
}

/// One `read` through tokio's `AsyncRead`, which (unlike `try_read`) clears
/// the socket's cached readiness after a short read, so the next read of an
/// idle connection costs no system call.
async fn read_some(stream: &mut Stream, buf: &mut [u8]) -> io::Result<usize> {
    let mut buf = ReadBuf::new(buf);
    poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut buf)).await?;
    Ok(buf.filled().len())
}

async fn write_some(stream: &mut Stream, bytes: &[u8]) -> io::Result<usize> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, bytes)).await
}

thread_local! {
    /// Bytes received and sent by this worker thread's connections: each
    /// worker runs its own single-threaded runtime, so no atomics are needed.
    static BYTES: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// (received, sent) bytes of this thread's connections so far.
pub(crate) fn bytes_moved() -> (u64, u64) {
    BYTES.with(|b| b.get())
}

/// Sends `req` on `slot` (connecting if empty or closed) and reads the whole
/// response. The connection is left in `slot` only if it is reusable.
/// `sink` sees the response body as it arrives (`()` discards it).
pub(crate) async fn exchange<S: BodySink>(
    slot: &mut Option<Conn>,
    target: &Target,
    req: Outgoing<'_>,
    mut sink: S,
) -> Outcome {
    // A reused connection may have been closed by the server while idle
    // without us noticing yet; the request is then sent again, once, on a
    // fresh connection, if nothing was written or no response byte came back
    // and the request is one that may be repeated.
    for _ in 0..2 {
        let reused = slot.as_mut().is_some_and(|c| !c.is_closed());
        if !reused {
            *slot = None;
            *slot = Some(Conn::connect(target).await?);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(FailureKind::Connect);
        };
        match conn.round_trip(&req, &mut sink).await {
            Ok((status, keep_alive)) => {
                if !keep_alive {
                    *slot = None;
                }
                let ok = match req.expect_status {
                    Some(want) => status == want,
                    None => (200..400).contains(&status),
                };
                return if ok { Ok(()) } else { Err(FailureKind::Status) };
            }
            Err(failed) => {
                *slot = None;
                let retry = match failed {
                    Failed::Unwritten => true,
                    Failed::ClosedEarly => req.replayable,
                    Failed::Other => false,
                };
                if !(reused && retry) {
                    return Err(FailureKind::Io);
                }
            }
        }
    }
    Err(FailureKind::Io)
}

#[cfg(test)]
mod tests {
    //! The client over real sockets against a scripted server that writes
    //! each response in pieces, so every read boundary is exercised.

    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use super::*;

    struct Step {
        pieces: Vec<Vec<u8>>,
        /// Close the connection after writing.
        close: bool,
    }

    fn step(pieces: &[&[u8]], close: bool) -> Step {
        Step {
            pieces: pieces.iter().map(|p| p.to_vec()).collect(),
            close,
        }
    }

    fn bytewise(s: &[u8]) -> Vec<&[u8]> {
        s.chunks(1).collect()
    }

    /// Answers each request (one at a time, over as many connections as the
    /// client opens) with the next step; returns when the script is done.
    fn scripted(script: Vec<Step>) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let thread = thread::spawn(move || {
            let mut steps = script.into_iter();
            'accept: loop {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = s.set_nodelay(true);
                loop {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => continue 'accept,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    let Some(step) = steps.next() else {
                        return;
                    };
                    for p in &step.pieces {
                        let _ = s.write_all(p);
                        let _ = s.flush();
                        thread::sleep(Duration::from_micros(300));
                    }
                    if steps.len() == 0 {
                        return;
                    }
                    if step.close {
                        continue 'accept;
                    }
                }
            }
        });
        (addr, accepted, thread)
    }

    fn get() -> Outgoing<'static> {
        Outgoing {
            bytes: b"GET / HTTP/1.1\r\nhost: t\r\n\r\n",
            head: false,
            replayable: true,
            close: false,
            expect_status: None,
        }
    }

    fn post() -> Outgoing<'static> {
        Outgoing {
            bytes: b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n",
            replayable: false,
            ..get()
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    async fn ex(slot: &mut Option<Conn>, addr: SocketAddr, req: Outgoing<'_>) -> Outcome {
        tokio::time::timeout(
            Duration::from_secs(10),
            exchange(slot, &Target::plain(addr), req, ()),
        )
        .await
        .expect("exchange hung")
    }

    #[test]
    fn responses_in_pieces_keep_alive_and_reconnects() {
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\
            Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
        let big_head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "b".repeat(3 * INITIAL_BUF)
        );
        let big_body = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1 << 20);
        let body = vec![b'x'; 1 << 20];
        let script = vec![
            Step {
                pieces: bytewise(chunked).into_iter().map(<[u8]>::to_vec).collect(),
                close: false,
            },
            step(
                &[
                    b"HTTP/1.1 200 OK\r\nContent-",
                    b"Length: 3\r\n\r",
                    b"\nab",
                    b"c",
                ],
                false,
            ),
            step(&[big_head.as_bytes()], false),
            step(&[big_body.as_bytes(), &body[..1000], &body[1000..]], false),
            step(
                &[b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"],
                true,
            ),
            // Close-delimited body on the new connection.
            step(&[b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"close"], true),
            // Bytes beyond the response: the connection is not reused.
            step(
                &[b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"],
                false,
            ),
            step(
                &[b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\n?"],
                false,
            ),
            step(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"], false),
        ];
        let (addr, accepted, server) = scripted(script);
        block_on(async {
            let mut slot = None;
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert!(slot.is_some());
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
            assert_eq!(ex(&mut slot, addr, get()).await, Err(FailureKind::Status));
            assert!(slot.is_none());
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert!(slot.is_none());
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert!(slot.is_none());
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
            let expect_404 = Outgoing {
                expect_status: Some(404),
                ..get()
            };
            assert_eq!(ex(&mut slot, addr, expect_404).await, Ok(()));
            assert_eq!(
                ex(&mut slot, addr, expect_404).await,
                Err(FailureKind::Status)
            );
            assert_eq!(accepted.load(Ordering::SeqCst), 4);
        });
        server.join().unwrap();
    }

    #[test]
    fn broken_responses_are_io_failures() {
        let script = vec![
            step(
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
                true,
            ),
            step(&[b"HTTP/1.1 abc\r\n\r\n"], false),
            step(
                &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"],
                true,
            ),
            step(&[b"HTTP/1.1 100 Continue\r\n\r\n"], true),
            step(&[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], false),
        ];
        let (addr, accepted, server) = scripted(script);
        block_on(async {
            let mut slot = None;
            for _ in 0..4 {
                assert_eq!(ex(&mut slot, addr, get()).await, Err(FailureKind::Io));
                assert!(slot.is_none());
            }
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert_eq!(accepted.load(Ordering::SeqCst), 5);
        });
        server.join().unwrap();
    }

    #[test]
    fn idle_close_is_retried_only_when_safe() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let script = vec![
            step(&[ok], false),
            // The server drops a reused connection without answering: a GET
            // is sent again on a new connection...
            step(&[], true),
            step(&[ok], false),
            // ...a POST is not.
            step(&[], true),
            step(&[ok], false),
        ];
        let (addr, accepted, server) = scripted(script);
        block_on(async {
            let mut slot = None;
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert_eq!(ex(&mut slot, addr, get()).await, Ok(()));
            assert_eq!(accepted.load(Ordering::SeqCst), 2);
            assert_eq!(ex(&mut slot, addr, post()).await, Err(FailureKind::Io));
            assert!(slot.is_none());
            assert_eq!(ex(&mut slot, addr, post()).await, Ok(()));
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
        });
        server.join().unwrap();
    }

    #[test]
    fn refused_connection_is_a_connect_failure() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        block_on(async {
            let mut slot = None;
            assert_eq!(ex(&mut slot, addr, get()).await, Err(FailureKind::Connect));
        });
    }
}
