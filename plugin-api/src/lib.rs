//! The stable interface between the Ledgerlink host and its ERP extractor plugins.
//!
//! A partner depends on this crate and nothing else of Ledgerlink's:
//! - [`canonical`] is the accounting schema every plugin produces (SAF-T inspired);
//! - [`sdk`] is the plain Rust trait a partner implements, plus [`export_plugin!`];
//! - [`abi`] is the `abi_stable` boundary itself, used by the SDK and by the host.

pub mod abi;
pub mod canonical;
pub mod sdk;

pub use abi::{ErrorKind, LogLevel, PluginError, API_VERSION};
pub use canonical::Entity;
pub use canonical::RecordBatch;
pub use sdk::{Batches, Capability, EncodedBatch, EncodedBatches, ExtractRequest, Host, Manifest, Plugin};

/// Re-exports the macros of `export_plugin!` needs, so a plugin need not depend on them.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}
