//! End-to-end tests: a real server on 127.0.0.1 and a real HTTP client.

use super::*;

use std::net::SocketAddr;

use http_body_util::BodyExt as _;
use hyper::client::conn::http1 as client;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Guard against hangs; every test is designed to finish well within this.
const TEST_LIMIT: Duration = Duration::from_secs(3);

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test exceeded its time limit");
}

struct TestServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(config: DemoConfig) -> Self {
        let listener = bind_listener("127.0.0.1", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self { addr, stop, task }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

type Sender = client::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = client::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn send_on(
    sender: &mut Sender,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, String, Option<HeaderValue>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).unwrap(),
        content_type,
    )
}

async fn send(addr: SocketAddr, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let (status, body, _) = send_on(&mut connect(addr).await, method, path, body).await;
    (status, body)
}

async fn predict(addr: SocketAddr) -> (StatusCode, Value) {
    let (status, body) = send(addr, Method::POST, "/predict", r#"{"inputs":[1,2,3]}"#).await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn metrics_text(addr: SocketAddr) -> String {
    let (status, body) = send(addr, Method::GET, "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    body
}

/// The value of the sample line named exactly `series` (name plus labels).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn fixed(millis: u64) -> ServiceTime {
    ServiceTime {
        mean: Duration::from_millis(millis),
        jitter: Jitter::Fixed,
    }
}

fn ms(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

#[tokio::test]
async fn health_predict_metrics_404_and_400() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            service_time: fixed(1),
            replica: 3,
            ..DemoConfig::default()
        })
        .await;
        let addr = server.addr;

        assert_eq!(
            send(addr, Method::GET, "/health", "").await,
            (StatusCode::OK, "ok".to_owned())
        );

        let (status, body) = predict(addr).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["replica"], 3);
        assert_eq!(body["outputs"].as_array().map(Vec::len), Some(3));
        assert_eq!(ms(&body, "service_ms"), 1.0);
        assert!(ms(&body, "queued_ms") >= 0.0);

        for bad in ["", "not json", "{\"a\":", "[1,2]]"] {
            let (status, body) = send(addr, Method::POST, "/predict", bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
            let error: Value = serde_json::from_str(&body).unwrap();
            assert!(error["error"].as_str().unwrap().contains("JSON"), "{body}");
        }

        for (method, path) in [
            (Method::GET, "/nope"),
            (Method::GET, "/predict"),
            (Method::POST, "/health"),
            (Method::DELETE, "/metrics"),
        ] {
            let (status, body) = send(addr, method, path, "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(body, r#"{"error":"not found"}"#);
        }

        let (status, text, content_type) =
            send_on(&mut connect(addr).await, Method::GET, "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            content_type.unwrap(),
            HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE)
        );
        assert_eq!(metric(&text, "demo_requests_total{status=\"200\"}"), 1.0);
        assert_eq!(metric(&text, "demo_requests_total{status=\"400\"}"), 4.0);
        assert_eq!(metric(&text, "demo_requests_total{status=\"500\"}"), 0.0);
        assert_eq!(metric(&text, "demo_request_duration_seconds_count"), 1.0);
        assert!(metric(&text, "demo_request_duration_seconds_sum") >= 0.001);
        assert_eq!(metric(&text, "demo_in_flight"), 0.0);
        assert_eq!(metric(&text, "demo_queue_depth"), 0.0);
        assert_eq!(metric(&text, "demo_slots"), 4.0);
        assert_eq!(metric(&text, "demo_replica{replica=\"3\"}"), 1.0);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn requests_beyond_the_slots_queue_in_waves() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            slots: 2,
            service_time: fixed(50),
            ..DemoConfig::default()
        })
        .await;
        let started = Instant::now();
        let requests: Vec<_> = (0..8).map(|_| tokio::spawn(predict(server.addr))).collect();
        let mut queued = Vec::new();
        for request in requests {
            let (status, body) = request.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(ms(&body, "service_ms"), 50.0);
            queued.push(ms(&body, "queued_ms"));
        }
        let elapsed = started.elapsed();
        queued.sort_by(f64::total_cmp);
        // 8 requests through 2 slots: waves start at 0, 50, 100 and 150 ms.
        // Arrival skew only shortens a request's wait, hence the slack.
        assert!(queued[7] >= 140.0, "{queued:?}");
        assert_eq!(
            queued.iter().filter(|&&q| q < 25.0).count(),
            2,
            "{queued:?}"
        );
        for (i, q) in queued.iter().enumerate() {
            let wave = (i / 2) as f64;
            assert!(*q >= wave * 50.0 - 15.0, "{queued:?}");
        }
        assert!(elapsed >= Duration::from_millis(195), "{elapsed:?}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn completions_stream_tokens_in_openai_format() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            first_token: Duration::from_millis(30),
            token_time: Duration::from_millis(10),
            ..DemoConfig::default()
        })
        .await;
        let addr = server.addr;
        let mut sender = connect(addr).await;
        let started = Instant::now();
        let (status, body, content_type) = send_on(
            &mut sender,
            Method::POST,
            "/v1/completions",
            r#"{"prompt": "hi", "max_tokens": 3, "stream": true}"#,
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.unwrap(), "text/event-stream");
        let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 4, "{body}");
        for event in &events[..3] {
            let json: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(json["choices"][0]["text"], " token");
        }
        assert_eq!(events[3], "data: [DONE]");
        // 30 ms to the first token, 10 ms for each of the other two.
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");

        // Not streamed: one JSON body after the whole generation.
        let started = Instant::now();
        let (status, body, _) = send_on(
            &mut sender,
            Method::POST,
            "/v1/completions",
            r#"{"max_tokens": 4}"#,
        )
        .await;
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(status, StatusCode::OK);
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["choices"][0]["text"], " token token token token");

        // Bare chunks, no SSE framing.
        let (status, body, content_type) = send_on(
            &mut sender,
            Method::POST,
            "/v1/completions?format=chunks",
            r#"{"max_tokens": 2, "stream": true}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.unwrap(), "text/plain; charset=utf-8");
        assert_eq!(body, " token token");

        for bad in [r#"{"max_tokens": 0}"#, r#"{"max_tokens": "x"}"#, "nope"] {
            let (status, _) = send(addr, Method::POST, "/v1/completions", bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }

        let text = metrics_text(addr).await;
        assert_eq!(metric(&text, "demo_tokens_total"), 9.0);
        assert_eq!(metric(&text, "demo_time_to_first_token_seconds_count"), 3.0);
        assert!(metric(&text, "demo_time_to_first_token_seconds_sum") >= 0.09);
        assert_eq!(metric(&text, "demo_requests_total{status=\"200\"}"), 3.0);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_the_last_token() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            slots: 1,
            service_time: fixed(10),
            first_token: Duration::from_millis(50),
            token_time: Duration::from_millis(25),
            ..DemoConfig::default()
        })
        .await;
        let addr = server.addr;
        let stream = tokio::spawn(send(
            addr,
            Method::POST,
            "/v1/completions",
            r#"{"max_tokens": 5, "stream": true}"#,
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The only slot generates for 50 + 4 x 25 = 150 ms: /predict waits.
        let (status, body) = predict(addr).await;
        assert_eq!(status, StatusCode::OK);
        assert!(ms(&body, "queued_ms") >= 100.0, "{body}");
        let (status, body) = stream.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.matches("data: ").count(), 6, "{body}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn gauges_show_busy_slots_and_queue() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            slots: 2,
            service_time: fixed(200),
            ..DemoConfig::default()
        })
        .await;
        let requests: Vec<_> = (0..6).map(|_| tokio::spawn(predict(server.addr))).collect();
        // Poll until all six have arrived; the first wave lasts 200 ms.
        let mut seen = None;
        for _ in 0..100 {
            let text = metrics_text(server.addr).await;
            let gauges = (
                metric(&text, "demo_in_flight"),
                metric(&text, "demo_queue_depth"),
            );
            assert!(gauges.0 <= 2.0, "in flight beyond the slots: {gauges:?}");
            if gauges == (2.0, 4.0) {
                seen = Some(gauges);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen, Some((2.0, 4.0)));
        for request in requests {
            assert_eq!(request.await.unwrap().0, StatusCode::OK);
        }
        let text = metrics_text(server.addr).await;
        assert_eq!(metric(&text, "demo_in_flight"), 0.0);
        assert_eq!(metric(&text, "demo_queue_depth"), 0.0);
        assert_eq!(metric(&text, "demo_requests_total{status=\"200\"}"), 6.0);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn fail_rate_one_answers_500_after_service() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            service_time: fixed(20),
            fail_rate: 1.0,
            ..DemoConfig::default()
        })
        .await;
        for _ in 0..3 {
            let started = Instant::now();
            let (status, body) = predict(server.addr).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body["error"], "simulated failure");
            assert!(started.elapsed() >= Duration::from_millis(20));
        }
        let text = metrics_text(server.addr).await;
        assert_eq!(metric(&text, "demo_requests_total{status=\"500\"}"), 3.0);
        assert_eq!(metric(&text, "demo_requests_total{status=\"200\"}"), 0.0);
        assert_eq!(metric(&text, "demo_request_duration_seconds_count"), 3.0);
        assert_eq!(
            metric(&text, "demo_request_duration_seconds_bucket{le=\"0.01\"}"),
            0.0
        );
        assert_eq!(
            metric(&text, "demo_request_duration_seconds_bucket{le=\"+Inf\"}"),
            3.0
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn failures_and_jitter_are_deterministic_per_seed() {
    bounded(async {
        let config = DemoConfig {
            service_time: ServiceTime {
                mean: Duration::from_micros(200),
                jitter: Jitter::Exponential,
            },
            fail_rate: 0.5,
            seed: 7,
            ..DemoConfig::default()
        };
        let mut runs = Vec::new();
        for _ in 0..2 {
            let server = TestServer::start(config.clone()).await;
            let mut sender = connect(server.addr).await;
            let mut outcomes = Vec::new();
            for _ in 0..20 {
                let (status, body, _) = send_on(&mut sender, Method::POST, "/predict", "{}").await;
                let body: Value = serde_json::from_str(&body).unwrap();
                outcomes.push((status, ms(&body, "service_ms")));
            }
            runs.push(outcomes);
            server.shutdown().await;
        }
        assert_eq!(runs[0], runs[1]);
        let failures = runs[0]
            .iter()
            .filter(|(status, _)| *status == StatusCode::INTERNAL_SERVER_ERROR)
            .count();
        assert!((3..=17).contains(&failures), "{failures} of 20 failed");
    })
    .await;
}

#[tokio::test]
async fn stalls_delay_requests() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            slots: 8,
            service_time: fixed(10),
            stall: Some(Stall {
                every: Duration::from_millis(300),
                duration: Duration::from_millis(200),
            }),
            ..DemoConfig::default()
        })
        .await;
        // One request every 25 ms for 700 ms spans the stall at 300..500 ms.
        let mut requests = Vec::new();
        let mut ticks = tokio::time::interval(Duration::from_millis(25));
        for _ in 0..28 {
            ticks.tick().await;
            let addr = server.addr;
            requests.push(tokio::spawn(async move {
                let started = Instant::now();
                let (status, _) = predict(addr).await;
                assert_eq!(status, StatusCode::OK);
                started.elapsed()
            }));
        }
        let mut latencies = Vec::new();
        for request in requests {
            latencies.push(request.await.unwrap());
        }
        let slowest = latencies.iter().max().copied().unwrap_or_default();
        let fastest = latencies.iter().min().copied().unwrap_or_default();
        assert!(slowest >= Duration::from_millis(160), "{latencies:?}");
        assert!(fastest < Duration::from_millis(100), "{latencies:?}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_stall_pauses_requests_in_service() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            service_time: fixed(100),
            stall: Some(Stall {
                every: Duration::from_millis(200),
                duration: Duration::from_millis(150),
            }),
            ..DemoConfig::default()
        })
        .await;
        // Enters service at ~150 ms, is paused during 200..350 ms.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let started = Instant::now();
        let (status, body) = predict(server.addr).await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ms(&body, "service_ms"), 100.0);
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn cpu_mode_burns_and_still_queues() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            slots: 1,
            service_time: fixed(30),
            cpu: true,
            ..DemoConfig::default()
        })
        .await;
        let started = Instant::now();
        let first = tokio::spawn(predict(server.addr));
        let second = tokio::spawn(predict(server.addr));
        let mut queued = Vec::new();
        for request in [first, second] {
            let (status, body) = request.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            queued.push(ms(&body, "queued_ms"));
        }
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert!(queued.iter().any(|&q| q >= 20.0), "{queued:?}");
        // The runtime stayed responsive while a slot was burning.
        assert_eq!(
            send(server.addr, Method::GET, "/health", "").await.0,
            StatusCode::OK
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn keep_alive_and_many_concurrent_connections() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            slots: 64,
            service_time: fixed(5),
            ..DemoConfig::default()
        })
        .await;
        let mut sender = connect(server.addr).await;
        for _ in 0..20 {
            let (status, _, _) = send_on(&mut sender, Method::POST, "/predict", "{}").await;
            assert_eq!(status, StatusCode::OK);
        }

        let burst = Instant::now();
        let requests: Vec<_> = (0..400)
            .map(|_| tokio::spawn(predict(server.addr)))
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap().0, StatusCode::OK);
        }
        let text = metrics_text(server.addr).await;
        assert_eq!(metric(&text, "demo_requests_total{status=\"200\"}"), 420.0);
        // A shallow accept backlog shows up as one-second SYN retransmits.
        let elapsed = burst.elapsed();
        assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_lets_in_progress_requests_finish() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            service_time: fixed(150),
            ..DemoConfig::default()
        })
        .await;
        let addr = server.addr;
        // An idle keep-alive connection must not hold shutdown up.
        let _idle = connect(addr).await;
        let request = tokio::spawn(predict(addr));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        server.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(request.await.unwrap().0, StatusCode::OK);
        assert!(TcpStream::connect(addr).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_rejected() {
    bounded(async {
        let server = TestServer::start(DemoConfig::default()).await;
        let body = format!("\"{}\"", "x".repeat(MAX_BODY_BYTES));
        let request = Request::post("/predict")
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        // The server answers before reading the whole body and then closes the
        // connection, so the client may see either the 413 or a broken pipe.
        let mut sender = connect(server.addr).await;
        if let Ok(response) = sender.send_request(request).await {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        }
        let text = metrics_text(server.addr).await;
        assert_eq!(metric(&text, "demo_requests_total{status=\"413\"}"), 1.0);
        server.shutdown().await;
    })
    .await;
}

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: DemoTargetArgs,
}

fn parse(argv: &[&str]) -> DemoTargetArgs {
    use clap::Parser as _;
    Cli::try_parse_from(std::iter::once("demo-target").chain(argv.iter().copied()))
        .unwrap()
        .args
}

#[test]
fn cli_defaults_match_the_default_config() {
    let args = parse(&[]);
    assert_eq!((args.port, args.host.as_str()), (8080, "127.0.0.1"));
    assert_eq!(args.threads, 1);
    assert_eq!(DemoConfig::from_args(&args).unwrap(), DemoConfig::default());
}

#[test]
fn args_are_validated() {
    let config = DemoConfig::try_from(&parse(&[
        "--slots=2",
        "--service-time=1.5s",
        "--jitter=lognormal",
        "--cv=0.5",
        "--fail-rate=0.1",
        "--stall-every=5s",
        "--stall-for=500ms",
        "--cpu",
        "--replica=3",
    ]))
    .unwrap();
    assert_eq!(
        config.service_time,
        ServiceTime {
            mean: Duration::from_millis(1500),
            jitter: Jitter::LogNormal { cv: 0.5 },
        }
    );
    assert_eq!(
        config.stall,
        Some(Stall {
            every: Duration::from_secs(5),
            duration: Duration::from_millis(500),
        })
    );
    assert!(config.cpu);

    let error = |argv: &[&str]| DemoConfig::from_args(&parse(argv)).unwrap_err().to_string();
    assert_eq!(
        error(&["--service-time=20"]),
        "invalid --service-time value \"20\": missing unit after `20`; write e.g. \"20s\" (units: us, ms, s, m, h)"
    );
    assert_eq!(
        error(&["--service-time=fast"]),
        "invalid --service-time value \"fast\": expected a number at `fast`; write a duration (e.g. \"2m\", \"1.5s\", \"250ms\")"
    );
    assert_eq!(
        error(&["--slots=0"]),
        "invalid --slots value 0: must be between 1 and 1000000"
    );
    assert_eq!(
        error(&["--jitter=gaussian"]),
        "invalid --jitter value \"gaussian\": expected fixed, lognormal or exponential"
    );
    assert!(error(&["--cv=-1"]).starts_with("invalid --cv value -1"));
    assert!(error(&["--cv=NaN"]).starts_with("invalid --cv value NaN"));
    assert!(error(&["--fail-rate=1.5"]).starts_with("invalid --fail-rate value 1.5"));
    assert!(error(&["--fail-rate=NaN"]).starts_with("invalid --fail-rate"));
    assert_eq!(
        error(&["--stall-every=1s"]),
        "--stall-every and --stall-for must be given together"
    );
    assert!(error(&["--stall-every=1s", "--stall-for=1s"]).contains("shorter than"));
    assert!(error(&["--stall-every=1s", "--stall-for=0ms"]).contains("greater than zero"));
    assert!(error(&["--stall-every=soon", "--stall-for=1s"]).starts_with("invalid --stall-every"));
}

#[test]
fn durations_are_written_as_in_plans() {
    let service_time = |value: &str| {
        DemoConfig::from_args(&parse(&["--service-time", value]))
            .unwrap()
            .service_time
            .mean
    };
    assert_eq!(service_time("1m30s"), Duration::from_secs(90));
    assert_eq!(service_time("250ms"), Duration::from_millis(250));
    assert_eq!(service_time("1.5s"), Duration::from_millis(1500));
    assert_eq!(service_time(" 500us "), Duration::from_micros(500));
    let stall = DemoConfig::from_args(&parse(&["--stall-every=1m30s", "--stall-for=1.5s"]))
        .unwrap()
        .stall;
    assert_eq!(
        stall,
        Some(Stall {
            every: Duration::from_secs(90),
            duration: Duration::from_millis(1500),
        })
    );
    let error = |argv: &[&str]| DemoConfig::from_args(&parse(argv)).unwrap_err().to_string();
    assert!(error(&["--service-time=10 ms"]).contains("write \"10ms\""));
    assert!(error(&["--service-time=1m1m"]).contains("largest to smallest"));
    assert!(error(&["--stall-every=5x", "--stall-for=1s"]).starts_with("invalid --stall-every"));
}

#[test]
fn run_reports_bad_arguments_and_busy_ports() {
    let mut args = parse(&["--threads=0"]);
    assert!(matches!(
        run(args.clone()),
        Err(DemoTargetError::InvalidValue {
            flag: "threads",
            ..
        })
    ));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    args.threads = 1;
    args.port = busy.local_addr().unwrap().port();
    let error = run(args).unwrap_err();
    assert!(matches!(error, DemoTargetError::Bind { .. }), "{error}");
    assert!(error.to_string().starts_with("cannot listen on 127.0.0.1:"));
}

#[tokio::test]
async fn chat_completions_report_usage_and_prefill_the_uncached_words() {
    bounded(async {
        let server = TestServer::start(DemoConfig {
            first_token: Duration::from_millis(10),
            token_time: Duration::from_millis(1),
            prefill_time: Duration::from_micros(100),
            prefix_cache: 4,
            ..DemoConfig::default()
        })
        .await;
        let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let body = json!({"model": "m", "max_tokens": 3, "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": words.join(" ")}]})
        .to_string();
        // Cold: 10 ms + 1000 x 0.1 ms before the first token.
        let started = Instant::now();
        let (status, text) = send(server.addr, Method::POST, "/v1/chat/completions", &body).await;
        assert!(started.elapsed() >= Duration::from_millis(110));
        assert_eq!(status, StatusCode::OK);
        let events: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(events.len(), 4, "{text}");
        assert_eq!(events[0]["choices"][0]["delta"]["content"], " token");
        assert_eq!(events[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(events[3]["choices"], json!([]));
        assert_eq!(
            events[3]["usage"],
            json!({"prompt_tokens": 1000, "completion_tokens": 3, "total_tokens": 1003})
        );
        // Warm: the first 512-word block is cached, 488 words to prefill.
        let started = Instant::now();
        let (status, text) = send(server.addr, Method::POST, "/v1/chat/completions", &body).await;
        let warm = started.elapsed();
        assert_eq!(status, StatusCode::OK);
        assert!(
            warm >= Duration::from_micros(10_000 + 488 * 100 + 2_000)
                && warm < Duration::from_millis(100),
            "{warm:?}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"));
        // Not streamed: usage always, in the body.
        let plain = json!({"prompt": "a b c", "max_tokens": 2}).to_string();
        let (status, text) = send(server.addr, Method::POST, "/v1/completions", &plain).await;
        assert_eq!(status, StatusCode::OK);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["usage"]["prompt_tokens"], 3);
        assert_eq!(value["usage"]["completion_tokens"], 2);
        let (status, _) = send(server.addr, Method::POST, "/v1/chat/completions", &plain).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "chat needs messages");
        server.shutdown().await;
    })
    .await;
}
