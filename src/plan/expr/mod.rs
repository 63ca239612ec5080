//! Threshold and filter expressions such as `p95 < 500ms and fail_rate < 1%`
//! or `replicas == 4 and users > 200`.
//!
//! Comparisons only, no arithmetic. Every AST node and every error carries a
//! byte span into the expression string so callers can point at the problem.
//!
//! One concept per file: `ast` the tree, `lexer` the tokens, `parser` tokens
//! to tree, `eval` evaluation and `check` the threshold checks; `error` holds
//! the parse error every stage reports.

mod ast;
mod check;
mod error;
mod eval;
mod lexer;
mod parser;

pub(crate) use ast::{CmpOp, Comparison, Expr, Literal, Membership, Operand, Span, UnitKind};
pub(crate) use check::{MetricKind, check_threshold, metric_kind};
pub(crate) use error::{ParseError, snippet};
pub(crate) use eval::{EvalError, Value};
pub(crate) use parser::parse;

/// Helpers shared by the tests of every part.
#[cfg(test)]
mod testing {
    use super::*;

    pub(super) const EXAMPLES: &[&str] = &[
        "p95 < 500ms",
        "fail_rate < 1%",
        "max(rps) >= 100",
        "p99 <= 1.5s and fail_rate < 0.5%",
        "mean(p95) < 300ms",
        "users <= 400",
        "replicas == 4 and users > 200",
        "mode == \"cpu\"",
        "not (users < 100 or replicas in [1, 2])",
        "p95 < 1m30s || !(rps >= 10) && true",
        "mode != 'io' and flag == false",
    ];

    pub(super) fn parse_ok(src: &str) -> Expr {
        parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.render(src)))
    }

    pub(super) fn parse_err(src: &str) -> ParseError {
        match parse(src) {
            Ok(expr) => panic!("{src} parsed as {expr:?}"),
            Err(e) => e,
        }
    }

    pub(super) fn num(value: f64, unit: UnitKind, text: &str, span: Span) -> Operand {
        Operand::Literal(Literal::Num {
            value,
            unit,
            text: text.to_string(),
            span,
        })
    }

    pub(super) fn assert_error(src: &str, span: Span, words: &[&str]) -> ParseError {
        let e = parse_err(src);
        assert_eq!(e.span, span, "{src}: {}", e.render(src));
        let all = format!("{} {}", e.message, e.hint.clone().unwrap_or_default());
        for word in words {
            assert!(all.contains(word), "{src}: {all:?} lacks {word:?}");
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn operand_span(operand: &Operand) -> Span {
        match operand {
            Operand::Literal(lit) => lit.span(),
            Operand::Ident { span, .. } | Operand::Aggregate { span, .. } => span.clone(),
        }
    }

    /// Every node span lies within `src` and on char boundaries.
    fn check_spans(src: &str, expr: &Expr) {
        let mut spans = Vec::new();
        expr.walk(&mut |e| {
            spans.push(e.span());
            match e {
                Expr::Compare(c) => {
                    spans.extend([
                        c.op_span.clone(),
                        operand_span(&c.lhs),
                        operand_span(&c.rhs),
                    ]);
                }
                Expr::In(m) => {
                    spans.push(operand_span(&m.operand));
                    spans.extend(m.items.iter().map(Literal::span));
                }
                _ => {}
            }
        });
        spans.extend(expr.idents().into_iter().map(|i| i.span));
        for span in spans {
            assert!(
                src.get(span.clone()).is_some(),
                "{src:?}: bad span {span:?}"
            );
        }
    }

    fn parse_never_panics(src: &str) {
        match parse(src) {
            Ok(expr) => {
                check_spans(src, &expr);
                let _ = check_threshold(&expr, &[]);
                let _ = expr.has_aggregate();
                let any = |_: &str| Some(Value::Num(1.0));
                let _ = expr.eval(&any, &|_, _| Some(1.0));
                let _ = expr.eval(&|_| None, &|_, _| None);
            }
            Err(e) => {
                assert!(e.span.start <= e.span.end, "{src:?}: {e:?}");
                assert!(src.get(e.span.clone()).is_some(), "{src:?}: {e:?}");
                let _ = e.render(src);
            }
        }
    }

    #[test]
    fn prefixes_and_mutations_never_panic() {
        let mut inputs: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
        inputs.push("p95 < 5ms é".into());
        inputs.push("mode == \"ünï\" or x in [1µs, 'a', true]".into());
        let replacements: Vec<u8> = (0x20..0x7f)
            .chain([b'\t', b'\n', 0xc3, 0xa9, 0xb5])
            .collect();
        for src in &inputs {
            for (i, _) in src.char_indices().chain([(src.len(), ' ')]) {
                parse_never_panics(&src[..i]);
                parse_never_panics(&src[i..]);
            }
            let bytes = src.as_bytes();
            for i in 0..bytes.len() {
                let mut deleted = bytes.to_vec();
                deleted.remove(i);
                let mut variants = vec![deleted];
                for &b in &replacements {
                    let mut replaced = bytes.to_vec();
                    replaced[i] = b;
                    variants.push(replaced);
                    let mut inserted = bytes.to_vec();
                    inserted.insert(i, b);
                    variants.push(inserted);
                }
                for variant in variants {
                    if let Ok(text) = String::from_utf8(variant) {
                        parse_never_panics(&text);
                    }
                }
            }
        }
    }
}
