//! Threshold checks: which metrics exist and what unit each one needs.

use super::{Expr, Literal, Operand, ParseError, Span, UnitKind};
use crate::plan::suggest::{Closeness, did_you_mean};

pub(crate) use crate::metrics::MetricKind;

fn noun(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Latency => "a latency",
        MetricKind::Percent => "a percentage",
        MetricKind::Rate => "a rate (per second)",
        MetricKind::Count => "a count",
        MetricKind::Plain => "a plain number",
    }
}

fn example(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Latency => "a duration, e.g. `500ms`",
        MetricKind::Percent => "a percentage, e.g. `1%`",
        MetricKind::Rate | MetricKind::Count | MetricKind::Plain => "a plain number, e.g. `100`",
    }
}

pub(crate) const AGGREGATES: &[&str] = &["min", "max", "mean", "sum", "count"];

/// Names people reach for that are not ours; suggested when spelling
/// distance finds nothing.
const ALIASES: &[(&str, &str)] = &[
    ("avg", "mean"),
    ("average", "mean"),
    ("median", "p50"),
    ("error_rate", "fail_rate"),
    ("err_rate", "fail_rate"),
    ("errors", "failures"),
    ("qps", "rps"),
    ("tps", "rps"),
    ("throughput", "rps"),
    ("total", "sum"),
];

pub(crate) fn metric_kind(name: &str) -> Option<MetricKind> {
    crate::metrics::kind(name)
}

/// Hints for a misspelt metric or aggregate name.
const CLOSENESS: Closeness = Closeness::Edits { aliases: ALIASES };

/// Metrics a plan adds (its `[[scrape]]` columns), with their kinds.
pub(crate) type Extra<'a> = &'a [(String, MetricKind)];

fn kind_in(name: &str, extra: Extra<'_>) -> Option<MetricKind> {
    metric_kind(name).or_else(|| extra.iter().find(|(n, _)| n == name).map(|(_, k)| *k))
}

fn unknown_metric(name: &str, span: &Span, extra: Extra<'_>) -> ParseError {
    let e = ParseError::new(span.clone(), format!("unknown metric `{name}`"));
    if let Some((metric, _)) = name.split_once('{') {
        return e.with_hint(format!(
            "select a request name as `{metric}{{name:predict}}` (only `name` can be selected)"
        ));
    }
    if AGGREGATES.contains(&name) {
        return e.with_hint(format!(
            "`{name}` is an aggregate; apply it to a metric, e.g. `{name}(rps)`"
        ));
    }
    let mut known: Vec<&str> = Vec::new();
    for n in crate::metrics::names() {
        known.push(n);
    }
    known.extend(extra.iter().map(|(n, _)| n.as_str()));
    let hint = did_you_mean(name, known.iter().copied(), CLOSENESS).unwrap_or_else(|| {
        let names = &known;
        format!("known metrics: {}", names.join(", "))
    });
    e.with_hint(hint)
}

/// What one side of a comparison is, for unit checks.
enum Side<'a> {
    Metric(MetricKind, String),
    Literal(&'a Literal),
    /// Already reported as an error.
    Unknown,
}

fn side<'a>(operand: &'a Operand, errors: &mut Vec<ParseError>, extra: Extra<'_>) -> Side<'a> {
    match operand {
        Operand::Literal(lit) => Side::Literal(lit),
        Operand::Ident { name, span } => match kind_in(name, extra) {
            Some(kind) => Side::Metric(kind, name.clone()),
            None => {
                errors.push(unknown_metric(name, span, extra));
                Side::Unknown
            }
        },
        Operand::Aggregate {
            func,
            func_span,
            arg,
            arg_span,
            ..
        } => {
            let arg_kind = kind_in(arg, extra);
            if arg_kind.is_none() {
                errors.push(unknown_metric(arg, arg_span, extra));
            }
            if !AGGREGATES.contains(&func.as_str()) {
                let hint = did_you_mean(func, AGGREGATES.iter().copied(), CLOSENESS)
                    .unwrap_or_else(|| format!("use one of {}", AGGREGATES.join(", ")));
                errors.push(
                    ParseError::new(
                        func_span.clone(),
                        format!("unknown aggregate function `{func}`"),
                    )
                    .with_hint(hint),
                );
                return Side::Unknown;
            }
            let text = format!("{func}({arg})");
            match (func.as_str(), arg_kind) {
                ("count", _) => Side::Metric(MetricKind::Count, text),
                (_, Some(kind)) => Side::Metric(kind, text),
                (_, None) => Side::Unknown,
            }
        }
    }
}

/// Short decimal for hints: 0.07 * 100 should read `7`, not `7.000000000000001`.
fn short_number(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn check_metric_vs_literal(kind: MetricKind, metric: &str, lit: &Literal) -> Option<ParseError> {
    let text = lit.text();
    let (value, unit, span) = match lit {
        Literal::Num {
            value, unit, span, ..
        } => (*value, *unit, span.clone()),
        Literal::Str { span, .. } | Literal::Bool { span, .. } => {
            return Some(
                ParseError::new(
                    span.clone(),
                    format!(
                        "`{metric}` is {}; it cannot be compared with `{text}`",
                        noun(kind)
                    ),
                )
                .with_hint(format!("write {}", example(kind))),
            );
        }
    };
    let mismatch = |unit_noun: &str| {
        ParseError::new(
            span.clone(),
            format!("`{metric}` is {}, but `{text}` is {unit_noun}", noun(kind)),
        )
        .with_hint(format!("write {}", example(kind)))
    };
    let missing_unit = || {
        ParseError::new(
            span.clone(),
            format!("`{metric}` is {}, but `{text}` has no unit", noun(kind)),
        )
    };
    match (kind, unit) {
        (MetricKind::Latency, UnitKind::Duration) | (MetricKind::Percent, UnitKind::Percent) => {
            None
        }
        (MetricKind::Latency | MetricKind::Percent, UnitKind::None) if value == 0.0 => None,
        (MetricKind::Latency, UnitKind::None) => {
            Some(missing_unit().with_hint(format!("write `{text}ms` (or another duration unit)")))
        }
        (MetricKind::Percent, UnitKind::None) => {
            let mut hint = format!("write `{text}%`");
            if value < 1.0 {
                let pct = short_number(value * 100.0);
                hint.push_str(&format!(", or `{pct}%` if `{text}` is a fraction"));
            }
            Some(missing_unit().with_hint(hint))
        }
        (MetricKind::Latency, UnitKind::Percent) => Some(mismatch("a percentage")),
        (MetricKind::Percent, UnitKind::Duration) => Some(mismatch("a duration")),
        (_, UnitKind::None) => None,
        (_, UnitKind::Duration) => Some(mismatch("a duration")),
        (_, UnitKind::Percent) => Some(mismatch("a percentage")),
    }
}

fn check_sides(lhs: &Side, rhs: &Side, span: &Span) -> Option<ParseError> {
    match (lhs, rhs) {
        (Side::Unknown, _) | (_, Side::Unknown) => None,
        (Side::Metric(kind, name), Side::Literal(lit))
        | (Side::Literal(lit), Side::Metric(kind, name)) => {
            check_metric_vs_literal(*kind, name, lit)
        }
        (Side::Metric(a, a_name), Side::Metric(b, b_name)) => (a != b).then(|| {
            ParseError::new(
                span.clone(),
                format!(
                    "cannot compare `{a_name}` ({}) with `{b_name}` ({})",
                    noun(*a),
                    noun(*b)
                ),
            )
        }),
        (Side::Literal(_), Side::Literal(_)) => Some(
            ParseError::new(span.clone(), "this comparison does not involve a metric")
                .with_hint("compare a metric with a limit, e.g. `p95 < 500ms`"),
        ),
    }
}

/// Semantic checks for a threshold expression; returns every problem found.
pub(crate) fn check_threshold(expr: &Expr, extra: Extra<'_>) -> Vec<ParseError> {
    let mut errors = Vec::new();
    expr.walk(&mut |e| match e {
        Expr::Compare(c) => {
            let lhs = side(&c.lhs, &mut errors, extra);
            let rhs = side(&c.rhs, &mut errors, extra);
            errors.extend(check_sides(&lhs, &rhs, &c.span));
        }
        Expr::In(m) => {
            let operand = side(&m.operand, &mut errors, extra);
            for item in &m.items {
                errors.extend(check_sides(&operand, &Side::Literal(item), &m.span));
            }
        }
        _ => {}
    });
    errors
}

#[cfg(test)]
mod tests {
    use super::super::testing::parse_ok;
    use super::*;

    #[test]
    fn metric_catalogue() {
        assert_eq!(metric_kind("p999"), Some(MetricKind::Latency));
        assert_eq!(metric_kind("max"), Some(MetricKind::Latency));
        assert_eq!(metric_kind("sut_cpu_pct"), Some(MetricKind::Percent));
        assert_eq!(metric_kind("rps"), Some(MetricKind::Rate));
        assert_eq!(metric_kind("dropped"), Some(MetricKind::Count));
        assert_eq!(metric_kind("sut_mem_mb"), Some(MetricKind::Plain));
        assert_eq!(metric_kind("users"), None);
    }

    fn threshold_errors(src: &str) -> Vec<ParseError> {
        check_threshold(&parse_ok(src), &[])
    }

    fn assert_one_threshold_error(src: &str, span: Span, words: &[&str]) {
        let errors = threshold_errors(src);
        assert_eq!(errors.len(), 1, "{src}: {errors:?}");
        let e = &errors[0];
        assert_eq!(e.span, span, "{src}: {e:?}");
        let all = format!("{} {}", e.message, e.hint.clone().unwrap_or_default());
        for word in words {
            assert!(all.contains(word), "{src}: {all:?} lacks {word:?}");
        }
    }

    #[test]
    fn valid_thresholds_pass() {
        for src in [
            "p95 < 500ms",
            "fail_rate < 1%",
            "max(rps) >= 100",
            "p99 <= 1.5s and fail_rate < 0.5%",
            "mean(p95) < 300ms",
            "max < 2s",
            "p95 < max(p99)",
            "count(rps) >= 3",
            "sut_mem_mb < 512 and dropped == 0 and requests > 1000",
            "fail_rate == 0 and p95 > 0",
            "true",
        ] {
            assert_eq!(threshold_errors(src), vec![], "{src}");
        }
    }

    #[test]
    fn threshold_semantic_errors() {
        assert_one_threshold_error("p96 < 5ms", 0..3, &["unknown metric `p96`", "`p95`"]);
        assert_one_threshold_error("fail_rte < 1%", 0..8, &["did you mean `fail_rate`?"]);
        assert_one_threshold_error("latency < 5ms", 0..7, &["known metrics: mean, min"]);
        assert_one_threshold_error("throughput > 5", 0..10, &["did you mean `rps`?"]);
        assert_one_threshold_error("sum > 5", 0..3, &["aggregate", "sum(rps)"]);
        assert_one_threshold_error(
            "avg(p95) < 5ms",
            0..3,
            &["unknown aggregate function `avg`", "`mean`"],
        );
        assert_one_threshold_error("maxx(rps) > 5", 0..4, &["did you mean `max`?"]);
        assert_one_threshold_error(
            "foo(rps) > 5",
            0..3,
            &["use one of min, max, mean, sum, count"],
        );
        assert_one_threshold_error("max(rsp) > 5", 4..7, &["unknown metric `rsp`", "`rps`"]);
        assert_one_threshold_error("p95 < 1%", 6..8, &["latency", "percentage", "500ms"]);
        assert_one_threshold_error("p95 < 500", 6..9, &["no unit", "write `500ms`"]);
        assert_one_threshold_error("500 > p95", 0..3, &["write `500ms`"]);
        assert_one_threshold_error(
            "fail_rate < 500ms",
            12..17,
            &["percentage", "duration", "1%"],
        );
        assert_one_threshold_error("fail_rate < 0.07", 12..16, &["`0.07%`", "`7%`", "fraction"]);
        assert_one_threshold_error("rps > 5ms", 6..9, &["rate", "plain number"]);
        assert_one_threshold_error("count(p95) > 1s", 13..15, &["count", "duration"]);
        assert_one_threshold_error("p95 == 'x'", 7..10, &["latency", "cannot be compared"]);
        assert_one_threshold_error("rps > p95", 0..9, &["`rps` (a rate", "`p95` (a latency)"]);
        assert_one_threshold_error("1 < 2", 0..5, &["does not involve a metric"]);
        assert_one_threshold_error("p95 in [1%]", 8..10, &["percentage"]);

        // Every problem is reported, not just the first.
        let errors = threshold_errors("p96 < 1% and rps > 5ms or foo(bar) > 1");
        let spans: Vec<Span> = errors.iter().map(|e| e.span.clone()).collect();
        assert_eq!(spans, vec![0..3, 19..22, 30..33, 26..29], "{errors:?}");
    }
}
