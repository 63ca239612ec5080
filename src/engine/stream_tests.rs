//! Streamed responses end to end: the engine against the real demo target
//! on 127.0.0.1 (OpenAI-style SSE and plain chunks), and against scripted
//! servers that cut a stream short.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::base::request::{StreamMode, StreamSlo};
use crate::demo_target::{DemoConfig, bind_listener, serve};

/// A demo target on its own thread and runtime, stopped on drop.
struct Demo {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Demo {
    fn start(slots: usize, first_token: Duration, token_time: Duration) -> Demo {
        let config = DemoConfig {
            slots,
            first_token,
            token_time,
            ..DemoConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = bind_listener("127.0.0.1", 0).await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, config, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        Demo {
            addr: rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::parse(&format!("http://{}", self.addr)).unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn completion(path: &str, tokens: u64, stream: StreamMode) -> RequestSpec {
    RequestSpec {
        name: "generate".into(),
        method: "POST".into(),
        path: path.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        bodies: vec![Bytes::from(format!(
            r#"{{"prompt": "hello", "max_tokens": {tokens}, "stream": true}}"#
        ))],
        weight: 1,
        expect_status: Some(200),
        stream: Some(stream),
        rows: None,
    }
}

fn streaming_spec(endpoint: Endpoint, request: RequestSpec, users: u64) -> LoadSpec {
    LoadSpec {
        endpoints: vec![endpoint],
        requests: vec![request],
        model: Model::Closed {
            users,
            spawn_rate: 0.0,
            think_min: Duration::ZERO,
            think_max: Duration::ZERO,
        },
        workers: 2,
        // The window opens inside the first wave of streams, so whole waves
        // start in it.
        warmup: ms(250),
        duration: Duration::from_secs(3),
        request_timeout: Duration::from_secs(10),
        slo: StreamSlo::default(),
        transport: Default::default(),
    }
}

fn run(spec: &LoadSpec) -> CellStats {
    let s = run_load(spec, CancelToken::new(), &|_| {}).unwrap();
    let f = s.total.stream.clone().unwrap_or_default();
    eprintln!(
        "requests {} failures {:?} p50 {:.1} ms; ttft p50 {:.1} p95 {:.1}; itl p50 {:.2} p95 {:.2}; \
         tokens {} ({:.1}/s); goodput {:?}",
        s.total.requests,
        s.total.failures_by_kind,
        s.total.p50_ms,
        f.ttft_p50_ms,
        f.ttft_p95_ms,
        f.itl_p50_ms,
        f.itl_p95_ms,
        f.tokens,
        f.tokens_per_s,
        s.total.goodput
    );
    s
}

fn assert_within(what: &str, actual: f64, expected: f64, tol: f64) {
    assert!(
        (actual - expected).abs() <= expected * tol,
        "{what}: {actual:.2} not within {:.0}% of {expected:.2}",
        tol * 100.0
    );
}

#[test]
fn sse_ttft_itl_tokens_and_goodput_match_the_demo_target() {
    // 200 ms prefill, then 31 gaps of 10 ms: 0.51 s a stream; 4 users on 8
    // slots never queue.
    let demo = Demo::start(8, ms(200), ms(10));
    let request = completion("/v1/completions", 32, StreamMode::Sse);
    let mut spec = streaming_spec(demo.endpoint(), request, 4);
    spec.duration = Duration::from_secs(6);
    spec.slo.ttft = Some(ms(500));
    let s = run(&spec);
    let t = &s.total;
    assert_eq!(t.failures, 0, "{:?}", t.failures_by_kind);
    let f = t.stream.as_ref().expect("stream figures");
    assert_within("ttft p50", f.ttft_p50_ms, 200.0, 0.10);
    assert_within("itl p50", f.itl_p50_ms, 10.0, 0.20);
    assert_within("tokens/s", f.tokens_per_s, 4.0 * 32.0 / 0.51, 0.15);
    // [DONE] is no token: exactly 32 per request.
    assert_eq!(f.tokens, 32 * t.requests);
    assert_within("e2e p50", t.p50_ms, 510.0, 0.10);
    let g = t.goodput.as_ref().expect("goodput under a ttft SLO");
    assert_eq!((g.good, g.pct), (t.requests, 100.0));
    // Per name too, and the timeline carries the figures per second.
    assert_eq!(
        s.by_name["generate"].stream.as_ref().unwrap().tokens,
        f.tokens
    );
    let row = s.timeline[2]
        .stream
        .as_ref()
        .expect("timeline stream columns");
    assert_within("timeline ttft p95", row.ttft_p95_ms, 200.0, 0.15);
    assert!(row.tokens_per_s > 150.0, "{row:?}");

    spec.duration = Duration::from_secs(2);
    spec.slo.ttft = Some(ms(100));
    let s = run(&spec);
    let g = s.total.goodput.as_ref().unwrap();
    assert!(s.total.requests > 0);
    assert_eq!((g.good, g.pct), (0, 0.0));
}

#[test]
fn queued_streams_wait_whole_stream_durations() {
    // 4 users on 2 slots: while two streams run (0.51 s each) the other two
    // wait for them, so after the first wave every request waits exactly
    // one stream before its prefill: ttft 0.51 + 0.2 s. Gaps do not change.
    let demo = Demo::start(2, ms(200), ms(10));
    let request = completion("/v1/completions", 32, StreamMode::Sse);
    let mut spec = streaming_spec(demo.endpoint(), request, 4);
    spec.warmup = ms(600);
    let s = run(&spec);
    let f = s.total.stream.as_ref().unwrap();
    assert_within("ttft p50", f.ttft_p50_ms, 710.0, 0.10);
    // p95 of a dozen streams is their slowest: one scheduling hiccup of a
    // busy machine moves it, so it gets the wider bound.
    assert_within("ttft p95", f.ttft_p95_ms, 710.0, 0.20);
    assert_within("itl p50", f.itl_p50_ms, 10.0, 0.20);
    // Two slots: 2 / 0.51 s streams per second, 32 tokens each.
    assert_within("tokens/s", f.tokens_per_s, 2.0 * 32.0 / 0.51, 0.20);
    assert_within("e2e p50", s.total.p50_ms, 1020.0, 0.10);
}

#[test]
fn chunked_streams_count_every_chunk() {
    let demo = Demo::start(8, ms(100), ms(10));
    let request = completion("/v1/completions?format=chunks", 16, StreamMode::Chunks);
    let mut spec = streaming_spec(demo.endpoint(), request, 2);
    spec.duration = Duration::from_secs(2);
    let s = run(&spec);
    let t = &s.total;
    assert_eq!(t.failures, 0, "{:?}", t.failures_by_kind);
    let f = t.stream.as_ref().unwrap();
    assert_eq!(f.tokens, 16 * t.requests);
    assert_within("ttft p50", f.ttft_p50_ms, 100.0, 0.15);
    assert_within("itl p50", f.itl_p50_ms, 10.0, 0.25);
}

/// Answers every request on every connection with `response`, written in
/// pieces `gap` apart, then closes the connection.
fn scripted(pieces: Vec<&'static [u8]>, gap: Duration) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            let Ok((mut s, _)) = listener.accept() else {
                thread::sleep(ms(2));
                continue;
            };
            let pieces = pieces.clone();
            thread::spawn(move || {
                let _ = s.set_nonblocking(false);
                let _ = s.set_nodelay(true);
                let mut req = Vec::new();
                let mut b = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                for p in pieces {
                    if s.write_all(p).is_err() {
                        return;
                    }
                    thread::sleep(gap);
                }
            });
        }
    });
    (addr, stop)
}

fn against(pieces: Vec<&'static [u8]>, mode: StreamMode) -> CellStats {
    let (addr, stop) = scripted(pieces, ms(5));
    let mut request = completion("/v1/completions", 3, mode);
    request.method = "GET".into();
    request.bodies.clear();
    let endpoint = Endpoint::parse(&format!("http://{addr}")).unwrap();
    let mut spec = streaming_spec(endpoint, request, 1);
    spec.warmup = Duration::ZERO;
    spec.duration = ms(500);
    spec.workers = 1;
    let s = run(&spec);
    stop.store(true, Ordering::Relaxed);
    s
}

#[test]
fn a_stream_cut_short_is_an_io_failure_with_its_tokens_counted() {
    const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n";
    // Chunked SSE, the connection closed before the final chunk.
    let s = against(
        vec![
            SSE_HEAD,
            b"Transfer-Encoding: chunked\r\n\r\n",
            b"b\r\ndata: one\n\n\r\n",
            b"14\r\ndata: two\n\ndata: 3\n\n\r\n",
        ],
        StreamMode::Sse,
    );
    let t = &s.total;
    assert!(t.requests > 3, "{}", t.requests);
    assert_eq!(t.failures_by_kind.io, t.requests);
    assert_eq!(t.stream.as_ref().unwrap().tokens, 3 * t.requests);

    // Close-delimited SSE: the close ends the body, but without [DONE] the
    // stream was cut...
    let s = against(
        vec![SSE_HEAD, b"\r\ndata: one\n\n", b"data: two\n\n"],
        StreamMode::Sse,
    );
    assert_eq!(s.total.failures_by_kind.io, s.total.requests);
    assert_eq!(
        s.total.stream.as_ref().unwrap().tokens,
        2 * s.total.requests
    );
    // ...and with it the stream is complete.
    let s = against(
        vec![
            SSE_HEAD,
            b"\r\ndata: one\n\n",
            b"data: two\n\ndata: [DONE]\n\n",
        ],
        StreamMode::Sse,
    );
    assert_eq!(s.total.failures, 0, "{:?}", s.total.failures_by_kind);
    assert_eq!(
        s.total.stream.as_ref().unwrap().tokens,
        2 * s.total.requests
    );

    // Chunks of a chunked body, cut before the last chunk.
    let s = against(
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"3\r\nabc\r\n",
            b"2\r\nde\r\n",
        ],
        StreamMode::Chunks,
    );
    assert_eq!(s.total.failures_by_kind.io, s.total.requests);
    assert_eq!(
        s.total.stream.as_ref().unwrap().tokens,
        2 * s.total.requests
    );

    // Without chunk framing every read of body bytes is an event; a body
    // shorter than its Content-Length is cut.
    let s = against(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            b"abc",
            b"def",
        ],
        StreamMode::Chunks,
    );
    assert_eq!(s.total.failures_by_kind.io, s.total.requests);
    reads_are_events(&s, 2);
    let s = against(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            b"abc",
            b"def",
            b"ghi",
        ],
        StreamMode::Chunks,
    );
    assert_eq!(s.total.failures, 0);
    reads_are_events(&s, 3);
}

/// Without framing, the pieces the server wrote apart are one event each
/// when they arrive apart; a reader that falls behind (a busy machine) gets
/// two in one read, one event. So every request counts between one event and
/// `pieces`, and nearly all of them count `pieces`.
fn reads_are_events(s: &CellStats, pieces: u64) {
    let (requests, tokens) = (s.total.requests, s.total.stream.as_ref().unwrap().tokens);
    assert!(
        tokens <= pieces * requests,
        "{tokens} events from {requests} requests"
    );
    assert!(
        tokens * 10 >= pieces * requests * 9,
        "{tokens} events from {requests} requests of {pieces} pieces"
    );
}

#[test]
fn unstreamed_requests_report_no_stream_figures() {
    let demo = Demo::start(8, ms(20), ms(5));
    let mut request = completion("/v1/completions", 4, StreamMode::Sse);
    request.stream = None;
    let mut spec = streaming_spec(demo.endpoint(), request, 2);
    spec.duration = ms(600);
    let s = run(&spec);
    assert!(s.total.requests > 0);
    assert!(s.total.stream.is_none());
    assert!(s.total.goodput.is_none());
    assert!(s.timeline.iter().all(|r| r.stream.is_none()));
}
