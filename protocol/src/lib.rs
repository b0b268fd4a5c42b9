//! Wire types of the Ledgerlink upload protocol ("protocol 1"), shared by the host and the hub.
//!
//! The protocol is written down in `docs/protocol.md`. This crate holds the
//! manifest ([`Manifest`]), the snapshot id ([`snapshot_id`]), the part codec
//! (zstd-compressed NDJSON or postcard blocks: [`PartFormat`], [`PartWriter`],
//! [`PartReader`]) and the JSON bodies
//! of the hub's HTTP API ([`api`]). It depends on no HTTP or async crate, so an
//! agent can use it with any client.

pub mod api;
pub mod control;
pub mod identity;
mod line_json;
mod manifest;
mod part;

pub use manifest::{
    canonical_manifest_bytes, snapshot_id, validate_manifest, Manifest, ManifestError, ManifestLimits,
    PartInfo, PluginRef,
};
pub use part::{
    encode_part, sha256_hex, write_batch_ndjson, EncodedPart, PartError, PartFormat, PartReader, PartWriter,
    DEFAULT_MAX_LINE_BYTES, MAX_BLOCK_BYTES,
};

/// The protocol version this crate speaks; the manifest's `protocol_version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Media type of an uploaded part: a zstd frame (of NDJSON or postcard blocks, see [`PartFormat`]).
pub const PART_CONTENT_TYPE: &str = "application/zstd";

/// Media type of an entity download: uncompressed NDJSON.
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";
