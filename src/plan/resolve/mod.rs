//! Raw plan -> [`Plan`]: renders every cell's templates, types and
//! range-checks every value, and collects every error with its place.
//!
//! [`resolve`] runs small passes, one per part of the plan, each recording
//! its errors in the shared `Resolver` and going on, so one run reports
//! every problem. The order of the passes is the order errors are first
//! seen, which orders diagnostics that start at the same byte: the plan
//! name, the matrix, the step graph and the thresholds; then for each cell
//! its vars, timing, system, load and per-cell steps; then, once, the vars,
//! checks, once-per-run steps, analysis, reports and description.

mod ab;
mod analysis;
mod checks;
mod data;
mod load;
mod name;
mod reports;
mod resolver;
mod scrape;
mod search;
mod steps;
mod system;
mod thresholds;
mod timing;
mod tls;
mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use super::graph;
use super::matrix::{self, CellValues};
use super::model::*;
use super::raw::RawPlan;
use super::template::Templates;
use crate::diagnostic::Diagnostic;
use resolver::{Resolver, into_diagnostics};

/// What templates see as `run`.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub(crate) id: String,
    pub(crate) dir: String,
}

impl RunInfo {
    /// Used by `validate` and `plan`, which start no run.
    pub(crate) fn placeholder(plan_name: &str) -> Self {
        RunInfo {
            id: "00000000-000000".into(),
            dir: format!("results/{plan_name}/00000000-000000"),
        }
    }
}

pub(crate) fn resolve(
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
    name::check(&mut r, raw);

    let cells_values = expand_matrix(&mut r, raw);
    let graph = step_graph(&mut r, raw);
    let mut scrape_columns = scrape::columns(raw);
    scrape_columns.extend(analysis::ab_columns(raw));
    let thresholds = thresholds::resolve(&mut r, raw, &scrape_columns);

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
        let vars = vars::render(&mut r, raw, &base);
        cell_vars.push(vars.clone());
        let ctx = minijinja::context! { vars => vars, ..base };
        if let Some(cell) = resolve_cell(&mut r, raw, &ctx, id, index, values, graph.as_ref()) {
            cells.push(cell);
        }
    }
    r.cell = None;

    // Checks run once before any cell: no `matrix` or `cell` in their context.
    let plan_base = minijinja::context! { env => env.clone(), run => run_value.clone() };
    let plan_vars = vars::render(&mut r, raw, &plan_base);
    let plan_ctx = minijinja::context! { vars => plan_vars, ..plan_base };
    let mut checks = checks::resolve(&mut r, raw, &plan_ctx);
    let steps = match &graph {
        Some(g) => steps::resolve(&mut r, raw, g, false, &plan_ctx),
        None => IndexMap::new(),
    };
    let analysis = analysis::resolve(&mut r, raw, &plan_ctx);
    let search = search::resolve(&mut r, raw, &plan_ctx, &analysis);
    let order = ab::order(&mut r, raw);
    let reports = reports::resolve(&mut r, raw, &plan_ctx);
    let scrapes = scrape::resolve(&mut r, raw, &plan_ctx);
    let tls = tls::resolve(&mut r, raw, &plan_ctx);
    for c in &mut cells {
        c.system.ready.tls = tls.clone();
    }
    for c in &mut checks {
        if let CheckKind::Http { tls: t, .. } = &mut c.kind {
            *t = tls.clone();
        }
    }
    let description = r
        .opt_text(&raw.description, "description", &plan_ctx)
        .flatten()
        .unwrap_or_default();

    let roles = super::Roles::resolve(raw, templates.values());
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
        hash: super::model::fnv1a(&hash_input),
        axes: r.axes.clone(),
        cells,
        checks,
        thresholds,
        graph: graph.unwrap_or(graph::StepGraph { steps: Vec::new() }),
        steps,
        analysis,
        search,
        order,
        reports,
        scrapes,
        tls,
        templates,
        run_value,
        cell_vars,
        roles,
    })
}

/// Every cell's axis values; none when the matrix is invalid.
fn expand_matrix(r: &mut Resolver<'_>, raw: &RawPlan) -> Vec<CellValues> {
    match matrix::expand(raw.matrix.as_ref()) {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                r.error(e.span, e.message, e.hint);
            }
            Vec::new()
        }
    }
}

fn step_graph(r: &mut Resolver<'_>, raw: &RawPlan) -> Option<graph::StepGraph> {
    match graph::build(&raw.step) {
        Ok(g) => Some(g),
        Err(errs) => {
            for e in errs {
                r.error(e.span, e.message, e.hint);
            }
            None
        }
    }
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
    let timing = timing::resolve(r, raw, ctx);
    let system = system::resolve(r, raw, ctx);
    let load = load::resolve(r, raw, ctx, system.as_ref());
    let steps = graph.map(|g| steps::resolve(r, raw, g, true, ctx));
    Some(Cell {
        id,
        index,
        matrix: values.clone(),
        timing: timing?,
        system: system?,
        load: load?,
        steps: steps?,
        probe: None,
    })
}
