//! `[load]`: the engine, the load model and the requests.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use minijinja::Value;

use super::resolver::{Resolver, check_url, status_code};
use crate::base::limits::{
    MAX_LOCUST_USERS, MAX_LOCUST_WORKERS, MAX_NATIVE_USERS, MAX_NATIVE_WORKERS, MAX_RATE,
};
use crate::base::request::StreamMode;
use crate::plan::model::*;
use crate::plan::raw::{RawPlan, SearchOver};
use crate::plan::spanned::{Backend, Count, Engine, HttpMethod, HttpVersion, Number, Scalar};
use crate::plan::suggest::{Closeness, did_you_mean};

pub(super) fn resolve(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    ctx: &Value,
    system: Option<&System>,
) -> Option<Load> {
    // Every field is read before any is given up on, so one bad value does
    // not hide the errors of the others.
    let l = &raw.load;
    let section = r.key_span(raw, "load");
    let engine = r.typed(&l.engine, "load.engine", ctx);
    let base_url = r.opt_text(&l.base_url, "load.base_url", ctx);
    if let (Some(Some(url)), Some(t)) = (&base_url, &l.base_url) {
        check_url(r, url, &t.span, "load.base_url");
    }
    let (max_workers, max_users) = match engine {
        Some(Engine::Locust) => (MAX_LOCUST_WORKERS, MAX_LOCUST_USERS),
        _ => (MAX_NATIVE_WORKERS, MAX_NATIVE_USERS),
    };
    let workers = r
        .at_least(&l.workers, "load.workers", ctx, Count(1), "at least 1")
        .and_then(|n| r.at_most(&l.workers, "load.workers", n, Count(max_workers as u64)))
        .map(|c| c.0);
    let timeout = r.positive_duration(&l.timeout, "load.timeout", ctx);
    let http = r.typed(&l.http, "load.http", ctx);
    let connections = match &l.connections {
        Some(c) => r
            .at_least(c, "load.connections", ctx, Count(1), "at least 1")
            .and_then(|n| r.at_most(c, "load.connections", n, Count(MAX_NATIVE_USERS)))
            .map(|n| Some(n.0)),
        None => Some(None),
    };
    if let (Some(HttpVersion::Http1), Some(c)) = (http, &l.connections) {
        r.error(
            c.span.clone(),
            "`load.connections` multiplexes HTTP/2 streams; with HTTP/1.1 each user has its own connection".into(),
            Some("set `http = \"2\"` or remove `connections`".into()),
        );
    }
    if let (Some(Engine::Locust), Some(HttpVersion::Http2)) = (engine, http) {
        r.error(
            l.http.span.clone(),
            "engine \"locust\" speaks HTTP/1.1 only".into(),
            Some("use engine = \"native\" for HTTP/2".into()),
        );
    }

    let searched = raw.search.as_ref().map(|s| s.over.value);
    for (knob, written) in [
        ("users", l.users.as_ref().map(|t| t.span.clone())),
        ("rate", l.rate.as_ref().map(|t| t.span.clone())),
    ] {
        if let (Some(over), Some(span)) = (searched, written)
            && over.as_str() == knob
        {
            r.error(
                span,
                format!("`load.{knob}` is set by `[search]`, which probes it from `from` to `to`"),
                Some(format!("remove `{knob}` from [load]")),
            );
            return None;
        }
    }
    let users = match &l.users {
        Some(u) => Some(
            r.at_least(u, "load.users", ctx, Count(1), "at least 1")
                .and_then(|n| r.at_most(u, "load.users", n, Count(max_users)))
                .map(|c| c.0),
        ),
        // The search sets it per probe.
        None if searched == Some(SearchOver::Users) => Some(Some(1)),
        None => None,
    };
    let rate = match &l.rate {
        Some(t) => Some((|| {
            let v = r.typed(t, "load.rate", ctx)?;
            if v.0 <= 0.0 {
                r.error(
                    t.span.clone(),
                    "`load.rate` must be above 0 arrivals per second".into(),
                    None,
                );
                return None;
            }
            r.at_most(t, "load.rate", v, Number(MAX_RATE)).map(|n| n.0)
        })()),
        None if searched == Some(SearchOver::Rate) => Some(Some(1.0)),
        None => None,
    };
    let mut stages = Some(Vec::new());
    for (i, st) in l.stages.iter().enumerate() {
        let what = format!("load.stages[{i}].rate");
        let rate = r
            .typed(&st.rate, &what, ctx)
            .and_then(|v| r.at_most(&st.rate, &what, v, Number(MAX_RATE)));
        let duration =
            r.positive_duration(&st.duration, &format!("load.stages[{i}].duration"), ctx);
        match (rate, duration, stages.as_mut()) {
            (Some(rate), Some(duration), Some(list)) => list.push(Stage {
                rate: rate.0,
                duration,
            }),
            _ => stages = None,
        }
    }
    let max_in_flight = |r: &mut Resolver<'_>| {
        r.at_least(
            &l.max_in_flight,
            "load.max_in_flight",
            ctx,
            Count(1),
            "at least 1",
        )
        .map(|c| c.0)
    };
    let has_stages = !l.stages.is_empty();
    let mut trace = super::data::trace(r, raw, ctx);
    if let Some(Some(t)) = trace.as_mut()
        && raw.cell.duration.is_written()
    {
        t.cut = r.positive_duration(&raw.cell.duration, "cell.duration", ctx);
    }
    let model = match (&users, &rate, has_stages) {
        _ if l.trace.is_some() => {
            if let (Some(Engine::Locust), Some(t)) = (engine, &l.trace) {
                r.error(
                    t.span.clone(),
                    "`load.trace` needs the native engine: Locust schedules its own users".into(),
                    Some("set `engine = \"native\"` in [load], or remove `trace`".into()),
                );
            }
            let rate = trace.as_ref().and_then(|t| t.as_ref()).map(|t| t.rate());
            match (rate, max_in_flight(r)) {
                (Some(rate), Some(max_in_flight)) => Some(LoadModel::Open {
                    stages: vec![Stage {
                        rate,
                        duration: Duration::ZERO,
                    }],
                    max_in_flight,
                }),
                _ => None,
            }
        }
        (Some(users), None, false) => {
            let spawn_rate = match &l.spawn_rate {
                Some(t) => r.typed(t, "load.spawn_rate", ctx).and_then(|v| {
                    if v.0 <= 0.0 {
                        r.error(
                            t.span.clone(),
                            "`load.spawn_rate` must be above 0 users per second".into(),
                            Some("leave it out to start every user at once".into()),
                        );
                        return None;
                    }
                    Some(Some(v.0))
                }),
                None => Some(None),
            };
            let think_time = r.typed(&l.think_time, "load.think_time", ctx);
            match (users, spawn_rate, think_time) {
                (Some(users), Some(spawn_rate), Some(think_time)) => Some(LoadModel::Closed {
                    users: *users,
                    spawn_rate,
                    think_time,
                }),
                _ => None,
            }
        }
        (None, Some(rate), false) => {
            let max_in_flight = max_in_flight(r);
            match (rate, max_in_flight) {
                (Some(rate), Some(max_in_flight)) => Some(LoadModel::Open {
                    stages: vec![Stage {
                        rate: *rate,
                        duration: Duration::ZERO,
                    }],
                    max_in_flight,
                }),
                _ => None,
            }
        }
        (None, None, true) => {
            let max_in_flight = max_in_flight(r);
            match (stages, max_in_flight) {
                (Some(stages), Some(max_in_flight)) => Some(LoadModel::Open {
                    stages,
                    max_in_flight,
                }),
                _ => None,
            }
        }
        (None, None, false) => {
            r.error(section.clone(), "[load] sets neither `users` nor `rate`".into(), Some("closed model: `users = 100` (concurrent virtual users); open model: `rate = 500` (arrivals per second)".into()));
            None
        }
        _ => {
            let span = l
                .rate
                .as_ref()
                .map(|t| t.span.clone())
                .unwrap_or(section.clone());
            r.error(
                span,
                "[load] mixes the closed model (`users`) and the open model (`rate`/`stages`)"
                    .into(),
                Some("keep `users` for a closed model or `rate`/`stages` for an open one".into()),
            );
            None
        }
    };
    if (rate.is_some() || has_stages) && users.is_none() && l.think_time.is_written() {
        r.error(
            l.think_time.span.clone(),
            "`think_time` applies to the closed model (`users`), not to `rate`".into(),
            Some("remove it: open-model arrivals follow the rate".into()),
        );
    }

    let trace = trace?;
    let requests = requests(r, raw, ctx, engine, trace.as_ref());

    let locust = match engine {
        Some(Engine::Locust) => locust(r, raw, ctx, users.is_some()),
        Some(Engine::Native) => {
            if l.request.is_empty() {
                r.error(
                    section.clone(),
                    "the native engine has no requests to send".into(),
                    Some("add a [[load.request]] table with at least `path = \"/\"`".into()),
                );
            }
            Some(None)
        }
        None => None,
    };
    let base_url = base_url?;
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
    if base_url.is_none()
        && engine == Some(Engine::Locust)
        && let Some(sys) = system
        && sys.replicas > 1
        && !matches!(sys.backend, Backend::None)
    {
        r.error(
            section,
            format!(
                "engine \"locust\" sends to one host, but this cell has {} replicas and no `base_url`: \
                 all load would reach one replica",
                sys.replicas
            ),
            Some(
                "put a load balancer in front of the replicas and set `load.base_url` (and `ready.url`) to it, \
                 or use engine = \"native\", which spreads load over every replica"
                    .into(),
            ),
        );
        return None;
    }
    Some(Load {
        engine: engine?,
        base_url,
        model: model?,
        workers: workers?,
        timeout: timeout?,
        requests: requests?,
        locust: locust?,
        http: http?,
        connections: connections?,
        trace,
    })
}

fn requests(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    ctx: &Value,
    engine: Option<Engine>,
    trace: Option<&crate::plan::data::Trace>,
) -> Option<Vec<Request>> {
    let mut requests = Vec::with_capacity(raw.load.request.len());
    let mut ok = true;
    let mut names: HashMap<String, usize> = HashMap::with_capacity(raw.load.request.len());
    for (i, q) in raw.load.request.iter().enumerate() {
        let what = format!("load.request[{i}]");
        let rows_of_its_own = q
            .data
            .as_ref()
            .map(|d| d.span.clone())
            .or_else(|| q.synthetic.as_ref().map(|s| s.rows.span.clone()));
        if let (Some(Engine::Locust), Some(span)) = (engine, rows_of_its_own) {
            r.error(
                span,
                format!("`{what}` has rows (`data` or `synthetic`), which need the native engine: Locust sends the requests its locustfile makes"),
                Some("set `engine = \"native\"` in [load], or read the rows in your locustfile".into()),
            );
            ok = false;
            continue;
        }
        let Some(rows) = super::data::resolve(r, q, &what, ctx, trace) else {
            ok = false;
            continue;
        };
        let ctx = rows.ctx.as_ref().unwrap_or(ctx);
        let method = match &q.method {
            Some(m) => r.typed(m, &format!("{what}.method"), ctx),
            None => Some(HttpMethod::Get),
        };
        let path = r.text(&q.path, &format!("{what}.path"), ctx);
        if let Some(path) = &path {
            check_path(r, path, &q.path.span, &format!("{what}.path"));
        }
        let weight = match &q.weight {
            Some(w) => r
                .at_least(w, &format!("{what}.weight"), ctx, Count(1), "at least 1")
                .map(|c| c.0),
            None => Some(1),
        };
        let name = match (&q.name, &method, &path) {
            (Some(n), _, _) => r.text(n, &format!("{what}.name"), ctx),
            (None, Some(method), Some(path)) => Some(format!("{} {path}", method.as_str())),
            _ => None,
        };
        let mut headers = Some(Vec::with_capacity(q.headers.len()));
        for (k, v) in &q.headers {
            match (
                r.text(v, &format!("{what}.headers.{k}"), ctx),
                headers.as_mut(),
            ) {
                (Some(value), Some(list)) => list.push((k.clone(), value)),
                _ => headers = None,
            }
        }
        let body = match &q.body {
            // Rendered once to catch errors; the runner renders each body variant afresh.
            Some(b) => r
                .text(b, &format!("{what}.body"), ctx)
                .map(|_| match &b.raw {
                    Scalar::Str(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }),
            None => Some(None),
        };
        let expect_status = match q.expect.as_ref().and_then(|e| e.status.as_ref()) {
            Some(t) => status_code(r, t, &format!("{what}.expect.status"), ctx).map(Some),
            None => Some(None),
        };
        let stream = match &q.stream {
            Some(t) => {
                let Some(text) = r.text(t, &format!("{what}.stream"), ctx) else {
                    ok = false;
                    continue;
                };
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
                    ok = false;
                } else if engine == Some(Engine::Locust) {
                    r.error(
                        t.span.clone(),
                        format!("`{what}.stream` needs the native engine: Locust times a streamed response as one request, so it cannot report time to first token or inter-token latency"),
                        Some("set `engine = \"native\"` in [load], or remove `stream`".into()),
                    );
                    ok = false;
                }
                mode
            }
            None => None,
        };
        let (
            Some(method),
            Some(path),
            Some(weight),
            Some(name),
            Some(headers),
            Some(body),
            Some(expect_status),
        ) = (method, path, weight, name, headers, body, expect_status)
        else {
            ok = false;
            continue;
        };
        if names.insert(name.clone(), i).is_some() {
            let span = q.name.as_ref().map_or(&q.path.span, |n| &n.span).clone();
            r.error(
                span,
                format!("two requests are both named `{name}`"),
                Some("give each [[load.request]] its own `name`".into()),
            );
            ok = false;
        }
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
            data: rows.data,
            row_path: rows.row_path,
            row_headers: rows.row_headers,
        });
    }
    ok.then_some(requests)
}

/// Checks that a request path can be sent as written: an origin-form request
/// target (`/path?query`) of visible ASCII, with `%` escapes well formed.
fn check_path(r: &mut Resolver<'_>, path: &str, span: &Range<usize>, what: &str) {
    if !path.starts_with('/') {
        r.error(
            span.clone(),
            format!("`{what}` \"{path}\" must start with `/`"),
            Some("the base URL comes from `load.base_url` or the replicas".into()),
        );
        return;
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let problem = match b {
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if hex(i + 1) && hex(i + 2) {
                    continue;
                }
                "a `%` that does not start an escape like %20".to_string()
            }
            b'#' => "a `#` (fragments are not sent to servers)".to_string(),
            b' ' => "a space".to_string(),
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' => {
                format!("`{}`", b as char)
            }
            0..=0x1f | 0x7f => format!("the control character 0x{b:02x}"),
            0x80.. => "a non-ASCII character".to_string(),
            _ => continue,
        };
        let shown: String = path.escape_debug().collect();
        r.error(
            span.clone(),
            format!(
                "`{what}` \"{shown}\" is not a valid request target: it holds {problem} at byte {}",
                i + 1
            ),
            Some(
                "percent-encode it (a space is %20, `<` is %3C) or use `| urlencode` in a template"
                    .into(),
            ),
        );
        return;
    }
}

fn locust(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    ctx: &Value,
    has_users: bool,
) -> Option<Option<Locust>> {
    let l = &raw.load;
    if !has_users {
        r.error(
            l.engine.span.clone(),
            "engine \"locust\" runs the closed model: set `users`".into(),
            None,
        );
    }
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
    let tags = r.texts(&l.tags, "load.tags", ctx);
    let user_classes = r.texts(&l.user_classes, "load.user_classes", ctx);
    let args = r.texts(&l.args, "load.args", ctx);
    let workers_at = r.typed(&l.workers_at, "load.workers_at", ctx);
    let master_bind = r.opt_text(&l.master_bind, "load.master_bind", ctx);
    Some(Some(Locust {
        locustfile: path,
        tags: tags?,
        user_classes: user_classes?,
        args: args?,
        workers_at: workers_at?,
        master_bind: master_bind?.unwrap_or_else(|| "127.0.0.1".into()),
    }))
}
