//! The expression tree. Every node carries a byte span into the expression
//! string so callers can point at the problem.

use std::fmt;

use super::Value;

pub(crate) type Span = std::ops::Range<usize>;

/// What unit a number literal was written with. Durations are stored in
/// milliseconds, percentages in percent units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitKind {
    None,
    Duration,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
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
    pub(crate) fn span(&self) -> Span {
        match self {
            Literal::Num { span, .. } | Literal::Str { span, .. } | Literal::Bool { span, .. } => {
                span.clone()
            }
        }
    }

    pub(crate) fn value(&self) -> Value {
        match self {
            Literal::Num { value, .. } => Value::Num(*value),
            Literal::Str { value, .. } => Value::Str(value.clone()),
            Literal::Bool { value, .. } => Value::Bool(*value),
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            Literal::Num { text, .. } => text.clone(),
            other => other.value().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
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
    pub(crate) lhs: Operand,
    pub(crate) op: CmpOp,
    pub(crate) op_span: Span,
    pub(crate) rhs: Operand,
    pub(crate) span: Span,
}

/// `operand in [item, ...]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Membership {
    pub(crate) operand: Operand,
    pub(crate) items: Vec<Literal>,
    pub(crate) span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
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
pub(crate) struct IdentRef {
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) aggregate: Option<(String, Span)>,
}

impl Expr {
    /// The span of this node's own text; parentheses around it belong to the
    /// parent.
    pub(crate) fn span(&self) -> Span {
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
    pub(super) fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
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
    pub(crate) fn idents(&self) -> Vec<IdentRef> {
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

    pub(crate) fn has_aggregate(&self) -> bool {
        self.idents().iter().any(|i| i.aggregate.is_some())
    }

    /// The comparisons in source order (`in` tests are not included).
    pub(crate) fn comparisons(&self) -> Vec<&Comparison> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Compare(c) = e {
                out.push(&**c);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::snippet;
    use super::super::testing::parse_ok;

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
}
