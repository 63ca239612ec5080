//! Summary columns from scraped samples: counter rates, gauge statistics and
//! histogram quantiles, over the measured window and over replicas.

use std::collections::BTreeMap;

use super::ScrapeSample;
use crate::plan::model::{Agg, Series};

/// Time-ordered values of one exposed series of one replica.
type Groups<'a> = BTreeMap<(&'a str, Vec<(String, String)>), Vec<(f64, f64)>>;

fn groups<'a>(samples: &'a [ScrapeSample], metric: &str) -> Groups<'a> {
    let mut g: Groups<'a> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.metric == metric) {
        g.entry((s.replica.as_str(), s.labels.clone()))
            .or_default()
            .push((s.t, s.value));
    }
    for v in g.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    g
}

/// How much a counter grew over its points; a drop is a restart, after
/// which the counter counts from zero.
pub(crate) fn increase(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].1, w[1].1);
            if b >= a { b - a } else { b }
        })
        .sum()
}

/// The column a series becomes; none when the samples cannot give it (too
/// few scrapes, or nothing observed).
pub(crate) fn aggregate(series: &Series, samples: &[ScrapeSample]) -> Option<f64> {
    let value = match series.agg {
        Agg::Rate => rate(samples, &series.metric)
            .or_else(|| rate(samples, &format!("{}_count", series.metric))),
        Agg::Mean | Agg::Max | Agg::Min => gauge(samples, &series.metric, series.agg),
        Agg::Quantile(q) => {
            let buckets = if series.metric.ends_with("_bucket") {
                series.metric.clone()
            } else {
                format!("{}_bucket", series.metric)
            };
            quantile(samples, &buckets, q)
        }
    }?;
    Some(if series.in_seconds() {
        value * 1000.0
    } else {
        value
    })
}

/// Increase per second of every series of `metric`, summed over replicas
/// and label sets.
fn rate(samples: &[ScrapeSample], metric: &str) -> Option<f64> {
    let mut total = None;
    for points in groups(samples, metric).values() {
        let span = points.last()?.0 - points.first()?.0;
        if points.len() < 2 || span <= 0.0 {
            continue;
        }
        *total.get_or_insert(0.0) += increase(points) / span;
    }
    total
}

/// A gauge summed over its label sets per replica and scrape, then the mean,
/// largest or smallest of those values.
fn gauge(samples: &[ScrapeSample], metric: &str, agg: Agg) -> Option<f64> {
    let mut per_scrape: BTreeMap<(&str, u64), f64> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.metric == metric && s.value.is_finite())
    {
        *per_scrape
            .entry((s.replica.as_str(), s.t.to_bits()))
            .or_default() += s.value;
    }
    let values: Vec<f64> = per_scrape.into_values().collect();
    if values.is_empty() {
        return None;
    }
    Some(match agg {
        Agg::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Agg::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        _ => values.iter().sum::<f64>() / values.len() as f64,
    })
}

/// The `q` quantile of the observations made during the window: each
/// bucket's increase, summed over replicas and label sets, interpolated
/// within the bucket as Prometheus' `histogram_quantile` does.
fn quantile(samples: &[ScrapeSample], buckets: &str, q: f64) -> Option<f64> {
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for ((_, labels), points) in groups(samples, buckets) {
        let le = labels
            .iter()
            .find(|(k, _)| k == "le")
            .and_then(|(_, v)| parse_le(v))?;
        let grown = increase(&points);
        // Sorting upper bounds as ordered bits works for non-negative floats.
        let key = if le.is_infinite() {
            u64::MAX
        } else {
            le.max(0.0).to_bits()
        };
        by_le.entry(key).or_insert((le, 0.0)).1 += grown;
    }
    let bounds: Vec<(f64, f64)> = by_le.into_values().collect();
    let total = bounds.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in &bounds {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            if count <= prev.1 {
                return Some(le);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / (count - prev.1));
        }
        prev = (le, count);
    }
    Some(prev.0)
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, replica: &str, metric: &str, labels: &[(&str, &str)], value: f64) -> ScrapeSample {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        ScrapeSample {
            t,
            replica: replica.into(),
            metric: metric.into(),
            labels,
            value,
        }
    }

    fn series(metric: &str, agg: &str) -> Series {
        Series {
            metric: metric.into(),
            agg: Agg::parse(agg).unwrap(),
            column: "x".into(),
            names: Vec::new(),
        }
    }

    #[test]
    fn rate_sums_replicas_and_survives_a_restart() {
        let samples = vec![
            s(0.0, "a", "req_total", &[], 100.0),
            s(1.0, "a", "req_total", &[], 150.0),
            s(2.0, "a", "req_total", &[], 200.0),
            // b restarts between t=1 and t=2: 40 more after the reset.
            s(0.0, "b", "req_total", &[], 500.0),
            s(1.0, "b", "req_total", &[], 550.0),
            s(2.0, "b", "req_total", &[], 40.0),
        ];
        // a: 100 in 2 s; b: 50 + 40 in 2 s.
        let r = aggregate(&series("req_total", "rate"), &samples).unwrap();
        assert!((r - (50.0 + 45.0)).abs() < 1e-9, "{r}");
    }

    #[test]
    fn a_single_scrape_gives_no_rate() {
        let samples = vec![s(0.0, "a", "req_total", &[], 100.0)];
        assert_eq!(aggregate(&series("req_total", "rate"), &samples), None);
    }

    #[test]
    fn gauges_sum_label_sets_per_scrape() {
        let samples = vec![
            s(0.0, "a", "q", &[("m", "x")], 1.0),
            s(0.0, "a", "q", &[("m", "y")], 2.0),
            s(1.0, "a", "q", &[("m", "x")], 5.0),
            s(0.0, "b", "q", &[], 0.0),
        ];
        assert_eq!(aggregate(&series("q", "max"), &samples), Some(5.0));
        assert_eq!(aggregate(&series("q", "min"), &samples), Some(0.0));
        assert_eq!(aggregate(&series("q", "mean"), &samples), Some(8.0 / 3.0));
    }

    #[test]
    fn quantiles_merge_bucket_increases_over_replicas() {
        let b = "lat_seconds_bucket";
        let mut samples = Vec::new();
        for (replica, start) in [("a", 1000.0), ("b", 0.0)] {
            for (t, grown) in [(0.0, 0.0), (1.0, 1.0)] {
                // 60 observations at or below 0.1, 40 in (0.1, 0.2] per replica.
                samples.push(s(t, replica, b, &[("le", "0.1")], start + 60.0 * grown));
                samples.push(s(t, replica, b, &[("le", "0.2")], start + 100.0 * grown));
                samples.push(s(t, replica, b, &[("le", "+Inf")], start + 100.0 * grown));
            }
        }
        // 200 observations; p50 is rank 100 in the first bucket (120 <= 0.1):
        // 0.1 * 100/120 s; p95 is rank 190: 0.1 + 0.1 * (190-120)/80 s.
        let p50 = aggregate(&series("lat_seconds", "p50"), &samples).unwrap();
        assert!((p50 - 100.0 * 100.0 / 120.0).abs() < 1e-6, "{p50}");
        let p95 = aggregate(&series("lat_seconds", "p95"), &samples).unwrap();
        assert!((p95 - (100.0 + 100.0 * 70.0 / 80.0)).abs() < 1e-6, "{p95}");
    }

    #[test]
    fn a_quantile_in_the_open_bucket_is_its_lower_bound() {
        let b = "lat_seconds_bucket";
        let samples = vec![
            s(0.0, "a", b, &[("le", "0.1")], 0.0),
            s(0.0, "a", b, &[("le", "+Inf")], 0.0),
            s(1.0, "a", b, &[("le", "0.1")], 1.0),
            s(1.0, "a", b, &[("le", "+Inf")], 10.0),
        ];
        assert_eq!(
            aggregate(&series("lat_seconds", "p99"), &samples),
            Some(100.0)
        );
    }
}
