//! `[[check]]`: preflight checks, rendered once before any cell.

use std::path::PathBuf;
use std::time::Duration;

use minijinja::Value;

use super::resolver::{Resolver, check_url, status_code};
use crate::plan::model::*;
use crate::plan::raw::RawPlan;
use crate::plan::spanned::{HttpMethod, Size};

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Vec<Check> {
    let mut out = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, c) in raw.check.iter().enumerate() {
        let what = format!("check[{i}]");
        let Some(name) = r.text(&c.name, &format!("{what}.name"), ctx) else {
            continue;
        };
        if names.contains(&name) {
            r.error(
                c.name.span.clone(),
                format!("two checks are both named \"{name}\""),
                Some("check names label the preflight table; make them unique".into()),
            );
        }
        names.push(name.clone());
        let timeout = match &c.timeout {
            Some(t) => r.positive_duration(t, &format!("{what}.timeout"), ctx),
            None => Some(Duration::from_secs(10)),
        };
        let kinds = [
            c.http.is_some(),
            c.disk.is_some(),
            c.docker.is_some(),
            c.command.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if kinds != 1 {
            r.error(
                c.name.span.clone(),
                format!("check \"{name}\" must have exactly one of `http`, `disk`, `docker`, `command` (it has {kinds})"),
                Some("e.g. http = { url = \"http://127.0.0.1:8080/health\", status = 200 }".into()),
            );
            continue;
        }
        let kind = if let Some(h) = &c.http {
            (|| {
                let url = r.text(&h.url, &format!("{what}.http.url"), ctx)?;
                check_url(r, &url, &h.url.span, &format!("{what}.http.url"));
                let status = match &h.status {
                    Some(s) => status_code(r, s, &format!("{what}.http.status"), ctx)?,
                    None => 200,
                };
                let method = match &h.method {
                    Some(m) => r.typed(m, &format!("{what}.http.method"), ctx)?,
                    None => HttpMethod::Get,
                };
                Some(CheckKind::Http {
                    url,
                    status,
                    method,
                    tls: None,
                })
            })()
        } else if let Some(d) = &c.disk {
            (|| {
                let path = r.text(&d.path, &format!("{what}.disk.path"), ctx)?;
                let Size(min_free) = r.typed(&d.min_free, &format!("{what}.disk.min_free"), ctx)?;
                Some(CheckKind::Disk {
                    path: PathBuf::from(path),
                    min_free,
                })
            })()
        } else if let Some(d) = &c.docker {
            (|| {
                Some(CheckKind::Docker {
                    service: r.text(&d.service, &format!("{what}.docker.service"), ctx)?,
                    min_running: match &d.min_running {
                        Some(m) => r.typed(m, &format!("{what}.docker.min_running"), ctx)?.0,
                        None => 1,
                    },
                })
            })()
        } else if let Some(cmd) = &c.command {
            (|| {
                if cmd.run.is_empty() {
                    r.error(
                        c.name.span.clone(),
                        format!("check \"{name}\" has an empty `command.run`"),
                        Some(
                            "give an argv like [\"curl\", \"-sf\", \"http://127.0.0.1:8080\"]"
                                .into(),
                        ),
                    );
                    return None;
                }
                let argv = r.texts(&cmd.run, &format!("{what}.command.run"), ctx)?;
                let exit = match &cmd.exit {
                    Some(e) => r.typed(e, &format!("{what}.command.exit"), ctx)?.0.min(255) as i32,
                    None => 0,
                };
                Some(CheckKind::Command {
                    argv,
                    shell: cmd.shell,
                    exit,
                })
            })()
        } else {
            None
        };
        if let (Some(kind), Some(timeout)) = (kind, timeout) {
            out.push(Check {
                name,
                kind,
                timeout,
            });
        }
    }
    out
}
