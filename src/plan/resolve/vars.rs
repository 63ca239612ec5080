//! `[vars]`, rendered in a context: once per cell, and once for the plan.

use minijinja::Value;

use super::resolver::Resolver;
use crate::plan::raw::RawPlan;

pub(super) fn render(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Value {
    let mut vars = std::collections::BTreeMap::new();
    for (k, v) in &raw.vars {
        let value = match &v.value {
            toml::Value::String(s) => match r.render(s, &v.span, &format!("vars.{k}"), ctx) {
                Some(s) => Value::from(s),
                None => Value::from(s.as_str()),
            },
            other => toml_to_value(other),
        };
        vars.insert(k.clone(), value);
    }
    Value::from(vars)
}

fn toml_to_value(v: &toml::Value) -> Value {
    Value::from(minijinja::value::Serde(v))
}
