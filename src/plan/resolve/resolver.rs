//! The state every pass shares: where the plan lives, the templates, the
//! errors found so far (each once, with the cells it appeared in), and the
//! field readers that render, type and range-check a value or record why not.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use minijinja::Value;

use crate::diagnostic::Diagnostic;
use crate::plan::raw::RawPlan;
use crate::plan::spanned::{Count, FieldKind, Scalar, Text, Tmpl};
use crate::plan::suggest::{Closeness, did_you_mean};
use crate::plan::template::Templates;

type ErrorKey = (usize, usize, String, Option<String>);

pub(super) struct Resolver<'a> {
    pub(super) dir: &'a Path,
    pub(super) source: &'a Arc<str>,
    pub(super) templates: &'a Templates,
    /// Identical errors from many cells are reported once, naming the cells.
    pub(super) errors: IndexMap<ErrorKey, Vec<String>>,
    pub(super) cell: Option<String>,
    pub(super) axes: Vec<String>,
    pub(super) var_names: Vec<String>,
}

impl Resolver<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        let cells = self
            .errors
            .entry((span.start, span.end, message, hint))
            .or_default();
        if let Some(c) = &self.cell {
            cells.push(c.clone());
        }
    }

    /// Renders a string that may be a template; errors point inside it.
    pub(super) fn render(
        &mut self,
        text: &str,
        span: &Range<usize>,
        what: &str,
        ctx: &Value,
    ) -> Option<String> {
        if !crate::plan::spanned::is_template(text) {
            return Some(text.to_owned());
        }
        match self.templates.render(text, ctx) {
            Ok(s) => Some(s),
            Err(e) => {
                let (inner, message, hint) = self.explain_template_error(text, &e, what);
                let span = inner
                    .and_then(|r| self.inner_span(span, text, r))
                    .unwrap_or_else(|| span.clone());
                self.error(span, message, hint);
                None
            }
        }
    }

    /// Maps a range inside a template string to the file, when the string is
    /// written without escapes (so offsets line up).
    pub(super) fn inner_span(
        &self,
        span: &Range<usize>,
        text: &str,
        inner: Range<usize>,
    ) -> Option<Range<usize>> {
        let token = self.source.get(span.clone())?;
        let quote = if token.starts_with("\"\"\"") || token.starts_with("'''") {
            3
        } else if token.starts_with('"') || token.starts_with('\'') {
            1
        } else {
            return None;
        };
        let content = token.get(quote..token.len().checked_sub(quote)?)?;
        (content == text && inner.end <= text.len())
            .then(|| span.start + quote + inner.start..span.start + quote + inner.end)
    }

    fn explain_template_error(
        &self,
        text: &str,
        e: &minijinja::Error,
        what: &str,
    ) -> (Option<Range<usize>>, String, Option<String>) {
        let range = e.range();
        let snippet = range.clone().and_then(|r| text.get(r)).unwrap_or("").trim();
        let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            let path: Vec<&str> = snippet.split('.').map(str::trim).collect();
            let (message, hint) = match path.as_slice() {
                ["env", var, ..] => (
                    format!("`{what}` reads the environment variable `{var}`, which is not set"),
                    Some(format!(
                        "export {var}=... before running, or write `{{{{ env.{var} | default(\"\") }}}}`"
                    )),
                ),
                ["matrix", key, ..] => (
                    format!("`{what}` uses `matrix.{key}`, but the matrix has no axis `{key}`"),
                    did_you_mean(
                        key,
                        self.axes.iter().map(String::as_str),
                        Closeness::Similar,
                    )
                    .map(|h| {
                        h.replace('`', "")
                            .replace("did you mean ", "did you mean `matrix.")
                    })
                    .map(|h| format!("{}`?", h.trim_end_matches('?')))
                    .or_else(|| Some(format!("the axes are: {}", list_or_none(&self.axes)))),
                ),
                ["vars", key, ..] => (
                    format!("`{what}` uses `vars.{key}`, which is not defined in [vars]"),
                    did_you_mean(
                        key,
                        self.var_names.iter().map(String::as_str),
                        Closeness::Similar,
                    )
                    .map(|h| h.replace("did you mean `", "did you mean `vars."))
                    .or_else(|| Some(format!("the vars are: {}", list_or_none(&self.var_names)))),
                ),
                _ => (
                    format!("`{what}` uses `{snippet}`, which is undefined here"),
                    Some("templates see matrix, vars, env, cell and run".into()),
                ),
            };
            return (range, message, hint);
        }
        if e.kind() == minijinja::ErrorKind::OutOfFuel {
            return (
                None,
                format!(
                    "`{what}` does too much work: rendering it ran out of its budget of {} steps",
                    crate::base::limits::thousands(u128::from(crate::base::limits::TEMPLATE_FUEL))
                ),
                Some(
                    "templates compute plan values; move large loops and data out of the plan"
                        .into(),
                ),
            );
        }
        if e.detail() == Some(crate::plan::template::output_limit_message().as_str()) {
            return (
                None,
                format!("`{what}` {}", crate::plan::template::output_limit_message()),
                Some("templates compute plan values; generate large bodies or files outside the plan".into()),
            );
        }
        (
            range,
            format!("template error in `{what}`: {}{detail}", e.kind()),
            None,
        )
    }

    pub(super) fn text(&mut self, t: &Text, what: &str, ctx: &Value) -> Option<String> {
        match &t.raw {
            Scalar::Str(s) => self.render(s, &t.span, what, ctx),
            other => String::parse(other).ok(),
        }
    }

    pub(super) fn opt_text(
        &mut self,
        t: &Option<Text>,
        what: &str,
        ctx: &Value,
    ) -> Option<Option<String>> {
        match t {
            Some(t) => self.text(t, what, ctx).map(Some),
            None => Some(None),
        }
    }

    pub(super) fn texts(&mut self, list: &[Text], what: &str, ctx: &Value) -> Option<Vec<String>> {
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, t) in list.iter().enumerate() {
            match self.text(t, &format!("{what}[{i}]"), ctx) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn typed<T: FieldKind>(
        &mut self,
        t: &Tmpl<T>,
        what: &str,
        ctx: &Value,
    ) -> Option<T> {
        let (value, rendered) = match &t.raw {
            Scalar::Str(s) if crate::plan::spanned::is_template(s) => {
                let r = self.render(s, &t.span, what, ctx)?;
                (Scalar::Str(r.clone()), Some(r))
            }
            other => (other.clone(), None),
        };
        match T::parse(&value) {
            Ok(v) => Some(v),
            Err(msg) => {
                let message = match rendered {
                    Some(r) => format!("`{what}` renders to \"{r}\": {msg}"),
                    None => format!("`{what}`: {msg}"),
                };
                self.error(t.span.clone(), message, None);
                None
            }
        }
    }

    pub(super) fn opt_typed<T: FieldKind>(
        &mut self,
        t: &Option<Tmpl<T>>,
        what: &str,
        ctx: &Value,
    ) -> Option<Option<T>> {
        match t {
            Some(t) => self.typed(t, what, ctx).map(Some),
            None => Some(None),
        }
    }

    pub(super) fn at_least<T: FieldKind + PartialOrd + std::fmt::Debug>(
        &mut self,
        t: &Tmpl<T>,
        what: &str,
        ctx: &Value,
        min: T,
        rule: &str,
    ) -> Option<T> {
        let v = self.typed(t, what, ctx)?;
        if v < min {
            self.error(t.span.clone(), format!("`{what}` must be {rule}"), None);
            return None;
        }
        Some(v)
    }

    /// `value` of `t`, or an error naming the limit when it is above `max`.
    pub(super) fn at_most<T: FieldKind + PartialOrd + std::fmt::Display>(
        &mut self,
        t: &Tmpl<T>,
        what: &str,
        value: T,
        max: T,
    ) -> Option<T> {
        if value > max {
            self.error(
                t.span.clone(),
                format!("`{what}` is {value}; the limit is {max}"),
                None,
            );
            return None;
        }
        Some(value)
    }

    pub(super) fn positive_duration(
        &mut self,
        t: &Tmpl<Duration>,
        what: &str,
        ctx: &Value,
    ) -> Option<Duration> {
        let d = self.typed(t, what, ctx)?;
        if d.is_zero() {
            self.error(
                t.span.clone(),
                format!("`{what}` must be longer than 0s"),
                Some("write e.g. \"30s\"".into()),
            );
            return None;
        }
        Some(d)
    }

    pub(super) fn key_span(&self, raw: &RawPlan, key: &str) -> Range<usize> {
        raw.key_spans.get(key).cloned().unwrap_or(0..0)
    }
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

pub(super) fn check_url(r: &mut Resolver<'_>, url: &str, span: &Range<usize>, what: &str) {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        r.error(
            span.clone(),
            format!("`{what}` \"{url}\" is not an http:// URL"),
            Some("write it like \"http://127.0.0.1:8080\"".into()),
        );
    }
    if let Some(shown) = without_userinfo(url) {
        r.error(
            span.clone(),
            format!("`{what}` \"{shown}\" carries a user name or password before `@`"),
            Some(
                "credentials in a URL end up in logs and are not sent as you expect; remove them and send a header instead, e.g. headers = { Authorization = \"Basic {{ env.BASIC_AUTH }}\" }"
                    .into(),
            ),
        );
    }
}

/// The URL with its user information masked, when it has any.
fn without_userinfo(url: &str) -> Option<String> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..end].rfind('@')? + start;
    Some(format!("{}***{}", &url[..start], &url[at..]))
}

pub(super) fn status_code(
    r: &mut Resolver<'_>,
    t: &Tmpl<Count>,
    what: &str,
    ctx: &Value,
) -> Option<u16> {
    let Count(code) = r.typed(t, what, ctx)?;
    if !(100..=599).contains(&code) {
        r.error(
            t.span.clone(),
            format!("`{what}` {code} is not an HTTP status (100-599)"),
            None,
        );
        return None;
    }
    Some(code as u16)
}

/// The collected errors as diagnostics, in file order, each naming the cells
/// it appeared in.
pub(super) fn into_diagnostics(
    errors: IndexMap<ErrorKey, Vec<String>>,
    file: &Path,
    source: &Arc<str>,
    cell_count: usize,
) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = errors
        .into_iter()
        .map(|((start, end, message, hint), cells)| {
            let span = (end > start || start > 0).then_some(start..end);
            let mut d = Diagnostic::new(file, source, span, message);
            d.hint = hint;
            match cells.len() {
                0 => {}
                _ if cell_count == 1 => {}
                n if n == cell_count => {
                    d.notes.push(format!("in every cell ({n})"));
                }
                1 => d.notes.push(format!("in cell {}", cells[0])),
                n => {
                    let shown: Vec<&str> = cells.iter().take(3).map(String::as_str).collect();
                    let more = if n > 3 {
                        format!(" and {} more", n - 3)
                    } else {
                        String::new()
                    };
                    d.notes.push(format!("in cells {}{more}", shown.join(", ")));
                }
            }
            d
        })
        .collect();
    out.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
    out
}
