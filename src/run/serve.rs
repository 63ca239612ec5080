//! `run --serve`: a live dashboard of the run. `/` is a page written for this
//! tool (HTML, CSS and JavaScript embedded in the binary, nothing fetched from
//! elsewhere), `/api/state` the whole state as JSON, `/events` a
//! Server-Sent Events stream: the full state on connect (so a reconnect or a
//! reload shows everything), `tick` every second, `cell` on every status
//! change, `search` for every probe verdict, `findings` once the analysis
//! ran, `finished` when the run ended (then the stream closes).
//!
//! The dashboard must never cost the run it watches: every frame is
//! serialized once and shared by every client (a client holds a reference,
//! not a copy), at most [`MAX_CONNECTIONS`] connections are served at once,
//! a connection that sends no request within [`IDLE_TIMEOUT`] is closed, and
//! a client that stops reading for [`STALL_TIMEOUT`] is dropped.

use std::cell::Cell;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use super::watch::{Watch, WatchEvent, WatchState};
use crate::error::RunError;
use crate::results::RunDir;

const PAGE: &str = include_str!("dashboard.html");

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The default address: this machine only.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:8089";

/// Connections served at once; more are closed as soon as they are accepted.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// A connection that sends no (next) request within this is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client whose socket took no byte for this long, while bytes waited for
/// it, is dropped.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes hyper buffers per connection before it stops taking frames.
const WRITE_BUFFER: usize = 16 * 1024;
/// Frames kept for clients that are behind; one further behind is dropped.
const BACKLOG: usize = 64;

/// Binds the dashboard's address before the run starts, so a taken port or
/// a bad address stops the run before any load is sent.
pub fn bind(addr: &str) -> Result<std::net::TcpListener, RunError> {
    let parsed: SocketAddr = addr.parse().map_err(|_| {
        RunError::Usage(format!(
            "--serve {addr:?}: not an address; write IP:PORT, e.g. --serve {DEFAULT_ADDR} (or 0.0.0.0:8089 to listen on every interface)"
        ))
    })?;
    let listener = std::net::TcpListener::bind(parsed).map_err(|e| {
        RunError::Failed(format!(
            "--serve {addr}: cannot listen there: {e}; pick a free port, e.g. --serve 127.0.0.1:8090"
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| RunError::Failed(format!("--serve {addr}: {e}")))?;
    if !parsed.ip().is_loopback() {
        eprintln!(
            "warning: --serve {addr} listens beyond this machine: anyone who can reach {} can read the run's plan name, matrix and figures (no password, no TLS); use --serve {DEFAULT_ADDR} unless that is what you want",
            if parsed.ip().is_unspecified() {
                "any of its addresses".to_string()
            } else {
                parsed.ip().to_string()
            }
        );
    }
    Ok(listener)
}

/// The dashboard of one run: what it shows, the run folder whose secrets it
/// masks like every file and log line, and the frames every client shares.
#[derive(Clone)]
pub(crate) struct Server {
    inner: Rc<Inner>,
}

struct Inner {
    watch: Watch,
    dir: RunDir,
    frames: broadcast::Sender<Bytes>,
    /// The run's events, subscribed before the run starts; taken by the publisher.
    events: std::cell::RefCell<Option<broadcast::Receiver<WatchEvent>>>,
    /// Connections open now, and event streams among them.
    open: Cell<usize>,
    streams: Arc<AtomicUsize>,
    /// Set once the `finished` frame went out.
    finished: Cell<bool>,
    seq: Cell<u64>,
    /// The address bound: Host headers that name it are accepted.
    local: Cell<Option<SocketAddr>>,
}

impl Server {
    pub fn new(watch: Watch, dir: RunDir) -> Self {
        let (frames, _) = broadcast::channel(BACKLOG);
        Server {
            inner: Rc::new(Inner {
                events: std::cell::RefCell::new(Some(watch.subscribe())),
                watch,
                dir,
                frames,
                open: Cell::new(0),
                streams: Arc::new(AtomicUsize::new(0)),
                finished: Cell::new(false),
                seq: Cell::new(0),
                local: Cell::new(None),
            }),
        }
    }

    /// Serves until the task is aborted.
    pub async fn serve(self, listener: std::net::TcpListener) {
        let Ok(listener) = TcpListener::from_std(listener) else {
            return;
        };
        self.inner.local.set(listener.local_addr().ok());
        tokio::task::spawn_local(self.clone().publish());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors or the like: the run goes on; try later.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if self.inner.open.get() >= MAX_CONNECTIONS {
                drop(stream);
                continue;
            }
            self.inner.open.set(self.inner.open.get() + 1);
            let server = self.clone();
            tokio::task::spawn_local(async move {
                server.connection(stream).await;
                server.inner.open.set(server.inner.open.get() - 1);
            });
        }
    }

    /// Waits (at most `limit`) until every event stream has taken the
    /// `finished` frame and closed.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.inner.streams.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn connection(&self, stream: tokio::net::TcpStream) {
        use std::os::fd::AsRawFd;
        // The socket stays open as long as the connection future is alive,
        // which outlives the watchdog's every look at it.
        let watchdog = stalled(stream.as_raw_fd());
        let server = self.clone();
        let service = service_fn(move |req| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(&req)) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(IDLE_TIMEOUT)
            .max_buf_size(WRITE_BUFFER)
            .serve_connection(TokioIo::new(stream), service);
        // Dropping the connection closes it.
        tokio::select! {
            _ = conn => {}
            () = watchdog => {}
        }
    }

    fn handle(&self, req: &Request<Incoming>) -> Response<Body> {
        if !self.host_allowed(req) {
            return plain(
                StatusCode::MISDIRECTED_REQUEST,
                "this dashboard answers only to the address it was started on (Host header refused)",
            );
        }
        if *req.method() != Method::GET {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only");
        }
        match req.uri().path() {
            "/" | "/index.html" => full("text/html; charset=utf-8", self.page()),
            "/api/state" => full("application/json", self.state_json()),
            "/events" => self.events(),
            _ => plain(
                StatusCode::NOT_FOUND,
                "not found: try / , /api/state or /events",
            ),
        }
    }

    /// DNS rebinding: a page of another site whose name now resolves to this
    /// machine sends its own name as Host. Bound to loopback, only loopback
    /// names and the bound address are answered; bound to a specific other
    /// address, that address too; bound to every interface, any name (the
    /// user chose to be reachable by any).
    fn host_allowed(&self, req: &Request<Incoming>) -> bool {
        let Some(local) = self.inner.local.get() else {
            return true;
        };
        if local.ip().is_unspecified() {
            return true;
        }
        let Some(host) = req.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        host_matches(host, local)
    }

    fn redacted<T: serde::Serialize>(&self, value: &T) -> String {
        self.inner
            .dir
            .redact(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
    }

    fn state_json(&self) -> String {
        let json = self.inner.watch.read(serde_json::to_string);
        self.inner
            .dir
            .redact(&json.unwrap_or_else(|_| "null".into()))
    }

    /// The page with the state as it is now inlined, so a reload draws
    /// everything at once.
    fn page(&self) -> String {
        PAGE.replace("{{STATE}}", &script_safe(&self.state_json()))
    }

    fn frame(&self, event: &str, data: &str) -> Bytes {
        let id = self.inner.seq.get() + 1;
        self.inner.seq.set(id);
        Bytes::from(format!("event: {event}\nid: {id}\ndata: {data}\n\n"))
    }

    /// Turns the run's events into frames, each serialized once for every
    /// client; a tick once a second while the run goes on.
    async fn publish(self) {
        let taken = self.inner.events.borrow_mut().take();
        let Some(mut rx) = taken else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sent_series = 0usize;
        loop {
            let frame = tokio::select! {
                _ = tick.tick() => {
                    let data = self.inner.watch.read(|s| {
                        let (data, n) = tick_data(s, sent_series);
                        sent_series = n;
                        data
                    });
                    self.frame("tick", &self.redacted(&data))
                }
                ev = rx.recv() => match ev {
                    Ok(WatchEvent::Tick) => continue,
                    Ok(WatchEvent::Cell(c, _) | WatchEvent::Added(c)) => {
                        let data = self.inner.watch.read(|s| serde_json::json!({
                            "cell": s.cells.get(c),
                            "current": s.current,
                            "eta_seconds": s.eta_seconds,
                        }));
                        self.frame("cell", &self.redacted(&data))
                    }
                    Ok(WatchEvent::Search(_)) => {
                        let data = self.inner.watch.read(|s| serde_json::json!({ "searches": s.searches }));
                        self.frame("search", &self.redacted(&data))
                    }
                    Ok(WatchEvent::Findings) => {
                        let data = self.inner.watch.read(|s| serde_json::json!({
                            "findings": s.findings,
                            "status": s.status,
                        }));
                        self.frame("findings", &self.redacted(&data))
                    }
                    Ok(WatchEvent::Finished) | Err(broadcast::error::RecvError::Closed) => {
                        let data = self.state_json();
                        let frame = self.frame("finished", &data);
                        self.inner.finished.set(true);
                        let _ = self.inner.frames.send(frame);
                        return;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let data = self.state_json();
                        self.frame("state", &data)
                    }
                },
            };
            // No client is fine.
            let _ = self.inner.frames.send(frame);
        }
    }

    fn events(&self) -> Response<Body> {
        let rx = self.inner.frames.subscribe();
        let first = {
            let mut bytes = b"retry: 1000\n".to_vec();
            let event = if self.inner.finished.get() {
                "finished"
            } else {
                "state"
            };
            bytes.extend_from_slice(&self.frame(event, &self.state_json()));
            Bytes::from(bytes)
        };
        let open = Stream {
            streams: self.inner.streams.clone(),
            rx,
            first: Some(first),
            done: self.inner.finished.get(),
        };
        self.inner.streams.fetch_add(1, Ordering::Relaxed);
        let stream = futures_util::stream::unfold(open, |mut s| async move {
            if let Some(first) = s.first.take() {
                return Some((Ok(Frame::data(first)), s));
            }
            if s.done {
                return None;
            }
            match s.rx.recv().await {
                Ok(frame) => {
                    s.done = frame.starts_with(b"event: finished\n");
                    Some((Ok(Frame::data(frame)), s))
                }
                // Too far behind to catch up: dropped, it reconnects and
                // gets the whole state.
                Err(_) => None,
            }
        });
        let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
        let h = r.headers_mut();
        if let Ok(v) = "text/event-stream".parse() {
            h.insert(CONTENT_TYPE, v);
        }
        if let Ok(v) = "no-store".parse() {
            h.insert(CACHE_CONTROL, v);
        }
        r
    }
}

/// One client's event stream: a receiver of the shared frames.
struct Stream {
    streams: Arc<AtomicUsize>,
    rx: broadcast::Receiver<Bytes>,
    first: Option<Bytes>,
    done: bool,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether `host` (a Host header) names the loopback interface or `local`.
fn host_matches(host: &str, local: SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() && !p.contains(']') => (n, Some(p)),
        _ => (host, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().ok() != Some(local.port())) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == local.ip(),
        Err(_) => false,
    }
}

/// JSON made safe inside a `<script>` element: no `<` (so no `</script>`,
/// `<!--` or `<script`), `>` or `&` survive; the JSON means the same.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The current cell's figures (measured window only), and the whole run's
/// seconds not sent yet (from `sent` on): every client gets the same.
fn tick_data(s: &WatchState, sent: usize) -> (serde_json::Value, usize) {
    let live = s.current.and(s.live.as_ref());
    let sent = sent.min(s.series.len());
    let data = serde_json::json!({
        "cell": s.current.and_then(|c| s.cells.get(c)).map(|c| c.id.clone()),
        "index": s.current,
        "users": live.map(|l| l.users),
        "rps": live.and_then(|l| l.rps),
        "p50": live.and_then(|l| l.p50_ms),
        "p95": live.and_then(|l| l.p95_ms),
        "failures": live.map(|l| l.failures),
        "phase": live.map(|l| l.phase),
        "window_secs": live.map(|l| l.window_secs),
        "by_name": live.map(|l| &l.by_name),
        "ttft_p95": live.and_then(|l| l.stream.as_ref()).map(|s| s.ttft_p95_ms),
        "itl_p95": live.and_then(|l| l.stream.as_ref()).map(|s| s.itl_p95_ms),
        "tokens_per_s": live.and_then(|l| l.stream.as_ref()).map(|s| s.tokens_per_s),
        "second": s.series.last(),
        "seconds": &s.series[sent..],
        "elapsed_seconds": s.elapsed_seconds,
        "eta_seconds": s.eta_seconds,
    });
    (data, s.series.len())
}

/// Resolves when the peer has taken no byte for [`STALL_TIMEOUT`] while
/// bytes waited in the socket for it.
async fn stalled(fd: std::os::fd::RawFd) {
    let mut last_acked = None;
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some((acked, waiting)) = tcp_progress(fd) else {
            return std::future::pending().await;
        };
        if waiting == 0 || last_acked != Some(acked) {
            last_acked = Some(acked);
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= STALL_TIMEOUT {
            return;
        }
    }
}

/// Bytes the peer acknowledged so far, and bytes waiting for it (sent and
/// not acknowledged, or not sent yet), from the kernel's TCP_INFO.
fn tcp_progress(fd: std::os::fd::RawFd) -> Option<(u64, u64)> {
    // SAFETY: tcp_info is plain data, getsockopt writes at most `len` bytes
    // into it, and `fd` is the connection's socket, open while it is served.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        );
        if rc != 0 || (len as usize) < std::mem::size_of::<libc::tcp_info>() {
            return None;
        }
        Some((
            info.tcpi_bytes_acked,
            u64::from(info.tcpi_notsent_bytes) + u64::from(info.tcpi_unacked),
        ))
    }
}

fn full(content_type: &str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    if let Ok(v) = "no-store".parse() {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = full("text/plain; charset=utf-8", format!("{text}\n"));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_and_the_bound_address_are_answered() {
        let local: SocketAddr = "127.0.0.1:8089".parse().unwrap();
        for ok in [
            "127.0.0.1:8089",
            "localhost:8089",
            "LOCALHOST",
            "[::1]:8089",
            "127.0.0.1",
        ] {
            assert!(host_matches(ok, local), "{ok}");
        }
        for bad in [
            "evil.example:8089",
            "evil.example",
            "127.0.0.1:9999",
            "10.0.0.1:8089",
            "localhost.evil.example:8089",
            "",
        ] {
            assert!(!host_matches(bad, local), "{bad}");
        }
        let lan: SocketAddr = "10.1.2.3:8089".parse().unwrap();
        assert!(host_matches("10.1.2.3:8089", lan));
        assert!(!host_matches("evil.example:8089", lan));
    }

    #[test]
    fn embedded_json_cannot_open_or_close_an_element() {
        let json = serde_json::json!({"v": "<!--<script></script>&"}).to_string();
        let safe = script_safe(&json);
        for bad in ["<!--", "<script", "</", "<", ">"] {
            assert!(!safe.contains(bad), "{safe}");
        }
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["v"], "<!--<script></script>&");
    }
}
