//! `[[report]]`: templates (a file beside the plan or an embedded one) and
//! where each report goes.

use std::collections::HashMap;
use std::path::{Component, Path};

use minijinja::Value;

use super::resolver::Resolver;
use crate::plan::model::*;
use crate::plan::raw::RawPlan;

/// Names of the report templates embedded in the binary.
pub(crate) const EMBEDDED_TEMPLATES: &[&str] = &["summary.md.j2", "cell.md.j2", "report.html.j2"];

/// Every run folder gets `report.html`; a `[[report]]` with that output
/// replaces its template.
fn html_report() -> ReportSpec {
    ReportSpec {
        template: ReportTemplate::Embedded("report.html.j2".into()),
        output: "report.html".into(),
    }
}

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Vec<ReportSpec> {
    if raw.report.is_empty() {
        return vec![
            ReportSpec {
                template: ReportTemplate::Embedded("summary.md.j2".into()),
                output: "report.md".into(),
            },
            html_report(),
        ];
    }
    let mut out = Vec::new();
    let mut outputs: HashMap<String, usize> = HashMap::new();
    for (i, rep) in raw.report.iter().enumerate() {
        let what = format!("report[{i}]");
        let (Some(template), Some(output)) = (
            r.text(&rep.template, &format!("{what}.template"), ctx),
            r.text(&rep.output, &format!("{what}.output"), ctx),
        ) else {
            continue;
        };
        if let Some((problem, hint)) = output_problem(&output) {
            r.error(
                rep.output.span.clone(),
                format!("`{what}.output` \"{output}\" {problem}"),
                Some(hint),
            );
            continue;
        }
        if let Some(first) = outputs.insert(normalized(&output), i) {
            r.error(
                rep.output.span.clone(),
                format!("`{what}.output` \"{output}\" is also the output of report[{first}]"),
                Some("give each report its own file".into()),
            );
            continue;
        }
        if let Some(problem) = template_path_problem(&template) {
            r.error(
                rep.template.span.clone(),
                format!("`{what}.template` \"{template}\" {problem}"),
                Some(TEMPLATE_PATH_HINT.into()),
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
    if !out.iter().any(|s| s.output == "report.html") {
        out.push(html_report());
    }
    out
}

/// How to name a template a plan may use.
pub(super) const TEMPLATE_PATH_HINT: &str = "put the template in the plan's folder (or below it) and name it relative to the plan, or use an embedded one by name (summary.md.j2, cell.md.j2, report.html.j2)";

/// Why a plan may not read `template`: a plan is shared and run elsewhere,
/// and a template outside its folder would copy that machine's files into
/// the results.
pub(super) fn template_path_problem(template: &str) -> Option<&'static str> {
    let path = Path::new(template);
    if path.has_root() {
        return Some("is an absolute path; a plan may only read templates in its own folder");
    }
    let mut depth = 0i32;
    for c in path.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Some(
                "leaves the plan's folder; a plan may only read templates in its own folder",
            );
        }
    }
    None
}

/// Files of the run folder that loadmatrix itself writes; a report written
/// over one would corrupt the run (a `--resume` reads `run.json`).
const RESERVED_FILES: &[&str] = &[
    "run.json",
    "plan.toml",
    "junit.xml",
    "events.log",
    ".lock",
    // A capacity search's result and its frontier chart.
    "capacity.csv",
    "capacity-frontier.svg",
    "ab.csv",
];
/// Prefixes (and suffix) of the chart files written beside the report.
const RESERVED_CHARTS: &[&str] = &["rps-vs-", "p95-vs-"];
/// The longest file or folder name file systems take (bytes).
const NAME_MAX: usize = 255;
/// Folders of the run folder that loadmatrix fills.
const RESERVED_FOLDERS: &[&str] = &["cells", "logs"];

/// `output` without `.` parts, `/`-separated.
fn normalized(output: &str) -> String {
    Path::new(output)
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Why a report cannot be written to `output`, and what to write instead.
pub(super) fn output_problem(output: &str) -> Option<(String, String)> {
    let plain = "write a file name like \"report.md\" or \"reports/latency.md\"".to_string();
    let path = Path::new(output);
    if output.trim().is_empty() || output.ends_with('/') {
        return Some(("is not a file name".into(), plain));
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Some(("must stay inside the run folder".into(), plain));
    }
    let normalized = normalized(output);
    if let Some(problem) = name_problem(&normalized) {
        return Some((problem, plain));
    }
    let first = normalized.split('/').next().unwrap_or_default();
    let chart = RESERVED_CHARTS.iter().any(|p| first.starts_with(p)) && first.ends_with(".svg");
    let reserved = RESERVED_FOLDERS.contains(&first)
        || (!normalized.contains('/')
            && (RESERVED_FILES.contains(&first)
                || first.starts_with("summary.")
                || first.starts_with("summary_by_name.")
                || chart));
    reserved.then(|| {
        (
            "would overwrite a file loadmatrix writes in the run folder".into(),
            format!(
                "pick another name; loadmatrix writes {}, summary.*, summary_by_name.*, the charts {}, and the folders {}",
                RESERVED_FILES.join(", "),
                RESERVED_CHARTS
                    .iter()
                    .map(|p| format!("{p}*.svg"))
                    .collect::<Vec<_>>()
                    .join(", "),
                RESERVED_FOLDERS
                    .iter()
                    .map(|f| format!("{f}/"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// Why the (normalized) file name cannot be created: none at all (`.`),
/// or a part longer than file systems allow.
fn name_problem(normalized: &str) -> Option<String> {
    if normalized.is_empty() {
        return Some("is not a file name".into());
    }
    normalized
        .split('/')
        .find(|part| part.len() > NAME_MAX)
        .map(|part| {
            format!(
                "has a name of {} bytes; file systems allow at most {NAME_MAX}",
                part.len()
            )
        })
}

/// Files loadmatrix writes in each cell's folder.
const RESERVED_CELL_FILES: &[&str] = &[
    "stats.json",
    "timeline.csv",
    "system.csv",
    "baseline.json",
    "cell.md",
];

/// [`output_problem`] for a file written into a cell's folder.
pub(super) fn cell_output_problem(output: &str) -> Option<(String, String)> {
    let path = Path::new(output);
    let plain = "write a file name like \"metrics.txt\"".to_string();
    if output.trim().is_empty() || output.ends_with('/') {
        return Some(("is not a file name".into(), plain));
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Some(("must stay inside the cell's folder".into(), plain));
    }
    let normalized = normalized(output);
    if let Some(problem) = name_problem(&normalized) {
        return Some((problem, plain));
    }
    let first = normalized.split('/').next().unwrap_or_default();
    // Repetitions get numbered folders beside the cell's own files.
    let reserved = RESERVED_CELL_FILES.contains(&first)
        || (normalized.contains('/') && first.chars().all(|c| c.is_ascii_digit()));
    reserved.then(|| {
        (
            "would overwrite a file loadmatrix writes in the cell's folder".into(),
            format!(
                "pick another name; each cell's folder holds {}",
                RESERVED_CELL_FILES.join(", ")
            ),
        )
    })
}
