//! The plan file as written: serde types that mirror the TOML one to one.
//! Typed fields stay unrendered (`Tmpl<T>`) until a cell is resolved.

use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::spanned::{
    Backend, Count, Engine, HttpMethod, HttpVersion, Number, Scalar, Size, Sp, Text, Tmpl,
    WorkersAt,
};
use crate::base::units::ThinkTime;

/// A loadmatrix plan: a matrix of load tests, how to scale the system under
/// test, what load to send, what to check first and what must hold.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    /// Names the results folder: lowercase letters, digits and dashes.
    #[schemars(regex(pattern = r"^[a-z0-9-]+$"))]
    pub(crate) name: Sp<String>,
    #[serde(default)]
    pub(crate) description: Option<Text>,
    /// Free values, available to templates as `vars.x`.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub(crate) vars: IndexMap<String, Sp<toml::Value>>,
    #[serde(default)]
    pub(crate) matrix: Option<RawMatrix>,
    #[serde(default)]
    pub(crate) cell: CellSection,
    #[serde(default)]
    pub(crate) system: SystemSection,
    #[serde(default)]
    pub(crate) load: LoadSection,
    #[serde(default)]
    pub(crate) check: Vec<CheckSection>,
    #[serde(default)]
    pub(crate) step: Vec<StepSection>,
    #[serde(default)]
    pub(crate) threshold: Vec<ThresholdSection>,
    #[serde(default)]
    pub(crate) analysis: AnalysisSection,
    /// Capacity search: the load knob is searched per matrix cell.
    #[serde(default)]
    pub(crate) search: Option<SearchSection>,
    #[serde(default)]
    pub(crate) report: Vec<ReportSection>,
    /// The service's own Prometheus metrics, scraped during every cell.
    #[serde(default)]
    pub(crate) scrape: Vec<ScrapeSection>,
    /// TLS for every https:// URL loadmatrix contacts: load, readiness, checks, scrapes.
    #[serde(default)]
    pub(crate) tls: Option<TlsSection>,
    /// Where each top-level key was written (for errors about a whole section).
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) key_spans: IndexMap<String, std::ops::Range<usize>>,
}

/// Cartesian product of the axes in key order, minus `exclude`, plus `include`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawMatrix {
    /// Axis name -> values.
    pub(crate) axes: IndexMap<String, Sp<Vec<Sp<toml::Value>>>>,
    pub(crate) axis_spans: Vec<std::ops::Range<usize>>,
    /// Cells to leave out: every given key must match.
    pub(crate) exclude: Vec<Sp<IndexMap<String, Sp<toml::Value>>>>,
    /// Extra cells, each naming a value for every axis.
    pub(crate) include: Vec<Sp<IndexMap<String, Sp<toml::Value>>>>,
}

impl<'de> Deserialize<'de> for RawMatrix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MatrixVisitor;
        impl<'de> serde::de::Visitor<'de> for MatrixVisitor {
            type Value = RawMatrix;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of axes, e.g. `users = [100, 200]`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawMatrix, A::Error> {
                let mut m = RawMatrix::default();
                while let Some(key) = map.next_key::<Sp<String>>()? {
                    match key.value.as_str() {
                        "exclude" => m.exclude = map.next_value()?,
                        "include" => m.include = map.next_value()?,
                        _ => {
                            let values = map.next_value()?;
                            m.axis_spans.push(key.span.clone());
                            m.axes.insert(key.value, values);
                        }
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_map(MatrixVisitor)
    }
}

/// Timing of every cell.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CellSection {
    /// Measured window (default 30s).
    pub(crate) duration: Tmpl<Duration>,
    /// Load runs but is not counted (default 0s).
    pub(crate) warmup: Tmpl<Duration>,
    /// Pause after each cell (default 0s).
    pub(crate) cooldown: Tmpl<Duration>,
    /// Repeated measurements of each cell (default 1).
    pub(crate) repeat: Tmpl<Count>,
    /// When the cells and their repeats run: "sequential" (default: each
    /// cell's repeats back to back, cells in matrix order) or "interleave"
    /// (with `[analysis] ab`: within each combination of the other axes, the
    /// ab axis' cells one repeat at a time, A B B A ..., so drift hits all
    /// variants alike).
    pub(crate) order: Option<Sp<CellOrder>>,
}

/// `[cell] order`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CellOrder {
    /// Each cell's repeats back to back, cells in matrix order.
    #[default]
    Sequential,
    /// The `[analysis] ab` axis' cells alternate, one repeat per visit, in
    /// rounds that go forward then backward (A B B A ...).
    Interleave,
}

impl Default for CellSection {
    fn default() -> Self {
        CellSection {
            duration: Tmpl::literal(Scalar::Str("30s".into())),
            warmup: Tmpl::literal(Scalar::Str("0s".into())),
            cooldown: Tmpl::literal(Scalar::Str("0s".into())),
            repeat: Tmpl::literal(Scalar::Int(1)),
            order: None,
        }
    }
}

/// The system under test and how it scales.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SystemSection {
    /// none | local | docker | compose | swarm (default none).
    pub(crate) backend: Tmpl<Backend>,
    /// Replica count for this cell (default 1).
    pub(crate) replicas: Tmpl<Count>,
    /// local backend: argv of one replica; `{{ port }}` and `{{ replica }}` are set per replica.
    /// A first word `loadmatrix` runs the current executable.
    pub(crate) command: Option<Vec<Text>>,
    /// local backend: extra environment of replica processes.
    pub(crate) env: IndexMap<String, Text>,
    pub(crate) compose: Option<ComposeSection>,
    pub(crate) docker: Option<DockerSection>,
    pub(crate) swarm: Option<SwarmSection>,
    pub(crate) ready: Option<ReadySection>,
}

impl Default for SystemSection {
    fn default() -> Self {
        SystemSection {
            backend: Tmpl::literal(Scalar::Str("none".into())),
            replicas: Tmpl::literal(Scalar::Int(1)),
            command: None,
            env: IndexMap::new(),
            compose: None,
            docker: None,
            swarm: None,
            ready: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComposeSection {
    /// Compose file, relative to the plan's folder.
    pub(crate) file: Text,
    pub(crate) service: Text,
    /// Compose project name (default: the compose tool's own default).
    #[serde(default)]
    pub(crate) project: Option<Text>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DockerSection {
    pub(crate) image: Text,
    /// Service name, the value of the `loadmatrix.service` label (default: the plan name).
    #[serde(default)]
    pub(crate) service: Option<Text>,
    #[serde(default)]
    pub(crate) command: Option<Vec<Text>>,
    #[serde(default)]
    pub(crate) env: IndexMap<String, Text>,
    /// Container port published on 127.0.0.1 for each replica.
    #[serde(default)]
    pub(crate) port: Option<Tmpl<Count>>,
    #[serde(default)]
    pub(crate) cpus: Option<Tmpl<Number>>,
    #[serde(default)]
    pub(crate) memory: Option<Tmpl<Size>>,
    #[serde(default)]
    pub(crate) network: Option<Text>,
    /// Keep containers after the run (default false).
    #[serde(default)]
    pub(crate) keep: Option<Tmpl<bool>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwarmSection {
    pub(crate) service: Text,
}

/// Readiness: poll until 2xx, never a fixed sleep.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadySection {
    /// One URL to poll (e.g. the load balancer's health endpoint).
    #[serde(default)]
    pub(crate) url: Option<Text>,
    /// A path polled on every replica endpoint instead.
    #[serde(default)]
    pub(crate) path: Option<Text>,
    /// Give up after this long (default 60s).
    #[serde(default)]
    pub(crate) timeout: Option<Tmpl<Duration>>,
    /// Poll interval (default 100ms).
    #[serde(default)]
    pub(crate) interval: Option<Tmpl<Duration>>,
}

/// The load to send.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LoadSection {
    /// native | locust (default native).
    pub(crate) engine: Tmpl<Engine>,
    /// Target URL; may be left out with the local backend (every replica is targeted).
    pub(crate) base_url: Option<Text>,
    /// Closed model: concurrent virtual users.
    pub(crate) users: Option<Tmpl<Count>>,
    /// Open model: arrivals per second; latency is measured from the intended start.
    pub(crate) rate: Option<Tmpl<Number>>,
    /// Open model: a sequence of rate stages instead of one rate.
    pub(crate) stages: Vec<StageSection>,
    /// Users started per second while ramping (default: all at once).
    pub(crate) spawn_rate: Option<Tmpl<Number>>,
    /// Load-generator workers: threads (native) or processes (locust). Default 1.
    pub(crate) workers: Tmpl<Count>,
    /// Uniform pause between a user's requests, e.g. "0.5s..1s" (default 0s).
    pub(crate) think_time: Tmpl<ThinkTime>,
    /// Per-request timeout (default 30s).
    pub(crate) timeout: Tmpl<Duration>,
    /// Open model: arrivals beyond this many outstanding requests are dropped and counted (default 10000).
    pub(crate) max_in_flight: Tmpl<Count>,
    pub(crate) request: Vec<RequestSection>,
    /// locust engine: the locustfile, relative to the plan's folder.
    pub(crate) locustfile: Option<Text>,
    pub(crate) tags: Vec<Text>,
    pub(crate) user_classes: Vec<Text>,
    /// Extra command-line arguments for locust.
    pub(crate) args: Vec<Text>,
    /// locust engine: "local" starts the workers; "external" waits for workers started elsewhere.
    pub(crate) workers_at: Tmpl<WorkersAt>,
    /// locust engine: master bind address (default 127.0.0.1).
    pub(crate) master_bind: Option<Text>,
    /// native engine: "1.1" (default) or "2" (HTTP/2: ALPN h2 over TLS, prior-knowledge h2c over http://).
    pub(crate) http: Tmpl<HttpVersion>,
    /// native engine, HTTP/2: multiplex every user's streams over this many connections (default: one per user).
    pub(crate) connections: Option<Tmpl<Count>>,
    /// Open model from a trace (JSON Lines, relative to the plan): one request per line at its `timestamp` (ms); the line's fields are `row.*`.
    pub(crate) trace: Option<Text>,
    /// Trace replay speed: timestamps are divided by it (default 1.0).
    pub(crate) time_scale: Option<Tmpl<Number>>,
}

impl Default for LoadSection {
    fn default() -> Self {
        LoadSection {
            engine: Tmpl::literal(Scalar::Str("native".into())),
            base_url: None,
            users: None,
            rate: None,
            stages: Vec::new(),
            spawn_rate: None,
            workers: Tmpl::literal(Scalar::Int(1)),
            think_time: Tmpl::literal(Scalar::Str("0s".into())),
            timeout: Tmpl::literal(Scalar::Str("30s".into())),
            max_in_flight: Tmpl::literal(Scalar::Int(10_000)),
            request: Vec::new(),
            locustfile: None,
            tags: Vec::new(),
            user_classes: Vec::new(),
            args: Vec::new(),
            workers_at: Tmpl::literal(Scalar::Str("local".into())),
            master_bind: None,
            http: Tmpl::literal(Scalar::Str("1.1".into())),
            connections: None,
            trace: None,
            time_scale: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageSection {
    pub(crate) rate: Tmpl<Number>,
    pub(crate) duration: Tmpl<Duration>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestSection {
    /// Default: "METHOD path".
    #[serde(default)]
    pub(crate) name: Option<Text>,
    /// Default GET.
    #[serde(default)]
    pub(crate) method: Option<Tmpl<HttpMethod>>,
    pub(crate) path: Text,
    /// Relative frequency in the mix (default 1).
    #[serde(default)]
    pub(crate) weight: Option<Tmpl<Count>>,
    /// Values from `env` are secrets: never written to outputs. A value that uses `row` is rendered per row.
    #[serde(default)]
    pub(crate) headers: IndexMap<String, Text>,
    #[serde(default)]
    pub(crate) body: Option<Text>,
    #[serde(default)]
    pub(crate) expect: Option<ExpectSection>,
    /// "sse" or "chunks": time every event (or body chunk) of the response.
    #[serde(default)]
    pub(crate) stream: Option<Text>,
    /// Rows for `row.*` in path, headers and body: a JSON Lines or CSV file (with a header), relative to the plan.
    #[serde(default)]
    pub(crate) data: Option<Text>,
    /// Generated rows instead of `data`: `row.prompt`, `row.prompt_tokens`, `row.max_tokens`.
    #[serde(default)]
    pub(crate) synthetic: Option<super::data_raw::SyntheticSection>,
    /// Which row each request takes: "shuffle" (default), "sequential", "random".
    #[serde(default)]
    pub(crate) order: Option<Text>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectSection {
    /// Expected status; default: any 2xx or 3xx.
    #[serde(default)]
    pub(crate) status: Option<Tmpl<Count>>,
}

/// A preflight check; exactly one of http, disk, docker, command.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckSection {
    pub(crate) name: Text,
    #[serde(default)]
    pub(crate) http: Option<HttpCheck>,
    #[serde(default)]
    pub(crate) disk: Option<DiskCheck>,
    #[serde(default)]
    pub(crate) docker: Option<DockerCheck>,
    #[serde(default)]
    pub(crate) command: Option<CommandCheck>,
    /// Give up after this long (default 10s).
    #[serde(default)]
    pub(crate) timeout: Option<Tmpl<Duration>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpCheck {
    pub(crate) url: Text,
    /// Expected status (default 200).
    #[serde(default)]
    pub(crate) status: Option<Tmpl<Count>>,
    #[serde(default)]
    pub(crate) method: Option<Tmpl<HttpMethod>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiskCheck {
    pub(crate) path: Text,
    pub(crate) min_free: Tmpl<Size>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DockerCheck {
    pub(crate) service: Text,
    /// Default 1.
    #[serde(default)]
    pub(crate) min_running: Option<Tmpl<Count>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandCheck {
    /// argv; no shell unless `shell = true`.
    pub(crate) run: Vec<Text>,
    #[serde(default)]
    pub(crate) shell: bool,
    /// Expected exit status (default 0).
    #[serde(default)]
    pub(crate) exit: Option<Tmpl<Count>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StepKind {
    Check,
    Scale,
    Ready,
    Load,
    Exec,
    Sleep,
    Scrape,
    Analyze,
    Report,
    Gate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnFailure {
    Abort,
    Continue,
}

/// A step of the pipeline DAG. Steps add to the default pipeline; a step
/// with the id of a default step (preflight, scale, ready, load, cooldown,
/// analyze, report, gate) replaces it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSection {
    pub(crate) id: Sp<String>,
    pub(crate) uses: Sp<StepKind>,
    /// exec: argv (no shell unless `shell = true`).
    #[serde(default)]
    pub(crate) run: Option<Vec<Text>>,
    #[serde(default)]
    pub(crate) shell: bool,
    /// One node per cell instead of one for the run.
    #[serde(default)]
    pub(crate) per_cell: Option<bool>,
    /// Steps that must finish first.
    #[serde(default)]
    pub(crate) needs: Vec<Sp<String>>,
    /// Steps that must wait for this one (the reverse of `needs`).
    #[serde(default)]
    pub(crate) before: Vec<Sp<String>>,
    /// Default: abort for plan-level steps, continue for per-cell steps.
    #[serde(default)]
    pub(crate) on_failure: Option<OnFailure>,
    /// exec, check, scrape: give up after this long (default 60s).
    #[serde(default)]
    pub(crate) timeout: Option<Tmpl<Duration>>,
    /// sleep: how long.
    #[serde(default)]
    pub(crate) duration: Option<Tmpl<Duration>>,
    /// scrape: URL to fetch into the cell folder.
    #[serde(default)]
    pub(crate) url: Option<Text>,
    /// scrape: file name in the cell folder; report: output file.
    #[serde(default)]
    pub(crate) output: Option<Text>,
    /// report: template file.
    #[serde(default)]
    pub(crate) template: Option<Text>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every cell must hold it.
    #[default]
    Cell,
    /// Evaluated once over all cells, e.g. `max(rps) >= 100`.
    Run,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThresholdSection {
    /// e.g. `p95 < 500ms`, `fail_rate < 1%`, `max(rps) >= 100`.
    pub(crate) expr: Sp<String>,
    /// Filter on matrix values, e.g. `users <= 400`.
    #[serde(default, rename = "where")]
    pub(crate) filter: Option<Sp<String>>,
    #[serde(default)]
    pub(crate) scope: Option<Sp<Scope>>,
    /// Stop the run at the first breach.
    #[serde(default)]
    pub(crate) abort: bool,
    #[serde(default)]
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AnalysisSection {
    /// What "acceptable" means, e.g. `{ p95 = "500ms", fail_rate = "1%" }`.
    pub(crate) slo: IndexMap<String, Text>,
    pub(crate) cost: Option<CostSection>,
    /// How long one user sends the request mix, after the system is ready
    /// and before warm-up, to measure the unloaded latency of each distinct
    /// system configuration (default "3s"; "0s" turns it off).
    pub(crate) baseline: Option<Tmpl<Duration>>,
    /// A matrix axis whose values are compared, within each combination of
    /// the other axes, against its first value (the baseline): rps, p50,
    /// p95 and the SLO's metrics, each with a 95% interval.
    pub(crate) ab: Option<Sp<String>>,
}

/// `[search]`: for every matrix cell, the largest load that meets the SLO.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchSection {
    /// The load knob: "users" (closed model) or "rate" (open model).
    pub(crate) over: Sp<SearchOver>,
    /// The first probe's value.
    pub(crate) from: Tmpl<Count>,
    /// The largest value probed.
    pub(crate) to: Tmpl<Count>,
    /// Stop bisecting when hi <= lo * (1 + tolerance), e.g. "5%".
    #[serde(default = "default_tolerance")]
    pub(crate) tolerance: Text,
    /// The SLO a probe must meet (default: `[analysis] slo`).
    #[serde(default)]
    pub(crate) slo: Option<IndexMap<String, Text>>,
}

fn default_tolerance() -> Text {
    Tmpl::literal(Scalar::Str("5%".into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SearchOver {
    /// Concurrent virtual users (closed model).
    Users,
    /// Arrivals per second (open model).
    Rate,
}

impl SearchOver {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchOver::Users => "users",
            SearchOver::Rate => "rate",
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CostSection {
    #[serde(default)]
    pub(crate) per_replica_hour: Option<Tmpl<Number>>,
    #[serde(default)]
    pub(crate) per_worker_hour: Option<Tmpl<Number>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportSection {
    /// Template file relative to the plan folder; the embedded defaults are used by name.
    pub(crate) template: Text,
    pub(crate) output: Text,
}

/// `[tls]`: how https:// URLs are trusted. Paths are relative to the plan.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    /// PEM roots trusted besides the system's.
    #[serde(default)]
    pub(crate) ca: Option<Text>,
    /// Accept any certificate (every report and the console say so). Default false.
    #[serde(default)]
    pub(crate) insecure: Option<Tmpl<bool>>,
    /// Mutual TLS: the client certificate chain (PEM), with `client_key`.
    #[serde(default)]
    pub(crate) client_cert: Option<Text>,
    /// Mutual TLS: the client's private key (PEM).
    #[serde(default)]
    pub(crate) client_key: Option<Text>,
    /// SNI and the name verified, when the URL's host differs.
    #[serde(default)]
    pub(crate) server_name: Option<Text>,
}

/// Prometheus text scraped from every replica endpoint (or one `url`)
/// during each cell's measured window.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScrapeSection {
    /// Labels the scrape in events and the report.
    pub(crate) name: Sp<String>,
    /// Fetched from every replica endpoint, e.g. `/metrics`.
    #[serde(default)]
    pub(crate) path: Option<Text>,
    /// One fixed target instead of every replica.
    #[serde(default)]
    pub(crate) url: Option<Text>,
    /// How often (default 1s).
    #[serde(default)]
    pub(crate) interval: Option<Tmpl<Duration>>,
    /// Which metrics become summary columns, and how they are aggregated.
    pub(crate) series: Sp<Vec<SeriesSection>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesSection {
    /// Metric family name as exposed, e.g. `demo_requests_total`.
    pub(crate) metric: Sp<String>,
    /// rate | mean | max | min | p50 | p90 | p95 | p99
    pub(crate) agg: Sp<String>,
    /// The summary column it becomes.
    #[serde(rename = "as")]
    pub(crate) column: Sp<String>,
    /// The request names the metric covers (e.g. only `predict`), so the
    /// service's figure is compared with the client's for those names;
    /// empty: every request.
    #[serde(default)]
    pub(crate) names: Vec<String>,
}

impl JsonSchema for RawMatrix {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Matrix".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let scalar = schemars::json_schema!({ "type": ["string", "integer", "number", "boolean"] });
        let selector = schemars::json_schema!({ "type": "array", "items": { "type": "object", "additionalProperties": scalar } });
        schemars::json_schema!({
            "description": "Cartesian product of the axes in key order (first key outermost), minus `exclude`, plus `include`.",
            "type": "object",
            "properties": {
                "exclude": selector.clone(),
                "include": selector,
            },
            "additionalProperties": { "type": "array", "minItems": 1, "items": scalar },
        })
    }
}
