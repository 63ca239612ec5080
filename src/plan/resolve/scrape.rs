//! `[[scrape]]`: the service's own metrics, rendered once for the run.

use std::time::Duration;

use minijinja::Value;

use super::resolver::{Resolver, check_url};
use crate::metrics::MetricKind;
use crate::plan::model::{Agg, Scrape, ScrapeTarget, Series};
use crate::plan::raw::RawPlan;
use crate::plan::suggest::{Closeness, did_you_mean};

/// Scraping more often than this only measures the scraper.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The columns every `[[scrape]]` series adds and their kinds, read from the
/// raw plan so thresholds can be checked before anything is rendered.
pub(super) fn columns(raw: &RawPlan) -> Vec<(String, MetricKind)> {
    raw.scrape
        .iter()
        .flat_map(|s| s.series.value.iter())
        .filter(|x| crate::metrics::lookup(&x.column.value).is_none())
        .filter_map(|x| {
            let agg = Agg::parse(&x.agg.value)?;
            let series = Series {
                metric: x.metric.value.clone(),
                agg,
                column: x.column.value.clone(),
                names: x.names.clone(),
            };
            Some((series.column.clone(), series.kind()))
        })
        .collect()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Vec<Scrape> {
    let mut out = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for (i, s) in raw.scrape.iter().enumerate() {
        let what = format!("scrape[{i}]");
        let name = s.name.value.clone();
        if name.trim().is_empty() || names.contains(&name) {
            r.error(
                s.name.span.clone(),
                format!("scrape name \"{name}\" is empty or used twice"),
                Some("give every [[scrape]] its own name, e.g. name = \"model\"".into()),
            );
        }
        names.push(name.clone());
        let target = match (&s.path, &s.url) {
            (Some(p), None) => r.text(p, &format!("{what}.path"), ctx).and_then(|path| {
                if path.starts_with('/') && !path.contains(char::is_whitespace) {
                    Some(ScrapeTarget::Path(path))
                } else {
                    r.error(
                        p.span.clone(),
                        format!("`{what}.path` \"{path}\" is not a path"),
                        Some("write it like \"/metrics\"".into()),
                    );
                    None
                }
            }),
            (None, Some(u)) => r.text(u, &format!("{what}.url"), ctx).map(|url| {
                check_url(r, &url, &u.span, &format!("{what}.url"));
                ScrapeTarget::Url(url)
            }),
            _ => {
                r.error(
                    s.name.span.clone(),
                    format!("scrape \"{name}\" needs exactly one of `path` and `url`"),
                    Some(
                        "path = \"/metrics\" scrapes every replica; url = \"http://...\" one target"
                            .into(),
                    ),
                );
                None
            }
        };
        let interval = match &s.interval {
            Some(t) => r
                .positive_duration(t, &format!("{what}.interval"), ctx)
                .and_then(|d| {
                    if d < MIN_INTERVAL {
                        r.error(
                            t.span.clone(),
                            format!("`{what}.interval` must be at least 100ms"),
                            Some("write e.g. \"1s\"".into()),
                        );
                        None
                    } else {
                        Some(d)
                    }
                }),
            None => Some(Duration::from_secs(1)),
        };
        if s.series.value.is_empty() {
            r.error(
                s.series.span.clone(),
                format!("scrape \"{name}\" has no series"),
                Some(
                    "e.g. series = [{ metric = \"demo_requests_total\", agg = \"rate\", as = \"server_rps\" }]"
                        .into(),
                ),
            );
        }
        let mut series = Vec::new();
        for x in &s.series.value {
            let agg = Agg::parse(&x.agg.value);
            if agg.is_none() {
                let hint =
                    did_you_mean(&x.agg.value, Agg::NAMES.iter().copied(), Closeness::Similar)
                        .unwrap_or_else(|| format!("use one of {}", Agg::NAMES.join(", ")));
                r.error(
                    x.agg.span.clone(),
                    format!("unknown aggregation `{}`", x.agg.value),
                    Some(hint),
                );
            }
            if !is_metric_name(&x.metric.value) {
                r.error(
                    x.metric.span.clone(),
                    format!("`{}` is not a Prometheus metric name", x.metric.value),
                    Some("metric names are letters, digits, `_` and `:`, e.g. \"demo_requests_total\"".into()),
                );
            }
            let column = &x.column.value;
            if !is_identifier(column) {
                r.error(
                    x.column.span.clone(),
                    format!("column name `{column}` must be lowercase letters, digits and `_`"),
                    Some("e.g. as = \"server_rps\"".into()),
                );
            } else if crate::metrics::lookup(column).is_some() || r.axes.contains(column) {
                r.error(
                    x.column.span.clone(),
                    format!("column `{column}` is already a summary metric or a matrix axis"),
                    Some(format!(
                        "name it after the service, e.g. as = \"server_{column}\""
                    )),
                );
            } else if columns.contains(column) {
                r.error(
                    x.column.span.clone(),
                    format!("two series both become column `{column}`"),
                    Some("give each series its own `as`".into()),
                );
            }
            columns.push(column.clone());
            if let Some(agg) = agg {
                series.push(Series {
                    metric: x.metric.value.clone(),
                    agg,
                    column: column.clone(),
                    names: x.names.clone(),
                });
            }
        }
        if let (Some(target), Some(interval)) = (target, interval) {
            out.push(Scrape {
                name,
                target,
                interval,
                series,
            });
        }
    }
    out
}
