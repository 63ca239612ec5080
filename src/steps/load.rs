//! The load step: warm-up and measured window of one cell with the native
//! engine, while the system under test is sampled every second.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::engine::{
    self, CancelToken, CellStats, Endpoint, LoadSpec, Model, ProgressTick, RequestSpec,
};
use crate::plan::spanned::Engine as EngineKind;
use crate::plan::{Cell, LoadModel, Plan};
use crate::system::SystemSample;
use crate::system::proc_stats::CpuMeter;

use super::{Events, Measurement, StepContext, StepError, StepOutput};
use crate::results::record::Baseline;

/// Pre-rendered variants of each body template: templates with `random`
/// differ per variant; the engine cycles through them.
const BODY_VARIANTS: usize = 16;

pub async fn load(
    ctx: &StepContext,
    c: usize,
    known: Option<Baseline>,
    events: &mut Events,
) -> Result<StepOutput, StepError> {
    let plan = ctx.plan.clone();
    let cell = &plan.cells[c];
    let endpoints = match &cell.load.base_url {
        Some(url) => vec![url.clone()],
        None => ctx
            .backend
            .lock()
            .await
            .as_ref()
            .map(|b| b.endpoints())
            .unwrap_or_default(),
    };
    if endpoints.is_empty() {
        return Err(StepError::failed(
            "no endpoint to send load to: set `load.base_url`",
        ));
    }
    if cell.load.engine == EngineKind::Locust {
        return locust(ctx, c, &endpoints, events).await;
    }
    let endpoints = endpoints
        .iter()
        .map(|u| Endpoint::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let requests = request_specs(&plan, c)?;
    let label = cell_label(cell);
    let baseline = match known {
        Some(b) => {
            events.push(format!(
                "baseline: {:.2} ms mean latency, measured in cell {}",
                b.mean_ms, b.measured_in
            ));
            Some(b)
        }
        None if !plan.analysis.baseline.is_zero() => {
            measure_baseline(ctx, cell, &endpoints, &requests, events).await?
        }
        None => None,
    };
    let stages = stages(cell);
    let mut measured = Vec::new();
    for repetition in 0..cell.timing.repeat {
        let mut parts = Vec::new();
        let mut samples = Vec::new();
        for (i, (model, duration)) in stages.iter().enumerate() {
            let spec = LoadSpec {
                endpoints: endpoints.clone(),
                requests: requests.clone(),
                model: model.clone(),
                workers: cell.load.workers as usize,
                warmup: if i == 0 {
                    cell.timing.warmup
                } else {
                    Duration::ZERO
                },
                duration: *duration,
                request_timeout: cell.load.timeout,
                slo: ctx.plan.analysis.stream_slo(),
            };
            let offset: f64 = parts.iter().map(|p: &CellStats| p.measured_secs).sum();
            let (stats, stage_samples) = run_one(ctx, spec, &label, repetition, offset).await?;
            samples.extend(stage_samples);
            let cancelled = stats.cancelled;
            parts.push(stats);
            if cancelled {
                break;
            }
        }
        let Some(mut stats) = CellStats::combine_sequential(parts) else {
            continue;
        };
        if matches!(cell.load.model, LoadModel::Closed { .. })
            && let Some(w) = closed_model_stall_warning(&stats)
        {
            stats.warnings.push(w);
        }
        if let Some(m) = record(ctx, stats, samples, events).await {
            measured.push(m);
        } else {
            return Err(StepError::InterruptedWith(measured));
        }
    }
    Ok(StepOutput::Measured {
        reps: measured,
        baseline,
    })
}

/// One user, no think time, the request mix, for `[analysis] baseline`: the
/// latency of a request when nothing queues. None when no request succeeded.
async fn measure_baseline(
    ctx: &StepContext,
    cell: &Cell,
    endpoints: &[Endpoint],
    requests: &[RequestSpec],
    events: &mut Events,
) -> Result<Option<Baseline>, StepError> {
    let duration = ctx.plan.analysis.baseline;
    let spec = LoadSpec {
        endpoints: endpoints.to_vec(),
        requests: requests.to_vec(),
        model: Model::Closed {
            users: 1,
            spawn_rate: 0.0,
            think_min: Duration::ZERO,
            think_max: Duration::ZERO,
        },
        workers: 1,
        warmup: Duration::ZERO,
        duration,
        request_timeout: cell.load.timeout,
        slo: Default::default(),
    };
    let cancel = ctx.cancel.clone();
    let stats = tokio::task::spawn_blocking(move || engine::run_load(&spec, cancel, &|_| {}))
        .await
        .map_err(|e| StepError::failed(format!("load engine crashed: {e}")))??;
    if stats.cancelled {
        return Err(StepError::Interrupted);
    }
    if stats.successes() == 0 {
        events.push(format!(
            "baseline: no successful request in {:.1} s ({} failures); offered load and bound are left empty",
            stats.measured_secs, stats.total.failures
        ));
        return Ok(None);
    }
    let b = Baseline {
        measured_in: cell.id.clone(),
        duration_secs: stats.measured_secs,
        requests: stats.total.requests,
        failures: stats.total.failures,
        mean_ms: stats.total.mean_ms,
        p50_ms: stats.total.p50_ms,
        p95_ms: stats.total.p95_ms,
        by_name: stats
            .by_name
            .iter()
            .map(|(n, s)| (n.clone(), s.mean_ms))
            .collect(),
    };
    events.push(format!(
        "baseline: one user, {} requests in {:.1} s, mean {:.2} ms, p95 {:.2} ms",
        b.requests, b.duration_secs, b.mean_ms, b.p95_ms
    ));
    Ok(Some(b))
}

/// `engine = "locust"`: the user's locustfile, run by Locust's own master and
/// workers, ingested into the same statistics.
async fn locust(
    ctx: &StepContext,
    c: usize,
    endpoints: &[String],
    events: &mut Events,
) -> Result<StepOutput, StepError> {
    let plan = ctx.plan.clone();
    let cell = &plan.cells[c];
    let Some(cfg) = &cell.load.locust else {
        return Err(StepError::failed("engine \"locust\" without a locustfile"));
    };
    let LoadModel::Closed {
        users, spawn_rate, ..
    } = &cell.load.model
    else {
        return Err(StepError::failed(
            "engine \"locust\" runs the closed model: set `users`",
        ));
    };
    if endpoints.len() > 1 {
        events.push(format!(
            "locust targets one host: {} (of {} replica endpoints); put a load balancer in front and set `load.base_url` to spread load",
            endpoints[0],
            endpoints.len()
        ));
    }
    let label = cell_label(cell);
    let mut measured = Vec::new();
    for repetition in 0..cell.timing.repeat {
        let folder = if cell.timing.repeat > 1 {
            format!("{}-r{}", cell.id, repetition + 1)
        } else {
            cell.id.clone()
        };
        let work_dir = ctx.dir.root.join("logs").join("locust").join(folder);
        std::fs::create_dir_all(&work_dir).map_err(|error| crate::results::ResultsError::Io {
            path: work_dir.clone(),
            error,
        })?;
        let mut spec =
            crate::engine::locust::LocustSpec::new(cfg.locustfile.clone(), &endpoints[0], work_dir);
        spec.users = *users;
        spec.spawn_rate = spawn_rate.unwrap_or(0.0);
        spec.workers = cell.load.workers as usize;
        spec.external_workers = cfg.workers_at == crate::plan::spanned::WorkersAt::External;
        spec.master_bind = cfg.master_bind.clone();
        spec.tags = cfg.tags.clone();
        spec.user_classes = cfg.user_classes.clone();
        spec.args = cfg.args.clone();
        spec.warmup = cell.timing.warmup;
        spec.duration = cell.timing.duration;
        if spec.external_workers {
            let msg = format!(
                "waiting for {} external Locust worker(s): on each load host run `locust --worker -f - --master-host <this host> --master-port 5557` (master bound to {})",
                spec.workers, spec.master_bind
            );
            ctx.say(&msg);
            events.push(msg);
        }
        let (warmup, total) = (spec.warmup, spec.warmup + spec.duration);
        let (stats, samples) = run_sampled(
            ctx,
            &label,
            repetition,
            warmup,
            total,
            0.0,
            move |cancel, progress| {
                crate::engine::locust::run_locust(&spec, cancel, progress).map_err(StepError::from)
            },
        )
        .await?;
        if let Some(m) = record(ctx, stats, samples, events).await {
            measured.push(m);
        } else {
            return Err(StepError::InterruptedWith(measured));
        }
    }
    Ok(StepOutput::Measured {
        reps: measured,
        baseline: None,
    })
}

/// One repetition's measurement, with a replica that died during it noted;
/// None when the run was stopped before its window ended.
async fn record(
    ctx: &StepContext,
    stats: CellStats,
    samples: Vec<SystemSample>,
    events: &mut Events,
) -> Option<Measurement> {
    for w in &stats.warnings {
        events.push(format!("engine: {w}"));
    }
    if stats.cancelled {
        return None;
    }
    let died = match ctx.backend.lock().await.as_mut() {
        Some(b) => b.exited().await,
        None => None,
    };
    let degraded = died
        .map(|d| {
            format!(
                "degraded: a replica died mid-cell, within the {:.0} s measured: {d}",
                stats.measured_secs
            )
        })
        .or_else(|| stats.degraded.as_ref().map(|d| format!("degraded: {d}")));
    if let Some(msg) = &degraded {
        events.push(msg.clone());
    }
    Some(Measurement {
        stats,
        samples,
        degraded,
    })
}

/// The native engine run and a sampler of the system under test, side by side.
async fn run_one(
    ctx: &StepContext,
    spec: LoadSpec,
    label: &str,
    repetition: u64,
    offset: f64,
) -> Result<(CellStats, Vec<SystemSample>), StepError> {
    let (warmup, total) = (spec.warmup, spec.warmup + spec.duration);
    run_sampled(
        ctx,
        label,
        repetition,
        warmup,
        total,
        offset,
        move |cancel, progress| engine::run_load(&spec, cancel, progress).map_err(StepError::from),
    )
    .await
}

/// Runs a blocking engine on its own thread while the system under test is
/// sampled every second.
async fn run_sampled<F>(
    ctx: &StepContext,
    label: &str,
    repetition: u64,
    warmup: Duration,
    total: Duration,
    offset: f64,
    engine_fn: F,
) -> Result<(CellStats, Vec<SystemSample>), StepError>
where
    F: FnOnce(CancelToken, &dyn Fn(ProgressTick)) -> Result<CellStats, StepError> + Send + 'static,
{
    let cancel = ctx.cancel.clone();
    let warmup = warmup.as_secs_f64();
    let progress = Progress::new(label.to_string(), total, repetition);
    let engine_task = tokio::task::spawn_blocking(move || {
        let r = engine_fn(cancel, &|tick| progress.tick(&tick));
        // A stopped cell's bar stays where the stop found it.
        progress.finish(r.as_ref().map_or(true, |s| s.cancelled));
        r
    });
    let groups = match ctx.backend.lock().await.as_ref() {
        Some(b) => b.process_groups(),
        None => Vec::new(),
    };
    let mut meters: Vec<(String, CpuMeter)> = groups
        .into_iter()
        .map(|(l, p)| (l, CpuMeter::group(p)))
        .collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    tokio::pin!(engine_task);
    let stats = loop {
        tokio::select! {
            joined = &mut engine_task => break joined,
            _ = tick.tick() => {
                let t = started.elapsed().as_secs_f64() - warmup + offset;
                let t = (t * 1000.0).round() / 1000.0;
                for (label, meter) in &mut meters {
                    if let Some((cpu_pct, mem_bytes)) = meter.sample() {
                        samples.push(SystemSample { t, replica: label.clone(), cpu_pct, mem_bytes });
                    }
                }
                if meters.is_empty()
                    && let Some(b) = ctx.backend.lock().await.as_mut()
                {
                    samples.extend(b.sample(t).await);
                }
            }
        }
    };
    let stats = stats.map_err(|e| StepError::failed(format!("load engine crashed: {e}")))??;
    Ok((stats, samples))
}

/// In the closed model a stalled system silences the users waiting on it, so
/// the stall shows as missing requests, not as latency. A second with less
/// than half the median throughput is the sign.
pub fn closed_model_stall_warning(stats: &CellStats) -> Option<String> {
    let mut rates: Vec<f64> = stats.timeline.iter().map(|r| r.rps).collect();
    if rates.len() < 3 {
        return None;
    }
    let low = stats
        .timeline
        .iter()
        .min_by(|a, b| a.rps.total_cmp(&b.rps))?;
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    (median > 0.0 && low.rps < 0.5 * median).then(|| {
        format!(
            "closed model: throughput fell to {:.0}/s in second {} (median {median:.0}/s); users waiting on a stalled system send nothing, so latency percentiles may under-report (coordinated omission). Measure latency with the open model (`rate`).",
            low.rps, low.t
        )
    })
}

fn stages(cell: &Cell) -> Vec<(Model, Duration)> {
    match &cell.load.model {
        LoadModel::Closed {
            users,
            spawn_rate,
            think_time,
        } => vec![(
            Model::Closed {
                users: *users,
                spawn_rate: spawn_rate.unwrap_or(0.0),
                think_min: think_time.min,
                think_max: think_time.max,
            },
            cell.timing.duration,
        )],
        LoadModel::Open {
            stages,
            max_in_flight,
        } if stages.len() == 1 && stages[0].duration.is_zero() => vec![(
            Model::Open {
                rate: stages[0].rate,
                max_in_flight: *max_in_flight,
            },
            cell.timing.duration,
        )],
        LoadModel::Open {
            stages,
            max_in_flight,
        } => stages
            .iter()
            .map(|s| {
                (
                    Model::Open {
                        rate: s.rate,
                        max_in_flight: *max_in_flight,
                    },
                    s.duration,
                )
            })
            .collect(),
    }
}

fn request_specs(plan: &Arc<Plan>, c: usize) -> Result<Vec<RequestSpec>, StepError> {
    let cell = &plan.cells[c];
    let ctx = plan.cell_context(c, None);
    let mut out = Vec::new();
    for r in &cell.load.requests {
        let mut bodies: Vec<Bytes> = Vec::new();
        if let Some(template) = &r.body {
            for _ in 0..BODY_VARIANTS {
                let body = plan
                    .templates
                    .render(template, &ctx)
                    .map_err(|e| StepError::failed(format!("body of `{}`: {e}", r.name)))?;
                let body = Bytes::from(body);
                if bodies.first() == Some(&body) {
                    break;
                }
                bodies.push(body);
            }
        }
        let mut headers = r.headers.clone();
        if r.body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        out.push(RequestSpec {
            name: r.name.clone(),
            method: r.method.as_str().to_string(),
            path: r.path.clone(),
            headers,
            bodies,
            weight: u32::try_from(r.weight).unwrap_or(u32::MAX),
            expect_status: r.expect_status,
            stream: r.stream,
        });
    }
    Ok(out)
}

pub fn cell_label(cell: &Cell) -> String {
    if cell.matrix.is_empty() {
        return format!("[{}]", cell.id);
    }
    let parts: Vec<String> = cell
        .matrix
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("[{}]", parts.join(" "))
}

/// One progress line per cell: a bar on a terminal, plain lines otherwise.
struct Progress {
    label: String,
    total: Duration,
    bar: Option<indicatif::ProgressBar>,
    last_plain: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    fn new(label: String, total: Duration, repetition: u64) -> Self {
        let label = if repetition > 0 {
            format!("{label} (repeat {})", repetition + 1)
        } else {
            label
        };
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
            let style =
                indicatif::ProgressStyle::with_template("{prefix} {bar:10} {percent:>3}% | {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("█░");
            bar.set_style(style);
            bar.set_prefix(label.clone());
            bar
        });
        Progress {
            label,
            total,
            bar,
            last_plain: std::sync::Mutex::new(None),
        }
    }

    fn tick(&self, t: &ProgressTick) {
        let fmt_ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}ms"));
        let phase = match t.phase {
            engine::Phase::Warmup => "warm-up | ",
            engine::Phase::Measure => "",
            engine::Phase::Drain => "draining | ",
        };
        let msg = format!(
            "{phase}RPS {:.1} | p50 {} | p95 {} | reqs {} | fails {}",
            t.rps,
            fmt_ms(t.p50_ms),
            fmt_ms(t.p95_ms),
            t.requests,
            t.failures
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(t.elapsed.as_millis().min(self.total.as_millis()) as u64);
                bar.set_message(msg);
            }
            None => {
                let mut last = self.last_plain.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|l| l.elapsed() >= Duration::from_secs(5)) {
                    *last = Some(Instant::now());
                    let pct = (t.elapsed.as_secs_f64() / self.total.as_secs_f64().max(0.001)
                        * 100.0)
                        .min(100.0);
                    eprintln!("{} {pct:>3.0}% | {msg}", self.label);
                }
            }
        }
    }

    fn finish(&self, stopped: bool) {
        if let Some(bar) = &self.bar {
            if stopped {
                bar.abandon();
                return;
            }
            bar.finish();
        }
    }
}
