//! Charts of each `[[scrape]]` series per replica over a cell's measured
//! window, read back from the cell's metrics.csv.

use std::collections::BTreeMap;

use crate::plan::model::{Agg, Series};
use crate::scrape::ScrapeSample;
use crate::scrape::aggregate::aggregate;

/// Per replica, the series' value over time: gauges at every scrape;
/// rates and quantiles over each interval between two scrapes.
pub(crate) fn per_replica(
    series: &Series,
    samples: &[ScrapeSample],
) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut by_replica: BTreeMap<&str, BTreeMap<u64, Vec<&ScrapeSample>>> = BTreeMap::new();
    for s in samples {
        by_replica
            .entry(&s.replica)
            .or_default()
            .entry(s.t.to_bits())
            .or_default()
            .push(s);
    }
    by_replica
        .into_iter()
        .map(|(replica, at)| {
            let scrapes: Vec<(f64, Vec<ScrapeSample>)> = at
                .into_iter()
                .map(|(t, s)| (f64::from_bits(t), s.into_iter().cloned().collect()))
                .collect();
            let points = match series.agg {
                Agg::Mean | Agg::Max | Agg::Min => scrapes
                    .iter()
                    .filter_map(|(t, s)| Some((*t, aggregate(series, s)?)))
                    .collect(),
                Agg::Rate | Agg::Quantile(_) => scrapes
                    .windows(2)
                    .filter_map(|w| {
                        let both: Vec<ScrapeSample> =
                            w[0].1.iter().chain(&w[1].1).cloned().collect();
                        Some((w[1].0, aggregate(series, &both)?))
                    })
                    .collect(),
            };
            (replica.to_string(), points)
        })
        .collect()
}

/// One SVG per series of the plan: (column, svg).
pub(crate) fn cell_charts(series: &[Series], samples: &[ScrapeSample]) -> Vec<(String, String)> {
    series
        .iter()
        .filter_map(|x| {
            let lines = per_replica(x, samples);
            if lines.iter().all(|(_, p)| p.is_empty()) {
                return None;
            }
            let unit = match x.kind() {
                crate::metrics::MetricKind::Latency => "ms",
                crate::metrics::MetricKind::Rate => "per second",
                _ => "value",
            };
            let title = format!(
                "{} ({} of {}) per replica",
                x.column,
                agg_name(x.agg),
                x.metric
            );
            Some((
                x.column.clone(),
                super::charts::svg_line_chart(
                    &title,
                    "second of the measured window",
                    unit,
                    &lines,
                ),
            ))
        })
        .collect()
}

fn agg_name(agg: Agg) -> String {
    match agg {
        Agg::Rate => "rate".into(),
        Agg::Mean => "mean".into(),
        Agg::Max => "max".into(),
        Agg::Min => "min".into(),
        Agg::Quantile(q) => format!("p{}", (q * 100.0).round()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_interval_and_gauges_per_scrape() {
        let s = |t: f64, replica: &str, metric: &str, v: f64| ScrapeSample {
            t,
            replica: replica.into(),
            metric: metric.into(),
            labels: vec![],
            value: v,
        };
        let samples = vec![
            s(0.0, "a", "c_total", 0.0),
            s(1.0, "a", "c_total", 10.0),
            s(2.0, "a", "c_total", 30.0),
            s(0.0, "b", "c_total", 5.0),
            s(1.0, "b", "c_total", 6.0),
            s(0.0, "a", "q", 3.0),
            s(1.0, "a", "q", 4.0),
        ];
        let rate = Series {
            metric: "c_total".into(),
            agg: Agg::Rate,
            column: "r".into(),
            names: Vec::new(),
        };
        let lines = per_replica(&rate, &samples);
        assert_eq!(lines[0], ("a".to_string(), vec![(1.0, 10.0), (2.0, 20.0)]));
        assert_eq!(lines[1], ("b".to_string(), vec![(1.0, 1.0)]));
        let gauge = Series {
            metric: "q".into(),
            agg: Agg::Max,
            column: "m".into(),
            names: Vec::new(),
        };
        assert_eq!(
            per_replica(&gauge, &samples)[0].1,
            vec![(0.0, 3.0), (1.0, 4.0)]
        );
        let charts = cell_charts(&[rate, gauge], &samples);
        assert_eq!(charts.len(), 2);
        assert!(charts[0].1.starts_with("<svg") || charts[0].1.starts_with("<?xml"));
    }
}
