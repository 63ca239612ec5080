//! The demo target: a simulated ML inference server.
//!
//! Each replica has `slots` concurrent inference slots; requests beyond them
//! queue FIFO (tokio's semaphore is fair). Capacity is therefore
//! `slots / mean service time` requests per second, which lets tests compare
//! measured throughput and latency with queueing arithmetic.
//!
//! Endpoints: `POST /predict` (JSON body), `POST /v1/completions` and
//! `POST /v1/chat/completions` (OpenAI-style completions, streamed token by
//! token when asked, with `usage`; see [`llm`]),
//! `GET /health`, `GET /metrics` (Prometheus text format); everything else
//! is 404.
//!
//! A completion holds one slot for its whole generation: `--first-token`
//! (prefill) until the first token, then `--token-time` per further token,
//! so `max_tokens = n` takes `first_token + (n - 1) * token_time` and
//! capacity stays closed-form. `--prefill-time` adds that much per prompt
//! word the prefix cache (`--prefix-cache`) does not hold.

mod listen;
mod llm;
mod metrics;
mod sampling;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::base::random::SplitMix64;
use crate::base::units;

use listen::{announce, shutdown_signal};
pub use listen::{bind_listener, server_tls};
use metrics::Metrics;
pub use sampling::{Jitter, ServiceTime};

/// Largest accepted `/predict` body; the simulated model ignores its input.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// A completion's tokens when the request names no `max_tokens`.
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 16;
const MAX_TOKENS: u64 = 1_000_000;
/// The text of every generated token.
const TOKEN: &str = " token";
/// How long shutdown waits for in-progress requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
const LISTEN_BACKLOG: u32 = 4096;
const MAX_SLOTS: usize = 1_000_000;
const MAX_THREADS: usize = 1024;
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, clap::Args)]
pub struct DemoTargetArgs {
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// concurrent inference slots; requests beyond them queue FIFO
    #[arg(long, default_value_t = 4)]
    pub(crate) slots: usize,
    /// mean service time per request, e.g. 20ms, 1.5s, 500us
    #[arg(long, default_value = "20ms")]
    pub(crate) service_time: String,
    /// service-time distribution: fixed | lognormal | exponential
    #[arg(long, default_value = "fixed")]
    pub(crate) jitter: String,
    /// coefficient of variation for lognormal (the mean stays service_time)
    #[arg(long, default_value_t = 0.25)]
    pub(crate) cv: f64,
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// fraction 0..1 of /predict requests answered 500
    #[arg(long, default_value_t = 0.0)]
    pub(crate) fail_rate: f64,
    /// every this long (e.g. 5s) the whole server stalls for --stall-for
    #[arg(long)]
    pub(crate) stall_every: Option<String>,
    /// how long each stall lasts (e.g. 500ms)
    #[arg(long)]
    pub(crate) stall_for: Option<String>,
    /// burn CPU for the service time instead of sleeping
    #[arg(long)]
    pub(crate) cpu: bool,
    /// /v1/completions: prefill time until the first token
    #[arg(long, default_value = "200ms")]
    pub(crate) first_token: String,
    /// /v1/completions: decode time of every further token
    #[arg(long, default_value = "20ms")]
    pub(crate) token_time: String,
    /// completions: prefill time of every prompt word not in the prefix cache
    #[arg(long, default_value = "0s")]
    pub(crate) prefill_time: String,
    /// completions: prefix cache of this many blocks of 512 prompt words (LRU; 0: none)
    #[arg(long, default_value_t = 0)]
    pub(crate) prefix_cache: usize,
    /// replica index reported in responses and metrics (set by the launcher)
    #[arg(long, default_value_t = 0)]
    pub(crate) replica: usize,
    /// worker threads for the tokio runtime (default 1: a replica is a small process)
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// serve HTTPS with this certificate chain (PEM), with --tls-key; ALPN offers h2 and http/1.1
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// the private key (PEM) of --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoTargetError {
    #[error("invalid --{flag} value {value:?}: {reason}")]
    InvalidDuration {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid --{flag} value {value}: {reason}")]
    InvalidValue {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid --jitter value {0:?}: expected fixed, lognormal or exponential")]
    UnknownJitter(String),
    #[error("TLS: {path}: {reason}")]
    Tls { path: String, reason: String },
    #[error("--stall-every and --stall-for must be given together")]
    IncompleteStall,
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: String, error: io::Error },
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signal(io::Error),
    #[error("cannot print the listening address to stdout: {0}")]
    Stdout(io::Error),
}

/// Periodic whole-server stall: every `every`, nothing progresses for `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub(crate) every: Duration,
    pub(crate) duration: Duration,
}

/// Validated server behaviour; the listening address is the caller's business.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    pub slots: usize,
    pub service_time: ServiceTime,
    pub seed: u64,
    pub fail_rate: f64,
    pub stall: Option<Stall>,
    pub cpu: bool,
    pub replica: usize,
    /// Completions: time until the first token.
    pub first_token: Duration,
    /// Completions: time of every further token.
    pub token_time: Duration,
    /// Completions: prefill time per prompt word not in the prefix cache.
    pub prefill_time: Duration,
    /// Completions: prefix-cache blocks of 512 words (0: no cache).
    pub prefix_cache: usize,
}

impl Default for DemoConfig {
    /// Same as the CLI defaults.
    fn default() -> Self {
        Self {
            slots: 4,
            service_time: ServiceTime {
                mean: Duration::from_millis(20),
                jitter: Jitter::Fixed,
            },
            seed: 1,
            fail_rate: 0.0,
            stall: None,
            cpu: false,
            replica: 0,
            first_token: Duration::from_millis(200),
            token_time: Duration::from_millis(20),
            prefill_time: Duration::ZERO,
            prefix_cache: 0,
        }
    }
}

/// Durations are written as in plans (`20ms`, `1.5s`, `1m30s`).
fn duration_arg(flag: &'static str, value: &str) -> Result<Duration, DemoTargetError> {
    units::parse_duration_reason(value).map_err(|reason| DemoTargetError::InvalidDuration {
        flag,
        value: value.to_owned(),
        reason: reason.to_string(),
    })
}

fn invalid(flag: &'static str, value: impl ToString, reason: &'static str) -> DemoTargetError {
    DemoTargetError::InvalidValue {
        flag,
        value: value.to_string(),
        reason,
    }
}

impl DemoConfig {
    pub(crate) fn from_args(args: &DemoTargetArgs) -> Result<Self, DemoTargetError> {
        if !(1..=MAX_SLOTS).contains(&args.slots) {
            return Err(invalid(
                "slots",
                args.slots,
                "must be between 1 and 1000000",
            ));
        }
        let mean = duration_arg("service-time", &args.service_time)?;
        if !(args.cv.is_finite() && args.cv >= 0.0) {
            return Err(invalid("cv", args.cv, "must be a finite number >= 0"));
        }
        let jitter = Jitter::parse(&args.jitter, args.cv)
            .ok_or_else(|| DemoTargetError::UnknownJitter(args.jitter.clone()))?;
        if !(0.0..=1.0).contains(&args.fail_rate) {
            return Err(invalid(
                "fail-rate",
                args.fail_rate,
                "must be between 0 and 1",
            ));
        }
        let stall = match (&args.stall_every, &args.stall_for) {
            (None, None) => None,
            (Some(every), Some(duration)) => {
                let every_value = duration_arg("stall-every", every)?;
                let duration_value = duration_arg("stall-for", duration)?;
                if duration_value.is_zero() {
                    return Err(invalid("stall-for", duration, "must be greater than zero"));
                }
                if duration_value >= every_value {
                    return Err(invalid(
                        "stall-for",
                        duration,
                        "must be shorter than --stall-every",
                    ));
                }
                Some(Stall {
                    every: every_value,
                    duration: duration_value,
                })
            }
            _ => return Err(DemoTargetError::IncompleteStall),
        };
        Ok(Self {
            slots: args.slots,
            service_time: ServiceTime { mean, jitter },
            seed: args.seed,
            fail_rate: args.fail_rate,
            stall,
            cpu: args.cpu,
            replica: args.replica,
            first_token: duration_arg("first-token", &args.first_token)?,
            token_time: duration_arg("token-time", &args.token_time)?,
            prefill_time: duration_arg("prefill-time", &args.prefill_time)?,
            prefix_cache: args.prefix_cache,
        })
    }
}

impl TryFrom<&DemoTargetArgs> for DemoConfig {
    type Error = DemoTargetError;

    fn try_from(args: &DemoTargetArgs) -> Result<Self, Self::Error> {
        Self::from_args(args)
    }
}

/// Runs the server on its own runtime until SIGINT or SIGTERM.
///
/// Prints `demo-target listening on http://ADDR` to stdout once bound, so a
/// launcher can wait for that line (and learn the port when `--port 0`).
pub(crate) fn run(args: DemoTargetArgs) -> Result<(), DemoTargetError> {
    let config = DemoConfig::from_args(&args)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server_tls(cert, key)?),
        _ => None,
    };
    if !(1..=MAX_THREADS).contains(&args.threads) {
        return Err(invalid(
            "threads",
            args.threads,
            "must be between 1 and 1024",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(DemoTargetError::Runtime)?;
    let result = runtime.block_on(async {
        let bind_error = |error| DemoTargetError::Bind {
            addr: if args.host.contains(':') {
                format!("[{}]:{}", args.host, args.port)
            } else {
                format!("{}:{}", args.host, args.port)
            },
            error,
        };
        let listener = bind_listener(&args.host, args.port)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let shutdown = shutdown_signal().map_err(DemoTargetError::Signal)?;
        announce(addr, tls.is_some()).map_err(DemoTargetError::Stdout)?;
        serve_with(listener, config, tls, shutdown).await;
        Ok(())
    });
    // CPU burners run on blocking threads; do not let one delay the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Serves HTTP/1.1 and h2c on `listener` until `shutdown` completes, then
/// stops accepting, lets in-progress requests finish (for at most two
/// seconds) and returns.
pub async fn serve(listener: TcpListener, config: DemoConfig, shutdown: impl Future<Output = ()>) {
    serve_with(listener, config, None, shutdown).await;
}

/// [`serve`], over TLS when `tls` is given.
pub(crate) async fn serve_with(
    listener: TcpListener,
    config: DemoConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let server = Arc::new(Server::new(config));
    let _stalls = server
        .config
        .stall
        .map(|stall| AbortOnDrop(tokio::spawn(run_stalls(Arc::clone(&server), stall))));
    let (closing_tx, closing_rx) = watch::channel(false);
    // Every connection task holds a sender; recv() returns None once all are gone.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = shutdown.as_mut() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                // Responses are small; Nagle would add up to 40 ms to each.
                let _ = stream.set_nodelay(true);
                tokio::spawn(listen::serve_connection(
                    stream,
                    Arc::clone(&server),
                    acceptor.clone(),
                    closing_rx.clone(),
                    alive_tx.clone(),
                ));
            }
            Err(error) => {
                eprintln!("demo-target: accept failed: {error}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    closing_tx.send_replace(true);
    drop(alive_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv()).await;
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A whole response, or a stream of pieces sent as they are generated (as
/// HTTP/1.1 chunks).
enum DemoBody {
    Full(Full<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for DemoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            DemoBody::Full(full) => Pin::new(full).poll_frame(cx),
            DemoBody::Stream(rx) => rx
                .poll_recv(cx)
                .map(|piece| piece.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DemoBody::Full(full) => full.is_end_stream(),
            DemoBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DemoBody::Full(full) => full.size_hint(),
            DemoBody::Stream(_) => SizeHint::default(),
        }
    }
}

async fn handle(
    server: Arc<Server>,
    request: Request<Incoming>,
) -> Result<Response<DemoBody>, Infallible> {
    let api = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/completions") => Some(llm::Api::Completions),
        (&Method::POST, "/v1/chat/completions") => Some(llm::Api::Chat),
        _ => None,
    };
    if let Some(api) = api {
        // `?format=chunks`: plain-text tokens, one HTTP chunk each, no SSE framing.
        let chunks = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "format=chunks"));
        return Ok(Arc::clone(&server)
            .complete(api, request.into_body(), chunks)
            .await);
    }
    let response = match (request.method(), request.uri().path()) {
        (&Method::POST, "/predict") => server.predict(request.into_body()).await,
        (&Method::GET, "/health") => response(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
        (&Method::GET, "/metrics") => response(
            StatusCode::OK,
            PROMETHEUS_CONTENT_TYPE,
            server.metrics.render(),
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    };
    Ok(response.map(DemoBody::Full))
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    response(status, "application/json", body.to_string())
}

/// Milliseconds with microsecond resolution, for JSON.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

struct Server {
    config: DemoConfig,
    slots: Semaphore,
    /// `true` while stalled. The server owns the sender, so receivers never
    /// see it closed while a request is running.
    stalled: watch::Sender<bool>,
    next_request: AtomicU64,
    metrics: Metrics,
    prefix: llm::PrefixCache,
}

impl Server {
    fn new(config: DemoConfig) -> Self {
        Self {
            slots: Semaphore::new(config.slots),
            stalled: watch::Sender::new(false),
            next_request: AtomicU64::new(0),
            metrics: Metrics::new(config.slots, config.replica),
            prefix: llm::PrefixCache::new(config.prefix_cache),
            config,
        }
    }

    fn set_stalled(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
        self.metrics.set_stalled(stalled);
    }

    fn reject(&self, status: StatusCode, message: String) -> Response<Full<Bytes>> {
        self.metrics.count_request(status.as_u16());
        json_response(status, &json!({"error": message}))
    }

    async fn predict(&self, body: Incoming) -> Response<Full<Bytes>> {
        let arrived = Instant::now();
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<LengthLimitError>() => {
                return self.reject(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds {MAX_BODY_BYTES} bytes"),
                );
            }
            Err(error) => {
                return self.reject(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read request body: {error}"),
                );
            }
        };
        if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
            return self.reject(
                StatusCode::BAD_REQUEST,
                format!("request body is not valid JSON: {error}"),
            );
        }

        // One stream per request, numbered in arrival order, so a run with the
        // same seed and request order fails and jitters identically.
        let index = self.next_request.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64::stream(self.config.seed, index);
        let fail = rng.next_f64() < self.config.fail_rate;
        let service = self.config.service_time.sample(&mut rng);

        let waiting_since = Instant::now();
        let permit = {
            let _queued = self.metrics.queued();
            self.slots.acquire().await
        };
        let Ok(_permit) = permit else {
            return self.reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "server is shutting down".to_owned(),
            );
        };
        let in_service = self.metrics.in_service();
        self.wait_while_stalled().await;
        let queued = waiting_since.elapsed();
        self.run_service(service).await;
        drop(in_service);

        let status = if fail {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        self.metrics.count_request(status.as_u16());
        self.metrics.observe_duration(arrived.elapsed());
        let replica = self.config.replica;
        let (service_ms, queued_ms) = (millis(service), millis(queued));
        let body = if fail {
            json!({"replica": replica, "error": "simulated failure",
                   "service_ms": service_ms, "queued_ms": queued_ms})
        } else {
            let outputs: Vec<f64> = (0..3)
                .map(|_| (rng.next_f64() * 1e4).round() / 1e4)
                .collect();
            json!({"replica": replica, "outputs": outputs,
                   "service_ms": service_ms, "queued_ms": queued_ms})
        };
        json_response(status, &body)
    }

    /// Waits (queued, FIFO) for an inference slot and any stall to end.
    async fn generation_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = {
            let _queued = self.metrics.queued();
            self.slots.acquire().await.ok()?
        };
        self.wait_while_stalled().await;
        Some(permit)
    }

    async fn wait_while_stalled(&self) {
        let _ = self.stalled.subscribe().wait_for(|stalled| !stalled).await;
    }

    async fn run_service(&self, work: Duration) {
        if self.config.cpu {
            // On a blocking thread: burning on the runtime would also freeze
            // accepting and every other request on this (small) runtime.
            let stalled = self.stalled.subscribe();
            let _ = tokio::task::spawn_blocking(move || burn_cpu(work, &stalled)).await;
        } else {
            self.sleep_while_running(work).await;
        }
    }

    /// Sleeps for `remaining` of unstalled time: a stall pauses the service
    /// clock, like a process that is descheduled or in a GC pause.
    async fn sleep_while_running(&self, mut remaining: Duration) {
        let mut stalled = self.stalled.subscribe();
        loop {
            if stalled.wait_for(|stalled| !stalled).await.is_err() {
                break;
            }
            let started = Instant::now();
            tokio::select! {
                () = tokio::time::sleep(remaining) => return,
                open = async { stalled.wait_for(|stalled| *stalled).await.is_ok() } => {
                    if !open {
                        break;
                    }
                    remaining = remaining.saturating_sub(started.elapsed());
                }
            }
        }
        tokio::time::sleep(remaining).await;
    }
}

/// Spins for `work` of wall-clock time, not counting stalls.
fn burn_cpu(work: Duration, stalled: &watch::Receiver<bool>) {
    const SLICE: Duration = Duration::from_micros(200);
    let mut done = Duration::ZERO;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while done < work {
        if *stalled.borrow() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let started = Instant::now();
        let slice = (work - done).min(SLICE);
        while started.elapsed() < slice {
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            std::hint::black_box(x);
        }
        done += started.elapsed();
    }
}

async fn run_stalls(server: Arc<Server>, stall: Stall) {
    let mut next = tokio::time::Instant::now();
    loop {
        // An absurdly long period overflows Instant: then it never stalls.
        let Some(at) = next.checked_add(stall.every) else {
            return;
        };
        next = at;
        tokio::time::sleep_until(next).await;
        server.set_stalled(true);
        tokio::time::sleep(stall.duration).await;
        server.set_stalled(false);
    }
}
