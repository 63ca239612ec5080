//! The service's own metrics: Prometheus text scraped from every replica
//! during a cell's measured window, kept as raw samples and aggregated into
//! summary columns.

pub mod aggregate;
pub mod expo;
pub mod limit;
pub mod scraper;

use std::fmt::Write as _;

/// One scraped value.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeSample {
    /// Seconds since the measured window began.
    pub t: f64,
    /// The replica (host:port) it came from.
    pub replica: String,
    /// Exposed name, with `_bucket`, `_sum` or `_count` for histograms.
    pub metric: String,
    /// Sorted label pairs (`le` included for buckets).
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl ScrapeSample {
    /// `{a="1",b="2"}`, or empty without labels.
    pub fn labels_text(&self) -> String {
        if self.labels.is_empty() {
            return String::new();
        }
        let inner: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        format!("{{{}}}", inner.join(","))
    }
}

/// metrics.csv: `t, replica, metric, labels, value` (with a leading
/// `repeat` column when the cell was measured more than once).
pub fn metrics_csv(reps: &[Vec<ScrapeSample>]) -> String {
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
pub fn parse_metrics_csv(text: &str) -> Vec<Vec<ScrapeSample>> {
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
