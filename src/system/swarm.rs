//! `swarm_service`: an existing swarm service whose replica count the run sets
//! through the Engine API. Task containers on this node are sampled and
//! watched like the docker backend's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    LocalNodeState, Service, ServiceSpecMode, ServiceSpecModeReplicated, Task, TaskState,
};
use bollard::query_parameters::{ListTasksOptionsBuilder, UpdateServiceOptionsBuilder};

use super::BackendError;
use super::engine::{Fleet, Replica, api, connect_engine, is_not_found};

/// How long a scale may take until the running tasks match.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct SwarmBackend {
    fleet: Fleet,
    service: String,
    /// Replicas before the first scale, restored by `stop_all`.
    original: u64,
    /// Ports the service publishes; the routing mesh spreads load over tasks.
    published: Vec<u16>,
    scaled: bool,
}

impl SwarmBackend {
    /// Connects to a swarm manager and checks `service` is a replicated service.
    pub async fn connect(service: &str) -> Result<Self, BackendError> {
        let docker = connect_engine().await?;
        let info = docker
            .info()
            .await
            .map_err(api("cannot read the engine's information"))?;
        let state = info.swarm.and_then(|s| s.local_node_state);
        if state != Some(LocalNodeState::ACTIVE) {
            return Err(BackendError::Unsupported {
                backend: "swarm",
                why: "this Docker engine is not part of a swarm (see `docker swarm init`)".into(),
            });
        }
        let mut backend = SwarmBackend {
            fleet: Fleet::new(docker),
            service: service.to_string(),
            original: 0,
            published: Vec::new(),
            scaled: false,
        };
        let svc = backend.inspect().await?;
        backend.original = replicas_of(&svc).ok_or_else(|| BackendError::Docker {
            what: format!("swarm service {service}"),
            message: "is not in replicated mode, so it cannot be scaled".into(),
        })?;
        backend.published = svc
            .endpoint
            .and_then(|e| e.ports)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| u16::try_from(p.published_port?).ok())
            .collect();
        backend.refresh().await?;
        Ok(backend)
    }

    /// Sets the service's replicas and waits until exactly `n` tasks run.
    pub async fn scale(&mut self, n: usize) -> Result<Vec<String>, BackendError> {
        let before = self.set_replicas(n as u64).await?;
        self.scaled = true;
        let took = self.converge(n).await?;
        self.refresh().await?;
        Ok(vec![format!(
            "swarm service {}: {before} -> {n} replicas, {n} tasks running after {:.1}s",
            self.service,
            took.as_secs_f64()
        )])
    }

    /// Tasks of the service whose container runs.
    pub async fn running_tasks(&self) -> Result<usize, BackendError> {
        Ok(self
            .tasks()
            .await?
            .iter()
            .filter(|t| task_state(t) == Some(TaskState::RUNNING))
            .count())
    }

    /// One endpoint per published port on 127.0.0.1 (not per replica: the
    /// routing mesh balances).
    fn published_endpoints(&self) -> Vec<String> {
        self.published
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect()
    }

    /// Running task containers on this node, by slot.
    pub fn replicas(&self) -> &[Replica] {
        self.fleet.replicas()
    }

    /// Scales the service back to its replicas before the run.
    pub async fn stop_all(&mut self) -> Vec<String> {
        self.fleet.set(Vec::new());
        if !self.scaled {
            return Vec::new();
        }
        self.scaled = false;
        let n = usize::try_from(self.original).unwrap_or(usize::MAX);
        match self.scale(n).await {
            Ok(events) => events,
            Err(e) => vec![format!(
                "cannot restore swarm service {} to {} replicas: {e}",
                self.service, self.original
            )],
        }
    }

    async fn inspect(&self) -> Result<Service, BackendError> {
        match self.fleet.docker.inspect_service(&self.service, None).await {
            Ok(s) => Ok(s),
            Err(e) if is_not_found(&e) => Err(BackendError::Docker {
                what: format!("swarm service {}", self.service),
                message: "no such service".into(),
            }),
            Err(e) => Err(api(format!(
                "cannot inspect swarm service {}",
                self.service
            ))(e)),
        }
    }

    /// Returns the replicas before the update.
    async fn set_replicas(&self, n: u64) -> Result<u64, BackendError> {
        let what = || format!("cannot scale swarm service {}", self.service);
        let svc = self.inspect().await?;
        let before = replicas_of(&svc).unwrap_or(0);
        let version = svc.version.and_then(|v| v.index).unwrap_or(0);
        let version = i32::try_from(version).map_err(|_| BackendError::Docker {
            what: what(),
            message: format!("service version {version} is out of range"),
        })?;
        let mut spec = svc.spec.unwrap_or_default();
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(n).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        });
        let options = UpdateServiceOptionsBuilder::new().version(version).build();
        self.fleet
            .docker
            .update_service(&self.service, spec, options, None)
            .await
            .map_err(api(what()))?;
        Ok(before)
    }

    async fn tasks(&self) -> Result<Vec<Task>, BackendError> {
        let filters = HashMap::from([("service", vec![self.service.clone()])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        self.fleet
            .docker
            .list_tasks(Some(options))
            .await
            .map_err(api(format!("cannot list the tasks of {}", self.service)))
    }

    /// Polls until `n` tasks run and no other task is meant to.
    async fn converge(&self, n: usize) -> Result<Duration, BackendError> {
        let start = Instant::now();
        loop {
            let tasks = self.tasks().await?;
            let running = tasks
                .iter()
                .filter(|t| task_state(t) == Some(TaskState::RUNNING))
                .count();
            let desired = tasks
                .iter()
                .filter(|t| t.desired_state == Some(TaskState::RUNNING))
                .count();
            if running == n && desired == n {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= CONVERGE_TIMEOUT {
                let errors: Vec<String> = tasks
                    .iter()
                    .filter_map(|t| t.status.as_ref()?.err.clone())
                    .collect();
                return Err(BackendError::Docker {
                    what: format!("swarm service {}", self.service),
                    message: format!(
                        "{running} of {n} tasks running after {CONVERGE_TIMEOUT:?}{}",
                        if errors.is_empty() {
                            String::new()
                        } else {
                            format!("; task errors: {}", errors.join("; "))
                        }
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn refresh(&mut self) -> Result<(), BackendError> {
        let tasks = self.tasks().await?;
        let replicas = tasks
            .iter()
            .filter(|t| task_state(t) == Some(TaskState::RUNNING))
            .filter_map(|t| {
                let slot = usize::try_from(t.slot?).ok()?;
                let id = t
                    .status
                    .as_ref()?
                    .container_status
                    .as_ref()?
                    .container_id
                    .clone()?;
                let task_id = t.id.clone().unwrap_or_default();
                Some(Replica {
                    index: slot.saturating_sub(1),
                    name: format!("{}.{slot}.{task_id}", self.service),
                    id,
                    port: None,
                })
            })
            .collect();
        self.fleet.set(replicas);
        Ok(())
    }
}

fn replicas_of(svc: &Service) -> Option<u64> {
    let r = svc.spec.as_ref()?.mode.as_ref()?.replicated.as_ref()?;
    u64::try_from(r.replicas.unwrap_or(1)).ok()
}

fn task_state(t: &Task) -> Option<TaskState> {
    t.status.as_ref()?.state
}

impl super::engine::OnFleet for SwarmBackend {
    const KIND: crate::plan::spanned::Backend = crate::plan::spanned::Backend::Swarm;

    fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    fn fleet_mut(&mut self) -> &mut Fleet {
        &mut self.fleet
    }

    fn endpoints(&self) -> Vec<String> {
        self.published_endpoints()
    }

    async fn scale_to(&mut self, n: usize) -> Result<Vec<String>, BackendError> {
        self.scale(n).await
    }

    async fn stop(&mut self) -> Vec<String> {
        self.stop_all().await
    }
}
