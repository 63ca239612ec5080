//! `[load]`: the engine, the load model and the requests.

use std::time::Duration;

use minijinja::Value;

use super::resolver::{Resolver, check_url, status_code};
use crate::engine::spec::StreamMode;
use crate::plan::model::*;
use crate::plan::raw::RawPlan;
use crate::plan::spanned::{Backend, Count, Engine, HttpMethod, Scalar};
use crate::plan::suggest::{Closeness, did_you_mean};

pub(super) fn resolve(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    ctx: &Value,
    system: Option<&System>,
) -> Option<Load> {
    let l = &raw.load;
    let section = r.key_span(raw, "load");
    let engine = r.typed(&l.engine, "load.engine", ctx)?;
    let base_url = r.opt_text(&l.base_url, "load.base_url", ctx)?;
    if let (Some(url), Some(t)) = (&base_url, &l.base_url) {
        check_url(r, url, &t.span, "load.base_url");
    }
    let workers = r
        .at_least(&l.workers, "load.workers", ctx, Count(1), "at least 1")?
        .0;
    let timeout = r.positive_duration(&l.timeout, "load.timeout", ctx)?;

    let users = match &l.users {
        Some(u) => Some(r.at_least(u, "load.users", ctx, Count(1), "at least 1")?.0),
        None => None,
    };
    let rate = match &l.rate {
        Some(t) => {
            let v = r.typed(t, "load.rate", ctx)?.0;
            if v <= 0.0 {
                r.error(
                    t.span.clone(),
                    "`load.rate` must be above 0 arrivals per second".into(),
                    None,
                );
                return None;
            }
            Some(v)
        }
        None => None,
    };
    let mut stages = Vec::new();
    for (i, st) in l.stages.iter().enumerate() {
        let rate = r.typed(&st.rate, &format!("load.stages[{i}].rate"), ctx)?.0;
        let duration =
            r.positive_duration(&st.duration, &format!("load.stages[{i}].duration"), ctx)?;
        stages.push(Stage { rate, duration });
    }
    let model = match (users, rate, stages.is_empty()) {
        (Some(users), None, true) => {
            let spawn_rate = match &l.spawn_rate {
                Some(t) => {
                    let v = r.typed(t, "load.spawn_rate", ctx)?.0;
                    if v <= 0.0 {
                        r.error(
                            t.span.clone(),
                            "`load.spawn_rate` must be above 0 users per second".into(),
                            Some("leave it out to start every user at once".into()),
                        );
                        return None;
                    }
                    Some(v)
                }
                None => None,
            };
            LoadModel::Closed {
                users,
                spawn_rate,
                think_time: r.typed(&l.think_time, "load.think_time", ctx)?,
            }
        }
        (None, Some(rate), true) => LoadModel::Open {
            stages: vec![Stage {
                rate,
                duration: Duration::ZERO,
            }],
            max_in_flight: r
                .at_least(
                    &l.max_in_flight,
                    "load.max_in_flight",
                    ctx,
                    Count(1),
                    "at least 1",
                )?
                .0,
        },
        (None, None, false) => LoadModel::Open {
            stages,
            max_in_flight: r
                .at_least(
                    &l.max_in_flight,
                    "load.max_in_flight",
                    ctx,
                    Count(1),
                    "at least 1",
                )?
                .0,
        },
        (None, None, true) => {
            r.error(section, "[load] sets neither `users` nor `rate`".into(), Some("closed model: `users = 100` (concurrent virtual users); open model: `rate = 500` (arrivals per second)".into()));
            return None;
        }
        _ => {
            let span = l.rate.as_ref().map(|t| t.span.clone()).unwrap_or(section);
            r.error(
                span,
                "[load] mixes the closed model (`users`) and the open model (`rate`/`stages`)"
                    .into(),
                Some("keep `users` for a closed model or `rate`/`stages` for an open one".into()),
            );
            return None;
        }
    };
    if let LoadModel::Open { .. } = model
        && l.think_time.is_written()
    {
        r.error(
            l.think_time.span.clone(),
            "`think_time` applies to the closed model (`users`), not to `rate`".into(),
            Some("remove it: open-model arrivals follow the rate".into()),
        );
    }

    let mut requests = Vec::new();
    for (i, q) in l.request.iter().enumerate() {
        let what = format!("load.request[{i}]");
        let method = match &q.method {
            Some(m) => r.typed(m, &format!("{what}.method"), ctx)?,
            None => HttpMethod::Get,
        };
        let path = r.text(&q.path, &format!("{what}.path"), ctx)?;
        if !path.starts_with('/') {
            r.error(
                q.path.span.clone(),
                format!("`{what}.path` \"{path}\" must start with `/`"),
                Some("the base URL comes from `load.base_url` or the replicas".into()),
            );
        }
        let weight = match &q.weight {
            Some(w) => {
                r.at_least(w, &format!("{what}.weight"), ctx, Count(1), "at least 1")?
                    .0
            }
            None => 1,
        };
        let name = match &q.name {
            Some(n) => r.text(n, &format!("{what}.name"), ctx)?,
            None => format!("{} {path}", method.as_str()),
        };
        let mut headers = Vec::new();
        for (k, v) in &q.headers {
            headers.push((k.clone(), r.text(v, &format!("{what}.headers.{k}"), ctx)?));
        }
        let body = match &q.body {
            Some(b) => {
                // Render once to catch errors; the runner renders each body variant afresh.
                r.text(b, &format!("{what}.body"), ctx)?;
                match &b.raw {
                    Scalar::Str(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            }
            None => None,
        };
        let expect_status = match q.expect.as_ref().and_then(|e| e.status.as_ref()) {
            Some(t) => Some(status_code(r, t, &format!("{what}.expect.status"), ctx)?),
            None => None,
        };
        let stream = match &q.stream {
            Some(t) => {
                let text = r.text(t, &format!("{what}.stream"), ctx)?;
                let mode = StreamMode::parse(text.trim());
                if mode.is_none() {
                    let known = ["sse", "chunks"];
                    let hint = did_you_mean(
                        text.trim(),
                        known,
                        Closeness::Edits {
                            aliases: &[("event-stream", "sse"), ("chunked", "chunks")],
                        },
                    )
                    .unwrap_or_else(|| {
                        "use \"sse\" (Server-Sent Events) or \"chunks\" (body chunks)".into()
                    });
                    r.error(
                        t.span.clone(),
                        format!("`{what}.stream` must be \"sse\" or \"chunks\", not \"{text}\""),
                        Some(hint),
                    );
                } else if engine == Engine::Locust {
                    r.error(
                        t.span.clone(),
                        format!("`{what}.stream` needs the native engine: Locust times a streamed response as one request, so it cannot report time to first token or inter-token latency"),
                        Some("set `engine = \"native\"` in [load], or remove `stream`".into()),
                    );
                }
                mode
            }
            None => None,
        };
        requests.push(Request {
            name,
            method,
            path,
            weight,
            header_names: headers.iter().map(|(k, _)| k.clone()).collect(),
            headers,
            body,
            expect_status,
            stream,
        });
    }
    if let Some(names) = duplicate_names(&requests) {
        r.error(
            l.request
                .first()
                .map(|q| q.path.span.clone())
                .unwrap_or(section.clone()),
            format!("two requests are both named `{names}`"),
            Some("give each [[load.request]] its own `name`".into()),
        );
    }

    let locust = match engine {
        Engine::Locust => {
            let Some(f) = &l.locustfile else {
                r.error(
                    l.engine.span.clone(),
                    "engine \"locust\" needs `locustfile`".into(),
                    Some("add `locustfile = \"locustfile.py\"` (relative to the plan)".into()),
                );
                return None;
            };
            let file = r.text(f, "load.locustfile", ctx)?;
            let path = r.dir.join(&file);
            if !path.is_file() {
                r.error(
                    f.span.clone(),
                    format!("locustfile `{}` does not exist", path.display()),
                    Some("paths in a plan are relative to the plan's folder".into()),
                );
            }
            if users.is_none() {
                r.error(
                    l.engine.span.clone(),
                    "engine \"locust\" runs the closed model: set `users`".into(),
                    None,
                );
            }
            Some(Locust {
                locustfile: path,
                tags: r.texts(&l.tags, "load.tags", ctx)?,
                user_classes: r.texts(&l.user_classes, "load.user_classes", ctx)?,
                args: r.texts(&l.args, "load.args", ctx)?,
                workers_at: r.typed(&l.workers_at, "load.workers_at", ctx)?,
                master_bind: r
                    .opt_text(&l.master_bind, "load.master_bind", ctx)?
                    .unwrap_or_else(|| "127.0.0.1".into()),
            })
        }
        Engine::Native => {
            if l.request.is_empty() {
                r.error(
                    section.clone(),
                    "the native engine has no requests to send".into(),
                    Some("add a [[load.request]] table with at least `path = \"/\"`".into()),
                );
            }
            None
        }
    };
    if base_url.is_none()
        && let Some(sys) = system
        && !matches!(
            sys.backend,
            Backend::Local | Backend::Docker | Backend::Compose
        )
    {
        r.error(section, format!("[load] has no `base_url`, and backend \"{}\" gives no replica endpoints", sys.backend.as_str()), Some("add `base_url = \"http://127.0.0.1:8080\"` (local, docker and compose backends can leave it out: load goes to every replica)".into()));
        return None;
    }
    Some(Load {
        engine,
        base_url,
        model,
        workers,
        timeout,
        requests,
        locust,
    })
}

fn duplicate_names(requests: &[Request]) -> Option<String> {
    for (i, a) in requests.iter().enumerate() {
        if requests[..i].iter().any(|b| b.name == a.name) {
            return Some(a.name.clone());
        }
    }
    None
}
