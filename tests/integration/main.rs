//! The integration test binary (one binary keeps link time down); topics are modules.

mod append_scan;
mod common;
mod log_contract;
mod smoke;
