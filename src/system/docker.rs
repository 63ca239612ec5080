//! `backend = "docker"`: one container per replica, labelled with the plan's
//! service and the replica index, so that scaling only creates or removes the
//! difference and a later run finds containers an earlier one kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, PortBinding};
use bollard::query_parameters::CreateContainerOptionsBuilder;

use super::BackendError;
use super::engine::{
    Fleet, Replica, api, connect_engine, containers_with, force_remove, is_not_found,
    stop_and_remove,
};
use crate::plan::Docker as DockerSpec;

pub const SERVICE_LABEL: &str = "loadmatrix.service";
pub const REPLICA_LABEL: &str = "loadmatrix.replica";
const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";

#[derive(Debug)]
pub struct DockerBackend {
    spec: DockerSpec,
    /// The container port published on 127.0.0.1 (from the plan, else the
    /// image's only exposed TCP port).
    port: Option<u16>,
    fleet: Fleet,
}

impl DockerBackend {
    /// Connects to the engine and checks the plan's image is there.
    pub async fn connect(spec: &DockerSpec) -> Result<Self, BackendError> {
        check_limits(spec)?;
        let docker = connect_engine().await?;
        let image = match docker.inspect_image(&spec.image).await {
            Ok(image) => image,
            Err(e) if is_not_found(&e) => {
                return Err(BackendError::ImageMissing {
                    image: spec.image.clone(),
                    hint: format!(
                        "build it (for the demo target: `loadmatrix demo-image --tag {}`) \
                         or load it (`docker load`)",
                        spec.image
                    ),
                });
            }
            Err(e) => return Err(api(format!("cannot inspect image {}", spec.image))(e)),
        };
        let exposed = image
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default();
        let port = spec.port.or_else(|| only_tcp_port(&exposed));
        Ok(DockerBackend {
            spec: spec.clone(),
            port,
            fleet: Fleet::new(docker),
        })
    }

    /// Reconciles to exactly `n` running containers labelled with the
    /// service: keeps running ones with the plan's image, creates the missing
    /// indexes and removes the rest, highest index first. One event per change.
    pub async fn scale(&mut self, n: usize) -> Result<Vec<String>, BackendError> {
        let docker = self.fleet.docker.clone();
        let existing = containers_with(&docker, &[self.service_label()], true).await?;
        let mut kept: BTreeMap<usize, String> = BTreeMap::new();
        let mut surplus: Vec<(Option<usize>, String, String)> = Vec::new();
        for c in existing {
            let Some(id) = c.id.clone() else { continue };
            let name = summary_name(&c.names).unwrap_or_else(|| id.clone());
            let index = c
                .labels
                .as_ref()
                .and_then(|l| l.get(REPLICA_LABEL))
                .and_then(|v| v.parse::<usize>().ok());
            let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
            let same_image = c.image.as_deref() == Some(self.spec.image.as_str());
            match index {
                Some(i) if i < n && running && same_image && !kept.contains_key(&i) => {
                    kept.insert(i, id);
                }
                _ => surplus.push((index, id, name)),
            }
        }
        surplus.sort_by_key(|s| std::cmp::Reverse(s.0));
        let mut events = Vec::new();
        for (index, id, name) in surplus {
            stop_and_remove(&docker, &id).await?;
            let which =
                index.map_or_else(|| "a stray container".into(), |i| format!("replica {i}"));
            events.push(format!("stopped and removed {which} (container {name})"));
        }
        for i in 0..n {
            if !kept.contains_key(&i) {
                events.push(self.create(i).await?);
            }
        }
        self.refresh().await?;
        Ok(events)
    }

    /// The replica containers, by index.
    pub fn replicas(&self) -> &[Replica] {
        self.fleet.replicas()
    }

    /// Stops and removes every container of the service, unless the plan
    /// keeps them.
    pub async fn stop_all(&mut self) -> Vec<String> {
        let docker = self.fleet.docker.clone();
        let replicas = self.fleet.replicas().to_vec();
        self.fleet.set(Vec::new());
        if self.spec.keep {
            return vec![format!(
                "kept {} container(s) of service {} (keep = true)",
                replicas.len(),
                self.spec.service
            )];
        }
        let mut events = Vec::new();
        let mut all = match containers_with(&docker, &[self.service_label()], true).await {
            Ok(list) => list
                .into_iter()
                .filter_map(|c| {
                    let index = c
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(REPLICA_LABEL))
                        .and_then(|v| v.parse::<usize>().ok());
                    Some((index, c.id?, summary_name(&c.names).unwrap_or_default()))
                })
                .collect(),
            Err(e) => {
                events.push(format!("{e}; removing the containers this run knows of"));
                replicas
                    .into_iter()
                    .map(|r| (Some(r.index), r.id, r.name))
                    .collect::<Vec<_>>()
            }
        };
        all.sort_by_key(|c| std::cmp::Reverse(c.0));
        for (index, id, name) in all {
            let which =
                index.map_or_else(|| "a stray container".into(), |i| format!("replica {i}"));
            match stop_and_remove(&docker, &id).await {
                Ok(()) => events.push(format!("stopped and removed {which} (container {name})")),
                Err(e) => events.push(format!("cannot remove {which} (container {name}): {e}")),
            }
        }
        events
    }

    fn service_label(&self) -> String {
        format!("{SERVICE_LABEL}={}", self.spec.service)
    }

    async fn create(&self, index: usize) -> Result<String, BackendError> {
        let docker = &self.fleet.docker;
        let name = container_name(&self.spec.service, index);
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = docker
            .create_container(Some(options), self.create_body(index))
            .await
            .map_err(api(format!("cannot create container {name}")))?;
        if let Err(e) = docker.start_container(&created.id, None).await {
            let _ = force_remove(docker, &created.id).await;
            return Err(api(format!("cannot start container {name}"))(e));
        }
        let at = match (self.port, self.host_network()) {
            (Some(p), true) => format!(" on the host network, port {p}"),
            (Some(p), false) => match self.host_port(&created.id).await {
                Some(host) => format!(", port {p} published on 127.0.0.1:{host}"),
                None => format!(", port {p} not published"),
            },
            (None, _) => String::new(),
        };
        Ok(format!(
            "started replica {index} (container {name}{at}): {}{}",
            self.spec.image,
            self.spec
                .command
                .as_ref()
                .map(|c| format!(" {}", c.join(" ")))
                .unwrap_or_default()
        ))
    }

    fn host_network(&self) -> bool {
        self.spec.network.as_deref() == Some("host")
    }

    fn create_body(&self, index: usize) -> ContainerCreateBody {
        let spec = &self.spec;
        let labels = HashMap::from([
            (SERVICE_LABEL.to_string(), spec.service.clone()),
            (REPLICA_LABEL.to_string(), index.to_string()),
        ]);
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("LOADMATRIX_REPLICA={index}"));
        let port_key = self.port.map(|p| format!("{p}/tcp"));
        let port_bindings = match (&port_key, self.host_network()) {
            (Some(key), false) => Some(HashMap::from([(
                key.clone(),
                // An empty host port: the engine picks a free one.
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            _ => None,
        };
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: port_key.map(|k| vec![k]),
            host_config: Some(HostConfig {
                port_bindings,
                nano_cpus: spec.cpus.map(|c| (c * 1e9).round() as i64),
                memory: spec.memory.map(|m| m as i64),
                network_mode: spec.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn host_port(&self, id: &str) -> Option<u16> {
        let key = format!("{}/tcp", self.port?);
        let c = self.fleet.docker.inspect_container(id, None).await.ok()?;
        let ports = c.network_settings?.ports?;
        ports
            .get(&key)?
            .as_ref()?
            .iter()
            .filter(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
            .find_map(|b| b.host_port.as_deref()?.parse().ok())
    }

    /// Re-reads the running replicas from the engine.
    async fn refresh(&mut self) -> Result<(), BackendError> {
        let docker = self.fleet.docker.clone();
        let running = containers_with(&docker, &[self.service_label()], false).await?;
        let mut replicas = Vec::new();
        for c in running {
            let Some(id) = c.id.clone() else { continue };
            let Some(index) = c
                .labels
                .as_ref()
                .and_then(|l| l.get(REPLICA_LABEL))
                .and_then(|v| v.parse::<usize>().ok())
            else {
                continue;
            };
            let port = match (self.port, self.host_network()) {
                (Some(p), true) => Some(p),
                (Some(p), false) => c.ports.iter().flatten().find_map(|ps| {
                    (ps.private_port == p && ps.ip.as_deref() == Some("127.0.0.1"))
                        .then_some(ps.public_port)
                        .flatten()
                }),
                (None, _) => None,
            };
            replicas.push(Replica {
                index,
                name: summary_name(&c.names).unwrap_or_else(|| id.clone()),
                id,
                port,
            });
        }
        self.fleet.set(replicas);
        Ok(())
    }
}

impl Drop for DockerBackend {
    /// Containers outlive the process, so an early return or a panic would
    /// leave them running: remove them from a helper thread (drop cannot
    /// await).
    fn drop(&mut self) {
        if self.spec.keep || self.fleet.replicas().is_empty() {
            return;
        }
        let ids: Vec<String> = self.fleet.replicas().iter().map(|r| r.id.clone()).collect();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(docker) = connect_engine().await else {
                    return;
                };
                for id in ids {
                    let _ = force_remove(&docker, &id).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Running containers of `service`: ours (`loadmatrix.service`), Compose's
/// (`com.docker.compose.service`) or a swarm service's tasks.
pub async fn count_running(service: &str) -> Result<u64, BackendError> {
    let docker = connect_engine().await?;
    count_running_with(&docker, service).await
}

pub(crate) async fn count_running_with(
    docker: &Docker,
    service: &str,
) -> Result<u64, BackendError> {
    let mut ids = HashSet::new();
    for key in [SERVICE_LABEL, COMPOSE_SERVICE_LABEL, SWARM_SERVICE_LABEL] {
        let list = containers_with(docker, &[format!("{key}={service}")], false).await?;
        ids.extend(list.into_iter().filter_map(|c| c.id));
    }
    Ok(ids.len() as u64)
}

/// `loadmatrix-<service>-<index>`, with characters Docker refuses in names
/// replaced.
pub fn container_name(service: &str, index: usize) -> String {
    let clean: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("loadmatrix-{clean}-{index}")
}

pub(crate) fn summary_name(names: &Option<Vec<String>>) -> Option<String> {
    names
        .as_ref()?
        .first()
        .map(|n| n.trim_start_matches('/').to_string())
}

fn only_tcp_port(exposed: &[String]) -> Option<u16> {
    let tcp: Vec<u16> = exposed
        .iter()
        .filter_map(|p| match p.split_once('/') {
            Some((port, "tcp")) => port.parse().ok(),
            None => p.parse().ok(),
            _ => None,
        })
        .collect();
    match tcp.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

fn check_limits(spec: &DockerSpec) -> Result<(), BackendError> {
    let bad = |why: String| BackendError::Docker {
        what: format!("service {}", spec.service),
        message: why,
    };
    if let Some(c) = spec.cpus
        && !(c.is_finite() && c > 0.0 && c <= 1e6)
    {
        return Err(bad(format!(
            "cpus must be a positive number of CPUs, not {c}"
        )));
    }
    if let Some(m) = spec.memory
        && i64::try_from(m).is_err()
    {
        return Err(bad(format!("memory limit {m} bytes is too large")));
    }
    if spec.service.is_empty() {
        return Err(bad("the service name is empty".into()));
    }
    Ok(())
}

impl super::engine::OnFleet for DockerBackend {
    const KIND: crate::plan::spanned::Backend = crate::plan::spanned::Backend::Docker;

    fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    fn fleet_mut(&mut self) -> &mut Fleet {
        &mut self.fleet
    }

    async fn scale_to(&mut self, n: usize) -> Result<Vec<String>, BackendError> {
        self.scale(n).await
    }

    async fn stop(&mut self) -> Vec<String> {
        self.stop_all().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_docker_names() {
        assert_eq!(container_name("api", 2), "loadmatrix-api-2");
        assert_eq!(container_name("my svc/ü", 0), "loadmatrix-my-svc---0");
    }

    #[test]
    fn exposed_port() {
        assert_eq!(only_tcp_port(&["8080/tcp".into()]), Some(8080));
        assert_eq!(only_tcp_port(&["53/udp".into()]), None);
        assert_eq!(only_tcp_port(&["80/tcp".into(), "443/tcp".into()]), None);
        assert_eq!(only_tcp_port(&[]), None);
    }
}
