//! Preflight: every `[[check]]` at once, each bounded by its timeout; a table
//! of all of them when any fails.

use std::time::{Duration, Instant};

use crate::engine::CancelToken;
use crate::plan::{Check, CheckKind};

use super::{Events, StepContext, StepError, StepOutput};

#[derive(Debug, Clone)]
pub(crate) struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub took: Duration,
}

pub async fn preflight(ctx: &StepContext, events: &mut Events) -> Result<StepOutput, StepError> {
    let checks = &ctx.plan.checks;
    let mut results = run_all(checks, &ctx.cancel).await;
    if ctx.cancelled() {
        return Err(StepError::Interrupted);
    }
    results.extend(super::until_cancelled(ctx, backend_checks(&ctx.plan)).await?);
    if results.is_empty() {
        return Ok(StepOutput::Done);
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    let mut rows = vec![vec!["check".into(), "result".into(), "detail".into()]];
    for r in &results {
        rows.push(vec![
            r.name.clone(),
            if r.ok { "ok".into() } else { "FAILED".into() },
            format!("{} ({:.0} ms)", r.detail, r.took.as_secs_f64() * 1000.0),
        ]);
        events.push(format!(
            "preflight {}: {} {}",
            r.name,
            if r.ok { "ok" } else { "FAILED" },
            r.detail
        ));
    }
    let table = crate::report::table(&rows);
    if failed > 0 {
        ctx.say(&format!(
            "preflight failed ({failed} of {}):\n{table}",
            results.len()
        ));
        return Err(StepError::failed(format!(
            "{failed} preflight check(s) failed"
        )));
    }
    ctx.say(&format!("preflight: {} checks passed", results.len()));
    Ok(StepOutput::Done)
}

/// Checks the plan implies: the Docker engine is reachable when a cell uses a
/// container backend, and every image a docker cell runs is present (no
/// registry can be assumed), so a missing image fails before any load.
async fn backend_checks(plan: &crate::plan::Plan) -> Vec<CheckResult> {
    use crate::plan::spanned::Backend;
    let containers = plan.cells.iter().any(|c| {
        matches!(
            c.system.backend,
            Backend::Docker | Backend::Compose | Backend::Swarm
        )
    });
    if !containers {
        return Vec::new();
    }
    let start = Instant::now();
    let docker = match crate::system::engine::connect_engine().await {
        Ok(d) => d,
        Err(e) => {
            return vec![CheckResult {
                name: "docker engine (backend)".into(),
                ok: false,
                detail: e.to_string(),
                took: start.elapsed(),
            }];
        }
    };
    let mut out = vec![CheckResult {
        name: "docker engine (backend)".into(),
        ok: true,
        detail: "reachable".into(),
        took: start.elapsed(),
    }];
    let mut images: Vec<&str> = plan
        .cells
        .iter()
        .filter_map(|c| c.system.docker.as_ref().map(|d| d.image.as_str()))
        .collect();
    images.sort();
    images.dedup();
    for image in images {
        let start = Instant::now();
        let (ok, detail) = match docker.inspect_image(image).await {
            Ok(_) => (true, "present".to_string()),
            Err(e) => (
                false,
                format!(
                    "missing or unreadable ({e}); build it (for the demo target: `loadmatrix demo-image --tag {image}`) or load it (`docker load`)"
                ),
            ),
        };
        out.push(CheckResult {
            name: format!("docker image {image}"),
            ok,
            detail,
            took: start.elapsed(),
        });
    }
    out
}

/// Runs every check concurrently; results in declaration order.
pub(crate) async fn run_all(checks: &[Check], cancel: &CancelToken) -> Vec<CheckResult> {
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in checks.iter().cloned().enumerate() {
        let cancel = cancel.clone();
        set.spawn(async move { (i, run_check(&c, &cancel).await) });
    }
    let mut out: Vec<Option<CheckResult>> = vec![None; checks.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = Some(r);
        }
    }
    out.into_iter().flatten().collect()
}

pub(crate) async fn run_check(check: &Check, cancel: &CancelToken) -> CheckResult {
    let start = Instant::now();
    // A command ends its own process group at the timeout; the outer bound
    // (a little later) is for the other kinds.
    let bound = check.timeout + Duration::from_millis(200);
    let result = tokio::time::timeout(bound, check_kind(&check.kind, check.timeout, cancel)).await;
    let (ok, detail) = match result {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(detail)) => (false, detail),
        Err(_) => (false, format!("timed out after {:?}", check.timeout)),
    };
    CheckResult {
        name: check.name.clone(),
        ok,
        detail,
        took: start.elapsed(),
    }
}

async fn check_kind(
    kind: &CheckKind,
    timeout: Duration,
    cancel: &CancelToken,
) -> Result<String, String> {
    match kind {
        CheckKind::Http {
            url,
            status,
            method,
            tls,
        } => {
            let client = crate::tls::TlsSettings::http_client(tls.as_ref())
                .no_proxy()
                .build()
                .map_err(|e| e.to_string())?;
            let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
                .map_err(|e| e.to_string())?;
            match client.request(method, url).send().await {
                Ok(r) if r.status().as_u16() == *status => {
                    Ok(format!("{url} answered {}", r.status()))
                }
                Ok(r) => Err(format!("{url} answered {}, expected {status}", r.status())),
                Err(e) => Err(format!("{url}: {}", error_chain(&e))),
            }
        }
        CheckKind::Disk { path, min_free } => {
            let free =
                free_bytes(path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
            let shown = crate::base::units::format_size;
            if free >= *min_free {
                Ok(format!("{} free at {}", shown(free), path.display()))
            } else {
                Err(format!(
                    "only {} free at {}, need {}",
                    shown(free),
                    path.display(),
                    shown(*min_free)
                ))
            }
        }
        CheckKind::Command { argv, shell, exit } => {
            let cmd = crate::system::process::command(argv, *shell);
            let out = crate::system::process::run(cmd, &argv.join(" "), timeout, cancel)
                .await
                .map_err(|e| e.to_string())?;
            let code = out.status.code().unwrap_or(-1);
            if code == *exit {
                Ok(format!("`{}` exited {code}", argv.join(" ")))
            } else {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
                Err(format!(
                    "`{}` exited {code}, expected {exit}{}",
                    argv.join(" "),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ": {}",
                            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                        )
                    }
                ))
            }
        }
        CheckKind::Docker {
            service,
            min_running,
        } => {
            let running = crate::system::docker::count_running(service)
                .await
                .map_err(|e| e.to_string())?;
            if running >= *min_running {
                Ok(format!("{running} container(s) of `{service}` running"))
            } else {
                Err(format!(
                    "{running} container(s) of `{service}` running, need {min_running}"
                ))
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and stat a valid out pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}
