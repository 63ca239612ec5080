//! The raw (as written) form of `synthetic` request rows.

use schemars::JsonSchema;
use serde::Deserialize;

use super::spanned::{Count, Number, Tmpl};

/// Generated rows: `row.prompt` (that many words), `row.prompt_tokens`, `row.max_tokens`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyntheticSection {
    /// How many rows to generate (at most 1000000).
    pub(crate) rows: Tmpl<Count>,
    /// Prompt length in words (tokens of the demo target).
    pub(crate) prompt_tokens: LengthsSection,
    /// `row.max_tokens`.
    pub(crate) output_tokens: LengthsSection,
    /// Same seed, same rows (default 1).
    #[serde(default)]
    pub(crate) seed: Option<Tmpl<Count>>,
}

/// A normal distribution clipped to `[min, max]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LengthsSection {
    pub(crate) mean: Tmpl<Number>,
    #[serde(default)]
    pub(crate) stddev: Option<Tmpl<Number>>,
    #[serde(default)]
    pub(crate) min: Option<Tmpl<Count>>,
    #[serde(default)]
    pub(crate) max: Option<Tmpl<Count>>,
}
