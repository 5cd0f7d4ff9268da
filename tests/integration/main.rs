//! The integration test binary (one binary keeps link time down); topics are modules.

mod append_scan;
mod bad_input;
mod cli;
#[cfg(feature = "ballista")]
mod cluster;
mod common;
mod coverage;
mod facade;
mod format_fixture;
mod gapfill;
mod ingest;
mod log_contract;
mod log_evolution;
mod maintenance;
mod maintenance_model;
mod readme;
mod reliability;
mod s3;
mod simulation;
mod sql;
mod sql_coverage;
mod sql_differential;
mod sql_examples;
mod statements;
