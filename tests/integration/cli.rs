//! The binary's verbs that send no traffic: exit codes and what they print.

use std::path::Path;
use std::process::{Command, Output};

fn loadmatrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LOADMATRIX_FIXTURE_UNSET")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_accepts_the_example_plans() {
    let o = loadmatrix(&[
        "validate",
        "plans/quickstart.toml",
        "plans/inference-scaling.toml",
        "plans/inference-quick.toml",
        "plans/open-model.toml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok: plans/inference-scaling.toml (24 cells)"));
}

#[test]
fn validate_exits_2_with_file_line_column() {
    let o = loadmatrix(&["validate", "tests/plans/invalid/template-typo.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("tests/plans/invalid/template-typo.toml:7:13"),
        "{err}"
    );
    assert!(err.contains("did you mean `matrix.users`?"), "{err}");
    assert!(err.contains("in every cell (2)"), "{err}");
}

#[test]
fn validate_checks_every_plan_given() {
    let o = loadmatrix(&[
        "validate",
        "tests/plans/invalid/users-zero.toml",
        "plans/quickstart.toml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("ok: plans/quickstart.toml"));
    assert!(stderr(&o).contains("users-zero.toml"));
}

#[test]
fn a_missing_plan_file_is_invalid_input() {
    let o = loadmatrix(&["validate", "plans/no-such-plan.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read plan `plans/no-such-plan.toml`"));
}

#[test]
fn bad_command_lines_exit_2() {
    assert_eq!(loadmatrix(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(loadmatrix(&["validate"]).status.code(), Some(2));
    let o = loadmatrix(&["validate", "plans/quickstart.toml", "--set", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("KEY=VALUE"));
}

#[test]
fn help_exits_0() {
    for cmd in ["validate", "plan", "schema"] {
        let o = loadmatrix(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}");
        assert!(stdout(&o).contains("Usage"));
    }
}

#[test]
fn plan_estimates_the_seed_matrix_at_about_54_minutes() {
    let o = loadmatrix(&["plan", "plans/inference-scaling.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    // 24 cells x (10s warm-up + 2m + 5s cool-down) = 54m
    assert!(out.contains("estimated wall time: 54m"), "{out}");
    assert!(out.contains("24 cells"));
    assert!(out.contains("replicas8_workers8_users800"));
    // the default pipeline, in dependency order
    let steps = &out[out.find("steps (").unwrap()..];
    let order: Vec<usize> = [
        "preflight",
        "scale",
        "ready",
        "load",
        "cooldown",
        "analyze",
        "report",
        "gate",
    ]
    .iter()
    .map(|s| {
        steps
            .find(&format!("  {s} "))
            .unwrap_or_else(|| panic!("{s} missing:\n{out}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
}

#[test]
fn set_overrides_plan_values_and_is_type_checked() {
    let o = loadmatrix(&[
        "plan",
        "plans/inference-scaling.toml",
        "--set",
        "cell.duration=1m",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("estimated wall time: 30m"),
        "{}",
        stdout(&o)
    );
    let o = loadmatrix(&[
        "plan",
        "plans/inference-scaling.toml",
        "--set",
        "cell.duration=soon",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid duration"), "{}", stderr(&o));
}

#[test]
fn set_errors_point_at_the_set_argument() {
    let o = loadmatrix(&[
        "validate",
        "plans/quickstart.toml",
        "--set",
        "cell.duration=1s",
        "--set",
        "load.users=many",
        "--set",
        "load.usres=3",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`--set load.users=many` (argument 2): error:"),
        "{err}"
    );
    assert!(
        err.contains("`--set load.usres=3` (argument 3): error:"),
        "{err}"
    );
    // The argument is shown and underlined, not a line of the plan file.
    assert!(err.contains("1 | load.users=many"), "{err}");
    assert!(!err.contains("quickstart.toml:1:1"), "{err}");
}

#[test]
fn plan_draws_the_dag_as_dot() {
    let o = loadmatrix(&[
        "plan",
        "tests/plans/valid/custom-steps.toml",
        "--format",
        "dot",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph loadmatrix {"));
    assert!(dot.contains("\"scale\" -> \"restart-lb\";"), "{dot}");
    assert!(dot.contains("\"restart-lb\" -> \"load\";"), "{dot}");
    assert!(dot.contains("\"load\" -> \"final-report\";"), "{dot}");
}

#[test]
fn schema_prints_the_committed_schema() {
    let o = loadmatrix(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json"),
    )
    .unwrap();
    assert_eq!(stdout(&o), committed);
}
