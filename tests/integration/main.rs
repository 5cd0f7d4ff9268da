//! The integration test binary (one binary keeps link time down); topics are modules.

mod common;
mod smoke;
