//! `loadmatrix compare BASE NEW`: the regression gate between two runs.

use std::path::Path;

use crate::analysis::compare::{deltas, markdown};
use crate::error::RunError;
use crate::results::{self, SummaryRow};

fn rows(dir: &Path) -> Result<Vec<SummaryRow>, RunError> {
    let manifest = results::read_manifest(dir)?;
    Ok(results::load_rows(dir, &manifest))
}

pub fn compare(base: &Path, new: &Path, max_regression: &str) -> Result<(), RunError> {
    let bound = crate::plan::units::parse_percent(max_regression)
        .map_err(|e| RunError::Usage(format!("--max-regression: {e}")))?;
    let (b, n) = (rows(base)?, rows(new)?);
    let (d, unmatched) = deltas(&b, &n, bound);
    print!("{}", markdown(&d, &unmatched, bound));
    match d.iter().filter(|d| d.regressed).count() {
        0 => Ok(()),
        n => Err(RunError::Thresholds(n)),
    }
}
