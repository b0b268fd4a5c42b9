//! The Ledgerlink connector host: loads ERP plugins, extracts, validates and uploads.
//!
//! The binary `ledgerlink` is a thin shell over this library; integration tests
//! and benchmarks use the library directly.

pub mod cli;
pub mod config;
pub mod control;
pub mod crash_point;
pub mod exit;
pub mod hub_client;
pub mod identity;
pub mod jobs;
pub mod key_file;
pub mod logging;
pub mod pipeline;
pub mod plugins;
pub mod schedule;
pub mod service;
pub mod spool;
pub mod state;
pub mod worker;
