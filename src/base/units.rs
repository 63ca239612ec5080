//! Typed values that plans write as strings: durations, byte sizes,
//! percentages and think times.
//!
//! Parsing is exact (integer arithmetic, no floats) so that
//! `parse(format(x)) == x` holds for every value.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;
const DURATION_EXAMPLES: &str = r#"(e.g. "2m", "1.5s", "250ms")"#;

/// Duration units from largest to smallest; compound durations must follow
/// this order so that typos such as `1m1m` are caught.
const DURATION_UNITS: &[(&str, u128, u8)] = &[
    ("h", 3_600 * NANOS_PER_SEC, 4),
    ("m", 60 * NANOS_PER_SEC, 3),
    ("s", NANOS_PER_SEC, 2),
    ("ms", 1_000_000, 1),
    ("us", 1_000, 0),
    ("µs", 1_000, 0), // U+00B5 MICRO SIGN
    ("μs", 1_000, 0), // U+03BC GREEK SMALL LETTER MU
];

/// A value that is not the duration, size, percentage or think time it
/// should be. Its text is what the user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnitError {
    #[error("invalid duration `{text}`: {why}")]
    Duration { text: String, why: DurationError },
    #[error("invalid size `{text}`: {why}")]
    Size { text: String, why: SizeError },
    #[error("invalid percentage `{text}`: {why}")]
    Percent { text: String, why: PercentError },
    #[error("invalid think time `{text}`: {why} {THINK_TIME_EXAMPLES}")]
    ThinkTime { text: String, why: DurationError },
    /// One end of a `min..max` think time.
    #[error("invalid think time `{text}`: {end} `{written}`: {why} {THINK_TIME_EXAMPLES}")]
    ThinkTimeEnd {
        text: String,
        end: &'static str,
        written: String,
        why: DurationError,
    },
    #[error(
        "invalid think time `{text}`: minimum {} is greater than maximum {}",
        format_duration(*.min),
        format_duration(*.max)
    )]
    ThinkTimeOrder {
        text: String,
        min: Duration,
        max: Duration,
    },
}

const THINK_TIME_EXAMPLES: &str = r#"(expected e.g. "1s" or "0.5s..1s")"#;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
    #[error("empty; expected a duration {DURATION_EXAMPLES}")]
    Empty,
    #[error("durations cannot be negative")]
    Negative,
    #[error("expected a number at `{0}`; write a duration {DURATION_EXAMPLES}")]
    ExpectedNumber(String),
    #[error("unexpected `{0}`; write a duration {DURATION_EXAMPLES}")]
    Unexpected(String),
    #[error("missing unit after `{number}`; write e.g. \"{written}s\" (units: us, ms, s, m, h)")]
    MissingUnit { number: String, written: String },
    #[error("unknown unit `{0}`; use us, ms, s, m or h {DURATION_EXAMPLES}")]
    UnknownUnit(String),
    #[error("no space allowed between number and unit; write \"{0}\"")]
    Spaced(String),
    #[error("units must go from largest to smallest, each at most once (e.g. \"1h30m\")")]
    UnitOrder,
    #[error("too large")]
    TooLarge,
    #[error(
        "too large: the limit is {} (30 days)",
        format_duration(crate::base::limits::MAX_DURATION)
    )]
    OverLimit,
    #[error("finer than a nanosecond")]
    FinerThanNanosecond,
}

/// Why a text is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SizeError {
    #[error("empty; expected a size {SIZE_EXAMPLES}")]
    Empty,
    #[error("sizes cannot be negative")]
    Negative,
    #[error("expected a number; write a size {SIZE_EXAMPLES}")]
    ExpectedNumber,
    #[error("unexpected `{0}`; write a size {SIZE_EXAMPLES}")]
    Unexpected(String),
    #[error("no space allowed between number and unit; write \"{0}\"")]
    Spaced(String),
    /// `1G`: a power of 1024 or of 1000?
    #[error(
        "ambiguous unit `{unit}`; write \"{number}{binary}iB\" (powers of 1024) or \"{number}{decimal}B\" (powers of 1000)"
    )]
    Ambiguous {
        unit: String,
        number: String,
        binary: String,
        decimal: String,
    },
    /// A known unit in the wrong case.
    #[error("unknown unit `{unit}`; did you mean \"{meant}\"?")]
    Miscased { unit: String, meant: String },
    #[error("unknown unit `{0}`; use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB {SIZE_EXAMPLES}")]
    UnknownUnit(String),
    #[error("too large")]
    TooLarge,
    #[error("not a whole number of bytes")]
    Fractional,
}

/// Why a text is not a percentage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PercentError {
    #[error("empty; write it as \"1%\"")]
    Empty,
    #[error("percentages cannot be negative")]
    Negative,
    #[error("expected a number; write it as \"1%\"")]
    ExpectedNumber,
    #[error("missing `%`; write it as \"{0}%\"")]
    MissingSign(String),
    #[error("no space allowed before `%`; write it as \"{0}%\"")]
    Spaced(String),
    #[error("unexpected `{unit}`; write it as \"{number}%\"")]
    Unexpected { unit: String, number: String },
    #[error("too large")]
    TooLarge,
}

/// A decimal number as written, split into its digit strings.
struct Number<'a> {
    int: &'a str,
    frac: &'a str,
}

impl Number<'_> {
    fn is_zero(&self) -> bool {
        self.int.bytes().chain(self.frac.bytes()).all(|b| b == b'0')
    }

    /// `self * mult` if it is a whole number that fits in a `u128`.
    fn scale(&self, mult: u128) -> Result<u128, Scale> {
        let frac = self.frac.trim_end_matches('0');
        // 10^24 * mult stays far below u128::MAX for every unit we know.
        if frac.len() > 24 {
            return Err(Scale::Inexact);
        }
        let int = digits_value(self.int).ok_or(Scale::Overflow)?;
        let whole = int.checked_mul(mult).ok_or(Scale::Overflow)?;
        let frac_val = digits_value(frac).ok_or(Scale::Overflow)?;
        let denom = 10u128.pow(frac.len() as u32);
        let scaled = frac_val.checked_mul(mult).ok_or(Scale::Overflow)?;
        if scaled % denom != 0 {
            return Err(Scale::Inexact);
        }
        whole.checked_add(scaled / denom).ok_or(Scale::Overflow)
    }

    fn text(&self) -> String {
        if self.frac.is_empty() {
            self.int.to_string()
        } else {
            format!("{}.{}", self.int, self.frac)
        }
    }
}

enum Scale {
    Overflow,
    Inexact,
}

fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

/// Splits a leading `123` or `1.5` off `s`. Both sides of the dot need digits.
fn scan_number(s: &str) -> Option<(Number<'_>, &str)> {
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    if int_len == 0 {
        return None;
    }
    let (int, rest) = s.split_at(int_len);
    if let Some(after_dot) = rest.strip_prefix('.') {
        let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if frac_len == 0 {
            return None;
        }
        let (frac, rest) = after_dot.split_at(frac_len);
        return Some((Number { int, frac }, rest));
    }
    Some((Number { int, frac: "" }, rest))
}

/// Splits leading alphabetic characters (the unit) off `s`.
fn scan_unit(s: &str) -> (&str, &str) {
    let len = s
        .char_indices()
        .find(|&(_, c)| !c.is_alphabetic())
        .map_or(s.len(), |(i, _)| i);
    s.split_at(len)
}

fn without_whitespace(s: &str) -> String {
    s.split_whitespace().collect()
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let t = s.trim();
    duration_inner(t).map_err(|why| UnitError::Duration {
        text: t.to_string(),
        why,
    })
}

/// [`parse_duration`] for callers that name the value themselves (the demo
/// target's `invalid --service-time value "20": ...`): the error is the
/// reason alone.
pub(crate) fn parse_duration_reason(s: &str) -> Result<Duration, DurationError> {
    duration_inner(s.trim())
}

/// Parses a trimmed duration; the error is the reason only, so callers can
/// say which value was wrong.
fn duration_inner(t: &str) -> Result<Duration, DurationError> {
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    if t.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let mut rest = t;
    let mut total: u128 = 0;
    let mut last_rank: Option<u8> = None;
    while !rest.is_empty() {
        let Some((number, after)) = scan_number(rest) else {
            return Err(if last_rank.is_some() {
                DurationError::Unexpected(rest.to_string())
            } else {
                DurationError::ExpectedNumber(rest.to_string())
            });
        };
        let unit_start = after.trim_start();
        let spaced = unit_start.len() != after.len();
        let (unit, after_unit) = scan_unit(unit_start);
        if unit.is_empty() {
            if last_rank.is_none() && unit_start.is_empty() && number.is_zero() {
                return Ok(Duration::ZERO);
            }
            if unit_start.is_empty() {
                return Err(DurationError::MissingUnit {
                    number: number.text(),
                    written: t.to_string(),
                });
            }
            return Err(DurationError::Unexpected(unit_start.to_string()));
        }
        let Some(&(_, mult, rank)) = DURATION_UNITS.iter().find(|(name, ..)| *name == unit) else {
            return Err(DurationError::UnknownUnit(unit.to_string()));
        };
        if spaced {
            return Err(DurationError::Spaced(without_whitespace(t)));
        }
        if last_rank.is_some_and(|last| rank >= last) {
            return Err(DurationError::UnitOrder);
        }
        last_rank = Some(rank);
        let part = number.scale(mult).map_err(|e| match e {
            Scale::Overflow => DurationError::TooLarge,
            Scale::Inexact => DurationError::FinerThanNanosecond,
        })?;
        total = total.checked_add(part).ok_or(DurationError::TooLarge)?;
        rest = after_unit;
    }
    if total > crate::base::limits::MAX_DURATION.as_nanos() {
        return Err(DurationError::OverLimit);
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| DurationError::TooLarge)?;
    // The remainder is below 10^9, so it always fits.
    let nanos = (total % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, nanos))
}

/// `n / unit` as a decimal without trailing zeros; exact because `unit` is a
/// power of ten.
fn decimal(n: u128, unit: u128) -> String {
    let (int, rem) = (n / unit, n % unit);
    if rem == 0 {
        return int.to_string();
    }
    let width = unit.ilog10() as usize;
    let frac = format!("{rem:0width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

pub(crate) fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_string();
    }
    if total < 1_000_000 {
        return format!("{}us", decimal(total, 1_000));
    }
    if total < NANOS_PER_SEC {
        return format!("{}ms", decimal(total, 1_000_000));
    }
    let hour = 3_600 * NANOS_PER_SEC;
    let minute = 60 * NANOS_PER_SEC;
    let mut out = String::new();
    if total >= hour {
        out.push_str(&format!("{}h", total / hour));
    }
    if total % hour >= minute {
        out.push_str(&format!("{}m", total % hour / minute));
    }
    let rest = total % minute;
    if rest > 0 {
        out.push_str(&format!("{}s", decimal(rest, NANOS_PER_SEC)));
    }
    out
}

const SIZE_EXAMPLES: &str = r#"(e.g. "512MiB", "1GB", "1024")"#;

/// Binary units come first so that formatting prefers them on ties.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("EiB", 1 << 60),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
    ("EB", 1_000_000_000_000_000_000),
];

pub(crate) fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    size_inner(t).map_err(|why| UnitError::Size {
        text: t.to_string(),
        why,
    })
}

fn size_inner(t: &str) -> Result<u64, SizeError> {
    if t.is_empty() {
        return Err(SizeError::Empty);
    }
    if t.starts_with('-') {
        return Err(SizeError::Negative);
    }
    let Some((number, after)) = scan_number(t) else {
        return Err(SizeError::ExpectedNumber);
    };
    let unit_start = after.trim_start();
    let spaced = unit_start.len() != after.len();
    let (unit, trailing) = scan_unit(unit_start);
    if !trailing.is_empty() {
        return Err(SizeError::Unexpected(trailing.trim().to_string()));
    }
    let mult = if unit.is_empty() {
        1
    } else if let Some(&(_, mult)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) {
        if spaced {
            return Err(SizeError::Spaced(without_whitespace(t)));
        }
        mult
    } else {
        return Err(unknown_size_unit(&number.text(), unit));
    };
    let bytes = number.scale(u128::from(mult)).map_err(|e| match e {
        Scale::Overflow => SizeError::TooLarge,
        Scale::Inexact => SizeError::Fractional,
    })?;
    u64::try_from(bytes).map_err(|_| SizeError::TooLarge)
}

fn unknown_size_unit(number: &str, unit: &str) -> SizeError {
    let prefix = unit.strip_suffix(['b', 'B']).unwrap_or(unit);
    if matches!(
        prefix,
        "k" | "K" | "m" | "M" | "g" | "G" | "t" | "T" | "p" | "P" | "e" | "E"
    ) && !unit.ends_with('B')
    {
        let binary = prefix.to_ascii_uppercase();
        let decimal = if binary == "K" {
            "k".to_string()
        } else {
            binary.clone()
        };
        return SizeError::Ambiguous {
            unit: unit.to_string(),
            number: number.to_string(),
            binary,
            decimal,
        };
    }
    if let Some((name, _)) = SIZE_UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
    {
        return SizeError::Miscased {
            unit: unit.to_string(),
            meant: format!("{number}{name}"),
        };
    }
    SizeError::UnknownUnit(unit.to_string())
}

pub(crate) fn format_size(bytes: u64) -> String {
    let mut best: Option<String> = None;
    for &(name, mult) in SIZE_UNITS {
        if bytes < mult {
            continue;
        }
        let n = u128::from(bytes);
        let mult = u128::from(mult);
        // At most three decimals; longer fractions read worse than bytes.
        let Some(scale) = (0..=3u32)
            .map(|f| 10u128.pow(f))
            .find(|scale| n * scale % mult == 0)
        else {
            continue;
        };
        let text = format!("{}{name}", decimal(n * scale / mult, scale));
        if best.as_ref().is_none_or(|b| text.len() < b.len()) {
            best = Some(text);
        }
    }
    best.unwrap_or_else(|| "0B".to_string())
}

pub(crate) fn parse_percent(s: &str) -> Result<f64, UnitError> {
    let t = s.trim();
    percent_inner(t).map_err(|why| UnitError::Percent {
        text: t.to_string(),
        why,
    })
}

fn percent_inner(t: &str) -> Result<f64, PercentError> {
    if t.is_empty() {
        return Err(PercentError::Empty);
    }
    if t.starts_with('-') {
        return Err(PercentError::Negative);
    }
    let Some((number, after)) = scan_number(t) else {
        return Err(PercentError::ExpectedNumber);
    };
    let text = number.text();
    let unit = after.trim_start();
    match unit {
        "" => Err(PercentError::MissingSign(text)),
        "%" if unit.len() != after.len() => Err(PercentError::Spaced(text)),
        "%" => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or(PercentError::TooLarge),
        _ => Err(PercentError::Unexpected {
            unit: unit.to_string(),
            number: text,
        }),
    }
}

/// Pause between requests of one virtual user: uniform in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct ThinkTime {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

pub(crate) fn parse_think_time(s: &str) -> Result<ThinkTime, UnitError> {
    let t = s.trim();
    let Some((lo, hi)) = t.split_once("..") else {
        let d = duration_inner(t).map_err(|why| UnitError::ThinkTime {
            text: t.to_string(),
            why,
        })?;
        return Ok(ThinkTime { min: d, max: d });
    };
    let end = |end: &'static str, written: &str| {
        duration_inner(written).map_err(|why| UnitError::ThinkTimeEnd {
            text: t.to_string(),
            end,
            written: written.to_string(),
            why,
        })
    };
    let min = end("minimum", lo.trim())?;
    let max = end("maximum", hi.trim())?;
    if min > max {
        return Err(UnitError::ThinkTimeOrder {
            text: t.to_string(),
            min,
            max,
        });
    }
    Ok(ThinkTime { min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_parse() {
        let cases = [
            ("2m", ms(120_000)),
            ("1.5s", ms(1_500)),
            ("250ms", ms(250)),
            ("500us", Duration::from_micros(500)),
            ("500µs", Duration::from_micros(500)),
            ("1h", ms(3_600_000)),
            ("1h30m", ms(5_400_000)),
            ("90s", ms(90_000)),
            ("1m30s", ms(90_000)),
            ("0s", Duration::ZERO),
            ("0", Duration::ZERO),
            ("0.0", Duration::ZERO),
            ("  2m\t", ms(120_000)),
            ("0.001us", Duration::from_nanos(1)),
            ("1h1m1.5s", ms(3_661_500)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
    }

    fn duration_err(input: &str) -> String {
        parse_duration(input).expect_err(input).to_string()
    }

    #[test]
    fn duration_errors_explain() {
        let e = duration_err("2min");
        assert!(
            e.contains("`2min`") && e.contains("unknown unit `min`"),
            "{e}"
        );
        assert!(
            e.contains("us, ms, s, m or h") && e.contains("\"250ms\""),
            "{e}"
        );

        let e = duration_err("5 sec");
        assert!(e.contains("unknown unit `sec`"), "{e}");
        let e = duration_err("5 s");
        assert!(e.contains("no space") && e.contains("\"5s\""), "{e}");

        let e = duration_err("10");
        assert!(e.contains("missing unit") && e.contains("\"10s\""), "{e}");
        let e = duration_err("1m30");
        assert!(e.contains("missing unit") && e.contains("\"1m30s\""), "{e}");

        assert!(duration_err("").contains("empty"));
        assert!(duration_err("   ").contains("empty"));
        assert!(duration_err("-1s").contains("negative"));
        assert!(duration_err("s").contains("expected a number"));
        assert!(duration_err(".5s").contains("expected a number"));
        assert!(duration_err("1.s").contains("expected a number"));
        assert!(duration_err("30s1m").contains("largest to smallest"));
        assert!(duration_err("1m1m").contains("largest to smallest"));
        assert!(duration_err("99999999999999999999999h").contains("too large"));
        assert!(duration_err(&"9".repeat(60)).contains("missing unit"));
        assert!(duration_err(&format!("{}s", "9".repeat(60))).contains("too large"));
        assert!(duration_err("0.0000000001s").contains("nanosecond"));
        assert!(duration_err(&format!("1.{}1s", "0".repeat(40))).contains("nanosecond"));
        assert!(duration_err("1s!").contains("unexpected `!`"));
        assert!(duration_err("é").contains("expected a number"));
        assert!(duration_err("1é").contains("unknown unit `é`"));
    }

    #[test]
    fn durations_format_shortest() {
        let cases = [
            (ms(120_000), "2m"),
            (ms(90_000), "1m30s"),
            (ms(250), "250ms"),
            (ms(1_500), "1.5s"),
            (Duration::ZERO, "0s"),
            (ms(3_600_000), "1h"),
            (ms(5_400_000), "1h30m"),
            (ms(3_605_000), "1h5s"),
            (ms(60_500), "1m0.5s"),
            (Duration::from_micros(500), "500us"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_nanos(1), "0.001us"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want);
        }
    }

    #[test]
    fn durations_round_trip() {
        for text in [
            "2m", "1m30s", "250ms", "1.5s", "0s", "1h", "500us", "1h0.25s",
        ] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        let samples = [
            crate::base::limits::MAX_DURATION,
            Duration::from_nanos(123_456_789_012),
            Duration::new(86_399, 999_999_999),
            Duration::from_nanos(999),
        ];
        for d in samples {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        // Longer than the limit: refused before anything adds to it.
        for text in [
            format_duration(Duration::MAX),
            "720h0.000000001s".to_string(),
            "18446744073709551615s".to_string(),
            "5124095576030431h".to_string(),
        ] {
            assert!(
                duration_err(&text).contains("too large: the limit is 720h (30 days)"),
                "{text}"
            );
        }
    }

    #[test]
    fn sizes_parse() {
        let cases = [
            ("1GiB", 1 << 30),
            ("512MiB", 512 << 20),
            ("10KiB", 10 << 10),
            ("1TiB", 1 << 40),
            ("500MB", 500_000_000),
            ("1GB", 1_000_000_000),
            ("1kB", 1_000),
            ("1KB", 1_000),
            ("1024", 1_024),
            ("1024B", 1_024),
            ("1.5GiB", 3 << 29),
            (" 0 ", 0),
            ("15EiB", 15 << 60),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn size_errors_explain() {
        let err = |s: &str| parse_size(s).expect_err(s).to_string();
        let e = err("1GiBs");
        assert!(
            e.contains("`1GiBs`") && e.contains("unknown unit `GiBs`"),
            "{e}"
        );
        assert!(e.contains("MiB") && e.contains("\"512MiB\""), "{e}");
        let e = err("1G");
        assert!(
            e.contains("ambiguous") && e.contains("\"1GiB\"") && e.contains("\"1GB\""),
            "{e}"
        );
        let e = err("2k");
        assert!(e.contains("\"2KiB\"") && e.contains("\"2kB\""), "{e}");
        assert!(err("1gib").contains("did you mean \"1GiB\""));
        assert!(err("1 GiB").contains("\"1GiB\""));
        assert!(err("1.5").contains("whole number of bytes"));
        assert!(err("0.1KiB").contains("whole number of bytes"));
        assert!(err("-1GiB").contains("negative"));
        assert!(err("").contains("empty"));
        assert!(err("GiB").contains("expected a number"));
        assert!(err("16EiB").contains("too large"));
        assert!(err("20EiB").contains("too large"));
        assert!(err("1GiB 2").contains("unexpected"));
    }

    #[test]
    fn sizes_format_and_round_trip() {
        let cases = [
            (1 << 30, "1GiB"),
            (3 << 29, "1.5GiB"),
            (512 << 20, "512MiB"),
            (100, "100B"),
            (0, "0B"),
            (1_000, "1kB"),
            (500_000_000, "500MB"),
            (1_025, "1025B"),
        ];
        for (bytes, want) in cases {
            assert_eq!(format_size(bytes), want);
            assert_eq!(parse_size(want), Ok(bytes));
        }
        for bytes in [u64::MAX, u64::MAX - 1, 1, 1_536, 123_456_789, 1 << 63] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
        }
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("1%"), Ok(1.0));
        assert_eq!(parse_percent("0.5%"), Ok(0.5));
        assert_eq!(parse_percent("100%"), Ok(100.0));
        assert_eq!(parse_percent(" 250% "), Ok(250.0));
        let err = |s: &str| parse_percent(s).expect_err(s).to_string();
        let e = err("1");
        assert!(e.contains("`1`") && e.contains("write it as \"1%\""), "{e}");
        assert!(err("0.01").contains("write it as \"0.01%\""));
        assert!(err("-1%").contains("negative"));
        assert!(err("1 %").contains("no space"));
        assert!(err("%").contains("expected a number"));
        assert!(err("1%%").contains("unexpected"));
        assert!(err("").contains("empty"));
        assert!(err(&format!("{}%", "9".repeat(400))).contains("too large"));
    }

    #[test]
    fn think_times() {
        assert_eq!(
            parse_think_time("0.5s..1s"),
            Ok(ThinkTime {
                min: ms(500),
                max: ms(1_000)
            })
        );
        assert_eq!(
            parse_think_time(" 100ms .. 2s "),
            Ok(ThinkTime {
                min: ms(100),
                max: ms(2_000)
            })
        );
        assert_eq!(
            parse_think_time("1s"),
            Ok(ThinkTime {
                min: ms(1_000),
                max: ms(1_000)
            })
        );
        assert_eq!(
            parse_think_time("0s"),
            Ok(ThinkTime {
                min: Duration::ZERO,
                max: Duration::ZERO
            })
        );
        let err = |s: &str| parse_think_time(s).expect_err(s).to_string();
        let e = err("2s..1s");
        assert!(e.contains("minimum 2s") && e.contains("maximum 1s"), "{e}");
        let e = err("0.5..1s");
        assert!(
            e.contains("minimum `0.5`") && e.contains("missing unit"),
            "{e}"
        );
        let e = err("1s..");
        assert!(e.contains("maximum") && e.contains("empty"), "{e}");
        assert!(err("1x").contains("unknown unit `x`"));
        assert!(err("1s...2s").contains("expected a number"));
    }
}
