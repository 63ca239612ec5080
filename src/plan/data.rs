//! Request data: the rows `row.*` reads, from a JSON Lines or CSV file or
//! generated (synthetic prompts), and the `prompt(n, hash_ids)` template
//! function. Rows are streamed, never all held as parsed values: a file is
//! read once to check it and once to render each row's request.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::base::random::SplitMix64;
use crate::base::request::RowOrder;

/// Largest data file accepted (1 GiB): its rendered requests are held in
/// memory for the whole cell.
pub(crate) const MAX_DATA_BYTES: u64 = 1 << 30;
/// Most synthetic rows.
pub(crate) const MAX_SYNTHETIC_ROWS: u64 = 1_000_000;
/// Words per `prompt` block: equal hash ids give equal blocks.
pub(crate) const BLOCK_WORDS: usize = 512;
/// Most words `prompt(n, ...)` makes.
pub(crate) const MAX_PROMPT_WORDS: u64 = 1_000_000;

/// A normal distribution of token counts, clipped to `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Lengths {
    pub mean: f64,
    pub stddev: f64,
    pub min: u64,
    pub max: u64,
}

impl Lengths {
    fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let x = (self.mean + self.stddev * rng.next_normal()).round();
        (x.max(0.0) as u64).clamp(self.min, self.max)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Synthetic {
    pub rows: u64,
    pub prompt_tokens: Lengths,
    pub output_tokens: Lengths,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) enum DataSource {
    File(PathBuf),
    Synthetic(Synthetic),
}

/// A request's rows and the order it takes them in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RequestData {
    pub source: DataSource,
    pub order: RowOrder,
    /// Seeds the shuffle.
    pub seed: u64,
    /// The rows are a trace's lines: each is sent at its `timestamp`.
    pub trace: Option<TraceClock>,
}

/// How a trace's `timestamp` (ms) becomes a send time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct TraceClock {
    /// The first line's timestamp: the trace's start.
    pub first_ms: f64,
    pub time_scale: f64,
}

impl TraceClock {
    /// When a line with `timestamp` is due, after the schedule's origin.
    pub(crate) fn offset(&self, timestamp_ms: f64) -> std::time::Duration {
        let secs = ((timestamp_ms - self.first_ms) / 1000.0 / self.time_scale).max(0.0);
        std::time::Duration::try_from_secs_f64(secs).unwrap_or(std::time::Duration::MAX)
    }
}

/// `[load] trace`: one request per line at its timestamp.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Trace {
    pub path: PathBuf,
    pub clock: TraceClock,
    pub lines: u64,
    /// Last timestamp minus the first, in ms of the trace.
    pub span_ms: f64,
    /// `[cell] duration`, when the plan sets it: the window ends there.
    pub cut: Option<std::time::Duration>,
}

impl Trace {
    /// The measured window: the trace's span (scaled), just past its last
    /// arrival, or the cut when shorter.
    pub fn window(&self) -> std::time::Duration {
        let span = self.clock.offset(self.clock.first_ms + self.span_ms)
            + std::time::Duration::from_millis(1);
        self.cut.map_or(span, |c| c.min(span))
    }

    /// Mean arrivals per second.
    pub fn rate(&self) -> f64 {
        self.lines as f64 / self.window().as_secs_f64()
    }
}

/// A line's `timestamp` in ms.
pub fn timestamp(row: &Map<String, Value>) -> Option<f64> {
    row.get("timestamp")?.as_f64().filter(|t| t.is_finite())
}

/// Reads a trace: every line needs a `timestamp` at or after the one
/// before. Returns (lines, first timestamp, span in ms).
pub(crate) fn scan_trace(path: &Path) -> Result<(u64, f64, f64), DataError> {
    let mut first = None;
    let mut last = f64::NEG_INFINITY;
    let shown = path.display().to_string();
    let lines = for_each_row::<DataError>(&DataSource::File(path.to_path_buf()), |line, row| {
        let bad = |reason: String| DataError::Row {
            path: shown.clone(),
            line,
            reason,
        };
        let Some(t) = timestamp(&row) else {
            return Err(bad(
                "no numeric `timestamp` (ms from the trace's start)".into()
            ));
        };
        if t < last {
            return Err(bad(format!(
                "timestamp {t} is before the line above's ({last}): a trace is in time order"
            )));
        }
        last = t;
        first.get_or_insert(t);
        Ok(())
    })?;
    let first = first.unwrap_or(0.0);
    Ok((lines as u64, first, last - first))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum DataError {
    #[error("cannot read data file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("data file {path} is {bytes} bytes, beyond the limit of {limit} bytes (1 GiB)")]
    TooLarge {
        path: String,
        bytes: u64,
        limit: u64,
    },
    #[error("{path}:{line}: {reason}")]
    Row {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("data file {path} has no rows")]
    Empty { path: String },
}

impl DataError {
    pub fn hint(&self) -> &'static str {
        match self {
            DataError::Read { .. } => "paths in a plan are relative to the plan's folder",
            DataError::TooLarge { .. } => {
                "sample the file down (e.g. `shuf -n 1000000`) or split it over cells"
            }
            DataError::Row { .. } => {
                "each line of a .jsonl file is one JSON object; a .csv file has a header line and the same number of fields on every line"
            }
            DataError::Empty { .. } => "give at least one row",
        }
    }
}

fn format_of(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
        _ => Format::Jsonl,
    }
}

enum Format {
    Jsonl,
    Csv,
}

/// Calls `f(line, row)` for every row, in file order (1-based line numbers);
/// stops at the first error `f` or the file gives. Returns the row count.
pub(crate) fn for_each_row<E: From<DataError>>(
    source: &DataSource,
    mut f: impl FnMut(usize, Map<String, Value>) -> Result<(), E>,
) -> Result<usize, E> {
    match source {
        DataSource::Synthetic(s) => {
            for k in 0..s.rows {
                f(k as usize + 1, synthetic_row(s, k))?;
            }
            Ok(s.rows as usize)
        }
        DataSource::File(path) => {
            let shown = path.display().to_string();
            let read = |e: std::io::Error| DataError::Read {
                path: shown.clone(),
                reason: e.to_string(),
            };
            let file = File::open(path).map_err(read)?;
            let bytes = file.metadata().map_err(read)?.len();
            if bytes > MAX_DATA_BYTES {
                return Err(DataError::TooLarge {
                    path: shown,
                    bytes,
                    limit: MAX_DATA_BYTES,
                }
                .into());
            }
            let format = format_of(path);
            let mut reader = BufReader::new(file);
            let mut header: Option<Vec<String>> = None;
            let mut line = String::new();
            let mut number = 0;
            let mut rows = 0;
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(read)?;
                if n == 0 {
                    break;
                }
                number += 1;
                let text = line.trim_end_matches(['\n', '\r']);
                if text.trim().is_empty() {
                    continue;
                }
                let bad = |reason: String| DataError::Row {
                    path: shown.clone(),
                    line: number,
                    reason,
                };
                let row = match format {
                    Format::Jsonl => match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(m)) => m,
                        Ok(_) => return Err(bad("not a JSON object".into()).into()),
                        Err(e) => return Err(bad(format!("invalid JSON: {e}")).into()),
                    },
                    Format::Csv => {
                        let fields = csv_fields(text).map_err(|r| bad(r.into()))?;
                        let Some(names) = &header else {
                            header = Some(fields);
                            continue;
                        };
                        if fields.len() != names.len() {
                            return Err(bad(format!(
                                "{} fields, but the header has {}",
                                fields.len(),
                                names.len()
                            ))
                            .into());
                        }
                        names
                            .iter()
                            .cloned()
                            .zip(fields.into_iter().map(Value::String))
                            .collect()
                    }
                };
                rows += 1;
                f(number, row)?;
            }
            if rows == 0 {
                return Err(DataError::Empty { path: shown }.into());
            }
            Ok(rows)
        }
    }
}

/// One CSV line's fields (RFC 4180 quoting; no newlines inside fields).
fn csv_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unclosed quote"),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(_) => return Err("text after a closing quote"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

fn synthetic_row(s: &Synthetic, k: u64) -> Map<String, Value> {
    let mut rng = SplitMix64::stream(s.seed, k);
    let prompt_tokens = s.prompt_tokens.sample(&mut rng);
    let max_tokens = s.output_tokens.sample(&mut rng).max(1);
    // Ids no other row shares: no prefix in common.
    let base = SplitMix64::stream(s.seed ^ 0x5eed, k).next_u64() >> 16;
    let blocks = (prompt_tokens as usize).div_ceil(BLOCK_WORDS) as u64;
    let ids: Vec<u64> = (0..blocks).map(|b| base.wrapping_add(b << 48)).collect();
    let mut row = Map::new();
    row.insert("prompt".into(), Value::String(prompt(prompt_tokens, &ids)));
    row.insert("prompt_tokens".into(), prompt_tokens.into());
    row.insert("max_tokens".into(), max_tokens.into());
    row
}

/// `n` words; block `k` (words `512k..512k+511`) is a function of
/// `hash_ids[k]` alone, so prompts sharing leading ids share their prefix.
/// Blocks past the ids come from the last id and the block's position.
pub fn prompt(n: u64, hash_ids: &[u64]) -> String {
    let n = n.min(MAX_PROMPT_WORDS) as usize;
    let mut out = String::with_capacity(n * 7);
    for i in 0..n {
        let block = i / BLOCK_WORDS;
        let id = match hash_ids.get(block) {
            Some(id) => *id,
            None => hash_ids
                .last()
                .copied()
                .unwrap_or(0)
                .wrapping_mul(31)
                .wrapping_add(block as u64),
        };
        let word = SplitMix64::stream(id, (i % BLOCK_WORDS) as u64).next_u64();
        if i > 0 {
            out.push(' ');
        }
        // Five base-36 letters: short words, and 60M of them.
        let mut w = word;
        for _ in 0..5 {
            let d = (w % 36) as u32;
            out.push(char::from_digit(d, 36).unwrap_or('x'));
            w /= 36;
        }
    }
    out
}

/// The template function `prompt(n, hash_ids)`.
pub(crate) fn prompt_function(
    n: i64,
    hash_ids: Option<Vec<i64>>,
) -> Result<String, minijinja::Error> {
    if n < 0 || n as u64 > MAX_PROMPT_WORDS {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("prompt({n}, ...): the word count must be from 0 to {MAX_PROMPT_WORDS}"),
        ));
    }
    let ids: Vec<u64> = hash_ids
        .unwrap_or_default()
        .into_iter()
        .map(|i| i as u64)
        .collect();
    Ok(prompt(n as u64, &ids))
}

/// `row.x` fields a template names.
pub(crate) fn row_fields(env: &minijinja::Environment<'_>, template: &str) -> Vec<String> {
    let Ok(t) = env.template_from_str(template) else {
        return Vec::new();
    };
    let mut out: Vec<String> = t
        .undeclared_variables(true)
        .into_iter()
        .filter_map(|v| {
            v.strip_prefix("row.")
                .map(|f| f.split('.').next().unwrap_or(f).to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_lengths_follow_the_distribution() {
        let s = Synthetic {
            rows: 1000,
            prompt_tokens: Lengths {
                mean: 512.0,
                stddev: 128.0,
                min: 16,
                max: 2048,
            },
            output_tokens: Lengths {
                mean: 128.0,
                stddev: 32.0,
                min: 1,
                max: 512,
            },
            seed: 1,
        };
        let mut prompt_lengths = Vec::new();
        let mut outputs = Vec::new();
        for_each_row::<DataError>(&DataSource::Synthetic(s.clone()), |_, row| {
            let words = row["prompt"].as_str().unwrap().split_whitespace().count();
            assert_eq!(words as u64, row["prompt_tokens"].as_u64().unwrap());
            prompt_lengths.push(words as f64);
            outputs.push(row["max_tokens"].as_u64().unwrap() as f64);
            Ok(())
        })
        .unwrap();
        let stats = |xs: &[f64]| {
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var.sqrt())
        };
        let within = |got: f64, want: f64| (got - want).abs() <= 0.05 * want;
        let (m, sd) = stats(&prompt_lengths);
        assert!(within(m, 512.0) && within(sd, 128.0), "{m} {sd}");
        let (m, sd) = stats(&outputs);
        assert!(within(m, 128.0) && within(sd, 32.0), "{m} {sd}");
        // Deterministic for a seed.
        let again = synthetic_row(&s, 7);
        assert_eq!(again, synthetic_row(&s, 7));
    }

    #[test]
    fn equal_hash_ids_give_equal_blocks() {
        let a = prompt(1100, &[1, 2, 3]);
        let b = prompt(1100, &[1, 2, 4]);
        let c = prompt(600, &[9, 2]);
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let (a, b, c) = (words(&a), words(&b), words(&c));
        assert_eq!(a.len(), 1100);
        assert_eq!(a[..1024], b[..1024]);
        assert_ne!(a[1024..], b[1024..]);
        assert_ne!(a[..512], c[..512]);
        assert_eq!(a[512..600], c[512..600]);
    }

    #[test]
    fn csv_quotes_and_field_counts() {
        assert_eq!(
            csv_fields(r#"a,"b, ""c""",,d"#).unwrap(),
            ["a", "b, \"c\"", "", "d"]
        );
        assert!(csv_fields(r#""open"#).is_err());
        let dir = std::env::temp_dir().join(format!("lm-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.csv");
        std::fs::write(&path, "prompt,max_tokens\nhello world,4\n\nbad\n").unwrap();
        let mut rows = Vec::new();
        let err = for_each_row::<DataError>(&DataSource::File(path.clone()), |line, row| {
            rows.push((line, row));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1["max_tokens"], "4");
        assert!(matches!(err, DataError::Row { line: 4, .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
