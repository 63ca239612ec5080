//! What a run promises about its cells, end to end on local demo-target
//! replicas: one cell at a time whatever `--only` and `--resume` select,
//! honest statuses, overrides kept for a resume, a lock on the run folder,
//! stop requests honoured within a second in every step, and replica
//! process groups that never outlive the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
}

/// A 2 x 3 matrix of short cells on one or two local replicas.
fn grid_plan(name: &str) -> String {
    format!(
        r#"
name = "{name}"
[matrix]
replicas = [1, 2]
users = [1, 2, 4]
[cell]
duration = "1s"
[system]
backend = "local"
replicas = "{{{{ matrix.replicas }}}}"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--service-time", "5ms"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
users = "{{{{ matrix.users }}}}"
[[load.request]]
path = "/predict"
method = "POST"
body = "{{}}"
[[threshold]]
expr = "p95 < 5s"
[[threshold]]
expr = "fail_rate < 1%"
[analysis]
baseline = "0s"
"#
    )
}

fn write_plan(name: &str, plan: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    (file, dir.join("results"))
}

fn run(file: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap()
}

/// (started, finished) of every cell that ran, as RFC 3339 strings (they sort).
fn intervals(manifest: &serde_json::Value) -> Vec<(String, String, String)> {
    manifest["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["started"].is_string())
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["started"].as_str().unwrap().to_string(),
                c["finished"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_no_overlap(manifest: &serde_json::Value) {
    let mut iv = intervals(manifest);
    iv.sort_by(|a, b| a.1.cmp(&b.1));
    for w in iv.windows(2) {
        assert!(
            w[0].2 <= w[1].1,
            "cells {} [{}, {}] and {} [{}, {}] overlap",
            w[0].0,
            w[0].1,
            w[0].2,
            w[1].0,
            w[1].1,
            w[1].2
        );
    }
}

fn statuses(manifest: &serde_json::Value) -> Vec<(String, String)> {
    manifest["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn only_with_gaps_runs_one_cell_at_a_time_and_leaves_the_rest_pending() {
    let (file, out) = write_plan("only-gaps", &grid_plan("only-gaps"));
    let o = run(&file, &out, &["--only", "users != 2"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("4 measured, 2 pending"), "{err}");
    let dir = only_run(&out, "only-gaps");
    let m = manifest(&dir);
    assert_no_overlap(&m);
    assert_eq!(
        statuses(&m),
        [
            ("replicas1_users1", "complete"),
            ("replicas1_users2", "pending"),
            ("replicas1_users4", "complete"),
            ("replicas2_users1", "complete"),
            ("replicas2_users2", "pending"),
            ("replicas2_users4", "complete"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Pending cells fail no threshold: junit has a case for measured cells only.
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(!junit.contains("replicas1_users2"), "{junit}");
    assert!(junit.contains("replicas1_users4"), "{junit}");
    let rows = summary(&dir);
    assert_eq!(rows[1]["status"], "pending");
    assert_eq!(rows[1]["rps"], "");

    // A resume measures the rest, still one at a time, keeping what it had.
    let kept = std::fs::metadata(dir.join("cells/replicas1_users1/stats.json"))
        .unwrap()
        .modified()
        .unwrap();
    let o = run(&file, &out, &["--resume", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = manifest(&dir);
    assert_no_overlap(&m);
    assert!(statuses(&m).iter().all(|(_, s)| s == "complete"));
    let again = std::fs::metadata(dir.join("cells/replicas1_users1/stats.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(kept, again, "a measured cell was measured again");
}

#[test]
fn plan_only_previews_the_selection() {
    let (file, _) = write_plan("plan-only", &grid_plan("plan-only"));
    let o = bin()
        .args(["plan"])
        .arg(&file)
        .args(["--only", "replicas == 2 and users >= 2"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("--only selects 2 of 6 cells"), "{text}");
    let line = |id: &str| text.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(line("replicas2_users4").trim_end().ends_with("yes"));
    assert!(line("replicas1_users4").trim_end().ends_with('-'));
}

#[test]
fn overrides_are_recorded_masked_and_reapplied_by_resume() {
    let plan = grid_plan("overrides").replace(
        "[[load.request]]",
        "headers = { X-Token = \"{{ env.LM_TEST_TOKEN }}\" }\n[[load.request]]",
    );
    // The header belongs to the request: move it below the table header.
    let plan = plan.replace(
        "headers = { X-Token = \"{{ env.LM_TEST_TOKEN }}\" }\n[[load.request]]\npath = \"/predict\"",
        "[[load.request]]\npath = \"/predict\"\nheaders = { X-Token = \"{{ env.LM_TEST_TOKEN }}\" }",
    );
    let (file, out) = write_plan("overrides", &plan);
    let secret = "tok-s3cr3t-value";
    let o = bin()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(["--only", "users == 1", "--set", "cell.duration=1500ms"])
        .args(["--set", &format!("vars.echo={secret}")])
        .env("LM_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dir = only_run(&out, "overrides");
    let text = std::fs::read_to_string(dir.join("run.json")).unwrap();
    assert!(!text.contains(secret), "{text}");
    let m = manifest(&dir);
    assert_eq!(m["overrides"][0], "cell.duration=1500ms");
    assert_eq!(m["overrides"][1], "vars.echo=***");

    // Resuming with a --set that changes a measured cell is refused, naming
    // the overrides to repeat.
    let o = bin()
        .arg("run")
        .arg(&file)
        .args(["--resume", dir.to_str().unwrap()])
        .args([
            "--set",
            "cell.duration=2s",
            "--set",
            &format!("vars.echo={secret}"),
        ])
        .env("LM_TEST_TOKEN", secret)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--set cell.duration=1500ms"), "{err}");

    // A masked override must be given again; the rest are re-applied.
    let o = bin()
        .arg("run")
        .arg(&file)
        .args(["--resume", dir.to_str().unwrap()])
        .env("LM_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("vars.echo"), "{}", stderr(&o));
    let o = bin()
        .arg("run")
        .arg(&file)
        .args(["--resume", dir.to_str().unwrap()])
        .args(["--set", &format!("vars.echo={secret}")])
        .env("LM_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = manifest(&dir);
    assert!(statuses(&m).iter().all(|(_, s)| s == "complete"));
    // The duration override came back: every cell measured about 1.5 s.
    for id in ["replicas2_users4", "replicas1_users1"] {
        let stats: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("cells").join(id).join("stats.json")).unwrap(),
        )
        .unwrap();
        let secs = stats["stats"]["measured_secs"].as_f64().unwrap();
        assert!((secs - 1.5).abs() < 0.2, "{id}: {secs}");
    }
}

#[test]
fn cells_without_a_successful_request_fail_and_the_run_exits_4() {
    let plan = grid_plan("all-fail")
        .replace("users = [1, 2, 4]", "users = [2]")
        .replace("replicas = [1, 2]", "replicas = [1]")
        .replace("\"5ms\"]", "\"5ms\", \"--fail-rate\", \"1\"]");
    let (file, out) = write_plan("all-fail", &plan);
    let o = run(&file, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("no cell produced a successful request"),
        "{err}"
    );
    let dir = only_run(&out, "all-fail");
    let m = manifest(&dir);
    assert_eq!(m["cells"][0]["status"], "failed");
    assert!(
        m["cells"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no successful requests"),
        "{m}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("p95: no successful requests"), "{junit}");
}

#[test]
fn a_step_after_load_does_not_unmeasure_the_cell() {
    let plan = grid_plan("after-load")
        .replace("users = [1, 2, 4]", "users = [1]")
        .replace("replicas = [1, 2]", "replicas = [1]")
        + r#"
[[step]]
id = "after"
uses = "exec"
run = ["true"]
needs = ["load"]
[[step]]
id = "poke"
uses = "scrape"
url = "http://127.0.0.1:1/metrics"
needs = ["load"]
"#;
    let (file, out) = write_plan("after-load", &plan);
    let o = run(&file, &out, &[]);
    let err = stderr(&o);
    let dir = only_run(&out, "after-load");
    let m = manifest(&dir);
    // The scrape fails (nothing listens on port 1): the cell is degraded, not unmeasured.
    assert_eq!(m["cells"][0]["status"], "degraded", "{err}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(!junit.contains("not measured"), "{junit}");
    assert_eq!(o.status.code(), Some(0), "{err}");
}

/// Starts a run and returns it with its results folder.
fn spawn_run(file: &Path, out: &Path, args: &[&str]) -> std::process::Child {
    bin()
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal_and_time(child: &mut std::process::Child, sig: i32) -> (Option<i32>, Duration) {
    let sent = Instant::now();
    // SAFETY: plain kill(2) on our own child.
    unsafe { kill(child.id() as i32, sig) };
    let status = child.wait().unwrap();
    (status.code(), sent.elapsed())
}

/// Every step that could block for 30 s stops within a second of SIGINT or
/// SIGTERM, and the run exits 130.
#[test]
fn a_stop_request_ends_every_blocking_step_within_a_second() {
    let base = r#"
name = "NAME"
[cell]
duration = "1s"
[load]
base_url = "http://127.0.0.1:9"
users = 1
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
"#;
    let cases: [(&str, &str, i32); 4] = [
        (
            "stop-ready",
            "[system]\nready = { url = \"http://127.0.0.1:9/never\", timeout = \"30s\" }\n",
            2,
        ),
        (
            "stop-exec",
            "[[step]]\nid = \"wait\"\nuses = \"exec\"\nrun = [\"sh\", \"-c\", \"sleep 30; sleep 30\"]\ntimeout = \"60s\"\nper_cell = true\nbefore = [\"load\"]\n",
            15,
        ),
        (
            "stop-check",
            "[[check]]\nname = \"slow\"\ncommand = { run = [\"sh\", \"-c\", \"sleep 30\"] }\ntimeout = \"60s\"\n",
            2,
        ),
        (
            "stop-check-term",
            "[[check]]\nname = \"slow\"\ncommand = { run = [\"sleep\", \"30\"] }\ntimeout = \"60s\"\n",
            15,
        ),
    ];
    for (name, extra, sig) in cases {
        let plan = base.replace("NAME", name) + extra;
        let (file, out) = write_plan(name, &plan);
        let mut child = spawn_run(&file, &out, &[]);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(child.try_wait().unwrap().is_none(), "{name} ended early");
        let (code, took) = signal_and_time(&mut child, sig);
        assert_eq!(code, Some(130), "{name}");
        assert!(took < Duration::from_millis(1500), "{name} took {took:?}");
        // Nothing the step started is left.
        let left = sleepers();
        assert!(left.is_empty(), "{name} left {left:?}");
    }
}

/// `sleep 30` processes (the blocking steps above) still alive.
fn sleepers() -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.trim_end() == "sleep 30" {
                out.push(pid);
            }
        }
    }
    out
}

fn wrapped_plan(name: &str, seed: &str, duration: &str) -> String {
    format!(
        r#"
name = "{name}"
[cell]
duration = "{duration}"
[system]
backend = "local"
replicas = 2
command = ["bash", "-c", "loadmatrix demo-target --port {{{{ port }}}} --seed {seed}; echo done"]
ready = {{ path = "/health", timeout = "20s" }}
[load]
users = 1
[[load.request]]
path = "/health"
[analysis]
baseline = "0s"
"#
    )
}

/// A replica command wrapped in `bash -c` leaves no demo-target behind,
/// however loadmatrix ends: normally, by SIGINT, SIGTERM or SIGKILL.
#[test]
fn wrapped_replicas_leave_nothing_behind() {
    let path = format!(
        "{}:{}",
        Path::new(env!("CARGO_BIN_EXE_loadmatrix"))
            .parent()
            .unwrap()
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (i, sig) in [0, 2, 15, 9].into_iter().enumerate() {
        let seed = format!("{}", 700_000 + (std::process::id() % 1000) * 10 + i as u32);
        let name = format!("wrapped-{i}");
        let duration = if sig == 0 { "1s" } else { "30s" };
        let (file, out) = write_plan(&name, &wrapped_plan(&name, &seed, duration));
        let mut child = bin()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .env("PATH", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if sig == 0 {
            assert!(child.wait().unwrap().success());
        } else {
            wait_for("2 replicas", Duration::from_secs(20), || {
                demo_pids(&seed).len() >= 2
            });
            // SAFETY: plain kill(2) on our own child.
            unsafe { kill(child.id() as i32, sig) };
            child.wait().unwrap();
        }
        wait_for(
            &format!("replicas to exit after signal {sig}"),
            Duration::from_secs(8),
            || demo_pids(&seed).is_empty(),
        );
    }
}

#[test]
fn a_second_resume_of_a_running_folder_is_refused_naming_the_holder() {
    let plan = grid_plan("locked").replace("duration = \"1s\"", "duration = \"20s\"");
    let (file, out) = write_plan("locked", &plan);
    let mut first = spawn_run(&file, &out, &[]);
    wait_for("the run folder", Duration::from_secs(10), || {
        out.join("locked").is_dir()
            && std::fs::read_dir(out.join("locked"))
                .unwrap()
                .next()
                .is_some_and(|e| e.unwrap().path().join("run.json").is_file())
    });
    let dir = only_run(&out, "locked");
    let o = run(&file, &out, &["--resume", dir.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
    // Once the holder is gone the folder is free again: a dead holder's
    // running cell is `interrupted` there.
    let m = manifest(&dir);
    assert!(
        statuses(&m).iter().any(|(_, s)| s == "running"),
        "a SIGKILLed run leaves its cell as it was"
    );
    let rows = loadmatrix_report(&dir);
    assert!(rows.contains("interrupted"), "{rows}");
}

/// `loadmatrix report` on a folder; returns summary.csv.
fn loadmatrix_report(dir: &Path) -> String {
    let o = bin().arg("report").arg(dir).output().unwrap();
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    std::fs::read_to_string(dir.join("summary.csv")).unwrap()
}
