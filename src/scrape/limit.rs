//! Bounds on what a scrape keeps, whatever a target exposes: label sets per
//! family (the excess summed into one overflow series) and samples per
//! measured window (past the budget, only the latest scrape is kept, so the
//! window's end is still there for rates).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ScrapeSample;
use super::expo::{Line, in_family};

/// Label sets kept per metric family and target; the rest are summed into
/// one series labelled [`OVERFLOW_LABEL`].
pub(crate) const MAX_LABEL_SETS: usize = 1000;
/// Samples kept per measured window, over every `[[scrape]]` and target.
pub(crate) const MAX_SAMPLES: usize = 250_000;
/// Marks the series that sums a family's label sets beyond [`MAX_LABEL_SETS`].
pub(crate) const OVERFLOW_LABEL: &str = "loadmatrix_overflow";

/// Labels that split one series into its histogram buckets or summary
/// quantiles: kept on the overflow series so it stays a histogram.
fn structural(key: &str) -> bool {
    key == "le" || key == "quantile"
}

/// A job, a target of it, a family.
type FamilyKey = (usize, usize, String);
/// A series' labels without `le` and `quantile`.
type LabelSet = Vec<(String, String)>;

/// The label sets seen so far per (job, target, family).
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    kept: HashMap<FamilyKey, HashSet<LabelSet>>,
    /// (job, target, family) whose excess was reported.
    told: HashSet<FamilyKey>,
}

impl Limiter {
    /// `lines` of one scrape of target `k` of job `j`, with label sets past
    /// the cap summed into the overflow series. A note for each family that
    /// overflowed for the first time.
    pub fn limit(
        &mut self,
        (j, k): (usize, usize),
        families: &[&str],
        lines: Vec<Line>,
    ) -> (Vec<Line>, Vec<String>) {
        let mut out = Vec::with_capacity(lines.len().min(MAX_LABEL_SETS * 4));
        let mut overflow: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
        let mut notes = Vec::new();
        for (name, labels, value) in lines {
            let Some(family) = families.iter().find(|f| in_family(&name, f)) else {
                continue;
            };
            let identity: Vec<(String, String)> = labels
                .iter()
                .filter(|(k, _)| !structural(k))
                .cloned()
                .collect();
            let key = (j, k, family.to_string());
            let kept = self.kept.entry(key.clone()).or_default();
            if kept.contains(&identity) || kept.len() < MAX_LABEL_SETS {
                kept.insert(identity);
                out.push((name, labels, value));
                continue;
            }
            if self.told.insert(key) {
                notes.push(format!(
                    "exposes more than {MAX_LABEL_SETS} label sets of `{family}`; the rest are summed into one series labelled {OVERFLOW_LABEL}=\"true\""
                ));
            }
            let mut rest: Vec<(String, String)> =
                labels.into_iter().filter(|(k, _)| structural(k)).collect();
            rest.push((OVERFLOW_LABEL.to_string(), "true".to_string()));
            rest.sort();
            if value.is_finite() {
                *overflow.entry((name, rest)).or_default() += value;
            }
        }
        out.extend(overflow.into_iter().map(|((n, l), v)| (n, l, v)));
        (out, notes)
    }
}

/// Samples of a window within [`MAX_SAMPLES`]: every scrape until the budget
/// is spent, then only the latest one (replaced by each newer scrape).
#[derive(Debug, Default)]
pub(crate) struct Budget {
    kept: Vec<ScrapeSample>,
    /// The latest scrape once the budget is spent.
    latest: Vec<ScrapeSample>,
    /// When the budget ran out (seconds into the window).
    spent_at: Option<f64>,
}

impl Budget {
    /// One scrape's samples (of every target).
    pub fn push(&mut self, scrape: Vec<ScrapeSample>) {
        if self.spent_at.is_none() && self.kept.len() + scrape.len() <= MAX_SAMPLES {
            self.kept.extend(scrape);
            return;
        }
        if self.spent_at.is_none() {
            self.spent_at = scrape.first().map(|s| s.t);
        }
        if scrape.len() <= MAX_SAMPLES {
            self.latest = scrape;
        }
    }

    /// The samples kept, and a note when the budget ran out.
    pub(crate) fn finish(self) -> (Vec<ScrapeSample>, Option<String>) {
        let mut kept = self.kept;
        kept.extend(self.latest);
        let note = self.spent_at.map(|t| {
            format!(
                "more than {MAX_SAMPLES} samples in the window: from t = {t:.1} s only the window's last scrape is kept (scrape fewer series or less often)"
            )
        });
        (kept, note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, labels: &[(&str, &str)], v: f64) -> Line {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        (name.to_string(), l, v)
    }

    #[test]
    fn label_sets_past_the_cap_are_summed_into_one_series_keeping_buckets() {
        let mut lim = Limiter::default();
        let n = MAX_LABEL_SETS + 500;
        let mut lines = Vec::new();
        for i in 0..n {
            let id = i.to_string();
            lines.push(line("c_total", &[("id", &id)], 1.0));
            lines.push(line("h_bucket", &[("id", &id), ("le", "0.1")], 2.0));
            lines.push(line("h_bucket", &[("id", &id), ("le", "+Inf")], 3.0));
        }
        let (out, notes) = lim.limit((0, 0), &["c_total", "h"], lines);
        assert_eq!(notes.len(), 2, "{notes:?}");
        // The kept label sets, plus one overflow series per exposed name and le.
        assert_eq!(out.len(), 3 * MAX_LABEL_SETS + 3);
        let over = |name: &str, le: Option<&str>| {
            out.iter()
                .find(|(n, l, _)| {
                    n == name
                        && l.iter().any(|(k, _)| k == OVERFLOW_LABEL)
                        && le.is_none_or(|le| l.iter().any(|(k, v)| k == "le" && v == le))
                })
                .map(|x| x.2)
        };
        assert_eq!(over("c_total", None), Some(500.0));
        assert_eq!(over("h_bucket", Some("0.1")), Some(1000.0));
        assert_eq!(over("h_bucket", Some("+Inf")), Some(1500.0));
        // The sum over every series is what the target exposed.
        let total: f64 = out.iter().filter(|x| x.0 == "c_total").map(|x| x.2).sum();
        assert_eq!(total, n as f64);
        // The next scrape keeps the same series and says nothing new.
        let (_, notes) = lim.limit(
            (0, 0),
            &["c_total"],
            vec![line("c_total", &[("id", "0")], 1.0)],
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn past_the_sample_budget_only_the_latest_scrape_is_kept() {
        let scrape = |t: f64, n: usize| -> Vec<ScrapeSample> {
            (0..n)
                .map(|_| ScrapeSample {
                    t,
                    replica: "r".into(),
                    metric: "m".into(),
                    labels: Vec::new(),
                    value: t,
                })
                .collect()
        };
        let mut b = Budget::default();
        let per = MAX_SAMPLES / 3 + 1;
        for t in 0..10 {
            b.push(scrape(f64::from(t), per));
        }
        let (kept, note) = b.finish();
        assert!(kept.len() <= MAX_SAMPLES + per, "{}", kept.len());
        assert_eq!(
            kept.last().map(|s| s.t),
            Some(9.0),
            "the window's end is kept"
        );
        assert!(note.unwrap().contains("t = 2.0 s"));
    }
}
