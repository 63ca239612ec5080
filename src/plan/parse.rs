//! TOML text -> [`RawPlan`], collecting every error instead of the first:
//! each section and each array element is deserialized on its own.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::raw::RawPlan;
use super::suggest::{Closeness, did_you_mean};
use crate::diagnostic::Diagnostic;

pub(crate) const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "vars",
    "matrix",
    "cell",
    "system",
    "load",
    "check",
    "step",
    "threshold",
    "analysis",
    "search",
    "report",
    "scrape",
    "tls",
];

/// A `--set KEY=VALUE` override: a dotted path into the plan and a TOML value
/// (or a bare string).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub(crate) path: Vec<String>,
    pub(crate) value: String,
}

/// Why a `--set` cannot be read or applied; its text is what the user reads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum OverrideError {
    #[error(
        "`--set {0}` has no `=`; write it as KEY=VALUE, e.g. --set vars.lb=http://127.0.0.1:8080"
    )]
    NoEquals(String),
    #[error(
        "`--set {text}`: the key `{key}` has an empty part; write a dotted path like cell.duration"
    )]
    EmptyPart { text: String, key: String },
    #[error("`--set` needs a key")]
    NoKey,
    #[error("`--set {key}=...`: the plan has no matrix axis `{axis}`; {hint}")]
    NoAxis {
        key: String,
        axis: String,
        hint: String,
    },
    #[error("`--set {key}=...`: `{part}` is not a table in this plan")]
    NotTable { key: String, part: String },
}

impl Override {
    pub(crate) fn parse(text: &str) -> Result<Override, OverrideError> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(OverrideError::NoEquals(text.to_string()));
        };
        let path: Vec<String> = key.trim().split('.').map(|s| s.trim().to_owned()).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(OverrideError::EmptyPart {
                text: text.to_string(),
                key: key.to_string(),
            });
        }
        Ok(Override {
            path,
            value: value.to_owned(),
        })
    }
}

struct Collector<'a> {
    file: &'a Path,
    source: &'a Arc<str>,
    diagnostics: Vec<Diagnostic>,
    /// Set by an error after which the plan cannot be read further; unknown
    /// keys are dropped and reported instead, so they hide nothing.
    fatal: bool,
}

/// Unknown keys dropped from one section before giving up on it.
const MAX_UNKNOWN_KEYS: usize = 64;

impl Collector<'_> {
    fn push(
        &mut self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::new(self.file, self.source, span, message);
        d.hint = hint;
        self.diagnostics.push(d);
    }

    fn de_error(&mut self, error: toml::de::Error, fallback: Range<usize>) {
        let (message, hint) = explain_serde_message(error.message());
        let span = error.span().unwrap_or(fallback);
        // Only `--set` values have no place in the file.
        let (span, message) = if span == (0..0) {
            (None, format!("--set: {message}"))
        } else {
            (Some(span), message)
        };
        self.push(span, message, hint);
    }

    fn de<T: DeserializeOwned>(&mut self, mut value: Spanned<DeValue<'_>>) -> Option<T> {
        let span = value.span();
        for _ in 0..=MAX_UNKNOWN_KEYS {
            match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(v) => return Some(v),
                Err(e) => {
                    let unknown = e
                        .message()
                        .trim_start()
                        .strip_prefix("unknown field `")
                        .and_then(|rest| rest.split_once('`'))
                        .map(|(field, _)| field.to_owned());
                    let dropped = match (unknown, e.span()) {
                        (Some(field), Some(at)) => remove_key_at(value.get_mut(), &field, &at),
                        _ => false,
                    };
                    self.de_error(e, span.clone());
                    if !dropped {
                        self.fatal = true;
                        return None;
                    }
                }
            }
        }
        self.fatal = true;
        None
    }

    /// An array of tables, each element on its own so one bad element does not
    /// hide errors in the next.
    fn de_each<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>) -> Vec<T> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => items.into_iter().filter_map(|v| self.de(v)).collect(),
            other => {
                self.fatal = true;
                self.push(
                    Some(span),
                    format!("expected an array of tables, found {}", other.type_str()),
                    Some("write each entry as its own [[section]] table".into()),
                );
                Vec::new()
            }
        }
    }
}

/// Drops the key `name` written at `at` from the table that holds it.
fn remove_key_at(value: &mut DeValue<'_>, name: &str, at: &Range<usize>) -> bool {
    match value {
        DeValue::Table(table) => {
            if table
                .iter()
                .any(|(k, _)| k.span() == *at && k.get_ref() == name)
            {
                let all = std::mem::replace(table, DeTable::new());
                for (k, v) in all {
                    if !(k.span() == *at && k.get_ref() == name) {
                        table.insert(k, v);
                    }
                }
                return true;
            }
            table
                .iter_mut()
                .any(|(_, v)| remove_key_at(v.get_mut(), name, at))
        }
        DeValue::Array(items) => items
            .iter_mut()
            .any(|v| remove_key_at(v.get_mut(), name, at)),
        _ => false,
    }
}

/// Turns serde's messages into a message and a hint a plan author can act on.
pub(crate) fn explain_serde_message(message: &str) -> (String, Option<String>) {
    let message = message.trim().to_owned();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let hint = did_you_mean(field, known.iter().copied(), Closeness::Similar).or_else(|| {
            (!known.is_empty()).then(|| format!("known keys here: {}", known.join(", ")))
        });
        return (format!("unknown key `{field}`"), hint);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((variant, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let hint = did_you_mean(variant, known.iter().copied(), Closeness::Similar)
            .or_else(|| Some(format!("use one of: {}", known.join(", "))));
        return (format!("unknown value `{variant}`"), hint);
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return (
            format!("missing key `{field}`"),
            Some(format!("add `{field} = ...` to this table")),
        );
    }
    if message.starts_with("invalid type: ") {
        let text = message.trim_start_matches("invalid type: ");
        return (format!("wrong type: {text}"), None);
    }
    (message, None)
}

/// Parses a plan's text. `overrides` are applied to the tree before it is
/// read, so they are type-checked like the file itself. Errors that leave the
/// plan readable (unknown keys, which are dropped) come back beside it, so
/// validation can go on and report the rest.
pub(crate) fn parse_raw(
    file: &Path,
    source: &Arc<str>,
    overrides: &[Override],
) -> Result<(RawPlan, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut c = Collector {
        file,
        source,
        diagnostics: Vec::new(),
        fatal: false,
    };
    let (root, errors) = DeTable::parse_recoverable(source);
    if !errors.is_empty() {
        for e in errors {
            let (message, hint) = explain_serde_message(e.message());
            c.push(e.span(), format!("TOML syntax: {message}"), hint);
        }
        return Err(c.diagnostics);
    }
    let root_span = root.span();
    let mut root = root.into_inner();
    for (o, base) in overrides
        .iter()
        .zip(override_bases(source.len(), overrides))
    {
        if let Err(message) = apply_override(&mut root, o, base) {
            c.fatal = true;
            c.push(None, message.to_string(), None);
        }
    }

    let mut plan = RawPlan {
        name: super::spanned::Sp::new(String::new(), 0..0),
        description: None,
        vars: Default::default(),
        matrix: None,
        cell: Default::default(),
        system: Default::default(),
        load: Default::default(),
        check: Vec::new(),
        step: Vec::new(),
        threshold: Vec::new(),
        analysis: Default::default(),
        search: None,
        report: Vec::new(),
        scrape: Vec::new(),
        tls: None,
        key_spans: Default::default(),
    };
    let mut has_name = false;
    for (key, value) in root {
        let key_span = key.span();
        let key = key.into_inner();
        plan.key_spans.insert(key.to_string(), key_span.clone());
        match key.as_ref() {
            "name" => {
                if let Some(v) = c.de(value) {
                    plan.name = v;
                    has_name = true;
                }
            }
            "description" => plan.description = c.de(value),
            "vars" => plan.vars = c.de(value).unwrap_or_default(),
            "matrix" => plan.matrix = c.de(value),
            "cell" => plan.cell = c.de(value).unwrap_or_default(),
            "system" => plan.system = c.de(value).unwrap_or_default(),
            "load" => plan.load = c.de(value).unwrap_or_default(),
            "analysis" => plan.analysis = c.de(value).unwrap_or_default(),
            "search" => plan.search = c.de(value),
            "tls" => plan.tls = c.de(value),
            "check" => plan.check = c.de_each(value),
            "step" => plan.step = c.de_each(value),
            "threshold" => plan.threshold = c.de_each(value),
            "report" => plan.report = c.de_each(value),
            "scrape" => plan.scrape = c.de_each(value),
            other => {
                let hint = did_you_mean(other, TOP_LEVEL_KEYS.iter().copied(), Closeness::Similar)
                    .unwrap_or_else(|| {
                        format!("top-level keys are: {}", TOP_LEVEL_KEYS.join(", "))
                    });
                c.push(Some(key_span), format!("unknown key `{other}`"), Some(hint));
            }
        }
    }
    if !has_name && !plan.key_spans.contains_key("name") {
        c.fatal = true;
        c.push(
            Some(root_span.start..root_span.start),
            "the plan has no `name`",
            Some("add `name = \"my-plan\"` at the top: it names the results folder".into()),
        );
    }
    if c.fatal {
        Err(c.diagnostics)
    } else {
        Ok((plan, c.diagnostics))
    }
}

impl Override {
    /// The argument as written: `KEY=VALUE`.
    pub(crate) fn text(&self) -> String {
        format!("{}={}", self.path.join("."), self.value)
    }
}

/// Where each override's text sits when the overrides are thought of as
/// lines after the plan's own text: spans there are `--set` arguments, and
/// [`super::place_overrides`] turns them into such places.
pub(crate) fn override_bases(source_len: usize, overrides: &[Override]) -> Vec<usize> {
    let mut base = source_len + 1;
    overrides
        .iter()
        .map(|o| {
            let at = base;
            base += o.text().len() + 1;
            at
        })
        .collect()
}

fn apply_override<'i>(
    root: &mut DeTable<'i>,
    o: &'i Override,
    base: usize,
) -> Result<(), OverrideError> {
    let shown = o.path.join(".");
    let key_span = base..base + shown.len();
    let value_span = key_span.end + 1..key_span.end + 1 + o.value.len();
    let value = match DeValue::parse(&o.value) {
        Ok(v) => {
            let mut v = v.into_inner();
            v.make_owned();
            v
        }
        Err(_) => DeValue::String(Cow::Owned(o.value.clone())),
    };
    let Some((last, parents)) = o.path.split_last() else {
        return Err(OverrideError::NoKey);
    };
    // `matrix.X` replaces the values of an axis the plan declares; an axis
    // of its own would only repeat every cell (no template reads it).
    if let [m, axis] = o.path.as_slice()
        && m == "matrix"
    {
        let axes: Vec<&str> = match root.get("matrix").map(|v| v.get_ref()) {
            Some(DeValue::Table(t)) => t.keys().map(|k| k.get_ref().as_ref()).collect(),
            _ => Vec::new(),
        };
        if !axes.contains(&axis.as_str()) {
            let hint =
                did_you_mean(axis, axes.iter().copied(), Closeness::Similar).unwrap_or_else(|| {
                    if axes.is_empty() {
                        "the plan has no [matrix]; add the axis there first".into()
                    } else {
                        format!("its axes are: {}", axes.join(", "))
                    }
                });
            return Err(OverrideError::NoAxis {
                key: shown,
                axis: axis.clone(),
                hint,
            });
        }
    }
    let mut table = root;
    for part in parents {
        let key = Spanned::new(key_span.clone(), Cow::Owned(part.clone()));
        let entry = table
            .entry(key)
            .or_insert_with(|| Spanned::new(key_span.clone(), DeValue::Table(DeTable::new())));
        match entry.get_mut() {
            DeValue::Table(t) => table = t,
            _ => {
                return Err(OverrideError::NotTable {
                    key: shown,
                    part: part.clone(),
                });
            }
        }
    }
    table.insert(
        Spanned::new(key_span, Cow::Owned(last.clone())),
        Spanned::new(value_span, value),
    );
    Ok(())
}
