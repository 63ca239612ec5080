//! Reports: the plan's templates (or the embedded defaults) rendered over the
//! summary, threshold results and cells.

use std::path::Path;

use minijinja::Value;

use crate::plan::{Plan, ReportTemplate, StepConfig};
use crate::results::{Manifest, RunDir};
use crate::run::state::RunState;
use crate::steps::StepError;
use crate::steps::analyze::AnalysisResult;

pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "summary.md.j2",
        include_str!("../../report-templates/summary.md.j2"),
    ),
    (
        "cell.md.j2",
        include_str!("../../report-templates/cell.md.j2"),
    ),
];

pub fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// `step_summary`: also append report.md to `$GITHUB_STEP_SUMMARY` (done once,
/// by the final rendering of a run).
pub async fn report(
    state: &RunState,
    declared: Option<&StepConfig>,
    step_summary: bool,
) -> Result<(), StepError> {
    let analysis = state.analysis.lock().await.clone().unwrap_or_default();
    let manifest = state.manifest.lock().await.clone();
    let specs: Vec<(ReportTemplate, String)> = match declared {
        Some(cfg) => vec![(
            match &cfg.template {
                Some(p) if p.is_file() => ReportTemplate::File(p.clone()),
                Some(p) => ReportTemplate::Embedded(
                    p.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                None => ReportTemplate::Embedded("summary.md.j2".into()),
            },
            cfg.output.clone().unwrap_or_else(|| "report.md".into()),
        )],
        None => state
            .plan
            .reports
            .iter()
            .map(|r| (r.template.clone(), r.output.clone()))
            .collect(),
    };
    render_reports(
        &state.dir,
        &state.plan,
        &manifest,
        &analysis,
        &state.secrets,
        &specs,
        step_summary,
    )
    .map_err(StepError::new)
}

/// Renders each (template, output) into the run folder.
pub fn render_reports(
    dir: &RunDir,
    plan: &Plan,
    manifest: &Manifest,
    analysis: &AnalysisResult,
    secrets: &[String],
    specs: &[(ReportTemplate, String)],
    step_summary: bool,
) -> Result<(), String> {
    let status = format!("{:?}", manifest.status).to_lowercase();
    let cells = crate::report::cells::cell_contexts(&dir.root, manifest);
    let ctx = minijinja::context! {
        plan => minijinja::context! {
            name => plan.name.clone(),
            description => plan.description.clone(),
            file => plan.file.display().to_string(),
            hash => plan.hash.clone(),
            axes => plan.axes.clone(),
            cells => plan.cells.len(),
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
        charts => Value::from(minijinja::value::Serde(&analysis.charts)),
        slo => Value::from(minijinja::value::Serde(&plan.analysis.slo)),
    };
    for (template, output) in specs {
        let (name, source) = match template {
            ReportTemplate::File(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read report template {}: {e}", p.display()))?,
            ),
            ReportTemplate::Embedded(n) => (
                n.clone(),
                embedded(n)
                    .ok_or_else(|| format!("no embedded template `{n}`"))?
                    .to_string(),
            ),
        };
        let text = plan
            .templates
            .render(&source, &ctx)
            .map_err(|e| template_error(&name, &source, &e))?;
        let text = crate::plan::template::redact(&text, secrets);
        dir.write(output, text.as_bytes())
            .map_err(|e| format!("cannot write {output}: {e}"))?;
        if step_summary && output == "report.md" {
            append_step_summary(&text);
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
        let text = plan
            .templates
            .render(cell_template, &cell_ctx)
            .map_err(|e| template_error("cell.md.j2", cell_template, &e))?;
        let text = crate::plan::template::redact(&text, secrets);
        let path = dir.cell_dir(id).join("cell.md");
        crate::results::write_atomic(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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
