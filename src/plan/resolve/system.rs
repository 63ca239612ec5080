//! `[system]`: the backend, its replicas and how to tell they are ready.

use std::time::Duration;

use indexmap::IndexMap;
use minijinja::Value;

use super::resolver::{Resolver, check_url};
use crate::plan::model::*;
use crate::plan::raw::RawPlan;
use crate::plan::spanned::{Backend, Count, Number, Scalar, Size};

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Option<System> {
    let s = &raw.system;
    // Each part is read even when an earlier one failed, so one bad value
    // hides no error of the others.
    let backend = r.typed(&s.backend, "system.backend", ctx);
    let replicas = r.typed(&s.replicas, "system.replicas", ctx).map(|c| c.0);
    let section = r.key_span(raw, "system");
    let mut ok = backend.is_some() && replicas.is_some();
    let backend = backend.unwrap_or(Backend::None);
    let replicas = replicas.unwrap_or(1);

    let command = match &s.command {
        Some(cmd) if cmd.is_empty() => {
            r.error(section.clone(), "`system.command` is empty".into(), Some("give the argv of one replica, e.g. [\"loadmatrix\", \"demo-target\", \"--port\", \"{{ port }}\"]".into()));
            None
        }
        Some(cmd) => {
            // Rendered per replica later; here with placeholders so typos fail now.
            let probe = minijinja::context! { port => 0, replica => 0, ..ctx.clone() };
            ok &= r.texts(cmd, "system.command", &probe).is_some();
            Some(
                cmd.iter()
                    .map(|t| match &t.raw {
                        Scalar::Str(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            )
        }
        None => None,
    };
    let command = command.unwrap_or_else(|| {
        if backend == Backend::Local {
            [
                "loadmatrix",
                "demo-target",
                "--port",
                "{{ port }}",
                "--replica",
                "{{ replica }}",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        } else {
            Vec::new()
        }
    });
    let mut env = IndexMap::new();
    for (k, v) in &s.env {
        match r.text(v, &format!("system.env.{k}"), ctx) {
            Some(v) => {
                env.insert(k.clone(), v);
            }
            None => ok = false,
        }
    }
    let compose = match &s.compose {
        Some(c) => (|| {
            let file = r.text(&c.file, "system.compose.file", ctx)?;
            let path = r.dir.join(&file);
            if !path.exists() {
                r.error(
                    c.file.span.clone(),
                    format!("compose file `{}` does not exist", path.display()),
                    Some("paths in a plan are relative to the plan's folder".into()),
                );
            }
            Some(Compose {
                file: path,
                service: r.text(&c.service, "system.compose.service", ctx)?,
                project: r.opt_text(&c.project, "system.compose.project", ctx)?,
            })
        })(),
        None => None,
    };
    ok &= s.compose.is_none() || compose.is_some();
    let docker = match &s.docker {
        Some(d) => (|| {
            let port = r.opt_typed(&d.port, "system.docker.port", ctx)?;
            if let (Some(Count(p)), Some(t)) = (port, &d.port)
                && (p == 0 || p > 65535)
            {
                r.error(
                    t.span.clone(),
                    format!("`system.docker.port` {p} is not a TCP port"),
                    None,
                );
            }
            let mut denv = IndexMap::new();
            for (k, v) in &d.env {
                denv.insert(
                    k.clone(),
                    r.text(v, &format!("system.docker.env.{k}"), ctx)?,
                );
            }
            Some(Docker {
                image: r.text(&d.image, "system.docker.image", ctx)?,
                service: r
                    .opt_text(&d.service, "system.docker.service", ctx)?
                    .unwrap_or_else(|| raw.name.value.clone()),
                command: match &d.command {
                    Some(c) => Some(r.texts(c, "system.docker.command", ctx)?),
                    None => None,
                },
                env: denv,
                port: port.map(|p| p.0.min(65535) as u16),
                cpus: r
                    .opt_typed(&d.cpus, "system.docker.cpus", ctx)?
                    .map(|n: Number| n.0),
                memory: r
                    .opt_typed(&d.memory, "system.docker.memory", ctx)?
                    .map(|s: Size| s.0),
                network: r.opt_text(&d.network, "system.docker.network", ctx)?,
                keep: r
                    .opt_typed(&d.keep, "system.docker.keep", ctx)?
                    .unwrap_or(false),
            })
        })(),
        None => None,
    };
    ok &= s.docker.is_none() || docker.is_some();
    let swarm_service = match &s.swarm {
        Some(sw) => {
            let service = r.text(&sw.service, "system.swarm.service", ctx);
            ok &= service.is_some();
            service
        }
        None => None,
    };
    let needs = |what: &str| format!("backend \"{}\" needs [system.{what}]", backend.as_str());
    match backend {
        Backend::Compose if s.compose.is_none() => {
            r.error(
                s.backend.span.clone(),
                needs("compose"),
                Some(
                    "add `compose = { file = \"docker-compose.yml\", service = \"inference\" }`"
                        .into(),
                ),
            );
            ok = false;
        }
        Backend::Docker if s.docker.is_none() => {
            r.error(
                s.backend.span.clone(),
                needs("docker"),
                Some("add `docker = { image = \"loadmatrix-demo\", port = 8080 }`".into()),
            );
            ok = false;
        }
        Backend::Swarm if s.swarm.is_none() => {
            r.error(
                s.backend.span.clone(),
                needs("swarm"),
                Some("add `swarm = { service = \"inference\" }`".into()),
            );
            ok = false;
        }
        Backend::Local | Backend::Docker if replicas == 0 => {
            r.error(
                s.replicas.span.clone(),
                "`system.replicas` must be at least 1 to send load".into(),
                None,
            );
            ok = false;
        }
        _ => {}
    }
    let ready = match &s.ready {
        Some(rd) => (|| {
            let timeout = match &rd.timeout {
                Some(t) => r.positive_duration(t, "system.ready.timeout", ctx),
                None => Some(Duration::from_secs(60)),
            };
            let interval = match &rd.interval {
                Some(t) => r.positive_duration(t, "system.ready.interval", ctx),
                None => Some(Duration::from_millis(100)),
            };
            let target = match (&rd.url, &rd.path) {
                (Some(u), None) => {
                    let url = r.text(u, "system.ready.url", ctx)?;
                    check_url(r, &url, &u.span, "system.ready.url");
                    ReadyTarget::Url(url)
                }
                (None, Some(p)) => ReadyTarget::Path(r.text(p, "system.ready.path", ctx)?),
                (Some(u), Some(_)) => {
                    r.error(u.span.clone(), "`ready` takes `url` or `path`, not both".into(), Some("`url` polls one endpoint (e.g. the load balancer); `path` polls every replica".into()));
                    return None;
                }
                (None, None) => {
                    r.error(section.clone(), "`ready` needs `url` or `path`".into(), Some("e.g. ready = { url = \"http://127.0.0.1:8080/health\", timeout = \"60s\" }".into()));
                    return None;
                }
            };
            Some(Ready {
                target,
                timeout: timeout?,
                interval: interval?,
                tls: None,
            })
        })(),
        None => Some(Ready {
            target: match backend {
                Backend::Local | Backend::Docker => ReadyTarget::Tcp,
                _ => ReadyTarget::Nothing,
            },
            timeout: Duration::from_secs(60),
            interval: Duration::from_millis(100),
            tls: None,
        }),
    };
    let ready = ready.filter(|_| ok)?;
    Some(System {
        backend,
        replicas,
        command,
        env,
        compose,
        docker,
        swarm_service,
        ready,
    })
}
