//! The report's answers against cases whose truth is known in closed form:
//! demo-target replicas with fixed service times and slots, so capacity is
//! `slots / service time` per replica and the offered load is
//! `users / (think time + service time)`.

use std::path::Path;
use std::process::{Child, Stdio};

use crate::common::*;

fn summary_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn findings<'a>(s: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn recommendations(s: &serde_json::Value) -> String {
    s["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// 8 users, no think time, replicas of a 2-slot x 50 ms target (40 RPS
/// each); the load can offer 8 / 0.05 s = 160 RPS. 1 and 2 replicas are the
/// limit; 4 and 8 keep up with all of it.
#[test]
fn load_bound_cells_are_not_a_plateau() {
    let plan = r#"
name = "load-bound"
[matrix]
replicas = [1, 2, 4, 8]
[cell]
duration = "3s"
warmup = "1s"
[system]
backend = "local"
replicas = "{{ matrix.replicas }}"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "2", "--service-time", "50ms", "--jitter", "fixed"]
ready = { path = "/health", timeout = "10s" }
[load]
users = 8
[[load.request]]
method = "POST"
path = "/predict"
body = "{}"
[analysis]
baseline = "1s"
slo = { p95 = "1s" }
"#;
    let r = run_plan("answers-load-bound", plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let rows = summary(&r.dir);
    let bounds: Vec<&str> = rows.iter().map(|r| r["bound"].as_str()).collect();
    assert_eq!(bounds, ["service", "service", "load", "load"], "{rows:#?}");
    let ok = |i: usize| rows[i]["ok_rps"].parse::<f64>().unwrap();
    assert!(within(ok(0), 40.0, 0.1), "{}", ok(0));
    assert!(within(ok(1), 80.0, 0.1), "{}", ok(1));
    assert!(within(ok(3), 160.0, 0.1), "{}", ok(3));
    let offered = rows[3]["offered_rps"].parse::<f64>().unwrap();
    assert!(within(offered, 160.0, 0.1), "{offered}");
    assert!(within(rows[0]["baseline_ms"].parse().unwrap(), 50.0, 0.1));

    let s = summary_json(&r.dir);
    assert!(findings(&s, "plateau").is_empty(), "{s:#}");
    let cap = findings(&s, "capacity");
    let at8 = cap
        .iter()
        .find(|c| c["numbers"]["replicas"] == 8.0)
        .unwrap();
    assert_eq!(at8["numbers"]["reached"], 0.0, "{at8:#}");
    let at2 = cap
        .iter()
        .find(|c| c["numbers"]["replicas"] == 2.0)
        .unwrap();
    assert_eq!(at2["numbers"]["reached"], 1.0, "{at2:#}");
    // 8 replicas x 40 RPS x 50 ms = 16 users would saturate 8 replicas.
    let step = findings(&s, "scaling")
        .into_iter()
        .find(|f| f["numbers"]["to"] == 8.0)
        .unwrap();
    let needed = step["numbers"]["needed"].as_f64().unwrap();
    assert!((14.0..=18.0).contains(&needed), "{step:#}");
    let recs = recommendations(&s);
    assert!(
        recs.contains("replicas=8 was never saturated: raise users to at least"),
        "{recs}"
    );
    assert!(!recs.contains("shared bottleneck"), "{recs}");
}

/// A demo target on a free port, stopped when dropped.
struct Shared(Child, u16);

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shared_backend(slots: &str, service: &str) -> Shared {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = loadmatrix()
        .args(["demo-target", "--port", &port.to_string(), "--slots", slots])
        .args(["--service-time", service, "--jitter", "fixed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the shared backend",
        std::time::Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    Shared(child, port)
}

/// Replicas 1, 2 and 4 all behind one shared 4-slot x 50 ms backend
/// (80 RPS): every cell is the service's limit at ~80 RPS, so the plateau
/// and the shared-bottleneck advice are right here.
#[test]
fn a_shared_bottleneck_is_a_plateau() {
    let backend = shared_backend("4", "50ms");
    let plan = format!(
        r#"
name = "shared-bottleneck"
[matrix]
replicas = [1, 2, 4]
[cell]
duration = "3s"
warmup = "1s"
[system]
backend = "local"
replicas = "{{{{ matrix.replicas }}}}"
[load]
base_url = "http://127.0.0.1:{}"
users = 32
[[load.request]]
method = "POST"
path = "/predict"
body = "{{}}"
[analysis]
baseline = "1s"
"#,
        backend.1
    );
    let r = run_plan("answers-shared", &plan, &[]);
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    let rows = summary(&r.dir);
    for row in &rows {
        assert_eq!(row["bound"], "service", "{row:#?}");
        let ok: f64 = row["ok_rps"].parse().unwrap();
        assert!(within(ok, 80.0, 0.1), "{row:#?}");
    }
    let s = summary_json(&r.dir);
    let p = findings(&s, "plateau");
    assert_eq!(p.len(), 1, "{s:#}");
    assert_eq!(p[0]["numbers"]["from"], 1.0);
    assert!(
        recommendations(&s).contains("look for a shared bottleneck"),
        "{}",
        recommendations(&s)
    );
}

/// A repository plan, shortened and run on local replicas instead of
/// compose (its Docker check dropped): paths made absolute.
fn repo_plan(name: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(Path::new(root).join("plans").join(name)).unwrap();
    let text = text.replace("../", &format!("{root}/"));
    let check = "[[check]]\nname = \"docker engine\"\ncommand = { run = [\"docker\", \"info\"] }\n";
    assert!(text.contains(check));
    text.replace(check, "")
}

const SHORT: &[&str] = &[
    "--set",
    "system.backend=local",
    "--set",
    "cell.duration=4s",
    "--set",
    "cell.warmup=2s",
    "--set",
    "cell.cooldown=0s",
    "--set",
    "load.spawn_rate=1000",
    "--set",
    "analysis.baseline=1s",
];

/// 200 users with 0.5-1 s think time offer ~260 RPS; 1 and 2 replicas of
/// the plan's demo service (2 slots x 20 ms: 100 RPS each) serve 100 and 200:
/// both are the limit, so the plan answers how RPS scales with replicas.
#[test]
fn the_quick_plan_is_service_bound_and_says_how_rps_scales() {
    let r = run_plan("answers-quick", &repo_plan("inference-quick.toml"), SHORT);
    assert!(
        matches!(r.output.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&r.output)
    );
    let rows = summary(&r.dir);
    assert!(rows.iter().all(|r| r["bound"] == "service"), "{rows:#?}");
    assert!(within(num(&rows[0], "ok_rps"), 100.0, 0.15), "{rows:#?}");
    assert!(within(num(&rows[1], "ok_rps"), 200.0, 0.15), "{rows:#?}");
    let s = summary_json(&r.dir);
    let step = findings(&s, "scaling")
        .into_iter()
        .find(|f| f["numbers"]["from"] == 1.0 && f["numbers"]["to"] == 2.0)
        .unwrap_or_else(|| panic!("{s:#}"));
    let efficiency = step["numbers"]["efficiency"].as_f64().unwrap();
    assert!((0.85..=1.15).contains(&efficiency), "{step:#}");
    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    assert!(!report.contains("never saturated"), "{report}");
}

/// The full matrix, shortened to its corners: 1 and 8 replicas at 200 and
/// 800 users. The plan's demo service serves 100 `/predict` per second per
/// replica, and the mix adds one `/health` per three: 133 RPS a replica. 1
/// replica is the limit at ~260 RPS offered (at ~1040 its queue outgrows the
/// timeout: failing); 8 replicas (1067 RPS) keep up with 200 users, and at
/// 800 users are at the edge of what they serve.
#[test]
fn the_full_plan_shortened_recommends_replicas_not_users() {
    let mut args: Vec<&str> = SHORT.to_vec();
    args.extend([
        "--only",
        "replicas in [1, 8] and users in [200, 800] and workers == 4",
    ]);
    // Local replicas have no load balancer in front: load and readiness go
    // to every replica, as the native engine does without `base_url`.
    let plan = repo_plan("inference-scaling.toml");
    let (lb_load, lb_ready) = (
        "base_url   = \"{{ vars.lb }}\"\n",
        "ready    = { url = \"{{ vars.lb }}/health\", timeout = \"60s\" }",
    );
    assert!(plan.contains(lb_load) && plan.contains(lb_ready));
    let plan = plan.replace(lb_load, "").replace(
        lb_ready,
        "ready = { path = \"/health\", timeout = \"60s\" }",
    );
    let r = run_plan("answers-seed", &plan, &args);
    assert!(
        matches!(r.output.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&r.output)
    );
    let s = summary_json(&r.dir);
    assert!(findings(&s, "plateau").is_empty(), "{s:#}");
    assert!(
        s["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "critical" || f["kind"] == "no_cell_meets_slo"),
        "{s:#}"
    );
    let rows = summary(&r.dir);
    let cell = |replicas: &str, users: &str| {
        rows.iter()
            .find(|r| r["replicas"] == replicas && r["users"] == users)
            .unwrap()
            .clone()
    };
    let one = cell("1", "200");
    assert_eq!(one["bound"], "service", "{one:#?}");
    assert!(within(num(&one, "ok_rps"), 133.3, 0.15), "{one:#?}");
    let one = cell("1", "800");
    assert!(
        one["bound"] == "service" || one["bound"] == "failing",
        "{one:#?}"
    );
    assert_eq!(cell("8", "200")["bound"], "load", "{rows:#?}");
    let step = findings(&s, "scaling")
        .into_iter()
        .find(|f| {
            f["numbers"]["from"] == 1.0 && f["message"].as_str().unwrap().contains("users=800")
        })
        .unwrap();
    // 8 replicas at 800 users: the service's limit where this machine can
    // drive 800 RPS; what the step says follows the cell's bound.
    let eight = cell("8", "800");
    match eight["bound"].as_str() {
        "service" => {
            let e = step["numbers"]["efficiency"].as_f64().unwrap();
            assert!((0.7..=1.15).contains(&e), "{step:#}");
        }
        _ => assert!(
            step["message"].as_str().unwrap().contains("not saturated"),
            "{step:#}"
        ),
    }
    let recs = recommendations(&s);
    assert!(!recs.contains("Run replicas"), "{recs}");
    for line in recs.lines().filter(|l| l.starts_with("Deploy")) {
        assert!(line.contains(" replica"), "{line}");
        assert!(!line.contains("workers="), "{line}");
    }
}

/// A 2 x 2 plan whose replicas and users come from axes named `resource`
/// and `load`: 1 or 16 users with no think time (20 or 320 RPS offered)
/// against 1 or 2 replicas of a 2-slot x 50 ms target (40 RPS each). p95
/// grows about 8 and 4 times with the load, far from any threshold.
fn named_axes_plan(name: &str, resource: &str, load: &str) -> String {
    format!(
        r#"
name = "{name}"
[matrix]
{resource} = [1, 2]
{load} = [1, 16]
[cell]
duration = "2s"
warmup = "1s"
[system]
backend = "local"
replicas = "{{{{ matrix.{resource} }}}}"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--slots", "2", "--service-time", "50ms", "--jitter", "fixed"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
users = "{{{{ matrix.{load} }}}}"
[[load.request]]
method = "POST"
path = "/predict"
body = "{{}}"
[analysis]
baseline = "1s"
slo = {{ p95 = "1s" }}
"#
    )
}

/// Each finding as kind, severity, axis, cells and message, with the axis
/// names put back to `replicas` and `users` and the measured numbers
/// masked (they differ between two runs).
fn findings_shape(s: &serde_json::Value, resource: &str, load: &str) -> Vec<String> {
    let renamed = |t: &str| t.replace(resource, "replicas").replace(load, "users");
    let masked = |t: &str| {
        let mut out = String::new();
        let mut in_number = false;
        for c in t.chars() {
            let digit = c.is_ascii_digit() || (in_number && c == '.');
            if digit && !in_number {
                out.push('#');
            } else if !digit {
                out.push(c);
            }
            in_number = digit;
        }
        out
    };
    s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            renamed(&format!(
                "{} {} {} {} {}",
                f["kind"],
                f["severity"],
                f["dimension"],
                f["cells"],
                masked(f["message"].as_str().unwrap())
            ))
        })
        .collect()
}

/// What an axis means comes from the field that reads it, not its name:
/// `pods` and `clients` feeding `system.replicas` and `load.users` get the
/// bounds, findings and charts of `replicas` and `users`, in the run and in
/// a report rebuilt from its folder.
#[test]
fn axis_roles_come_from_the_fields_they_feed() {
    // Two runs at once: each cell is a few seconds.
    let (named, other) = std::thread::scope(|scope| {
        let named = scope.spawn(|| {
            let plan = named_axes_plan("roles-named", "replicas", "users");
            run_plan("answers-roles-named", &plan, &[])
        });
        let plan = named_axes_plan("roles-other", "pods", "clients");
        let other = run_plan("answers-roles-other", &plan, &[]);
        (named.join().unwrap(), other)
    });
    for r in [&named, &other] {
        assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    }

    let bounds =
        |dir: &Path| -> Vec<String> { summary(dir).iter().map(|r| r["bound"].clone()).collect() };
    assert_eq!(bounds(&named.dir), ["load", "service", "load", "service"]);
    assert_eq!(bounds(&other.dir), bounds(&named.dir));

    let expected = findings_shape(&summary_json(&named.dir), "replicas", "users");
    let s = summary_json(&other.dir);
    // The load axis gets the latency findings, the replicas axis the scaling ones.
    let dimension = |kind: &str| -> Vec<&str> {
        findings(&s, kind)
            .iter()
            .filter_map(|f| f["dimension"].as_str())
            .collect()
    };
    assert!(dimension("latency").contains(&"clients"), "{s:#}");
    assert!(dimension("scaling").iter().all(|d| *d == "pods"), "{s:#}");
    assert!(!dimension("scaling").is_empty(), "{s:#}");
    assert_eq!(findings_shape(&s, "pods", "clients"), expected);
    for chart in ["rps-vs-pods.svg", "p95-vs-clients.svg"] {
        assert!(other.dir.join(chart).is_file(), "{chart}");
    }

    // The report command reads the roles from the plan copy in the folder.
    std::fs::remove_file(other.dir.join("summary.json")).unwrap();
    let o = loadmatrix().arg("report").arg(&other.dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rebuilt = summary_json(&other.dir);
    assert_eq!(findings_shape(&rebuilt, "pods", "clients"), expected);
}
