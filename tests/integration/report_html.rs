//! report.html carries what report.md carries: for a capacity search, a
//! streaming mix and a scraped service, every section is in the DOM a real
//! Chromium builds from it, and every link to a cell's page opens a file.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// report.html of `dir` as Chromium's DOM; panics unless every id in
/// `sections` is there and every cell link names a file that exists.
fn check_report(browser: &Path, dir: &Path, sections: &[&str]) -> String {
    let html_path = dir.join("report.html");
    assert!(html_path.is_file(), "no report.html in {}", dir.display());
    let url = format!("file://{}", html_path.display());
    let dom = run_chromium(browser, &["--dump-dom", &url], Duration::from_secs(60));
    for id in sections {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "section `{id}` missing from report.html of {}",
            dir.display()
        );
    }
    let links: Vec<&str> = dom
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| !href.starts_with('#'))
        .collect();
    let measured = manifest(dir)["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "complete")
        .count();
    assert_eq!(
        links.len(),
        measured,
        "one link per measured cell: {links:?}"
    );
    for href in links {
        assert!(
            href.starts_with("cells/") && href.ends_with("/cell.md"),
            "a link out of the run folder: {href}"
        );
        assert!(dir.join(href).is_file(), "the link {href} opens nothing");
    }
    dom
}

#[test]
fn report_html_of_a_capacity_search_has_the_frontier_timeline_and_cell_links() {
    let Some(browser) =
        chromium("report_html_of_a_capacity_search_has_the_frontier_timeline_and_cell_links")
    else {
        return;
    };
    // 4 slots of 50 ms: 12 users answer in 150 ms, 13 in 200 ms.
    let plan = r#"
name = "html-search"
[matrix]
replicas = [1, 2]
[cell]
duration = "1s"
warmup = "0s"
[system]
backend = "local"
replicas = "{{ matrix.replicas }}"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "4", "--service-time", "50ms", "--jitter", "fixed"]
ready = { path = "/health", timeout = "10s" }
[load]
think_time = "0s"
[[load.request]]
name = "predict"
method = "POST"
path = "/predict"
body = "{}"
[search]
over = "users"
from = 8
to = 16
tolerance = "10%"
slo = { p95 = "175ms" }
[analysis]
baseline = "0s"
"#;
    let run = run_plan("html-search", plan, &[]);
    assert!(run.output.status.success(), "{}", stderr(&run.output));
    let dom = check_report(
        &browser,
        &run.dir,
        &[
            "capacity-frontier",
            "capacity-table",
            "frontier-chart",
            "timeline",
            "timeline-rps",
            "summary-table",
            "answers",
        ],
    );
    // The frontier's figures are capacity.csv's.
    let csv = std::fs::read_to_string(run.dir.join("capacity.csv")).unwrap();
    let one = csv.lines().find(|l| l.starts_with("1,")).unwrap();
    let capacity = one.split(',').nth(2).unwrap();
    let table = dom
        .split("id=\"capacity-table\"")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(
        table.contains(&format!("<td>1</td><td>{capacity}</td>")),
        "{capacity} not in {table}"
    );
}

#[test]
fn report_html_of_a_streaming_mix_has_streaming_and_per_name_sections() {
    let Some(browser) =
        chromium("report_html_of_a_streaming_mix_has_streaming_and_per_name_sections")
    else {
        return;
    };
    let plan = r#"
name = "html-streaming"
[matrix]
users = [2]
[cell]
duration = "2s"
warmup = "0s"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "4", "--first-token", "50ms", "--token-time", "10ms"]
ready = { path = "/health", timeout = "10s" }
[load]
users = "{{ matrix.users }}"
[[load.request]]
name = "generate"
method = "POST"
path = "/v1/completions"
body = '{"prompt": "hi", "max_tokens": 8, "stream": true}'
stream = "sse"
[[load.request]]
name = "health"
path = "/health"
[analysis]
slo = { ttft = "300ms" }
baseline = "0s"
"#;
    let run = run_plan("html-streaming", plan, &[]);
    assert!(run.output.status.success(), "{}", stderr(&run.output));
    let dom = check_report(
        &browser,
        &run.dir,
        &[
            "streaming",
            "streaming-table",
            "by-name",
            "by-name-table",
            "timeline",
        ],
    );
    for name in ["generate", "health"] {
        assert!(
            dom.contains(&format!("data-name=\"{name}\"")),
            "no per-name row for {name}"
        );
    }
}

#[test]
fn report_html_of_a_scraped_service_is_inside_the_service_and_on_the_network() {
    let Some(browser) =
        chromium("report_html_of_a_scraped_service_is_inside_the_service_and_on_the_network")
    else {
        return;
    };
    let plan = r#"
name = "html-scrape"
[matrix]
users = [2, 4]
[cell]
duration = "2s"
warmup = "0s"
[system]
backend = "local"
replicas = 1
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--slots", "2", "--service-time", "20ms"]
ready = { path = "/health", timeout = "10s" }
[load]
users = "{{ matrix.users }}"
[[load.request]]
method = "POST"
path = "/predict"
body = "{}"
[analysis]
baseline = "0s"
[[scrape]]
name = "model"
path = "/metrics"
interval = "500ms"
series = [
  { metric = "demo_requests_total", agg = "rate", as = "server_rps" },
  { metric = "demo_request_duration_seconds", agg = "p95", as = "server_p95" },
]
"#;
    let run = run_plan("html-scrape", plan, &[]);
    assert!(run.output.status.success(), "{}", stderr(&run.output));
    let dom = check_report(
        &browser,
        &run.dir,
        &["inside-the-service", "scrape-table", "network", "timeline"],
    );
    assert!(dom.contains("<th>server_p95</th>"), "no scraped column");
}
