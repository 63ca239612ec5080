//! Input and output tokens of the requests whose responses were read for
//! them: from the OpenAI `usage` a response reported, else (output only)
//! from the events a streamed response delivered.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// Successful requests counted from their `usage`.
    pub from_usage: u64,
    /// Successful requests counted from their streamed events.
    pub from_events: u64,
    pub input: u64,
    pub output: u64,
    /// Output tokens of requests that met every per-request objective.
    #[serde(default)]
    pub good_output: Option<u64>,
}

impl TokenCounts {
    /// One successful request: its `usage` (input, output), its events,
    /// and whether it met the objectives (none without any).
    pub fn record(&mut self, usage: Option<(u64, u64)>, events: u64, good: Option<bool>) {
        let output = match usage {
            Some((input, output)) => {
                self.from_usage += 1;
                self.input += input;
                output
            }
            None => {
                self.from_events += 1;
                events
            }
        };
        self.output += output;
        if let Some(good) = good {
            *self.good_output.get_or_insert(0) += if good { output } else { 0 };
        }
    }

    pub(crate) fn merge(&mut self, other: &TokenCounts) {
        self.from_usage += other.from_usage;
        self.from_events += other.from_events;
        self.input += other.input;
        self.output += other.output;
        if let Some(g) = other.good_output {
            *self.good_output.get_or_insert(0) += g;
        }
    }

    /// `usage` when every counted response reported it, else `events`.
    pub(crate) fn source(&self) -> &'static str {
        if self.from_usage > 0 && self.from_events == 0 {
            "usage"
        } else {
            "events"
        }
    }

    /// summary.csv's token figures: per-request means and per-second rates.
    pub fn figures(&self, measured_secs: f64) -> Vec<(&'static str, f64)> {
        let n = (self.from_usage + self.from_events) as f64;
        let mean = |x: u64| if n > 0.0 { x as f64 / n } else { 0.0 };
        let rate = |x: u64| {
            if measured_secs > 0.0 {
                x as f64 / measured_secs
            } else {
                0.0
            }
        };
        let mut out = vec![
            ("output_tokens", mean(self.output)),
            ("output_tokens_per_s", rate(self.output)),
        ];
        // Input tokens only come from `usage`: its presence says the source.
        if self.source() == "usage" {
            out.push(("input_tokens", mean(self.input)));
            out.push(("input_tokens_per_s", rate(self.input)));
        }
        if let Some(g) = self.good_output {
            out.push(("goodput_output_tokens_per_s", rate(g)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_both_sides_and_events_only_output() {
        let mut t = TokenCounts::default();
        t.record(Some((100, 10)), 11, Some(true));
        t.record(Some((300, 30)), 31, Some(false));
        assert_eq!(t.source(), "usage");
        let f: std::collections::HashMap<_, _> = t.figures(2.0).into_iter().collect();
        assert_eq!(f["input_tokens"], 200.0);
        assert_eq!(f["output_tokens"], 20.0);
        assert_eq!(f["input_tokens_per_s"], 200.0);
        assert_eq!(f["output_tokens_per_s"], 20.0);
        assert_eq!(f["goodput_output_tokens_per_s"], 5.0);
        let mut e = TokenCounts::default();
        e.record(None, 7, None);
        e.merge(&t);
        assert_eq!(e.source(), "events");
        assert_eq!(e.output, 47);
    }
}
