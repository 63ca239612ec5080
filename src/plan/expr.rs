//! Threshold and filter expressions such as `p95 < 500ms and fail_rate < 1%`
//! or `replicas == 4 and users > 200`.
//!
//! Comparisons only, no arithmetic. Every AST node and every error carries a
//! byte span into the expression string so callers can point at the problem.

use std::fmt;

use crate::plan::units;

pub type Span = std::ops::Range<usize>;

/// Deeper nesting than this is certainly a mistake, and the limit keeps the
/// recursive parser from overflowing the stack on hostile input (about 8 KiB
/// per level in unoptimised builds).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

impl ParseError {
    fn new(span: Span, message: impl Into<String>) -> Self {
        ParseError {
            span,
            message: message.into(),
            hint: None,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The offending line of `src` with the span underlined, then the
    /// message and hint.
    pub fn render(&self, src: &str) -> String {
        let start = self.span.start.min(src.len());
        let before = src.get(..start).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = src
            .get(start..)
            .and_then(|rest| rest.find('\n'))
            .map_or(src.len(), |i| start + i);
        let line = src.get(line_start..line_end).unwrap_or("");
        let column = src.get(line_start..start).unwrap_or("").chars().count();
        let end = self.span.end.clamp(start, line_end.max(start));
        let width = src.get(start..end).unwrap_or("").chars().count().max(1);
        let mut out = format!(
            "{line}\n{}{} {}",
            " ".repeat(column),
            "^".repeat(width),
            self.message
        );
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\nhint: {hint}"));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub span: Span,
    pub message: String,
}

/// The text of `span` in `src`, or "" if the span does not belong to `src`.
pub fn snippet<'a>(src: &'a str, span: &Span) -> &'a str {
    src.get(span.clone()).unwrap_or("")
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Num(f64),
    Str(String),
    Bool(bool),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::Bool(_) => "a boolean",
        }
    }

    fn same_type(&self, other: &Value) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// What unit a number literal was written with. Durations are stored in
/// milliseconds, percentages in percent units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    None,
    Duration,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }

    fn holds<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `text` is the literal as written (`1.5s`), for messages such as
    /// "limit 1.5s"; `value` is normalised (1500.0).
    Num {
        value: f64,
        unit: UnitKind,
        text: String,
        span: Span,
    },
    Str {
        value: String,
        span: Span,
    },
    Bool {
        value: bool,
        span: Span,
    },
}

impl Literal {
    pub fn span(&self) -> Span {
        match self {
            Literal::Num { span, .. } | Literal::Str { span, .. } | Literal::Bool { span, .. } => {
                span.clone()
            }
        }
    }

    pub fn value(&self) -> Value {
        match self {
            Literal::Num { value, .. } => Value::Num(*value),
            Literal::Str { value, .. } => Value::Str(value.clone()),
            Literal::Bool { value, .. } => Value::Bool(*value),
        }
    }

    fn text(&self) -> String {
        match self {
            Literal::Num { text, .. } => text.clone(),
            other => other.value().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Literal),
    Ident {
        name: String,
        span: Span,
    },
    /// `func(arg)`, e.g. `max(rps)`.
    Aggregate {
        func: String,
        func_span: Span,
        arg: String,
        arg_span: Span,
        span: Span,
    },
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Literal(lit) => lit.span(),
            Operand::Ident { span, .. } | Operand::Aggregate { span, .. } => span.clone(),
        }
    }

    pub fn eval(
        &self,
        lookup: &dyn Fn(&str) -> Option<Value>,
        agg: &dyn Fn(&str, &str) -> Option<f64>,
    ) -> Result<Value, EvalError> {
        match self {
            Operand::Literal(lit) => Ok(lit.value()),
            Operand::Ident { name, span } => lookup(name).ok_or_else(|| EvalError {
                span: span.clone(),
                message: format!("unknown name `{name}`"),
            }),
            Operand::Aggregate {
                func, arg, span, ..
            } => agg(func, arg).map(Value::Num).ok_or_else(|| EvalError {
                span: span.clone(),
                message: format!("no value for `{func}({arg})`"),
            }),
        }
    }

    fn idents(&self, out: &mut Vec<IdentRef>) {
        match self {
            Operand::Literal(_) => {}
            Operand::Ident { name, span } => out.push(IdentRef {
                name: name.clone(),
                span: span.clone(),
                aggregate: None,
            }),
            Operand::Aggregate {
                func,
                func_span,
                arg,
                arg_span,
                ..
            } => out.push(IdentRef {
                name: arg.clone(),
                span: arg_span.clone(),
                aggregate: Some((func.clone(), func_span.clone())),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub lhs: Operand,
    pub op: CmpOp,
    pub op_span: Span,
    pub rhs: Operand,
    pub span: Span,
}

/// Both sides of a comparison after evaluation, for messages such as
/// "measured 612ms, limit 500ms".
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub lhs: Value,
    pub rhs: Value,
    pub holds: bool,
}

impl Comparison {
    pub fn eval(
        &self,
        lookup: &dyn Fn(&str) -> Option<Value>,
        agg: &dyn Fn(&str, &str) -> Option<f64>,
    ) -> Result<Outcome, EvalError> {
        let lhs = self.lhs.eval(lookup, agg)?;
        let rhs = self.rhs.eval(lookup, agg)?;
        let ordered_only = |what: &str| EvalError {
            span: self.op_span.clone(),
            message: format!("cannot compare {what} with `{}`; use == or !=", self.op),
        };
        let holds = match (&lhs, &rhs) {
            (Value::Num(a), Value::Num(b)) => self.op.holds(a, b),
            (Value::Str(a), Value::Str(b)) => match self.op {
                CmpOp::Eq | CmpOp::Ne => self.op.holds(a, b),
                _ => return Err(ordered_only("strings")),
            },
            (Value::Bool(a), Value::Bool(b)) => match self.op {
                CmpOp::Eq | CmpOp::Ne => self.op.holds(a, b),
                _ => return Err(ordered_only("booleans")),
            },
            _ => {
                return Err(EvalError {
                    span: self.span.clone(),
                    message: format!(
                        "cannot compare {} ({lhs}) with {} ({rhs})",
                        lhs.type_name(),
                        rhs.type_name()
                    ),
                });
            }
        };
        Ok(Outcome { lhs, rhs, holds })
    }
}

/// `operand in [item, ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub operand: Operand,
    pub items: Vec<Literal>,
    pub span: Span,
}

impl Membership {
    pub fn eval(
        &self,
        lookup: &dyn Fn(&str) -> Option<Value>,
        agg: &dyn Fn(&str, &str) -> Option<f64>,
    ) -> Result<bool, EvalError> {
        let value = self.operand.eval(lookup, agg)?;
        let items: Vec<Value> = self.items.iter().map(Literal::value).collect();
        if !items.iter().any(|item| item.same_type(&value)) {
            return Err(EvalError {
                span: self.span.clone(),
                message: format!(
                    "cannot look for {} ({value}) in a list of other types",
                    value.type_name()
                ),
            });
        }
        Ok(items.contains(&value))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Two or more terms; flat so long chains do not deepen recursion.
    Or {
        terms: Vec<Expr>,
        span: Span,
    },
    And {
        terms: Vec<Expr>,
        span: Span,
    },
    Not {
        inner: Box<Expr>,
        span: Span,
    },
    Compare(Box<Comparison>),
    In(Box<Membership>),
    Bool {
        value: bool,
        span: Span,
    },
}

/// An identifier referenced by an expression. `aggregate` is the enclosing
/// call (`max` in `max(rps)`) with the span of the function name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentRef {
    pub name: String,
    pub span: Span,
    pub aggregate: Option<(String, Span)>,
}

impl Expr {
    /// The span of this node's own text; parentheses around it belong to the
    /// parent.
    pub fn span(&self) -> Span {
        match self {
            Expr::Or { span, .. }
            | Expr::And { span, .. }
            | Expr::Not { span, .. }
            | Expr::Bool { span, .. } => span.clone(),
            Expr::Compare(c) => c.span.clone(),
            Expr::In(m) => m.span.clone(),
        }
    }

    /// Visits every node in source order.
    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Or { terms, .. } | Expr::And { terms, .. } => {
                for term in terms {
                    term.walk(f);
                }
            }
            Expr::Not { inner, .. } => inner.walk(f),
            Expr::Compare(_) | Expr::In(_) | Expr::Bool { .. } => {}
        }
    }

    /// Every identifier referenced, in source order.
    pub fn idents(&self) -> Vec<IdentRef> {
        let mut out = Vec::new();
        self.walk(&mut |e| match e {
            Expr::Compare(c) => {
                c.lhs.idents(&mut out);
                c.rhs.idents(&mut out);
            }
            Expr::In(m) => m.operand.idents(&mut out),
            _ => {}
        });
        out
    }

    pub fn has_aggregate(&self) -> bool {
        self.idents().iter().any(|i| i.aggregate.is_some())
    }

    /// The comparisons in source order (`in` tests are not included).
    pub fn comparisons(&self) -> Vec<&Comparison> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Compare(c) = e {
                out.push(&**c);
            }
        });
        out
    }

    /// Evaluates with short-circuiting `and`/`or`, so a term that is not
    /// reached cannot fail.
    pub fn eval(
        &self,
        lookup: &dyn Fn(&str) -> Option<Value>,
        agg: &dyn Fn(&str, &str) -> Option<f64>,
    ) -> Result<bool, EvalError> {
        match self {
            Expr::Or { terms, .. } => {
                for term in terms {
                    if term.eval(lookup, agg)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Expr::And { terms, .. } => {
                for term in terms {
                    if !term.eval(lookup, agg)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Expr::Not { inner, .. } => Ok(!inner.eval(lookup, agg)?),
            Expr::Compare(c) => Ok(c.eval(lookup, agg)?.holds),
            Expr::In(m) => m.eval(lookup, agg),
            Expr::Bool { value, .. } => Ok(*value),
        }
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
struct Token {
    tok: Tok,
    span: Span,
}

const DURATION_UNIT_NAMES: &[&str] = &["us", "µs", "μs", "ms", "s", "m", "h"];
const UNIT_HINT: &str =
    "units are us, ms, s, m, h and %, written right after the number (e.g. `500ms`, `1.5s`, `1%`)";

/// Tokens up to the first lexical error. The error is returned separately so
/// the parser reports it only when it reaches that position, after any
/// earlier syntax error.
fn lex(src: &str) -> (Vec<Token>, Option<ParseError>) {
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
        .map_err(|e| ParseError::new(start..suffix_end, e).with_hint(UNIT_HINT))?;
    Ok(Token {
        tok: Tok::Num {
            value: duration.as_nanos() as f64 / 1e6,
            unit: UnitKind::Duration,
        },
        span: start..suffix_end,
    })
}

// --------------------------------------------------------------- parser

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

pub fn parse(src: &str) -> Result<Expr, ParseError> {
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

// ------------------------------------------------------ threshold checks

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Milliseconds.
    Latency,
    Percent,
    /// Per second.
    Rate,
    Count,
    Plain,
}

impl MetricKind {
    fn noun(self) -> &'static str {
        match self {
            MetricKind::Latency => "a latency",
            MetricKind::Percent => "a percentage",
            MetricKind::Rate => "a rate (per second)",
            MetricKind::Count => "a count",
            MetricKind::Plain => "a plain number",
        }
    }

    fn example(self) -> &'static str {
        match self {
            MetricKind::Latency => "a duration, e.g. `500ms`",
            MetricKind::Percent => "a percentage, e.g. `1%`",
            MetricKind::Rate | MetricKind::Count | MetricKind::Plain => {
                "a plain number, e.g. `100`"
            }
        }
    }
}

pub const METRICS: &[(&str, MetricKind)] = &[
    ("mean", MetricKind::Latency),
    ("min", MetricKind::Latency),
    ("max", MetricKind::Latency),
    ("p50", MetricKind::Latency),
    ("p75", MetricKind::Latency),
    ("p90", MetricKind::Latency),
    ("p95", MetricKind::Latency),
    ("p99", MetricKind::Latency),
    ("p999", MetricKind::Latency),
    ("fail_rate", MetricKind::Percent),
    ("fail_pct", MetricKind::Percent),
    ("client_cpu_pct", MetricKind::Percent),
    ("sut_cpu_pct", MetricKind::Percent),
    ("rps", MetricKind::Rate),
    ("requests", MetricKind::Count),
    ("failures", MetricKind::Count),
    ("dropped", MetricKind::Count),
    ("sut_mem_mb", MetricKind::Plain),
];

pub const AGGREGATES: &[&str] = &["min", "max", "mean", "sum", "count"];

/// Names people reach for that are not ours; suggested when spelling
/// distance finds nothing.
const ALIASES: &[(&str, &str)] = &[
    ("avg", "mean"),
    ("average", "mean"),
    ("median", "p50"),
    ("error_rate", "fail_rate"),
    ("err_rate", "fail_rate"),
    ("errors", "failures"),
    ("qps", "rps"),
    ("tps", "rps"),
    ("throughput", "rps"),
    ("total", "sum"),
];

pub fn metric_kind(name: &str) -> Option<MetricKind> {
    METRICS
        .iter()
        .find(|(metric, _)| *metric == name)
        .map(|&(_, kind)| kind)
}

/// "did you mean ...?" from close spellings or known aliases.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str> + Clone) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let limit = if name.chars().count() > 4 { 2 } else { 1 };
    let best = candidates
        .clone()
        .map(|c| strsim::osa_distance(&lower, c))
        .min()?;
    let close: Vec<&str> = if best <= limit {
        candidates
            .filter(|c| strsim::osa_distance(&lower, c) == best)
            .collect()
    } else {
        let alias = ALIASES
            .iter()
            .find(|(from, _)| *from == lower)
            .map(|&(_, to)| to)?;
        vec![candidates.into_iter().find(|c| *c == alias)?]
    };
    let quoted: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
    let list = match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    };
    Some(format!("did you mean {list}?"))
}

fn unknown_metric(name: &str, span: &Span) -> ParseError {
    let e = ParseError::new(span.clone(), format!("unknown metric `{name}`"));
    if AGGREGATES.contains(&name) {
        return e.with_hint(format!(
            "`{name}` is an aggregate; apply it to a metric, e.g. `{name}(rps)`"
        ));
    }
    let hint = suggest(name, METRICS.iter().map(|&(m, _)| m)).unwrap_or_else(|| {
        let names: Vec<&str> = METRICS.iter().map(|&(m, _)| m).collect();
        format!("known metrics: {}", names.join(", "))
    });
    e.with_hint(hint)
}

/// What one side of a comparison is, for unit checks.
enum Side<'a> {
    Metric(MetricKind, String),
    Literal(&'a Literal),
    /// Already reported as an error.
    Unknown,
}

fn side<'a>(operand: &'a Operand, errors: &mut Vec<ParseError>) -> Side<'a> {
    match operand {
        Operand::Literal(lit) => Side::Literal(lit),
        Operand::Ident { name, span } => match metric_kind(name) {
            Some(kind) => Side::Metric(kind, name.clone()),
            None => {
                errors.push(unknown_metric(name, span));
                Side::Unknown
            }
        },
        Operand::Aggregate {
            func,
            func_span,
            arg,
            arg_span,
            ..
        } => {
            let arg_kind = metric_kind(arg);
            if arg_kind.is_none() {
                errors.push(unknown_metric(arg, arg_span));
            }
            if !AGGREGATES.contains(&func.as_str()) {
                let hint = suggest(func, AGGREGATES.iter().copied())
                    .unwrap_or_else(|| format!("use one of {}", AGGREGATES.join(", ")));
                errors.push(
                    ParseError::new(
                        func_span.clone(),
                        format!("unknown aggregate function `{func}`"),
                    )
                    .with_hint(hint),
                );
                return Side::Unknown;
            }
            let text = format!("{func}({arg})");
            match (func.as_str(), arg_kind) {
                ("count", _) => Side::Metric(MetricKind::Count, text),
                (_, Some(kind)) => Side::Metric(kind, text),
                (_, None) => Side::Unknown,
            }
        }
    }
}

/// Short decimal for hints: 0.07 * 100 should read `7`, not `7.000000000000001`.
fn short_number(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn check_metric_vs_literal(kind: MetricKind, metric: &str, lit: &Literal) -> Option<ParseError> {
    let text = lit.text();
    let (value, unit, span) = match lit {
        Literal::Num {
            value, unit, span, ..
        } => (*value, *unit, span.clone()),
        Literal::Str { span, .. } | Literal::Bool { span, .. } => {
            return Some(
                ParseError::new(
                    span.clone(),
                    format!(
                        "`{metric}` is {}; it cannot be compared with `{text}`",
                        kind.noun()
                    ),
                )
                .with_hint(format!("write {}", kind.example())),
            );
        }
    };
    let mismatch = |unit_noun: &str| {
        ParseError::new(
            span.clone(),
            format!("`{metric}` is {}, but `{text}` is {unit_noun}", kind.noun()),
        )
        .with_hint(format!("write {}", kind.example()))
    };
    let missing_unit = || {
        ParseError::new(
            span.clone(),
            format!("`{metric}` is {}, but `{text}` has no unit", kind.noun()),
        )
    };
    match (kind, unit) {
        (MetricKind::Latency, UnitKind::Duration) | (MetricKind::Percent, UnitKind::Percent) => {
            None
        }
        (MetricKind::Latency | MetricKind::Percent, UnitKind::None) if value == 0.0 => None,
        (MetricKind::Latency, UnitKind::None) => {
            Some(missing_unit().with_hint(format!("write `{text}ms` (or another duration unit)")))
        }
        (MetricKind::Percent, UnitKind::None) => {
            let mut hint = format!("write `{text}%`");
            if value < 1.0 {
                let pct = short_number(value * 100.0);
                hint.push_str(&format!(", or `{pct}%` if `{text}` is a fraction"));
            }
            Some(missing_unit().with_hint(hint))
        }
        (MetricKind::Latency, UnitKind::Percent) => Some(mismatch("a percentage")),
        (MetricKind::Percent, UnitKind::Duration) => Some(mismatch("a duration")),
        (_, UnitKind::None) => None,
        (_, UnitKind::Duration) => Some(mismatch("a duration")),
        (_, UnitKind::Percent) => Some(mismatch("a percentage")),
    }
}

fn check_sides(lhs: &Side, rhs: &Side, span: &Span) -> Option<ParseError> {
    match (lhs, rhs) {
        (Side::Unknown, _) | (_, Side::Unknown) => None,
        (Side::Metric(kind, name), Side::Literal(lit))
        | (Side::Literal(lit), Side::Metric(kind, name)) => {
            check_metric_vs_literal(*kind, name, lit)
        }
        (Side::Metric(a, a_name), Side::Metric(b, b_name)) => (a != b).then(|| {
            ParseError::new(
                span.clone(),
                format!(
                    "cannot compare `{a_name}` ({}) with `{b_name}` ({})",
                    a.noun(),
                    b.noun()
                ),
            )
        }),
        (Side::Literal(_), Side::Literal(_)) => Some(
            ParseError::new(span.clone(), "this comparison does not involve a metric")
                .with_hint("compare a metric with a limit, e.g. `p95 < 500ms`"),
        ),
    }
}

/// Semantic checks for a threshold expression; returns every problem found.
pub fn check_threshold(expr: &Expr) -> Vec<ParseError> {
    let mut errors = Vec::new();
    expr.walk(&mut |e| match e {
        Expr::Compare(c) => {
            let lhs = side(&c.lhs, &mut errors);
            let rhs = side(&c.rhs, &mut errors);
            errors.extend(check_sides(&lhs, &rhs, &c.span));
        }
        Expr::In(m) => {
            let operand = side(&m.operand, &mut errors);
            for item in &m.items {
                errors.extend(check_sides(&operand, &Side::Literal(item), &m.span));
            }
        }
        _ => {}
    });
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: &[&str] = &[
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

    fn parse_ok(src: &str) -> Expr {
        parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.render(src)))
    }

    fn parse_err(src: &str) -> ParseError {
        match parse(src) {
            Ok(expr) => panic!("{src} parsed as {expr:?}"),
            Err(e) => e,
        }
    }

    fn num(value: f64, unit: UnitKind, text: &str, span: Span) -> Operand {
        Operand::Literal(Literal::Num {
            value,
            unit,
            text: text.to_string(),
            span,
        })
    }

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
    fn idents_and_aggregates() {
        let expr = parse_ok("max(rps) >= 100 and max < 2s and p95 < mean(p99)");
        let idents = expr.idents();
        let got: Vec<_> = idents
            .iter()
            .map(|i| (i.name.as_str(), i.span.clone(), i.aggregate.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("rps", 4..7, Some(("max".to_string(), 0..3))),
                ("max", 20..23, None),
                ("p95", 33..36, None),
                ("p99", 44..47, Some(("mean".to_string(), 39..43))),
            ]
        );
        assert!(expr.has_aggregate());
        assert!(!parse_ok("max < 2s").has_aggregate());
        assert_eq!(expr.comparisons().len(), 3);
        assert_eq!(
            snippet("max < 2s", &parse_ok("max < 2s").comparisons()[0].span),
            "max < 2s"
        );
    }

    fn assert_error(src: &str, span: Span, words: &[&str]) -> ParseError {
        let e = parse_err(src);
        assert_eq!(e.span, span, "{src}: {}", e.render(src));
        let all = format!("{} {}", e.message, e.hint.clone().unwrap_or_default());
        for word in words {
            assert!(all.contains(word), "{src}: {all:?} lacks {word:?}");
        }
        e
    }

    #[test]
    fn error_spans_and_messages() {
        assert_error("p95 <", 5..5, &["after `<`", "end of input"]);
        assert_error("p95 < 500 ms", 6..12, &["space", "write `500ms`"]);
        assert_error("p95 < 1 %", 6..9, &["space", "write `1%`"]);
        assert_error("p95 < 500xs", 9..11, &["unknown unit `xs`", "ms"]);
        assert_error("p95 < 1m30x", 10..11, &["unknown unit `x`"]);
        assert_error("p95 < 1m1m", 6..10, &["largest to smallest"]);
        assert_error("p95 << 5", 5..6, &["after `<`", "found `<`"]);
        assert_error("(p95 < 5", 8..8, &["expected `)`", "end of input"]);
        assert_error("max(rps >= 100", 8..10, &["`)`", "max(", "found `>=`"]);
        assert_error("max() > 1", 4..5, &["metric name", "max(rps)"]);
        assert_error("\"unterminated", 0..13, &["unterminated string", "`\"`"]);
        assert_error("mode == 'x", 8..10, &["unterminated string", "`'`"]);
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
        assert_error("p95 = 5", 4..5, &["use `==`"]);
        assert_error("x & y", 2..3, &["`and`"]);
        assert_error("rps >= 0.9 * max(rps)", 11..12, &["arithmetic"]);
        assert_error("and", 0..3, &["expected a comparison like", "found `and`"]);
        assert_error("x < %", 4..5, &["right after a number"]);
        assert_error("p95 < 1.", 7..8, &["unexpected character `.`"]);
        let deep = format!("{}x < 1{}", "(".repeat(200), ")".repeat(200));
        assert_error(&deep, 32..33, &["nested"]);
        assert_error(&"not ".repeat(100), 128..131, &["nested"]);
        let huge = format!("x < {}", "9".repeat(400));
        assert_error(&huge, 4..404, &["too large"]);
    }

    #[test]
    fn syntax_error_before_lex_error_wins() {
        // The bad character comes after a real syntax error; report the first.
        assert_error("p95 < < é", 6..7, &["found `<`"]);
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

    #[test]
    fn render_underlines_the_span() {
        let src = "p95 < 500 ms";
        let out = parse_err(src).render(src);
        assert_eq!(
            out,
            "p95 < 500 ms\n      ^^^^^^ unexpected space between number and unit\nhint: write `500ms`"
        );
    }

    fn vars(name: &str) -> Option<Value> {
        match name {
            "p95" => Some(Value::Num(612.0)),
            "fail_rate" => Some(Value::Num(0.2)),
            "users" => Some(Value::Num(300.0)),
            "replicas" => Some(Value::Num(4.0)),
            "mode" => Some(Value::Str("cpu".into())),
            "flag" => Some(Value::Bool(false)),
            _ => None,
        }
    }

    fn aggs(func: &str, arg: &str) -> Option<f64> {
        match (func, arg) {
            ("max", "rps") => Some(150.0),
            ("mean", "p95") => Some(280.0),
            _ => None,
        }
    }

    fn eval(src: &str) -> Result<bool, EvalError> {
        parse_ok(src).eval(&vars, &aggs)
    }

    #[test]
    fn evaluation() {
        let cases = [
            ("p95 < 500ms", false),
            ("p95 < 1s", true),
            ("p95 <= 612", true),
            ("fail_rate < 1%", true),
            ("max(rps) >= 100", true),
            ("mean(p95) < 300ms", true),
            ("users <= 400", true),
            ("replicas == 4 and users > 200", true),
            ("replicas != 4 or users > 200", true),
            ("mode == \"cpu\"", true),
            ("mode != 'cpu'", false),
            ("not (users < 100 or replicas in [1, 2])", true),
            ("replicas in [1, 2, 4]", true),
            ("mode in ['io', \"cpu\"]", true),
            ("replicas in [4, 'four']", true),
            ("flag == false", true),
            ("true && !false", true),
            // Short-circuit: the unknown name is never looked up.
            ("users > 1000 and nope == 1", false),
            ("users < 1000 or nope == 1", true),
        ];
        for (src, want) in cases {
            assert_eq!(eval(src), Ok(want), "{src}");
        }
    }

    #[test]
    fn bare_ident_in_not_is_rejected_at_parse() {
        assert_error("!flag", 1..5, &["expected a comparison like"]);
    }

    #[test]
    fn evaluation_errors() {
        let e = eval("nope < 1").unwrap_err();
        assert_eq!(e.span, 0..4);
        assert!(e.message.contains("`nope`"));
        let e = eval("min(rps) < 1").unwrap_err();
        assert_eq!(e.span, 0..8);
        assert!(e.message.contains("min(rps)"));
        let e = eval("mode < 'x'").unwrap_err();
        assert_eq!(e.span, 5..6);
        assert!(e.message.contains("strings") && e.message.contains("=="));
        let e = eval("flag >= true").unwrap_err();
        assert!(e.message.contains("booleans"));
        let e = eval("mode == 4").unwrap_err();
        assert_eq!(e.span, 0..9);
        assert!(
            e.message.contains("a string (\"cpu\") with a number (4)"),
            "{}",
            e.message
        );
        let e = eval("mode in [1, 2]").unwrap_err();
        assert!(e.message.contains("a string"), "{}", e.message);
    }

    #[test]
    fn comparison_outcomes_for_reports() {
        let src = "p95 < 500ms and mean(p95) < 300ms";
        let expr = parse_ok(src);
        let report: Vec<_> = expr
            .comparisons()
            .into_iter()
            .map(|c| {
                let outcome = c.eval(&vars, &aggs).unwrap();
                let Operand::Literal(Literal::Num { text, .. }) = &c.rhs else {
                    panic!("{c:?}")
                };
                (
                    snippet(src, &c.span),
                    outcome.lhs,
                    text.clone(),
                    outcome.holds,
                )
            })
            .collect();
        assert_eq!(
            report,
            vec![
                ("p95 < 500ms", Value::Num(612.0), "500ms".to_string(), false),
                (
                    "mean(p95) < 300ms",
                    Value::Num(280.0),
                    "300ms".to_string(),
                    true
                ),
            ]
        );
        assert_eq!(
            serde_json::to_string(&Value::Str("x".into())).unwrap(),
            "\"x\""
        );
    }

    #[test]
    fn metric_catalogue() {
        assert_eq!(metric_kind("p999"), Some(MetricKind::Latency));
        assert_eq!(metric_kind("max"), Some(MetricKind::Latency));
        assert_eq!(metric_kind("sut_cpu_pct"), Some(MetricKind::Percent));
        assert_eq!(metric_kind("rps"), Some(MetricKind::Rate));
        assert_eq!(metric_kind("dropped"), Some(MetricKind::Count));
        assert_eq!(metric_kind("sut_mem_mb"), Some(MetricKind::Plain));
        assert_eq!(metric_kind("users"), None);
    }

    fn threshold_errors(src: &str) -> Vec<ParseError> {
        check_threshold(&parse_ok(src))
    }

    fn assert_one_threshold_error(src: &str, span: Span, words: &[&str]) {
        let errors = threshold_errors(src);
        assert_eq!(errors.len(), 1, "{src}: {errors:?}");
        let e = &errors[0];
        assert_eq!(e.span, span, "{src}: {e:?}");
        let all = format!("{} {}", e.message, e.hint.clone().unwrap_or_default());
        for word in words {
            assert!(all.contains(word), "{src}: {all:?} lacks {word:?}");
        }
    }

    #[test]
    fn valid_thresholds_pass() {
        for src in [
            "p95 < 500ms",
            "fail_rate < 1%",
            "max(rps) >= 100",
            "p99 <= 1.5s and fail_rate < 0.5%",
            "mean(p95) < 300ms",
            "max < 2s",
            "p95 < max(p99)",
            "count(rps) >= 3",
            "sut_mem_mb < 512 and dropped == 0 and requests > 1000",
            "fail_rate == 0 and p95 > 0",
            "true",
        ] {
            assert_eq!(threshold_errors(src), vec![], "{src}");
        }
    }

    #[test]
    fn threshold_semantic_errors() {
        assert_one_threshold_error("p96 < 5ms", 0..3, &["unknown metric `p96`", "`p95`"]);
        assert_one_threshold_error("fail_rte < 1%", 0..8, &["did you mean `fail_rate`?"]);
        assert_one_threshold_error("latency < 5ms", 0..7, &["known metrics: mean, min"]);
        assert_one_threshold_error("throughput > 5", 0..10, &["did you mean `rps`?"]);
        assert_one_threshold_error("sum > 5", 0..3, &["aggregate", "sum(rps)"]);
        assert_one_threshold_error(
            "avg(p95) < 5ms",
            0..3,
            &["unknown aggregate function `avg`", "`mean`"],
        );
        assert_one_threshold_error("maxx(rps) > 5", 0..4, &["did you mean `max`?"]);
        assert_one_threshold_error(
            "foo(rps) > 5",
            0..3,
            &["use one of min, max, mean, sum, count"],
        );
        assert_one_threshold_error("max(rsp) > 5", 4..7, &["unknown metric `rsp`", "`rps`"]);
        assert_one_threshold_error("p95 < 1%", 6..8, &["latency", "percentage", "500ms"]);
        assert_one_threshold_error("p95 < 500", 6..9, &["no unit", "write `500ms`"]);
        assert_one_threshold_error("500 > p95", 0..3, &["write `500ms`"]);
        assert_one_threshold_error(
            "fail_rate < 500ms",
            12..17,
            &["percentage", "duration", "1%"],
        );
        assert_one_threshold_error("fail_rate < 0.07", 12..16, &["`0.07%`", "`7%`", "fraction"]);
        assert_one_threshold_error("rps > 5ms", 6..9, &["rate", "plain number"]);
        assert_one_threshold_error("count(p95) > 1s", 13..15, &["count", "duration"]);
        assert_one_threshold_error("p95 == 'x'", 7..10, &["latency", "cannot be compared"]);
        assert_one_threshold_error("rps > p95", 0..9, &["`rps` (a rate", "`p95` (a latency)"]);
        assert_one_threshold_error("1 < 2", 0..5, &["does not involve a metric"]);
        assert_one_threshold_error("p95 in [1%]", 8..10, &["percentage"]);

        // Every problem is reported, not just the first.
        let errors = threshold_errors("p96 < 1% and rps > 5ms or foo(bar) > 1");
        let spans: Vec<Span> = errors.iter().map(|e| e.span.clone()).collect();
        assert_eq!(spans, vec![0..3, 19..22, 30..33, 26..29], "{errors:?}");
    }

    /// Every node span lies within `src` and on char boundaries.
    fn check_spans(src: &str, expr: &Expr) {
        let mut spans = Vec::new();
        expr.walk(&mut |e| {
            spans.push(e.span());
            match e {
                Expr::Compare(c) => {
                    spans.extend([c.op_span.clone(), c.lhs.span(), c.rhs.span()]);
                }
                Expr::In(m) => {
                    spans.push(m.operand.span());
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
                let _ = check_threshold(&expr);
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
