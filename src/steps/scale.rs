//! scale and ready: bring the system under test to the cell's replica count
//! and wait until it answers.

use crate::plan::spanned::Backend as BackendKind;
use crate::run::state::{Backend, RunState};
use crate::steps::StepError;
use crate::system::compose::ComposeBackend;
use crate::system::docker::DockerBackend;
use crate::system::local::LocalBackend;
use crate::system::ready::wait_ready;
use crate::system::swarm::SwarmBackend;

pub async fn scale(state: &RunState, c: usize) -> Result<(), StepError> {
    let cell = &state.plan.cells[c];
    let sys = &cell.system;
    match sys.backend {
        BackendKind::None => Ok(()),
        BackendKind::Local => {
            let mut backend = state.backend.lock().await;
            if !matches!(*backend, Backend::Local(_)) {
                let logs = state.dir.root.join("logs");
                std::fs::create_dir_all(&logs)?;
                *backend = Backend::Local(LocalBackend::new(&logs));
            }
            let Backend::Local(local) = &mut *backend else {
                return Err(StepError::new("local backend missing"));
            };
            let plan = state.plan.clone();
            let argv_for = move |replica: usize, port: u16| -> Result<Vec<String>, String> {
                let ctx = crate::run::cell_context(&plan, c, Some((replica, port)));
                sys.command
                    .iter()
                    .map(|arg| plan.templates.render(arg, &ctx).map_err(|e| e.to_string()))
                    .collect()
            };
            for e in local.reap() {
                state.cell_event(c, e).await;
            }
            let before = local.len();
            let events = local.scale(sys.replicas as usize, &argv_for, &sys.env)?;
            for e in events {
                state.cell_event(c, e).await;
            }
            state
                .cell_event(
                    c,
                    format!("scaled local replicas {before} -> {}", sys.replicas),
                )
                .await;
            Ok(())
        }
        BackendKind::Docker | BackendKind::Compose | BackendKind::Swarm => {
            let mut backend = state.backend.lock().await;
            let events = match (sys.backend, &mut *backend) {
                (BackendKind::Docker, Backend::Docker(d)) => d.scale(sys.replicas as usize).await?,
                (BackendKind::Compose, Backend::Compose(d)) => {
                    d.scale(sys.replicas as usize).await?
                }
                (BackendKind::Swarm, Backend::Swarm(d)) => d.scale(sys.replicas as usize).await?,
                (kind, slot) => {
                    // First cell (or the backend changed): connect, then scale.
                    let old = slot.stop_all().await;
                    for e in old {
                        state.cell_event(c, e).await;
                    }
                    *slot = match kind {
                        BackendKind::Docker => {
                            let spec = sys.docker.as_ref().ok_or_else(|| {
                                StepError::new("backend docker without [system.docker]")
                            })?;
                            Backend::Docker(DockerBackend::connect(spec).await?)
                        }
                        BackendKind::Compose => {
                            let spec = sys.compose.as_ref().ok_or_else(|| {
                                StepError::new("backend compose without [system.compose]")
                            })?;
                            Backend::Compose(ComposeBackend::connect(spec).await?)
                        }
                        _ => {
                            let service = sys.swarm_service.as_deref().ok_or_else(|| {
                                StepError::new("backend swarm without [system.swarm]")
                            })?;
                            Backend::Swarm(SwarmBackend::connect(service).await?)
                        }
                    };
                    match slot {
                        Backend::Docker(d) => d.scale(sys.replicas as usize).await?,
                        Backend::Compose(d) => d.scale(sys.replicas as usize).await?,
                        Backend::Swarm(d) => d.scale(sys.replicas as usize).await?,
                        _ => Vec::new(),
                    }
                }
            };
            drop(backend);
            for e in events {
                state.cell_event(c, e).await;
            }
            state
                .cell_event(
                    c,
                    format!(
                        "scaled {} to {} replicas",
                        sys.backend.as_str(),
                        sys.replicas
                    ),
                )
                .await;
            Ok(())
        }
    }
}

pub async fn ready(state: &RunState, c: usize) -> Result<(), StepError> {
    let cell = &state.plan.cells[c];
    let ready = &cell.system.ready;
    let mut backend = state.backend.lock().await;
    let result = match &mut *backend {
        Backend::Docker(d) => d.wait_ready(ready).await,
        Backend::Compose(d) => d.wait_ready(ready).await,
        Backend::Swarm(d) => d.wait_ready(ready).await,
        Backend::Local(l) => {
            let endpoints = l.endpoints();
            let mut failed = || l.exited().map(|e| e.to_string());
            wait_ready(ready, &endpoints, &mut failed).await
        }
        Backend::None => wait_ready(ready, &[], &mut || None).await,
    };
    drop(backend);
    match result {
        Ok(took) => {
            state
                .cell_event(c, format!("ready after {:.2}s", took.as_secs_f64()))
                .await;
            Ok(())
        }
        Err(e) => Err(StepError::new(format!("system not ready: {e}"))),
    }
}
