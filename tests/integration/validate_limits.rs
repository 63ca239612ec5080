//! Hostile plans fail at `validate` with exit 2, every error at once and each
//! at its place, instead of hanging, exhausting memory, panicking or failing
//! mid-run.

use std::process::{Command, Output};

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("validate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// Validates a fixture of tests/plans/invalid: exit 2, no panic; the errors.
fn invalid(name: &str) -> String {
    let path = format!("tests/plans/invalid/{name}");
    let o = validate(&[&path]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    err
}

/// The `file:line:col` prefix of each error line.
fn places(err: &str, file: &str) -> Vec<String> {
    err.lines()
        .filter(|l| l.contains(": error: "))
        .filter_map(|l| l.strip_prefix(&format!("tests/plans/invalid/{file}:")))
        .map(|l| l.split(": error: ").next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_huge_matrix_is_counted_not_built() {
    let err = invalid("matrix-too-many-cells.toml");
    assert!(
        err.contains("matrix has 2,560,000 cells; the limit is 10,000"),
        "{err}"
    );
    // exclude and include are counted exactly: 200 * 100 - 100 + 1.
    let err = invalid("matrix-too-many-after-exclude.toml");
    assert!(
        err.contains("matrix has 19,901 cells; the limit is 10,000"),
        "{err}"
    );
}

#[test]
fn templates_stop_at_their_work_and_output_budgets() {
    let err = invalid("template-fuel.toml");
    assert!(
        err.contains("`load.request[0].path` does too much work")
            && err.contains("budget of 1,000,000 steps"),
        "{err}"
    );
    let err = invalid("template-output-bomb.toml");
    assert!(
        err.contains("`load.request[0].body` renders more than 1MiB (the limit per value)"),
        "{err}"
    );
}

#[test]
fn overflowing_durations_are_errors_with_their_place() {
    let err = invalid("duration-overflow.toml");
    let at = places(&err, "duration-overflow.toml");
    assert_eq!(at, ["5:12", "6:12", "7:10", "8:10", "13:11"], "{err}");
    assert!(
        err.contains("too large: the limit is 720h (30 days)"),
        "{err}"
    );
    assert!(
        err.contains("`cell.repeat` is 1,000,000; the limit is 1,000"),
        "{err}"
    );

    let o = validate(&[
        "plans/quickstart.toml",
        "--set",
        "cell.duration=18446744073709551615s",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("too large"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn what_would_fail_later_fails_at_validate() {
    let err = invalid("engine-limits.toml");
    assert!(
        err.contains("`load.workers` is 15,000; the limit is 1,024"),
        "{err}"
    );
    assert!(
        err.contains("`load.users` is 2,000,000; the limit is 1,000,000"),
        "{err}"
    );
    let err = invalid("rate-limit.toml");
    assert!(
        err.contains("`load.rate` is 5,000,000; the limit is 1,000,000"),
        "{err}"
    );

    let err = invalid("request-path-not-a-target.toml");
    assert_eq!(
        places(&err, "request-path-not-a-target.toml"),
        ["9:8", "12:8", "15:8", "18:8", "21:8", "24:8"],
        "{err}"
    );
    for problem in [
        "holds a space",
        "holds `<`",
        "holds the control character 0x09",
        "holds a `%` that does not start an escape",
        "holds a `#`",
        "holds a non-ASCII character",
    ] {
        assert!(err.contains(problem), "{problem}: {err}");
    }

    let err = invalid("report-output-reserved.toml");
    let overwrite = "would overwrite a file loadmatrix writes in the run folder";
    for output in [
        "run.json",
        "plan.toml",
        "cells/users10/stats.json",
        "summary.csv",
        "./junit.xml",
        "events.log",
    ] {
        assert!(
            err.contains(&format!("output` \"{output}\" {overwrite}")),
            "{output}: {err}"
        );
    }
    assert!(
        err.contains("\"../outside.md\" must stay inside the run folder")
            && err.contains("\"/tmp/report.md\" must stay inside the run folder"),
        "{err}"
    );
    assert!(
        err.contains("`report[9].output` \"latency.md\" is also the output of report[8]"),
        "{err}"
    );

    let err = invalid("step-output-reserved.toml");
    for expected in [
        "15:10: error: `step.metrics.output` \"stats.json\" would overwrite a file loadmatrix writes in the cell's folder",
        "23:10: error: `step.final-metrics.output` \"summary.json\" would overwrite a file loadmatrix writes in the run folder",
        "28:10: error: `step.report.output` \"run.json\" would overwrite a file loadmatrix writes in the run folder",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }

    let err = invalid("step-per-cell-only.toml");
    assert!(
        err.contains("a `load` step runs per cell, but it sets `per_cell = false`")
            && err.contains("a `ready` step runs per cell"),
        "{err}"
    );
}

#[test]
fn unknown_keys_hide_no_other_error() {
    let err = invalid("errors-behind-unknown-keys.toml");
    for expected in [
        "3:1: error: unknown key `descripton`",
        "6:1: error: unknown key `duraton`",
        "7:10: error: `cell.warmup`",
        "11:9: error: `load.users`",
        "12:1: error: unknown key `workerz`",
        "16:10: error: `load.request[0].method`",
        "17:1: error: unknown key `wieght`",
        "20:8: error: `load.request[1].path` \"no-slash\" must start with `/`",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(err.contains("did you mean `duration`?"), "{err}");
    assert!(err.contains("did you mean `weight`?"), "{err}");
    assert!(err.contains("did you mean `description`?"), "{err}");

    // The same for `--set` keys, which have no place in the file.
    let o = validate(&[
        "plans/quickstart.toml",
        "--set",
        "cell.duraton=2m",
        "--set",
        "load.users=abc",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`--set cell.duraton=2m` (argument 1): error: unknown key `duraton`"),
        "{err}"
    );
    assert!(err.contains("did you mean `duration`?"), "{err}");
    assert!(
        err.contains("`--set load.users=abc` (argument 2): error: `load.users`: expected a whole number, found \"abc\""),
        "{err}"
    );
}

#[test]
fn a_bad_backend_hides_no_other_system_error() {
    let err = invalid("system-errors-together.toml");
    assert_eq!(
        places(&err, "system-errors-together.toml"),
        ["5:11", "6:12", "7:17", "7:49"],
        "{err}"
    );
}

#[test]
fn a_duplicate_request_name_points_at_the_duplicate() {
    let err = invalid("request-duplicate-name.toml");
    assert_eq!(
        places(&err, "request-duplicate-name.toml"),
        ["16:8", "23:8"],
        "{err}"
    );
    assert!(err.contains("two requests are both named `home`"), "{err}");
    assert!(
        err.contains("two requests are both named `GET /about`"),
        "{err}"
    );
}

#[test]
fn a_plan_that_is_not_utf8_names_the_first_bad_byte() {
    let err = invalid("not-utf8.toml");
    assert!(
        err.contains("not-utf8.toml:4:17: error: the plan is not valid UTF-8: byte 0xe9"),
        "{err}"
    );
}

#[test]
fn report_outputs_over_search_and_chart_files_are_refused() {
    let file = "report-output-search-files.toml";
    let err = invalid(file);
    for output in [
        "capacity.csv",
        "capacity-frontier.svg",
        "rps-vs-users.svg",
        "summary_by_name.csv",
    ] {
        assert!(
            err.contains(&format!(
                "\"{output}\" would overwrite a file loadmatrix writes in the run folder"
            )),
            "{output}: {err}"
        );
    }
    assert!(
        err.contains("`report[4].output` \".\" is not a file name"),
        "{err}"
    );
    assert!(
        err.contains("has a name of 272 bytes; file systems allow at most 255"),
        "{err}"
    );
    // A name that only looks like a chart is fine.
    assert!(!err.contains("rps-vs-users.md"), "{err}");
    assert_eq!(places(&err, file).len(), 6, "{err}");
}

#[test]
fn a_search_beyond_the_engines_limits_fails_at_validate() {
    let err = invalid("search-rate-beyond-limit.toml");
    assert!(
        err.contains("`search.from` is 2,000,000; the limit is 1,000,000")
            && err.contains("`search.to` is 4,000,000; the limit is 1,000,000"),
        "{err}"
    );
    let err = invalid("search-users-beyond-limit.toml");
    assert!(
        err.contains("`search.to` is 1,000,000,000; the limit is 1,000,000"),
        "{err}"
    );
}

#[test]
fn a_url_with_user_info_fails_at_validate_with_the_fix() {
    let file = "base-url-userinfo.toml";
    let err = invalid(file);
    assert!(
        err.contains("`load.base_url` \"http://***@127.0.0.1:9\" carries a user name or password"),
        "{err}"
    );
    assert!(err.contains("system.ready.url"), "{err}");
    assert!(err.contains("send a header instead"), "{err}");
    // The password itself is never repeated in the message.
    assert!(
        !err.lines()
            .any(|l| l.contains("error:") && l.contains("hunter2")),
        "{err}"
    );
}

#[test]
fn a_report_template_outside_the_plans_folder_is_refused() {
    let file = "report-template-outside-plan.toml";
    let err = invalid(file);
    assert!(
        err.contains("`report[0].template` \"/etc/passwd\" is an absolute path"),
        "{err}"
    );
    assert!(err.contains("`report[1].template` \"../../../report-templates/summary.md.j2\" leaves the plan's folder"), "{err}");
    assert!(
        err.contains("`report[2].template` \"templates/../../secret.j2\" leaves the plan's folder"),
        "{err}"
    );
    assert_eq!(places(&err, file).len(), 3, "{err}");
}

#[test]
fn a_plan_name_longer_than_a_folder_name_fails_at_validate() {
    let err = invalid("plan-name-too-long.toml");
    assert!(
        err.contains("plan name is 300 characters long") && err.contains("at most 255"),
        "{err}"
    );
}

#[test]
fn validating_an_endless_file_stops_at_the_size_cap() {
    let start = std::time::Instant::now();
    let o = validate(&["/dev/urandom"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot read plan `/dev/urandom`")
            && err.contains("larger than 10MiB (the limit for a plan)"),
        "{err}"
    );
    // Not a timing claim: reading it all would take forever, not minutes.
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
}
