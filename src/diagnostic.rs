//! Errors a user can act on: `file:line:col: message`, the offending line, an
//! underline, and a hint.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One problem in one source file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub source: Arc<str>,
    /// Byte range in `source`; `None` when the problem has no place (a missing key).
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: Option<String>,
    /// Extra context lines, e.g. which matrix cells the problem appeared in.
    pub notes: Vec<String>,
    /// Where the problem is, said instead of `file:line:col` when the text
    /// is not a file (a `--set` argument).
    pub place: Option<String>,
}

impl Diagnostic {
    pub fn new(
        file: &Path,
        source: &Arc<str>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            source: source.clone(),
            // Kept as given (clamped when shown): a span past the end of the
            // plan may name a `--set` argument, see `plan::place_overrides`.
            span,
            message: message.into(),
            hint: None,
            notes: Vec::new(),
            place: None,
        }
    }

    /// The same problem with every secret masked in what it says.
    pub(crate) fn redacted(mut self, redactor: &crate::base::redact::Redactor) -> Self {
        self.message = redactor.redact(&self.message);
        self.hint = self.hint.map(|h| redactor.redact(&h));
        for n in &mut self.notes {
            *n = redactor.redact(n);
        }
        self
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// 1-based line and column (in characters) of the start of the span.
    pub fn line_col(&self) -> (usize, usize) {
        let start = self.span.as_ref().map_or(0, |s| s.start);
        line_col(&self.source, start)
    }

    /// The full human rendering, without colour.
    pub fn render(&self) -> String {
        self.render_at(self.line_col())
    }

    /// [`Self::render`] with the line and column already known.
    fn render_at(&self, (line, col): (usize, usize)) -> String {
        let mut out = String::new();
        match &self.place {
            Some(place) => {
                let _ = writeln!(out, "{place}: error: {}", self.message);
            }
            None => {
                let _ = writeln!(
                    out,
                    "{}:{}:{}: error: {}",
                    self.file.display(),
                    line,
                    col,
                    self.message
                );
            }
        }
        if let Some(span) = self.span.clone().map(|s| clamp_span(&self.source, s)) {
            let span = &span;
            let line_start = self.source[..span.start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = self.source[span.start..]
                .find('\n')
                .map_or(self.source.len(), |i| span.start + i);
            let text = self.source[line_start..line_end].trim_end_matches('\r');
            let gutter = line.to_string().len();
            let prefix_width = self.source[line_start..span.start].chars().count();
            let underline_end = span.end.min(line_end).max(span.start);
            let width = self.source[span.start..underline_end]
                .chars()
                .count()
                .max(1);
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{line:>gutter$} | {text}");
            let _ = writeln!(
                out,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(prefix_width),
                "^".repeat(width)
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "  = note: {note}");
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}

/// Renders every diagnostic and a closing count line.
pub fn render_all(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    // One index of line starts per source, so many errors in a large file
    // cost a binary search each rather than a scan from the top.
    let mut lines: Option<(&Arc<str>, LineIndex)> = None;
    for d in diagnostics {
        if !matches!(&lines, Some((source, _)) if Arc::ptr_eq(source, &d.source)) {
            lines = Some((&d.source, LineIndex::new(&d.source)));
        }
        let Some((_, index)) = &lines else { continue };
        let start = d.span.as_ref().map_or(0, |s| s.start);
        out.push_str(&d.render_at(index.line_col(&d.source, start)));
        out.push('\n');
    }
    let n = diagnostics.len();
    let _ = writeln!(out, "{n} error{}", if n == 1 { "" } else { "s" });
    out
}

/// Byte offsets where each line of a source starts.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    /// Same as [`line_col`].
    fn line_col(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(source, offset.min(source.len()));
        let line = self.0.partition_point(|&start| start <= offset);
        let line_start = self.0[line - 1];
        (line, source[line_start..offset].chars().count() + 1)
    }
}

pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn clamp_span(source: &str, span: Range<usize>) -> Range<usize> {
    let start = floor_char_boundary(source, span.start.min(source.len()));
    let end = ceil_char_boundary(source, span.end.clamp(start, source.len()));
    start..end
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_column_and_underline() {
        let src: Arc<str> = Arc::from("name = \"x\"\nusers = \"many\"\n");
        let d = Diagnostic::new(Path::new("p.toml"), &src, Some(19..25), "not a count")
            .with_hint("write a whole number");
        assert_eq!(
            d.render(),
            "p.toml:2:9: error: not a count\n  |\n2 | users = \"many\"\n  |         ^^^^^^\n  = hint: write a whole number\n"
        );
    }

    #[test]
    fn spans_off_char_boundaries_do_not_panic() {
        let src: Arc<str> = Arc::from("a = \"é\"");
        let d = Diagnostic::new(Path::new("p.toml"), &src, Some(6..7), "x");
        assert!(d.render().contains("p.toml:1:"));
        let d = Diagnostic::new(Path::new("p.toml"), &src, Some(100..200), "x");
        assert!(d.render().contains("p.toml:1:"));
    }
}
