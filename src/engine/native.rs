//! Public API of the native engine and the coordinating (calling) thread.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::figures::{NameLatency, WindowSoFar};
pub use super::spec::{
    Endpoint, EngineError, HttpVersion, LoadSpec, Model, Phase, ProgressTick, RequestSpec,
    Transport,
};
pub use crate::cancel::CancelToken;

use super::conn::{Target, TlsTarget};
use super::plan::Plan;
use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;

use super::stats::{
    CellStats, ConnStats, RequestStats, TimelineBuilder, add_histogram, assemble,
    latency_histogram, quantile_ms,
};
use super::worker::{self, Live, Msg, Timing, WorkerArgs, WorkerOutput};

/// Longest wait for in-flight requests after the measured window (capped by
/// `request_timeout`); requests still running then are abandoned and reported.
const MAX_DRAIN: Duration = Duration::from_secs(5);
/// Lets every worker build its runtime before the first scheduled request.
const START_DELAY: Duration = Duration::from_millis(20);
const MAX_WORKERS: usize = crate::base::limits::MAX_NATIVE_WORKERS;
const MAX_USERS: u64 = crate::base::limits::MAX_NATIVE_USERS;
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

/// The longest TLS handshake before it fails as `tls`: half the request
/// timeout, so it fails as a handshake rather than as a request timeout.
const MAX_HANDSHAKE: Duration = Duration::from_secs(10);

/// Where each endpoint's connections go; one TLS configuration (and so one
/// session cache) for all of them.
fn targets(spec: &LoadSpec, addrs: &[SocketAddr]) -> Result<Vec<Target>, EngineError> {
    let tls = if spec.endpoints.iter().any(|e| e.tls) {
        let settings = spec.transport.tls.clone().unwrap_or_default();
        let alpn = match spec.transport.http {
            super::spec::HttpVersion::Http1 => crate::tls::Alpn::Http1,
            super::spec::HttpVersion::Http2 => crate::tls::Alpn::H2,
        };
        let config = Arc::new(settings.client_config(alpn)?);
        Some((
            tokio_rustls::TlsConnector::from(config),
            settings.name_override()?,
        ))
    } else {
        None
    };
    let handshake_timeout = (spec.request_timeout / 2).min(MAX_HANDSHAKE);
    spec.endpoints
        .iter()
        .zip(addrs)
        .map(|(e, addr)| {
            let tls = match (&tls, e.tls) {
                (Some((connector, name)), true) => {
                    let name = match name {
                        Some(n) => n.clone(),
                        None => ServerName::try_from(e.host.clone()).map_err(|_| {
                            invalid(format!("{e}: {:?} is not a valid TLS server name", e.host))
                        })?,
                    };
                    Some(TlsTarget {
                        connector: connector.clone(),
                        name,
                        handshake_timeout,
                    })
                }
                _ => None,
            };
            Ok(Target { addr: *addr, tls })
        })
        .collect()
}

/// The leading seconds every worker has closed, and the per-name percentiles.
fn window_so_far(
    timeline: &TimelineBuilder,
    by_spec: &[Histogram<u64>],
    requests: &[RequestSpec],
) -> WindowSoFar {
    let mut w = timeline.closed_so_far();
    w.by_name = by_spec
        .iter()
        .zip(requests)
        .filter(|(h, _)| !h.is_empty())
        .map(|(h, r)| NameLatency {
            name: r.name.clone(),
            p50_ms: quantile_ms(h, 0.50),
            p95_ms: quantile_ms(h, 0.95),
        })
        .collect();
    w
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
    let targets = Arc::new(targets(spec, &addrs)?);
    if spec.endpoints.iter().any(|e| e.tls)
        && spec.transport.tls.as_ref().is_some_and(|t| t.insecure)
    {
        warnings.push(super::INSECURE_TLS.into());
    }

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
            targets: targets.clone(),
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
    let mut so_far_by_spec: Vec<Histogram<u64>> = Vec::new();
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
                window: window_so_far(&timeline, &so_far_by_spec, &spec.requests),
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
                if so_far_by_spec.len() < part.by_spec.len() {
                    so_far_by_spec.resize_with(part.by_spec.len(), latency_histogram);
                }
                for (acc, h) in so_far_by_spec.iter_mut().zip(&part.by_spec) {
                    add_histogram(acc, h);
                }
                timeline.add(part);
            }
            Ok(Msg::Done(index, result)) => {
                done += 1;
                match result {
                    Ok(out) => {
                        if let Some(slot) = outputs.get_mut(index) {
                            *slot = Some(*out);
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
    let mut ok_in_window = 0;
    let mut abandoned = 0;
    let mut abandoned_counted = 0;
    let mut lag = latency_histogram();
    let mut cpu_ticks = Some(0u64);
    let mut cpu_wall = Duration::ZERO;
    let (mut rx_bytes, mut tx_bytes) = (0u64, 0u64);
    let mut conns = ConnStats::new(0, latency_histogram(), latency_histogram());
    let mut tls_failures: Vec<(String, u64)> = Vec::new();
    for out in outputs {
        conns.merge(&ConnStats::new(
            out.conns.opened,
            out.conns.connect,
            out.conns.tls,
        ));
        for (reason, n) in out.conns.tls_failures {
            match tls_failures.iter_mut().find(|(r, _)| *r == reason) {
                Some(e) => e.1 += n,
                None => tls_failures.push((reason, n)),
            }
        }
        rx_bytes += out.bytes.0;
        tx_bytes += out.bytes.1;
        if let Some(part) = out.last_row {
            timeline.add(part);
        }
        dropped += out.dropped_measured;
        ok_in_window += out.ok_in_window;
        abandoned += out.abandoned;
        for (idx, n) in out.abandoned_rows.iter().enumerate() {
            if *n > 0 {
                timeline.add_failures(idx, *n);
                abandoned_counted += n;
            }
        }
        add_histogram(&mut lag, &out.lag);
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
    let schedule_lag_p99_ms = quantile_ms(&lag, 0.99);
    if schedule_lag_p99_ms > super::stats::SCHEDULE_LAG_BOUND_MS {
        warnings.push(format!(
            "arrivals were sent up to {:.0} ms behind schedule (p99 {schedule_lag_p99_ms:.1} ms; client overloaded); \
             latency still counts from the scheduled start",
            quantile_ms(&lag, 1.0)
        ));
    }
    if abandoned > 0 {
        warnings.push(format!(
            "{abandoned} requests still in flight {} s after the window were abandoned; \
             the {abandoned_counted} sent in the window count as failures (kind `abandoned`)",
            drain.as_secs_f64()
        ));
    }
    let https: Vec<String> = spec
        .endpoints
        .iter()
        .filter(|e| e.tls)
        .map(|e| e.to_string())
        .collect();
    for (reason, n) in &tls_failures {
        warnings.push(format!(
            "tls: {reason} ({n} failed handshakes with {})",
            https.join(", ")
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
        schedule_lag_p99_ms,
        cancelled,
        warnings,
        degraded: None,
        rx_bytes: Some(rx_bytes),
        tx_bytes: Some(tx_bytes),
        completed_ok: matches!(spec.model, Model::Open { .. }).then_some(ok_in_window),
        connections: Some(conns),
    })
}
