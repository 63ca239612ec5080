//! loadmatrix: matrices of load tests from one declarative TOML plan.

pub mod analysis;
pub mod base;
pub mod cancel;
pub mod cli;
pub mod commands;
pub mod demo_target;
pub mod diagnostic;
pub mod engine;
pub mod error;
pub mod exit_code;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod results;
pub mod run;
pub mod scrape;
pub mod search;
pub mod steps;
pub mod system;
pub mod tls;
