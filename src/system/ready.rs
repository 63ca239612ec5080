//! Readiness: poll until the system answers, bounded by a timeout; never a
//! fixed sleep.

use std::time::{Duration, Instant};

use crate::plan::{Ready, ReadyTarget};

/// Why the system did not become ready; its text is what the user reads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadyError {
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
    /// The system failed while it was awaited (a replica exited or died).
    #[error("{0}")]
    Failed(String),
    /// A certificate the probe does not trust: waiting will not change it.
    #[error("tls: {url}: {reason}")]
    Certificate { url: String, reason: String },
    #[error("not ready after {timeout:?}: {pending} of the endpoints still failing (last: {last})")]
    TimedOut {
        timeout: Duration,
        pending: usize,
        last: String,
    },
    /// Docker healthchecks that did not report healthy in time.
    #[error("not healthy after {timeout:?}: {}", .pending.join(", "))]
    Unhealthy {
        timeout: Duration,
        pending: Vec<String>,
    },
    #[error(
        "{unprobed} of {replicas} replicas publish no port on 127.0.0.1, so readiness cannot be probed \
         (set the container port in the plan)"
    )]
    NoPort { unprobed: usize, replicas: usize },
}

/// Waits until `ready` holds for `endpoints`. `failed` is asked between polls
/// whether the system already failed (a replica exited), to stop early.
pub async fn wait_ready(
    ready: &Ready,
    endpoints: &[String],
    failed: &mut dyn FnMut() -> Option<String>,
) -> Result<Duration, ReadyError> {
    let start = Instant::now();
    let client = crate::tls::TlsSettings::http_client(ready.tls.as_ref())
        .timeout(
            ready
                .interval
                .max(Duration::from_millis(500))
                .min(Duration::from_secs(5)),
        )
        .no_proxy()
        .build()
        .map_err(|e| ReadyError::Client(e.to_string()))?;
    let targets: Vec<String> = match &ready.target {
        ReadyTarget::Nothing => return Ok(Duration::ZERO),
        ReadyTarget::Url(u) => vec![u.clone()],
        ReadyTarget::Path(p) => endpoints.iter().map(|e| format!("{e}{p}")).collect(),
        ReadyTarget::Tcp => endpoints.to_vec(),
    };
    let mut pending: Vec<String> = targets;
    let mut last_error = String::new();
    loop {
        if let Some(reason) = failed() {
            return Err(ReadyError::Failed(reason));
        }
        let mut still = Vec::new();
        for t in pending {
            let result = match ready.target {
                ReadyTarget::Tcp => tcp_ready(&t).await,
                _ => http_ready(&client, &t).await,
            };
            match result {
                // A certificate that is not trusted now will not be on the
                // next poll: no point waiting out the timeout.
                Err(Failure::Tls { url, reason }) => {
                    return Err(ReadyError::Certificate { url, reason });
                }
                Err(Failure::Other(e)) => {
                    last_error = e;
                    still.push(t);
                }
                Ok(()) => {}
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= ready.timeout {
            return Err(ReadyError::TimedOut {
                timeout: ready.timeout,
                pending: pending.len(),
                last: last_error,
            });
        }
        tokio::time::sleep(ready.interval).await;
    }
}

enum Failure {
    /// The TLS handshake failed on a certificate: a configuration problem.
    Tls {
        url: String,
        reason: String,
    },
    Other(String),
}

async fn http_ready(client: &reqwest::Client, url: &str) -> Result<(), Failure> {
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(Failure::Other(format!("{url} answered {}", r.status()))),
        Err(e) => {
            let mut text = e.to_string();
            let mut cur = std::error::Error::source(&e);
            while let Some(inner) = cur {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                cur = inner.source();
            }
            match crate::tls::chain_reason(&e).or_else(|| crate::tls::text_reason(&text)) {
                Some(reason) if is_certificate_problem(&reason) => Err(Failure::Tls {
                    url: url.to_string(),
                    reason,
                }),
                Some(reason) => Err(Failure::Other(format!("{url}: tls: {reason}"))),
                None => Err(Failure::Other(format!("{url}: {text}"))),
            }
        }
    }
}

fn is_certificate_problem(reason: &str) -> bool {
    reason.contains("certificate") || reason.starts_with("name mismatch")
}

async fn tcp_ready(base: &str) -> Result<(), Failure> {
    let hostport = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    tokio::net::TcpStream::connect(&hostport)
        .await
        .map(|_| ())
        .map_err(|e| Failure::Other(format!("{hostport}: {e}")))
}
