//! HTTPS and HTTP/2 against the demo target serving TLS (and h2c), whose
//! slots and service time make the expected figures exact.

use crate::common::*;
use crate::tls::{Pki, free_port};

use std::process::{Child, Stdio};
use std::time::Duration;

/// A demo target on a free port, over TLS when `pki` is given; stopped
/// when dropped.
struct Demo(Child, u16);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo(pki: Option<&Pki>, args: &[&str]) -> Demo {
    let port = free_port();
    let mut cmd = loadmatrix();
    cmd.args(["demo-target", "--port", &port.to_string()])
        .args(args);
    if let Some(p) = pki {
        cmd.args([
            "--tls-cert",
            &p.file("server.pem"),
            "--tls-key",
            &p.file("server.key"),
        ]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for("the demo target", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Demo(child, port)
}

#[test]
fn queueing_truth_holds_over_tls_and_http2() {
    // 4 slots x 50 ms: 80 RPS; 8 users keep 4 queued, so latency is 100 ms
    // (Little's law), whatever carries the requests.
    let dir = temp_dir("tls-queueing-pki");
    let pki = Pki::make(&dir);
    let service = [
        "--slots",
        "4",
        "--service-time",
        "50ms",
        "--jitter",
        "fixed",
    ];
    let tls = demo(Some(&pki), &service);
    let plain = demo(None, &service);
    let plan = format!(
        r#"
name = "tls-queueing"
[matrix]
case = ["h1-tls", "h2-tls", "h2c"]
[cell]
duration = "4s"
warmup = "1s"
[tls]
ca = "{ca}"
[load]
base_url = "{{{{ 'http://127.0.0.1:{plain}' if matrix.case == 'h2c' else 'https://localhost:{tls}' }}}}"
http = "{{{{ '1.1' if matrix.case == 'h1-tls' else '2' }}}}"
users = 8
[[load.request]]
method = "POST"
path = "/predict"
body = '{{"inputs": [1]}}'
expect = {{ status = 200 }}
[[scrape]]
name = "tls-demo"
url = "https://localhost:{tls}/metrics"
series = [{{ metric = "demo_requests_total", agg = "rate", as = "server_rps" }}]
[[step]]
id = "poke"
uses = "scrape"
url = "https://localhost:{tls}/metrics"
needs = ["load"]
[analysis]
baseline = "0s"
"#,
        ca = pki.file("ca.pem"),
        plain = plain.1,
        tls = tls.1,
    );
    let run = run_plan("tls-queueing", &plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    for row in summary(&run.dir) {
        let (rps, p50) = (num(&row, "rps"), num(&row, "p50"));
        assert_eq!(num(&row, "failures"), 0.0, "{row:?}");
        assert!(
            within(rps, 80.0, 0.10),
            "{}: rps {rps:.1}, expected 80 ± 10%",
            row["case"]
        );
        assert!(
            within(p50, 100.0, 0.10),
            "{}: p50 {p50:.1} ms, expected 100 ± 10%",
            row["case"]
        );
        assert_eq!(num(&row, "connections"), 8.0, "{row:?}");
        // The scrape step reads the same https endpoint with the same [tls].
        let cell = run.dir.join(format!("cells/case{}/poke.txt", row["case"]));
        let poked = std::fs::read_to_string(cell).unwrap_or_default();
        assert!(
            poked.contains("demo_requests_total"),
            "{}: {poked}",
            row["case"]
        );
        // The service's own count, scraped over https, agrees (the h2c
        // cell's load goes to the other target).
        if row["case"] != "h2c" {
            let server = num(&row, "server_rps");
            assert!(
                within(server, rps, 0.10),
                "{}: server_rps {server:.1}",
                row["case"]
            );
        }
    }
}

#[test]
fn a_streamed_response_over_http2_times_the_first_token() {
    // 4 slots, 2 users: no queue, so the first event comes after exactly
    // --first-token, and the rest every --token-time.
    let dir = temp_dir("tls-h2-stream-pki");
    let pki = Pki::make(&dir);
    let target = demo(
        Some(&pki),
        &[
            "--slots",
            "4",
            "--first-token",
            "200ms",
            "--token-time",
            "20ms",
        ],
    );
    let plan = format!(
        r#"
name = "tls-h2-stream"
[cell]
duration = "3s"
warmup = "500ms"
[tls]
ca = "{ca}"
[load]
base_url = "https://localhost:{port}"
http = "2"
connections = 1
users = 2
[[load.request]]
method = "POST"
path = "/v1/completions"
body = '{{"prompt": "hi", "max_tokens": 8, "stream": true}}'
expect = {{ status = 200 }}
stream = "sse"
[analysis]
baseline = "0s"
"#,
        ca = pki.file("ca.pem"),
        port = target.1,
    );
    let run = run_plan("tls-h2-stream", &plan, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let row = &summary(&run.dir)[0];
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    assert!(within(num(row, "ttft_p50"), 200.0, 0.05), "{row:?}");
    assert!(within(num(row, "itl_p50"), 20.0, 0.25), "{row:?}");
    // Both users' streams shared one connection.
    assert_eq!(num(row, "connections"), 1.0, "{row:?}");
}

#[test]
fn locust_trusts_the_plans_ca() {
    if !locust_available("locust_trusts_the_plans_ca") {
        return;
    }
    // 2 slots x 50 ms: 40 RPS over HTTPS, through Locust's requests client,
    // which trusts the private CA only because it is given as its bundle.
    let dir = temp_dir("tls-locust-pki");
    let pki = Pki::make(&dir);
    let target = demo(
        Some(&pki),
        &[
            "--slots",
            "2",
            "--service-time",
            "50ms",
            "--jitter",
            "fixed",
        ],
    );
    let locustfile = dir.join("locustfile.py");
    std::fs::write(
        &locustfile,
        "from locust import HttpUser, FastHttpUser, constant, task\n\n\
         class Requests(HttpUser):\n    wait_time = constant(0)\n\n    \
         @task\n    def predict(self):\n        \
         self.client.post(\"/predict\", json={\"inputs\": [1]}, name=\"requests\")\n\n\
         class Fast(FastHttpUser):\n    wait_time = constant(0)\n\n    \
         @task\n    def predict(self):\n        \
         self.client.post(\"/predict\", json={\"inputs\": [1]}, name=\"fast\")\n",
    )
    .unwrap();
    let plan = |name: &str, tls: &str| {
        format!(
            r#"
name = "{name}"
[cell]
duration = "2s"
warmup = "1s"
[tls]
{tls}
[load]
engine = "locust"
locustfile = "{locustfile}"
base_url = "https://localhost:{port}"
users = 8
workers = 1
[analysis]
baseline = "0s"
"#,
            locustfile = locustfile.display(),
            port = target.1,
        )
    };
    let by_name = |run: &Run| -> std::collections::BTreeMap<String, (f64, f64)> {
        summary_by_name(&run.dir)
            .iter()
            .map(|r| (r["name"].clone(), (num(r, "requests"), num(r, "failures"))))
            .collect()
    };
    // Both of Locust's clients trust the plan's CA, and only it.
    let ca = format!("ca = \"{}\"", pki.file("ca.pem"));
    let run = run_plan("tls-locust", &plan("tls-locust", &ca), &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", stderr(&run.output));
    let row = &summary(&run.dir)[0];
    assert!(within(num(row, "rps"), 40.0, 0.15), "{row:?}");
    let names = by_name(&run);
    for name in ["requests", "fast"] {
        let (requests, failures) = names[name];
        assert!(requests > 0.0 && failures == 0.0, "{name}: {names:?}");
    }
    let stranger = Pki::make(&temp_dir("tls-locust-stranger"));
    let wrong = format!("ca = \"{}\"", stranger.file("ca.pem"));
    let run = run_plan("tls-locust-wrong", &plan("tls-locust-wrong", &wrong), &[]);
    let names = by_name(&run);
    for name in ["requests", "fast"] {
        let (requests, failures) = names[name];
        assert!(requests > 0.0 && failures == requests, "{name}: {names:?}");
    }
    // `insecure` reaches both clients too, and the console says so.
    let lax = format!("{wrong}\ninsecure = true");
    let run = run_plan("tls-locust-lax", &plan("tls-locust-lax", &lax), &[]);
    let names = by_name(&run);
    for name in ["requests", "fast"] {
        let (requests, failures) = names[name];
        assert!(requests > 0.0 && failures == 0.0, "{name}: {names:?}");
    }
    assert!(
        stderr(&run.output).contains("NOT verified"),
        "{}",
        stderr(&run.output)
    );
}

#[test]
fn a_server_that_never_answers_the_handshake_fails_as_tls_in_time() {
    // Accepts connections and reads nothing: no ServerHello ever comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in listener.incoming().take(64) {
            open.push(conn);
        }
    });
    let plan = format!(
        r#"
name = "tls-silent"
[cell]
duration = "2s"
[load]
base_url = "https://localhost:{port}"
users = 2
timeout = "2s"
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
"#
    );
    let started = std::time::Instant::now();
    let run = run_plan("tls-silent", &plan, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let row = &summary(&run.dir)[0];
    assert!(num(row, "requests") > 0.0, "{row:?}");
    assert_eq!(num(row, "failures"), num(row, "requests"), "{row:?}");
    let console = stderr(&run.output);
    assert!(console.contains("handshake timeout"), "{console}");
    let report = std::fs::read_to_string(run.dir.join("report.md")).unwrap();
    assert!(report.contains("handshake timeout"), "{report}");
    drop(held);
}
