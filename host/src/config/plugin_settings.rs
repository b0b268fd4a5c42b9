//! Checks of the configuration against the installed plugins (`config validate`):
//! every source's plugin is installed, and its settings fit the plugin's settings
//! schema — the subset of JSON Schema the plugins use (`type`, `properties`,
//! `additionalProperties: false`, `required`, `minimum`, `maximum`).
//!
//! A value is never quoted for a setting named like a secret.

use super::locate::FieldPath;
use super::validate::Issue;
use super::{is_secret_key, Config};
use serde_json::Value;
use std::collections::BTreeMap;

/// What the plugin directories hold: usable plugins' settings schemas by id, the
/// ids more than one file provides (none of them is used), and how many files
/// are unusable for other reasons.
#[derive(Debug, Default)]
pub struct Installed {
    /// Settings schema by plugin id.
    pub schemas: BTreeMap<String, Value>,
    /// Ids provided by several files.
    pub duplicate_ids: std::collections::BTreeSet<String>,
    /// Files that are not usable plugins.
    pub unusable_files: usize,
}

/// Every problem of `config`'s sources against the `installed` plugins.
pub(crate) fn check(config: &Config, installed: &Installed) -> Vec<Issue> {
    let mut issues = Vec::new();
    let root = FieldPath::default();
    for (ti, tenant) in config.tenants.iter().enumerate() {
        for (si, source) in tenant.sources.iter().enumerate() {
            let path = root.key("tenants").index(ti).key("sources").index(si);
            match installed.schemas.get(&source.plugin) {
                None if installed.duplicate_ids.contains(&source.plugin) => issues.push(Issue {
                    path: path.key("plugin"),
                    message: format!(
                        "plugin `{}` is provided by more than one file, so none is used",
                        source.plugin
                    ),
                    resolution: "keep one file per plugin id (`ledgerlink plugins list` names them)".into(),
                }),
                None => {
                    let ids: Vec<&str> = installed.schemas.keys().map(String::as_str).collect();
                    let unusable = match installed.unusable_files {
                        0 => String::new(),
                        n => format!("; {n} plugin file(s) cannot be used"),
                    };
                    issues.push(Issue {
                        path: path.key("plugin"),
                        message: format!(
                            "plugin `{}` is not installed (installed: {}{unusable})",
                            source.plugin,
                            if ids.is_empty() { "none".into() } else { ids.join(", ") }
                        ),
                        resolution: "correct the id, or copy the plugin file into `plugins.directories`; \
                                     `ledgerlink plugins list` shows what is installed and why a file cannot be used"
                            .into(),
                    })
                }
                Some(schema) => {
                    let settings = toml::Value::Table(source.settings.clone());
                    check_value(&settings, schema, "settings", &path.key("settings"), &mut issues);
                }
            }
        }
    }
    issues
}

fn check_value(value: &toml::Value, schema: &Value, name: &str, path: &FieldPath, issues: &mut Vec<Issue>) {
    let mut problem = |message: String, resolution: String| {
        issues.push(Issue { path: path.clone(), message, resolution });
    };
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let fits = matches!(
            (expected, value),
            ("string", toml::Value::String(_))
                | ("boolean", toml::Value::Boolean(_))
                | ("integer", toml::Value::Integer(_))
                | ("number", toml::Value::Integer(_) | toml::Value::Float(_))
                | ("object", toml::Value::Table(_))
                | ("array", toml::Value::Array(_))
        );
        if !fits {
            // Only the type: a value in the wrong place may be a password, or a
            // connection string holding one.
            problem(
                format!("`{name}` must be a{} {expected}, not a {}", article(expected), value.type_str()),
                describe(name, schema),
            );
            return;
        }
    }
    if let toml::Value::Integer(n) = value {
        let (min, max) =
            (schema.get("minimum").and_then(Value::as_i64), schema.get("maximum").and_then(Value::as_i64));
        if min.is_some_and(|m| *n < m) || max.is_some_and(|m| *n > m) {
            let range = match (min, max) {
                (Some(lo), Some(hi)) => format!("{lo}..={hi}"),
                (Some(lo), None) => format!("at least {lo}"),
                (None, Some(hi)) => format!("at most {hi}"),
                (None, None) => String::new(),
            };
            let shown = if is_secret_key(name) { String::new() } else { format!(" is {n},") };
            problem(format!("`{name}`{shown} outside {range}"), describe(name, schema));
        }
    }
    let toml::Value::Table(table) = value else { return };
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str).filter(|k| !table.contains_key(*k)) {
            let sub = properties.and_then(|p| p.get(key)).unwrap_or(&Value::Null);
            problem(format!("the plugin needs `{key}` in `{name}`"), describe(key, sub));
        }
    }
    for (key, item) in table {
        match properties.and_then(|p| p.get(key)) {
            Some(sub) => check_value(item, sub, key, &path.key(key), issues),
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                let known: Vec<&str> =
                    properties.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                issues.push(Issue {
                    path: path.key(key),
                    message: format!("`{key}` is not a setting of this plugin"),
                    resolution: format!(
                        "correct its spelling or remove it; `{name}` takes: {}",
                        known.join(", ")
                    ),
                });
            }
            None => {
                if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    check_value(item, sub, key, &path.key(key), issues);
                }
            }
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "n"
    } else {
        ""
    }
}

/// What the schema says about a setting, as a resolution.
fn describe(name: &str, schema: &Value) -> String {
    match schema.get("description").and_then(Value::as_str) {
        Some(text) => format!("`{name}`: {text} (see the plugin's documentation)"),
        None => "see the plugin's documentation for this setting".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        serde_json::json!({
            "type": "object", "additionalProperties": false, "required": ["connection"],
            "properties": {
                "system_database": {"type": "string"},
                "connection": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "server": {"type": "string", "description": "Database server host name"},
                        "password": {"type": "string"},
                        "lanes": {"type": "integer", "minimum": 1, "maximum": 16},
                        "options": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                }
            }
        })
    }

    fn issues(settings: &str) -> Vec<(String, String)> {
        let value: toml::Value = toml::from_str(settings).unwrap();
        let mut found = Vec::new();
        check_value(&value, &schema(), "settings", &FieldPath::default().key("settings"), &mut found);
        found.into_iter().map(|i| (i.path.to_string(), i.message)).collect()
    }

    #[test]
    fn settings_are_checked_against_the_schema_without_quoting_secrets() {
        assert!(issues("system_database = \"vbsys\"\nconnection = { server = \"db\", lanes = 2 }").is_empty());
        let found = issues(
            "sytem_database = \"x\"\nconnection = { sever = \"db\", password = 1234, lanes = 40, options = { A = 1 } }",
        );
        let text = format!("{found:?}");
        assert!(!text.contains("1234"), "a secret's value is not quoted: {text}");
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "settings.connection.lanes",
                "settings.connection.options.A",
                "settings.connection.password",
                "settings.connection.sever",
                "settings.sytem_database"
            ],
            "{found:#?}"
        );
        assert!(found[0].1.contains("40, outside 1..=16"), "{found:?}");
        // A connection string where a table belongs holds a password: not quoted.
        let found = issues("connection = \"Driver={x};PWD=hunter2\"");
        assert_eq!(
            found,
            [("settings.connection".into(), "`connection` must be an object, not a string".into())]
        );
        assert_eq!(
            issues("system_database = \"x\""),
            [("settings".into(), "the plugin needs `connection` in `settings`".into())]
        );
    }
}
