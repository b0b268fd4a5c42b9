//! The Ledgerlink hub: the reference central server for verified ingest, storage and queries.
//!
//! The binary `ledgerlink-hub` is a thin wrapper around [`cli::run`]. The upload
//! protocol is described in `docs/protocol.md`; the HTTP API in `hub/openapi.json`.

pub mod admin;
pub mod admin_cli;
pub mod api;
pub mod auth;
pub mod cli;
pub mod consent;
pub mod console;
pub mod control;
pub mod error;
pub mod identity;
pub mod ingest;
pub mod saft;
pub mod server;
pub mod storage;
