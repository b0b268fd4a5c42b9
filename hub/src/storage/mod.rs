//! Storage behind two traits: metadata ([`MetadataStore`]) and part bytes ([`BlobStore`]).
//!
//! The embedded implementation is SQLite ([`SqliteStore`]) plus files on disk
//! ([`FsBlobStore`]). The traits are shaped so that PostgreSQL and an
//! S3-compatible object store can implement them later (see
//! `docs/decisions/0005-hub-storage.md`): every metadata change that makes data
//! visible is one method (one transaction), and blobs are addressed by key only.
//! Both traits are synchronous; the server calls them on blocking threads.

mod consent;
mod control;
mod files;
mod identity;
mod sqlite;

pub use consent::{ConsentStore, Scope, SupportAccess, SupportGrant};
pub use control::{
    AgentRow, AuditEntry, CommandRow, CompanyRow, ControlStore, Role, SupportPrincipal, SupportTokenMatch,
    SupportTokenRow, SyncRow, Toggle,
};
pub use files::FsBlobStore;
pub use identity::{AgentKeyRow, AgentKeyStore};
pub use sqlite::SqliteStore;

use ledgerlink_plugin_api::canonical::{Company, TrialBalance};
use ledgerlink_protocol::api::{AgentInfo, CompanySummary, SnapshotState, SnapshotSummary};
use ledgerlink_protocol::Manifest;
use std::collections::BTreeSet;
use std::io::Read;

/// A storage failure (the hub's fault, not the client's).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
    /// The file system or object store failed.
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data does not decode (corruption or a bug).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A tenant name is already taken.
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
}

impl StoreError {
    /// True when the disk (of the blobs or the database) is full.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Io(e) => {
                matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
            }
            StoreError::Database(message) => message.contains("database or disk is full"),
            _ => false,
        }
    }
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// An authenticated tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Internal id; scopes every stored row and blob.
    pub id: i64,
    /// The tenant's name.
    pub name: String,
}

/// A tenant as listed by the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// The tenant's name.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When its key was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// What [`MetadataStore::tenant_by_key_hash`] finds for a key hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMatch {
    /// The tenant the key belongs to.
    pub tenant: Tenant,
    /// The stored hash, for a constant-time comparison by the caller.
    pub key_hash: Vec<u8>,
    /// True when the key was revoked.
    pub revoked: bool,
}

/// A snapshot's stored metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The content-addressed id.
    pub snapshot_id: String,
    /// The manifest as accepted.
    pub manifest: Manifest,
    /// Open or committed.
    pub state: SnapshotState,
    /// When the manifest was first received.
    pub created_at: String,
    /// When it was committed.
    pub committed_at: Option<String>,
    /// Records in all parts (known after commit).
    pub records: u64,
    /// True when it is the current snapshot of its company and year.
    pub current: bool,
    /// Indexes of the parts stored so far.
    pub stored_parts: BTreeSet<u32>,
}

impl SnapshotRecord {
    /// Part indexes of the manifest that are not stored yet.
    pub fn missing_parts(&self) -> Vec<u32> {
        let mut indexes: Vec<u32> = self.manifest.parts.iter().map(|p| p.index).collect();
        indexes.sort_unstable();
        indexes.retain(|i| !self.stored_parts.contains(i));
        indexes
    }

    /// The API summary of the snapshot.
    pub fn summary(&self) -> SnapshotSummary {
        SnapshotSummary {
            snapshot_id: self.snapshot_id.clone(),
            state: self.state,
            source_id: self.manifest.source_id.clone(),
            company_id: self.manifest.company.id.clone(),
            fiscal_year: self.manifest.fiscal_year,
            agent_id: self.manifest.agent_id.clone(),
            plugin: self.manifest.plugin.clone(),
            change_token: self.manifest.change_token.clone(),
            records: self.records,
            created_at: self.created_at.clone(),
            committed_at: self.committed_at.clone(),
            current: self.current,
        }
    }
}

/// How a company is addressed: companies are keyed by source and company id within a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyKey {
    /// The source id.
    pub source_id: String,
    /// The company id within the source.
    pub company_id: String,
}

/// What verification computed for a snapshot, stored when it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitData {
    /// Records in all parts.
    pub records: u64,
    /// Trial balance of the voucher lines.
    pub trial_balance: TrialBalance,
}

/// The stored trial balance of a company's current snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTrialBalance {
    /// The snapshot it belongs to.
    pub snapshot_id: String,
    /// The company record of that snapshot.
    pub company: Company,
    /// The balance.
    pub trial_balance: TrialBalance,
}

/// A version report from an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReport {
    /// The parsed and raw report.
    pub info: AgentInfo,
    /// The raw JSON body, kept for support.
    pub body: String,
}

/// Metadata of tenants, snapshots, companies and agents.
pub trait MetadataStore: Send + Sync + 'static {
    /// Creates a tenant with the hash of its API key.
    fn create_tenant(&self, name: &str, key_hash: &[u8], now: &str) -> StoreResult<()>;
    /// Lists tenants.
    fn list_tenants(&self) -> StoreResult<Vec<TenantRow>>;
    /// Revokes a tenant's key; false when there is no such tenant.
    fn revoke_tenant(&self, name: &str, now: &str) -> StoreResult<bool>;
    /// Finds the tenant whose key hashes to `key_hash`.
    fn tenant_by_key_hash(&self, key_hash: &[u8]) -> StoreResult<Option<KeyMatch>>;

    /// Records a new open snapshot; false when the id is already known. Either way
    /// the snapshot is the newest offer of its company and year now: when it is
    /// committed, it is the current one again.
    fn insert_snapshot(
        &self,
        tenant: &Tenant,
        snapshot_id: &str,
        manifest: &Manifest,
        now: &str,
    ) -> StoreResult<bool>;
    /// A snapshot of the tenant, open or committed.
    fn snapshot(&self, tenant: &Tenant, snapshot_id: &str) -> StoreResult<Option<SnapshotRecord>>;
    /// Notes that a part's bytes are stored durably.
    fn mark_part_stored(&self, tenant: &Tenant, snapshot_id: &str, index: u32, now: &str) -> StoreResult<()>;
    /// Forgets a stored part (its bytes turned out to be damaged).
    fn unmark_part(&self, tenant: &Tenant, snapshot_id: &str, index: u32) -> StoreResult<()>;
    /// Atomically marks an open snapshot committed, and current for its company and
    /// year unless a snapshot of that year offered later is committed already.
    /// Returns false when it was already committed (nothing changes).
    fn commit_snapshot(
        &self,
        tenant: &Tenant,
        snapshot_id: &str,
        data: &CommitData,
        now: &str,
    ) -> StoreResult<bool>;

    /// Companies with at least one committed snapshot.
    fn companies(&self, tenant: &Tenant) -> StoreResult<Vec<CompanySummary>>;
    /// The sources that have a committed snapshot of a company id.
    fn company_sources(&self, tenant: &Tenant, company_id: &str) -> StoreResult<Vec<String>>;
    /// Committed snapshots of a company, newest first, optionally of one year.
    fn history(
        &self,
        tenant: &Tenant,
        company: &CompanyKey,
        year: Option<i32>,
    ) -> StoreResult<Vec<SnapshotSummary>>;
    /// The current snapshot of a company and year.
    fn current(
        &self,
        tenant: &Tenant,
        company: &CompanyKey,
        year: i32,
    ) -> StoreResult<Option<SnapshotRecord>>;
    /// The trial balance of the current snapshot of a company and year.
    fn trial_balance(
        &self,
        tenant: &Tenant,
        company: &CompanyKey,
        year: i32,
    ) -> StoreResult<Option<StoredTrialBalance>>;

    /// Stores an agent's latest version report.
    fn record_agent(&self, tenant: &Tenant, report: &AgentReport) -> StoreResult<()>;
    /// The agents that reported, with their latest report.
    fn agents(&self, tenant: &Tenant) -> StoreResult<Vec<AgentInfo>>;
}

/// Where a part's bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobKey {
    /// The tenant's internal id.
    pub tenant_id: i64,
    /// The snapshot id (64 hex digits).
    pub snapshot_id: String,
    /// The part index.
    pub index: u32,
}

/// Durable storage of part bytes by key (files, or an object store).
pub trait BlobStore: Send + Sync + 'static {
    /// Stores bytes durably (all or nothing) under `key`, replacing what was there.
    fn put(&self, key: &BlobKey, bytes: &[u8]) -> StoreResult<()>;
    /// Opens stored bytes for reading; `None` when nothing is stored under `key`.
    fn open(&self, key: &BlobKey) -> StoreResult<Option<Box<dyn Read + Send>>>;
    /// Removes stored bytes (no error when absent).
    fn delete(&self, key: &BlobKey) -> StoreResult<()>;
}
