//! Evaluation: values, and comparisons of them against a lookup of names.

use std::fmt;

use super::{CmpOp, Comparison, Expr, Literal, Membership, Operand, Span};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct EvalError {
    pub(crate) span: Span,
    pub(crate) message: String,
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

impl CmpOp {
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

impl Operand {
    pub(crate) fn eval(
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
}

/// Both sides of a comparison after evaluation, for messages such as
/// "measured 612ms, limit 500ms".
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Outcome {
    pub(crate) lhs: Value,
    pub(crate) rhs: Value,
    pub(crate) holds: bool,
}

impl Comparison {
    pub(crate) fn eval(
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

impl Membership {
    pub(crate) fn eval(
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

impl Expr {
    /// Evaluates with short-circuiting `and`/`or`, so a term that is not
    /// reached cannot fail.
    pub(crate) fn eval(
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

#[cfg(test)]
mod tests {
    use super::super::snippet;
    use super::super::testing::parse_ok;
    use super::*;

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
}
