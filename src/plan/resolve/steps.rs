//! `[[step]]` settings, for the steps the graph runs per cell or once.

use std::time::Duration;

use indexmap::IndexMap;
use minijinja::Value;

use super::resolver::Resolver;
use crate::plan::graph;
use crate::plan::model::*;
use crate::plan::raw::{RawPlan, StepKind};

pub(super) fn resolve(
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
                Some(t) => {
                    if let (Some(problem), Some(span)) = (
                        super::reports::template_path_problem(&t),
                        s.template.as_ref().map(|x| x.span.clone()),
                    ) {
                        r.error(
                            span,
                            format!("`{what}.template` \"{t}\" {problem}"),
                            Some(super::reports::TEMPLATE_PATH_HINT.into()),
                        );
                        return None;
                    }
                    Some(r.dir.join(t))
                }
                None => None,
            };
            let output = r.opt_text(&s.output, &format!("{what}.output"), ctx)?;
            if let (Some(out), Some(t)) = (&output, &s.output) {
                let problem = match step.kind {
                    StepKind::Scrape if step.per_cell => super::reports::cell_output_problem(out),
                    StepKind::Scrape | StepKind::Report => super::reports::output_problem(out),
                    _ => None,
                };
                if let Some((problem, hint)) = problem {
                    r.error(
                        t.span.clone(),
                        format!("`{what}.output` \"{out}\" {problem}"),
                        Some(hint),
                    );
                    return None;
                }
            }
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
                output,
                template,
            })
        })();
        if let Some(c) = config {
            out.insert(step.id.clone(), c);
        }
    }
    out
}
