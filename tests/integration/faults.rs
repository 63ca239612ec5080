//! Faults during a cell are recorded in events.log and the cell status, and
//! the run goes on to the next cell.

use crate::common::*;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn stats(dir: &Path, cell: &str) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(dir.join("cells").join(cell).join("stats.json")).unwrap(),
    )
    .unwrap()
}

fn events(dir: &Path, cell: &str) -> String {
    std::fs::read_to_string(dir.join("cells").join(cell).join("events.log")).unwrap_or_default()
}

#[test]
fn server_errors_are_counted_by_kind_and_the_next_cell_runs() {
    let r = run_plan(
        "errors",
        r#"
name = "errors"
[matrix]
fail = ["0.3", "0"]
[cell]
duration = "2s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms", "--fail-rate", "{{ matrix.fail }}"]
[load]
users = 4
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
expect = { status = 200 }
[[threshold]]
expr = "fail_rate < 1%"
[analysis]
baseline = "0s"
"#,
        &[],
    );
    assert_eq!(r.output.status.code(), Some(1), "{}", stderr(&r.output));
    let s = stats(&r.dir, "fail0.3");
    let total = &s["stats"]["total"];
    let failures = total["failures"].as_f64().unwrap();
    let requests = total["requests"].as_f64().unwrap();
    assert!((failures / requests - 0.3).abs() < 0.06, "{total}");
    assert_eq!(total["failures_by_kind"]["status"], total["failures"]);
    let m = manifest(&r.dir);
    assert_eq!(m["cells"][0]["status"], "complete");
    assert_eq!(m["cells"][1]["status"], "complete");
    let rows = summary(&r.dir);
    assert_eq!(rows[1]["failures"], "0");
    assert!(
        stderr(&r.output).contains("FAIL  fail_rate < 1%  fail0.3"),
        "{}",
        stderr(&r.output)
    );
}

#[test]
fn a_system_that_never_becomes_ready_fails_its_cell_and_the_run_goes_on() {
    let start = Instant::now();
    let r = run_plan(
        "never-ready",
        r#"
name = "never-ready"
[matrix]
health = ["/nope", "/health"]
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}"]
ready = { path = "{{ matrix.health }}", timeout = "1500ms" }
[load]
users = 1
[[load.request]]
path = "/health"
[analysis]
baseline = "0s"
"#,
        &[],
    );
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    assert!(start.elapsed() < Duration::from_secs(20));
    let m = manifest(&r.dir);
    assert_eq!(m["cells"][0]["status"], "failed", "{m}");
    assert!(
        m["cells"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not ready after"),
        "{m}"
    );
    assert_eq!(m["cells"][1]["status"], "complete");
    assert!(!r.dir.join("cells/health-nope").exists());
    assert_eq!(summary(&r.dir)[0]["status"], "failed");
}

#[test]
fn a_replica_that_dies_mid_cell_degrades_the_cell_and_is_replaced() {
    let marker = format!("{}", 700_000 + std::process::id() % 1000);
    let plan = format!(
        r#"
name = "replica-dies"
[matrix]
users = [4, 2]
[cell]
duration = "4s"
[system]
backend = "local"
replicas = 2
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--seed", "{marker}", "--service-time", "5ms"]
[load]
users = "{{{{ matrix.users }}}}"
timeout = "1s"
[[load.request]]
method = "POST"
path = "/predict"
body = '{{"inputs": [1]}}'
[analysis]
baseline = "0s"
"#
    );
    let dir = temp_dir("replica-dies");
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let child = loadmatrix()
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(dir.join("results"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let victim = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "replicas never started"
        );
        let pids = demo_pids(&marker);
        if pids.len() == 2 {
            break pids[1];
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on a demo-target process this test's run started.
    unsafe { kill(victim as i32, 9) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run = std::fs::read_dir(dir.join("results/replica-dies"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m = manifest(&run);
    assert_eq!(m["cells"][0]["status"], "degraded", "{m}");
    // Killed about a second into the 4 s window: said so, with the time.
    let message = m["cells"][0]["message"].as_str().unwrap();
    let after: f64 = message
        .split("mid-cell, after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time of death in {message:?}"));
    assert!((0.0..4.0).contains(&after), "{message}");
    assert!(
        message.contains("replica") && !message.contains("start-up"),
        "{message}"
    );
    let total = &stats(&run, "users4")["stats"]["total"];
    assert!(total["failures"].as_u64().unwrap() > 0, "{total}");
    assert_eq!(m["cells"][1]["status"], "complete", "{m}");
    let ev = events(&run, "users2");
    assert!(
        ev.contains("had exited") && ev.contains("started replica"),
        "{ev}"
    );
    assert_eq!(summary(&run)[1]["failures"], "0");
    assert!(demo_pids(&marker).is_empty());
}

#[test]
fn requests_stalled_past_the_timeout_count_as_timeouts() {
    let r = run_plan(
        "stall-timeout",
        r#"
name = "stall-timeout"
[cell]
duration = "4s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms", "--stall-every", "2s", "--stall-for", "1500ms"]
[load]
users = 4
timeout = "300ms"
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
[analysis]
baseline = "0s"
"#,
        &[],
    );
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let total = &stats(&r.dir, "default")["stats"]["total"];
    assert!(
        total["failures_by_kind"]["timeout"].as_u64().unwrap() >= 4,
        "{total}"
    );
    assert_eq!(manifest(&r.dir)["cells"][0]["status"], "complete");
}

#[test]
fn connections_reset_by_the_target_are_io_failures() {
    // A target that reads the request and slams the connection shut.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
                    drop(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    let r = run_plan(
        "resets",
        &format!(
            r#"
name = "resets"
[cell]
duration = "1s"
[load]
base_url = "http://127.0.0.1:{port}"
users = 2
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
"#
        ),
        &[],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    // Not one request succeeded: the cell failed, and so did the run.
    let err = stderr(&r.output);
    assert_eq!(r.output.status.code(), Some(4), "{err}");
    assert!(
        err.contains("no cell produced a successful request"),
        "{err}"
    );
    assert_eq!(manifest(&r.dir)["cells"][0]["status"], "failed");
    let total = &stats(&r.dir, "default")["stats"]["total"];
    assert!(
        total["failures_by_kind"]["io"].as_u64().unwrap() > 10,
        "{total}"
    );
    assert_eq!(total["failures"], total["requests"]);
}

#[test]
fn a_full_disk_stops_the_run_with_exit_4_and_keeps_finished_cells() {
    let dir = temp_dir("disk-full");
    let mount = dir.join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipping: cannot mount a tmpfs here (not root?)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mount.clone());
    std::fs::write(
        dir.join("plan.toml"),
        r#"
name = "disk-full"
[matrix]
users = [1, 2, 3]
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms"]
[load]
users = "{{ matrix.users }}"
[[load.request]]
path = "/health"
[analysis]
baseline = "0s"
"#,
    )
    .unwrap();
    let results = mount.join("results");
    let child = loadmatrix()
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(&results)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first cell is written, fill the disk.
    let start = Instant::now();
    let run = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the first cell never appeared"
        );
        if let Some(run) = std::fs::read_dir(results.join("disk-full"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            && run.path().join("cells/users1/stats.json").is_file()
        {
            break run.path();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut filler = std::fs::File::create(mount.join("filler")).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while filler.write_all(&chunk).is_ok() {}
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let stats = std::fs::read_to_string(run.join("cells/users1/stats.json")).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&stats).is_ok(),
        "cell 1 damaged"
    );
    assert!(!run.join("cells/users3").exists());
    let half_written: Vec<_> = std::fs::read_dir(run.join("cells"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "users1")
        .collect();
    assert!(half_written.is_empty(), "{half_written:?}");
    // No temp file of a failed write is left behind (not even an empty one).
    let mut stack = vec![run.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(".tmp-"),
                "temp file left: {}",
                e.path().display()
            );
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

#[test]
fn too_many_users_for_the_open_file_limit_fail_before_any_load() {
    let dir = temp_dir("fd-limit");
    std::fs::write(
        dir.join("plan.toml"),
        r#"
name = "fd-limit"
[cell]
duration = "1s"
[load]
base_url = "http://127.0.0.1:9"
users = 100000
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
"#,
    )
    .unwrap();
    // Within the engine's user limit, beyond a 4096-file limit.
    let o = Command::new("bash")
        .arg("-c")
        .arg("ulimit -n 4096 && exec \"$0\" run \"$1\" --out \"$2\"")
        .arg(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg(dir.join("plan.toml"))
        .arg(dir.join("results"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("the plan needs 100512 open files"), "{err}");
    assert!(
        !dir.join("results").exists(),
        "a results folder was created"
    );
}

#[test]
fn a_replica_killed_by_a_signal_is_reported_with_the_signal() {
    let r = run_plan(
        "replica-signal",
        r#"
name = "replica-signal"
[cell]
duration = "1s"
[system]
backend = "local"
command = ["bash", "-c", "kill -9 $$"]
ready = { path = "/health", timeout = "5s" }
[load]
users = 1
[[load.request]]
path = "/health"
[analysis]
baseline = "0s"
"#,
        &[],
    );
    let err = stderr(&r.output);
    let m = manifest(&r.dir);
    let said = format!("{err}\n{m}\n{}", events(&r.dir, "default"));
    assert!(said.contains("killed by signal 9 (SIGKILL)"), "{said}");
    assert!(!said.contains("exit status 1"), "{said}");
}

#[test]
fn report_renders_a_run_whose_system_csv_holds_nan() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/complete");
    let dir = temp_dir("system-nan");
    let copy = |from: &Path, to: &Path| {
        Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
    };
    assert!(copy(&src, &dir.join("run")).success());
    let run = dir.join("run");
    std::fs::write(
        run.join("cells/replicas1_users4/system.csv"),
        "t,replica,cpu_pct,mem_bytes\n1.0,replica-0,NaN,NaN\n2.0,replica-0,inf,33452032\nNaN,replica-0,3.0,33452032\n",
    )
    .unwrap();
    let o = loadmatrix().arg("report").arg(&run).output().unwrap();
    // The fixture's thresholds decide 0 or 1; a report that cannot be
    // rendered would be 2.
    let err = stderr(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
    assert!(!err.contains("error:"), "{err}");
    assert!(run.join("report.md").is_file());
    assert!(run.join("cells/replicas1_users4/cell.md").is_file());
}
