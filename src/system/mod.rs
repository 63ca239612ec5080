//! Backends for the system under test: they scale replicas, report their
//! endpoints and sample their CPU and memory.

pub mod backend;
pub mod compose;
pub mod docker;
pub mod docker_image;
pub mod engine;
pub mod local;
pub mod proc_stats;
pub mod process;
pub mod ready;
pub mod supervise;
pub mod swarm;

pub use backend::{Backend, ScaleRequest};

/// One sample of one replica, a row of `system.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SystemSample {
    /// Seconds since the measured window began (negative during warm-up).
    pub t: f64,
    pub replica: String,
    pub cpu_pct: f64,
    pub mem_bytes: u64,
    /// Containers: bytes received and sent over all interfaces so far.
    pub net_bytes: Option<(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot start replica {replica} (`{command}`): {error}")]
    Spawn {
        replica: usize,
        command: String,
        error: std::io::Error,
    },
    #[error("replica {replica} exited ({status}); last output:\n{tail}")]
    ExitedEarly {
        replica: usize,
        status: String,
        tail: String,
    },
    #[error("cannot render the command of replica {replica}: {message}")]
    Render { replica: usize, message: String },
    #[error("no free loopback port: {0}")]
    Port(std::io::Error),
    #[error("the {backend} backend is not available in this version: {why}")]
    Unsupported { backend: &'static str, why: String },
    #[error("{0}")]
    Ready(ready::ReadyError),
    /// The Docker engine cannot be reached; the text says why and what to do.
    #[error("{0}")]
    Engine(String),
    #[error("image `{image}` is not in the local Docker engine (loadmatrix never pulls): {hint}")]
    ImageMissing { image: String, hint: String },
    #[error("{what}: {message}")]
    Docker { what: String, message: String },
    #[error("cannot build image `{tag}`: {message}")]
    Build { tag: String, message: String },
    #[error("`{command}` failed: {output}")]
    Compose { command: String, output: String },
}
