//! `[[report]]`: templates (a file beside the plan or an embedded one) and
//! where each report goes.

use std::path::Path;

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
    if !out.iter().any(|s| s.output == "report.html") {
        out.push(html_report());
    }
    out
}
