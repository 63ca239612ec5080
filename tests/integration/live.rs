//! A capacity search watched on a terminal and on the dashboard, the
//! dashboard under abuse (idle connections, clients that never read, foreign
//! Host headers, markup in matrix values), and the small command-line edges
//! around watching and reporting.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::live::*;
use crate::common::*;

/// The repository's capacity-search plan, shortened: 1 s probes, 4..16
/// users. Each replica has 4 slots of 50 ms, so 12 users per replica answer
/// in 150 ms and 13 push some requests to 200 ms: capacity 12 users at one
/// replica; two replicas still meet the SLO at 16 (`above_range`).
fn short_search_plan(name: &str) -> String {
    let plan = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/capacity-search.toml"),
    )
    .unwrap();
    plan.replace("name = \"capacity-search\"", &format!("name = \"{name}\""))
        .replace("duration = \"3s\"", "duration = \"1s\"")
        .replace("warmup   = \"1s\"", "warmup   = \"0s\"")
        .replace("to        = 256", "to        = 16")
}

#[test]
fn capacity_search_on_a_terminal_follows_every_probe_and_answers_from_the_frontier() {
    let plan = short_search_plan("live-search");
    assert!(plan.contains("to        = 16"), "the plan changed: {plan}");
    let (file, out) = write_plan("live-search", &plan);
    let run = Background::start_on_pty(&file, &out, &["--serve", "127.0.0.1:0"]);
    let addr = run.dashboard();
    let events = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            read_events(&addr, |t| {
                t.split("event: finished\n")
                    .nth(1)
                    .is_some_and(|f| f.contains("\n\n"))
            })
        })
    };

    // During the search, past the third probe (where a probe's index was
    // once taken for a cell's): the dashboard answers and names the probe.
    let mut state = serde_json::Value::Null;
    wait_for(
        "the fourth probe in /api/state",
        Duration::from_secs(120),
        || {
            state = serde_json::from_str(&get(&addr, "/api/state", Duration::from_secs(5)))
                .unwrap_or_default();
            state["cells"].as_array().is_some_and(|c| c.len() >= 4)
        },
    );
    let cells = state["cells"].as_array().unwrap();
    for (i, c) in cells.iter().enumerate() {
        assert_eq!(c["index"], i, "{state}");
        assert!(c["probe"].is_u64(), "{c}");
        assert_eq!(
            c["outer"], 0,
            "the first four probes search replicas=1: {c}"
        );
    }
    assert_eq!(cells[3]["probe_no"], 4, "{state}");
    assert_eq!(state["selected"], 2, "{state}");

    let (status, text) = run.wait();
    assert!(!text.contains("panicked"), "{text}");
    assert!(status.success(), "{text}");

    // The stream followed to the end: the final state, every probe in it.
    let events = events.join().unwrap();
    let finished = events
        .split("event: finished\n")
        .nth(1)
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap_or_else(|| panic!("no finished event: {events}"));
    let finished: serde_json::Value = serde_json::from_str(finished).unwrap();
    assert_eq!(finished["status"], "complete", "{finished}");
    assert_eq!(finished["report"], "report.html", "{finished}");

    // One result block per probe, each naming its own cell and probe number.
    let run_dir = only_run(&out, "live-search");
    let probes: Vec<String> = manifest(&run_dir)["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        probes,
        [
            "replicas1_users4",
            "replicas1_users8",
            "replicas1_users16",
            "replicas1_users12",
            "replicas1_users14",
            "replicas1_users13",
            "replicas2_users4",
            "replicas2_users8",
            "replicas2_users16",
        ]
    );
    assert_eq!(finished["cells"].as_array().unwrap().len(), probes.len());
    let blocks: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("] probe ") && l.contains(" complete in "))
        .collect();
    assert_eq!(blocks.len(), probes.len(), "one block per probe: {text}");
    let mut no = [0usize; 2];
    for (block, id) in blocks.iter().zip(&probes) {
        let replicas = if id.starts_with("replicas1") { 1 } else { 2 };
        no[replicas - 1] += 1;
        let users = id.rsplit("users").next().unwrap();
        let expected = format!(
            "cell {replicas}/2 [replicas={replicas} users={users}] probe {} complete",
            no[replicas - 1]
        );
        assert!(block.contains(&expected), "{block} is not {expected}");
    }
    assert!(!text.contains("cell 2/1"), "{text}");
    assert!(
        text.contains("searched replicas=1: capacity 12 users (6 probes)"),
        "{text}"
    );
    assert!(
        text.contains("searched replicas=2: above range: 16 users still met the SLO (3 probes)"),
        "{text}"
    );

    // The answers come from the frontier alone: no probe is an answer.
    let capacity = std::fs::read_to_string(run_dir.join("capacity.csv")).unwrap();
    assert!(capacity.contains("\n1,users,12,"), "{capacity}");
    assert!(capacity.contains("\n2,users,16,"), "{capacity}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    for f in summary["findings"].as_array().unwrap() {
        if f["kind"] == "server_latency" {
            continue;
        }
        for c in f["cells"].as_array().unwrap() {
            let c = c.as_str().unwrap();
            assert!(
                c == "replicas1" || c == "replicas2",
                "a finding about a probe: {f}"
            );
        }
    }
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    let answers = report
        .split("## Answers")
        .nth(1)
        .and_then(|a| a.split("\n## ").next())
        .unwrap();
    assert!(!answers.contains("_users"), "{answers}");
    // 16 users still met the SLO at two replicas: no capacity is claimed
    // there, only a lower bound.
    let two = answers
        .lines()
        .find(|l| l.contains("**Capacity**") && l.contains("replicas=2"))
        .unwrap_or_else(|| panic!("no capacity answer for replicas=2: {answers}"));
    assert!(!two.contains("service-bound"), "{two}");
    assert!(
        answers.matches("Cheapest under the SLO").count() <= 1,
        "{answers}"
    );
}

#[test]
fn report_on_a_folder_that_is_not_a_run_exits_2_and_writes_nothing() {
    let dir = temp_dir("live-not-a-run");
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let o = loadmatrix().arg("report").arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not a run folder"), "{}", stderr(&o));
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        ["notes.txt"],
        "report wrote into a folder that is not a run"
    );
    let missing = loadmatrix()
        .arg("report")
        .arg(dir.join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
}

#[test]
fn set_of_a_matrix_axis_the_plan_lacks_is_an_error_with_a_suggestion() {
    let dir = temp_dir("live-set-axis");
    let file = dir.join("plan.toml");
    std::fs::write(
        &file,
        "name = \"p\"\n[matrix]\nreplicas = [1]\nusers = [1, 2]\n[load]\nbase_url = \"http://127.0.0.1:9\"\nusers = \"{{ matrix.users }}\"\n[[load.request]]\npath = \"/\"\n",
    )
    .unwrap();
    let validate = |set: &str| {
        loadmatrix()
            .args(["plan"])
            .arg(&file)
            .args(["--set", set])
            .output()
            .unwrap()
    };
    let o = validate("matrix.usres=[4]");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("no matrix axis `usres`"), "{err}");
    assert!(err.contains("did you mean `users`?"), "{err}");
    let o = validate("matrix.zones=[1,2]");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("its axes are: replicas, users"),
        "{}",
        stderr(&o)
    );
    // An axis the plan has takes the new values.
    let o = validate("matrix.users=[4,8,16]");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("users16"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A GET that may be refused (the dashboard closes connections past its
/// limit as soon as it accepts them): the whole response, or none.
fn try_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Open descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The pid of the loadmatrix run under `script` or directly.
fn run_pid(run: &Background) -> u32 {
    run.child.id()
}

#[test]
fn dashboard_holds_2000_idle_connections_without_starving_the_run() {
    // Four cells, each starting its replicas afresh while the connections
    // sit; 16 s of them outlast the idle timeout that frees the dashboard.
    let plan = grid_plan("live-idle", "1, 2", "1, 2", "0s", "4s");
    let (file, out) = write_plan("live-idle", &plan);
    let run = Background::start(&file, &out, &["--serve", "127.0.0.1:0"]);
    let addr = run.dashboard();
    let pid = run_pid(&run);
    let mut idle = Vec::new();
    let mut peak = 0;
    for i in 0..2000 {
        match TcpStream::connect(&addr) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {i} refused: {e}"),
        }
        if i % 100 == 99 {
            peak = peak.max(fds(pid));
        }
    }
    // The run goes on with every connection open, and the dashboard still
    // answers once the idle ones are closed.
    assert!(
        peak < 256 + 200,
        "{peak} descriptors open with 2000 idle connections: they are not capped"
    );
    let mut state = String::new();
    wait_for(
        "the dashboard to answer again",
        Duration::from_secs(40),
        || {
            state = try_get(&addr, "/api/state").unwrap_or_default();
            state.contains("\"cells\"")
        },
    );
    let (status, text) = run.wait();
    drop(idle);
    assert!(status.success(), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let rows = summary(&only_run(&out, "live-idle"));
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r["status"], "complete", "{r:?}");
    }
}

#[test]
fn dashboard_drops_a_client_that_never_reads() {
    let plan = grid_plan("live-stall", "1", "1", "0s", "24s");
    let (file, out) = write_plan("live-stall", &plan);
    let mut run = Background::start(&file, &out, &["--serve", "127.0.0.1:0"]);
    let addr = run.dashboard();
    // A client with a tiny receive window that asks for the stream and
    // never reads it.
    let mut stalled = small_window_client(&addr);
    write!(stalled, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    // A client that reads keeps getting ticks all along.
    let ticks = TickClock::follow(&addr);
    // The server side of the stalled connection leaves ESTABLISHED when the
    // dashboard drops it (after its stall limit), seen from the kernel's
    // table without the client reading a byte.
    let client_port = stalled.local_addr().unwrap().port();
    assert!(server_side_established(&addr, client_port));
    wait_for(
        "the dashboard to drop the client that never reads",
        Duration::from_secs(40),
        || !server_side_established(&addr, client_port),
    );
    let dropped = Instant::now();
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "the run ended before the check: {}",
        run.text()
    );
    // What the stalled client reads now ends.
    stalled
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut closed = false;
    let mut chunk = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(5) {
        match stalled.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "the client that never read was not dropped");
    // The reading client got ticks before and after the drop.
    wait_for(
        "three ticks after the drop",
        Duration::from_secs(10),
        || ticks.after(dropped) >= 3,
    );
    let before = ticks.count() - ticks.after(dropped);
    assert!(before >= 5, "{before} ticks before the drop");
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "the run ended before the check: {}",
        run.text()
    );
    let (status, text) = run.wait();
    assert!(status.success(), "{text}");
}

/// When each `tick` event of a dashboard's stream arrived, read as it comes.
struct TickClock(std::sync::Arc<std::sync::Mutex<Vec<Instant>>>);

impl TickClock {
    fn follow(addr: &str) -> TickClock {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let addr = addr.to_string();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
            let mut text = String::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                let fresh = text.matches("event: tick").count();
                text = text.rsplit("event: tick").next().unwrap().to_string();
                sink.lock()
                    .unwrap()
                    .extend(std::iter::repeat_n(Instant::now(), fresh));
            }
        });
        TickClock(seen)
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn after(&self, t: Instant) -> usize {
        self.0.lock().unwrap().iter().filter(|s| **s > t).count()
    }
}

/// Whether the kernel's TCP table holds the server side of the connection
/// from local port `client` to `server` (ip:port) in state ESTABLISHED.
fn server_side_established(server: &str, client: u16) -> bool {
    let server: std::net::SocketAddrV4 = server.parse().unwrap();
    let local = format!(
        "{:08X}:{:04X}",
        u32::from(*server.ip()).swap_bytes(),
        server.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[2].ends_with(&format!(":{client:04X}")) && f[3] == "01"
    })
}

/// A connection whose receive buffer is as small as the kernel allows.
fn small_window_client(addr: &str) -> TcpStream {
    use std::os::fd::FromRawFd;
    let addr: std::net::SocketAddrV4 = addr.parse().unwrap();
    // SAFETY: a fresh socket, configured and connected, then owned by the
    // TcpStream (which closes it).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 1024;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// The status line of a GET with this Host header.
fn status_with_host(addr: &str, host: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn dashboard_refuses_a_foreign_host_and_warns_when_bound_beyond_loopback() {
    let plan = grid_plan("live-host", "1", "1", "0s", "4s");
    let (file, out) = write_plan("live-host", &plan);
    let run = Background::start(&file, &out, &["--serve", "127.0.0.1:0"]);
    let addr = run.dashboard();
    let port = addr.rsplit(':').next().unwrap();
    assert!(
        status_with_host(&addr, &addr).contains(" 200 "),
        "{}",
        status_with_host(&addr, &addr)
    );
    assert!(status_with_host(&addr, &format!("localhost:{port}")).contains(" 200 "));
    for foreign in [
        format!("rebind.example:{port}"),
        "rebind.example".to_string(),
        format!("127.0.0.1:{}", port.parse::<u16>().unwrap().wrapping_add(1)),
    ] {
        let line = status_with_host(&addr, &foreign);
        assert!(line.contains(" 421 "), "Host {foreign}: {line}");
    }
    let (status, text) = run.wait();
    assert!(status.success(), "{text}");
    assert!(!text.contains("warning: --serve"), "{text}");

    let run = Background::start(&file, &out, &["--serve=0.0.0.0:0"]);
    let _ = run.dashboard();
    let (status, text) = run.wait();
    assert!(status.success(), "{text}");
    assert!(
        text.contains("warning: --serve 0.0.0.0:0 listens beyond this machine"),
        "{text}"
    );
}

#[test]
fn dashboard_shows_markup_in_a_matrix_value_as_text() {
    let Some(browser) = chromium("dashboard_shows_markup_in_a_matrix_value_as_text") else {
        return;
    };
    let plan = r#"
name = "live-markup"
[matrix]
label = ["<!--<script>", "plain"]
[cell]
warmup = "0s"
duration = "4s"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms"]
ready = { path = "/health", timeout = "10s" }
[load]
users = 1
[[load.request]]
name = "predict"
path = "/predict"
method = "POST"
body = "{}"
[analysis]
baseline = "0s"
"#;
    let (file, out) = write_plan("live-markup", plan);
    let run = Background::start(&file, &out, &["--serve", "127.0.0.1:0"]);
    let addr = run.dashboard();
    wait_for("a measured second", Duration::from_secs(60), || {
        get(&addr, "/api/state", Duration::from_secs(5)).contains("\"run_t\"")
    });
    let dom = run_chromium(
        &browser,
        &[
            "--virtual-time-budget=500",
            "--dump-dom",
            &format!("http://{addr}/"),
        ],
        Duration::from_secs(60),
    );
    // Drawn, with the value as text in the grid (escaped in the DOM).
    assert!(
        dom.contains("id=\"live-chart\""),
        "the page is blank:\n{dom}"
    );
    assert!(
        dom.contains("&lt;!--&lt;script&gt;"),
        "the matrix value is not shown as text:\n{dom}"
    );
    // The chart has axes: ticks, a zero line and grid lines.
    assert!(dom.contains("class=\"zero\""), "no zero line:\n{dom}");
    assert!(
        dom.matches("class=\"grid\"").count() >= 2,
        "no grid:\n{dom}"
    );
    assert!(
        dom.matches("class=\"tick-rps\"").count() >= 3,
        "no ticks:\n{dom}"
    );
    assert!(
        dom.matches("class=\"tick-t\"").count() >= 3,
        "no time axis:\n{dom}"
    );
    let (status, text) = run.wait();
    assert!(status.success(), "{text}");
}

/// The JSON of every `tick` event in an SSE text.
fn ticks(text: &str) -> Vec<serde_json::Value> {
    text.split("event: tick\n")
        .skip(1)
        .filter_map(|t| t.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The live figures of a streamed mix: every tick of the measured window
/// carries the last closed second's time to first token, which the demo
/// target sets (150 ms, 8 slots for 2 users: nothing queues).
#[test]
fn dashboard_ticks_carry_the_time_to_first_token_of_a_streamed_mix() {
    let plan = r#"
name = "live-stream"
[cell]
duration = "6s"
warmup = "0s"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "8", "--first-token", "150ms", "--token-time", "10ms"]
ready = { path = "/health", timeout = "10s" }
[load]
users = 2
[[load.request]]
name = "generate"
method = "POST"
path = "/v1/completions"
body = '{"prompt": "hi", "max_tokens": 8, "stream": true}'
stream = "sse"
[analysis]
baseline = "0s"
"#;
    let (file, out) = write_plan("live-stream", plan);
    let run = Background::start(&file, &out, &["--serve", "127.0.0.1:0"]);
    let addr = run.dashboard();
    let ttft = |text: &str| ticks(text).iter().find_map(|v| v["ttft_p95"].as_f64());
    let events = read_events(&addr, |t| ttft(t).is_some());
    let (status, text) = run.wait();
    assert!(status.success(), "{text}");
    let ttft = ttft(&events).unwrap_or_else(|| panic!("no tick with ttft_p95:\n{events}"));
    assert!((145.0..=260.0).contains(&ttft), "ttft_p95 {ttft} ms");
    let tokens = ticks(&events)
        .iter()
        .find_map(|v| v["tokens_per_s"].as_f64())
        .unwrap();
    // 2 users, each 8 tokens per 150 + 7 x 10 ms stream: about 73 tokens/s.
    assert!((40.0..=100.0).contains(&tokens), "tokens/s {tokens}");
}
