//! Report rendering helpers: charts for the Markdown report and SVG files.

pub mod charts;
