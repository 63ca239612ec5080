//! `loadmatrix run` with `backend = "docker"` against the real engine: the
//! demo image built by `loadmatrix demo-image`, replicas scaled per cell,
//! container stats in system.csv and summary.csv, nothing left behind.

use std::process::Command;

fn docker_available() -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI is set but the Docker engine is unreachable");
    }
    if !ok {
        eprintln!("skipping: the Docker engine is unreachable");
    }
    ok
}

fn containers_labelled(service: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=loadmatrix.service={service}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// `loadmatrix demo-image` builds the image the tests run; a lock across test
/// processes keeps two builds of the same tag from racing.
fn build_test_image() -> &'static str {
    let tag = "loadmatrix-demo:e2e";
    let lock =
        std::fs::File::create(std::env::temp_dir().join("loadmatrix-test-image.lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .args(["demo-image", "--tag", tag])
        .output()
        .unwrap();
    drop(lock);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    tag
}

#[test]
fn a_docker_matrix_scales_containers_and_samples_their_stats() {
    if !docker_available() {
        return;
    }
    let tag = build_test_image();

    let service = format!("lme2e{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("lm-docker-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = format!(
        r#"
name = "docker-e2e"
[matrix]
replicas = [1, 2]
users = [2, 8]
[cell]
duration = "4s"
[system]
backend = "docker"
replicas = "{{{{ matrix.replicas }}}}"
docker = {{ image = "{tag}", service = "{service}", port = 8080, command = ["demo-target", "--host", "0.0.0.0", "--port", "8080", "--service-time", "10ms", "--cpu"] }}
ready = {{ path = "/health", timeout = "30s" }}
[load]
users = "{{{{ matrix.users }}}}"
[[load.request]]
method = "POST"
path = "/predict"
body = '{{"inputs": [1]}}'
[[check]]
name = "engine"
command = {{ run = ["docker", "info"] }}
[analysis]
baseline = "0s"
"#
    );
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(dir.join("results"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(containers_labelled(&service), 0, "containers left behind");
    let run = std::fs::read_dir(dir.join("results/docker-e2e"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let summary = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    let mut lines = summary.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{summary}");
    for r in &rows {
        let cpu: f64 = r[col("sut_cpu_pct")].parse().unwrap();
        let mem: f64 = r[col("sut_mem_mb")].parse().unwrap();
        assert!(cpu > 1.0 && mem > 0.0, "{summary}");
        assert_eq!(r[col("status")], "complete");
    }
    // the 2-replica cells sampled both containers
    let system = std::fs::read_to_string(run.join("cells/replicas2_users8/system.csv")).unwrap();
    let replicas: std::collections::BTreeSet<&str> = system
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(replicas.len(), 2, "{system}");
    let events = std::fs::read_to_string(run.join("cells/replicas2_users2/events.log")).unwrap();
    assert!(events.contains("scaled docker to 2 replicas"), "{events}");
}

#[test]
fn a_container_killed_mid_cell_degrades_the_cell_and_the_run_goes_on() {
    if !docker_available() {
        return;
    }
    let tag = build_test_image();

    let service = format!("lmkill{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("lm-docker-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = format!(
        r#"
name = "docker-kill"
[matrix]
users = [4, 2]
[cell]
duration = "6s"
[system]
backend = "docker"
replicas = 2
docker = {{ image = "{tag}", service = "{service}", port = 8080, command = ["demo-target", "--host", "0.0.0.0", "--port", "8080", "--service-time", "10ms"] }}
ready = {{ path = "/health", timeout = "30s" }}
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
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(dir.join("results"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for cell 1's load (both containers up and the first cell started), then kill one.
    let start = std::time::Instant::now();
    loop {
        assert!(start.elapsed().as_secs() < 60, "containers never came up");
        let running = Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=loadmatrix.service={service}"))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&running.stdout).lines().count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let killed = Command::new("docker")
        .args(["kill", &format!("loadmatrix-{service}-1")])
        .output()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        killed.status.success(),
        "docker kill: {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert_eq!(containers_labelled(&service), 0, "containers left behind");
    let run = std::fs::read_dir(dir.join("results/docker-kill"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["cells"][0]["status"], "degraded", "{manifest}");
    assert_eq!(manifest["cells"][1]["status"], "complete", "{manifest}");
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("cells/users4/stats.json")).unwrap(),
    )
    .unwrap();
    assert!(
        stats["stats"]["total"]["failures"].as_u64().unwrap() > 0,
        "{}",
        stats["stats"]["total"]
    );
    let events = std::fs::read_to_string(run.join("cells/users4/events.log")).unwrap();
    assert!(events.contains("exited"), "{events}");
}
