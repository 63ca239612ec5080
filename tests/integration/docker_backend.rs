//! The Docker backends against the real engine, no mocks. Without a reachable
//! engine each test prints why and passes, unless `CI` is set: then it fails.
//!
//! Every test uses its own service name, and a guard removes whatever carries
//! that name even when the test fails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerSummary, ContainerSummaryStateEnum, HealthStatusEnum, LocalNodeState, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, SwarmInitRequest, TaskSpec, TaskSpecContainerSpec,
};
use bollard::query_parameters::{
    KillContainerOptionsBuilder, LeaveSwarmOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use loadmatrix::plan::{Compose, Docker as DockerSpec, Ready, ReadyTarget};
use loadmatrix::system::Backend as _;
use loadmatrix::system::BackendError;
use loadmatrix::system::compose::ComposeBackend;
use loadmatrix::system::docker::{
    DockerBackend, REPLICA_LABEL, SERVICE_LABEL, container_name, count_running,
};
use loadmatrix::system::docker_image::{build_binary_image, build_demo_image};
use loadmatrix::system::engine::connect_engine;
use loadmatrix::system::swarm::SwarmBackend;

const IMAGE: &str = "loadmatrix-demo:test";
const HEALTH_IMAGE: &str = "loadmatrix-demo:test-health";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";
const SWARM_SERVICE: &str = "com.docker.swarm.service.name";

/// The engine, or None (after saying why) when it is unreachable outside CI.
async fn engine() -> Option<Docker> {
    match connect_engine().await {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but the Docker engine is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: the Docker engine is unreachable: {e}");
            None
        }
    }
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_loadmatrix"))
}

/// Identical contexts hit the engine's layer cache, so every test may build;
/// a lock across the test processes keeps two cold builds from racing (the
/// loser's image would be left untagged).
async fn demo_image(docker: &Docker) {
    let lock = std::fs::File::create(std::env::temp_dir().join("loadmatrix-test-image.lock"))
        .expect("create the image lock file");
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    build_demo_image(docker, binary(), IMAGE)
        .await
        .expect("build the demo image");
    drop(lock);
}

fn unique(what: &str) -> String {
    format!("lmt{what}{}", std::process::id())
}

fn spec(service: &str, image: &str) -> DockerSpec {
    DockerSpec {
        image: image.into(),
        service: service.into(),
        command: Some(
            [
                "demo-target",
                "--host",
                "0.0.0.0",
                "--port",
                "8080",
                "--service-time",
                "5ms",
            ]
            .map(String::from)
            .to_vec(),
        ),
        env: Default::default(),
        port: Some(8080),
        cpus: Some(0.5),
        memory: Some(128 << 20),
        network: None,
        keep: false,
    }
}

fn ready(target: ReadyTarget) -> Ready {
    Ready {
        target,
        timeout: Duration::from_secs(20),
        interval: Duration::from_millis(100),
        tls: None,
    }
}

async fn with_label(docker: &Docker, label: &str) -> Vec<ContainerSummary> {
    let filters = HashMap::from([("label", vec![label.to_string()])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(options)).await.unwrap()
}

/// Removes every container carrying `label` (and named networks) on drop,
/// so a failing test leaves nothing behind.
struct Cleanup {
    label: String,
    networks: Vec<String>,
}

impl Cleanup {
    fn new(key: &str, value: &str) -> Self {
        Cleanup {
            label: format!("{key}={value}"),
            networks: Vec::new(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = self.label.clone();
        let networks = self.networks.clone();
        // Drop cannot await, and the test's runtime may be unwinding.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok(docker) = connect_engine().await else {
                    return;
                };
                let remove = RemoveContainerOptionsBuilder::new().force(true).build();
                for c in with_label(&docker, &label).await {
                    if let Some(id) = c.id {
                        let _ = docker.remove_container(&id, Some(remove.clone())).await;
                    }
                }
                for n in networks {
                    let _ = docker.remove_network(&n).await;
                }
            });
        })
        .join();
    }
}

async fn status_of(url: &str) -> u16 {
    let client = loadmatrix::tls::TlsSettings::http_client(None)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    match client.get(url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Asserts exactly replicas 0..n of `service` exist, all running, named and
/// labelled, publishing only on 127.0.0.1; returns their ids by index.
async fn assert_replicas(docker: &Docker, service: &str, n: usize) -> BTreeMap<usize, String> {
    let list = with_label(docker, &format!("{SERVICE_LABEL}={service}")).await;
    assert_eq!(list.len(), n, "containers of {service}: {list:#?}");
    let mut ids = BTreeMap::new();
    for c in list {
        let labels = c.labels.clone().unwrap_or_default();
        let index: usize = labels[REPLICA_LABEL].parse().unwrap();
        assert_eq!(labels[SERVICE_LABEL], service);
        assert_eq!(c.state, Some(ContainerSummaryStateEnum::RUNNING), "{c:#?}");
        let name = c.names.clone().unwrap_or_default().join(",");
        assert_eq!(name, format!("/{}", container_name(service, index)));
        let ports = c.ports.clone().unwrap_or_default();
        assert!(!ports.is_empty(), "{c:#?}");
        for p in ports {
            assert_eq!(p.ip.as_deref(), Some("127.0.0.1"), "{c:#?}");
            assert_eq!(p.private_port, 8080);
        }
        assert!(ids.insert(index, c.id.unwrap()).is_none());
    }
    assert_eq!(
        ids.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    ids
}

#[tokio::test]
async fn docker_scales_1_3_2_0_and_samples() {
    let Some(docker) = engine().await else { return };
    demo_image(&docker).await;
    let service = unique("scale");
    let _cleanup = Cleanup::new(SERVICE_LABEL, &service);
    let mut backend = DockerBackend::connect(&spec(&service, IMAGE))
        .await
        .unwrap();
    let health = ready(ReadyTarget::Path("/health".into()));
    let mut previous: BTreeMap<usize, String> = BTreeMap::new();
    for n in [1, 3, 2, 0] {
        let events = backend.scale(n).await.unwrap();
        let ids = assert_replicas(&docker, &service, n).await;
        // Only the difference changed: surviving indexes keep their container.
        for (i, id) in &ids {
            if let Some(before) = previous.get(i) {
                assert_eq!(before, id, "replica {i} was recreated; events: {events:?}");
            }
        }
        let changed = n.abs_diff(previous.len());
        assert_eq!(events.len(), changed, "{events:?}");
        previous = ids;

        let endpoints = backend.endpoints();
        assert_eq!(endpoints.len(), n);
        backend.wait_ready(&health).await.unwrap();
        for e in &endpoints {
            assert!(e.starts_with("http://127.0.0.1:"), "{e}");
            assert_eq!(status_of(&format!("{e}/health")).await, 200);
        }
        if n == 3 {
            assert_eq!(count_running(&service).await.unwrap(), 3);
            // The first sample waits for the engine's own two readings, the
            // second is one-shot against ours.
            for _ in 0..2 {
                let rows = backend.sample(1.5).await;
                let mut names: Vec<&str> = rows.iter().map(|r| r.replica.as_str()).collect();
                names.sort();
                assert_eq!(names, ["replica-0", "replica-1", "replica-2"], "{rows:?}");
                for r in &rows {
                    assert!(r.cpu_pct >= 0.0 && r.cpu_pct.is_finite(), "{r:?}");
                    assert!(r.mem_bytes > 0, "{r:?}");
                    assert_eq!(r.t, 1.5);
                }
            }
        }
    }
    assert!(backend.sample(0.0).await.is_empty());
    assert!(backend.stop_all().await.is_empty());
    assert!(
        with_label(&docker, &format!("{SERVICE_LABEL}={service}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn docker_reports_a_killed_replica() {
    let Some(docker) = engine().await else { return };
    demo_image(&docker).await;
    let service = unique("kill");
    let _cleanup = Cleanup::new(SERVICE_LABEL, &service);
    let mut backend = DockerBackend::connect(&spec(&service, IMAGE))
        .await
        .unwrap();
    backend.scale(2).await.unwrap();
    backend.wait_ready(&ready(ReadyTarget::Tcp)).await.unwrap();
    assert_eq!(backend.exited().await, None);

    let victim = backend.replicas()[1].id.clone();
    let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
    docker.kill_container(&victim, Some(kill)).await.unwrap();
    let start = Instant::now();
    let report = loop {
        if let Some(r) = backend.exited().await {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(report.starts_with("replica 1 "), "{report}");
    assert!(report.contains("exit status 137, SIGKILL"), "{report}");
    // Reported once, and the other replica is fine.
    assert_eq!(backend.exited().await, None);
    // Readiness fails fast on the dead replica instead of timing out.
    let e = backend
        .wait_ready(&ready(ReadyTarget::Tcp))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("replica 1"), "{e}");

    // Scaling again replaces the dead container.
    backend.scale(2).await.unwrap();
    let ids = assert_replicas(&docker, &service, 2).await;
    assert_ne!(ids[&1], victim);
    // Dropped without stop_all (an early return, a panic): still removed.
    drop(backend);
    assert!(
        with_label(&docker, &format!("{SERVICE_LABEL}={service}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn docker_keeps_containers_and_a_later_run_adopts_them() {
    let Some(docker) = engine().await else { return };
    demo_image(&docker).await;
    let service = unique("keep");
    let _cleanup = Cleanup::new(SERVICE_LABEL, &service);
    let mut kept = spec(&service, IMAGE);
    kept.keep = true;
    let mut first = DockerBackend::connect(&kept).await.unwrap();
    first.scale(2).await.unwrap();
    let events = first.stop_all().await;
    assert!(events[0].starts_with("kept 2 container(s)"), "{events:?}");
    drop(first);
    let ids = assert_replicas(&docker, &service, 2).await;

    let mut second = DockerBackend::connect(&spec(&service, IMAGE))
        .await
        .unwrap();
    assert_eq!(second.scale(2).await.unwrap(), Vec::<String>::new());
    assert_eq!(assert_replicas(&docker, &service, 2).await, ids);
    second.wait_ready(&ready(ReadyTarget::Tcp)).await.unwrap();
    assert_eq!(second.stop_all().await.len(), 2);
    assert!(
        with_label(&docker, &format!("{SERVICE_LABEL}={service}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn docker_waits_for_the_image_healthcheck() {
    let Some(docker) = engine().await else { return };
    build_binary_image(
        &docker,
        binary(),
        HEALTH_IMAGE,
        &["HEALTHCHECK --interval=1s --timeout=3s --retries=3 CMD [\"/loadmatrix\", \"--version\"]"],
    )
    .await
    .unwrap();
    let service = unique("health");
    let _cleanup = Cleanup::new(SERVICE_LABEL, &service);
    let mut backend = DockerBackend::connect(&spec(&service, HEALTH_IMAGE))
        .await
        .unwrap();
    backend.scale(2).await.unwrap();
    // ReadyTarget::Nothing would return at once; the healthcheck wins.
    backend
        .wait_ready(&ready(ReadyTarget::Nothing))
        .await
        .unwrap();
    for r in backend.replicas() {
        let c = docker.inspect_container(&r.id, None).await.unwrap();
        let health = c.state.and_then(|s| s.health).and_then(|h| h.status);
        assert_eq!(health, Some(HealthStatusEnum::HEALTHY));
    }
    backend.stop_all().await;
    assert!(
        with_label(&docker, &format!("{SERVICE_LABEL}={service}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn docker_names_a_missing_image_and_the_build_command() {
    let Some(_docker) = engine().await else {
        return;
    };
    let service = unique("noimage");
    let e = DockerBackend::connect(&spec(&service, "loadmatrix-absent:never"))
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::ImageMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("loadmatrix demo-image"), "{e}");
}

#[tokio::test]
async fn compose_scales_1_2_1_and_restores() {
    let Some(docker) = engine().await else { return };
    demo_image(&docker).await;
    // Lowercase letters and digits only: Compose v1 and v2 both use the
    // folder name unchanged as the project name.
    let project = unique("compose");
    let service = unique("demo");
    let mut cleanup = Cleanup::new(COMPOSE_SERVICE, &service);
    cleanup.networks.push(format!("{project}_default"));
    let dir: PathBuf = std::env::temp_dir().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\n\
             services:\n  \
               {service}:\n    \
                 image: {IMAGE}\n    \
                 command: [\"demo-target\", \"--host\", \"0.0.0.0\", \"--port\", \"8080\"]\n    \
                 ports:\n      \
                   - \"127.0.0.1::8080\"\n"
        ),
    )
    .unwrap();
    let plan = Compose {
        file: file.clone(),
        service: service.clone(),
        project: None,
    };
    let label = format!("{COMPOSE_SERVICE}={service}");
    let running = |list: &[ContainerSummary]| {
        list.iter()
            .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
            .count()
    };

    let mut ours = ComposeBackend::connect(&plan).await.unwrap();
    let health = ready(ReadyTarget::Path("/health".into()));
    for n in [1, 2, 1] {
        ours.scale(n).await.unwrap();
        assert_eq!(ours.project(), Some(project.as_str()));
        let list = with_label(&docker, &label).await;
        assert_eq!((list.len(), running(&list)), (n, n), "{list:#?}");
        let mut indexes: Vec<usize> = ours.replicas().iter().map(|r| r.index).collect();
        indexes.sort();
        assert_eq!(indexes, (0..n).collect::<Vec<_>>());
        assert_eq!(ours.endpoints().len(), n);
        ours.wait_ready(&health).await.unwrap();
        for e in ours.endpoints() {
            assert_eq!(status_of(&format!("{e}/health")).await, 200);
        }
    }
    assert_eq!(ours.sample(0.0).await.len(), 1);

    // A second run finds the project up: it scales back instead of `down`.
    let mut theirs = ComposeBackend::connect(&plan).await.unwrap();
    theirs.scale(2).await.unwrap();
    assert_eq!(running(&with_label(&docker, &label).await), 2);
    theirs.stop_all().await;
    assert_eq!(running(&with_label(&docker, &label).await), 1);

    ours.stop_all().await;
    assert!(with_label(&docker, &label).await.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Leaves the swarm (and the bridge it created) if the test joined it.
struct SwarmCleanup {
    service: String,
    leave: bool,
    remove_gwbridge: bool,
}

impl Drop for SwarmCleanup {
    fn drop(&mut self) {
        let service = self.service.clone();
        let (leave, remove_gwbridge) = (self.leave, self.remove_gwbridge);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok(docker) = connect_engine().await else {
                    return;
                };
                let _ = docker.delete_service(&service).await;
                if leave {
                    let options = LeaveSwarmOptionsBuilder::new().force(true).build();
                    let _ = docker.leave_swarm(Some(options)).await;
                }
                if remove_gwbridge {
                    let _ = docker.remove_network("docker_gwbridge").await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn swarm_scales_a_service_1_3_1() {
    let Some(docker) = engine().await else { return };
    demo_image(&docker).await;
    let info = docker.info().await.unwrap();
    let active = info.swarm.and_then(|s| s.local_node_state) == Some(LocalNodeState::ACTIVE);
    let had_gwbridge = docker
        .inspect_network("docker_gwbridge", None)
        .await
        .is_ok();
    let service = unique("swarm");
    let _cleanup = SwarmCleanup {
        service: service.clone(),
        leave: !active,
        remove_gwbridge: !active && !had_gwbridge,
    };
    if !active {
        docker
            .init_swarm(SwarmInitRequest {
                listen_addr: Some("127.0.0.1:2377".into()),
                advertise_addr: Some("127.0.0.1".into()),
                ..Default::default()
            })
            .await
            .expect("swarm init");
    }
    // No published ports: nothing listens beyond the loopback.
    docker
        .create_service(
            ServiceSpec {
                name: Some(service.clone()),
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec {
                        image: Some(IMAGE.into()),
                        args: Some(
                            ["demo-target", "--host", "0.0.0.0", "--port", "8080"]
                                .map(String::from)
                                .to_vec(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                mode: Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("create the swarm service");

    let mut backend = SwarmBackend::connect(&service).await.unwrap();
    let label = format!("{SWARM_SERVICE}={service}");
    for n in [3, 1] {
        backend.scale(n).await.unwrap();
        assert_eq!(backend.running_tasks().await.unwrap(), n);
        let mut slots: Vec<usize> = backend.replicas().iter().map(|r| r.index).collect();
        slots.sort();
        assert_eq!(slots.len(), n, "{slots:?}");
        let running = with_label(&docker, &label)
            .await
            .into_iter()
            .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
            .count();
        assert_eq!(running, n);
        assert_eq!(count_running(&service).await.unwrap(), n as u64);
    }
    assert_eq!(backend.sample(0.0).await.len(), 1);
    assert!(backend.endpoints().is_empty());
    backend.stop_all().await;
    assert_eq!(backend.running_tasks().await.unwrap(), 1);
    docker.delete_service(&service).await.unwrap();
    let start = Instant::now();
    while !with_label(&docker, &label).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "task containers remain"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
