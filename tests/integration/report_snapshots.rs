//! Reports rendered from committed results folders (no traffic): the summary
//! page, every cell page, summary.csv and junit.xml, for a complete run with
//! failing thresholds and for an interrupted, partial run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn render(fixture: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/runs")
        .join(fixture);
    let dir = std::env::temp_dir().join(format!("lm-report-{fixture}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir);
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("report")
        .arg(&dir)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    // Both fixtures fail a threshold.
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    dir
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn complete_run_with_failing_thresholds() {
    let dir = render("complete");
    insta::assert_snapshot!("complete_report", read(&dir, "report.md"));
    insta::assert_snapshot!("complete_summary_csv", read(&dir, "summary.csv"));
    insta::assert_snapshot!("complete_junit", read(&dir, "junit.xml"));
    for cell in [
        "replicas1_users4",
        "replicas1_users16",
        "replicas2_users4",
        "replicas2_users16",
    ] {
        insta::assert_snapshot!(
            format!("complete_cell_{cell}"),
            read(&dir, &format!("cells/{cell}/cell.md"))
        );
    }
    for svg in ["rps-vs-replicas.svg", "p95-vs-users.svg"] {
        assert!(read(&dir, svg).starts_with("<svg"), "{svg}");
    }
    let summary: serde_json::Value = serde_json::from_str(&read(&dir, "summary.json")).unwrap();
    let kinds: Vec<&str> = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    for k in ["optimal", "capacity", "scaling", "latency", "client"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
}

#[test]
fn report_html_is_one_self_contained_file_with_answers_table_charts_and_thresholds() {
    let dir = render("complete");
    let html = read(&dir, "report.html");
    for cell in [
        "replicas1_users4",
        "replicas1_users16",
        "replicas2_users4",
        "replicas2_users16",
    ] {
        assert!(html.contains(&format!("data-cell=\"{cell}\"")), "{cell}");
    }
    // Every chart written beside the report is inline in it.
    let charts = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
        .count();
    assert!(charts >= 2);
    // Beside them, the whole run's timeline (RPS and p95) is drawn inline only.
    let timeline = if html.contains("id=\"timeline\"") {
        2
    } else {
        0
    };
    assert_eq!(
        html.matches("<svg ").count(),
        charts + timeline,
        "inline charts"
    );
    let report_md = read(&dir, "report.md");
    assert!(report_md.contains("**FAIL**"));
    assert!(html.contains(">FAIL</td>"), "threshold table");
    assert!(html.contains("<h2 id=\"answers\">"));
    assert!(html.contains("table.sortable"), "no sorting script");
    for attr in ["src=", "href=", "url("] {
        for (i, _) in html.match_indices(attr) {
            let value = html[i + attr.len()..].trim_start_matches(['"', '\'']);
            // Links to the cells' pages beside it open files of the run.
            let page = value
                .split('"')
                .next()
                .filter(|v| attr == "href=" && v.starts_with("cells/"));
            if let Some(page) = page {
                assert!(dir.join(page).is_file(), "{page} opens nothing");
                continue;
            }
            assert!(
                value.starts_with('#'),
                "{attr} points outside the file: {}",
                &html[i..(i + 60).min(html.len())]
            );
        }
    }
}

#[test]
fn partial_run_reports_what_was_measured() {
    let dir = render("partial");
    let report = read(&dir, "report.md");
    assert!(
        report.contains("**interrupted**, 2 of 4 cells measured"),
        "{report}"
    );
    insta::assert_snapshot!("partial_report", report);
    assert!(!dir.join("cells/replicas2_users4/cell.md").exists());
    insta::assert_snapshot!(
        "partial_cell_replicas1_users16",
        read(&dir, "cells/replicas1_users16/cell.md")
    );
}

#[test]
fn the_summary_is_appended_to_the_github_step_summary() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/complete");
    let dir = std::env::temp_dir().join(format!("lm-report-gh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir);
    let summary_file = dir.join("step-summary.md");
    std::fs::write(&summary_file, "earlier step\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("report")
        .arg(&dir)
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = std::fs::read_to_string(&summary_file).unwrap();
    assert!(text.starts_with("earlier step\n"));
    assert_eq!(
        text.matches("# fixture-scaling: load test report").count(),
        1,
        "{text}"
    );
}

#[test]
fn custom_templates_see_the_documented_context_and_errors_name_file_and_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/complete");
    let dir = std::env::temp_dir().join(format!("lm-report-custom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir);
    // The example from docs/templates.md, verbatim.
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/templates.md"))
            .unwrap();
    let example = docs
        .split("```jinja\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let template = dir.join("capacity.md.j2");
    std::fs::write(&template, example).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("report")
        .arg(&dir)
        .arg("--template")
        .arg(&template)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = read(&dir, "capacity.md");
    assert!(
        out.contains("**Capacity:** replicas=2: capacity 745.0 RPS under the SLO"),
        "{out}"
    );
    assert!(
        out.contains("| 1 → 2 (replicas1_users16, replicas2_users16) | 0.91 |"),
        "{out}"
    );
    assert!(
        out.contains("| 1 → 2 (replicas1_users4, replicas2_users4) | not saturated |"),
        "{out}"
    );

    let broken = dir.join("broken.md.j2");
    std::fs::write(&broken, "line one\n{{ summary[0].nope.deeper }}\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("report")
        .arg(&dir)
        .arg("--template")
        .arg(&broken)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("broken.md.j2:2: `summary[0].nope.deeper` is undefined"),
        "{err}"
    );
}

/// `compare` says what makes two runs less comparable: here the plan changed
/// (and the earlier run has no baseline).
#[test]
fn compare_warns_when_the_plan_changed() {
    let (base, new) = (render("partial"), render("complete"));
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("compare")
        .arg(&base)
        .arg(&new)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        err.contains("warning: the plan changed between the runs"),
        "{err}"
    );
    assert!(out.starts_with("> **Warning:** the plan changed"), "{out}");
    assert!(out.contains("| replicas1_users4 |"), "{out}");
}

fn compare(base: &Path, new: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("compare")
        .arg(base)
        .arg(new)
        .args(extra)
        .output()
        .unwrap()
}

/// A copy of the complete fixture whose run.json and plan.toml `edit` changes.
fn edited(name: &str, edit: impl Fn(&mut serde_json::Value, &mut String)) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/complete");
    let dir = std::env::temp_dir().join(format!("lm-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir);
    let mut manifest: serde_json::Value = serde_json::from_str(&read(&dir, "run.json")).unwrap();
    let mut plan = read(&dir, "plan.toml");
    edit(&mut manifest, &mut plan);
    std::fs::write(dir.join("run.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    dir
}

/// Runs of different plans, or with no cell in common, are refused unless
/// `--force`: a table of unmatched cells would pass the gate silently.
#[test]
fn compare_refuses_unrelated_runs_unless_forced() {
    let base = edited("base", |_, _| {});
    let other_plan = edited("other-plan", |m, _| m["plan"] = "another-plan".into());
    let o = compare(&base, &other_plan, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("different plans (`fixture-scaling` and `another-plan`)")
            && err.contains("--force"),
        "{err}"
    );
    let o = compare(&base, &other_plan, &["--force"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("| replicas1_users4 |"), "{out}");

    let other_axes = edited("other-axes", |m, _| {
        m["axes"] = serde_json::json!(["workers"]);
        for (i, c) in m["cells"].as_array_mut().unwrap().iter_mut().enumerate() {
            c["id"] = format!("workers{i}").into();
        }
    });
    let o = compare(&base, &other_axes, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "no cell of one run is a cell of the other (matrix axes replicas users and workers)"
        ),
        "{err}"
    );
}

/// Two runs of one plan whose settings changed are compared, with a warning
/// that names each changed setting.
#[test]
fn compare_lists_what_changed_in_the_plan() {
    let base = edited("same-base", |_, _| {});
    let new = edited("same-new", |m, plan| {
        m["plan_hash"] = "changed".into();
        *plan = plan.replacen("[cell]", "[cell]\ncooldown = \"7s\"", 1);
        plan.push_str("\n[vars]\nadded = 1\n");
    });
    let o = compare(&base, &new, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: the plan changed between the runs: cell.cooldown, vars"),
        "{err}"
    );
}
