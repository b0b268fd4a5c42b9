//! JSON bodies of the hub's HTTP API (requests and responses besides the manifest).

use crate::manifest::{Manifest, PluginRef};
use crate::PartFormat;
use ledgerlink_plugin_api::canonical::TrialBalance;
use serde::{Deserialize, Serialize};

/// `text` escaped for one segment of a request path (ids and names in URLs).
pub fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The body of every error response: `{"error": {"code", "message", "details"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error: a stable code, a sentence for people, optional structured details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code (e.g. `part_checksum_mismatch`).
    pub code: String,
    /// What was wrong, for a person.
    pub message: String,
    /// Structured facts (e.g. validation problems, missing parts), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Whether a snapshot is still being uploaded or visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    /// Manifest accepted; parts are being uploaded; not visible to queries.
    Open,
    /// Verified and visible.
    Committed,
}

/// Response to `POST /v1/snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// The content-addressed snapshot id.
    pub snapshot_id: String,
    /// Open or committed.
    pub state: SnapshotState,
    /// Indexes of the parts the hub does not have yet (empty when committed).
    pub missing_parts: Vec<u32>,
}

/// A snapshot as listed in history and returned by commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// The content-addressed snapshot id.
    pub snapshot_id: String,
    /// Open or committed.
    pub state: SnapshotState,
    /// The source the snapshot came from.
    pub source_id: String,
    /// The company id.
    pub company_id: String,
    /// The fiscal year.
    pub fiscal_year: i32,
    /// The agent that uploaded it.
    pub agent_id: String,
    /// The plugin that extracted it.
    pub plugin: PluginRef,
    /// The plugin's change token, when any.
    pub change_token: Option<String>,
    /// Records in all parts.
    pub records: u64,
    /// When the manifest was first received (RFC 3339, UTC).
    pub created_at: String,
    /// When it was committed (RFC 3339, UTC).
    pub committed_at: Option<String>,
    /// True when this is the current snapshot of its company and year.
    pub current: bool,
}

/// Response to `GET /v1/snapshots/{id}`: the summary, what is missing, the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The summary.
    #[serde(flatten)]
    pub summary: SnapshotSummary,
    /// Indexes of the parts the hub does not have yet.
    pub missing_parts: Vec<u32>,
    /// The manifest as accepted.
    pub manifest: Manifest,
}

/// A company as listed by `GET /v1/companies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanySummary {
    /// The source (ERP database) the company comes from.
    pub source_id: String,
    /// The company id within the source.
    pub company_id: String,
    /// Company name, from the latest committed snapshot.
    pub name: String,
    /// Organisation number, when known.
    pub organisation_number: Option<String>,
    /// Company currency.
    pub currency: String,
    /// Fiscal years with committed snapshots.
    pub years: Vec<CompanyYear>,
}

/// One fiscal year of a listed company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyYear {
    /// The fiscal year.
    pub fiscal_year: i32,
    /// Id of the current snapshot.
    pub current_snapshot_id: String,
    /// Committed snapshots of the year (history length).
    pub snapshots: u64,
}

/// Response to `GET /v1/companies/{company}/trial-balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialBalanceResponse {
    /// The snapshot it was computed from (the current one).
    pub snapshot_id: String,
    /// The source.
    pub source_id: String,
    /// The company id.
    pub company_id: String,
    /// The fiscal year.
    pub fiscal_year: i32,
    /// Company currency of every amount.
    pub currency: String,
    /// Per account id: debit, credit, net (exact decimal strings).
    pub accounts: TrialBalance,
}

/// Body of `POST /v1/agents/hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    /// Stable id of the agent.
    pub agent_id: String,
    /// Agent (host) version.
    pub version: String,
    /// Installed plugins.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
}

/// Response to `POST /v1/agents/hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResponse {
    /// The agent id as recorded.
    pub agent_id: String,
    /// Protocol versions the hub speaks.
    pub protocol_versions: Vec<u32>,
    /// Canonical schema versions the hub accepts.
    pub schema_versions: Vec<u32>,
    /// The hub's version.
    pub hub_version: String,
}

/// Response to `GET /v1/capabilities`: what the hub accepts. An agent asks before
/// a sync writes its parts; a hub without this endpoint reads NDJSON parts only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Protocol versions the hub speaks.
    pub protocol_versions: Vec<u32>,
    /// Canonical schema versions the hub accepts.
    pub schema_versions: Vec<u32>,
    /// Part formats the hub reads (`ndjson`, `postcard`); an agent skips names it
    /// does not know.
    pub part_formats: Vec<String>,
    /// The hub's version.
    pub hub_version: String,
}

impl Capabilities {
    /// The part formats the hub reads that this agent knows.
    pub fn known_part_formats(&self) -> Vec<PartFormat> {
        self.part_formats
            .iter()
            .filter_map(|name| PartFormat::ALL.into_iter().find(|f| f.as_str() == name))
            .collect()
    }

    /// The best part format this agent and the hub both know.
    pub fn best_part_format(&self) -> PartFormat {
        PartFormat::best_shared(&self.known_part_formats())
    }
}

/// An agent as listed by `GET /v1/agents`: its latest hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Stable id of the agent.
    pub agent_id: String,
    /// Agent version from the body.
    pub version: String,
    /// The raw `User-Agent` header.
    pub user_agent: String,
    /// Host name from the `User-Agent`, when it had the Ledgerlink form.
    pub host: Option<String>,
    /// Operating system from the `User-Agent`.
    pub os: Option<String>,
    /// Service user from the `User-Agent`.
    pub service_user: Option<String>,
    /// ERP systems from the `User-Agent`.
    pub erp: Option<String>,
    /// Installed plugins.
    pub plugins: Vec<PluginRef>,
    /// When the latest hello arrived (RFC 3339, UTC).
    pub last_seen: String,
}

/// Response to `GET /v1/companies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyList {
    /// Companies with at least one committed snapshot.
    pub companies: Vec<CompanySummary>,
}

/// Response to `GET /v1/companies/{company_id}/snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotList {
    /// Committed snapshots, newest commit first.
    pub snapshots: Vec<SnapshotSummary>,
}

/// Response to `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentList {
    /// Agents with their latest report.
    pub agents: Vec<AgentInfo>,
}
