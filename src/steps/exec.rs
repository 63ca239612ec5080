//! exec and scrape steps.

use std::fmt::Write as _;
use std::process::Stdio;

use crate::plan::StepConfig;
use crate::run::state::RunState;
use crate::steps::StepError;

/// `argv` as given, or joined into one `sh -c` line when `shell` is set.
pub fn command(argv: &[String], shell: bool) -> tokio::process::Command {
    let mut c;
    if shell {
        c = tokio::process::Command::new("sh");
        c.arg("-c").arg(argv.join(" "));
    } else {
        c = tokio::process::Command::new(argv.first().map_or("", String::as_str));
        c.args(argv.iter().skip(1));
    }
    c
}

pub async fn exec(
    state: &RunState,
    id: &str,
    cfg: &StepConfig,
    cell: Option<usize>,
) -> Result<(), StepError> {
    let mut cmd = command(&cfg.run, cfg.shell);
    cmd.stdin(Stdio::null())
        .kill_on_drop(true)
        .current_dir(&state.plan.dir);
    let shown = state.redact(&cfg.run.join(" "));
    let out = match tokio::time::timeout(cfg.timeout, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(StepError::new(format!("cannot run `{shown}`: {e}"))),
        Err(_) => {
            return Err(StepError::new(format!(
                "`{shown}` still running after {:?}: killed",
                cfg.timeout
            )));
        }
    };
    let mut log = format!("exec {id}: `{shown}` exited {}", out.status);
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            let _ = write!(log, "\n  {name}: {line}");
        }
    }
    match cell {
        Some(c) => state.cell_event(c, log).await,
        None => state.run_event(log).await,
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(StepError::new(format!("`{shown}` exited {}", out.status)))
    }
}

pub async fn scrape(
    state: &RunState,
    id: &str,
    cfg: &StepConfig,
    cell: Option<usize>,
) -> Result<(), StepError> {
    let url = cfg.url.clone().unwrap_or_default();
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .no_proxy()
        .build()?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| StepError::new(format!("scrape {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(StepError::new(format!("scrape {url}: {}", resp.status())));
    }
    let body = resp.bytes().await?.to_vec();
    let name = cfg.output.clone().unwrap_or_else(|| format!("{id}.txt"));
    match cell {
        Some(c) => {
            state
                .cells
                .lock()
                .await
                .entry(c)
                .or_default()
                .files
                .push((name, body));
            Ok(())
        }
        None => Ok(state.dir.write(&name, &body)?),
    }
}
