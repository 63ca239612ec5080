//! End-to-end tests against real hyper servers on 127.0.0.1 (ephemeral ports).

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{Semaphore, oneshot};

use super::stats::{self, FailureKind, RequestStats, RowPart, TimelineBuilder, assemble};
use super::*;

#[derive(Clone, Copy)]
enum Behavior {
    Sleep(Duration),
    /// Requests arriving in the first `stall` of every `period` (counted from
    /// server start) wait until the stall ends; then every request takes `base`.
    Stall {
        period: Duration,
        stall: Duration,
        base: Duration,
    },
    /// Every other request (server-wide) answers 500.
    Alternate(Duration),
    /// Answers with `Connection: close`, so every request needs a new connection.
    CloseEach(Duration),
}

struct TestServer {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    body_bytes: Arc<AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(behavior: Behavior) -> Self {
        Self::start_limited(behavior, None)
    }

    /// `limit`: at most that many requests are served concurrently.
    fn start_limited(behavior: Behavior, limit: Option<usize>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (h, b) = (hits.clone(), body_bytes.clone());
        let origin = Instant::now();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let sem = limit.map(|n| Arc::new(Semaphore::new(n)));
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let _ = stream.set_nodelay(true);
                            let (h, b, sem) = (h.clone(), b.clone(), sem.clone());
                            let svc = service_fn(move |req| {
                                handle(req, behavior, origin, h.clone(), b.clone(), sem.clone())
                            });
                            tokio::spawn(async move {
                                let _ = server_http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        TestServer {
            addr,
            hits,
            body_bytes,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::parse(&format!("http://{}", self.addr)).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    behavior: Behavior,
    origin: Instant,
    hits: Arc<AtomicU64>,
    body_bytes: Arc<AtomicU64>,
    sem: Option<Arc<Semaphore>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _permit = match sem {
        Some(s) => s.acquire_owned().await.ok(),
        None => None,
    };
    let n = hits.fetch_add(1, Ordering::Relaxed);
    if let Ok(body) = req.into_body().collect().await {
        body_bytes.fetch_add(body.to_bytes().len() as u64, Ordering::Relaxed);
    }
    let mut close = false;
    let status = match behavior {
        Behavior::Sleep(d) => {
            precise_sleep(d).await;
            200
        }
        Behavior::Stall {
            period,
            stall,
            base,
        } => {
            let since = origin.elapsed().as_nanos() % period.as_nanos();
            let phase = Duration::from_nanos(since as u64);
            if phase < stall {
                tokio::time::sleep(stall - phase).await;
            }
            precise_sleep(base).await;
            200
        }
        Behavior::Alternate(d) => {
            precise_sleep(d).await;
            if n % 2 == 1 { 500 } else { 200 }
        }
        Behavior::CloseEach(d) => {
            precise_sleep(d).await;
            close = true;
            200
        }
    };
    let mut resp = Response::builder().status(status);
    if close {
        resp = resp.header("connection", "close");
    }
    Ok(resp.body(Full::new(Bytes::from_static(b"ok"))).unwrap())
}

/// tokio timers round up to whole milliseconds (a 20 ms sleep takes 20-22
/// ms), which would blur the service times the tests compare against, so the
/// last 2 ms are slept on a blocking thread.
async fn precise_sleep(d: Duration) {
    let deadline = Instant::now() + d;
    if let Some(coarse) = d.checked_sub(ms(2)) {
        tokio::time::sleep(coarse).await;
    }
    let rest = deadline.saturating_duration_since(Instant::now());
    let _ = tokio::task::spawn_blocking(move || thread::sleep(rest)).await;
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn closed(users: u64, think: (u64, u64)) -> Model {
    Model::Closed {
        users,
        spawn_rate: 0.0,
        think_min: ms(think.0),
        think_max: ms(think.1),
    }
}

fn spec(endpoints: Vec<Endpoint>, model: Model, warmup: Duration, duration: Duration) -> LoadSpec {
    LoadSpec {
        endpoints,
        requests: vec![RequestSpec::get("root", "/")],
        model,
        workers: 2,
        warmup,
        duration,
        request_timeout: Duration::from_secs(5),
        slo: Default::default(),
        transport: Default::default(),
    }
}

fn run(spec: &LoadSpec) -> (CellStats, Duration) {
    let started = Instant::now();
    let stats = run_load(spec, CancelToken::new(), &|_| {}).unwrap();
    (stats, started.elapsed())
}

fn assert_within(what: &str, actual: f64, expected: f64, tol: f64) {
    assert!(
        (actual - expected).abs() <= expected * tol,
        "{what}: {actual:.2} not within {:.0}% of {expected:.2}",
        tol * 100.0
    );
}

fn report(label: &str, s: &CellStats) {
    let t = &s.total;
    eprintln!(
        "{label}: requests {} failures {:?} rps {:.1} p50 {:.2} p95 {:.2} p99 {:.2} max {:.2} ms, \
         dropped {}, cpu {:.1}%, measured {:.2}s, warnings {:?}",
        t.requests,
        t.failures_by_kind,
        t.rps,
        t.p50_ms,
        t.p95_ms,
        t.p99_ms,
        t.max_ms,
        s.dropped,
        s.client_cpu_pct,
        s.measured_secs,
        s.warnings
    );
}

// 1. Exact merges.
#[test]
fn merged_histograms_equal_one_histogram_fed_all_samples() {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut parts: Vec<RequestStats> = (0..4).map(|_| RequestStats::new()).collect();
    let mut rows: Vec<RowPart> = (0..4).map(|_| RowPart::new(0, 1)).collect();
    let mut single = RequestStats::new();
    for n in 0..200_000usize {
        // Log-uniform between 10 µs and 10 s.
        let v = (10.0 * 1e6f64.powf(rng.random::<f64>())) as u64;
        parts[n % 4].record_success(v);
        rows[n % 4].hist.record(v).unwrap();
        rows[n % 4].requests += 1;
        single.record_success(v);
        if n % 101 == 0 {
            parts[n % 4].record_failure(FailureKind::Timeout);
            single.record_failure(FailureKind::Timeout);
        }
    }
    single.finalize(2.0);
    let merged = stats::merge(parts.iter(), 2.0);
    for i in 0..=1000 {
        let q = f64::from(i) / 1000.0;
        assert_eq!(
            merged.hist.value_at_quantile(q),
            single.hist.value_at_quantile(q),
            "quantile {q}"
        );
    }
    let json = |s: &RequestStats| serde_json::to_value(s).unwrap();
    assert_eq!(json(&merged), json(&single));
    assert_eq!(merged.hist.len(), 200_000);

    // The engine's aggregation path: per-worker, per-spec stats merged by name.
    let per_worker: Vec<Vec<RequestStats>> = parts.chunks(2).map(|c| c.to_vec()).collect();
    let names = vec!["a".to_string(), "b".to_string()];
    let (total, by_name) = assemble(&names, &per_worker, 2.0);
    assert_eq!(json(&total), json(&single));
    assert_eq!(
        by_name["a"].requests + by_name["b"].requests,
        single.requests
    );

    // Timeline rows merge exactly too.
    let mut tb = TimelineBuilder::new(4);
    for r in rows {
        tb.add(r);
    }
    let timeline = tb.finish(1.0);
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].requests, 200_000);
    assert_eq!(timeline[0].users, 4);
    assert_eq!(timeline[0].p99_ms, single.p99_ms);
    assert_eq!(timeline[0].p50_ms, single.p50_ms);
}

// 2. Closed model, fixed 20 ms service time, unlimited concurrency.
#[test]
fn closed_model_throughput_and_latency() {
    let server = TestServer::start(Behavior::Sleep(ms(20)));
    let s = spec(
        vec![server.endpoint()],
        closed(10, (0, 0)),
        ms(500),
        ms(2000),
    );
    let ticks = RefCell::new(Vec::new());
    let started = Instant::now();
    let stats = run_load(&s, CancelToken::new(), &|t| ticks.borrow_mut().push(t)).unwrap();
    let elapsed = started.elapsed();
    report("closed 20ms", &stats);
    let t = &stats.total;
    assert_eq!(t.failures, 0);
    assert_within("rps", t.rps, 500.0, 0.10);
    assert_within("p50", t.p50_ms, 20.0, 0.10);
    // Warm-up excluded: about 500 * 2 s, not 500 * 2.5 s.
    assert_within("requests", t.requests as f64, 1000.0, 0.10);
    assert_eq!(stats.measured_secs, 2.0);
    assert!(elapsed < ms(3500), "took {elapsed:?}");
    assert_eq!(stats.timeline.len(), 2);
    assert_eq!(
        stats.timeline.iter().map(|r| r.requests).sum::<u64>(),
        t.requests
    );
    assert!(
        stats.timeline.iter().all(|r| r.users == 10),
        "{:?}",
        stats.timeline
    );
    assert!(stats.client_cpu_pct >= 0.0 && !stats.client_bound);
    let ticks = ticks.into_inner();
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(
        ticks
            .iter()
            .any(|t| t.phase == Phase::Measure && t.p50_ms.is_some())
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert!(json["by_name"]["root"]["p99_ms"].is_number());
    assert!(json["total"].get("hist").is_none());
}

// 2b. The server's concurrency limit is what a closed model must reflect.
#[test]
fn closed_model_against_concurrency_limited_server() {
    let server = TestServer::start_limited(Behavior::Sleep(ms(20)), Some(5));
    let s = spec(
        vec![server.endpoint()],
        closed(10, (0, 0)),
        ms(300),
        ms(1500),
    );
    let (stats, _) = run(&s);
    report("closed limit 5", &stats);
    assert_within("rps", stats.total.rps, 250.0, 0.15);
    assert_within("p50", stats.total.p50_ms, 40.0, 0.15);
}

// 3. Think time.
#[test]
fn closed_model_with_think_time() {
    let server = TestServer::start(Behavior::Sleep(ms(20)));
    let model = Model::Closed {
        users: 10,
        spawn_rate: 40.0,
        think_min: ms(80),
        think_max: ms(120),
    };
    let s = spec(vec![server.endpoint()], model, ms(500), ms(2000));
    let (stats, _) = run(&s);
    report("closed think", &stats);
    assert_within("rps", stats.total.rps, 10.0 / 0.12, 0.10);
    assert_within("p50", stats.total.p50_ms, 20.0, 0.15);
}

// 4. Open model measures from the intended start; closed model hides stalls.
#[test]
fn open_model_sees_stalls_that_closed_model_hides() {
    let server = TestServer::start(Behavior::Stall {
        period: ms(2000),
        stall: ms(1000),
        base: ms(5),
    });
    let open = spec(
        vec![server.endpoint()],
        Model::Open {
            rate: 200.0,
            max_in_flight: 5000,
        },
        ms(200),
        ms(3000),
    );
    let mut closed_spec = spec(
        vec![server.endpoint()],
        closed(5, (0, 0)),
        ms(200),
        ms(3000),
    );
    closed_spec.workers = 1;
    let ((open_stats, open_elapsed), (closed_stats, _)) = thread::scope(|s| {
        let o = s.spawn(|| run(&open));
        let c = s.spawn(|| run(&closed_spec));
        (o.join().unwrap(), c.join().unwrap())
    });
    report("open stall", &open_stats);
    report("closed stall", &closed_stats);
    let o = &open_stats.total;
    let c = &closed_stats.total;
    assert!(o.p99_ms >= 900.0, "open p99 {}", o.p99_ms);
    assert!(
        c.p99_ms * 2.0 < o.p99_ms,
        "closed p99 {} vs open {}",
        c.p99_ms,
        o.p99_ms
    );
    // The schedule is exact: 200/s over 3 s.
    assert_within("open requests", o.requests as f64, 600.0, 0.10);
    assert_eq!(open_stats.dropped, 0);
    assert_eq!(o.failures, 0);
    assert!(open_elapsed < ms(5000), "took {open_elapsed:?}");
}

// 5. Failures by kind.
#[test]
fn status_failures_are_counted() {
    let server = TestServer::start(Behavior::Alternate(ms(5)));
    let s = spec(
        vec![server.endpoint()],
        closed(4, (0, 0)),
        ms(200),
        ms(1000),
    );
    let (stats, _) = run(&s);
    report("alternate 500", &stats);
    let t = &stats.total;
    assert!(t.requests > 200);
    assert_eq!(t.failures, t.failures_by_kind.status);
    assert_within(
        "status share",
        t.failures as f64 / t.requests as f64,
        0.5,
        0.10,
    );
    assert!(t.p50_ms > 0.0);
    assert_eq!(
        stats.timeline.iter().map(|r| r.failures).sum::<u64>(),
        t.failures
    );
}

#[test]
fn connection_refused_is_a_connect_failure_and_ends_on_time() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    // Each user backs off 10 ms, 20 ms, ... up to 1 s between refused
    // connects: over 3 s, 10 users make about 40 attempts in the window, at
    // most users x (7 doublings + 3 s at 1 s), where without back-off they
    // would make tens of thousands.
    let s = spec(vec![dead.clone()], closed(10, (10, 10)), ms(200), ms(3000));
    let (stats, elapsed) = run(&s);
    report("refused closed", &stats);
    let t = &stats.total;
    assert!((10..=100).contains(&t.requests), "{} attempts", t.requests);
    assert_eq!(t.failures, t.requests);
    assert_eq!(t.failures_by_kind.connect, t.failures);
    assert_eq!(
        stats.timeline.iter().map(|r| r.failures).sum::<u64>(),
        t.failures
    );
    assert_eq!(t.p99_ms, 0.0);
    assert!(elapsed < ms(4500), "took {elapsed:?}");

    let s = spec(
        vec![dead],
        Model::Open {
            rate: 100.0,
            max_in_flight: 100,
        },
        ms(200),
        ms(1000),
    );
    let (stats, elapsed) = run(&s);
    report("refused open", &stats);
    assert_within("open attempts", stats.total.requests as f64, 100.0, 0.10);
    assert_eq!(stats.total.failures_by_kind.connect, stats.total.requests);
    assert!(elapsed < ms(2200), "took {elapsed:?}");
}

#[test]
fn slow_responses_time_out() {
    let server = TestServer::start(Behavior::Sleep(ms(2000)));
    let mut s = spec(vec![server.endpoint()], closed(2, (0, 0)), ms(0), ms(1000));
    s.request_timeout = ms(300);
    let (stats, elapsed) = run(&s);
    report("timeouts", &stats);
    let t = &stats.total;
    assert!(t.failures >= 4, "{t:?}");
    assert_eq!(t.failures_by_kind.timeout, t.requests);
    assert!(elapsed < ms(2500), "took {elapsed:?}");
}

// 6. Cancellation stops the run within a second, in-flight requests or not.
#[test]
fn cancel_stops_within_a_second() {
    let server = TestServer::start(Behavior::Sleep(ms(10_000)));
    for model in [
        closed(4, (0, 0)),
        Model::Open {
            rate: 100.0,
            max_in_flight: 1000,
        },
    ] {
        let mut s = spec(
            vec![server.endpoint()],
            model,
            ms(0),
            Duration::from_secs(30),
        );
        s.request_timeout = Duration::from_secs(30);
        let cancel = CancelToken::new();
        let started = Instant::now();
        let stats = thread::scope(|scope| {
            scope.spawn(|| {
                thread::sleep(ms(500));
                cancel.cancel();
            });
            run_load(&s, cancel.clone(), &|_| {}).unwrap()
        });
        let elapsed = started.elapsed();
        report("cancelled", &stats);
        assert!(elapsed < ms(1500), "took {elapsed:?}");
        assert!(stats.cancelled);
        assert!(stats.measured_secs < 1.0);
    }
}

// 7. Weighted mix.
#[test]
fn weighted_mix_follows_weights() {
    let server = TestServer::start(Behavior::Sleep(ms(5)));
    let mut s = spec(
        vec![server.endpoint()],
        closed(8, (0, 0)),
        ms(200),
        ms(1500),
    );
    let mut a = RequestSpec::get("a", "/a?x=1");
    a.weight = 3;
    let mut b = RequestSpec::get("b", "/b");
    b.method = "post".into();
    b.headers = vec![("Content-Type".into(), "text/plain".into())];
    b.bodies = vec![Bytes::from_static(b"x"), Bytes::from_static(b"yyy")];
    s.requests = vec![a, b];
    let (stats, _) = run(&s);
    report("mix", &stats);
    let names: Vec<&str> = stats.by_name.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "b"]);
    let (na, nb) = (stats.by_name["a"].requests, stats.by_name["b"].requests);
    assert_eq!(na + nb, stats.total.requests);
    assert!(stats.total.requests > 1000);
    assert_eq!(stats.total.failures, 0);
    let share = na as f64 / stats.total.requests as f64;
    assert!((0.70..=0.80).contains(&share), "share of a: {share}");
    assert!(server.body_bytes.load(Ordering::Relaxed) >= nb);
}

#[test]
fn connections_spread_over_replicas() {
    let one = TestServer::start(Behavior::Sleep(ms(5)));
    let two = TestServer::start(Behavior::Sleep(ms(5)));
    let endpoints = vec![one.endpoint(), two.endpoint()];
    let s = spec(endpoints.clone(), closed(4, (0, 0)), ms(100), ms(700));
    let (stats, _) = run(&s);
    assert_eq!(stats.total.failures, 0);
    let (h1, h2) = (
        one.hits.load(Ordering::Relaxed),
        two.hits.load(Ordering::Relaxed),
    );
    assert!(h1 > 100 && h2 > 100, "{h1} {h2}");

    let s = spec(
        endpoints,
        Model::Open {
            rate: 200.0,
            max_in_flight: 100,
        },
        ms(100),
        ms(700),
    );
    let (before1, before2) = (
        one.hits.load(Ordering::Relaxed),
        two.hits.load(Ordering::Relaxed),
    );
    let (stats, _) = run(&s);
    assert_eq!(stats.total.failures, 0);
    let d1 = one.hits.load(Ordering::Relaxed) - before1;
    let d2 = two.hits.load(Ordering::Relaxed) - before2;
    assert!(d1.abs_diff(d2) <= 2, "{d1} {d2}");
}

#[test]
fn open_model_drops_beyond_max_in_flight() {
    let server = TestServer::start(Behavior::Sleep(ms(200)));
    let s = spec(
        vec![server.endpoint()],
        Model::Open {
            rate: 200.0,
            max_in_flight: 10,
        },
        ms(100),
        ms(1000),
    );
    let (stats, _) = run(&s);
    report("drops", &stats);
    // 10 in flight at 200 ms each: about 50/s served out of 200/s offered.
    assert!(stats.dropped > 100, "{}", stats.dropped);
    assert!(stats.total.requests < 80);
    assert!((199..=201).contains(&(stats.total.requests + stats.dropped)));
    assert!(stats.warnings.iter().any(|w| w.contains("dropped")));
}

#[test]
fn endpoint_parsing() {
    let e = Endpoint::parse("http://127.0.0.1:8023").unwrap();
    assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8023));
    assert_eq!(Endpoint::parse("HTTP://localhost/").unwrap().port, 80);
    let v6 = Endpoint::parse("http://[::1]:9000").unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
    assert_eq!(v6.to_string(), "http://[::1]:9000");
    let https = Endpoint::parse("https://127.0.0.1:8443").unwrap();
    assert!(https.tls && https.port == 8443);
    assert_eq!(https.to_string(), "https://127.0.0.1:8443");
    assert_eq!(Endpoint::parse("https://api.internal").unwrap().port, 443);
    for bad in [
        "127.0.0.1:80",
        "ftp://x",
        "http://",
        "http://:80",
        "http://h:0",
        "http://h:99999",
        "http://h:8080/api",
        "http://u@h:1",
        "http://::1:80",
        "http://[::1",
    ] {
        assert!(
            matches!(Endpoint::parse(bad), Err(EngineError::BadUrl { .. })),
            "{bad}"
        );
    }
}

#[test]
fn invalid_specs_are_errors_not_panics() {
    let base = spec(
        vec![Endpoint::parse("http://127.0.0.1:9").unwrap()],
        closed(1, (0, 0)),
        ms(0),
        ms(100),
    );
    let mut cases: Vec<LoadSpec> = Vec::new();
    let mut push = |f: &dyn Fn(&mut LoadSpec)| {
        let mut s = base.clone();
        f(&mut s);
        cases.push(s);
    };
    push(&|s| s.endpoints.clear());
    push(&|s| s.requests.clear());
    push(&|s| s.requests[0].weight = 0);
    push(&|s| s.requests[0].method = "GE T".into());
    push(&|s| s.requests[0].path = "no-slash".into());
    push(&|s| s.requests[0].headers = vec![("bad header".into(), "v".into())]);
    push(&|s| s.requests[0].headers = vec![("x".into(), "a\nb".into())]);
    push(&|s| s.workers = 0);
    push(&|s| s.duration = Duration::ZERO);
    push(&|s| s.request_timeout = Duration::ZERO);
    push(&|s| s.warmup = Duration::MAX);
    push(&|s| s.model = closed(0, (0, 0)));
    push(&|s| s.model = closed(1, (10, 5)));
    push(&|s| {
        s.model = Model::Closed {
            users: 1,
            spawn_rate: f64::NAN,
            think_min: Duration::ZERO,
            think_max: Duration::ZERO,
        }
    });
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut s = base.clone();
        s.model = Model::Open {
            rate,
            max_in_flight: 1,
        };
        cases.push(s);
    }
    let mut s = base.clone();
    s.model = Model::Open {
        rate: 1.0,
        max_in_flight: 0,
    };
    cases.push(s);
    for (i, s) in cases.iter().enumerate() {
        let r = run_load(s, CancelToken::new(), &|_| {});
        assert!(
            matches!(r, Err(EngineError::InvalidSpec(_))),
            "case {i}: {:?}",
            r.map(|s| s.total.requests)
        );
    }
}

#[test]
fn reconnects_when_the_server_closes_connections() {
    let server = TestServer::start(Behavior::CloseEach(ms(2)));
    for model in [
        closed(4, (0, 0)),
        Model::Open {
            rate: 300.0,
            max_in_flight: 100,
        },
    ] {
        let s = spec(vec![server.endpoint()], model, ms(100), ms(700));
        let (stats, _) = run(&s);
        report("connection: close", &stats);
        assert!(stats.total.requests > 150);
        assert_eq!(stats.total.failures, 0);
    }
}

// The live view counts what the cell's statistics count.
#[test]
fn live_window_is_the_measured_window_warm_up_excluded() {
    let server = TestServer::start(Behavior::Sleep(ms(5)));
    let mut s = spec(
        vec![server.endpoint()],
        closed(4, (0, 0)),
        ms(1500),
        ms(3000),
    );
    s.requests = vec![RequestSpec::get("a", "/a"), RequestSpec::get("b", "/b")];
    let ticks = std::sync::Mutex::new(Vec::new());
    let stats = run_load(&s, CancelToken::new(), &|t| ticks.lock().unwrap().push(t)).unwrap();
    let ticks = ticks.into_inner().unwrap();
    // During warm-up nothing is counted, whatever was completed.
    let warm: Vec<&ProgressTick> = ticks.iter().filter(|t| t.phase == Phase::Warmup).collect();
    assert!(!warm.is_empty());
    assert!(warm.iter().any(|t| t.requests > 0));
    assert!(
        warm.iter()
            .all(|t| t.window.secs == 0 && t.window.requests == 0)
    );
    // Later, the window's closed seconds are exactly the timeline's first rows.
    let measured: Vec<&ProgressTick> = ticks.iter().filter(|t| t.window.secs > 0).collect();
    assert!(!measured.is_empty(), "no tick saw a closed second");
    for t in measured {
        let rows = &stats.timeline[..t.window.secs as usize];
        assert_eq!(
            t.window.requests,
            rows.iter().map(|r| r.requests).sum::<u64>()
        );
        assert_eq!(
            t.window.failures,
            rows.iter().map(|r| r.failures).sum::<u64>()
        );
        assert!(t.window.requests < t.requests, "warm-up requests leaked in");
        let last = t.window.last.as_ref().unwrap();
        assert_eq!(last.t + 1, t.window.secs);
        assert_eq!(last.requests, rows[rows.len() - 1].requests);
        let names: Vec<&str> = t.window.by_name.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
