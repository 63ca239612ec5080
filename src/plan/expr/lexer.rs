//! Tokens, with numbers and their units (`500ms`, `1m30s`, `1%`) read whole.

use super::{CmpOp, ParseError, Span, UnitKind};
use crate::base::units;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Num { value: f64, unit: UnitKind },
    Str(String),
    Ident(String),
    True,
    False,
    And,
    Or,
    Not,
    In,
    Cmp(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    PercentSign,
    Eof,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) span: Span,
}

pub(super) const DURATION_UNIT_NAMES: &[&str] = &["us", "µs", "μs", "ms", "s", "m", "h"];
const UNIT_HINT: &str =
    "units are us, ms, s, m, h and %, written right after the number (e.g. `500ms`, `1.5s`, `1%`)";

/// Tokens up to the first lexical error. The error is returned separately so
/// the parser reports it only when it reaches that position, after any
/// earlier syntax error.
pub(super) fn lex(src: &str) -> (Vec<Token>, Option<ParseError>) {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = src.get(i..).and_then(|rest| rest.chars().next()) {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let next = src.as_bytes().get(i + 1).copied();
        let (tok, len) = match c {
            '0'..='9' => match lex_number(src, i) {
                Ok(token) => {
                    i = token.span.end;
                    tokens.push(token);
                    continue;
                }
                Err(e) => return (tokens, Some(e)),
            },
            'a'..='z' | 'A'..='Z' | '_' => {
                let len = src
                    .get(i..)
                    .unwrap_or("")
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                // `p95{name:predict}`: one request name's figure (k6's tag
                // selector), lexed as one identifier.
                let len = match src.get(i + len..) {
                    Some(rest) if rest.starts_with('{') => match rest.find('}') {
                        Some(close) => len + close + 1,
                        None => {
                            let e = ParseError::new(i + len..src.len(), "unterminated `{`")
                                .with_hint("select a request name as `p95{name:predict}`");
                            return (tokens, Some(e));
                        }
                    },
                    _ => len,
                };
                let word = src.get(i..i + len).unwrap_or("");
                let tok = match word {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    _ => Tok::Ident(word.to_string()),
                };
                (tok, len)
            }
            '"' | '\'' => {
                let body = src.get(i + 1..).unwrap_or("");
                let Some(close) = body.find(c) else {
                    let e = ParseError::new(i..src.len(), "unterminated string")
                        .with_hint(format!("close it with `{c}`"));
                    return (tokens, Some(e));
                };
                (
                    Tok::Str(body.get(..close).unwrap_or("").to_string()),
                    close + 2,
                )
            }
            '<' | '>' | '=' | '!' if next == Some(b'=') => {
                let op = match c {
                    '<' => CmpOp::Le,
                    '>' => CmpOp::Ge,
                    '=' => CmpOp::Eq,
                    _ => CmpOp::Ne,
                };
                (Tok::Cmp(op), 2)
            }
            '<' => (Tok::Cmp(CmpOp::Lt), 1),
            '>' => (Tok::Cmp(CmpOp::Gt), 1),
            '!' => (Tok::Not, 1),
            '&' if next == Some(b'&') => (Tok::And, 2),
            '|' if next == Some(b'|') => (Tok::Or, 2),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '%' => (Tok::PercentSign, 1),
            _ => {
                let span = i..i + c.len_utf8();
                let e = ParseError::new(span, format!("unexpected character `{c}`"));
                let e = match c {
                    '=' => e.with_hint("use `==` to compare"),
                    '&' => e.with_hint("write `and` (or `&&`)"),
                    '|' => e.with_hint("write `or` (or `||`)"),
                    '+' | '-' | '*' | '/' => {
                        e.with_hint("arithmetic is not supported; compare values directly")
                    }
                    _ => e,
                };
                return (tokens, Some(e));
            }
        };
        tokens.push(Token {
            tok,
            span: i..i + len,
        });
        i += len;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        span: src.len()..src.len(),
    });
    (tokens, None)
}

/// A number with an optional unit glued to it: `500`, `1.5s`, `1m30s`, `1%`.
fn lex_number(src: &str, start: usize) -> Result<Token, ParseError> {
    let bytes = src.as_bytes();
    let digits = |from: usize| {
        bytes
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut end = start + digits(start);
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end += 1 + digits(end + 1);
    }
    let number = src.get(start..end).unwrap_or("");
    let plain = || {
        number
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| ParseError::new(start..end, "number too large"))
    };
    if bytes.get(end) == Some(&b'%') {
        return Ok(Token {
            tok: Tok::Num {
                value: plain()?,
                unit: UnitKind::Percent,
            },
            span: start..end + 1,
        });
    }

    // The suffix may hold more digits for compound durations like `1m30s`.
    let mut suffix_end = end;
    let rest = src.get(end..).unwrap_or("");
    for (off, c) in rest.char_indices() {
        let dot_digit = c == '.' && rest.as_bytes().get(off + 1).is_some_and(u8::is_ascii_digit);
        if !(c.is_alphanumeric() || c == '_' || dot_digit) {
            break;
        }
        suffix_end = end + off + c.len_utf8();
    }
    if suffix_end == end {
        return Ok(Token {
            tok: Tok::Num {
                value: plain()?,
                unit: UnitKind::None,
            },
            span: start..end,
        });
    }

    // Point at the first bad unit rather than at the whole literal.
    let suffix = src.get(end..suffix_end).unwrap_or("");
    let mut unit_start: Option<usize> = None;
    for (off, c) in suffix.char_indices().chain([(suffix.len(), '0')]) {
        let is_unit_char = !(c.is_ascii_digit() || c == '.');
        match (unit_start, is_unit_char) {
            (None, true) => unit_start = Some(off),
            (Some(from), false) => {
                let unit = suffix.get(from..off).unwrap_or("");
                if !DURATION_UNIT_NAMES.contains(&unit) {
                    return Err(ParseError::new(
                        end + from..end + off,
                        format!("unknown unit `{unit}`"),
                    )
                    .with_hint(UNIT_HINT));
                }
                unit_start = None;
            }
            _ => {}
        }
    }
    let text = src.get(start..suffix_end).unwrap_or("");
    let duration = units::parse_duration(text)
        .map_err(|e| ParseError::new(start..suffix_end, e.to_string()).with_hint(UNIT_HINT))?;
    Ok(Token {
        tok: Tok::Num {
            value: duration.as_nanos() as f64 / 1e6,
            unit: UnitKind::Duration,
        },
        span: start..suffix_end,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Expr, UnitKind};

    #[test]
    fn literal_units_normalise() {
        let cases = [
            ("500ms", 500.0, UnitKind::Duration),
            ("1.5s", 1500.0, UnitKind::Duration),
            ("250us", 0.25, UnitKind::Duration),
            ("250µs", 0.25, UnitKind::Duration),
            ("2m", 120_000.0, UnitKind::Duration),
            ("1h", 3_600_000.0, UnitKind::Duration),
            ("1m30s", 90_000.0, UnitKind::Duration),
            ("1%", 1.0, UnitKind::Percent),
            ("0.5%", 0.5, UnitKind::Percent),
            ("42", 42.0, UnitKind::None),
            ("0.25", 0.25, UnitKind::None),
        ];
        for (lit, want, unit) in cases {
            let src = format!("x < {lit}");
            let expr = parse_ok(&src);
            let Expr::Compare(c) = expr else {
                panic!("{expr:?}")
            };
            assert_eq!(c.rhs, num(want, unit, lit, 4..src.len()), "{lit}");
        }
    }

    #[test]
    fn lexical_error_spans_and_messages() {
        assert_error("p95 < 500xs", 9..11, &["unknown unit `xs`", "ms"]);
        assert_error("p95 < 1m30x", 10..11, &["unknown unit `x`"]);
        assert_error("p95 < 1m1m", 6..10, &["largest to smallest"]);
        assert_error("\"unterminated", 0..13, &["unterminated string", "`\"`"]);
        assert_error("mode == 'x", 8..10, &["unterminated string", "`'`"]);
        assert_error("p95 = 5", 4..5, &["use `==`"]);
        assert_error("x & y", 2..3, &["`and`"]);
        assert_error("rps >= 0.9 * max(rps)", 11..12, &["arithmetic"]);
        assert_error("p95 < 1.", 7..8, &["unexpected character `.`"]);
        let huge = format!("x < {}", "9".repeat(400));
        assert_error(&huge, 4..404, &["too large"]);
    }

    #[test]
    fn non_ascii_input_errors_on_char_boundaries() {
        let src = "p95 < 5ms é";
        let e = assert_error(src, 10..12, &["unexpected character `é`"]);
        assert!(src.is_char_boundary(e.span.start) && src.is_char_boundary(e.span.end));
        assert_error("p95 < 5é", 7..9, &["unknown unit `é`"]);
        assert_error("mode == \"ünï\" and é", 20..22, &["`é`"]);
        assert_eq!(parse_ok("mode == \"ünï\"").span(), 0..15);
        let e = parse_err("naïve < 1");
        assert_eq!(e.span, 2..4);
        assert!(
            e.render("naïve < 1")
                .contains("\n  ^ unexpected character `ï`")
        );
    }
}
