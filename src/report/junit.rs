//! junit.xml: one testcase per threshold per scope (each cell, or the run),
//! failures carrying the measured value, for CI test tabs.

use std::fmt::Write as _;

use crate::analysis::ThresholdResult;

use super::xml::escape;

pub(crate) fn junit_xml(plan: &str, results: &[ThresholdResult]) -> String {
    let failures = results.iter().filter(|r| !r.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"loadmatrix {p}\" tests=\"{n}\" failures=\"{failures}\">",
        p = escape(plan),
        n = results.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{p} thresholds\" tests=\"{n}\" failures=\"{failures}\">",
        p = escape(plan),
        n = results.len()
    );
    for r in results {
        let scope = r.cell.clone().unwrap_or_else(|| "run".into());
        let _ = write!(
            out,
            "    <testcase classname=\"{}.{}\" name=\"{}\"",
            escape(plan),
            escape(&scope),
            escape(&r.threshold)
        );
        if r.passed {
            let _ = writeln!(
                out,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                escape(&r.detail)
            );
        } else {
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\" type=\"threshold\">{}: {}</failure>\n    </testcase>",
                escape(&r.detail),
                escape(&r.threshold),
                escape(&r.detail)
            );
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::raw::Scope;

    #[test]
    fn one_testcase_per_threshold_and_scope_with_measured_values() {
        let results = vec![
            ThresholdResult {
                threshold: "p95 < 500ms".into(),
                scope: Scope::Cell,
                cell: Some("users8".into()),
                passed: true,
                detail: "p95 = 20.0ms (limit < 500ms)".into(),
            },
            ThresholdResult {
                threshold: "p95 < 500ms".into(),
                scope: Scope::Cell,
                cell: Some("users32".into()),
                passed: false,
                detail: "p95 = 612.3ms (limit < 500ms)".into(),
            },
            ThresholdResult {
                threshold: "max(rps) >= 100".into(),
                scope: Scope::Run,
                cell: None,
                passed: true,
                detail: "max(rps) = 739.2/s (limit >= 100)".into(),
            },
        ];
        let xml = junit_xml("q<s>", &results);
        assert!(
            xml.contains("<testsuites name=\"loadmatrix q&lt;s&gt;\" tests=\"3\" failures=\"1\">"),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(xml.contains("classname=\"q&lt;s&gt;.users32\" name=\"p95 &lt; 500ms\""));
        assert!(xml.contains("<failure message=\"p95 = 612.3ms (limit &lt; 500ms)\""));
        assert!(xml.contains("classname=\"q&lt;s&gt;.run\" name=\"max(rps) &gt;= 100\""));
    }
}
