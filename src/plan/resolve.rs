//! Raw plan -> [`Plan`]: renders every cell's templates, types and
//! range-checks every value, and collects every error with its place.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use minijinja::Value;

use super::expr::{self, MetricKind};
use super::graph;
use super::matrix::{self, CellValues};
use super::model::*;
use super::raw::{RawPlan, Scope, StepKind};
use super::spanned::{
    Backend, Count, Engine, FieldKind, HttpMethod, Number, Scalar, Size, Text, Tmpl,
};
use super::suggest::{Closeness, did_you_mean};
use super::template::Templates;
use crate::diagnostic::Diagnostic;

/// Names of the report templates embedded in the binary.
pub const EMBEDDED_TEMPLATES: &[&str] = &["summary.md.j2", "cell.md.j2"];

/// What templates see as `run`.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: String,
    pub dir: String,
}

impl RunInfo {
    /// Used by `validate` and `plan`, which start no run.
    pub fn placeholder(plan_name: &str) -> Self {
        RunInfo {
            id: "00000000-000000".into(),
            dir: format!("results/{plan_name}/00000000-000000"),
        }
    }
}

type ErrorKey = (usize, usize, String, Option<String>);

struct Resolver<'a> {
    dir: &'a Path,
    source: &'a Arc<str>,
    templates: &'a Templates,
    /// Identical errors from many cells are reported once, naming the cells.
    errors: IndexMap<ErrorKey, Vec<String>>,
    cell: Option<String>,
    axes: Vec<String>,
    var_names: Vec<String>,
}

impl Resolver<'_> {
    fn error(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        let cells = self
            .errors
            .entry((span.start, span.end, message, hint))
            .or_default();
        if let Some(c) = &self.cell {
            cells.push(c.clone());
        }
    }

    /// Renders a string that may be a template; errors point inside it.
    fn render(
        &mut self,
        text: &str,
        span: &Range<usize>,
        what: &str,
        ctx: &Value,
    ) -> Option<String> {
        if !super::spanned::is_template(text) {
            return Some(text.to_owned());
        }
        match self.templates.render(text, ctx) {
            Ok(s) => Some(s),
            Err(e) => {
                let (inner, message, hint) = self.explain_template_error(text, &e, what);
                let span = inner
                    .and_then(|r| self.inner_span(span, text, r))
                    .unwrap_or_else(|| span.clone());
                self.error(span, message, hint);
                None
            }
        }
    }

    /// Maps a range inside a template string to the file, when the string is
    /// written without escapes (so offsets line up).
    fn inner_span(
        &self,
        span: &Range<usize>,
        text: &str,
        inner: Range<usize>,
    ) -> Option<Range<usize>> {
        let token = self.source.get(span.clone())?;
        let quote = if token.starts_with("\"\"\"") || token.starts_with("'''") {
            3
        } else if token.starts_with('"') || token.starts_with('\'') {
            1
        } else {
            return None;
        };
        let content = token.get(quote..token.len().checked_sub(quote)?)?;
        (content == text && inner.end <= text.len())
            .then(|| span.start + quote + inner.start..span.start + quote + inner.end)
    }

    fn explain_template_error(
        &self,
        text: &str,
        e: &minijinja::Error,
        what: &str,
    ) -> (Option<Range<usize>>, String, Option<String>) {
        let range = e.range();
        let snippet = range.clone().and_then(|r| text.get(r)).unwrap_or("").trim();
        let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            let path: Vec<&str> = snippet.split('.').map(str::trim).collect();
            let (message, hint) = match path.as_slice() {
                ["env", var, ..] => (
                    format!("`{what}` reads the environment variable `{var}`, which is not set"),
                    Some(format!(
                        "export {var}=... before running, or write `{{{{ env.{var} | default(\"\") }}}}`"
                    )),
                ),
                ["matrix", key, ..] => (
                    format!("`{what}` uses `matrix.{key}`, but the matrix has no axis `{key}`"),
                    did_you_mean(
                        key,
                        self.axes.iter().map(String::as_str),
                        Closeness::Similar,
                    )
                    .map(|h| {
                        h.replace('`', "")
                            .replace("did you mean ", "did you mean `matrix.")
                    })
                    .map(|h| format!("{}`?", h.trim_end_matches('?')))
                    .or_else(|| Some(format!("the axes are: {}", list_or_none(&self.axes)))),
                ),
                ["vars", key, ..] => (
                    format!("`{what}` uses `vars.{key}`, which is not defined in [vars]"),
                    did_you_mean(
                        key,
                        self.var_names.iter().map(String::as_str),
                        Closeness::Similar,
                    )
                    .map(|h| h.replace("did you mean `", "did you mean `vars."))
                    .or_else(|| Some(format!("the vars are: {}", list_or_none(&self.var_names)))),
                ),
                _ => (
                    format!("`{what}` uses `{snippet}`, which is undefined here"),
                    Some("templates see matrix, vars, env, cell and run".into()),
                ),
            };
            return (range, message, hint);
        }
        (
            range,
            format!("template error in `{what}`: {}{detail}", e.kind()),
            None,
        )
    }

    fn text(&mut self, t: &Text, what: &str, ctx: &Value) -> Option<String> {
        match &t.raw {
            Scalar::Str(s) => self.render(s, &t.span, what, ctx),
            other => String::parse(other).ok(),
        }
    }

    fn opt_text(&mut self, t: &Option<Text>, what: &str, ctx: &Value) -> Option<Option<String>> {
        match t {
            Some(t) => self.text(t, what, ctx).map(Some),
            None => Some(None),
        }
    }

    fn texts(&mut self, list: &[Text], what: &str, ctx: &Value) -> Option<Vec<String>> {
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, t) in list.iter().enumerate() {
            match self.text(t, &format!("{what}[{i}]"), ctx) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn typed<T: FieldKind>(&mut self, t: &Tmpl<T>, what: &str, ctx: &Value) -> Option<T> {
        let (value, rendered) = match &t.raw {
            Scalar::Str(s) if super::spanned::is_template(s) => {
                let r = self.render(s, &t.span, what, ctx)?;
                (Scalar::Str(r.clone()), Some(r))
            }
            other => (other.clone(), None),
        };
        match T::parse(&value) {
            Ok(v) => Some(v),
            Err(msg) => {
                let message = match rendered {
                    Some(r) => format!("`{what}` renders to \"{r}\": {msg}"),
                    None => format!("`{what}`: {msg}"),
                };
                self.error(t.span.clone(), message, None);
                None
            }
        }
    }

    fn opt_typed<T: FieldKind>(
        &mut self,
        t: &Option<Tmpl<T>>,
        what: &str,
        ctx: &Value,
    ) -> Option<Option<T>> {
        match t {
            Some(t) => self.typed(t, what, ctx).map(Some),
            None => Some(None),
        }
    }

    fn at_least<T: FieldKind + PartialOrd + std::fmt::Debug>(
        &mut self,
        t: &Tmpl<T>,
        what: &str,
        ctx: &Value,
        min: T,
        rule: &str,
    ) -> Option<T> {
        let v = self.typed(t, what, ctx)?;
        if v < min {
            self.error(t.span.clone(), format!("`{what}` must be {rule}"), None);
            return None;
        }
        Some(v)
    }

    fn positive_duration(
        &mut self,
        t: &Tmpl<Duration>,
        what: &str,
        ctx: &Value,
    ) -> Option<Duration> {
        let d = self.typed(t, what, ctx)?;
        if d.is_zero() {
            self.error(
                t.span.clone(),
                format!("`{what}` must be longer than 0s"),
                Some("write e.g. \"30s\"".into()),
            );
            return None;
        }
        Some(d)
    }

    fn key_span(&self, raw: &RawPlan, key: &str) -> Range<usize> {
        raw.key_spans.get(key).cloned().unwrap_or(0..0)
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

pub fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn toml_to_value(v: &toml::Value) -> Value {
    Value::from(minijinja::value::Serde(v))
}

pub fn resolve(
    raw: &RawPlan,
    file: &Path,
    source: &Arc<str>,
    overrides_text: &str,
    templates: Arc<Templates>,
    run: &RunInfo,
) -> Result<Plan, Vec<Diagnostic>> {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut r = Resolver {
        dir: &dir,
        source,
        templates: &templates,
        errors: IndexMap::new(),
        cell: None,
        axes: raw
            .matrix
            .as_ref()
            .map(|m| m.axes.keys().cloned().collect())
            .unwrap_or_default(),
        var_names: raw.vars.keys().cloned().collect(),
    };

    let name = raw.name.value.clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        let suggestion: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        r.error(
            raw.name.span.clone(),
            format!("plan name \"{name}\" may only use lowercase letters, digits and `-`"),
            Some(format!(
                "it names the results folder; try \"{}\"",
                suggestion.trim_matches('-')
            )),
        );
    }

    let cells_values = match matrix::expand(raw.matrix.as_ref()) {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                r.error(e.span, e.message, e.hint);
            }
            Vec::new()
        }
    };
    let graph = match graph::build(&raw.step) {
        Ok(g) => Some(g),
        Err(errs) => {
            for e in errs {
                r.error(e.span, e.message, e.hint);
            }
            None
        }
    };
    let thresholds = thresholds(&mut r, raw);

    let run_value =
        minijinja::context! { name => name.clone(), id => run.id.clone(), dir => run.dir.clone() };
    let env = templates.env_value();
    let count = cells_values.len();
    let mut cells = Vec::with_capacity(count);
    let mut cell_vars = Vec::with_capacity(count);
    for (index, values) in cells_values.iter().enumerate() {
        let id = matrix::cell_id(values);
        r.cell = Some(id.clone());
        let base = minijinja::context! {
            matrix => Value::from(minijinja::value::Serde(values)),
            env => env.clone(),
            cell => minijinja::context! { id => id.clone(), index => index, number => index + 1, count => count },
            run => run_value.clone(),
        };
        let vars = render_vars(&mut r, raw, &base);
        cell_vars.push(vars.clone());
        let ctx = minijinja::context! { vars => vars, ..base };
        if let Some(cell) = resolve_cell(&mut r, raw, &ctx, id, index, values, graph.as_ref()) {
            cells.push(cell);
        }
    }
    r.cell = None;

    // Checks run once before any cell: no `matrix` or `cell` in their context.
    let plan_base = minijinja::context! { env => env.clone(), run => run_value.clone() };
    let plan_vars = render_vars(&mut r, raw, &plan_base);
    let plan_ctx = minijinja::context! { vars => plan_vars, ..plan_base };
    let checks = checks(&mut r, raw, &plan_ctx);
    let steps = match &graph {
        Some(g) => step_configs(&mut r, raw, g, false, &plan_ctx),
        None => IndexMap::new(),
    };
    let analysis = analysis(&mut r, raw, &plan_ctx);
    let reports = reports(&mut r, raw, &plan_ctx);
    let description = r
        .opt_text(&raw.description, "description", &plan_ctx)
        .flatten()
        .unwrap_or_default();

    if !r.errors.is_empty() {
        return Err(into_diagnostics(r.errors, file, source, count));
    }
    let mut hash_input = source.as_bytes().to_vec();
    hash_input.extend_from_slice(overrides_text.as_bytes());
    Ok(Plan {
        name,
        description,
        file: file.to_path_buf(),
        dir: dir.clone(),
        source: source.clone(),
        hash: fnv1a(&hash_input),
        axes: r.axes.clone(),
        cells,
        checks,
        thresholds,
        graph: graph.unwrap_or(graph::StepGraph { steps: Vec::new() }),
        steps,
        analysis,
        reports,
        templates,
        run_value,
        cell_vars,
    })
}

fn into_diagnostics(
    errors: IndexMap<ErrorKey, Vec<String>>,
    file: &Path,
    source: &Arc<str>,
    cell_count: usize,
) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = errors
        .into_iter()
        .map(|((start, end, message, hint), cells)| {
            let span = (end > start || start > 0).then_some(start..end);
            let mut d = Diagnostic::new(file, source, span, message);
            d.hint = hint;
            match cells.len() {
                0 => {}
                _ if cell_count == 1 => {}
                n if n == cell_count => {
                    d.notes.push(format!("in every cell ({n})"));
                }
                1 => d.notes.push(format!("in cell {}", cells[0])),
                n => {
                    let shown: Vec<&str> = cells.iter().take(3).map(String::as_str).collect();
                    let more = if n > 3 {
                        format!(" and {} more", n - 3)
                    } else {
                        String::new()
                    };
                    d.notes.push(format!("in cells {}{more}", shown.join(", ")));
                }
            }
            d
        })
        .collect();
    out.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
    out
}

fn render_vars(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Value {
    let mut vars = std::collections::BTreeMap::new();
    for (k, v) in &raw.vars {
        let value = match &v.value {
            toml::Value::String(s) => match r.render(s, &v.span, &format!("vars.{k}"), ctx) {
                Some(s) => Value::from(s),
                None => Value::from(s.as_str()),
            },
            other => toml_to_value(other),
        };
        vars.insert(k.clone(), value);
    }
    Value::from(vars)
}

fn resolve_cell(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    ctx: &Value,
    id: String,
    index: usize,
    values: &CellValues,
    graph: Option<&graph::StepGraph>,
) -> Option<Cell> {
    let c = &raw.cell;
    // Each field on its own so one bad value does not hide the next.
    let duration = r.positive_duration(&c.duration, "cell.duration", ctx);
    let warmup = r.typed(&c.warmup, "cell.warmup", ctx);
    let cooldown = r.typed(&c.cooldown, "cell.cooldown", ctx);
    let repeat = r.at_least(&c.repeat, "cell.repeat", ctx, Count(1), "at least 1");
    let timing = (|| {
        Some(Timing {
            duration: duration?,
            warmup: warmup?,
            cooldown: cooldown?,
            repeat: repeat?.0,
        })
    })();
    let system = system(r, raw, ctx);
    let load = load(r, raw, ctx, system.as_ref());
    let steps = graph.map(|g| step_configs(r, raw, g, true, ctx));
    Some(Cell {
        id,
        index,
        matrix: values.clone(),
        timing: timing?,
        system: system?,
        load: load?,
        steps: steps?,
    })
}

fn system(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Option<System> {
    let s = &raw.system;
    let backend = r.typed(&s.backend, "system.backend", ctx)?;
    let replicas = r.typed(&s.replicas, "system.replicas", ctx)?.0;
    let section = r.key_span(raw, "system");
    let mut ok = true;

    let command = match &s.command {
        Some(cmd) if cmd.is_empty() => {
            r.error(section.clone(), "`system.command` is empty".into(), Some("give the argv of one replica, e.g. [\"loadmatrix\", \"demo-target\", \"--port\", \"{{ port }}\"]".into()));
            None
        }
        Some(cmd) => {
            // Rendered per replica later; here with placeholders so typos fail now.
            let probe = minijinja::context! { port => 0, replica => 0, ..ctx.clone() };
            r.texts(cmd, "system.command", &probe)?;
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
        Some(c) => {
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
        }
        None => None,
    };
    let docker = match &s.docker {
        Some(d) => {
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
        }
        None => None,
    };
    let swarm_service = match &s.swarm {
        Some(sw) => Some(r.text(&sw.service, "system.swarm.service", ctx)?),
        None => None,
    };
    let needs = |what: &str| format!("backend \"{}\" needs [system.{what}]", backend.as_str());
    match backend {
        Backend::Compose if compose.is_none() => {
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
        Backend::Docker if docker.is_none() => {
            r.error(
                s.backend.span.clone(),
                needs("docker"),
                Some("add `docker = { image = \"loadmatrix-demo\", port = 8080 }`".into()),
            );
            ok = false;
        }
        Backend::Swarm if swarm_service.is_none() => {
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
        Some(rd) => {
            let timeout = match &rd.timeout {
                Some(t) => r.positive_duration(t, "system.ready.timeout", ctx)?,
                None => Duration::from_secs(60),
            };
            let interval = match &rd.interval {
                Some(t) => r.positive_duration(t, "system.ready.interval", ctx)?,
                None => Duration::from_millis(100),
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
            Ready {
                target,
                timeout,
                interval,
            }
        }
        None => Ready {
            target: match backend {
                Backend::Local | Backend::Docker => ReadyTarget::Tcp,
                _ => ReadyTarget::Nothing,
            },
            timeout: Duration::from_secs(60),
            interval: Duration::from_millis(100),
        },
    };
    ok.then_some(System {
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

fn check_url(r: &mut Resolver<'_>, url: &str, span: &Range<usize>, what: &str) {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        r.error(
            span.clone(),
            format!("`{what}` \"{url}\" is not an http:// URL"),
            Some("write it like \"http://127.0.0.1:8080\"".into()),
        );
    }
}

fn load(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value, system: Option<&System>) -> Option<Load> {
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
        requests.push(Request {
            name,
            method,
            path,
            weight,
            header_names: headers.iter().map(|(k, _)| k.clone()).collect(),
            headers,
            body,
            expect_status,
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

fn status_code(r: &mut Resolver<'_>, t: &Tmpl<Count>, what: &str, ctx: &Value) -> Option<u16> {
    let Count(code) = r.typed(t, what, ctx)?;
    if !(100..=599).contains(&code) {
        r.error(
            t.span.clone(),
            format!("`{what}` {code} is not an HTTP status (100-599)"),
            None,
        );
        return None;
    }
    Some(code as u16)
}

fn checks(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Vec<Check> {
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

fn step_configs(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    graph: &graph::StepGraph,
    per_cell: bool,
    ctx: &Value,
) -> IndexMap<String, StepConfig> {
    let mut out = IndexMap::new();
    for step in graph.steps.iter().filter(|s| s.per_cell == per_cell) {
        let Some(i) = step.declared else { continue };
        let s = &raw.step[i];
        let what = format!("step.{}", step.id);
        let config = (|| {
            let run = match &s.run {
                Some(run) => r.texts(run, &format!("{what}.run"), ctx)?,
                None => Vec::new(),
            };
            if step.kind == StepKind::Exec && run.is_empty() {
                r.error(s.id.span.clone(), format!("exec step `{}` has no `run`", step.id), Some("add run = [\"program\", \"arg\"] (argv; set shell = true for a shell line)".into()));
                return None;
            }
            let duration = match &s.duration {
                Some(d) => Some(r.typed(d, &format!("{what}.duration"), ctx)?),
                None => None,
            };
            if step.kind == StepKind::Sleep && duration.is_none() && !step.builtin {
                r.error(
                    s.id.span.clone(),
                    format!("sleep step `{}` has no `duration`", step.id),
                    Some("add duration = \"5s\"".into()),
                );
                return None;
            }
            let url = r.opt_text(&s.url, &format!("{what}.url"), ctx)?;
            if step.kind == StepKind::Scrape && url.is_none() {
                r.error(
                    s.id.span.clone(),
                    format!("scrape step `{}` has no `url`", step.id),
                    Some("add url = \"http://127.0.0.1:8080/metrics\"".into()),
                );
                return None;
            }
            let template = match r.opt_text(&s.template, &format!("{what}.template"), ctx)? {
                Some(t) => Some(r.dir.join(t)),
                None => None,
            };
            Some(StepConfig {
                kind: step.kind,
                run,
                shell: s.shell,
                timeout: match &s.timeout {
                    Some(t) => r.positive_duration(t, &format!("{what}.timeout"), ctx)?,
                    None => Duration::from_secs(60),
                },
                duration,
                url,
                output: r.opt_text(&s.output, &format!("{what}.output"), ctx)?,
                template,
            })
        })();
        if let Some(c) = config {
            out.insert(step.id.clone(), c);
        }
    }
    out
}

/// Threshold and filter expressions are parsed once; errors point inside them.
fn thresholds(r: &mut Resolver<'_>, raw: &RawPlan) -> Vec<Threshold> {
    let mut out = Vec::new();
    for (index, t) in raw.threshold.iter().enumerate() {
        let expr_span = |r: &Resolver<'_>, text: &str, span: &Range<usize>, inner: Range<usize>| {
            r.inner_span(span, text, inner)
                .unwrap_or_else(|| span.clone())
        };
        let parsed = match expr::parse(&t.expr.value) {
            Ok(e) => {
                let problems = expr::check_threshold(&e);
                for p in &problems {
                    let span = expr_span(r, &t.expr.value, &t.expr.span, p.span.clone());
                    r.error(
                        span,
                        format!("threshold `{}`: {}", t.expr.value, p.message),
                        p.hint.clone(),
                    );
                }
                problems.is_empty().then_some(e)
            }
            Err(p) => {
                let span = expr_span(r, &t.expr.value, &t.expr.span, p.span.clone());
                r.error(
                    span,
                    format!("threshold `{}`: {}", t.expr.value, p.message),
                    p.hint.clone(),
                );
                None
            }
        };
        let filter = match &t.filter {
            Some(f) => match expr::parse(&f.value) {
                Ok(e) => {
                    let mut ok = true;
                    for id in e.idents() {
                        if !r.axes.contains(&id.name) {
                            ok = false;
                            let span = expr_span(r, &f.value, &f.span, id.span.clone());
                            let hint = did_you_mean(
                                &id.name,
                                r.axes.iter().map(String::as_str),
                                Closeness::Similar,
                            )
                            .unwrap_or_else(|| {
                                format!("`where` filters on matrix axes: {}", list_or_none(&r.axes))
                            });
                            r.error(
                                span,
                                format!("`where` names `{}`, which is not a matrix axis", id.name),
                                Some(hint),
                            );
                        }
                    }
                    ok.then(|| (f.value.clone(), e))
                }
                Err(p) => {
                    let span = expr_span(r, &f.value, &f.span, p.span.clone());
                    r.error(
                        span,
                        format!("`where = \"{}\"`: {}", f.value, p.message),
                        p.hint.clone(),
                    );
                    None
                }
            },
            None => None,
        };
        let Some(expr) = parsed else { continue };
        if t.filter.is_some() && filter.is_none() {
            continue;
        }
        let scope = match &t.scope {
            Some(s) => {
                if s.value == Scope::Cell && expr.has_aggregate() {
                    r.error(
                        s.span.clone(),
                        format!(
                            "threshold `{}` aggregates over cells but has scope \"cell\"",
                            t.expr.value
                        ),
                        Some(
                            "use scope = \"run\" for min/max/mean/sum/count over all cells".into(),
                        ),
                    );
                    continue;
                }
                if s.value == Scope::Run && !expr.has_aggregate() {
                    r.error(t.expr.span.clone(), format!("threshold `{}` has scope \"run\" but no aggregate", t.expr.value), Some("wrap metrics in an aggregate, e.g. `max(p95) < 500ms`, or use scope \"cell\"".into()));
                    continue;
                }
                s.value
            }
            None if expr.has_aggregate() => Scope::Run,
            None => Scope::Cell,
        };
        out.push(Threshold {
            index,
            name: t.name.clone().unwrap_or_else(|| match &filter {
                Some((f, _)) => format!("{} where {f}", t.expr.value),
                None => t.expr.value.clone(),
            }),
            text: t.expr.value.clone(),
            expr,
            filter,
            scope,
            abort: t.abort,
        });
    }
    out
}

fn analysis(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Analysis {
    let mut slo = IndexMap::new();
    for (metric, value) in &raw.analysis.slo {
        let what = format!("analysis.slo.{metric}");
        let Some(text) = r.text(value, &what, ctx) else {
            continue;
        };
        let parsed = match expr::metric_kind(metric) {
            Some(MetricKind::Latency) => {
                super::units::parse_duration(&text).map(|d| d.as_secs_f64() * 1000.0)
            }
            Some(MetricKind::Percent) => super::units::parse_percent(&text),
            Some(_) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("expected a number, found \"{text}\"")),
            None => {
                let known = [
                    "p50",
                    "p90",
                    "p95",
                    "p99",
                    "mean",
                    "max",
                    "fail_rate",
                    "rps",
                ];
                let hint = did_you_mean(metric, known, Closeness::Similar)
                    .unwrap_or_else(|| format!("SLO metrics: {}", known.join(", ")));
                r.error(
                    value.span.clone(),
                    format!("`{what}`: `{metric}` is not a metric"),
                    Some(hint),
                );
                continue;
            }
        };
        match parsed {
            Ok(v) => {
                slo.insert(metric.clone(), v);
            }
            Err(msg) => r.error(value.span.clone(), format!("`{what}`: {msg}"), None),
        }
    }
    let cost = raw.analysis.cost.as_ref().and_then(|c| {
        let per_replica_hour =
            r.opt_typed(&c.per_replica_hour, "analysis.cost.per_replica_hour", ctx)?;
        let per_worker_hour =
            r.opt_typed(&c.per_worker_hour, "analysis.cost.per_worker_hour", ctx)?;
        Some(Cost {
            per_replica_hour: per_replica_hour.map_or(0.0, |n| n.0),
            per_worker_hour: per_worker_hour.map_or(0.0, |n| n.0),
        })
    });
    Analysis { slo, cost }
}

fn reports(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Vec<ReportSpec> {
    if raw.report.is_empty() {
        return vec![ReportSpec {
            template: ReportTemplate::Embedded("summary.md.j2".into()),
            output: "report.md".into(),
        }];
    }
    let mut out = Vec::new();
    for (i, rep) in raw.report.iter().enumerate() {
        let what = format!("report[{i}]");
        let (Some(template), Some(output)) = (
            r.text(&rep.template, &format!("{what}.template"), ctx),
            r.text(&rep.output, &format!("{what}.output"), ctx),
        ) else {
            continue;
        };
        if output.contains("..") || Path::new(&output).is_absolute() {
            r.error(
                rep.output.span.clone(),
                format!("`{what}.output` \"{output}\" must stay inside the run folder"),
                Some("write a plain file name like \"report.md\"".into()),
            );
            continue;
        }
        let path = r.dir.join(&template);
        let file_name = Path::new(&template)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_owned();
        let template = if path.is_file() {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    if let Err(e) = r.templates.environment().template_from_str(&text) {
                        let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
                        r.error(
                            rep.template.span.clone(),
                            format!(
                                "report template `{}` does not compile{line}: {}",
                                path.display(),
                                e.detail().unwrap_or("syntax error")
                            ),
                            None,
                        );
                        continue;
                    }
                    ReportTemplate::File(path)
                }
                Err(e) => {
                    r.error(
                        rep.template.span.clone(),
                        format!("cannot read report template `{}`: {e}", path.display()),
                        None,
                    );
                    continue;
                }
            }
        } else if EMBEDDED_TEMPLATES.contains(&file_name.as_str()) {
            ReportTemplate::Embedded(file_name)
        } else {
            r.error(
                rep.template.span.clone(),
                format!("report template `{}` does not exist", path.display()),
                Some(format!(
                    "paths are relative to the plan's folder; embedded templates: {}",
                    EMBEDDED_TEMPLATES.join(", ")
                )),
            );
            continue;
        };
        out.push(ReportSpec { template, output });
    }
    out
}
