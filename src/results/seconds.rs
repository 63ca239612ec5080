//! The per-second windows of a cell's measured window, per repetition: what
//! an A/B comparison resamples. Read back from `timeline.csv` for a finished
//! run, taken from the engine's timeline while it runs.

use std::path::Path;

use crate::engine::TimelineRow;

/// One second of the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Second {
    pub requests: f64,
    pub failures: f64,
    /// The second's own latency quantiles, ms (0 without a request).
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// The whole seconds of one repetition's measured window. The last row of a
/// timeline also holds the responses drained after the window: it is left
/// out, like a row beyond the window's whole seconds.
pub(crate) fn of_timeline(rows: &[TimelineRow], measured_secs: f64) -> Vec<Second> {
    let whole = (measured_secs + 1e-6).floor() as usize;
    let keep = rows.len().min(whole).min(rows.len().saturating_sub(1));
    rows[..keep]
        .iter()
        .map(|r| Second {
            requests: r.requests as f64,
            failures: r.failures as f64,
            p50: r.p50_ms,
            p95: r.p95_ms,
            p99: r.p99_ms,
        })
        .collect()
}

/// A cell's `timeline.csv` as written by the run: one list of seconds per
/// repetition (the `repeat` column, when there is one), cut like
/// [`of_timeline`] with each repetition's measured seconds when known.
/// Empty when the file is missing or not a timeline.
pub(crate) fn read_timeline(path: &Path, measured_secs: &[f64]) -> Vec<Vec<Second>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut reps = parse_timeline(&text);
    for (secs, m) in reps.iter_mut().zip(measured_secs) {
        secs.truncate((m + 1e-6).floor() as usize);
    }
    reps
}

pub(crate) fn parse_timeline(text: &str) -> Vec<Vec<Second>> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(req), Some(fail), Some(p50), Some(p95), Some(p99)) = (
        at("requests"),
        at("failures"),
        at("p50"),
        at("p95"),
        at("p99"),
    ) else {
        return Vec::new();
    };
    let repeat = at("repeat");
    let mut out: Vec<(String, Vec<Second>)> = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        let (Some(requests), Some(failures), Some(p50), Some(p95), Some(p99)) =
            (num(req), num(fail), num(p50), num(p95), num(p99))
        else {
            continue;
        };
        let key = repeat
            .and_then(|i| f.get(i))
            .map_or_else(String::new, |s| s.to_string());
        if out.last().is_none_or(|(k, _)| *k != key) {
            out.push((key, Vec::new()));
        }
        if let Some((_, secs)) = out.last_mut() {
            secs.push(Second {
                requests,
                failures,
                p50,
                p95,
                p99,
            });
        }
    }
    out.into_iter()
        .map(|(_, mut secs)| {
            secs.pop();
            secs
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitions_split_on_the_repeat_column_and_lose_their_drained_last_row() {
        let csv = "repeat,t,users,rps,requests,failures,p50,p95,p99\n\
                   1,0,4,100,100,0,20,21,22\n1,1,4,100,100,1,20,21,22\n1,2,4,7,7,0,20,21,22\n\
                   2,0,4,90,90,0,24,25,26\n2,1,4,3,3,0,24,25,26\n";
        let reps = parse_timeline(csv);
        assert_eq!(reps.len(), 2);
        assert_eq!(reps[0].len(), 2);
        assert_eq!(reps[0][1].failures, 1.0);
        assert_eq!(reps[1].len(), 1);
        assert_eq!(reps[1][0].p95, 25.0);
        let plain = "t,users,rps,requests,failures,p50,p95,p99\n0,1,5,5,0,1,2,3\n1,1,5,5,0,1,2,3\n";
        assert_eq!(
            parse_timeline(plain),
            vec![vec![Second {
                requests: 5.0,
                failures: 0.0,
                p50: 1.0,
                p95: 2.0,
                p99: 3.0
            }]]
        );
        assert!(parse_timeline("t\n").is_empty());
    }
}
