//! Watching a run: the live dashboard (`run --serve`) read over HTTP and in a
//! real headless Chromium, report.html rendered and screenshotted, and the
//! console on a terminal (a pty from `script`) and without one.

use std::process::Command;
use std::time::Duration;

use crate::common::live::*;
use crate::common::*;

#[test]
fn dashboard_serves_state_ticks_and_a_page_chromium_renders() {
    let Some(browser) = chromium("dashboard_serves_state_ticks_and_a_page_chromium_renders") else {
        return;
    };
    let plan = grid_plan("watch-serve", "1, 2", "1, 2", "1s", "6s");
    let (file, out) = write_plan("watch-serve", &plan);
    let mut run = Background::start(&file, &out, &["--serve", "127.0.0.1:0"]);
    let addr = run.dashboard();

    // During the run: every cell, its status, the ETA.
    let mut state = serde_json::Value::Null;
    wait_for(
        "a running cell in /api/state",
        Duration::from_secs(60),
        || {
            state = serde_json::from_str(&get(&addr, "/api/state", Duration::from_secs(5)))
                .unwrap_or_default();
            state["current"].is_u64()
        },
    );
    let cells = state["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "{state}");
    let ids: Vec<String> = cells
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    for c in cells {
        let status = c["status"].as_str().unwrap();
        assert!(
            ["pending", "running", "complete"].contains(&status),
            "{status}"
        );
        assert!(c["matrix"]["replicas"].is_number(), "{c}");
    }
    assert_eq!(
        cells.iter().filter(|c| c["status"] == "running").count(),
        1,
        "{state}"
    );
    let eta = state["eta_seconds"].as_f64().unwrap();
    assert!(eta > 0.0, "eta {eta} while cells are left: {state}");

    // The stream: the whole state on connect, then a tick a second.
    let events = read_events(&addr, |t| t.matches("event: tick").count() >= 2);
    assert!(
        events.matches("event: tick").count() >= 2,
        "fewer than 2 ticks in 30 s: {events}"
    );
    assert!(events.contains("event: state"), "{events}");
    let tick = events
        .split("event: tick\n")
        .nth(1)
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap();
    let tick: serde_json::Value = serde_json::from_str(tick).unwrap();
    for key in ["cell", "users", "rps", "p50", "p95", "failures"] {
        assert!(tick.get(key).is_some(), "tick without {key}: {tick}");
    }

    // A status change comes as a `cell` event.
    let events = read_events(&addr, |t| t.contains("event: cell"));
    let cell = events
        .split("event: cell\n")
        .nth(1)
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap_or_else(|| panic!("no cell event in 30 s: {events}"));
    let cell: serde_json::Value = serde_json::from_str(cell).unwrap();
    assert!(
        ids.iter().any(|id| cell["cell"]["id"] == id.as_str()),
        "{cell}"
    );

    // The page, in a real browser, with the run still going.
    let dom = run_chromium(
        &browser,
        &[
            "--virtual-time-budget=500",
            "--dump-dom",
            &format!("http://{addr}/"),
        ],
        Duration::from_secs(60),
    );
    for id in &ids {
        assert!(
            dom.contains(&format!("data-cell=\"{id}\"")),
            "cell {id} not in the page's DOM:\n{dom}"
        );
    }
    assert!(dom.contains("id=\"live-chart\""), "no live chart:\n{dom}");
    assert!(
        !dom.contains("src=\"http") && !dom.contains("href=\"http"),
        "the page fetches from elsewhere:\n{dom}"
    );
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "the run ended before the page was read: {}",
        run.text()
    );

    let (status, text) = run.wait();
    assert!(status.success(), "{text}");
}

#[test]
fn dashboard_listens_on_loopback_only_by_default() {
    let plan = grid_plan("watch-bind", "1", "1", "0s", "3s");
    let (file, out) = write_plan("watch-bind", &plan);
    let run = Background::start(&file, &out, &["--serve"]);
    let addr = run.dashboard();
    assert_eq!(addr, "127.0.0.1:8089", "{}", run.text());
    let pid = run.child.id();
    let listening = listening_sockets(pid);
    let (status, text) = run.wait();
    assert!(status.success(), "{text}");
    assert_eq!(
        listening,
        vec!["127.0.0.1:8089".to_string()],
        "the run listens on more than loopback:8089"
    );
}

/// Addresses the sockets of `pid` listen on, from /proc/net/tcp{,6}.
fn listening_sockets(pid: u32) -> Vec<String> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(i) = t.strip_prefix("socket:[") {
                inodes.push(i.trim_end_matches(']').to_string());
            }
        }
    }
    let mut out = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let (ip, port) = f[1].split_once(':').unwrap();
                let port = u16::from_str_radix(port, 16).unwrap();
                let ip = if v6 {
                    format!("[{ip}]")
                } else {
                    let n = u32::from_str_radix(ip, 16).unwrap();
                    std::net::Ipv4Addr::from(n.to_le_bytes()).to_string()
                };
                out.push(format!("{ip}:{port}"));
            }
        }
    }
    out
}

#[test]
fn report_html_is_self_contained_and_renders_in_chromium() {
    let Some(browser) = chromium("report_html_is_self_contained_and_renders_in_chromium") else {
        return;
    };
    let plan = grid_plan("watch-report", "1, 2", "1, 2", "0s", "1s");
    let run = run_plan("watch-report", &plan, &[]);
    assert!(run.output.status.success(), "{}", stderr(&run.output));
    let html_path = run.dir.join("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(run.dir.join("report.md").is_file());

    // Nothing fetched: every src stays inside the file, every href too but
    // the links to the cells' pages beside it.
    for attr in ["src=", "href="] {
        for (i, _) in html.match_indices(attr) {
            let value = html[i + attr.len()..].trim_start_matches(['"', '\'']);
            let cell_page = attr == "href=" && value.starts_with("cells/");
            assert!(
                value.starts_with('#') || cell_page,
                "{attr} pointing outside the file: {}",
                &html[i..(i + 80).min(html.len())]
            );
        }
    }
    assert!(!html.contains("<link"), "a <link> in report.html");

    let url = format!("file://{}", html_path.display());
    let dom = run_chromium(&browser, &["--dump-dom", &url], Duration::from_secs(60));
    let ids: Vec<String> = manifest(&run.dir)["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4);
    for id in &ids {
        assert!(
            dom.contains(id.as_str()),
            "cell {id} not in report.html's DOM"
        );
    }
    assert!(dom.contains("<svg"), "no chart SVG in report.html's DOM");
    assert!(dom.contains("id=\"summary-table\""));
    assert!(dom.contains("id=\"thresholds\""));

    if imagemagick("report_html_is_self_contained_and_renders_in_chromium") {
        let png = run.dir.join("report.png");
        run_chromium(
            &browser,
            &[
                "--hide-scrollbars",
                "--window-size=1200,1600",
                &format!("--screenshot={}", png.display()),
                &url,
            ],
            Duration::from_secs(60),
        );
        let colours = Command::new("convert")
            .arg(&png)
            .args(["-format", "%k", "info:"])
            .output()
            .unwrap();
        let colours: u64 = String::from_utf8_lossy(&colours.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            colours > 50,
            "the screenshot of report.html is blank ({colours} colours)"
        );
    }

    // `loadmatrix report` renders it again.
    std::fs::remove_file(&html_path).unwrap();
    let again = loadmatrix().arg("report").arg(&run.dir).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        html_path.is_file(),
        "loadmatrix report wrote no report.html"
    );
}

#[test]
fn console_on_a_terminal_shows_header_eta_and_result_blocks() {
    let plan = grid_plan("watch-tty", "1", "1, 2", "1s", "3s")
        .replace("baseline = \"0s\"", "baseline = \"1s\"");
    let (file, out) = write_plan("watch-tty", &plan);
    let cmd = format!(
        "{} run {} --out {}",
        env!("CARGO_BIN_EXE_loadmatrix"),
        file.display(),
        out.display()
    );
    let o = on_pty(&cmd);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("loadmatrix: cell 1/2 [replicas=1 users=1]"),
        "{text}"
    );
    assert!(
        text.contains("loadmatrix: cell 2/2 [replicas=1 users=2]"),
        "{text}"
    );
    assert!(text.contains(" elapsed · ETA "), "{text}");
    assert!(text.contains("measuring "), "no live line: {text}");
    for n in 1..=2 {
        let block = text
            .split(&format!("cell {n}/2 [replicas=1 users={n}] complete"))
            .nth(1)
            .unwrap_or_else(|| panic!("no result block for cell {n}: {text}"));
        let block: String = block.lines().take(3).collect::<Vec<_>>().join("\n");
        for figure in [
            "requests ",
            "RPS ",
            "p50 ",
            "p95 ",
            "p99 ",
            "failures",
            "bound ",
        ] {
            assert!(block.contains(figure), "{figure:?} missing in {block}");
        }
    }
}

#[test]
fn console_without_a_terminal_prints_lines_heartbeats_and_where_a_stop_hit() {
    let plan = grid_plan("watch-plain", "1", "1, 2", "0s", "12s")
        .replace("baseline = \"0s\"", "baseline = \"1s\"");
    let (file, out) = write_plan("watch-plain", &plan);
    let run = Background::start(&file, &out, &[]);
    // Stop the second cell 3 s into its measured window.
    wait_for("the second cell", Duration::from_secs(60), || {
        run.text().contains("cell 1 [replicas=1 users=1] complete")
    });
    std::thread::sleep(Duration::from_secs(4));
    // SAFETY: signals the run this test started.
    unsafe { kill(run.child.id() as i32, 2) };
    let (status, text) = run.wait();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(!text.contains('\r'), "carriage returns without a terminal");

    let done: Vec<&str> = text.lines().filter(|l| l.starts_with("cell ")).collect();
    assert_eq!(done.len(), 2, "one line per finished cell: {text}");
    let first = done[0];
    for figure in [
        " requests",
        " RPS",
        "p50 ",
        "p95 ",
        "p99 ",
        " failures",
        "bound ",
    ] {
        assert!(first.contains(figure), "{figure:?} missing in {first}");
    }
    // The figures are the report's.
    let row = &summary(&only_run(&out, "watch-plain"))[0];
    let rps: f64 = row["rps"].parse().unwrap();
    assert!(
        first.contains(&format!("{rps:.1} RPS")),
        "{first} vs summary.csv rps {rps}"
    );
    let stopped = done[1];
    assert!(
        stopped.contains("interrupted after ") && stopped.contains("of its 12 s measured window"),
        "{stopped}"
    );
    let at: f64 = stopped
        .split("interrupted after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(at < 12.0, "a stopped cell jumped to its end: {stopped}");

    // At most one heartbeat per 10 s of a cell, and the first cell had one.
    let beats: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("loadmatrix: cell "))
        .collect();
    assert!(!beats.is_empty(), "no heartbeat in a 12 s cell: {text}");
    assert!(
        beats.len() <= 3,
        "heartbeats more often than every 10 s: {text}"
    );
    assert!(beats[0].contains(" elapsed · ETA "), "{}", beats[0]);
    assert!(beats[0].contains("measuring "), "{}", beats[0]);
}

#[test]
fn a_bad_or_taken_dashboard_address_stops_the_run_before_any_load() {
    let plan = grid_plan("watch-addr", "1", "1", "0s", "1s");
    let (file, out) = write_plan("watch-addr", &plan);
    let run = |addr: &str| {
        loadmatrix()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .arg(format!("--serve={addr}"))
            .output()
            .unwrap()
    };
    let o = run("localhost");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("write IP:PORT"), "{}", stderr(&o));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(&addr);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot listen there"), "{}", stderr(&o));
    assert!(
        !out.exists(),
        "a run folder was made before the address was checked"
    );
}

#[test]
fn console_on_a_terminal_shows_where_a_stopped_cell_stopped() {
    let seed = format!("{}", 700_000 + std::process::id() % 1000);
    let plan = grid_plan("watch-tty-stop", "1", "1", "0s", "20s").replace(
        "\"--service-time\", \"5ms\"]",
        &format!("\"--service-time\", \"5ms\", \"--seed\", \"{seed}\"]"),
    );
    let (file, out) = write_plan("watch-tty-stop", &plan);
    // Ctrl-C once the replica itself has served about two seconds of the
    // measured window (one user, 5 ms each: some 200 requests a second).
    let target = file.display().to_string();
    let stopper = std::thread::spawn(move || {
        wait_for("two seconds of load", Duration::from_secs(60), || {
            let Some(port) = demo_pids(&seed).into_iter().find_map(demo_port) else {
                return false;
            };
            let addr = format!("127.0.0.1:{port}");
            if std::net::TcpStream::connect(&addr).is_err() {
                return false;
            }
            get(&addr, "/metrics", Duration::from_secs(2))
                .lines()
                .find_map(|l| l.strip_prefix("demo_requests_total{status=\"200\"} "))
                .and_then(|n| n.trim().parse::<f64>().ok())
                .is_some_and(|n| n >= 400.0)
        });
        for pid in loadmatrix_pids(&target) {
            // SAFETY: signals the run this test started.
            unsafe { kill(pid as i32, 2) };
        }
    });
    let cmd = format!(
        "{} run {} --out {}",
        env!("CARGO_BIN_EXE_loadmatrix"),
        file.display(),
        out.display()
    );
    let o = on_pty(&cmd);
    stopper.join().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let stopped = text
        .split("cell 1/1 [replicas=1 users=1] ")
        .last()
        .unwrap_or_default();
    assert!(
        stopped.starts_with("interrupted after "),
        "no interrupted result block: {text}"
    );
    let at: f64 = stopped["interrupted after ".len()..]
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        (1.0..20.0).contains(&at),
        "stopped at {at} s of 20: {stopped}"
    );
    assert!(stopped.contains("of its 20 s measured window"), "{stopped}");
}
