//! `[[threshold]]`: expressions and their `where` filters, parsed once.

use std::ops::Range;

use super::resolver::{Resolver, list_or_none};
use crate::plan::expr;
use crate::plan::model::*;
use crate::plan::raw::{RawPlan, Scope};
use crate::plan::suggest::{Closeness, did_you_mean};

/// Threshold and filter expressions are parsed once; errors point inside them.
pub(super) fn resolve(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    extra: &[(String, expr::MetricKind)],
) -> Vec<Threshold> {
    let mut out = Vec::new();
    for t in &raw.threshold {
        let expr_span = |r: &Resolver<'_>, text: &str, span: &Range<usize>, inner: Range<usize>| {
            r.inner_span(span, text, inner)
                .unwrap_or_else(|| span.clone())
        };
        let parsed = match expr::parse(&t.expr.value) {
            Ok(e) => {
                let problems = expr::check_threshold(&e, extra);
                for p in &problems {
                    let span = expr_span(r, &t.expr.value, &t.expr.span, p.span.clone());
                    r.error(
                        span,
                        format!("threshold `{}`: {}", t.expr.value, p.message),
                        p.hint.clone(),
                    );
                }
                problems.is_empty().then_some(e)
            }
            Err(p) => {
                let span = expr_span(r, &t.expr.value, &t.expr.span, p.span.clone());
                r.error(
                    span,
                    format!("threshold `{}`: {}", t.expr.value, p.message),
                    p.hint.clone(),
                );
                None
            }
        };
        let filter = match &t.filter {
            Some(f) => match expr::parse(&f.value) {
                Ok(e) => {
                    let mut ok = true;
                    // Matrix axes, and the plan's `[[scrape]]` columns.
                    let mut known: Vec<String> = r.axes.clone();
                    known.extend(extra.iter().map(|(n, _)| n.clone()));
                    for id in e.idents() {
                        if !known.contains(&id.name) {
                            ok = false;
                            let span = expr_span(r, &f.value, &f.span, id.span.clone());
                            let hint = did_you_mean(
                                &id.name,
                                known.iter().map(String::as_str),
                                Closeness::Similar,
                            )
                            .unwrap_or_else(|| {
                                format!(
                                    "`where` filters on matrix axes and [[scrape]] columns: {}",
                                    list_or_none(&known)
                                )
                            });
                            r.error(
                                span,
                                format!("`where` names `{}`, which is not a matrix axis", id.name),
                                Some(hint),
                            );
                        }
                    }
                    ok.then(|| (f.value.clone(), e))
                }
                Err(p) => {
                    let span = expr_span(r, &f.value, &f.span, p.span.clone());
                    r.error(
                        span,
                        format!("`where = \"{}\"`: {}", f.value, p.message),
                        p.hint.clone(),
                    );
                    None
                }
            },
            None => None,
        };
        let Some(expr) = parsed else { continue };
        if raw.search.is_none() {
            let mut search_only = Vec::new();
            for c in expr.comparisons() {
                for op in [&c.lhs, &c.rhs] {
                    let name = match op {
                        expr::Operand::Ident { name, .. } => name.as_str(),
                        expr::Operand::Aggregate { arg, .. } => arg.as_str(),
                        expr::Operand::Literal(_) => continue,
                    };
                    if crate::metrics::SEARCH_ONLY.contains(&name) && !search_only.contains(&name) {
                        search_only.push(name);
                    }
                }
            }
            if let Some(name) = search_only.first() {
                r.error(
                    t.expr.span.clone(),
                    format!(
                        "threshold `{}` reads `{name}`, which only a capacity search measures",
                        t.expr.value
                    ),
                    Some("add a `[search]` section (see docs/plan-format.md), or compare a cell metric such as `rps`".into()),
                );
                continue;
            }
        }
        if t.filter.is_some() && filter.is_none() {
            continue;
        }
        let scope = match &t.scope {
            Some(s) => {
                if s.value == Scope::Cell && expr.has_aggregate() {
                    r.error(
                        s.span.clone(),
                        format!(
                            "threshold `{}` aggregates over cells but has scope \"cell\"",
                            t.expr.value
                        ),
                        Some(
                            "use scope = \"run\" for min/max/mean/sum/count over all cells".into(),
                        ),
                    );
                    continue;
                }
                if s.value == Scope::Run && !expr.has_aggregate() {
                    r.error(t.expr.span.clone(), format!("threshold `{}` has scope \"run\" but no aggregate", t.expr.value), Some("wrap metrics in an aggregate, e.g. `max(p95) < 500ms`, or use scope \"cell\"".into()));
                    continue;
                }
                s.value
            }
            None if expr.has_aggregate() => Scope::Run,
            None => Scope::Cell,
        };
        out.push(Threshold {
            name: t.name.clone().unwrap_or_else(|| match &filter {
                Some((f, _)) => format!("{} where {f}", t.expr.value),
                None => t.expr.value.clone(),
            }),
            expr,
            filter,
            scope,
            abort: t.abort,
        });
    }
    out
}
