//! `[search]`: the searched knob, its range, the tolerance and the SLO.

use minijinja::Value;

use super::resolver::Resolver;
use crate::base::units;
use crate::plan::model::{Analysis, Search};
use crate::plan::raw::{RawPlan, SearchOver};
use crate::plan::spanned::{Count, Scalar};

/// The most the engine takes of the searched knob: a probe beyond it would
/// fail at run time.
fn engine_limit(raw: &RawPlan, over: SearchOver) -> Count {
    use crate::base::limits::{MAX_LOCUST_USERS, MAX_NATIVE_USERS, MAX_RATE};
    let locust = match &raw.load.engine.raw {
        Scalar::Str(s) if crate::plan::spanned::is_template(s) => true,
        Scalar::Str(s) => s == "locust",
        _ => false,
    };
    Count(match over {
        SearchOver::Rate => MAX_RATE as u64,
        SearchOver::Users if locust => MAX_LOCUST_USERS,
        SearchOver::Users => MAX_NATIVE_USERS,
    })
}

/// Below this, bisection would take more probes than a search is worth.
const MIN_TOLERANCE: f64 = 0.001;

pub(super) fn resolve(
    r: &mut Resolver<'_>,
    raw: &RawPlan,
    ctx: &Value,
    analysis: &Analysis,
) -> Option<Search> {
    let s = raw.search.as_ref()?;
    let over = s.over.value;
    if r.axes.iter().any(|a| a == over.as_str()) {
        let span = r.key_span(raw, "matrix");
        r.error(
            span,
            format!(
                "the matrix has an axis `{}`, which `[search]` sets itself",
                over.as_str()
            ),
            Some(format!(
                "remove the `{}` axis: the search probes it from `from` to `to`",
                over.as_str()
            )),
        );
    }
    let limit = engine_limit(raw, over);
    let from = r
        .at_least(&s.from, "search.from", ctx, Count(1), "at least 1")
        .and_then(|v| r.at_most(&s.from, "search.from", v, limit));
    let to = r
        .at_least(&s.to, "search.to", ctx, Count(1), "at least 1")
        .and_then(|v| r.at_most(&s.to, "search.to", v, limit));
    if let (Some(f), Some(t)) = (from, to)
        && t.0 < f.0
    {
        r.error(
            s.to.span.clone(),
            format!("`search.to` ({}) is below `search.from` ({})", t.0, f.0),
            Some("the search probes upwards from `from`: make `to` at least `from`".into()),
        );
    }
    let tolerance = r
        .text(&s.tolerance, "search.tolerance", ctx)
        .and_then(|text| match units::parse_percent(&text) {
            Ok(p) if p / 100.0 >= MIN_TOLERANCE && p <= 100.0 => Some(p / 100.0),
            Ok(_) => {
                r.error(
                    s.tolerance.span.clone(),
                    format!("`search.tolerance` must be between 0.1% and 100%, not {text}"),
                    Some("e.g. tolerance = \"5%\"".into()),
                );
                None
            }
            Err(msg) => {
                r.error(
                    s.tolerance.span.clone(),
                    format!("`search.tolerance`: {msg}"),
                    Some("e.g. tolerance = \"5%\"".into()),
                );
                None
            }
        });
    let slo = match &s.slo {
        Some(written) => super::analysis::slo(r, written, "search", ctx),
        None => analysis.slo.clone(),
    };
    if slo.is_empty() {
        let span = r.key_span(raw, "search");
        r.error(
            span,
            "`[search]` has no SLO to judge probes by".into(),
            Some(
                "add `slo = { p95 = \"150ms\", fail_rate = \"1%\" }` to [search] (or an `[analysis] slo`)"
                    .into(),
            ),
        );
    }
    Some(Search {
        over,
        from: from?.0,
        to: to?.0,
        tolerance: tolerance?,
        slo,
    })
}
