//! `[[scrape]]`: each replica's own /metrics during the measured window,
//! against demo-target replicas whose queueing is known in closed form, and
//! the load generator's byte counts against a server that counts its own.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;

/// Two replicas of 2 slots x 40 ms: at 2 users nothing queues; at 16 users
/// each replica holds 8 requests, 2 in service and 6 waiting, so a request
/// takes 4 x 40 ms = 160 ms on the server as on the client.
#[test]
fn replica_metrics_agree_with_the_client_and_with_queueing() {
    let plan = r#"
name = "scrape-replicas"
[matrix]
users = [2, 16]
[cell]
duration = "4s"
warmup = "1s"
[system]
backend = "local"
replicas = 2
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "2", "--service-time", "40ms", "--jitter", "fixed"]
ready = { path = "/health", timeout = "10s" }
[load]
users = "{{ matrix.users }}"
[[load.request]]
method = "POST"
path = "/predict"
body = "{}"
[analysis]
baseline = "0s"
[[scrape]]
name = "model"
path = "/metrics"
interval = "500ms"
series = [
  { metric = "demo_requests_total", agg = "rate", as = "server_rps" },
  { metric = "demo_queue_depth", agg = "max", as = "queue_max" },
  { metric = "demo_request_duration_seconds", agg = "p95", as = "server_p95" },
]
[[threshold]]
expr = "queue_max <= 8"
[[threshold]]
expr = "server_p95 < 1s"
[[threshold]]
name = "queued cells are slow"
expr = "p95 > 100ms"
where = "queue_max >= 2"
"#;
    let r = run_plan("scrape-replicas", plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let rows = summary(&r.dir);
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let (client, server) = (num(row, "rps"), num(row, "server_rps"));
        assert!(
            within(server, client, 0.10),
            "server {server} vs client {client}: {row:?}"
        );
        let (client_p95, server_p95) = (num(row, "p95"), num(row, "server_p95"));
        assert!(
            within(server_p95, client_p95, 0.15),
            "server p95 {server_p95} vs client {client_p95}: {row:?}"
        );
    }
    assert!(num(&rows[0], "queue_max") <= 1.0, "{:?}", rows[0]);
    assert!(num(&rows[1], "queue_max") >= 2.0, "{:?}", rows[1]);
    // 160 ms of queueing; the buckets are 10 ms wide there.
    assert!(
        within(num(&rows[1], "server_p95"), 160.0, 0.2),
        "{:?}",
        rows[1]
    );

    for cell in ["users2", "users16"] {
        let csv =
            std::fs::read_to_string(r.dir.join("cells").join(cell).join("metrics.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("t,replica,metric,labels,value"));
        let replicas: BTreeSet<&str> = lines.filter_map(|l| l.split(',').nth(1)).collect();
        assert_eq!(replicas.len(), 2, "{cell}: {replicas:?}");
    }
    // Each cell's page draws every series per replica; the report sets the
    // server's latency beside the client's.
    for column in ["server_rps", "queue_max", "server_p95"] {
        let svg = r
            .dir
            .join("cells/users16")
            .join(format!("scrape-{column}.svg"));
        let text =
            std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
        assert!(
            text.contains("class=\"line-0\"")
                && text.contains("class=\"line-1\"")
                && !text.contains("class=\"line-2\""),
            "{column}: one line per replica"
        );
        let page = std::fs::read_to_string(r.dir.join("cells/users16/cell.md")).unwrap();
        assert!(page.contains(&format!("scrape-{column}.svg")), "{page}");
    }
    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    assert!(report.contains("## Inside the service"), "{report}");
    assert!(report.contains("client p95 − server_p95"), "{report}");
    assert!(report.contains("## Network"), "{report}");
    // The columns are in summary.json's rows and thresholds.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("summary.json")).unwrap())
            .unwrap();
    assert!(
        json["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "server_p95")
    );
    let thresholds = json["thresholds"].to_string();
    assert!(thresholds.contains("queue_max"), "{thresholds}");
    // The finding: the client's p95 is the service's own (loopback, a
    // client far from saturated), so the gap is small.
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "server_latency")
        .expect("a server_latency finding");
    assert_eq!(finding["severity"], "info", "{finding}");
    let gap = finding["numbers"]["gap_ms"].as_f64().unwrap();
    assert!(gap.abs() < 0.15 * 160.0, "{finding}");
    assert_eq!(finding["numbers"]["cells"], 2.0, "{finding}");
    // `where` on a scraped column: only the cell that queued is judged (at
    // 2 users p95 is 40 ms, which the threshold would fail).
    let judged: Vec<&serde_json::Value> = json["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["threshold"] == "queued cells are slow")
        .collect();
    assert_eq!(judged.len(), 1, "{judged:?}");
    assert_eq!(judged[0]["cell"], "users16", "{judged:?}");
    assert_eq!(judged[0]["passed"], true, "{judged:?}");
}

fn demo_target(port: u16) -> Child {
    loadmatrix()
        .args(["demo-target", "--port", &port.to_string(), "--slots", "4"])
        .args(["--service-time", "20ms", "--jitter", "fixed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The scraped target is restarted mid-cell: its counter starts again from
/// zero, and the rate still counts every request it answered.
#[test]
fn a_counter_reset_mid_cell_is_not_a_negative_rate() {
    let port = free_port();
    let mut target = demo_target(port);
    wait_for("the demo target", Duration::from_secs(10), || answers(port));
    let plan = format!(
        r#"
name = "scrape-reset"
[cell]
duration = "6s"
[load]
base_url = "http://127.0.0.1:{port}"
users = 2
[[load.request]]
method = "POST"
path = "/predict"
body = "{{}}"
[analysis]
baseline = "0s"
[[scrape]]
name = "target"
url = "http://127.0.0.1:{port}/metrics"
interval = "250ms"
series = [{{ metric = "demo_requests_total", agg = "rate", as = "server_rps" }}]
"#
    );
    let restarted = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        let _ = target.kill();
        let _ = target.wait();
        let again = demo_target(port);
        wait_for("the restarted demo target", Duration::from_secs(10), || {
            answers(port)
        });
        again
    });
    let r = run_plan("scrape-reset", &plan, &[]);
    let mut again = restarted.join().unwrap();
    let _ = again.kill();
    let _ = again.wait();
    let rows = summary(&r.dir);
    let row = &rows[0];
    // Successful requests per second, as the client saw them.
    let (ok, server) = (num(row, "ok_rps"), num(row, "server_rps"));
    assert!(server > 0.0, "{row:?}");
    assert!(
        within(server, ok, 0.15),
        "server {server} vs client ok {ok}: {row:?}"
    );
    let csv =
        std::fs::read_to_string(r.dir.join("cells").join("default").join("metrics.csv")).unwrap();
    let values: Vec<f64> = csv
        .lines()
        .skip(1)
        .filter(|l| l.contains("status=\"\"200\"\""))
        .filter_map(|l| l.rsplit(',').next()?.parse().ok())
        .collect();
    assert!(
        values.windows(2).any(|w| w[1] < w[0]),
        "the counter never went down: {values:?}"
    );
}

/// An HTTP/1.1 server that answers every request with the same bytes and
/// counts what crosses its sockets.
struct CountingServer {
    port: u16,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CountingServer {
    fn start() -> CountingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (received, sent) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, st) = (received.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &r, &s));
            }
        });
        CountingServer {
            port,
            received,
            sent,
            stop,
        }
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, received: &AtomicU64, sent: &AtomicU64) {
    let body = "x".repeat(1000);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = 0u64;
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(n) => head += n as u64,
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        received.fetch_add(head + content_length as u64, Ordering::Relaxed);
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
        sent.fetch_add(response.len() as u64, Ordering::Relaxed);
    }
}

/// `rx_mbps` and `tx_mbps` are the engine's own byte counts: they match what
/// the server counted on its side of the sockets.
#[test]
fn network_throughput_matches_bytes_counted_by_the_server() {
    let server = CountingServer::start();
    let plan = format!(
        r#"
name = "scrape-bytes"
[cell]
duration = "3s"
[load]
base_url = "http://127.0.0.1:{}"
users = 4
think_time = "2ms"
[[load.request]]
method = "POST"
path = "/echo"
body = '{{"inputs": [1, 2, 3, 4, 5, 6, 7, 8]}}'
[analysis]
baseline = "0s"
"#,
        server.port
    );
    let r = run_plan("scrape-bytes", &plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let row = &summary(&r.dir)[0];
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.dir.join("cells").join("default").join("stats.json")).unwrap(),
    )
    .unwrap();
    let secs = stats["stats"]["measured_secs"].as_f64().unwrap();
    let mb = |bytes: u64| bytes as f64 * 8.0 / 1e6 / secs;
    let (rx, tx) = (num(row, "rx_mbps"), num(row, "tx_mbps"));
    let (server_sent, server_received) = (
        server.sent.load(Ordering::Relaxed),
        server.received.load(Ordering::Relaxed),
    );
    assert!(
        server_sent > 100_000,
        "too little traffic to compare: {server_sent}"
    );
    assert!(
        within(rx, mb(server_sent), 0.05),
        "rx {rx} vs server sent {}",
        mb(server_sent)
    );
    assert!(
        within(tx, mb(server_received), 0.05),
        "tx {tx} vs server received {}",
        mb(server_received)
    );
}

/// A Python server, written by the test: `/metrics` exposes `series` label
/// sets of `wide_total` (each counting the scrapes so far), `/moved` sends
/// the scraper to `redirect`, anything else answers 200.
const WIDE_SERVER: &str = r##"
import http.server, sys
port, series, redirect = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
host = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
scrapes = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def reply(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        global scrapes
        if self.path == "/metrics":
            scrapes += 1
            lines = ["# TYPE wide_total counter"]
            lines += ['wide_total{id="%d"} %d' % (i, scrapes) for i in range(series)]
            self.reply(200, ("\n".join(lines) + "\n").encode())
        elif self.path == "/moved":
            self.reply(302, b"", [("Location", redirect)])
        else:
            self.reply(200, b"ok")
http.server.ThreadingHTTPServer((host, port), H).serve_forever()
"##;

fn wide_server(
    dir: &std::path::Path,
    port: u16,
    series: usize,
    redirect: &str,
    host: &str,
) -> Child {
    let script = dir.join("wide_server.py");
    std::fs::write(&script, WIDE_SERVER).unwrap();
    let child = Command::new("python3")
        .arg(&script)
        .args([&port.to_string(), &series.to_string(), redirect, host])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the python server", Duration::from_secs(10), || {
        TcpStream::connect((host, port)).is_ok()
    });
    child
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_family_with_100000_label_sets_is_capped_and_summed_into_an_overflow_series() {
    let dir = temp_dir("scrape-wide");
    let port = free_port();
    let _server = Killed(wide_server(&dir, port, 100_000, "/", "127.0.0.1"));
    let plan = format!(
        r#"
name = "scrape-wide"
[cell]
duration = "3s"
[load]
base_url = "http://127.0.0.1:{port}"
users = 1
think_time = "50ms"
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
[[scrape]]
name = "wide"
url = "http://127.0.0.1:{port}/metrics"
interval = "1s"
series = [{{ metric = "wide_total", agg = "rate", as = "wide_rate" }}]
"#
    );
    let r = run_plan("scrape-wide", &plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let csv = std::fs::read_to_string(r.dir.join("cells/default/metrics.csv")).unwrap();
    let mut label_sets = BTreeSet::new();
    let mut scrapes = BTreeSet::new();
    for line in csv.lines().skip(1) {
        let (t, rest) = line.split_once(',').unwrap();
        scrapes.insert(t.to_string());
        let labels = rest.rsplit_once(',').unwrap().0;
        label_sets.insert(labels.to_string());
    }
    // The documented cap, plus the one overflow series.
    assert_eq!(label_sets.len(), 1001, "{} label sets", label_sets.len());
    assert!(csv.contains("loadmatrix_overflow"), "no overflow series");
    assert!(
        csv.lines().count() <= 1001 * scrapes.len() + 1,
        "{} lines for {} scrapes",
        csv.lines().count(),
        scrapes.len()
    );
    // Every series counts the scrapes: over all of them (kept and summed
    // alike) the counters grew 100,000 per scrape.
    let times: Vec<f64> = scrapes.iter().map(|t| t.parse().unwrap()).collect();
    let (first, last) = (
        times.iter().copied().fold(f64::INFINITY, f64::min),
        times.iter().copied().fold(0.0, f64::max),
    );
    assert!(times.len() >= 2, "{times:?}");
    let expected = 100_000.0 * (times.len() - 1) as f64 / (last - first);
    let rate = num(&summary(&r.dir)[0], "wide_rate");
    assert!(within(rate, expected, 0.01), "{rate} vs {expected}");
    let events = std::fs::read_to_string(r.dir.join("cells/default/events.log")).unwrap();
    assert!(
        events.contains("more than 1000 label sets of `wide_total`")
            && events.contains("loadmatrix_overflow=\"true\""),
        "{events}"
    );
}

#[test]
fn a_scrape_redirect_to_another_host_is_not_followed_and_is_an_event() {
    let dir = temp_dir("scrape-redirect");
    let (port, other) = (free_port(), free_port());
    let elsewhere = format!("http://127.0.0.2:{other}/metrics");
    let _other = Killed(wide_server(&dir, other, 3, "/", "127.0.0.2"));
    let _server = Killed(wide_server(&dir, port, 1, &elsewhere, "127.0.0.1"));
    let plan = format!(
        r#"
name = "scrape-redirect"
[cell]
duration = "2s"
[load]
base_url = "http://127.0.0.1:{port}"
users = 1
think_time = "50ms"
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
[[scrape]]
name = "moved"
url = "http://127.0.0.1:{port}/moved"
interval = "500ms"
series = [{{ metric = "wide_total", agg = "rate", as = "moved_rate" }}]
"#
    );
    let r = run_plan("scrape-redirect", &plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let cell = r.dir.join("cells/default");
    let events = std::fs::read_to_string(cell.join("events.log")).unwrap();
    assert!(
        events.contains(&format!("redirected to {elsewhere}, which is not followed")),
        "{events}"
    );
    // Nothing from the other host was stored, and the column is empty.
    let csv = std::fs::read_to_string(cell.join("metrics.csv")).unwrap_or_default();
    assert!(!csv.contains("wide_total"), "{csv}");
    assert_eq!(
        summary(&r.dir)[0]["moved_rate"],
        "",
        "{:?}",
        summary(&r.dir)[0]
    );
}
