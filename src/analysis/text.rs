//! Number formatting for finding sentences.

use indexmap::IndexMap;

use crate::metrics::{MetricKind, kind as metric_kind};

/// An axis value or a ratio: integers without decimals, else up to two.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if (x - x.round()).abs() < 1e-9 && x.abs() < 1e15 {
        return format!("{}", x.round() as i64);
    }
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn rps(x: f64) -> String {
    format!("{x:.1}")
}

pub fn ms(x: f64) -> String {
    format!("{x:.1} ms")
}

pub(crate) fn pct(x: f64) -> String {
    format!("{x:.2}%")
}

/// A metric value with its unit.
pub fn metric(name: &str, v: f64) -> String {
    match metric_kind(name) {
        Some(MetricKind::Latency) => ms(v),
        Some(MetricKind::Percent) => format!("{}%", num(v)),
        Some(MetricKind::Rate) => format!("{} RPS", rps(v)),
        _ => num(v),
    }
}

/// "p95 <= 500 ms" / "rps >= 100.0 RPS".
pub fn limit(name: &str, limit: f64, floor: bool) -> String {
    let op = if floor { ">=" } else { "<=" };
    format!("{name} {op} {}", metric(name, limit))
}

pub(crate) fn fixed_label(fixed: &IndexMap<String, String>) -> Option<String> {
    let parts: Vec<String> = fixed
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// " at users=400, workers=4", or "" without other axes.
pub fn at(fixed: &IndexMap<String, String>) -> String {
    fixed_label(fixed)
        .map(|l| format!(" at {l}"))
        .unwrap_or_default()
}

/// "requests per dollar" figures get large: 4.87M.
pub fn big(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(num(4.0), "4");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(1.333), "1.33");
        assert_eq!(num(f64::NAN), "n/a");
        assert_eq!(big(4_870_000.0), "4.87M");
        assert_eq!(limit("p95", 500.0, false), "p95 <= 500.0 ms");
        assert_eq!(limit("fail_rate", 1.0, false), "fail_rate <= 1%");
    }
}
