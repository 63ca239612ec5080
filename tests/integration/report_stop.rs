//! The report step stops: a template that loops for ever runs out of fuel,
//! and Ctrl-C or SIGTERM ends `run` and `report` while a template renders,
//! with exit 130 and what was measured kept.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Loops far beyond any fuel budget, writing nothing.
const ENDLESS: &str = "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}{% endfor %}{% endfor %}{% endfor %}done\n";

fn fixture_run(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/complete");
    let dir = temp_dir(name);
    let status = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(dir.join("run"))
        .status()
        .unwrap();
    assert!(status.success());
    dir.join("run")
}

/// `report RUN --template` with an endless template: rendering has begun
/// once the summary files are rewritten.
fn start_report(run: &Path, template: &Path) -> Child {
    std::fs::remove_file(run.join("summary.csv")).ok();
    let child = loadmatrix()
        .arg("report")
        .arg(run)
        .arg("--template")
        .arg(template)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("summary.csv", Duration::from_secs(30), || {
        run.join("summary.csv").is_file()
    });
    std::thread::sleep(Duration::from_millis(300));
    child
}

#[test]
fn ctrl_c_stops_report_while_a_template_renders() {
    for (sig, name) in [(2, "int"), (15, "term")] {
        let run = fixture_run(&format!("report-stop-{name}"));
        let template = run.join("endless.md.j2");
        std::fs::write(&template, ENDLESS).unwrap();
        let mut child = start_report(&run, &template);
        let (code, took) = stop_with(&mut child, sig);
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(code, Some(130), "signal {sig}: {err}");
        // Well within a second when the machine is idle; loose for a busy one.
        assert!(took < Duration::from_secs(5), "signal {sig}: {took:?}");
        assert!(
            err.contains("interrupted while rendering report template"),
            "{err}"
        );
        // The summary is kept; the unfinished report is not written.
        assert!(run.join("summary.csv").is_file());
        assert!(!run.join("endless.md").exists());
    }
}

#[test]
fn ctrl_c_stops_a_run_in_its_report_step_and_keeps_the_cells() {
    let dir = temp_dir("run-report-stop");
    std::fs::write(dir.join("endless.md.j2"), ENDLESS).unwrap();
    std::fs::write(
        dir.join("plan.toml"),
        r#"
name = "report-stop"
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms"]
[load]
users = 1
[[load.request]]
path = "/health"
[analysis]
baseline = "0s"
[[report]]
template = "endless.md.j2"
output = "endless.md"
"#,
    )
    .unwrap();
    let results = dir.join("results");
    let mut child = loadmatrix()
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(&results)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut run = None;
    wait_for("the analysis", Duration::from_secs(60), || {
        run = std::fs::read_dir(results.join("report-stop"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("summary.csv").is_file());
        run.is_some()
    });
    let run = run.unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (code, took) = stop_with(&mut child, 2);
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(130), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let m = manifest(&run);
    assert_eq!(m["cells"][0]["status"], "complete", "{m}");
    assert!(run.join("cells").read_dir().unwrap().next().is_some());
    assert!(!run.join("endless.md").exists());
}

#[test]
fn a_report_template_that_loops_for_ever_runs_out_of_fuel() {
    let run = fixture_run("report-fuel");
    let template = run.join("endless.md.j2");
    std::fs::write(&template, ENDLESS).unwrap();
    let o = loadmatrix()
        .arg("report")
        .arg(&run)
        .arg("--template")
        .arg(&template)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("does more work than a report may"), "{err}");
}
