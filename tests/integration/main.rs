//! All integration tests in one binary, so polars and the rest are linked
//! once instead of once per file. Each module is one area; `common` holds the
//! helpers they share. Snapshots live in tests/integration/snapshots, named
//! `integration__<module>__<name>.snap`; fixtures stay in tests/plans,
//! tests/fixtures and tests/fuzz-corpus.

mod common;

mod ab;
mod ab_order;
mod analysis_findings;
mod answers;
mod cli;
mod compose_lb;
mod docker_backend;
mod docker_run;
mod faults;
mod fuzz_plans;
mod gate;
mod live;
mod llm_data;
mod llm_rows;
mod load_edges;
mod locust_driver;
mod locust_faults;
mod locust_run;
mod no_panic;
mod plan_fixtures;
mod report_html;
mod report_snapshots;
mod report_stop;
mod resume;
mod run_local;
mod run_semantics;
mod schema;
mod scrape;
mod search;
mod secrets;
mod streaming;
mod tls;
mod tls_demo;
mod truth_engines;
mod truth_mix;
mod truth_open;
mod truth_streaming;
mod validate_limits;
mod watch;
