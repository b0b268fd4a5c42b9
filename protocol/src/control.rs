//! The control channel: messages between a hub and the agents connected to it.
//!
//! An agent keeps one outbound connection per tenant (WebSocket, Server-Sent
//! Events or long-polling; `docs/protocol.md` §11). The hub sends
//! [`HubMessage`]s (desired state, commands, pings); the agent sends
//! [`AgentMessage`]s (status, acknowledgements, company reports). Every message
//! is one JSON object with a `type` field.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an agent's control connection reaches the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// A WebSocket (`GET /v1/control/ws`).
    Websocket,
    /// Server-Sent Events (`GET /v1/control/sse`) plus `POST /v1/control/messages`.
    Sse,
    /// Long-polling (`GET /v1/control/poll`) plus `POST /v1/control/messages`.
    LongPoll,
}

impl Transport {
    /// The name used in configuration and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Sse => "sse",
            Transport::LongPoll => "long-poll",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a command asks an agent to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum CommandKind {
    /// Sync a source now (optionally one company and/or year).
    #[serde(rename = "sync")]
    Sync {
        /// The source id.
        source: String,
        /// Only this company.
        #[serde(default)]
        company: Option<String>,
        /// Only this fiscal year.
        #[serde(default)]
        year: Option<i32>,
        /// Upload even when nothing changed.
        #[serde(default)]
        force: bool,
    },
    /// Switch a plugin off: none of its sources runs until it is enabled again.
    #[serde(rename = "plugin.disable")]
    PluginDisable {
        /// The plugin id.
        plugin: String,
        /// Cancel a running job of the plugin (between batches) instead of letting it finish.
        #[serde(default)]
        cancel_running: bool,
    },
    /// Switch a plugin back on.
    #[serde(rename = "plugin.enable")]
    PluginEnable {
        /// The plugin id.
        plugin: String,
    },
    /// Switch a source off.
    #[serde(rename = "source.disable")]
    SourceDisable {
        /// The source id.
        source: String,
        /// Cancel a running job of the source instead of letting it finish.
        #[serde(default)]
        cancel_running: bool,
    },
    /// Switch a source back on.
    #[serde(rename = "source.enable")]
    SourceEnable {
        /// The source id.
        source: String,
    },
    /// Re-read the configuration file (takes effect for the next jobs).
    #[serde(rename = "config.reload")]
    ConfigReload,
    /// Report the agent's status.
    #[serde(rename = "status")]
    Status,
    /// Report versions, plugins, spool state and recent log lines (secrets redacted).
    #[serde(rename = "diagnostics")]
    Diagnostics,
}

impl CommandKind {
    /// The command's name as on the wire (`plugin.disable`).
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::Sync { .. } => "sync",
            CommandKind::PluginDisable { .. } => "plugin.disable",
            CommandKind::PluginEnable { .. } => "plugin.enable",
            CommandKind::SourceDisable { .. } => "source.disable",
            CommandKind::SourceEnable { .. } => "source.enable",
            CommandKind::ConfigReload => "config.reload",
            CommandKind::Status => "status",
            CommandKind::Diagnostics => "diagnostics",
        }
    }

    /// True for commands that change what the agent does (support role); false for reports.
    pub fn changes_state(&self) -> bool {
        !matches!(self, CommandKind::Status | CommandKind::Diagnostics)
    }
}

/// A command for one agent, as delivered to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Unique id; the agent executes a command id at most once.
    pub id: String,
    /// What to do.
    #[serde(flatten)]
    pub kind: CommandKind,
    /// Who asked (support token name).
    pub issued_by: String,
    /// When (RFC 3339).
    pub issued_at: String,
    /// Why, as given by the person who asked.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Who switched something off, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// Who (support token name).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why, when given.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What the hub wants an agent to do, independent of any single command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Plugins switched off remotely, by plugin id.
    #[serde(default)]
    pub disabled_plugins: BTreeMap<String, Disabled>,
    /// Sources switched off remotely, by source id.
    #[serde(default)]
    pub disabled_sources: BTreeMap<String, Disabled>,
    /// Per source id, the company ids selected for integration. A source without
    /// an entry has no selection yet (every company the configuration allows).
    #[serde(default)]
    pub company_selection: BTreeMap<String, Vec<String>>,
}

/// A message from the hub to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    /// The whole desired state; replaces what the agent had.
    DesiredState {
        /// The state.
        state: DesiredState,
    },
    /// A command to execute (once) and acknowledge.
    Command {
        /// The command.
        command: Command,
    },
    /// A heartbeat; the agent answers with [`AgentMessage::Pong`] (WebSocket, and SSE by POST) or,
    /// long-polling, ignores it.
    Ping,
}

/// The outcome of a command, sent by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The command's id.
    pub command_id: String,
    /// True when the command did what it asked.
    pub ok: bool,
    /// What it did or found (command-specific JSON).
    #[serde(default)]
    pub result: serde_json::Value,
    /// Why it failed, for a person.
    #[serde(default)]
    pub error: Option<String>,
}

/// A plugin as an agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginStatus {
    /// Plugin id.
    pub id: String,
    /// Plugin version, when the file loaded.
    #[serde(default)]
    pub version: Option<String>,
    /// False when switched off remotely.
    pub enabled: bool,
    /// Who switched it off, when and why.
    #[serde(default)]
    pub disabled: Option<Disabled>,
}

/// A source as an agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Source id.
    pub id: String,
    /// Its plugin's id.
    pub plugin: String,
    /// False when disabled in the configuration.
    pub configured: bool,
    /// False when switched off remotely.
    pub enabled: bool,
    /// Who switched it off remotely, when and why.
    #[serde(default)]
    pub disabled: Option<Disabled>,
    /// True while a job of the source runs.
    #[serde(default)]
    pub running: bool,
    /// Start of the last run (RFC 3339).
    #[serde(default)]
    pub last_run: Option<String>,
    /// Outcome of the last run.
    #[serde(default)]
    pub last_outcome: Option<String>,
    /// Next scheduled run (RFC 3339).
    #[serde(default)]
    pub next_run: Option<String>,
}

/// The status an agent reports on connect and after every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's id.
    pub agent_id: String,
    /// Host version.
    pub version: String,
    /// Host name of the machine.
    pub host: String,
    /// Operating system.
    pub os: String,
    /// The control transport in use.
    pub transport: Transport,
    /// Plugins of the tenant's sources.
    pub plugins: Vec<PluginStatus>,
    /// The tenant's sources.
    pub sources: Vec<SourceStatus>,
    /// Snapshots waiting in the spool.
    pub spool_entries: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
}

/// A company as a source sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanySeen {
    /// Company id in the ERP.
    pub id: String,
    /// Company name.
    pub name: String,
    /// Organisation number, when known.
    #[serde(default)]
    pub organisation_number: Option<String>,
    /// Fiscal years the ERP has.
    pub fiscal_years: Vec<i32>,
}

/// The outcome of one company's fiscal year in a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// Company id.
    pub company: String,
    /// Fiscal year.
    pub year: i32,
    /// `uploaded`, `unchanged`, `spooled`, `deferred` (not extracted yet: spool
    /// full, or another run extracts it), `invalid` or `failed`.
    pub outcome: String,
    /// What went wrong, for `invalid`, `failed` and `spooled`.
    #[serde(default)]
    pub error: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// What a source saw and did in a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Source id.
    pub source: String,
    /// Every company the source can see.
    pub companies: Vec<CompanySeen>,
    /// Per company and year synced, the outcome.
    pub syncs: Vec<SyncResult>,
    /// A failure of the whole source, if any.
    #[serde(default)]
    pub error: Option<String>,
}

/// A message from an agent to the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The agent's status (also its registration, sent first).
    Status {
        /// The status.
        status: AgentStatus,
    },
    /// A command's outcome.
    Ack {
        /// The outcome.
        ack: Ack,
    },
    /// Companies seen and sync outcomes of one source.
    Report {
        /// The report.
        report: SourceReport,
    },
    /// Answer to a ping.
    Pong,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_have_their_documented_shape() {
        let command = Command {
            id: "cmd-1".into(),
            kind: CommandKind::Sync {
                source: "visma".into(),
                company: Some("1".into()),
                year: None,
                force: true,
            },
            issued_by: "alice".into(),
            issued_at: "2025-06-01T10:00:00Z".into(),
            reason: None,
        };
        let value = serde_json::to_value(&command).unwrap();
        assert_eq!(value["type"], "sync");
        assert_eq!(value["source"], "visma");
        assert_eq!(serde_json::from_value::<Command>(value).unwrap(), command);
        let kind: CommandKind =
            serde_json::from_value(json!({"type": "plugin.disable", "plugin": "x"})).unwrap();
        assert_eq!(kind, CommandKind::PluginDisable { plugin: "x".into(), cancel_running: false });
        assert!(
            serde_json::from_value::<CommandKind>(json!({"type": "plugin.disable", "plugn": "x"})).is_err()
        );
        let message = serde_json::to_value(HubMessage::Ping).unwrap();
        assert_eq!(message, json!({"type": "ping"}));
        assert_eq!(serde_json::to_value(Transport::LongPoll).unwrap(), json!("long-poll"));
    }
}
