//! `backend = "compose"`: the plan's Compose file scales one service with
//! `up --scale`; its containers are then found by Compose's labels and
//! watched through the Engine API like the docker backend's.

use std::path::PathBuf;
use std::time::Duration;

use bollard::models::ContainerSummary;

use super::BackendError;
use super::docker::summary_name;
use super::engine::{Fleet, Replica, connect_engine, containers_with};
use crate::plan::Compose;

const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const NUMBER_LABEL: &str = "com.docker.compose.container-number";
/// Containers of the project with this label get the signal it names (e.g.
/// `HUP`) after every scale: a load balancer re-reads its upstreams.
pub(crate) const RELOAD_LABEL: &str = "loadmatrix.reload";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct ComposeBackend {
    fleet: Fleet,
    /// `docker compose` (v2) or `docker-compose` (v1).
    cli: Vec<String>,
    file: PathBuf,
    service: String,
    /// From the plan, else read from the containers' labels once they exist.
    project: Option<String>,
    /// No container of the project existed before us: `down` at the end.
    started_project: bool,
    /// Running containers of the service before the first scale.
    original: usize,
    scaled: bool,
}

impl ComposeBackend {
    pub async fn connect(spec: &Compose) -> Result<Self, BackendError> {
        let cli = detect().await?;
        if !spec.file.is_file() {
            return Err(BackendError::Compose {
                command: cli.join(" "),
                output: format!("the Compose file {} does not exist", spec.file.display()),
            });
        }
        let docker = connect_engine().await?;
        let mut backend = ComposeBackend {
            fleet: Fleet::new(docker),
            cli,
            file: spec.file.clone(),
            service: spec.service.clone(),
            project: spec.project.clone(),
            started_project: false,
            original: 0,
            scaled: false,
        };
        let project_ids = backend.ps(&[]).await?;
        backend.started_project = project_ids.is_empty();
        if !backend.started_project {
            backend.learn_project(&project_ids).await;
            backend.refresh().await?;
            backend.original = backend.fleet.replicas().len();
        }
        Ok(backend)
    }

    /// The CLI this backend drives, e.g. `docker-compose`.
    pub fn cli(&self) -> String {
        self.cli.join(" ")
    }

    /// `up -d --no-recreate --scale <service>=<n>`: the whole project, so a
    /// load balancer in the same file comes up too; then every container
    /// labelled `loadmatrix.reload` gets its signal. One event per line.
    pub async fn scale(&mut self, n: usize) -> Result<Vec<String>, BackendError> {
        let scale = format!("{}={n}", self.service);
        let output = self
            .compose(&["up", "-d", "--no-recreate", "--scale", &scale])
            .await?;
        self.scaled = true;
        if self.project.is_none() {
            let ids = self.ps(&[&self.service.clone()]).await?;
            self.learn_project(&ids).await;
        }
        self.refresh().await?;
        let mut events = lines(&output);
        events.extend(self.reload().await?);
        Ok(events)
    }

    /// Signals the project's containers labelled `loadmatrix.reload`.
    async fn reload(&self) -> Result<Vec<String>, BackendError> {
        let Some(project) = &self.project else {
            return Ok(Vec::new());
        };
        let labels = [
            format!("{PROJECT_LABEL}={project}"),
            RELOAD_LABEL.to_string(),
        ];
        let docker = &self.fleet.docker;
        let mut events = Vec::new();
        for c in containers_with(docker, &labels, false).await? {
            let (Some(id), Some(signal)) = (
                c.id.clone(),
                c.labels.as_ref().and_then(|l| l.get(RELOAD_LABEL)).cloned(),
            ) else {
                continue;
            };
            let name = summary_name(&c.names).unwrap_or_else(|| id.clone());
            let options = bollard::query_parameters::KillContainerOptionsBuilder::new()
                .signal(&signal)
                .build();
            match docker.kill_container(&id, Some(options)).await {
                Ok(()) => events.push(format!("sent SIG{signal} to {name} ({RELOAD_LABEL})")),
                Err(e) => events.push(format!("could not send SIG{signal} to {name}: {e}")),
            }
        }
        Ok(events)
    }

    pub fn replicas(&self) -> &[Replica] {
        self.fleet.replicas()
    }

    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// `down` if this run brought the project up, else scales the service
    /// back to what it was.
    pub async fn stop_all(&mut self) -> Vec<String> {
        self.fleet.set(Vec::new());
        if !self.scaled {
            return Vec::new();
        }
        self.scaled = false;
        let result = if self.started_project {
            self.compose(&["down"]).await
        } else {
            let scale = format!("{}={}", self.service, self.original);
            let service = self.service.clone();
            self.compose(&["up", "-d", "--no-recreate", "--scale", &scale, &service])
                .await
        };
        match result {
            Ok(output) => lines(&output),
            Err(e) => vec![e.to_string()],
        }
    }

    async fn compose(&self, args: &[&str]) -> Result<String, BackendError> {
        let mut argv: Vec<String> = self.cli.clone();
        argv.push("-f".into());
        argv.push(self.file.display().to_string());
        if let Some(p) = &self.project {
            argv.push("-p".into());
            argv.push(p.clone());
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        run(&argv).await
    }

    /// Container ids `ps -a -q [service]` lists.
    async fn ps(&self, service: &[&str]) -> Result<Vec<String>, BackendError> {
        let mut args = vec!["ps", "-a", "-q"];
        args.extend_from_slice(service);
        let out = self.compose(&args).await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_hexdigit()))
            .map(String::from)
            .collect())
    }

    /// Reads the project name Compose chose from a container's labels.
    async fn learn_project(&mut self, ids: &[String]) {
        for id in ids {
            if let Ok(c) = self.fleet.docker.inspect_container(id, None).await
                && let Some(p) = c
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|mut l| l.remove(PROJECT_LABEL))
            {
                self.project = Some(p);
                return;
            }
        }
    }

    async fn refresh(&mut self) -> Result<(), BackendError> {
        let Some(project) = &self.project else {
            self.fleet.set(Vec::new());
            return Ok(());
        };
        let labels = [
            format!("{PROJECT_LABEL}={project}"),
            format!("{SERVICE_LABEL}={}", self.service),
        ];
        let docker = self.fleet.docker.clone();
        let running = containers_with(&docker, &labels, false).await?;
        let replicas = running.iter().filter_map(replica_of).collect();
        self.fleet.set(replicas);
        Ok(())
    }
}

fn replica_of(c: &ContainerSummary) -> Option<Replica> {
    let id = c.id.clone()?;
    let number: usize = c.labels.as_ref()?.get(NUMBER_LABEL)?.parse().ok()?;
    let port = c
        .ports
        .iter()
        .flatten()
        .filter(|p| {
            matches!(p.ip.as_deref(), Some("127.0.0.1" | "0.0.0.0"))
                && p.typ.map(|t| t.to_string()) != Some("udp".into())
        })
        .filter_map(|p| Some((p.private_port, p.public_port?)))
        .min()
        .map(|(_, public)| public);
    Some(Replica {
        index: number.saturating_sub(1),
        name: summary_name(&c.names).unwrap_or_else(|| id.clone()),
        id,
        port,
    })
}

/// `docker compose` (v2) when the plugin is there, else `docker-compose`.
async fn detect() -> Result<Vec<String>, BackendError> {
    for cli in [&["docker", "compose"][..], &["docker-compose"][..]] {
        let mut argv: Vec<String> = cli.iter().map(|s| s.to_string()).collect();
        argv.push("version".into());
        if run(&argv).await.is_ok() {
            return Ok(cli.iter().map(|s| s.to_string()).collect());
        }
    }
    Err(BackendError::Unsupported {
        backend: "compose",
        why: "neither `docker compose` (v2) nor `docker-compose` (v1) is installed".into(),
    })
}

/// Runs a command to completion (bounded), returning stdout and stderr.
async fn run(argv: &[String]) -> Result<String, BackendError> {
    let command = argv.join(" ");
    let fail = |output: String| BackendError::Compose {
        command: command.clone(),
        output,
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(fail("empty command".into()));
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail(format!("no result within {COMMAND_TIMEOUT:?}"))),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(fail(format!("{}: {}", out.status, text.trim())))
    }
}

fn lines(output: &str) -> Vec<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("compose: {l}"))
        .collect()
}

impl super::engine::OnFleet for ComposeBackend {
    const KIND: crate::plan::spanned::Backend = crate::plan::spanned::Backend::Compose;

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
