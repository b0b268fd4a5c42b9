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

/// A time as the hub writes every timestamp it stores or answers: RFC 3339, UTC,
/// milliseconds (`2026-12-07T19:00:00.000Z`). One fixed width, so stored
/// timestamps compare as text (grant expiry, command expiry).
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The hub's time now, as [`timestamp`] writes it.
pub fn now() -> String {
    timestamp(chrono::Utc::now())
}
