//! The plan language: raw serde model, parsing with every error collected,
//! templating, matrix expansion, validation, the step graph and the schema.

pub(crate) mod expr;
pub(crate) mod graph;
pub mod matrix;
pub(crate) mod model;
pub(crate) mod parse;
pub(crate) mod random;
pub(crate) mod raw;
pub(crate) mod resolve;
pub(crate) mod spanned;
pub(crate) mod suggest;
pub mod template;
pub(crate) mod units;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::*;
pub use parse::Override;
pub use resolve::RunInfo;

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
    let text = std::fs::read_to_string(path).map_err(|error| PlanError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    load_str(path, &text, options)
}

pub fn load_str(path: &Path, text: &str, options: LoadOptions) -> Result<Plan, PlanError> {
    let source: Arc<str> = Arc::from(text);
    let raw = parse::parse_raw(path, &source, &options.overrides).map_err(PlanError::Invalid)?;
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
    resolve::resolve(&raw, path, &source, &overrides_text, templates, &run).map_err(|diags| {
        // Messages may quote rendered values, and so the secrets read.
        let redactor = crate::redact::Redactor::new(&env_vars.secrets());
        PlanError::Invalid(diags.into_iter().map(|d| d.redacted(&redactor)).collect())
    })
}

/// The JSON Schema of the plan format, generated from the serde types.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(raw::RawPlan);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
