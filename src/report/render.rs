//! Reports: the plan's templates (or the embedded defaults) rendered over the
//! summary, threshold results and cells; summary.csv, summary.json,
//! junit.xml and the chart files beside them.

use std::path::{Path, PathBuf};

use minijinja::Value;

use super::charts::Chart;
use crate::analysis::AnalysisResult;
use crate::plan::{Plan, ReportTemplate};
use crate::results::{Manifest, ResultsError, RunDir, summary};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("cannot read report template {}: {error}", path.display())]
    ReadTemplate {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("no embedded template `{0}`")]
    NoEmbedded(String),
    /// "report template FILE:LINE: `expr` is undefined" and the like.
    #[error("{0}")]
    Template(String),
    /// A stop signal arrived while a template rendered; it was left unfinished.
    #[error("interrupted while rendering report template {0}")]
    Interrupted(String),
}

pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "summary.md.j2",
        include_str!("../../report-templates/summary.md.j2"),
    ),
    (
        "cell.md.j2",
        include_str!("../../report-templates/cell.md.j2"),
    ),
    (
        "report.html.j2",
        include_str!("../../report-templates/report.html.j2"),
    ),
];

pub fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Renders each (template, output) into the run folder.
pub fn render_reports(
    dir: &RunDir,
    plan: &Plan,
    manifest: &Manifest,
    analysis: &AnalysisResult,
    specs: &[(ReportTemplate, String)],
    step_summary: bool,
) -> Result<(), ReportError> {
    let status = manifest.status.as_str();
    let axes = plan.row_axes();
    let charts = super::charts::charts(&analysis.analysis, &axes, plan.roles());
    let frontier = super::frontier::frontier(&analysis.capacity, &plan.axes, plan.roles());
    let search = plan.search.as_ref().map(|s| {
        minijinja::context! {
            over => s.over.as_str(),
            from => s.from,
            to => s.to,
            tolerance_pct => s.tolerance * 100.0,
            max_probes => s.max_probes(),
            slo => Value::from(minijinja::value::Serde(&s.slo)),
        }
    });
    let mut cells = crate::report::cells::cell_contexts(&dir.root, manifest);
    add_scrape_charts(dir, plan, &mut cells)?;
    let scrape: Vec<serde_json::Value> = plan
        .scrapes
        .iter()
        .flat_map(|s| &s.series)
        .map(|x| {
            serde_json::json!({
                "column": x.column,
                "metric": x.metric,
                "latency": x.kind() == crate::metrics::MetricKind::Latency,
                "p95": x.agg == crate::plan::model::Agg::Quantile(0.95),
                "names": x.names,
                // The client has one figure for one name, or for all.
                "comparable": x.names.len() <= 1,
            })
        })
        .collect();
    let by_name: Vec<serde_json::Value> = analysis
        .rows
        .iter()
        .flat_map(|r| {
            r.by_name.iter().map(|(name, metrics)| {
                serde_json::json!({
                    "cell": r.cell,
                    "matrix": r.matrix,
                    "name": name,
                    "metrics": metrics,
                })
            })
        })
        .collect();
    let ctx = minijinja::context! {
        by_name => Value::from(minijinja::value::Serde(&by_name)),
        plan => minijinja::context! {
            name => plan.name.clone(),
            description => plan.description.clone(),
            file => plan.file.display().to_string(),
            hash => plan.hash.clone(),
            axes => axes,
            matrix_axes => plan.axes.clone(),
            cells => if plan.search.is_some() { manifest.cells.len() } else { plan.cells.len() },
        },
        run => minijinja::context! {
            id => manifest.run_id.clone(),
            dir => dir.root.display().to_string(),
            status => status,
            started => manifest.started.clone(),
            finished => manifest.finished.clone(),
            tool_version => manifest.tool_version.clone(),
        },
        cells => Value::from(minijinja::value::Serde(&cells)),
        summary => Value::from(minijinja::value::Serde(&analysis.rows)),
        thresholds => Value::from(minijinja::value::Serde(&analysis.thresholds)),
        findings => Value::from(minijinja::value::Serde(&analysis.analysis.findings)),
        recommendations => Value::from(minijinja::value::Serde(&analysis.analysis.recommendations)),
        scaling => Value::from(minijinja::value::Serde(&analysis.analysis.scaling)),
        charts => Value::from(minijinja::value::Serde(&charts)),
        slo => Value::from(minijinja::value::Serde(&plan.analysis.slo)),
        scrape => Value::from(minijinja::value::Serde(&scrape)),
        search => search,
        capacity => Value::from(minijinja::value::Serde(&analysis.capacity)),
        frontier => Value::from(minijinja::value::Serde(&frontier)),
        frontier_svg => frontier.as_ref().and_then(|f| f.svg.clone()),
        timeline => Value::from(minijinja::value::Serde(&super::timeline::run_timeline(&dir.root, manifest))),
    };
    for (template, output) in specs {
        let (name, source) = match template {
            ReportTemplate::File(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|error| ReportError::ReadTemplate {
                    path: p.clone(),
                    error,
                })?,
            ),
            ReportTemplate::Embedded(n) => (
                n.clone(),
                embedded(n)
                    .ok_or_else(|| ReportError::NoEmbedded(n.clone()))?
                    .to_string(),
            ),
        };
        let text = render_stoppable(plan, &name, &source, &ctx)?;
        dir.write(output, text.as_bytes())?;
        if step_summary && output == "report.md" {
            append_step_summary(&dir.redact(&text));
        }
    }
    // One page per measured cell, beside its files.
    let cell_template = embedded("cell.md.j2").unwrap_or_default();
    for cell in &cells {
        if cell.get("measured") != Some(&serde_json::Value::Bool(true)) {
            continue;
        }
        let id = cell.get("id").and_then(|v| v.as_str()).unwrap_or_default();
        let cell_ctx = minijinja::context! { cell => Value::from(minijinja::value::Serde(cell)), ..ctx.clone() };
        let text = render_stoppable(plan, "cell.md.j2", cell_template, &cell_ctx)?;
        dir.write_in_cell(id, "cell.md", text.as_bytes())?;
    }
    Ok(())
}

/// Renders one document on a thread of its own and waits for it while no
/// SIGINT or SIGTERM arrives: a stop signal leaves the thread behind (the
/// process is about to exit) and returns at once, so no template, however
/// slow, holds up Ctrl-C.
fn render_stoppable(
    plan: &Plan,
    name: &str,
    source: &str,
    ctx: &Value,
) -> Result<String, ReportError> {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    // Counted from the first report on: until then a signal keeps its usual
    // effect (the default action, or the run's own watcher).
    crate::cancel::count_stop_signals();
    let signals = crate::cancel::stop_signals();
    let (env, text, owned) = (plan.templates.documents(), source.to_string(), ctx.clone());
    let (tx, rx) = channel();
    let spawned = std::thread::Builder::new()
        .name("report".into())
        .spawn(move || {
            let _ = tx.send(crate::plan::template::render_document_with(
                &env, &text, &owned,
            ));
        });
    if spawned.is_err() {
        // No thread to spare: render here, still within the fuel budget.
        return plan
            .templates
            .render_document(source, ctx)
            .map_err(|e| ReportError::Template(template_error(name, source, &e)));
    }
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(r) => return r.map_err(|e| ReportError::Template(template_error(name, source, &e))),
            Err(RecvTimeoutError::Timeout) if crate::cancel::stop_signals() != signals => {
                return Err(ReportError::Interrupted(name.to_string()));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ReportError::Template(format!(
                    "report template {name}: rendering stopped unexpectedly"
                )));
            }
        }
    }
}

/// Draws each `[[scrape]]` series per replica into the cell folders
/// (`scrape-<column>.svg`) and lists them in the cells' contexts.
fn add_scrape_charts(
    dir: &RunDir,
    plan: &Plan,
    cells: &mut [serde_json::Value],
) -> Result<(), ReportError> {
    let series: Vec<crate::plan::model::Series> =
        plan.scrapes.iter().flat_map(|s| s.series.clone()).collect();
    if series.is_empty() {
        return Ok(());
    }
    for cell in cells.iter_mut() {
        let Some(id) = cell.get("id").and_then(|v| v.as_str()).map(str::to_string) else {
            continue;
        };
        // With repeats, the last repetition is drawn.
        let Some(samples) = crate::results::files::read_metrics(&dir.root, &id).pop() else {
            continue;
        };
        let mut listed = Vec::new();
        for (column, svg) in super::scraped::cell_charts(&series, &samples) {
            let file = format!("scrape-{column}.svg");
            dir.write_in_cell(&id, &file, svg.as_bytes())?;
            listed.push(serde_json::json!({ "column": column, "file": file }));
        }
        if let Some(obj) = cell.as_object_mut() {
            obj.insert("scrape_charts".into(), serde_json::Value::Array(listed));
        }
    }
    Ok(())
}

/// summary.csv, summary.json, junit.xml and the chart files of an analysis.
pub fn write_summary(
    dir: &RunDir,
    plan: &Plan,
    result: &AnalysisResult,
) -> Result<(), ReportError> {
    let axes = plan.row_axes();
    let charts: Vec<Chart> = super::charts::charts(&result.analysis, &axes, plan.roles());
    let extra: Vec<String> = plan.scrape_columns().into_iter().map(|(c, _)| c).collect();
    dir.write(
        "summary.csv",
        summary::summary_csv(&axes, &extra, &result.rows).as_bytes(),
    )?;
    if result.rows.iter().any(|r| !r.by_name.is_empty()) {
        dir.write(
            "summary_by_name.csv",
            summary::summary_by_name_csv(&axes, &result.rows).as_bytes(),
        )?;
    }
    if let Some(ab) = &plan.analysis.ab {
        dir.write(
            "ab.csv",
            crate::analysis::ab::csv(&axes, &ab.axis, &result.ab).as_bytes(),
        )?;
    }
    let mut columns: Vec<String> = crate::metrics::columns()
        .iter()
        .map(|c| c.to_string())
        .collect();
    columns.extend(extra);
    if plan.search.is_some() {
        dir.write(
            "capacity.csv",
            crate::search::capacity_csv(&plan.axes, &result.capacity).as_bytes(),
        )?;
        if let Some(svg) = super::frontier::frontier(&result.capacity, &plan.axes, plan.roles())
            .and_then(|f| f.svg)
        {
            dir.write(&format!("{}.svg", super::frontier::CHART), svg.as_bytes())?;
        }
    }
    let json = serde_json::json!({
        "plan": plan.name,
        "run": dir.id(),
        "columns": columns,
        "rows": result.rows,
        "findings": result.analysis.findings,
        "recommendations": result.analysis.recommendations,
        "scaling": result.analysis.scaling,
        "thresholds": result.thresholds,
    });
    let mut json = json;
    if plan.search.is_some() {
        json["capacity"] = serde_json::json!(result.capacity);
    }
    let mut text = serde_json::to_vec_pretty(&json).unwrap_or_default();
    text.push(b'\n');
    dir.write("summary.json", &text)?;
    dir.write(
        "junit.xml",
        super::junit::junit_xml(&plan.name, &result.thresholds).as_bytes(),
    )?;
    for chart in &charts {
        dir.write(&format!("{}.svg", chart.id), chart.svg.as_bytes())?;
    }
    Ok(())
}

/// "report template FILE:LINE: `expr` is undefined" and the like.
fn template_error(name: &str, source: &str, e: &minijinja::Error) -> String {
    let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    // The error's range may cover only the failing attribute; name the whole
    // `{{ ... }}` expression around it.
    let snippet = e
        .range()
        .and_then(|r| {
            let open = source.get(..r.start)?.rfind("{{").map(|i| i + 2)?;
            let close = source.get(r.end..)?.find("}}").map(|i| r.end + i)?;
            source.get(open..close).or_else(|| source.get(r))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match (e.kind(), snippet) {
        (minijinja::ErrorKind::OutOfFuel, _) => format!(
            "report template {name}{line}: does more work than a report may ({} units of fuel): a loop that never ends, or one over far more items than the run has?",
            crate::base::limits::thousands(u128::from(crate::base::limits::REPORT_FUEL))
        ),
        (minijinja::ErrorKind::UndefinedError, Some(expr)) => format!(
            "report template {name}{line}: `{expr}` is undefined (the context is documented in docs/templates.md)"
        ),
        _ => format!("report template {name}{line}: {e}"),
    }
}

/// GitHub Actions shows this file on the run page.
fn append_step_summary(text: &str) {
    if let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY")
        && !path.is_empty()
    {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(&path))
        {
            let _ = writeln!(f, "{text}");
        }
    }
}
