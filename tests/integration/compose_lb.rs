//! The compose example's topology, shortened: the demo target scaled by
//! Compose behind the nginx load balancer `loadmatrix demo-image` builds,
//! Locust sending through the load balancer, every replica's /metrics
//! scraped. Replicas are added and removed between cells; the load balancer
//! must spread load over exactly the replicas of each cell.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::*;

fn ready(test: &str) -> bool {
    let docker = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .any(|p| std::path::Path::new(p).is_file());
    let compose = Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        ("a Docker engine", docker),
        ("nginx", nginx),
        ("Compose", compose),
    ]
    .iter()
    .filter(|(_, ok)| !ok)
    .map(|(what, _)| *what)
    .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {test} needs {}",
            missing.join(", ")
        );
        eprintln!("skipping {test}: needs {}", missing.join(", "));
        return false;
    }
    locust_available(test)
}

fn build_images() -> (&'static str, &'static str) {
    let (demo, lb) = ("loadmatrix-demo:e2e", "loadmatrix-lb:e2e");
    let lock =
        std::fs::File::create(std::env::temp_dir().join("loadmatrix-test-image.lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    let o = loadmatrix()
        .args(["demo-image", "--tag", demo, "--lb-tag", lb])
        .output()
        .unwrap();
    drop(lock);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (demo, lb)
}

fn project_containers(project: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=com.docker.compose.project={project}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn locust_through_the_load_balancer_reaches_every_replica_of_every_cell() {
    let test = "compose_lb";
    if !ready(test) {
        return;
    }
    let (demo, lb) = build_images();
    let project = format!("lmlb{}", std::process::id());
    let dir = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "3.8"
services:
  inference:
    image: {demo}
    command: ["demo-target", "--host", "0.0.0.0", "--port", "8080", "--slots", "4", "--service-time", "10ms", "--jitter", "fixed"]
    ports:
      - "127.0.0.1::8080"
  lb:
    image: {lb}
    depends_on:
      - inference
    ports:
      - "127.0.0.1:{port}:8023"
    labels:
      loadmatrix.reload: "HUP"
"#
        ),
    )
    .unwrap();
    // Only /predict, which is what demo_requests_total counts.
    let locustfile = dir.join("locustfile.py");
    std::fs::write(
        &locustfile,
        "from locust import HttpUser, constant, task\n\n\n\
         class Predict(HttpUser):\n    wait_time = constant(0.2)\n\n    \
         @task\n    def predict(self):\n        \
         self.client.post(\"/predict\", json={\"inputs\": [1, 2]})\n",
    )
    .unwrap();
    let plan = format!(
        r#"
name = "compose-lb"
[vars]
lb = "http://127.0.0.1:{port}"
[matrix]
replicas = [1, 3, 2]
[cell]
duration = "4s"
warmup = "1s"
[system]
backend = "compose"
replicas = "{{{{ matrix.replicas }}}}"
compose = {{ file = "{file}", service = "inference", project = "{project}" }}
ready = {{ url = "{{{{ vars.lb }}}}/health", timeout = "60s" }}
[load]
engine = "locust"
locustfile = "{locustfile}"
base_url = "{{{{ vars.lb }}}}"
users = 12
spawn_rate = 100
[analysis]
baseline = "0s"
[[scrape]]
name = "model"
path = "/metrics"
interval = "500ms"
series = [{{ metric = "demo_requests_total", agg = "rate", as = "server_rps" }}]
"#,
        file = dir.join("docker-compose.yml").display(),
        locustfile = locustfile.display(),
    );
    let r = run_plan(test, &plan, &[]);
    let left = project_containers(&project);
    let _ = Command::new("docker")
        .args(["rm", "-f"])
        .args(&left)
        .output();
    assert_eq!(r.output.status.code(), Some(0), "{}", stderr(&r.output));
    assert!(left.is_empty(), "containers left behind: {left:?}");

    for (cell, replicas) in [("replicas1", 1), ("replicas3", 3), ("replicas2", 2)] {
        let csv =
            std::fs::read_to_string(r.dir.join("cells").join(cell).join("metrics.csv")).unwrap();
        // Per replica: the 200 counter at the first and last scrape.
        let mut counts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for line in csv.lines().skip(1) {
            if !line.contains("status=\"\"200\"\"") {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            let value: f64 = f[f.len() - 1].parse().unwrap();
            counts
                .entry(f[1].to_string())
                .and_modify(|e| e.1 = value)
                .or_insert((value, value));
        }
        assert_eq!(counts.len(), replicas, "{cell}: {counts:?}");
        for (replica, (first, last)) in &counts {
            assert!(
                last > first,
                "{cell}: replica {replica} served nothing: {counts:?}"
            );
        }
    }
    let rows = summary(&r.dir);
    for row in &rows {
        let (client, server): (f64, f64) = (
            row["rps"].parse().unwrap(),
            row["server_rps"].parse().unwrap(),
        );
        // The containers' own interface counters saw the traffic.
        let sut_rx: f64 = row["sut_rx_mbps"].parse().unwrap();
        assert!(sut_rx > 0.0, "{row:?}");
        assert!(
            (server - client).abs() <= client * 0.15,
            "the replicas answered {server}/s, the client saw {client}/s: {row:?}"
        );
    }
}
