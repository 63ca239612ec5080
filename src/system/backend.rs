//! One interface over every way of running the system under test.

use std::path::Path;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use indexmap::IndexMap;

use super::compose::ComposeBackend;
use super::docker::DockerBackend;
use super::engine::OnFleet;
use super::local::LocalBackend;
use super::swarm::SwarmBackend;
use super::{BackendError, SystemSample};
use crate::plan::spanned::Backend as BackendKind;
use crate::plan::{Ready, System};

/// Renders a local replica's command for (replica index, port).
pub(crate) type ArgvFor<'a> = &'a dyn Fn(usize, u16) -> Result<Vec<String>, String>;

/// What one cell asks of the system under test.
pub struct ScaleRequest<'a> {
    pub replicas: usize,
    /// Local replicas only: the command of each replica.
    pub argv_for: ArgvFor<'a>,
    /// Local replicas only: their environment.
    pub env: &'a IndexMap<String, String>,
}

pub trait Backend {
    /// The `[system] backend` keyword it implements.
    fn kind(&self) -> &'static str;

    /// Where load goes when the plan sets no `base_url`.
    fn endpoints(&self) -> Vec<String>;

    /// Local replicas: (label, process group) to sample from /proc.
    fn process_groups(&self) -> Vec<(String, u32)> {
        Vec::new()
    }

    /// Brings the system to `replicas`; one event line per change.
    fn scale<'a>(
        &'a mut self,
        req: ScaleRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Vec<String>, BackendError>>;

    /// Waits until the system answers; a replica dying ends the wait.
    fn wait_ready<'a>(
        &'a mut self,
        ready: &'a Ready,
    ) -> LocalBoxFuture<'a, Result<Duration, BackendError>>;

    /// Engine API samples of every replica (containers); local replicas are
    /// sampled through their process groups instead.
    fn sample(&mut self, _t: f64) -> LocalBoxFuture<'_, Vec<SystemSample>> {
        Box::pin(async { Vec::new() })
    }

    /// A replica that died since the last call.
    fn exited(&mut self) -> LocalBoxFuture<'_, Option<String>>;

    /// Stops (or restores) everything this run started.
    fn stop_all(&mut self) -> LocalBoxFuture<'_, Vec<String>>;
}

/// Connects the backend a cell's `[system]` names.
pub(crate) async fn connect(
    system: &System,
    log_dir: &Path,
    secrets: &[String],
) -> Result<Box<dyn Backend>, BackendError> {
    Ok(match system.backend {
        BackendKind::None => Box::new(NoBackend),
        BackendKind::Local => {
            std::fs::create_dir_all(log_dir).map_err(|e| BackendError::Spawn {
                replica: 0,
                command: format!("mkdir {}", log_dir.display()),
                error: e,
            })?;
            Box::new(LocalBackend::new(log_dir, secrets.to_vec()))
        }
        BackendKind::Docker => {
            let spec = system
                .docker
                .as_ref()
                .ok_or_else(|| missing("docker", "[system.docker]"))?;
            Box::new(DockerBackend::connect(spec).await?)
        }
        BackendKind::Compose => {
            let spec = system
                .compose
                .as_ref()
                .ok_or_else(|| missing("compose", "[system.compose]"))?;
            Box::new(ComposeBackend::connect(spec).await?)
        }
        BackendKind::Swarm => {
            let service = system
                .swarm_service
                .as_deref()
                .ok_or_else(|| missing("swarm", "[system.swarm]"))?;
            Box::new(SwarmBackend::connect(service).await?)
        }
    })
}

fn missing(backend: &'static str, section: &str) -> BackendError {
    BackendError::Unsupported {
        backend,
        why: format!("the plan has no {section}"),
    }
}

/// `backend = "none"`: nothing to scale; readiness probes the plan's URL.
pub(crate) struct NoBackend;

impl Backend for NoBackend {
    fn kind(&self) -> &'static str {
        BackendKind::None.as_str()
    }

    fn endpoints(&self) -> Vec<String> {
        Vec::new()
    }

    fn scale<'a>(
        &'a mut self,
        _req: ScaleRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Vec<String>, BackendError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn wait_ready<'a>(
        &'a mut self,
        ready: &'a Ready,
    ) -> LocalBoxFuture<'a, Result<Duration, BackendError>> {
        Box::pin(async move {
            super::ready::wait_ready(ready, &[], &mut || None)
                .await
                .map_err(BackendError::Ready)
        })
    }

    fn exited(&mut self) -> LocalBoxFuture<'_, Option<String>> {
        Box::pin(async { None })
    }

    fn stop_all(&mut self) -> LocalBoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

impl Backend for LocalBackend {
    fn kind(&self) -> &'static str {
        BackendKind::Local.as_str()
    }

    fn endpoints(&self) -> Vec<String> {
        LocalBackend::endpoints(self)
    }

    fn process_groups(&self) -> Vec<(String, u32)> {
        self.pids()
    }

    fn scale<'a>(
        &'a mut self,
        req: ScaleRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Vec<String>, BackendError>> {
        Box::pin(async move {
            let mut events = self.reap();
            let before = self.len();
            events.extend(LocalBackend::scale(
                self,
                req.replicas,
                req.argv_for,
                req.env,
            )?);
            events.push(format!(
                "scaled local replicas {before} -> {}",
                req.replicas
            ));
            Ok(events)
        })
    }

    fn wait_ready<'a>(
        &'a mut self,
        ready: &'a Ready,
    ) -> LocalBoxFuture<'a, Result<Duration, BackendError>> {
        Box::pin(async move {
            let endpoints = LocalBackend::endpoints(self);
            let mut failed = || LocalBackend::exited(self).map(|e| e.to_string());
            super::ready::wait_ready(ready, &endpoints, &mut failed)
                .await
                .map_err(BackendError::Ready)
        })
    }

    fn exited(&mut self) -> LocalBoxFuture<'_, Option<String>> {
        let died = LocalBackend::exited(self).map(|e| e.to_string());
        Box::pin(async move { died })
    }

    fn stop_all(&mut self) -> LocalBoxFuture<'_, Vec<String>> {
        let events = LocalBackend::stop_all(self);
        Box::pin(async move { events })
    }
}

impl<T: OnFleet> Backend for T {
    fn kind(&self) -> &'static str {
        T::KIND.as_str()
    }

    fn endpoints(&self) -> Vec<String> {
        OnFleet::endpoints(self)
    }

    fn scale<'a>(
        &'a mut self,
        req: ScaleRequest<'a>,
    ) -> LocalBoxFuture<'a, Result<Vec<String>, BackendError>> {
        Box::pin(async move {
            let mut events = self.scale_to(req.replicas).await?;
            events.push(format!(
                "scaled {} to {} replicas",
                T::KIND.as_str(),
                req.replicas
            ));
            Ok(events)
        })
    }

    fn wait_ready<'a>(
        &'a mut self,
        ready: &'a Ready,
    ) -> LocalBoxFuture<'a, Result<Duration, BackendError>> {
        Box::pin(async move {
            self.fleet()
                .wait_ready(ready)
                .await
                .map_err(BackendError::Ready)
        })
    }

    fn sample(&mut self, t: f64) -> LocalBoxFuture<'_, Vec<SystemSample>> {
        Box::pin(self.fleet_mut().sample(t))
    }

    fn exited(&mut self) -> LocalBoxFuture<'_, Option<String>> {
        Box::pin(self.fleet_mut().exited())
    }

    fn stop_all(&mut self) -> LocalBoxFuture<'_, Vec<String>> {
        Box::pin(self.stop())
    }
}
