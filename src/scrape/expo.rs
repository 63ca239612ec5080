//! Prometheus text exposition, read with the `prometheus-parse` crate and
//! flattened into one value per exposed line.

use prometheus_parse::{Scrape, Value};

/// A parsed line: exposed name, sorted labels, value.
pub type Line = (String, Vec<(String, String)>, f64);

/// The name a line belongs to when `family` is what a plan asked for: the
/// family itself, or its histogram/summary parts.
pub(crate) fn in_family(name: &str, family: &str) -> bool {
    name == family
        || name
            .strip_prefix(family)
            .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
}

/// Every line of `text` whose name is in one of `families`. Lines the format
/// does not allow are skipped, as Prometheus itself skips them.
pub fn parse(text: &str, families: &[&str]) -> Vec<Line> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let Ok(scrape) = Scrape::parse(lines) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let mut push = |name: String, labels: Vec<(String, String)>, v: f64| {
            if families.iter().any(|f| in_family(&name, f)) {
                out.push((name, labels, v));
            }
        };
        match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => push(s.metric, labels, v),
            Value::Histogram(buckets) => {
                for b in buckets {
                    let mut l = labels.clone();
                    l.push(("le".into(), le_text(b.less_than)));
                    l.sort();
                    push(format!("{}_bucket", s.metric), l, b.count);
                }
            }
            Value::Summary(quantiles) => {
                for q in quantiles {
                    let mut l = labels.clone();
                    l.push(("quantile".into(), format!("{}", q.quantile)));
                    l.sort();
                    push(s.metric.clone(), l, q.count);
                }
            }
        }
    }
    out
}

fn le_text(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP demo_requests_total Requests answered.
# TYPE demo_requests_total counter
demo_requests_total{path="/predict",status="200"} 1027
demo_requests_total{path="/health",status="200"} 3
# TYPE demo_queue_depth gauge
demo_queue_depth 2
# TYPE demo_request_duration_seconds histogram
demo_request_duration_seconds_bucket{le="0.05"} 10
demo_request_duration_seconds_bucket{le="0.1"} 30
demo_request_duration_seconds_bucket{le="+Inf"} 31
demo_request_duration_seconds_sum 2.5
demo_request_duration_seconds_count 31
other_metric 7
"#;

    #[test]
    fn flattens_counters_gauges_and_histograms_of_the_asked_families() {
        let lines = parse(
            TEXT,
            &[
                "demo_requests_total",
                "demo_queue_depth",
                "demo_request_duration_seconds",
            ],
        );
        let find = |name: &str, label: Option<(&str, &str)>| {
            lines
                .iter()
                .find(|(n, l, _)| {
                    n == name && label.is_none_or(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
                })
                .map(|x| x.2)
        };
        assert_eq!(
            find("demo_requests_total", Some(("path", "/predict"))),
            Some(1027.0)
        );
        assert_eq!(find("demo_queue_depth", None), Some(2.0));
        assert_eq!(
            find("demo_request_duration_seconds_bucket", Some(("le", "0.1"))),
            Some(30.0)
        );
        assert_eq!(
            find("demo_request_duration_seconds_bucket", Some(("le", "+Inf"))),
            Some(31.0)
        );
        assert_eq!(
            find("demo_request_duration_seconds_count", None),
            Some(31.0)
        );
        assert_eq!(find("other_metric", None), None, "not asked for");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever a target serves, reading it never panics.
        #[test]
        fn malformed_text_never_panics(text in "(\\PC|[{}\"=,# \n\\\\]){0,400}") {
            let _ = parse(&text, &["a", "demo_requests_total"]);
        }

        #[test]
        fn mangled_real_text_never_panics(cut in 0usize..TEXT.len(), junk in "[{}\"=,# \n]{0,8}") {
            let mut t = TEXT.to_string();
            let cut = (0..=cut).rev().find(|c| t.is_char_boundary(*c)).unwrap_or(0);
            t.insert_str(cut, &junk);
            let _ = parse(&t, &["demo_requests_total", "demo_request_duration_seconds"]);
        }
    }
}
