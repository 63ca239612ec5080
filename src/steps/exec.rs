//! exec and scrape steps.

use std::fmt::Write as _;

use crate::plan::StepConfig;
use crate::system::process;

use super::{Events, StepContext, StepError, StepOutput};

pub async fn exec(
    ctx: &StepContext,
    id: &str,
    cfg: &StepConfig,
    events: &mut Events,
) -> Result<StepOutput, StepError> {
    let mut cmd = process::command(&cfg.run, cfg.shell);
    cmd.current_dir(&ctx.plan.dir);
    let shown = ctx.dir.redact(&cfg.run.join(" "));
    let out = process::run(cmd, &shown, cfg.timeout, &ctx.cancel).await?;
    let mut log = format!("exec {id}: `{shown}` exited {}", out.status);
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            let _ = write!(log, "\n  {name}: {line}");
        }
    }
    events.push(log);
    if out.status.success() {
        Ok(StepOutput::Done)
    } else {
        Err(StepError::failed(format!(
            "`{shown}` exited {}",
            out.status
        )))
    }
}

pub async fn scrape(
    ctx: &StepContext,
    id: &str,
    cfg: &StepConfig,
    cell: Option<&crate::plan::Cell>,
) -> Result<StepOutput, StepError> {
    let url = cfg.url.clone().unwrap_or_default();
    let client = crate::tls::TlsSettings::http_client(ctx.plan.tls.as_ref())
        .timeout(cfg.timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StepError::failed(format!("scrape {url}: {e}")))?;
    let fetch = async {
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| StepError::failed(format!("scrape {url}: {e}")))?;
        if !resp.status().is_success() {
            // A redirect is not followed: it could lead to another host.
            return Err(StepError::failed(format!(
                "scrape {url}: {}{}",
                resp.status(),
                if resp.status().is_redirection() {
                    " (redirects are not followed; give the final URL)"
                } else {
                    ""
                }
            )));
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| StepError::failed(format!("scrape {url}: {e}")))?
        {
            if body.len() + chunk.len() > crate::scrape::scraper::MAX_BODY {
                return Err(StepError::failed(format!(
                    "scrape {url}: body larger than {} MiB",
                    crate::scrape::scraper::MAX_BODY >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let body = super::until_cancelled(ctx, fetch).await??;
    let name = cfg.output.clone().unwrap_or_else(|| format!("{id}.txt"));
    match cell {
        Some(_) => Ok(StepOutput::CellFile { name, bytes: body }),
        None => {
            ctx.dir.write(&name, &body)?;
            Ok(StepOutput::Done)
        }
    }
}
