//! The minijinja environment every plan string is rendered with: strict
//! undefined, a `random` filter, and an `env` object that remembers which
//! variables were read so their values can be kept out of every output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Environment, UndefinedBehavior};

use crate::base::limits::{REPORT_FUEL, REPORT_OUTPUT, TEMPLATE_FUEL, TEMPLATE_OUTPUT};
use crate::base::random::SharedSplitMix64;

/// The process environment as seen by templates.
#[derive(Debug, Default)]
pub struct EnvVars {
    values: BTreeMap<String, String>,
    read: Mutex<BTreeSet<String>>,
    /// Every variable reads as the mask: for re-rendering a finished run,
    /// whose secrets are not (and need not be) in the environment.
    masked: bool,
}

impl EnvVars {
    pub(crate) fn from_process() -> Self {
        Self::from_map(std::env::vars().collect())
    }

    pub fn from_map(values: BTreeMap<String, String>) -> Self {
        EnvVars {
            values,
            read: Mutex::new(BTreeSet::new()),
            masked: false,
        }
    }

    /// An environment in which every variable is defined and renders as
    /// `***`, so no value is needed and none can leak.
    pub fn masked() -> Self {
        EnvVars {
            masked: true,
            ..Self::default()
        }
    }

    /// Values of every variable a template has read: the secrets to redact.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        read.iter()
            .filter_map(|k| self.values.get(k))
            .filter(|v| !v.is_empty())
            .cloned()
            .collect()
    }
}

impl Object for EnvVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if self.masked {
            return Some(Value::from(MASK));
        }
        let value = self.values.get(key)?;
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned());
        Some(Value::from(value.as_str()))
    }

    // Iterating would read every variable at once; secrets must be named.
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}

pub(crate) struct Templates {
    /// Plan values: bounded in work and output size.
    env: Environment<'static>,
    /// Report documents, which grow with the number of cells: a larger
    /// budget, still a bound.
    documents: Environment<'static>,
    pub(crate) env_vars: Arc<EnvVars>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("random", random_filter);
    env.add_function("random_int", random_int);
    env.add_function("prompt", super::data::prompt_function);
    env
}

impl Templates {
    pub(crate) fn new(env_vars: EnvVars) -> Self {
        let mut env = environment();
        env.set_fuel(Some(TEMPLATE_FUEL));
        let mut documents = environment();
        documents.set_fuel(Some(REPORT_FUEL));
        Templates {
            env,
            documents,
            env_vars: Arc::new(env_vars),
        }
    }

    /// The environment plan values render in (bounded in work per render).
    pub(crate) fn values(&self) -> &Environment<'static> {
        &self.env
    }

    pub(crate) fn env_value(&self) -> Value {
        Value::from_dyn_object(self.env_vars.clone())
    }

    /// Renders a plan value. A template that does more than
    /// [`TEMPLATE_FUEL`] work or writes more than [`TEMPLATE_OUTPUT`] bytes
    /// fails rather than hanging or exhausting memory.
    pub(crate) fn render(&self, source: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        render_bounded(&self.env, source, ctx, TEMPLATE_OUTPUT, "per value")
    }

    /// Renders a report document, within [`REPORT_FUEL`] and [`REPORT_OUTPUT`].
    pub(crate) fn render_document(
        &self,
        source: &str,
        ctx: &Value,
    ) -> Result<String, minijinja::Error> {
        render_document_with(&self.documents, source, ctx)
    }

    /// The environment report documents render in, to render one on
    /// another thread with [`render_document_with`].
    pub(crate) fn documents(&self) -> Environment<'static> {
        self.documents.clone()
    }

    pub(crate) fn environment(&self) -> &Environment<'static> {
        &self.documents
    }
}

/// Renders a report document in `env` (see [`Templates::documents`]).
pub(crate) fn render_document_with(
    env: &Environment<'static>,
    source: &str,
    ctx: &Value,
) -> Result<String, minijinja::Error> {
    render_bounded(env, source, ctx, REPORT_OUTPUT, "per report")
}

fn render_bounded(
    env: &Environment<'static>,
    source: &str,
    ctx: &Value,
    limit: usize,
    per: &str,
) -> Result<String, minijinja::Error> {
    let template = env.template_from_str(source)?;
    let mut out = Bounded {
        bytes: Vec::new(),
        limit,
        exceeded: false,
    };
    match template.render_captured_to(ctx.clone(), &mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
        Err(_) if out.exceeded => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            limit_message(limit, per),
        )),
        Err(e) => Err(e),
    }
}

fn limit_message(limit: usize, per: &str) -> String {
    format!(
        "renders more than {} (the limit {per})",
        crate::base::units::format_size(limit as u64)
    )
}

/// What a value rendering past [`TEMPLATE_OUTPUT`] is told.
pub(crate) fn output_limit_message() -> String {
    limit_message(TEMPLATE_OUTPUT, "per value")
}

/// Collects output and fails the write that would go past `limit`.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One process-wide stream: templates have no seed to hand.
static RANDOM: SharedSplitMix64 = SharedSplitMix64::new(0);

/// `seq | random` picks an element (as in Jinja2); on a number or anything
/// else it gives a uniform float in [0, 1), so `range(8) | map("random")`
/// makes eight random inputs.
fn random_filter(value: Value) -> Value {
    if let Some(len) = value.len()
        && len > 0
        && !value.is_number()
        && value.as_str().is_none()
    {
        let index = (RANDOM.next_u64() % len as u64) as usize;
        if let Ok(item) = value.get_item(&Value::from(index)) {
            return item;
        }
    }
    Value::from(RANDOM.next_f64())
}

/// `random_int(a, b)`: uniform integer in [a, b].
fn random_int(low: i64, high: i64) -> Result<i64, minijinja::Error> {
    if high < low {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("random_int({low}, {high}): the low bound is above the high bound"),
        ));
    }
    let span = (high - low) as u64 + 1;
    Ok(low + (RANDOM.next_u64() % span.max(1)) as i64)
}

pub use crate::base::redact::MASK;

#[cfg(test)]
mod tests {
    use super::*;

    fn templates(vars: &[(&str, &str)]) -> Templates {
        Templates::new(EnvVars::from_map(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn env_reads_are_recorded_as_secrets() {
        let t = templates(&[("API_TOKEN", "s3cr3t-value"), ("OTHER", "unused")]);
        let ctx = minijinja::context! { env => t.env_value() };
        let out = t.render("Bearer {{ env.API_TOKEN }}", &ctx).unwrap();
        assert_eq!(out, "Bearer s3cr3t-value");
        assert_eq!(t.env_vars.secrets(), vec!["s3cr3t-value".to_string()]);
        assert_eq!(
            crate::base::redact::Redactor::new(&t.env_vars.secrets()).redact(&out),
            "Bearer ***"
        );
    }

    #[test]
    fn undefined_is_an_error() {
        let t = templates(&[]);
        let ctx = minijinja::context! { matrix => minijinja::context!{ users => 3 }, env => t.env_value() };
        assert!(t.render("{{ matrix.user }}", &ctx).is_err());
        assert!(t.render("{{ env.MISSING }}", &ctx).is_err());
        assert_eq!(t.render("{{ matrix.users }}", &ctx).unwrap(), "3");
    }

    #[test]
    fn random_filter_makes_numbers_and_picks_elements() {
        let t = templates(&[]);
        let out = t
            .render(
                r#"{{ range(8) | map("random") | join(",") }}"#,
                &Value::UNDEFINED,
            )
            .unwrap();
        let numbers: Vec<f64> = out.split(',').map(|s| s.parse().unwrap()).collect();
        assert_eq!(numbers.len(), 8);
        assert!(numbers.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(numbers.windows(2).any(|w| w[0] != w[1]));
        let pick = t
            .render(r#"{{ ["a", "b"] | random }}"#, &Value::UNDEFINED)
            .unwrap();
        assert!(pick == "a" || pick == "b");
    }

    #[test]
    fn standard_filters_are_available() {
        let t = templates(&[]);
        let ctx = minijinja::context! { q => "a b/c+d" };
        assert_eq!(
            t.render("{{ q | urlencode }}", &ctx).unwrap(),
            "a%20b/c%2Bd"
        );
        assert_eq!(
            t.render("{{ {'k': [1, 2]} | tojson }}", &ctx).unwrap(),
            r#"{"k": [1, 2]}"#
        );
    }

    #[test]
    fn work_and_output_are_bounded() {
        let t = templates(&[]);
        let ctx = Value::UNDEFINED;
        let e = t
            .render(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                &ctx,
            )
            .unwrap_err();
        assert_eq!(e.kind(), minijinja::ErrorKind::OutOfFuel);
        let e = t
            .render(
                "{% for i in range(100000) %}{{ 'x' * 50 }}{% endfor %}",
                &ctx,
            )
            .unwrap_err();
        assert_eq!(e.detail(), Some(output_limit_message().as_str()));
        // Report documents are not bound by the per-value limits.
        let long = t
            .render_document(
                "{% for i in range(30000) %}{{ 'x' * 50 }}{% endfor %}",
                &ctx,
            )
            .unwrap();
        assert_eq!(long.len(), 1_500_000);
    }
}
