//! The load step: warm-up and measured window of one cell with the native
//! engine, while the system under test is sampled every second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::engine::{
    self, CancelToken, CellStats, Endpoint, LoadSpec, Model, ProgressTick, RequestSpec,
};
use crate::plan::model::ScrapeTarget;
use crate::plan::spanned::{Engine as EngineKind, HttpVersion};
use crate::plan::{Cell, LoadModel, Plan};
use crate::scrape::aggregate::aggregate;
use crate::scrape::scraper;
use crate::system::SystemSample;
use crate::system::proc_stats::CpuMeter;

use super::{Events, Measurement, StepContext, StepError, StepOutput};
use crate::results::record::Baseline;

/// Pre-rendered variants of each body template: templates with `random`
/// differ per variant; the engine cycles through them.
const BODY_VARIANTS: usize = 16;

pub async fn load(
    ctx: &StepContext,
    cell: &Cell,
    known: Option<Baseline>,
    only: Option<u64>,
    events: &mut Events,
) -> Result<StepOutput, StepError> {
    let plan = ctx.plan.clone();
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
        return locust(ctx, cell, &endpoints, known, only, events).await;
    }
    let endpoints = endpoints
        .iter()
        .map(|u| Endpoint::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let requests = request_specs(&plan, cell)?;
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
    let jobs = scrape_jobs(ctx, &plan).await;
    let mut measured = Vec::new();
    for repetition in repetitions(cell, only) {
        let mut parts = Vec::new();
        let mut samples = Vec::new();
        let mut scraped = scraper::Scraped::default();
        for (i, (model, duration)) in stages.iter().enumerate() {
            let warmup = if i == 0 {
                cell.timing.warmup
            } else {
                Duration::ZERO
            };
            let spec = load_spec(ctx, cell, (&endpoints, &requests), model, warmup, *duration);
            let offset: f64 = parts.iter().map(|p: &CellStats| p.measured_secs).sum();
            let (stats, stage_samples, stage_scraped) =
                run_one(ctx, spec, repetition, offset, jobs.clone()).await?;
            samples.extend(stage_samples);
            scraped.extend(stage_scraped);
            let cancelled = stats.cancelled;
            parts.push(stats);
            if cancelled {
                break;
            }
        }
        if cell.probe.is_some() && !parts.iter().any(|p| p.cancelled) {
            steady(
                ctx,
                cell,
                &stages,
                (endpoints.as_slice(), requests.as_slice()),
                (repetition, &jobs),
                &mut parts,
                (&mut samples, &mut scraped),
                events,
            )
            .await?;
        }
        let Some(mut stats) = CellStats::combine_sequential(parts) else {
            continue;
        };
        if matches!(cell.load.model, LoadModel::Closed { .. })
            && let Some(w) = super::stall::closed_model_stall_warning(&stats)
        {
            stats.warnings.push(w);
        }
        if let Some(m) = record(ctx, stats, samples, scraped, events).await {
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

/// The repetitions a load step measures: the one asked for, or all.
fn repetitions(cell: &Cell, only: Option<u64>) -> std::ops::Range<u64> {
    match only {
        Some(r) => r..r + 1,
        None => 0..cell.timing.repeat,
    }
}

/// One measured stretch of the cell's load: its model, warm-up and length.
fn load_spec(
    ctx: &StepContext,
    cell: &Cell,
    (endpoints, requests): (&[Endpoint], &[RequestSpec]),
    model: &Model,
    warmup: Duration,
    duration: Duration,
) -> LoadSpec {
    LoadSpec {
        endpoints: endpoints.to_vec(),
        requests: requests.to_vec(),
        model: model.clone(),
        workers: cell.load.workers as usize,
        warmup,
        duration,
        request_timeout: cell.load.timeout,
        slo: ctx.plan.engine_slo(),
        transport: transport(&ctx.plan, cell),
    }
}

/// How a cell's native-engine requests travel: HTTP version,
/// connections and the plan's `[tls]`.
fn transport(plan: &Plan, cell: &Cell) -> engine::Transport {
    engine::Transport {
        http: match cell.load.http {
            HttpVersion::Http1 => engine::HttpVersion::Http1,
            HttpVersion::Http2 => engine::HttpVersion::Http2,
        },
        connections: cell.load.connections,
        tls: plan.tls.clone(),
    }
}

/// What `[[scrape]]` fetches in this cell: the path on every replica
/// endpoint (the load target when the backend has none), or the fixed URL.
async fn scrape_jobs(ctx: &StepContext, plan: &Plan) -> Vec<scraper::Job> {
    if plan.scrapes.is_empty() {
        return Vec::new();
    }
    let mut replicas = match ctx.backend.lock().await.as_ref() {
        Some(b) => b.endpoints(),
        None => Vec::new(),
    };
    if replicas.is_empty() {
        replicas.extend(plan.cells.first().and_then(|c| c.load.base_url.clone()));
    }
    plan.scrapes
        .iter()
        .map(|s| {
            let targets = match &s.target {
                ScrapeTarget::Path(path) => replicas
                    .iter()
                    .map(|e| scraper::Target {
                        replica: scraper::authority(e),
                        url: format!("{}{path}", e.trim_end_matches('/')),
                    })
                    .collect(),
                ScrapeTarget::Url(url) => vec![scraper::Target {
                    replica: scraper::authority(url),
                    url: url.clone(),
                }],
            };
            scraper::Job {
                name: s.name.clone(),
                targets,
                interval: s.interval,
                families: s.series.iter().map(|x| x.metric.clone()).collect(),
                tls: plan.tls.clone(),
            }
        })
        .collect()
}

/// A search probe is judged only once its throughput is steady: while the
/// RPS of its last three seconds spreads more than 10% of their mean (and
/// more than counting noise), it is
/// measured again for its duration, up to three times its duration in all.
/// One that never steadies carries the `unstable:` warning (judged failing).
#[allow(clippy::too_many_arguments)]
async fn steady(
    ctx: &StepContext,
    cell: &Cell,
    stages: &[(Model, Duration)],
    (endpoints, requests): (&[Endpoint], &[RequestSpec]),
    (repetition, jobs): (u64, &[scraper::Job]),
    parts: &mut Vec<CellStats>,
    (samples, scraped): (&mut Vec<SystemSample>, &mut scraper::Scraped),
    events: &mut Events,
) -> Result<(), StepError> {
    use crate::search::stability::{Steadiness, judge};
    let Some((model, duration)) = stages.last().cloned() else {
        return Ok(());
    };
    let mut measured = 1;
    loop {
        match judge(&cell.id, parts, measured, duration) {
            Steadiness::Steady => return Ok(()),
            Steadiness::Unstable(warning) => {
                if let Some(last) = parts.last_mut() {
                    last.warnings.push(warning);
                }
                return Ok(());
            }
            Steadiness::MeasureMore(event) => events.push(event),
        }
        measured += 1;
        let spec = load_spec(
            ctx,
            cell,
            (endpoints, requests),
            &model,
            Duration::ZERO,
            duration,
        );
        let offset: f64 = parts.iter().map(|p| p.measured_secs).sum();
        let (more, more_samples, more_scraped) =
            run_one(ctx, spec, repetition, offset, jobs.to_vec()).await?;
        samples.extend(more_samples);
        scraped.extend(more_scraped);
        let cancelled = more.cancelled;
        parts.push(more);
        if cancelled {
            return Ok(());
        }
    }
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
        transport: transport(&ctx.plan, cell),
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
    let weights = requests
        .iter()
        .map(|r| (r.name.clone(), f64::from(r.weight)))
        .fold(indexmap::IndexMap::new(), |mut m, (n, w)| {
            *m.entry(n).or_insert(0.0) += w;
            m
        });
    let b = Baseline::of(&cell.id, &stats, Some(&weights));
    events.push(baseline_line("one user", &b));
    Ok(Some(b))
}

fn baseline_line(how: &str, b: &Baseline) -> String {
    let names = if b.by_name.len() > 1 {
        let parts: Vec<String> = b
            .by_name
            .iter()
            .map(|(n, ms)| format!("{n} {ms:.2} ms"))
            .collect();
        format!(" (per name: {}; weighted by the mix)", parts.join(", "))
    } else {
        String::new()
    };
    format!(
        "baseline: {how}, {} requests in {:.1} s, mean {:.2} ms{names}, p95 {:.2} ms",
        b.requests, b.duration_secs, b.mean_ms, b.p95_ms
    )
}

/// One Locust user running the locustfile for `[analysis] baseline`: the
/// unloaded latency of the locustfile's own requests, measured by the same
/// client as the cell (Locust's own overhead is in both). The locustfile's
/// mix is unknown to the plan, so the names are weighted by how often the
/// user sent each. None when no request succeeded.
async fn locust_baseline(
    ctx: &StepContext,
    cell: &Cell,
    mut spec: crate::engine::locust::LocustSpec,
    events: &mut Events,
) -> Result<Option<Baseline>, StepError> {
    spec.users = 1;
    spec.spawn_rate = 0.0;
    spec.workers = 1;
    spec.warmup = Duration::ZERO;
    spec.duration = ctx.plan.analysis.baseline;
    spec.work_dir = spec
        .work_dir
        .with_file_name(format!("{}-baseline", cell.id));
    create_dir(&spec.work_dir)?;
    let cancel = ctx.cancel.clone();
    let stats = tokio::task::spawn_blocking(move || {
        crate::engine::locust::run_locust(&spec, cancel, &|_| {})
    })
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
    let b = Baseline::of(&cell.id, &stats, None);
    events.push(baseline_line("one Locust user", &b));
    Ok(Some(b))
}

fn create_dir(dir: &std::path::Path) -> Result<(), StepError> {
    std::fs::create_dir_all(dir).map_err(|error| {
        crate::results::ResultsError::Io {
            path: dir.to_path_buf(),
            error,
        }
        .into()
    })
}

/// `engine = "locust"`: the user's locustfile, run by Locust's own master and
/// workers, ingested into the same statistics.
async fn locust(
    ctx: &StepContext,
    cell: &Cell,
    endpoints: &[String],
    known: Option<Baseline>,
    only: Option<u64>,
    events: &mut Events,
) -> Result<StepOutput, StepError> {
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
        return Err(StepError::failed(format!(
            "engine \"locust\" sends to one host, but the system has {} replica endpoints and the plan no `load.base_url`; \
             put a load balancer in front and set `load.base_url` to it",
            endpoints.len()
        )));
    }
    let baseline = match known {
        Some(b) => {
            events.push(format!(
                "baseline: {:.2} ms mean latency, measured in cell {}",
                b.mean_ms, b.measured_in
            ));
            Some(b)
        }
        None if !ctx.plan.analysis.baseline.is_zero() => {
            let work_dir = ctx.dir.root.join("logs").join("locust").join(&cell.id);
            let mut spec = crate::engine::locust::LocustSpec::new(
                cfg.locustfile.clone(),
                &endpoints[0],
                work_dir,
            );
            spec.tags = cfg.tags.clone();
            spec.user_classes = cfg.user_classes.clone();
            spec.args = cfg.args.clone();
            spec.redactor = ctx.dir.redactor().clone();
            locust_baseline(ctx, cell, spec, events).await?
        }
        None => None,
    };
    let jobs = scrape_jobs(ctx, &ctx.plan).await;
    let mut measured = Vec::new();
    for repetition in repetitions(cell, only) {
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
        spec.redactor = ctx.dir.redactor().clone();
        spec.ca_bundle = ctx.plan.tls.as_ref().and_then(|t| t.ca.clone());
        spec.insecure = ctx.plan.tls.as_ref().is_some_and(|t| t.insecure);
        if spec.external_workers {
            let msg = format!(
                "waiting for {} external Locust worker(s): on each load host run `locust --worker -f - --master-host <this host> --master-port 5557` (master bound to {})",
                spec.workers, spec.master_bind
            );
            ctx.say(&msg);
            events.push(msg);
        }
        let (warmup, total) = (spec.warmup, spec.warmup + spec.duration);
        let (stats, samples, scraped) = run_sampled(
            ctx,
            repetition,
            (warmup, total, 0.0),
            jobs.clone(),
            move |cancel, progress| {
                crate::engine::locust::run_locust(&spec, cancel, progress).map_err(StepError::from)
            },
        )
        .await?;
        if let Some(m) = record(ctx, stats, samples, scraped, events).await {
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

/// One repetition's measurement, with a replica that died during it noted;
/// None when the run was stopped before its window ended.
async fn record(
    ctx: &StepContext,
    stats: CellStats,
    samples: Vec<SystemSample>,
    scraped: scraper::Scraped,
    events: &mut Events,
) -> Option<Measurement> {
    for w in &stats.warnings {
        events.push(format!("engine: {w}"));
        // What TLS did wrong (or did not check) is said at once.
        if w.starts_with("tls: ") || w == crate::engine::INSECURE_TLS {
            ctx.say(w);
        }
    }
    for p in &scraped.problems {
        events.push(p.clone());
    }
    let server = ctx
        .plan
        .scrapes
        .iter()
        .flat_map(|s| &s.series)
        .filter_map(|x| Some((x.column.clone(), aggregate(x, &scraped.samples)?)))
        .collect();
    if stats.cancelled {
        return None;
    }
    // A death the sampler saw is in `stats.degraded`, with its time; one in
    // the last second is found here.
    let died = match ctx.backend.lock().await.as_mut() {
        Some(b) if stats.degraded.is_none() => b.exited().await,
        _ => None,
    };
    let degraded = stats
        .degraded
        .as_ref()
        .map(|d| format!("degraded: {d}"))
        .or_else(|| {
            died.map(|d| {
                format!(
                    "degraded: a replica died mid-cell, after {:.0} s of the measured window: {d}",
                    stats.measured_secs
                )
            })
        });
    if let Some(msg) = &degraded {
        events.push(msg.clone());
    }
    Some(Measurement {
        stats,
        samples,
        degraded,
        scraped: scraped.samples,
        server,
    })
}

/// The native engine run and a sampler of the system under test, side by side.
async fn run_one(
    ctx: &StepContext,
    spec: LoadSpec,
    repetition: u64,
    offset: f64,
    jobs: Vec<scraper::Job>,
) -> Result<(CellStats, Vec<SystemSample>, scraper::Scraped), StepError> {
    let (warmup, total) = (spec.warmup, spec.warmup + spec.duration);
    run_sampled(
        ctx,
        repetition,
        (warmup, total, offset),
        jobs,
        move |cancel, progress| engine::run_load(&spec, cancel, progress).map_err(StepError::from),
    )
    .await
}

/// Runs a blocking engine on its own thread while the system under test is
/// sampled every second.
async fn run_sampled<F>(
    ctx: &StepContext,
    repetition: u64,
    (warmup, total, offset): (Duration, Duration, f64),
    jobs: Vec<scraper::Job>,
    engine_fn: F,
) -> Result<(CellStats, Vec<SystemSample>, scraper::Scraped), StepError>
where
    F: FnOnce(CancelToken, &dyn Fn(ProgressTick)) -> Result<CellStats, StepError> + Send + 'static,
{
    let cancel = ctx.cancel.clone();
    let warmup = warmup.as_secs_f64();
    let progress = ctx.progress.clone();
    let total_secs = total.as_secs_f64();
    // The engine says when its measured window began (Locust takes a while
    // to start), and the scrapes cover that window.
    let (window_tx, window_rx) = tokio::sync::watch::channel::<Option<Instant>>(None);
    let warmup_d = Duration::from_secs_f64(warmup);
    let engine_task = tokio::task::spawn_blocking(move || {
        engine_fn(cancel, &|tick| {
            if tick.phase == engine::Phase::Measure && window_tx.borrow().is_none() {
                let into = tick
                    .elapsed
                    .saturating_sub(warmup_d)
                    .min(Duration::from_secs(1));
                let _ = window_tx.send(Some(Instant::now() - into));
            }
            // The dispatcher may be gone when the run is stopping.
            let _ = progress.send(crate::steps::LoadProgress {
                tick,
                warmup_secs: warmup,
                total_secs,
                repetition,
            });
        })
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
    let (stop_scraping, stopped) = tokio::sync::oneshot::channel();
    let scraping = tokio::spawn(scraper::scrape(
        jobs,
        window_rx,
        total.saturating_sub(warmup_d),
        stopped,
    ));
    let mut samples = Vec::new();
    // The first replica death, with when it was seen (seconds into the window).
    let mut died: Option<(f64, String)> = None;
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
                        samples.push(SystemSample { t, replica: label.clone(), cpu_pct, mem_bytes, net_bytes: None });
                    }
                }
                if let Some(b) = ctx.backend.lock().await.as_mut() {
                    if meters.is_empty() {
                        samples.extend(b.sample(t).await);
                    }
                    if died.is_none() {
                        died = b.exited().await.map(|d| (t, d));
                    }
                }
            }
        }
    };
    let _ = stop_scraping.send(());
    let mut scraped = scraping.await.unwrap_or_default();
    for s in &mut scraped.samples {
        s.t = ((s.t + offset) * 1000.0).round() / 1000.0;
    }
    let mut stats = stats.map_err(|e| StepError::failed(format!("load engine crashed: {e}")))??;
    if let Some((t, d)) = died
        && stats.degraded.is_none()
    {
        stats.degraded = Some(if t < 0.0 {
            format!(
                "a replica died during warm-up, {:.0} s before the measured window: {d}",
                -t
            )
        } else {
            format!("a replica died mid-cell, after {t:.0} s of the measured window: {d}")
        });
    }
    Ok((stats, samples, scraped))
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
            cell.load
                .trace
                .as_ref()
                .map_or(cell.timing.duration, |t| t.window()),
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

fn request_specs(plan: &Arc<Plan>, cell: &Cell) -> Result<Vec<RequestSpec>, StepError> {
    let ctx = plan.cell_context(cell, None);
    let mut out = Vec::new();
    for r in &cell.load.requests {
        let mut bodies: Vec<Bytes> = Vec::new();
        let rows = r
            .data
            .as_ref()
            .map(|d| super::rows::render_rows(&plan.templates, r, d, &ctx))
            .transpose()?;
        if let Some(template) = r.body.as_ref().filter(|_| rows.is_none()) {
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
        let per_row = |k: &str| r.row_headers.iter().any(|(h, _)| h == k);
        let mut headers: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| !per_row(k))
            .cloned()
            .collect();
        if r.body.is_some()
            && !r
                .headers
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
            rows,
        });
    }
    Ok(out)
}
