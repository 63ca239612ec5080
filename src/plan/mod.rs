//! The plan language: raw serde model, parsing with every error collected,
//! templating, matrix expansion, validation, the step graph and the schema.

pub(crate) mod ab;
pub mod data;
mod data_raw;
pub(crate) mod expr;
pub(crate) mod graph;
pub mod matrix;
pub(crate) mod model;
pub(crate) mod order;
pub(crate) mod parse;
pub(crate) mod raw;
pub(crate) mod resolve;
pub mod roles;
pub(crate) mod spanned;
pub(crate) mod suggest;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::*;
pub use order::Visit;
pub use parse::Override;
pub(crate) use raw::CellOrder;
pub use resolve::RunInfo;
pub use roles::{Role, Roles};

use crate::base::units;
use crate::diagnostic::Diagnostic;
use template::{EnvVars, Templates};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan `{}`: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", crate::diagnostic::render_all(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PlanError {
    /// The error as the user sees it: every diagnostic, rendered.
    pub fn render(&self) -> String {
        match self {
            PlanError::Read { .. } => format!("error: {self}\n"),
            PlanError::Invalid(diags) => crate::diagnostic::render_all(diags),
        }
    }
}

#[derive(Default)]
pub struct LoadOptions {
    pub overrides: Vec<Override>,
    /// The run templates see; a placeholder when none is given.
    pub run: Option<RunInfo>,
    /// The environment templates see; the process environment when none.
    pub env: Option<EnvVars>,
}

/// Reads, parses and fully validates a plan file: every cell rendered.
pub(crate) fn load(path: &Path, options: LoadOptions) -> Result<Plan, PlanError> {
    let bytes = read_capped(path).map_err(|error| PlanError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    load_bytes(path, bytes, options)
}

/// The plan's bytes, refusing more than [`crate::base::limits::MAX_PLAN_BYTES`]
/// (a device or a wrong file would otherwise be read until memory runs out).
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let cap = crate::base::limits::MAX_PLAN_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "it is larger than {} (the limit for a plan); is it the right file?",
            units::format_size(cap)
        )));
    }
    Ok(bytes)
}

/// [`load_str`] for a plan's bytes, which must be UTF-8.
pub fn load_bytes(path: &Path, bytes: Vec<u8>, options: LoadOptions) -> Result<Plan, PlanError> {
    match String::from_utf8(bytes) {
        Ok(text) => load_str(path, &text, options),
        Err(e) => Err(PlanError::Invalid(vec![not_utf8(path, e)])),
    }
}

/// Points at the first byte that is not UTF-8.
fn not_utf8(path: &Path, e: std::string::FromUtf8Error) -> Diagnostic {
    let at = e.utf8_error().valid_up_to();
    let byte = e.as_bytes().get(at).copied().unwrap_or_default();
    let shown: Arc<str> = Arc::from(String::from_utf8_lossy(e.as_bytes()).as_ref());
    // The text before `at` is unchanged by the lossy conversion, so `at` is
    // where the replacement character starts.
    let end = (at + char::REPLACEMENT_CHARACTER.len_utf8()).min(shown.len());
    Diagnostic::new(
        path,
        &shown,
        Some(at..end),
        format!("the plan is not valid UTF-8: byte 0x{byte:02x} cannot start or continue a character here"),
    )
    .with_hint("save the plan as UTF-8")
}

pub fn load_str(path: &Path, text: &str, options: LoadOptions) -> Result<Plan, PlanError> {
    let source: Arc<str> = Arc::from(text);
    let (raw, early) = parse::parse_raw(path, &source, &options.overrides)
        .map_err(|d| PlanError::Invalid(place_overrides(d, source.len(), &options.overrides)))?;
    let run = options
        .run
        .unwrap_or_else(|| RunInfo::placeholder(&raw.name.value));
    let templates = Arc::new(Templates::new(
        options.env.unwrap_or_else(EnvVars::from_process),
    ));
    let overrides_text: String = options
        .overrides
        .iter()
        .map(|o| format!("{}={}\n", o.path.join("."), o.value))
        .collect();
    let env_vars = templates.env_vars.clone();
    // Messages may quote rendered values, and so the secrets read.
    let overrides = &options.overrides;
    let masked = |diags: Vec<crate::diagnostic::Diagnostic>| {
        let redactor = crate::base::redact::Redactor::new(&env_vars.secrets());
        let diags = place_overrides(diags, source.len(), overrides);
        PlanError::Invalid(diags.into_iter().map(|d| d.redacted(&redactor)).collect())
    };
    match resolve::resolve(&raw, path, &source, &overrides_text, templates, &run) {
        Ok(plan) if early.is_empty() => Ok(plan),
        Ok(_) => Err(masked(early)),
        Err(later) => {
            let mut all = early;
            all.extend(later);
            all.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
            Err(masked(all))
        }
    }
}

/// Diagnostics whose span lies past the plan's text are about a `--set`
/// argument (see [`parse::override_bases`]): they name it and show it.
fn place_overrides(
    diags: Vec<Diagnostic>,
    source_len: usize,
    overrides: &[Override],
) -> Vec<Diagnostic> {
    let bases = parse::override_bases(source_len, overrides);
    diags
        .into_iter()
        .map(|mut d| {
            let Some(span) = d.span.clone().filter(|s| s.start > source_len) else {
                return d;
            };
            let Some(i) = bases.iter().rposition(|&b| b <= span.start) else {
                return d;
            };
            let text = overrides[i].text();
            d.place = Some(format!("`--set {text}` (argument {})", i + 1));
            d.span = Some(span.start - bases[i]..span.end.saturating_sub(bases[i]));
            d.source = Arc::from(text.as_str());
            d
        })
        .collect()
}

/// The JSON Schema of the plan format, generated from the serde types.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(raw::RawPlan);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
