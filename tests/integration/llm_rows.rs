//! Headers rendered per row: every request carries its own row's value,
//! over HTTP/1.1 and HTTP/2, as a recording server sees it; synthetic rows
//! reach the demo target with the token counts their distributions give;
//! and what `validate` and a run say about headers that cannot vary.

use crate::common::*;

use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the recording server saw of one request, in arrival order.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    user: Option<String>,
    auth: Option<String>,
    fixed: Option<String>,
}

/// A loopback server that answers every request 200 over HTTP/1.1 or h2c
/// and records its headers; stopped when dropped.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn recorder() -> Recorder {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let log = Arc::clone(&seen);
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let serve = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                            };
                            log.lock().unwrap().push(Seen {
                                version: req.version(),
                                user: header("x-user"),
                                auth: header("authorization"),
                                fixed: header("x-fixed"),
                            });
                            async {
                                use http_body_util::BodyExt as _;
                                let _ = req.into_body().collect().await;
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                    b"ok",
                                ))))
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stopped => {}
            }
        });
    });
    Recorder {
        port,
        seen,
        stop: Some(stop),
        thread: Some(thread),
    }
}

const TOKEN: &str = "rows-secret-7Qx93kLm";
const USERS: [&str; 5] = ["ada", "grace", "alan", "edsger", "barbara"];

/// One user, rows in file order: the server must see row k % 5's values as
/// request k, for every request, over `http`.
fn each_request_carries_its_rows_header(http: &str) {
    let name = format!("rows-headers-h{}", http.replace('.', ""));
    let data = temp_dir(&format!("{name}-data"));
    let file = data.join("users.jsonl");
    let lines: String = USERS
        .iter()
        .enumerate()
        .map(|(k, u)| format!("{}\n", serde_json::json!({"user": u, "n": k})))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let server = recorder();
    let plan = format!(
        r#"
name = "{name}"
[cell]
duration = "2s"
warmup = "0s"
[load]
base_url = "http://127.0.0.1:{port}"
http = "{http}"
users = 1
think_time = "2ms"
[[load.request]]
name = "who"
method = "POST"
path = "/who/{{{{ row.n }}}}"
data = "{file}"
order = "sequential"
headers = {{ X-User = "{{{{ row.user }}}}", Authorization = "Bearer {{{{ env.LM_ROWS_TOKEN }}}}-{{{{ row.n }}}}", X-Fixed = "same" }}
body = '{{"user": {{{{ row.user | tojson }}}}}}'
expect = {{ status = 200 }}
"#,
        port = server.port,
        file = file.display(),
    );
    let dir = temp_dir(&name);
    let plan_file = dir.join("plan.toml");
    std::fs::write(&plan_file, &plan).unwrap();
    let out = dir.join("results");
    let output = loadmatrix()
        .arg("run")
        .arg(&plan_file)
        .arg("--out")
        .arg(&out)
        .env("LM_ROWS_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let seen = server.seen.lock().unwrap().clone();
    drop(server);
    let version = if http == "2" {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    assert!(
        seen.len() >= 3 * USERS.len(),
        "three passes over the rows at least: {} requests",
        seen.len()
    );
    for (k, s) in seen.iter().enumerate() {
        let row = k % USERS.len();
        assert_eq!(s.version, version, "request {k}: {s:?}");
        assert_eq!(s.user.as_deref(), Some(USERS[row]), "request {k}: {s:?}");
        assert_eq!(
            s.auth.as_deref(),
            Some(format!("Bearer {TOKEN}-{row}").as_str()),
            "request {k}"
        );
        assert_eq!(s.fixed.as_deref(), Some("same"), "request {k}: {s:?}");
    }
    // Sequential order: every value as often as its row came up.
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for s in &seen {
        *counts.entry(s.user.as_deref().unwrap()).or_default() += 1;
    }
    let (passes, rest) = (seen.len() / USERS.len(), seen.len() % USERS.len());
    for (k, u) in USERS.iter().enumerate() {
        assert_eq!(counts[u], passes + usize::from(k < rest), "{counts:?}");
    }
    // The engine's own count agrees with what the server saw (the last
    // request may be cut off by the end of the cell).
    let row = &summary(&only_run(&out, &name))[0];
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    // The token the headers carried is in no output.
    let mut leaks = Vec::new();
    for text in [
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr(&output),
    ] {
        if text.contains(TOKEN) {
            leaks.push("console".to_string());
        }
    }
    scan(&out, &mut leaks);
    assert!(leaks.is_empty(), "the token leaked into {leaks:?}");
}

fn scan(dir: &Path, leaks: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            scan(&p, leaks);
        } else if String::from_utf8_lossy(&std::fs::read(&p).unwrap()).contains(TOKEN) {
            leaks.push(p.display().to_string());
        }
    }
}

#[test]
fn each_http1_request_carries_its_rows_header_value() {
    each_request_carries_its_rows_header("1.1");
}

#[test]
fn each_http2_request_carries_its_rows_header_value() {
    each_request_carries_its_rows_header("2");
}

#[test]
fn synthetic_rows_reach_the_demo_target_with_their_token_counts() {
    // prompt_tokens ~ N(64, 16) and output_tokens ~ N(8, 2), far inside
    // their bounds: over 400 rows the means are 64 and 8 within 2%.
    let plan = r#"
name = "rows-synthetic"
[cell]
duration = "3s"
warmup = "300ms"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "8", "--first-token", "2ms", "--token-time", "1ms"]
ready = { path = "/health", timeout = "10s" }
[load]
users = 4
[[load.request]]
name = "complete"
method = "POST"
path = "/v1/completions"
synthetic = { rows = 400, prompt_tokens = { mean = 64, stddev = 16, min = 1, max = 1000 }, output_tokens = { mean = 8, stddev = 2, min = 1, max = 100 }, seed = 3 }
headers = { X-Prompt-Tokens = "{{ row.prompt_tokens }}" }
body = '{"model": "demo", "max_tokens": {{ row.max_tokens }}, "prompt": {{ row.prompt | tojson }}}'
expect = { status = 200 }
"#;
    let run = run_plan("rows-synthetic", plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let row = &summary(&run.dir)[0];
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    assert!(num(row, "requests") >= 400.0, "a pass at least: {row:?}");
    assert_eq!(row["tokens_source"], "usage", "{row:?}");
    assert!(within(num(row, "input_tokens"), 64.0, 0.05), "{row:?}");
    assert!(within(num(row, "output_tokens"), 8.0, 0.05), "{row:?}");
}

fn validate(dir: &Path, plan: &str) -> (Option<i32>, String) {
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    (o.status.code(), stderr(&o))
}

fn header_plan(headers: &str) -> String {
    format!(
        r#"name = "t"
[load]
base_url = "http://127.0.0.1:9"
users = 1
[[load.request]]
method = "POST"
path = "/v1/completions"
data = "rows.jsonl"
headers = {{ {headers} }}
body = '{{"prompt": {{{{ row.prompt | tojson }}}}}}'
"#
    )
}

#[test]
fn validate_refuses_framing_headers_that_vary_and_fields_rows_lack() {
    let dir = temp_dir("rows-validate");
    std::fs::write(
        dir.join("rows.jsonl"),
        "{\"prompt\": \"a\", \"host\": \"h\", \"user\": \"u\"}\n{\"prompt\": \"b\", \"host\": \"h\"}\n",
    )
    .unwrap();

    // Line 9 is `headers = { ... }`; the value's template starts at its quote.
    let (code, err) = validate(&dir, &header_plan(r#"Host = "{{ row.host }}""#));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan.toml:9:20"), "{err}");
    assert!(
        err.contains("`load.request[0].headers.Host` uses `row`"),
        "{err}"
    );
    assert!(err.contains("must be the same for every request"), "{err}");
    assert!(
        err.contains("give `Host` a value without `row`, or send the row's value in another header, the path or the body"),
        "{err}"
    );

    for name in ["Content-Length", "transfer-encoding", "Connection", "TE"] {
        let (code, err) = validate(
            &dir,
            &header_plan(&format!(r#"{name} = "{{{{ row.host }}}}""#)),
        );
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("give `{name}` a value without `row`")),
            "{err}"
        );
    }

    let (code, err) = validate(&dir, &header_plan(r#"":path" = "/{{ row.host }}""#));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan.toml:9:23"), "{err}");
    assert!(err.contains("HTTP/2 pseudo-header"), "{err}");
    assert!(err.contains("put per-row values in `path`"), "{err}");

    // The same names without `row` are the plan's own business.
    let (code, err) = validate(&dir, &header_plan(r#"Connection = "close""#));
    assert_eq!(code, Some(0), "{err}");

    // A field the second row lacks: the `row.x` in the header, the file and
    // its line, and the fields the row has.
    let (code, err) = validate(
        &dir,
        &header_plan(r#"X-Fixed = "a", X-User = "id-{{ row.user }}""#),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan.toml:9:44"), "{err}");
    assert!(
        err.contains("`load.request[0].headers.X-User` names `row.user`, but line 2 of"),
        "{err}"
    );
    assert!(err.contains("rows.jsonl has no field `user`"), "{err}");
    assert!(err.contains("that row's fields: host, prompt"), "{err}");

    // Per-row headers are fine when every row has the field.
    let (code, err) = validate(&dir, &header_plan(r#"X-Host = "{{ row.host }}""#));
    assert_eq!(code, Some(0), "{err}");

    // Locust sends its locustfile's requests, so rows would never be sent.
    std::fs::write(dir.join("locustfile.py"), "").unwrap();
    let locust = header_plan(r#"X-Host = "{{ row.host }}""#).replace(
        "users = 1\n",
        "users = 1\nengine = \"locust\"\nlocustfile = \"locustfile.py\"\n",
    );
    let (code, err) = validate(&dir, &locust);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan.toml:10:8"), "{err}");
    assert!(err.contains("need the native engine"), "{err}");
    assert!(err.contains("set `engine = \"native\"`"), "{err}");
}

#[test]
fn a_row_whose_header_value_breaks_the_line_fails_the_cell_naming_its_line() {
    let dir = temp_dir("rows-crlf-data");
    let file = dir.join("users.jsonl");
    std::fs::write(
        &file,
        "{\"user\": \"ok\"}\n{\"user\": \"evil\\r\\nx-injected: 1\"}\n",
    )
    .unwrap();
    let server = recorder();
    let plan = format!(
        r#"
name = "rows-crlf"
[cell]
duration = "2s"
[load]
base_url = "http://127.0.0.1:{port}"
users = 1
[[load.request]]
path = "/"
data = "{file}"
headers = {{ X-User = "{{{{ row.user }}}}" }}
"#,
        port = server.port,
        file = file.display(),
    );
    let run = run_plan("rows-crlf", &plan, &[]);
    let err = stderr(&run.output);
    assert_ne!(run.output.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "header `X-User` of `GET /`, line 2 of {}",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("line break (CR or LF)"), "{err}");
    assert!(server.seen.lock().unwrap().is_empty(), "no request is sent");
}
