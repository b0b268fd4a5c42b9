//! The Ledgerlink connector host: loads ERP plugins, extracts, validates and uploads.
//!
//! The binary `ledgerlink` is a thin shell over this library; integration tests
//! and benchmarks use the library directly.

pub mod cli;
pub mod exit;
pub mod logging;
pub mod plugins;
