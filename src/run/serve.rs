//! `run --serve`: a live dashboard of the run. `/` is a page written for this
//! tool (HTML, CSS and JavaScript embedded in the binary, nothing fetched from
//! elsewhere), `/api/state` the whole state as JSON, `/events` a
//! Server-Sent Events stream: the full state on connect (so a reconnect or a
//! reload shows everything), `tick` every second, `cell` on every status
//! change, `findings` once the analysis ran.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::error::RunError;
use crate::results::RunDir;
use crate::steps::watch::{Watch, WatchEvent};

const PAGE: &str = include_str!("dashboard.html");

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The default address: this machine only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8089";

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
    Ok(listener)
}

/// What the dashboard shows, and the run folder whose secrets it masks
/// like every file and log line.
#[derive(Clone)]
struct Source {
    watch: Watch,
    dir: RunDir,
}

impl Source {
    fn json<T: serde::Serialize>(&self, value: &T) -> String {
        self.dir
            .redact(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
    }
}

/// Serves until the task is dropped with the run's runtime.
pub async fn serve(listener: std::net::TcpListener, watch: Watch, dir: RunDir) {
    let source = Source { watch, dir };
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let source = source.clone();
        tokio::task::spawn_local(async move {
            let service = service_fn(move |req| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(handle(&source, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(source: &Source, req: &Request<Incoming>) -> Response<Body> {
    if *req.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    match req.uri().path() {
        "/" | "/index.html" => full("text/html; charset=utf-8", page(source)),
        "/api/state" => full("application/json", source.json(&source.watch.snapshot())),
        "/events" => events(source),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try / , /api/state or /events",
        ),
    }
}

/// The page with the state as it is now inlined, so a reload draws
/// everything at once.
fn page(source: &Source) -> String {
    let state = source.json(&source.watch.snapshot());
    // Inside <script>, "</" could end the element early.
    PAGE.replace("{{STATE}}", &state.replace("</", "<\\/"))
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

struct Stream {
    source: Source,
    rx: broadcast::Receiver<WatchEvent>,
    tick: tokio::time::Interval,
    id: u64,
    opened: bool,
}

fn frame(bytes: Bytes) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(bytes))
}

fn sse(event: &str, id: u64, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\nid: {id}\ndata: {data}\n\n"))
}

fn events(source: &Source) -> Response<Body> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let init = Stream {
        source: source.clone(),
        rx: source.watch.subscribe(),
        tick,
        id: 0,
        opened: false,
    };
    let stream = futures_util::stream::unfold(init, |mut s| async move {
        s.id += 1;
        if !s.opened {
            s.opened = true;
            // Everything on connect: a reconnecting page misses nothing.
            let state = s.source.json(&s.source.watch.snapshot());
            let mut bytes = b"retry: 1000\n".to_vec();
            bytes.extend_from_slice(&sse("state", s.id, &state));
            return Some((frame(Bytes::from(bytes)), s));
        }
        loop {
            tokio::select! {
                _ = s.tick.tick() => {
                    let data = sse("tick", s.id, &s.source.json(&tick_data(&s.source.watch)));
                    return Some((frame(data), s));
                }
                ev = s.rx.recv() => match ev {
                    Ok(WatchEvent::Cell(c)) => {
                        let state = s.source.watch.snapshot();
                        let data = s.source.json(&serde_json::json!({
                            "cell": state.cells.get(c),
                            "current": state.current,
                            "eta_seconds": state.eta_seconds,
                        }));
                        return Some((frame(sse("cell", s.id, &data)), s));
                    }
                    Ok(WatchEvent::Findings) => {
                        let state = s.source.watch.snapshot();
                        let data = s.source.json(&serde_json::json!({
                            "findings": state.findings,
                            "status": state.status,
                        }));
                        return Some((frame(sse("findings", s.id, &data)), s));
                    }
                    Ok(WatchEvent::Tick) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed changes: send the whole state again.
                        let state = s.source.json(&s.source.watch.snapshot());
                        return Some((frame(sse("state", s.id, &state)), s));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
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

/// The current cell's figures: measured window only.
fn tick_data(watch: &Watch) -> serde_json::Value {
    let s = watch.snapshot();
    let live = s.current.and(s.live.as_ref());
    serde_json::json!({
        "cell": s.current.and_then(|c| s.cells.get(c)).map(|c| c.id.clone()),
        "users": live.map(|l| l.users),
        "rps": live.and_then(|l| l.rps),
        "p50": live.and_then(|l| l.p50_ms),
        "p95": live.and_then(|l| l.p95_ms),
        "failures": live.map(|l| l.failures),
        "phase": live.map(|l| l.phase),
        "window_secs": live.map(|l| l.window_secs),
        "second": s.series.last(),
        "elapsed_seconds": s.elapsed_seconds,
        "eta_seconds": s.eta_seconds,
    })
}
