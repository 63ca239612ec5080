//! Locust's faults are seen: a worker that exits or is killed while the
//! window runs degrades the cell and is named, a master kept alive by the
//! locustfile does not cost the measured cell, and a huge log is never read
//! into memory.

use std::process::Command;

/// A plan of one Locust cell of `duration` seconds over the locustfile
/// written into `dir`.
fn fault_plan(
    dir: &std::path::Path,
    name: &str,
    locustfile: &str,
    workers: u64,
    duration: u64,
) -> std::path::PathBuf {
    std::fs::write(dir.join("locustfile.py"), locustfile).unwrap();
    let plan = format!(
        r#"
name = "{name}"
[cell]
duration = "{duration}s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "32", "--service-time", "2ms"]
ready = {{ path = "/health" }}
[load]
engine = "locust"
locustfile = "locustfile.py"
users = 4
workers = {workers}
[analysis]
baseline = "0s"
"#
    );
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    file
}

fn run_in(file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(file.parent().unwrap().join("results"))
        .output()
        .unwrap()
}

#[test]
fn a_locust_worker_that_exits_mid_window_degrades_the_cell_naming_it() {
    if !crate::common::locust_available(
        "a_locust_worker_that_exits_mid_window_degrades_the_cell_naming_it",
    ) {
        return;
    }
    let dir = crate::common::temp_dir("locust-worker-exits");
    let lock = dir.join("exited");
    // 1.5 s after its first request, the first worker to get there leaves
    // without a word, as a crash would.
    let locustfile = format!(
        r#"
import os, time
from locust import HttpUser, constant, task

STATE = {{}}

class Health(HttpUser):
    wait_time = constant(0.01)

    @task
    def health(self):
        self.client.get("/health")
        first = STATE.setdefault("first", time.time())
        if time.time() - first > 1.5:
            try:
                os.close(os.open({lock:?}, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os._exit(3)
"#,
        lock = lock.display().to_string()
    );
    let file = fault_plan(&dir, "worker-exits", &locustfile, 2, 5);
    let o = run_in(&file);
    let err = crate::common::stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(lock.exists(), "no worker exited");
    let run = crate::common::only_run(&dir.join("results"), "worker-exits");
    let m = crate::common::manifest(&run);
    assert_eq!(m["cells"][0]["status"], "degraded", "{m}");
    let msg = m["cells"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("Locust worker ") && msg.contains("exited mid-window (exit status 3"),
        "{msg}"
    );
}

/// Pids of Locust workers whose command line names `marker`.
fn locust_workers(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("--worker") && cmd.contains(marker) {
                out.push(pid);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_locust_worker_killed_mid_window_degrades_the_cell() {
    if !crate::common::locust_available("a_locust_worker_killed_mid_window_degrades_the_cell") {
        return;
    }
    let dir = crate::common::temp_dir("locust-worker-killed");
    let file = fault_plan(
        &dir,
        "worker-killed",
        r#"
from locust import HttpUser, constant, task

class Health(HttpUser):
    wait_time = constant(0.01)

    @task
    def health(self):
        self.client.get("/health")
"#,
        2,
        6,
    );
    let child = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("results"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = dir.display().to_string();
    let mut workers = Vec::new();
    crate::common::wait_for(
        "two Locust workers",
        std::time::Duration::from_secs(60),
        || {
            workers = locust_workers(&marker);
            workers.len() >= 2
        },
    );
    // Once Locust's test has started (the probe says so), a second into the
    // measured window (the cell has no warm-up), kill one.
    let results = dir.join("results/worker-killed");
    crate::common::wait_for(
        "the test to start",
        std::time::Duration::from_secs(60),
        || {
            std::fs::read_dir(&results)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .and_then(|run| {
                    std::fs::read_to_string(
                        run.path()
                            .join("logs/locust/default/loadmatrix_progress.jsonl"),
                    )
                    .ok()
                })
                .is_some_and(|t| t.contains("\"started\""))
        },
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    // SAFETY: kill(2) on a Locust worker this test's run started.
    unsafe { crate::common::kill(workers[1], 9) };
    let o = child.wait_with_output().unwrap();
    let err = crate::common::stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let run = crate::common::only_run(&dir.join("results"), "worker-killed");
    let m = crate::common::manifest(&run);
    assert_eq!(m["cells"][0]["status"], "degraded", "{m}");
    let msg = m["cells"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("exited mid-window (killed by signal 9 (SIGKILL)"),
        "{msg}"
    );
}

#[test]
fn a_locustfile_thread_that_keeps_the_master_alive_does_not_lose_the_cell() {
    if !crate::common::locust_available(
        "a_locustfile_thread_that_keeps_the_master_alive_does_not_lose_the_cell",
    ) {
        return;
    }
    let dir = crate::common::temp_dir("locust-stuck-master");
    let file = fault_plan(
        &dir,
        "stuck-master",
        r#"
import sys, threading, time
from locust import HttpUser, constant, task

if "--master" in sys.argv:
    # Not a daemon: Python waits for it before the master can exit.
    threading.Thread(target=lambda: time.sleep(3600), daemon=False).start()

class Health(HttpUser):
    wait_time = constant(0.01)

    @task
    def health(self):
        self.client.get("/health")
"#,
        1,
        2,
    );
    let start = std::time::Instant::now();
    let o = run_in(&file);
    let err = crate::common::stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // Bounded: Locust's 30 s shutdown allowance is not waited out.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "{err}"
    );
    let run = crate::common::only_run(&dir.join("results"), "stuck-master");
    let m = crate::common::manifest(&run);
    let status = m["cells"][0]["status"].as_str().unwrap();
    assert!(status == "complete" || status == "degraded", "{m}");
    let row = &crate::common::summary(&run)[0];
    assert!(crate::common::num(row, "requests") > 0.0, "{row:?}");
    let events = std::fs::read_to_string(run.join("cells/default/events.log")).unwrap();
    assert!(
        events.contains("had not exited") && events.contains("non-daemon thread"),
        "{events}"
    );
}

#[test]
fn a_huge_locust_log_is_never_read_into_memory() {
    if !crate::common::locust_available("a_huge_locust_log_is_never_read_into_memory") {
        return;
    }
    const LOG_MB: usize = 250;
    let dir = crate::common::temp_dir("locust-huge-log");
    // Each worker writes LOG_MB of output at start-up, a line at a time.
    let locustfile = format!(
        r#"
import sys
from locust import HttpUser, constant, task

if "--worker" in sys.argv:
    line = "x" * 1023 + "\n"
    for _ in range({LOG_MB} * 1024):
        sys.stdout.write(line)
    sys.stdout.flush()

class Health(HttpUser):
    wait_time = constant(0.05)

    @task
    def health(self):
        self.client.get("/health")
"#
    );
    let file = fault_plan(&dir, "huge-log", &locustfile, 1, 2);
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("results"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (status, usage) = wait_with_usage(pid);
    let _ = child.try_wait();
    assert_eq!(status, 0, "the run failed");
    let run = crate::common::only_run(&dir.join("results"), "huge-log");
    let log = run.join("logs/locust/default/locust-worker-1.log");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size >= (LOG_MB as u64) << 20, "{size}");
    // Peak RSS of loadmatrix and of its Locust processes (kilobytes): far
    // below the log's size.
    let peak_mb = usage / 1024;
    assert!(peak_mb < (LOG_MB as i64) * 3 / 4, "peak RSS {peak_mb} MB");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for child `pid`; its exit code and the largest peak RSS (KiB) of it
/// and the processes it waited for.
fn wait_with_usage(pid: i32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: wait4 on our own child, into structs we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
}
