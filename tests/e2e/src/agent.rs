//! A Ledgerlink host installation for tests: plugin folder, configuration, data dir.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One configured source.
pub struct SourceConfig {
    /// Source id.
    pub id: String,
    /// Plugin id.
    pub plugin: String,
    /// Plugin settings.
    pub settings: Value,
    /// Fiscal years to sync.
    pub years: Vec<i32>,
    /// Extra TOML lines for the source (e.g. a schedule).
    pub extra: String,
}

/// A host installation in a temporary directory.
pub struct Agent {
    dir: tempfile::TempDir,
    /// The configuration file.
    pub config: PathBuf,
}

fn toml_value(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map.iter().map(|(k, v)| format!("{k} = {}", toml_value(v))).collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

impl Agent {
    /// An installation with these plugin libraries, uploading to `hub_url` for one tenant.
    pub fn new(plugins: &[PathBuf], hub_url: &str, api_key: &str, sources: &[SourceConfig]) -> Agent {
        let dir = tempfile::tempdir().expect("agent dir");
        let plugin_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugin_dir).expect("plugin dir");
        for plugin in plugins {
            std::fs::copy(plugin, plugin_dir.join(plugin.file_name().expect("file name")))
                .expect("copy plugin");
        }
        let mut text = format!(
            "[agent]\ndata_dir = {:?}\n[hub]\nurl = {hub_url:?}\ntimeout_secs = 10\n[plugins]\ndirectories = [{:?}]\n\n[[tenants]]\nid = \"acme\"\napi_key = {api_key:?}\n",
            dir.path().join("data"),
            plugin_dir,
        );
        for source in sources {
            text.push_str(&format!(
                "\n  [[tenants.sources]]\n  id = {:?}\n  plugin = {:?}\n  fiscal_years = {{ type = \"list\", years = {:?} }}\n{}\n",
                source.id, source.plugin, source.years, source.extra
            ));
            if let Value::Object(settings) = &source.settings {
                text.push_str("  [tenants.sources.settings]\n");
                for (key, value) in settings {
                    text.push_str(&format!("  {key} = {}\n", toml_value(value)));
                }
            }
        }
        let config = dir.path().join("ledgerlink.toml");
        std::fs::write(&config, text).expect("write config");
        Agent { dir, config }
    }

    /// Adds a `[spool]` section to the configuration.
    pub fn set_spool(&self, directory: &Path, max_bytes: u64) {
        let mut text = std::fs::read_to_string(&self.config).expect("config");
        text.push_str(&format!("\n[spool]\ndirectory = {directory:?}\nmax_bytes = {max_bytes}\n"));
        std::fs::write(&self.config, text).expect("config");
    }

    /// The installation's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The spool's complete snapshots.
    pub fn spooled(&self) -> Vec<PathBuf> {
        let ready = self.dir.path().join("data/spool/ready");
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(ready).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        entries.sort();
        entries
    }

    /// A `ledgerlink` command with this configuration and fast hub retries.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(crate::binary("ledgerlink"));
        command.args(args).arg("--config").arg(&self.config).env("LEDGERLINK_HUB_RETRY_ATTEMPTS", "2");
        command
    }

    /// Runs `ledgerlink sync --source ID` with extra arguments.
    pub fn sync(&self, source: &str, extra: &[&str]) -> Output {
        let mut args = vec!["sync", "--source", source];
        args.extend_from_slice(extra);
        self.command(&args).output().expect("ledgerlink sync runs")
    }
}

/// stdout and stderr of a finished command, for messages and secret checks.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
