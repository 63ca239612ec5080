//! The command lines of Locust's master and workers.

use super::*;

fn secs_arg(d: Duration) -> OsString {
    format!("{}", d.as_secs_f64().ceil().max(1.0) as u64).into()
}

pub(super) fn master_args(
    spec: &LocustSpec,
    files: &Files,
    port: u16,
    run_secs: u64,
) -> Vec<OsString> {
    let locustfile = absolute(&spec.locustfile);
    let mut f = locustfile.into_os_string();
    f.push(",");
    f.push(&files.probe);
    let rate = if spec.spawn_rate > 0.0 {
        spec.spawn_rate.to_string()
    } else {
        spec.users.to_string()
    };
    let mut a: Vec<OsString> = vec!["-f".into(), f];
    if !spec.tags.is_empty() {
        // `--tags` takes every word up to the next option.
        a.push("--tags".into());
        a.extend(spec.tags.iter().map(OsString::from));
    }
    for s in [
        "--headless",
        "--only-summary",
        "--master",
        "--master-bind-host",
        &spec.master_bind,
        "--master-bind-port",
        &port.to_string(),
        "--expect-workers",
        &spec.workers.to_string(),
        "--expect-workers-max-wait",
        &secs_arg(spec.expect_workers_timeout).to_string_lossy(),
        "-u",
        &spec.users.to_string(),
        "-r",
        &rate,
        "-t",
        &format!("{run_secs}s"),
        "--host",
        &spec.host,
        "--csv",
    ] {
        a.push(s.into());
    }
    a.push(files.dir.join("locust").into_os_string());
    a.push("--csv-full-history".into());
    a.push("--json-file".into());
    a.push(files.dir.join("locust").into_os_string());
    a.extend(spec.args.iter().map(OsString::from));
    a
}

pub(super) fn worker_args(spec: &LocustSpec, files: &Files, port: u16) -> Vec<OsString> {
    let mut f = absolute(&spec.locustfile).into_os_string();
    f.push(",");
    f.push(&files.probe);
    let master = if is_wildcard(&spec.master_bind) {
        "127.0.0.1"
    } else {
        spec.master_bind.as_str()
    };
    vec![
        "-f".into(),
        f,
        "--worker".into(),
        "--master-host".into(),
        master.into(),
        "--master-port".into(),
        port.to_string().into(),
    ]
}
