//! analyze and report: the analysis of every cell's row, and the documents
//! rendered from it.

use crate::plan::{ReportTemplate, StepConfig};

use super::{StepContext, StepError, StepInput, StepOutput};

pub fn analyze(ctx: &StepContext, input: StepInput) -> Result<StepOutput, StepError> {
    let StepInput::Rows(rows) = input else {
        return Err(StepError::failed("analyze got no summary rows"));
    };
    let result = crate::analysis::analyze_run(&ctx.plan, rows);
    crate::report::write_summary(&ctx.dir, &ctx.plan, &result)?;
    Ok(StepOutput::Analysis(Box::new(result)))
}

/// The (template, output) pairs a report step renders: its own when declared
/// with `template`, else the plan's `[[report]]` list.
pub(crate) fn report_specs(
    ctx: &StepContext,
    declared: Option<&StepConfig>,
) -> Vec<(ReportTemplate, String)> {
    match declared {
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
        None => ctx
            .plan
            .reports
            .iter()
            .map(|r| (r.template.clone(), r.output.clone()))
            .collect(),
    }
}

pub fn report(
    ctx: &StepContext,
    declared: Option<&StepConfig>,
    input: StepInput,
) -> Result<StepOutput, StepError> {
    let StepInput::Report { manifest, analysis } = input else {
        return Err(StepError::failed("a report step got no input"));
    };
    let analysis = analysis.get(&ctx.plan);
    let specs = report_specs(ctx, declared);
    crate::report::render_reports(&ctx.dir, &ctx.plan, &manifest, &analysis, &specs, true)?;
    Ok(StepOutput::Reported)
}
