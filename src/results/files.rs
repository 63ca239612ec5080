//! The files of a cell folder, each written and read back in one place:
//! timeline.csv, system.csv and metrics.csv.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::CellStats;
use crate::scrape::ScrapeSample;
use crate::system::SystemSample;

pub(crate) const TIMELINE: &str = "timeline.csv";
pub(crate) const SYSTEM: &str = "system.csv";
pub(crate) const METRICS: &str = "metrics.csv";

/// The folder of cell `id` in run folder `dir`.
pub(crate) fn cell_folder(dir: &Path, id: &str) -> PathBuf {
    dir.join("cells").join(id)
}

/// timeline.csv: one row per second of each repetition.
pub(crate) fn timeline_csv(runs: &[CellStats]) -> String {
    let mut out = String::new();
    let repeated = runs.len() > 1;
    // Streamed responses add their columns; other cells keep the plain layout.
    let streamed = runs
        .iter()
        .any(|r| r.timeline.iter().any(|row| row.stream.is_some()));
    if repeated {
        out.push_str("repeat,");
    }
    out.push_str("t,users,rps,requests,failures,p50,p95,p99");
    out.push_str(if streamed {
        ",ttft_p95,itl_p95,tokens_per_s\n"
    } else {
        "\n"
    });
    for (i, r) in runs.iter().enumerate() {
        for row in &r.timeline {
            if repeated {
                let _ = write!(out, "{},", i + 1);
            }
            let _ = write!(
                out,
                "{},{},{:.3},{},{},{:.3},{:.3},{:.3}",
                row.t,
                row.users,
                row.rps,
                row.requests,
                row.failures,
                row.p50_ms,
                row.p95_ms,
                row.p99_ms
            );
            if streamed {
                match &row.stream {
                    Some(s) => {
                        let _ = write!(
                            out,
                            ",{:.3},{:.3},{:.3}",
                            s.ttft_p95_ms, s.itl_p95_ms, s.tokens_per_s
                        );
                    }
                    None => out.push_str(",,,0.000"),
                }
            }
            out.push('\n');
        }
    }
    out
}

/// system.csv: the backend's samples of each replica.
pub(crate) fn system_csv(samples: &[SystemSample]) -> String {
    let net = samples.iter().any(|s| s.net_bytes.is_some());
    let mut out = String::from(if net {
        "t,replica,cpu_pct,mem_bytes,rx_bytes,tx_bytes\n"
    } else {
        "t,replica,cpu_pct,mem_bytes\n"
    });
    for s in samples {
        let _ = write!(
            out,
            "{:.3},{},{:.2},{}",
            s.t, s.replica, s.cpu_pct, s.mem_bytes
        );
        match s.net_bytes {
            Some((rx, tx)) => {
                let _ = writeln!(out, ",{rx},{tx}");
            }
            None if net => out.push_str(",,\n"),
            None => out.push('\n'),
        }
    }
    out
}

/// metrics.csv: `t, replica, metric, labels, value` (with a leading
/// `repeat` column when the cell was measured more than once).
pub(crate) fn metrics_csv(reps: &[Vec<ScrapeSample>]) -> String {
    let repeated = reps.len() > 1;
    let mut out = String::from(if repeated {
        "repeat,t,replica,metric,labels,value\n"
    } else {
        "t,replica,metric,labels,value\n"
    });
    for (i, samples) in reps.iter().enumerate() {
        for s in samples {
            if repeated {
                let _ = write!(out, "{},", i + 1);
            }
            let labels = s.labels_text();
            let labels = if labels.contains([',', '"']) {
                format!("\"{}\"", labels.replace('"', "\"\""))
            } else {
                labels
            };
            let _ = writeln!(
                out,
                "{:.3},{},{},{},{}",
                s.t, s.replica, s.metric, labels, s.value
            );
        }
    }
    out
}

/// Reads metrics.csv back: one list of samples per repetition.
pub(crate) fn parse_metrics_csv(text: &str) -> Vec<Vec<ScrapeSample>> {
    let mut lines = text.lines();
    let repeated = lines.next().is_some_and(|h| h.starts_with("repeat,"));
    let mut reps: Vec<Vec<ScrapeSample>> = Vec::new();
    for line in lines {
        let fields = csv_fields(line);
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let (rep, rest) = if repeated {
            match f.split_first() {
                Some((r, rest)) => (r.parse::<usize>().unwrap_or(1).max(1) - 1, rest),
                None => continue,
            }
        } else {
            (0, &f[..])
        };
        let [t, replica, metric, labels, value] = rest else {
            continue;
        };
        let (Ok(t), Ok(value)) = (t.parse::<f64>(), value.parse::<f64>()) else {
            continue;
        };
        if reps.len() <= rep {
            reps.resize_with(rep + 1, Vec::new);
        }
        reps[rep].push(ScrapeSample {
            t,
            replica: replica.to_string(),
            metric: metric.to_string(),
            labels: parse_labels(labels),
            value,
        });
    }
    reps
}

/// Splits one CSV line, honouring double-quoted fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = out.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out
}

/// `{a="1",b="2"}` back into pairs.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = Vec::new();
    let mut rest = inner;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end.min(after.len())..];
    }
    out
}

/// A cell's metrics.csv read back: one list of samples per repetition;
/// empty when the cell scraped nothing.
pub(crate) fn read_metrics(dir: &Path, id: &str) -> Vec<Vec<ScrapeSample>> {
    std::fs::read_to_string(cell_folder(dir, id).join(METRICS))
        .map(|text| parse_metrics_csv(&text))
        .unwrap_or_default()
}

/// One row of a cell's system.csv.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SystemRow {
    pub t: f64,
    pub replica: String,
    pub cpu_pct: f64,
    pub mem_bytes: f64,
}

/// A cell's system.csv read back; a row that is damaged or hand-edited into
/// NaN, infinity or a negative time is left out, never taken as a figure.
pub(crate) fn read_system(dir: &Path, id: &str) -> Vec<SystemRow> {
    let Ok(text) = std::fs::read_to_string(cell_folder(dir, id).join(SYSTEM)) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let (t, replica, cpu, mem) = (f.first()?, f.get(1)?, f.get(2)?, f.get(3)?);
            let (t, cpu_pct, mem_bytes) = (
                t.parse::<f64>().ok()?,
                cpu.parse::<f64>().ok()?,
                mem.parse::<f64>().ok()?,
            );
            (t >= 0.0 && t.is_finite() && cpu_pct.is_finite() && mem_bytes.is_finite()).then(|| {
                SystemRow {
                    t,
                    replica: replica.to_string(),
                    cpu_pct,
                    mem_bytes,
                }
            })
        })
        .collect()
}

/// One second of a cell's timeline.csv: when, RPS and p95 (ms; NaN when
/// the second had no latency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimelinePoint {
    pub t: f64,
    pub rps: f64,
    pub p95: f64,
}

/// A cell's timeline.csv read back, every repetition's seconds in order;
/// none when the file is missing or lacks its columns.
pub(crate) fn read_timeline(dir: &Path, id: &str) -> Option<Vec<TimelinePoint>> {
    let text = std::fs::read_to_string(cell_folder(dir, id).join(TIMELINE)).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (t, r, p) = (col("t")?, col("rps")?, col("p95")?);
    Some(
        lines
            .filter_map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
                Some(TimelinePoint {
                    t: num(t)?,
                    rps: num(r)?,
                    p95: num(p)?,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_csv_reads_back_what_it_wrote() {
        let sample = |t: f64, labels: Vec<(String, String)>| ScrapeSample {
            t,
            replica: "127.0.0.1:8080".into(),
            metric: "demo_requests_total".into(),
            labels,
            value: 12.5,
        };
        let reps = vec![
            vec![
                sample(0.0, vec![]),
                sample(
                    0.5,
                    vec![
                        ("path".into(), "/a,b".into()),
                        ("q".into(), "say \"hi\"".into()),
                    ],
                ),
            ],
            vec![sample(1.0, vec![("status".into(), "200".into())])],
        ];
        assert_eq!(parse_metrics_csv(&metrics_csv(&reps)), reps);
        assert_eq!(parse_metrics_csv(&metrics_csv(&reps[..1])), reps[..1]);
    }
}
