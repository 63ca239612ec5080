//! Recursive-descent parser from tokens to [`Expr`].

use super::lexer::{DURATION_UNIT_NAMES, Tok, Token, lex};
use super::{
    CmpOp, Comparison, Expr, Literal, Membership, Operand, ParseError, Span, UnitKind, snippet,
};

/// Deeper nesting than this is certainly a mistake, and the limit keeps the
/// recursive parser from overflowing the stack on hostile input (about 8 KiB
/// per level in unoptimised builds).
const MAX_DEPTH: usize = 32;

/// A parsed piece that may be a condition or a plain value; which one is
/// allowed depends on where it is used.
enum Node {
    Cond(Expr),
    Val(Operand),
}

/// `span` includes any parentheses around the node.
struct Parsed {
    node: Node,
    span: Span,
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    lex_error: Option<ParseError>,
    pos: usize,
    depth: usize,
}

const COMPARISON_EXAMPLE: &str = "expected a comparison like `p95 < 500ms`";

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let (tokens, lex_error) = lex(src);
    let mut p = Parser {
        src,
        tokens,
        lex_error,
        pos: 0,
        depth: 0,
    };
    if p.peek()?.tok == Tok::Eof {
        return Err(ParseError::new(0..src.len(), "empty expression")
            .with_hint("write a condition like `p95 < 500ms`"));
    }
    let parsed = p.parse_or()?;
    let expr = p.cond(parsed)?;
    let tok = p.peek()?;
    if tok.tok != Tok::Eof {
        return Err(p.trailing(&tok));
    }
    Ok(expr)
}

// The recursive functions below keep error formatting in separate functions:
// unoptimised builds give every temporary its own stack slot, and nesting
// must stay affordable on a 2 MiB thread stack.
impl Parser<'_> {
    fn peek(&self) -> Result<Token, ParseError> {
        match self.tokens.get(self.pos) {
            Some(token) => Ok(token.clone()),
            // Past the tokens means the lexer stopped at an error.
            None => Err(self.past_end()),
        }
    }

    fn bump(&mut self) {
        if self.tokens.get(self.pos).is_some_and(|t| t.tok != Tok::Eof) {
            self.pos += 1;
        }
    }

    fn enter(&mut self, span: &Span) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                span.clone(),
                format!("expression is nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    /// Uses `parsed` where a condition is required.
    fn cond(&self, parsed: Parsed) -> Result<Expr, ParseError> {
        match parsed.node {
            Node::Cond(expr) => Ok(expr),
            Node::Val(Operand::Literal(Literal::Bool { value, span })) => {
                Ok(Expr::Bool { value, span })
            }
            Node::Val(_) => Err(self.not_a_condition(&parsed.span)),
        }
    }

    /// Uses `parsed` where a value is required.
    fn value(&self, parsed: Parsed) -> Result<Operand, ParseError> {
        match parsed.node {
            Node::Val(operand) => Ok(operand),
            Node::Cond(_) => Err(not_a_value(&parsed.span)),
        }
    }

    fn parse_or(&mut self) -> Result<Parsed, ParseError> {
        self.parse_chain(Tok::Or, Self::parse_and, |terms, span| Expr::Or {
            terms,
            span,
        })
    }

    fn parse_and(&mut self) -> Result<Parsed, ParseError> {
        self.parse_chain(Tok::And, Self::parse_not, |terms, span| Expr::And {
            terms,
            span,
        })
    }

    fn parse_chain(
        &mut self,
        sep: Tok,
        mut term: impl FnMut(&mut Self) -> Result<Parsed, ParseError>,
        build: impl FnOnce(Vec<Expr>, Span) -> Expr,
    ) -> Result<Parsed, ParseError> {
        let first = term(self)?;
        if self.peek()?.tok != sep {
            return Ok(first);
        }
        let start = first.span.start;
        let mut end = first.span.end;
        let mut terms = vec![self.cond(first)?];
        while self.peek()?.tok == sep {
            self.bump();
            let next = term(self)?;
            end = next.span.end;
            terms.push(self.cond(next)?);
        }
        let span = start..end;
        Ok(Parsed {
            node: Node::Cond(build(terms, span.clone())),
            span,
        })
    }

    fn parse_not(&mut self) -> Result<Parsed, ParseError> {
        let tok = self.peek()?;
        if tok.tok != Tok::Not {
            return self.parse_cmp();
        }
        self.bump();
        self.enter(&tok.span)?;
        let inner = self.parse_not()?;
        self.depth -= 1;
        let span = tok.span.start..inner.span.end;
        let inner = Box::new(self.cond(inner)?);
        Ok(Parsed {
            node: Node::Cond(Expr::Not {
                inner,
                span: span.clone(),
            }),
            span,
        })
    }

    fn parse_cmp(&mut self) -> Result<Parsed, ParseError> {
        let lhs = self.parse_primary()?;
        let tok = self.peek()?;
        let node = match tok.tok {
            Tok::Cmp(op) => self.finish_comparison(lhs, op, tok.span)?,
            Tok::In => self.finish_membership(lhs)?,
            Tok::And | Tok::Or | Tok::RParen | Tok::RBracket | Tok::Comma | Tok::Eof => {
                return Ok(lhs);
            }
            _ => match lhs.node {
                Node::Cond(_) => return Ok(lhs),
                Node::Val(_) => return Err(self.missing_operator(&lhs.span, &tok)),
            },
        };
        let next = self.peek()?;
        if matches!(next.tok, Tok::Cmp(_) | Tok::In) {
            return Err(chained(next.span));
        }
        let span = node.span();
        Ok(Parsed {
            node: Node::Cond(node),
            span,
        })
    }

    fn finish_comparison(
        &mut self,
        lhs: Parsed,
        op: CmpOp,
        op_span: Span,
    ) -> Result<Expr, ParseError> {
        let start = lhs.span.start;
        let lhs = self.value(lhs)?;
        self.bump();
        let rhs = self.parse_primary()?;
        let end = rhs.span.end;
        let rhs = self.value(rhs)?;
        Ok(Expr::Compare(Box::new(Comparison {
            lhs,
            op,
            op_span,
            rhs,
            span: start..end,
        })))
    }

    fn finish_membership(&mut self, lhs: Parsed) -> Result<Expr, ParseError> {
        let start = lhs.span.start;
        let operand = self.value(lhs)?;
        self.bump();
        let (items, end) = self.parse_list()?;
        Ok(Expr::In(Box::new(Membership {
            operand,
            items,
            span: start..end,
        })))
    }

    /// `[literal, ...]` after `in`; returns the items and the end of `]`.
    fn parse_list(&mut self) -> Result<(Vec<Literal>, usize), ParseError> {
        let open = self.peek()?;
        if open.tok != Tok::LBracket {
            return Err(self.expected_list(&open));
        }
        self.bump();
        let mut items = Vec::new();
        loop {
            let tok = self.peek()?;
            match self.parse_literal(&tok)? {
                Some(literal) => items.push(literal),
                None => return Err(self.expected_list_item(&tok)),
            }
            let sep = self.peek()?;
            match sep.tok {
                Tok::Comma => self.bump(),
                Tok::RBracket => {
                    self.bump();
                    return Ok((items, sep.span.end));
                }
                _ => return Err(self.expected_list_separator(&sep)),
            }
        }
    }

    fn parse_primary(&mut self) -> Result<Parsed, ParseError> {
        let tok = self.peek()?;
        match tok.tok {
            Tok::LParen => self.parse_group(tok.span),
            Tok::Ident(name) => self.parse_ident(name, tok.span),
            _ => {
                let Some(literal) = self.parse_literal(&tok)? else {
                    return Err(self.expected_value(&tok));
                };
                Ok(Parsed {
                    span: literal.span(),
                    node: Node::Val(Operand::Literal(literal)),
                })
            }
        }
    }

    /// `( expr )`; the result may be a condition or a value.
    fn parse_group(&mut self, open: Span) -> Result<Parsed, ParseError> {
        self.bump();
        self.enter(&open)?;
        let inner = self.parse_or()?;
        self.depth -= 1;
        let close = self.peek()?;
        if close.tok != Tok::RParen {
            return Err(self.unclosed_group(&open, &close));
        }
        self.bump();
        Ok(Parsed {
            node: inner.node,
            span: open.start..close.span.end,
        })
    }

    /// Consumes and returns a literal; `None`, consuming nothing, otherwise.
    fn parse_literal(&mut self, tok: &Token) -> Result<Option<Literal>, ParseError> {
        let span = tok.span.clone();
        let literal = match &tok.tok {
            Tok::Num { value, unit } => Literal::Num {
                value: *value,
                unit: *unit,
                text: snippet(self.src, &span).to_string(),
                span,
            },
            Tok::Str(value) => Literal::Str {
                value: value.clone(),
                span,
            },
            Tok::True | Tok::False => Literal::Bool {
                value: tok.tok == Tok::True,
                span,
            },
            _ => return Ok(None),
        };
        self.bump();
        if let Tok::Num {
            unit: UnitKind::None,
            ..
        } = tok.tok
        {
            self.reject_spaced_unit(tok)?;
        }
        Ok(Some(literal))
    }

    /// `500 ms` and `1 %`: never valid, so say what was probably meant.
    fn reject_spaced_unit(&self, number: &Token) -> Result<(), ParseError> {
        let next = self.peek()?;
        let unit = match &next.tok {
            Tok::Ident(word) if DURATION_UNIT_NAMES.contains(&word.as_str()) => word.as_str(),
            Tok::PercentSign => "%",
            _ => return Ok(()),
        };
        let number_text = snippet(self.src, &number.span);
        Err(ParseError::new(
            number.span.start..next.span.end,
            "unexpected space between number and unit",
        )
        .with_hint(format!("write `{number_text}{unit}`")))
    }

    /// A metric or parameter name, or an aggregate call `func(arg)`.
    fn parse_ident(&mut self, name: String, span: Span) -> Result<Parsed, ParseError> {
        self.bump();
        if self.peek()?.tok != Tok::LParen {
            return Ok(Parsed {
                node: Node::Val(Operand::Ident {
                    name,
                    span: span.clone(),
                }),
                span,
            });
        }
        self.bump();
        let arg_tok = self.peek()?;
        let Tok::Ident(arg) = arg_tok.tok.clone() else {
            return Err(self.expected_aggregate_arg(&name, &arg_tok));
        };
        self.bump();
        let close = self.peek()?;
        if close.tok != Tok::RParen {
            return Err(self.unclosed_call(&name, &arg, &close));
        }
        self.bump();
        let whole = span.start..close.span.end;
        Ok(Parsed {
            node: Node::Val(Operand::Aggregate {
                func: name,
                func_span: span,
                arg,
                arg_span: arg_tok.span,
                span: whole.clone(),
            }),
            span: whole,
        })
    }
}

/// Error construction, kept out of the recursive functions above.
impl Parser<'_> {
    fn describe(&self, token: &Token) -> String {
        match token.tok {
            Tok::Eof => "end of input".to_string(),
            _ => format!("`{}`", snippet(self.src, &token.span)),
        }
    }

    fn past_end(&self) -> ParseError {
        self.lex_error.clone().unwrap_or_else(|| {
            ParseError::new(self.src.len()..self.src.len(), "unexpected end of input")
        })
    }

    fn trailing(&self, tok: &Token) -> ParseError {
        let message = format!(
            "unexpected {} after a complete condition",
            self.describe(tok)
        );
        let hint = match &tok.tok {
            Tok::RParen => "this `)` has no matching `(`".to_string(),
            Tok::Ident(word)
                if ["and", "or", "not", "in", "true", "false"]
                    .contains(&word.to_ascii_lowercase().as_str()) =>
            {
                format!(
                    "keywords are lowercase: write `{}`",
                    word.to_ascii_lowercase()
                )
            }
            _ => "join conditions with `and` or `or`".to_string(),
        };
        ParseError::new(tok.span.clone(), message).with_hint(hint)
    }

    fn not_a_condition(&self, span: &Span) -> ParseError {
        let text = snippet(self.src, span);
        ParseError::new(span.clone(), COMPARISON_EXAMPLE).with_hint(format!(
            "compare `{text}` with a value using <, <=, >, >=, == or !="
        ))
    }

    fn missing_operator(&self, lhs: &Span, tok: &Token) -> ParseError {
        let lhs_text = snippet(self.src, lhs);
        let hint = if tok.tok == Tok::Not {
            format!("to negate a list test, write `not ({lhs_text} in [...])`")
        } else {
            "use <, <=, >, >=, ==, != or in".to_string()
        };
        ParseError::new(
            tok.span.clone(),
            format!(
                "expected a comparison operator after `{lhs_text}`, found {}",
                self.describe(tok)
            ),
        )
        .with_hint(hint)
    }

    fn expected_value(&self, tok: &Token) -> ParseError {
        let message = match self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(prev) => format!(
                "expected a value after {}, found {}",
                self.describe(prev),
                self.describe(tok)
            ),
            None => format!("{COMPARISON_EXAMPLE}, found {}", self.describe(tok)),
        };
        let e = ParseError::new(tok.span.clone(), message);
        match tok.tok {
            Tok::PercentSign => e.with_hint("write `%` right after a number, e.g. `1%`"),
            _ => e,
        }
    }

    fn unclosed_group(&self, open: &Span, close: &Token) -> ParseError {
        ParseError::new(
            close.span.clone(),
            format!("expected `)` to match `(`, found {}", self.describe(close)),
        )
        .with_hint(format!("the `(` is at byte {}", open.start))
    }

    fn expected_list(&self, tok: &Token) -> ParseError {
        ParseError::new(
            tok.span.clone(),
            format!("expected `[` after `in`, found {}", self.describe(tok)),
        )
        .with_hint("write a list, e.g. `replicas in [1, 2]`")
    }

    fn expected_list_item(&self, tok: &Token) -> ParseError {
        ParseError::new(
            tok.span.clone(),
            format!(
                "expected a number, string or boolean in the list, found {}",
                self.describe(tok)
            ),
        )
    }

    fn expected_list_separator(&self, tok: &Token) -> ParseError {
        ParseError::new(
            tok.span.clone(),
            format!(
                "expected `,` or `]` in the list, found {}",
                self.describe(tok)
            ),
        )
    }

    fn expected_aggregate_arg(&self, func: &str, tok: &Token) -> ParseError {
        ParseError::new(
            tok.span.clone(),
            format!(
                "expected a metric name inside `{func}(...)`, found {}",
                self.describe(tok)
            ),
        )
        .with_hint(format!("e.g. `{func}(rps)`"))
    }

    fn unclosed_call(&self, func: &str, arg: &str, tok: &Token) -> ParseError {
        ParseError::new(
            tok.span.clone(),
            format!(
                "expected `)` to close `{func}(`, found {}",
                self.describe(tok)
            ),
        )
        .with_hint(format!(
            "an aggregate takes exactly one metric, e.g. `{func}({arg})`"
        ))
    }
}

fn not_a_value(span: &Span) -> ParseError {
    ParseError::new(span.clone(), "expected a value, found a condition")
        .with_hint("conditions can only be combined with `and`, `or` and `not`")
}

fn chained(span: Span) -> ParseError {
    ParseError::new(span, "comparisons cannot be chained").with_hint("write `a < b and b < c`")
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn examples_parse() {
        for src in EXAMPLES {
            let expr = parse_ok(src);
            assert_eq!(expr.span(), 0..src.len(), "{src}");
        }
    }

    #[test]
    fn comparison_ast_has_spans_and_units() {
        let expr = parse_ok("p95 < 500ms");
        let Expr::Compare(c) = expr else {
            panic!("{expr:?}")
        };
        assert_eq!(
            *c,
            Comparison {
                lhs: Operand::Ident {
                    name: "p95".into(),
                    span: 0..3
                },
                op: CmpOp::Lt,
                op_span: 4..5,
                rhs: num(500.0, UnitKind::Duration, "500ms", 6..11),
                span: 0..11,
            }
        );
    }

    #[test]
    fn structure_and_precedence() {
        let expr = parse_ok("a < 1 or b < 2 and not c < 3 or d < 4");
        let Expr::Or { terms, span } = &expr else {
            panic!("{expr:?}")
        };
        assert_eq!(span, &(0..37));
        assert_eq!(terms.len(), 3);
        let Expr::And { terms: and, span } = &terms[1] else {
            panic!("{:?}", terms[1])
        };
        assert_eq!(span, &(9..28));
        assert!(matches!(&and[1], Expr::Not { span, .. } if span == &(19..28)));

        // Parentheses belong to the parent: the inner node's span excludes them.
        let expr = parse_ok("not (users < 100 or replicas in [1, 2])");
        let Expr::Not { inner, span } = &expr else {
            panic!("{expr:?}")
        };
        assert_eq!(span, &(0..39));
        assert_eq!(inner.span(), 5..38);

        let expr = parse_ok("(p95) < (5ms)");
        assert_eq!(expr.span(), 0..13);
        assert_eq!(expr.idents()[0].span, 1..4);

        let expr = parse_ok("replicas in [1, 2]");
        let Expr::In(m) = &expr else {
            panic!("{expr:?}")
        };
        assert_eq!(m.items.len(), 2);
        assert_eq!(m.items[1].span(), 16..17);
        assert_eq!(m.span, 0..18);

        assert_eq!(
            parse_ok("true"),
            Expr::Bool {
                value: true,
                span: 0..4
            }
        );
        assert!(matches!(parse_ok("(false)"), Expr::Bool { value: false, span } if span == (1..6)));
    }

    #[test]
    fn error_spans_and_messages() {
        assert_error("p95 <", 5..5, &["after `<`", "end of input"]);
        assert_error("p95 < 500 ms", 6..12, &["space", "write `500ms`"]);
        assert_error("p95 < 1 %", 6..9, &["space", "write `1%`"]);
        assert_error("p95 << 5", 5..6, &["after `<`", "found `<`"]);
        assert_error("(p95 < 5", 8..8, &["expected `)`", "end of input"]);
        assert_error("max(rps >= 100", 8..10, &["`)`", "max(", "found `>=`"]);
        assert_error("max() > 1", 4..5, &["metric name", "max(rps)"]);
        assert_error(
            "p95 < 5ms foo",
            10..13,
            &["unexpected `foo`", "`and` or `or`"],
        );
        assert_error(
            "p95 < 5ms AND x < 1",
            10..13,
            &["keywords are lowercase", "`and`"],
        );
        assert_error("p95 < 5ms)", 9..10, &["no matching `(`"]);
        assert_error("", 0..0, &["empty expression", "p95 < 500ms"]);
        assert_error("   ", 0..3, &["empty expression"]);
        assert_error("p95", 0..3, &["expected a comparison like `p95 < 500ms`"]);
        assert_error("p95 < 1 and rps", 12..15, &["expected a comparison like"]);
        assert_error("not p95", 4..7, &["expected a comparison like"]);
        assert_error("p95 500ms", 4..9, &["comparison operator after `p95`"]);
        assert_error("x not in [1]", 2..5, &["not (x in [...])"]);
        assert_error("a < b < c", 6..7, &["cannot be chained"]);
        assert_error("(a < b) == true", 0..7, &["found a condition"]);
        assert_error("x in 1", 5..6, &["expected `[`"]);
        assert_error("x in [1, 2", 10..10, &["`,` or `]`"]);
        assert_error("x in [y]", 6..7, &["in the list", "found `y`"]);
        assert_error("x in []", 6..7, &["in the list"]);
        assert_error("and", 0..3, &["expected a comparison like", "found `and`"]);
        assert_error("x < %", 4..5, &["right after a number"]);
        let deep = format!("{}x < 1{}", "(".repeat(200), ")".repeat(200));
        assert_error(&deep, 32..33, &["nested"]);
        assert_error(&"not ".repeat(100), 128..131, &["nested"]);
    }

    #[test]
    fn syntax_error_before_lex_error_wins() {
        // The bad character comes after a real syntax error; report the first.
        assert_error("p95 < < é", 6..7, &["found `<`"]);
    }

    #[test]
    fn bare_ident_in_not_is_rejected_at_parse() {
        assert_error("!flag", 1..5, &["expected a comparison like"]);
    }
}
