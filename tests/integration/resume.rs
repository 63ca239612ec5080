//! Nothing lost: a SIGKILLed run resumes without re-running finished cells;
//! a changed plan refuses to resume; abort thresholds stop at the first
//! breach; secrets from env reach no output.

use crate::common::*;

use std::process::Stdio;
use std::time::Duration;

const PLAN: &str = r#"
name = "resumable"
[matrix]
users = [1, 2, 3, 4]
[cell]
duration = "{{ '2s' }}"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms", "--seed", "4242"]
[load]
users = "{{ matrix.users }}"
[[load.request]]
method = "POST"
path = "/predict"
body = '{"inputs": [1]}'
[analysis]
baseline = "0s"
"#;

#[test]
fn a_sigkilled_run_resumes_without_rerunning_finished_cells() {
    let dir = temp_dir("resume");
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let results = dir.join("results");
    let mut child = loadmatrix()
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&results)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("two finished cells", Duration::from_secs(40), || {
        std::fs::read_dir(&results)
            .ok()
            .and_then(|mut d| d.next())
            .is_some_and(|_| {
                only_run(&results, "resumable")
                    .join("cells/users2/stats.json")
                    .is_file()
            })
    });
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    let run = only_run(&results, "resumable");
    let before = manifest(&run);
    assert_eq!(before["status"], "running");
    assert_eq!(before["cells"][2]["status"], "running");
    let stamp = |c: &str| {
        std::fs::metadata(run.join("cells").join(c).join("stats.json"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let (t1, t2) = (stamp("users1"), stamp("users2"));

    // A plan that changes a measured cell refuses to resume.
    let changed = dir.join("changed.toml");
    std::fs::write(
        &changed,
        PLAN.replace(
            "users = \"{{ matrix.users }}\"",
            "users = \"{{ matrix.users * 2 }}\"",
        ),
    )
    .unwrap();
    let o = loadmatrix()
        .arg("run")
        .arg(&changed)
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cell users1 was measured with a different configuration"),
        "{}",
        stderr(&o)
    );

    let o = loadmatrix()
        .arg("run")
        .arg(&plan)
        .arg("--resume")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 of 4 cells already measured"),
        "{}",
        stderr(&o)
    );
    let after = manifest(&run);
    assert_eq!(after["status"], "complete");
    for i in 0..4 {
        assert_eq!(after["cells"][i]["status"], "complete", "{after}");
    }
    // cells 1-2 were not run again: same files, same start times
    assert_eq!(stamp("users1"), t1);
    assert_eq!(stamp("users2"), t2);
    assert_eq!(after["cells"][0]["started"], before["cells"][0]["started"]);
    assert!(run.join("cells/users4/stats.json").is_file());
    let summary = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 5, "{summary}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for c in ["users1", "users2", "users3", "users4"] {
        assert!(
            report.contains(&format!("[{c}]")),
            "{c} missing from the report"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(run.join("cells"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_abort_threshold_stops_at_the_first_breach_after_writing_the_cell() {
    let dir = temp_dir("abort");
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        PLAN.replace("'2s'", "'1s'")
            + "\n[[threshold]]\nexpr = \"requests < 0\"\nwhere = \"users >= 2\"\nabort = true\n",
    )
    .unwrap();
    let o = loadmatrix()
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(dir.join("results"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("breached in cell users2"),
        "{}",
        stderr(&o)
    );
    let run = only_run(&dir.join("results"), "resumable");
    let m = manifest(&run);
    assert_eq!(m["status"], "aborted");
    assert_eq!(m["cells"][1]["status"], "complete");
    assert_eq!(m["cells"][2]["status"], "pending");
    assert!(run.join("cells/users2/stats.json").is_file());
    assert!(!run.join("cells/users3").exists());
    assert!(run.join("report.md").is_file());
}

#[test]
fn secrets_from_env_reach_no_output() {
    let sentinel = "sentinel-9f8e7d6c5b4a";
    let dir = temp_dir("secrets");
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        r#"
name = "secrets"
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}"]
[load]
users = 1
[[load.request]]
name = "predict {{ env.LM_TEST_SECRET }}"
method = "POST"
path = "/predict"
headers = { Authorization = "Bearer {{ env.LM_TEST_SECRET }}" }
body = '{"token": "{{ env.LM_TEST_SECRET }}"}'

[[step]]
id = "leak"
uses = "exec"
run = ["sh", "-c", "echo {{ env.LM_TEST_SECRET }}; echo {{ env.LM_TEST_SECRET }} >&2; exit 3"]
per_cell = true
needs = ["load"]

[[threshold]]
expr = "fail_rate < 1%"
[analysis]
baseline = "0s"
"#,
    )
    .unwrap();
    let o = loadmatrix()
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(dir.join("results"))
        .env("LM_TEST_SECRET", sentinel)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!err.contains(sentinel), "stderr leaks the secret:\n{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains(sentinel));
    let run = only_run(&dir.join("results"), "secrets");
    let mut checked = 0;
    let mut stack = vec![run.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            assert!(!text.contains(sentinel), "{} leaks the secret", p.display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} files");
    let events = std::fs::read_to_string(run.join("cells/default/events.log")).unwrap();
    assert!(events.contains("stdout: ***"), "{events}");
}
