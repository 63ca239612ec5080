//! Public API of the native engine and the coordinating (calling) thread.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use super::plan::Plan;
use super::stats::{
    CellStats, RequestStats, TimelineBuilder, add_histogram, assemble, latency_histogram,
    quantile_ms,
};
use super::worker::{self, Live, Msg, Timing, WorkerArgs, WorkerOutput};

/// What to run: endpoints, request mix, load model and timing.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// One or more replicas; connections are spread over them round-robin
    /// (per virtual user in the closed model, per arrival in the open model).
    pub endpoints: Vec<Endpoint>,
    /// Weighted request mix.
    pub requests: Vec<RequestSpec>,
    pub model: Model,
    /// OS threads, each with its own current-thread runtime and connections.
    /// Capped at the number of users (closed) or `max_in_flight` (open).
    pub workers: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
}

impl LoadSpec {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
}

/// A plain-HTTP endpoint (`http://host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses a base URL such as `http://127.0.0.1:8023`. Only `http` is
    /// supported; the URL may end in `/` but carry no other path, query or
    /// fragment (paths belong to the requests).
    pub fn parse(url: &str) -> Result<Endpoint, EngineError> {
        let bad = |reason: &str| EngineError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(bad("expected http://host:port"));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err(EngineError::HttpsUnsupported {
                url: url.to_string(),
            });
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(bad("only http:// URLs are supported"));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !(tail.is_empty() || tail == "/") {
            return Err(bad(
                "a base URL may not carry a path, query or fragment; put it in the request path",
            ));
        }
        if authority.contains('@') {
            return Err(bad("user info in URLs is not supported"));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let Some((host, after)) = inner.split_once(']') else {
                return Err(bad("unclosed '[' in IPv6 host"));
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(bad("unexpected text after IPv6 host")),
                },
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        if !authority.starts_with('[') && host.contains(':') {
            return Err(bad(
                "IPv6 hosts must be written in brackets, e.g. http://[::1]:8080",
            ));
        }
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("port must be a number in 1..=65535")),
            },
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }

    /// Value of the `Host` header for this endpoint.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

/// One entry of the weighted request mix.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub name: String,
    /// Case-insensitive; sent upper-cased.
    pub method: String,
    /// Origin form: `/path?query`. Empty means `/`.
    pub path: String,
    /// Sent as given (names lower-cased), except `Content-Length` and
    /// `Transfer-Encoding`: the body is always framed by a `Content-Length`
    /// derived from it. A `Host` header is added unless present.
    pub headers: Vec<(String, String)>,
    /// Empty: no body. Several: pre-rendered variants used round-robin.
    pub bodies: Vec<Bytes>,
    pub weight: u32,
    /// `None`: any 2xx/3xx status is a success.
    pub expect_status: Option<u16>,
}

impl RequestSpec {
    /// A weight-1 GET without headers or body.
    pub fn get(name: &str, path: &str) -> Self {
        RequestSpec {
            name: name.to_string(),
            method: "GET".to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            bodies: Vec::new(),
            weight: 1,
            expect_status: None,
        }
    }
}

/// Load model.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Virtual users, each looping request -> full response -> think, on its
    /// own keep-alive connection. Latency is measured from the start of the
    /// request (including a reconnect, if one was needed) to the end of the
    /// response body.
    Closed {
        users: u64,
        /// Users per second: user `i` starts at `i / spawn_rate`. 0 or
        /// infinity starts every user at once.
        spawn_rate: f64,
        think_min: Duration,
        think_max: Duration,
    },
    /// Fixed-rate arrivals, independent of responses. Latency is measured
    /// from the scheduled (intended) start, so a stalling server cannot hide
    /// its queueing delay (no coordinated omission).
    Open {
        rate: f64,
        /// Arrivals beyond this many outstanding requests are dropped and
        /// counted in [`CellStats::dropped`]. Split evenly over workers.
        max_in_flight: u64,
    },
}

/// Cooperative stop signal; `run_load` returns within about a second after
/// [`CancelToken::cancel`], without waiting for in-flight requests.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Shares an existing flag, e.g. one set by a Ctrl-C handler.
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        CancelToken(flag)
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Warmup,
    Measure,
    /// After the measured window: waiting for in-flight requests.
    Drain,
}

/// Progress report, emitted about once per second on the calling thread.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressTick {
    /// Since the start of the run (warm-up included).
    pub elapsed: Duration,
    pub phase: Phase,
    /// Responses completed per second over the last tick (any phase).
    pub rps: f64,
    /// Percentiles of the measured window so far (whole seconds only).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Completed requests and failures since the start (warm-up included).
    pub requests: u64,
    pub failures: u64,
    /// Active virtual users (closed) or requests in flight (open).
    pub users: u64,
    /// Arrivals dropped so far (open model, any phase).
    pub dropped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid base URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "{url:?}: https is not supported by the native engine (plain HTTP/1.1 only); \
         point it at an http:// endpoint"
    )]
    HttpsUnsupported { url: String },
    #[error("cannot resolve {endpoint}: {reason}")]
    Resolve { endpoint: String, reason: String },
    #[error("invalid load spec: {0}")]
    InvalidSpec(String),
    #[error("load worker failed: {0}")]
    Worker(String),
}

/// Longest wait for in-flight requests after the measured window (capped by
/// `request_timeout`); requests still running then are abandoned and reported.
const MAX_DRAIN: Duration = Duration::from_secs(5);
/// Lets every worker build its runtime before the first scheduled request.
const START_DELAY: Duration = Duration::from_millis(20);
const MAX_WORKERS: usize = 1024;
const MAX_USERS: u64 = 1_000_000;
/// Upper bound for the coordinator's sleep, so cancellation is noticed quickly.
const POLL: Duration = Duration::from_millis(100);

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidSpec(msg.into())
}

/// Checks the spec and returns the number of workers actually used.
fn validate(spec: &LoadSpec) -> Result<(usize, Vec<String>), EngineError> {
    let mut warnings = Vec::new();
    if spec.endpoints.is_empty() {
        return Err(invalid("no endpoints"));
    }
    if spec.requests.is_empty() {
        return Err(invalid("no requests"));
    }
    if spec.requests.iter().all(|r| r.weight == 0) {
        return Err(invalid("all request weights are 0"));
    }
    if spec.workers == 0 || spec.workers > MAX_WORKERS {
        return Err(invalid(format!("workers must be in 1..={MAX_WORKERS}")));
    }
    if spec.duration.is_zero() {
        return Err(invalid("duration must be > 0"));
    }
    if spec.request_timeout.is_zero() {
        return Err(invalid("request_timeout must be > 0"));
    }
    let cap = match &spec.model {
        Model::Closed {
            users,
            spawn_rate,
            think_min,
            think_max,
        } => {
            if *users == 0 || *users > MAX_USERS {
                return Err(invalid(format!("users must be in 1..={MAX_USERS}")));
            }
            if spawn_rate.is_nan() || *spawn_rate < 0.0 {
                return Err(invalid("spawn_rate must be >= 0 (0 = no ramp)"));
            }
            if think_min > think_max {
                return Err(invalid("think_min must be <= think_max"));
            }
            if *spawn_rate > 0.0 && spawn_rate.is_finite() {
                let ramp = (*users - 1) as f64 / spawn_rate;
                if ramp > spec.warmup.as_secs_f64() {
                    warnings.push(format!(
                        "the ramp ({ramp:.1} s) is longer than the warm-up; \
                         the measured window includes ramp-up"
                    ));
                }
            }
            *users
        }
        Model::Open {
            rate,
            max_in_flight,
        } => {
            if !rate.is_finite() || *rate <= 0.0 {
                return Err(invalid("rate must be a finite number > 0"));
            }
            if *max_in_flight == 0 {
                return Err(invalid("max_in_flight must be >= 1"));
            }
            *max_in_flight
        }
    };
    let workers = usize::try_from(cap).map_or(spec.workers, |c| spec.workers.min(c));
    if workers < spec.workers {
        warnings.push(format!(
            "using {workers} worker(s) instead of {}: more would leave some without work",
            spec.workers
        ));
    }
    Ok((workers, warnings))
}

fn resolve(endpoints: &[Endpoint]) -> Result<Vec<SocketAddr>, EngineError> {
    endpoints
        .iter()
        .map(|e| {
            let err = |reason: String| EngineError::Resolve {
                endpoint: e.to_string(),
                reason,
            };
            (e.host.as_str(), e.port)
                .to_socket_addrs()
                .map_err(|x| err(x.to_string()))?
                .next()
                .ok_or_else(|| err("no address".to_string()))
        })
        .collect()
}

/// Runs one load test and blocks until it ends (warm-up + duration + drain),
/// or about a second after `cancel` is set. `progress` is called about once
/// per second on the calling thread.
///
/// Blocking: from async code, call it via `spawn_blocking` or a plain thread.
/// Only requests whose (intended) start lies in the measured window are
/// counted; those still running when the window closes are awaited for at
/// most `min(request_timeout, 5 s)`. A cancelled run returns the figures of
/// the window so far with `cancelled` set.
pub fn run_load(
    spec: &LoadSpec,
    cancel: CancelToken,
    progress: &dyn Fn(ProgressTick),
) -> Result<CellStats, EngineError> {
    let (workers, mut warnings) = validate(spec)?;
    let addrs = resolve(&spec.endpoints)?;
    // Fails early on bad methods, paths or headers; each worker builds its
    // own copy so no shared reference counts are touched in the hot path.
    Plan::build(spec, &addrs)?;

    let too_long = || invalid("warm-up + duration is too long");
    let t0 = Instant::now() + START_DELAY;
    let measure_start = t0.checked_add(spec.warmup).ok_or_else(too_long)?;
    let end = measure_start
        .checked_add(spec.duration)
        .ok_or_else(too_long)?;
    let drain = spec.request_timeout.min(MAX_DRAIN) + Duration::from_millis(100);
    let hard_stop = end.checked_add(drain).ok_or_else(too_long)?;
    let rows = spec.duration.as_secs_f64().ceil().max(1.0);
    let timing = Timing {
        t0,
        measure_start,
        end,
        hard_stop,
        last_row: (rows as usize).saturating_sub(1),
    };

    let live: Arc<[Live]> = (0..workers).map(|_| Live::default()).collect();
    let abort = Arc::new(AtomicBool::new(false));
    // Stops the workers if we leave early, e.g. when `progress` panics.
    let _stop_workers = StopOnDrop(abort.clone());
    let shared = Arc::new(spec.clone());
    let addrs = Arc::new(addrs);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64);
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut handles = Vec::with_capacity(workers);
    for index in 0..workers {
        let args = WorkerArgs {
            index,
            workers,
            spec: shared.clone(),
            addrs: addrs.clone(),
            timing,
            cancel: cancel.clone(),
            abort: abort.clone(),
            live: live.clone(),
            tx: tx.clone(),
            seed: seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        let spawned = thread::Builder::new()
            .name(format!("loadmatrix-w{index}"))
            .spawn(move || worker::run(args));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                abort.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(EngineError::Worker(format!(
                    "cannot start worker thread: {e}"
                )));
            }
        }
    }
    drop(tx);

    let mut timeline = TimelineBuilder::new(workers);
    let mut so_far = latency_histogram();
    let mut outputs: Vec<Option<WorkerOutput>> = (0..workers).map(|_| None).collect();
    let mut failure: Option<String> = None;
    let mut done = 0;
    let mut cancelled_at: Option<Instant> = None;
    let mut next_tick = t0 + Duration::from_secs(1);
    let mut last_tick = (t0, 0u64);
    while done < workers {
        let now = Instant::now();
        if cancelled_at.is_none() && cancel.is_cancelled() {
            cancelled_at = Some(now);
        }
        if now >= next_tick {
            let sum = |f: fn(&Live) -> u64| live.iter().map(f).sum::<u64>();
            let completed = sum(Live::completed);
            let secs = now.saturating_duration_since(last_tick.0).as_secs_f64();
            let phase = if now < measure_start {
                Phase::Warmup
            } else if now < end {
                Phase::Measure
            } else {
                Phase::Drain
            };
            let measured = !so_far.is_empty();
            progress(ProgressTick {
                elapsed: now.saturating_duration_since(t0),
                phase,
                rps: super::stats::per_sec(completed.saturating_sub(last_tick.1), secs),
                p50_ms: measured.then(|| quantile_ms(&so_far, 0.50)),
                p95_ms: measured.then(|| quantile_ms(&so_far, 0.95)),
                requests: completed,
                failures: sum(Live::failures),
                users: sum(Live::active),
                dropped: sum(Live::dropped),
            });
            last_tick = (now, completed);
            while next_tick <= now {
                next_tick += Duration::from_secs(1);
            }
        }
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(POLL);
        match rx.recv_timeout(wait) {
            Ok(Msg::Row(part)) => {
                add_histogram(&mut so_far, &part.hist);
                timeline.add(part);
            }
            Ok(Msg::Done(index, result)) => {
                done += 1;
                match result {
                    Ok(out) => {
                        if let Some(slot) = outputs.get_mut(index) {
                            *slot = Some(out);
                        }
                    }
                    Err(e) => {
                        abort.store(true, Ordering::Relaxed);
                        failure.get_or_insert(e);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for (index, h) in handles.into_iter().enumerate() {
        if h.join().is_err() {
            failure.get_or_insert(format!("worker {index} panicked"));
        }
    }
    if let Some(e) = failure {
        return Err(EngineError::Worker(e));
    }
    let outputs: Vec<WorkerOutput> = outputs.into_iter().flatten().collect();
    if outputs.len() != workers {
        return Err(EngineError::Worker(
            "a worker exited without results".into(),
        ));
    }

    let cancelled = outputs.iter().any(|o| o.cancelled);
    let window_end = match (cancelled, cancelled_at) {
        (true, Some(at)) => at.min(end),
        (true, None) => outputs
            .iter()
            .filter_map(|o| o.stopped_at)
            .max()
            .unwrap_or(end)
            .min(end),
        _ => end,
    };
    let measured_secs = window_end
        .saturating_duration_since(measure_start)
        .as_secs_f64();

    let names: Vec<String> = spec.requests.iter().map(|r| r.name.clone()).collect();
    let mut per_worker: Vec<Vec<RequestStats>> = Vec::with_capacity(workers);
    let mut dropped = 0;
    let mut abandoned = 0;
    let mut max_lag = Duration::ZERO;
    let mut cpu_ticks = Some(0u64);
    let mut cpu_wall = Duration::ZERO;
    for out in outputs {
        if let Some(part) = out.last_row {
            timeline.add(part);
        }
        dropped += out.dropped_measured;
        abandoned += out.abandoned;
        max_lag = max_lag.max(out.max_lag);
        match (cpu_ticks, out.cpu) {
            (Some(t), Some((ticks, wall))) => {
                cpu_ticks = Some(t + ticks);
                cpu_wall = cpu_wall.max(wall);
            }
            _ => cpu_ticks = None,
        }
        per_worker.push(out.specs);
    }
    let (total, by_name) = assemble(&names, &per_worker, measured_secs);

    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let client_cpu_pct = match cpu_ticks {
        Some(ticks) if !cpu_wall.is_zero() => {
            let cpu_secs = ticks as f64 / super::cpu::CLK_TCK;
            cpu_secs / (workers.min(cores) as f64 * cpu_wall.as_secs_f64()) * 100.0
        }
        Some(_) => 0.0,
        None if measured_secs == 0.0 => 0.0,
        None => {
            warnings.push("client CPU could not be measured (needs Linux /proc)".into());
            0.0
        }
    };
    let client_bound = client_cpu_pct >= super::stats::CLIENT_BOUND_CPU_PCT;
    if client_bound {
        warnings.push(format!(
            "client CPU at {client_cpu_pct:.0}%: the load generator may be the bottleneck"
        ));
    }
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} arrivals dropped because max_in_flight requests were outstanding"
        ));
    }
    if max_lag > Duration::from_millis(10) {
        warnings.push(format!(
            "arrivals were sent up to {} ms behind schedule (client overloaded); \
             latency still counts from the scheduled start",
            max_lag.as_millis()
        ));
    }
    if abandoned > 0 {
        warnings.push(format!(
            "{abandoned} requests still in flight {} s after the window were abandoned \
             and are not counted",
            drain.as_secs_f64()
        ));
    }
    if cancelled {
        warnings.push(format!(
            "cancelled after {measured_secs:.1} s of measurement"
        ));
    }
    if total.requests == 0 && measured_secs > 0.0 {
        warnings.push("no request completed in the measured window".into());
    }

    Ok(CellStats {
        total,
        by_name,
        timeline: timeline.finish(measured_secs),
        measured_secs,
        dropped,
        client_cpu_pct,
        client_bound,
        cancelled,
        warnings,
    })
}
