//! Outputs derived from a run: summary files, Markdown reports from
//! minijinja templates, charts and junit.xml.

pub mod cells;
pub mod charts;
pub mod frontier;
pub mod junit;
pub mod render;
pub mod scraped;
pub mod table;
pub mod timeline;
pub mod xml;

pub use render::{EMBEDDED, ReportError, embedded, render_reports, write_summary};
pub use table::table;
