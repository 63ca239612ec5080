//! loadmatrix: matrices of load tests from one declarative TOML plan.

pub mod engine;
