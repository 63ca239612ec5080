//! What the Docker-based backends share: the engine connection with errors
//! that say what to do, and a fleet of replica containers to sample, watch
//! for deaths and wait for.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCpuStats, ContainerInspectResponse, ContainerMemoryStats, ContainerStatsResponse,
    HealthStatusEnum,
};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::ready::ReadyError;
use super::{BackendError, SystemSample};
use crate::plan::{Ready, ReadyTarget};

pub(crate) const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of the client, in seconds (image builds included).
const REQUEST_TIMEOUT: u64 = 300;
const STOP_GRACE_SECS: i32 = 5;

/// Connects to the engine named by `DOCKER_HOST` (default the local socket)
/// and settles on an API version both sides speak.
pub async fn connect_engine() -> Result<Docker, BackendError> {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty());
    connect_engine_at(host.as_deref().unwrap_or(DEFAULT_HOST)).await
}

/// Connects to the engine at a unix socket (`unix:///path` or `/path`).
pub(crate) async fn connect_engine_at(host: &str) -> Result<Docker, BackendError> {
    if host.contains("://") && !host.starts_with("unix://") {
        return Err(BackendError::Engine(format!(
            "DOCKER_HOST={host}: only unix sockets are supported (e.g. {DEFAULT_HOST})"
        )));
    }
    let path = host.strip_prefix("unix://").unwrap_or(host);
    let docker = Docker::connect_with_unix(path, REQUEST_TIMEOUT, bollard::API_DEFAULT_VERSION)
        .map_err(|e| engine_error(path, &e))?;
    // The engine may be older than the client (here 20.10, API 1.41).
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(engine_error(path, &e)),
        Err(_) => Err(BackendError::Engine(format!(
            "the Docker engine at {path} did not answer within {CONNECT_TIMEOUT:?}"
        ))),
    }
}

fn engine_error(path: &str, e: &DockerError) -> BackendError {
    let not_running = || {
        format!(
            "the Docker engine is not running: no socket at {path} \
             (install Docker or start it, e.g. `sudo systemctl start docker`)"
        )
    };
    let text = match e {
        DockerError::SocketNotFoundError(_) => not_running(),
        _ => match io_kind(e) {
            Some(ErrorKind::NotFound) => not_running(),
            Some(ErrorKind::ConnectionRefused) => format!(
                "the Docker engine is not running: {path} refuses connections \
                 (start it, e.g. `sudo systemctl start docker`)"
            ),
            Some(ErrorKind::PermissionDenied) => format!(
                "permission denied on {path}: add your user to the `docker` group \
                 (`sudo usermod -aG docker $USER`, then log in again) or run as root"
            ),
            _ => format!("cannot reach the Docker engine at {path}: {}", message(e)),
        },
    };
    BackendError::Engine(text)
}

/// The kind of the first I/O error down the source chain.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// The engine's own message when it gave one, else the error with its causes.
pub(crate) fn message(e: &DockerError) -> String {
    if let DockerError::DockerResponseServerError { message, .. } = e {
        return message.trim().to_string();
    }
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = err.source();
    }
    text
}

pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(DockerError) -> BackendError {
    let what = what.into();
    move |e| BackendError::Docker {
        what,
        message: message(&e),
    }
}

pub(crate) fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Containers (running only unless `all`) carrying every one of `labels`.
pub(crate) async fn containers_with(
    docker: &Docker,
    labels: &[String],
    all: bool,
) -> Result<Vec<bollard::models::ContainerSummary>, BackendError> {
    let filters = HashMap::from([("label", labels.to_vec())]);
    let options = ListContainersOptionsBuilder::new()
        .all(all)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .map_err(api(format!(
            "cannot list containers with {}",
            labels.join(", ")
        )))
}

/// Stops (SIGTERM, then SIGKILL after a grace period) and removes a container.
pub(crate) async fn stop_and_remove(docker: &Docker, id: &str) -> Result<(), BackendError> {
    let stop = StopContainerOptionsBuilder::new()
        .t(STOP_GRACE_SECS)
        .build();
    match docker.stop_container(id, Some(stop)).await {
        // 304: already stopped.
        Ok(())
        | Err(DockerError::DockerResponseServerError {
            status_code: 304, ..
        }) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(api(format!("cannot stop container {id}"))(e)),
    }
    force_remove(docker, id).await
}

pub(crate) async fn force_remove(docker: &Docker, id: &str) -> Result<(), BackendError> {
    let remove = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(remove)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // 409: removal already in progress.
        Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(api(format!("cannot remove container {id}"))(e)),
    }
}

/// The last `lines` lines a container wrote to stdout and stderr.
pub(crate) async fn logs_tail(docker: &Docker, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let collect = async {
        let mut text = String::new();
        let mut stream = std::pin::pin!(docker.logs(id, Some(options)));
        while let Some(item) = stream.next().await {
            match item {
                Ok(out) => text.push_str(&out.to_string()),
                Err(e) => {
                    text.push_str(&format!("(log stream failed: {})", message(&e)));
                    break;
                }
            }
        }
        text
    };
    match tokio::time::timeout(Duration::from_secs(5), collect).await {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(_) => "(logs unavailable: no answer within 5s)".into(),
    }
}

/// CPU percent by the Engine API's documented formula; 100 is one full core.
pub(crate) fn cpu_percent(prev: (u64, u64), cur: (u64, u64), online_cpus: f64) -> f64 {
    let cpu_delta = cur.0.saturating_sub(prev.0) as f64;
    let system_delta = cur.1.saturating_sub(prev.1) as f64;
    if system_delta <= 0.0 {
        return 0.0;
    }
    cpu_delta / system_delta * online_cpus * 100.0
}

/// (container CPU time, host CPU time) in nanoseconds.
fn cpu_times(s: &ContainerCpuStats) -> Option<(u64, u64)> {
    Some((s.cpu_usage.as_ref()?.total_usage?, s.system_cpu_usage?))
}

fn online_cpus(s: &ContainerCpuStats) -> f64 {
    match s.online_cpus {
        Some(n) if n > 0 => f64::from(n),
        _ => s
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map(|p| p.len().max(1) as f64)
            .unwrap_or(1.0),
    }
}

/// Memory in use without the page cache, as `docker stats` reports it:
/// `cache` on cgroup v1, `inactive_file` on cgroup v2.
pub(crate) fn memory_used(m: &ContainerMemoryStats) -> Option<u64> {
    let usage = m.usage?;
    let stats = m.stats.as_ref();
    let cache = stats
        .and_then(|s| s.get("cache").or_else(|| s.get("inactive_file")))
        .copied()
        .unwrap_or(0);
    Some(usage.saturating_sub(cache))
}

/// A replica container of any of the Docker backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub index: usize,
    pub id: String,
    pub name: String,
    /// Where the replica answers on 127.0.0.1, if it publishes a port.
    pub port: Option<u16>,
}

/// The replica containers a backend currently runs.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub docker: Docker,
    replicas: Vec<Replica>,
    /// Container id -> CPU times of its previous sample.
    prev_cpu: HashMap<String, (u64, u64)>,
    /// Containers whose death `exited` already reported.
    reported: HashSet<String>,
}

impl Fleet {
    pub fn new(docker: Docker) -> Self {
        Fleet {
            docker,
            replicas: Vec::new(),
            prev_cpu: HashMap::new(),
            reported: HashSet::new(),
        }
    }

    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    pub fn set(&mut self, mut replicas: Vec<Replica>) {
        replicas.sort_by_key(|r| r.index);
        let ids: HashSet<&String> = replicas.iter().map(|r| &r.id).collect();
        self.prev_cpu.retain(|id, _| ids.contains(id));
        self.reported.retain(|id| ids.contains(id));
        self.replicas = replicas;
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter_map(|r| r.port.map(|p| format!("http://127.0.0.1:{p}")))
            .collect()
    }

    /// One sample per running replica. The first sample of a container asks
    /// the engine for its own two readings (about a second); later ones are
    /// one-shot and take the delta against our previous reading.
    pub async fn sample(&mut self, t: f64) -> Vec<SystemSample> {
        let replicas = self.replicas.clone();
        let docker = self.docker.clone();
        let readings = futures_util::future::join_all(replicas.iter().map(|r| {
            let first = !self.prev_cpu.contains_key(&r.id);
            let docker = docker.clone();
            async move { stats(&docker, &r.id, first).await }
        }))
        .await;
        let mut rows = Vec::new();
        for (r, reading) in replicas.iter().zip(readings) {
            let Some(s) = reading else { continue };
            let Some(mem) = s.memory_stats.as_ref().and_then(memory_used) else {
                continue;
            };
            let Some(cpu) = s.cpu_stats.as_ref() else {
                continue;
            };
            let cur = cpu_times(cpu);
            let prev = self
                .prev_cpu
                .get(&r.id)
                .copied()
                .or_else(|| s.precpu_stats.as_ref().and_then(cpu_times));
            let cpu_pct = match (prev, cur) {
                (Some(p), Some(c)) => cpu_percent(p, c, online_cpus(cpu)),
                _ => 0.0,
            };
            if let Some(c) = cur {
                self.prev_cpu.insert(r.id.clone(), c);
            }
            let net_bytes = s.networks.as_ref().map(|nets| {
                nets.values().fold((0, 0), |(rx, tx), n| {
                    (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
                })
            });
            rows.push(SystemSample {
                t,
                replica: format!("replica-{}", r.index),
                cpu_pct,
                mem_bytes: mem,
                net_bytes,
            });
        }
        rows
    }

    /// The first replica that died since the last call, described.
    pub async fn exited(&mut self) -> Option<String> {
        for r in self.replicas.clone() {
            if self.reported.contains(&r.id) {
                continue;
            }
            if let Some(why) = death(&self.docker, &r).await {
                self.reported.insert(r.id.clone());
                return Some(why);
            }
        }
        None
    }

    async fn first_death(&self) -> Option<String> {
        for r in &self.replicas {
            if let Some(why) = death(&self.docker, r).await {
                return Some(why);
            }
        }
        None
    }

    /// Health status from Docker when the containers have a healthcheck,
    /// else the plan's readiness probe; a replica dying ends the wait.
    pub async fn wait_ready(&self, ready: &Ready) -> Result<Duration, ReadyError> {
        let start = Instant::now();
        if self.has_healthcheck().await {
            return self.wait_healthy(ready, start).await;
        }
        let endpoints = self.endpoints();
        if matches!(ready.target, ReadyTarget::Path(_) | ReadyTarget::Tcp)
            && endpoints.len() < self.replicas.len()
        {
            return Err(ReadyError::NoPort {
                unprobed: self.replicas.len() - endpoints.len(),
                replicas: self.replicas.len(),
            });
        }
        let watch = async {
            loop {
                if let Some(why) = self.first_death().await {
                    return why;
                }
                tokio::time::sleep(
                    ready
                        .interval
                        .clamp(Duration::from_millis(100), Duration::from_secs(1)),
                )
                .await;
            }
        };
        let mut never_failed = || None;
        tokio::select! {
            r = super::ready::wait_ready(ready, &endpoints, &mut never_failed) => r,
            why = watch => Err(ReadyError::Failed(why)),
        }
    }

    async fn has_healthcheck(&self) -> bool {
        for r in &self.replicas {
            if let Ok(c) = self.docker.inspect_container(&r.id, None).await
                && healthcheck_of(&c)
            {
                return true;
            }
        }
        false
    }

    async fn wait_healthy(&self, ready: &Ready, start: Instant) -> Result<Duration, ReadyError> {
        loop {
            let mut pending = Vec::new();
            for r in &self.replicas {
                let c = match self.docker.inspect_container(&r.id, None).await {
                    Ok(c) => c,
                    Err(e) => {
                        pending.push(format!("replica {}: {}", r.index, message(&e)));
                        continue;
                    }
                };
                if !is_running(&c) {
                    return Err(ReadyError::Failed(
                        describe_death(&self.docker, r, &c).await,
                    ));
                }
                let health = c
                    .state
                    .as_ref()
                    .and_then(|s| s.health.as_ref())
                    .and_then(|h| h.status);
                if health != Some(HealthStatusEnum::HEALTHY) {
                    let status = health.map(|h| h.to_string()).unwrap_or_default();
                    pending.push(format!("replica {} is {status}", r.index));
                }
            }
            if pending.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= ready.timeout {
                return Err(ReadyError::Unhealthy {
                    timeout: ready.timeout,
                    pending,
                });
            }
            tokio::time::sleep(ready.interval).await;
        }
    }
}

fn healthcheck_of(c: &ContainerInspectResponse) -> bool {
    let test = c
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref());
    matches!(test.and_then(|t| t.first()), Some(first) if first != "NONE")
}

fn is_running(c: &ContainerInspectResponse) -> bool {
    let state = c.state.as_ref();
    state.and_then(|s| s.running) == Some(true) && state.and_then(|s| s.restarting) != Some(true)
}

async fn stats(docker: &Docker, id: &str, first: bool) -> Option<ContainerStatsResponse> {
    let options = StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(!first)
        .build();
    let mut stream = std::pin::pin!(docker.stats(id, Some(options)));
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Some(Ok(s))) => Some(s),
        _ => None,
    }
}

/// Why a replica is no longer running, or None while it runs (or when the
/// engine cannot tell: a failed inspect is not a death).
async fn death(docker: &Docker, r: &Replica) -> Option<String> {
    match docker.inspect_container(&r.id, None).await {
        Ok(c) if is_running(&c) => None,
        Ok(c) => Some(describe_death(docker, r, &c).await),
        Err(e) if is_not_found(&e) => Some(format!(
            "replica {} (container {}) was removed",
            r.index, r.name
        )),
        Err(_) => None,
    }
}

async fn describe_death(docker: &Docker, r: &Replica, c: &ContainerInspectResponse) -> String {
    let state = c.state.as_ref();
    let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
    let mut status = format!("exit status {code}");
    if state.and_then(|s| s.oom_killed) == Some(true) {
        status.push_str(", killed by the OOM killer");
    } else if let Some(sig) = signal_name(code) {
        status.push_str(&format!(", {sig}"));
    }
    if let Some(err) = state
        .and_then(|s| s.error.as_deref())
        .filter(|e| !e.is_empty())
    {
        status.push_str(&format!(", {err}"));
    }
    let tail = logs_tail(docker, &r.id, 20).await;
    format!(
        "replica {} (container {}) exited ({status}); last output:\n{tail}",
        r.index, r.name
    )
}

/// Shells and Docker report death by signal n as exit status 128 + n.
fn signal_name(code: i64) -> Option<&'static str> {
    Some(match code {
        130 => "SIGINT",
        134 => "SIGABRT",
        137 => "SIGKILL",
        139 => "SIGSEGV",
        143 => "SIGTERM",
        _ => return None,
    })
}

/// Container backends: replicas tracked by a [`Fleet`] of the Engine API.
pub(crate) trait OnFleet {
    const KIND: crate::plan::spanned::Backend;
    fn fleet(&self) -> &Fleet;
    fn fleet_mut(&mut self) -> &mut Fleet;
    fn endpoints(&self) -> Vec<String> {
        self.fleet().endpoints()
    }
    async fn scale_to(&mut self, n: usize) -> Result<Vec<String>, BackendError>;
    async fn stop(&mut self) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_formula() {
        // Host time sums over all CPUs: 1 s of container time in 4 s of host
        // time on 4 CPUs is one full core.
        assert_eq!(cpu_percent((0, 0), (1_000, 4_000), 4.0), 100.0);
        assert_eq!(cpu_percent((10, 10), (10, 10), 2.0), 0.0);
        // Counters that went backwards (a restart) give 0, not garbage.
        assert_eq!(cpu_percent((100, 100), (50, 200), 1.0), 0.0);
    }

    #[test]
    fn memory_without_cache() {
        let mut m = ContainerMemoryStats {
            usage: Some(1000),
            stats: Some(HashMap::from([("cache".to_string(), 300)])),
            ..Default::default()
        };
        assert_eq!(memory_used(&m), Some(700));
        m.stats = Some(HashMap::from([("inactive_file".to_string(), 2000)]));
        assert_eq!(memory_used(&m), Some(0));
        m.usage = None;
        assert_eq!(memory_used(&m), None);
    }

    #[tokio::test]
    async fn unreachable_engine_says_why() {
        let dir = std::env::temp_dir().join(format!("lm-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.sock");
        let e = connect_engine_at(missing.to_str().unwrap())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not running"), "{e}");
        // A socket file nobody listens on.
        let dead = dir.join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        let e = connect_engine_at(&format!("unix://{}", dead.display()))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("refuses connections"), "{e}");
        let e = connect_engine_at("tcp://127.0.0.1:2375").await.unwrap_err();
        assert!(e.to_string().contains("only unix sockets"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
