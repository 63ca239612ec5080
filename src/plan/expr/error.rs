//! Parse errors with a span into the expression, and how they render.

use super::Span;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ParseError {
    pub(crate) span: Span,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl ParseError {
    pub(super) fn new(span: Span, message: impl Into<String>) -> Self {
        ParseError {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub(super) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The offending line of `src` with the span underlined, then the
    /// message and hint.
    pub(crate) fn render(&self, src: &str) -> String {
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

/// The text of `span` in `src`, or "" if the span does not belong to `src`.
pub(crate) fn snippet<'a>(src: &'a str, span: &Span) -> &'a str {
    src.get(span.clone()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::super::testing::parse_err;

    #[test]
    fn render_underlines_the_span() {
        let src = "p95 < 500 ms";
        let out = parse_err(src).render(src);
        assert_eq!(
            out,
            "p95 < 500 ms\n      ^^^^^^ unexpected space between number and unit\nhint: write `500ms`"
        );
    }
}
