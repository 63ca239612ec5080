//! `backend = "local"`: replica processes on free loopback ports.
//!
//! Each replica runs under `loadmatrix supervise` (see `supervise.rs`) as the
//! leader of its own process group: a Ctrl-C at the terminal reaches
//! loadmatrix alone, which stops load before replicas; stopping a replica
//! stops its whole group; and the group goes when loadmatrix dies, even by
//! SIGKILL. The parent-death signal follows the spawning *thread*: spawn only
//! from the thread that lives for the whole run (the dispatcher's).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use indexmap::IndexMap;

use super::BackendError;
use crate::base::process::{self, Stopped, describe_exit, die_with_parent, tail};

#[derive(Debug)]
struct Replica {
    index: usize,
    port: u16,
    child: Child,
    log: PathBuf,
    /// What it was started with: a cell that renders differently restarts it.
    argv: Vec<String>,
    env: IndexMap<String, String>,
}

#[derive(Debug)]
pub(crate) struct LocalBackend {
    replicas: Vec<Replica>,
    log_dir: PathBuf,
    /// Masked in replica output before it is written.
    secrets: Vec<String>,
}

/// A port the kernel just handed out on 127.0.0.1.
pub fn free_port() -> Result<u16, BackendError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(BackendError::Port)?;
    Ok(l.local_addr().map_err(BackendError::Port)?.port())
}

impl LocalBackend {
    pub fn new(log_dir: &Path, secrets: Vec<String>) -> Self {
        LocalBackend {
            replicas: Vec::new(),
            log_dir: log_dir.to_path_buf(),
            secrets,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Starts or stops replicas so exactly `n` run: only the difference,
    /// surplus stopped highest index first. Returns one event line per change.
    /// Forgets replicas that have exited, returning one event each, so the
    /// next scale starts replacements.
    pub(crate) fn reap(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        self.replicas.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                events.push(format!(
                    "replica {} (port {}) had exited ({}); last output:\n{}",
                    r.index,
                    r.port,
                    describe_exit(status),
                    tail(&r.log, 10)
                ));
                false
            }
            _ => true,
        });
        events
    }

    pub fn scale(
        &mut self,
        n: usize,
        argv_for: &dyn Fn(usize, u16) -> Result<Vec<String>, String>,
        env: &IndexMap<String, String>,
    ) -> Result<Vec<String>, BackendError> {
        let mut events = Vec::new();
        // Replicas whose command or environment changed with the cell are
        // started afresh on their port.
        for r in &mut self.replicas {
            let argv = argv_for(r.index, r.port).map_err(|message| BackendError::Render {
                replica: r.index,
                message,
            })?;
            if argv != r.argv || *env != r.env {
                let status = stop(&mut r.child);
                r.child = spawn(&argv, env, &r.log, &self.secrets).map_err(|error| {
                    BackendError::Spawn {
                        replica: r.index,
                        command: argv.join(" "),
                        error,
                    }
                })?;
                events.push(format!(
                    "restarted replica {} on port {} with a new command ({status}): {}",
                    r.index,
                    r.port,
                    argv.join(" ")
                ));
                r.argv = argv;
                r.env = env.clone();
            }
        }
        while self.replicas.len() > n {
            if let Some(mut r) = self.replicas.pop() {
                let status = stop(&mut r.child);
                events.push(format!(
                    "stopped replica {} (port {}, pid {}): {status}",
                    r.index,
                    r.port,
                    r.child.id()
                ));
            }
        }
        while self.replicas.len() < n {
            // A replica that died leaves a gap: reuse its index.
            let index = (0..)
                .find(|i| !self.replicas.iter().any(|r| r.index == *i))
                .unwrap_or(self.replicas.len());
            let port = free_port()?;
            let argv = argv_for(index, port).map_err(|message| BackendError::Render {
                replica: index,
                message,
            })?;
            let log = self.log_dir.join(format!("replica-{index}.log"));
            let child =
                spawn(&argv, env, &log, &self.secrets).map_err(|error| BackendError::Spawn {
                    replica: index,
                    command: argv.join(" "),
                    error,
                })?;
            events.push(format!(
                "started replica {index} on port {port} (pid {}): {}",
                child.id(),
                argv.join(" ")
            ));
            self.replicas.push(Replica {
                index,
                port,
                child,
                log,
                argv,
                env: env.clone(),
            });
            self.replicas.sort_by_key(|r| r.index);
        }
        Ok(events)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.replicas
            .iter()
            .map(|r| format!("http://127.0.0.1:{}", r.port))
            .collect()
    }

    /// (replica label, process group) of every running replica.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.replicas
            .iter()
            .map(|r| (format!("replica-{}", r.index), r.child.id()))
            .collect()
    }

    /// The first replica that has exited, with its status and last output.
    pub fn exited(&mut self) -> Option<BackendError> {
        for r in &mut self.replicas {
            if let Ok(Some(status)) = r.child.try_wait() {
                return Some(BackendError::ExitedEarly {
                    replica: r.index,
                    status: describe_exit(status),
                    tail: tail(&r.log, 20),
                });
            }
        }
        None
    }

    pub fn stop_all(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(mut r) = self.replicas.pop() {
            let status = stop(&mut r.child);
            events.push(format!("stopped replica {}: {status}", r.index));
        }
        events
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Starts `argv` under a supervisor that leads a new process group.
fn spawn(
    argv: &[String],
    env: &IndexMap<String, String>,
    log: &Path,
    secrets: &[String],
) -> std::io::Result<Child> {
    if argv.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        ));
    }
    // The log exists (and its folder is writable) before the supervisor starts.
    OpenOptions::new().create(true).append(true).open(log)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("supervise")
        .arg("--log")
        .arg(log)
        .arg("--")
        .args(argv)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    process::own_group(&mut cmd);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // JSON, so a secret may hold any character, newlines included.
        let text = serde_json::to_string(secrets).unwrap_or_else(|_| "[]".into());
        stdin.write_all(text.as_bytes())?;
    }
    Ok(child)
}

/// SIGTERM to the supervisor, which stops the replica's group within its
/// grace period; SIGKILL to the whole group if it is still there after that.
fn stop(child: &mut Child) -> String {
    let grace = super::supervise::STOP_GRACE + Duration::from_secs(1);
    match process::stop(child, grace) {
        Stopped::Already(status) => format!("had already exited ({})", describe_exit(status)),
        Stopped::Exited(status) => format!("exited ({})", describe_exit(status)),
        Stopped::Killed => format!("killed after {}s", grace.as_secs()),
    }
}
