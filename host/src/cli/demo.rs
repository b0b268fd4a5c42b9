//! `ledgerlink demo`: the main job on embedded defaults, start to finish.
//!
//! It creates a small Visma Business database in SQLite (with the fixture
//! generator built beside this executable), starts a hub on loopback, writes a
//! configuration, syncs the database through the visma-business plugin over ODBC,
//! prints the hub's trial balance, and says where everything lives.

use crate::config;
use crate::exit::Exit;
use crate::jobs::Agent;
use crate::pipeline::{SyncRequest, YearOutcome};
use ledgerlink_plugin_api::abi::CancelFlag;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A failed demo step, with what to do.
struct Failed(String);

fn step(title: &str) {
    outln!("\n== {title}");
}

fn tool(dir: &Path, name: &str) -> Result<PathBuf, Failed> {
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        Ok(path)
    } else {
        Err(Failed(format!(
            "{} is missing. Resolution: build the workspace first (`cargo build --workspace`)",
            path.display()
        )))
    }
}

/// The hub process, stopped when dropped.
struct HubProcess(Child);

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the demo in `dir` (default `./ledgerlink-demo`).
pub(super) fn run(dir: Option<PathBuf>, exe: PathBuf) -> Exit {
    match demo(dir.unwrap_or_else(|| PathBuf::from("ledgerlink-demo")), exe) {
        Ok(exit) => exit,
        Err(Failed(message)) => {
            eprintln!("error: {message}");
            Exit::Source
        }
    }
}

fn demo(dir: PathBuf, exe: PathBuf) -> Result<Exit, Failed> {
    let bin = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = std::path::absolute(&dir).map_err(|e| Failed(format!("{}: {e}", dir.display())))?;
    if dir.join("ledgerlink.toml").exists() {
        // A previous demo: start over so every step is shown again.
        std::fs::remove_dir_all(&dir).map_err(|e| Failed(format!("cannot clear {}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Failed(format!("cannot create {}: {e}", dir.display())))?;

    step("1. A Visma Business database (SQLite, generated)");
    let fixture = Command::new(tool(&bin, "ledgerlink-fixtures")?)
        .args([
            "create",
            "--erp",
            "visma-business",
            "--backend",
            "sqlite",
            "--prefix",
            "demo_",
            "--voucher-lines",
            "20000",
            "--sqlite-dir",
        ])
        .arg(dir.join("erp"))
        .output()
        .map_err(|e| Failed(format!("cannot run the fixture generator: {e}")))?;
    let stdout = String::from_utf8_lossy(&fixture.stdout);
    if !fixture.status.success() {
        return Err(Failed(format!(
            "creating the database failed: {}",
            String::from_utf8_lossy(&fixture.stderr)
        )));
    }
    let info: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| Failed("the fixture generator printed no description".into()))?;
    let erp_dir = info["sqlite_dir"].as_str().unwrap_or_default().to_owned();
    for line in stdout.lines().filter(|l| !l.starts_with('{')) {
        outln!("   {line}");
    }

    step("2. The plugin");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).map_err(|e| Failed(e.to_string()))?;
    let library = format!("{}visma_business{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    std::fs::copy(bin.join(&library), plugins.join(&library)).map_err(|e| {
        Failed(format!("{}: {e}. Resolution: cargo build --workspace", bin.join(&library).display()))
    })?;
    outln!("   {}", plugins.join(&library).display());

    step("3. A hub on loopback");
    let hub_bin = tool(&bin, "ledgerlink-hub")?;
    let created = Command::new(&hub_bin)
        .args(["tenant", "create", "demo", "--data"])
        .arg(dir.join("hub"))
        .output()
        .map_err(|e| Failed(format!("cannot run ledgerlink-hub: {e}")))?;
    let key = String::from_utf8_lossy(&created.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("llk_"))
        .map(str::to_owned)
        .ok_or_else(|| {
            Failed(format!("no API key from `tenant create`: {}", String::from_utf8_lossy(&created.stderr)))
        })?;
    let mut child = Command::new(&hub_bin)
        .args(["serve", "--data"])
        .arg(dir.join("hub"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("hub.log")).map_err(|e| Failed(e.to_string()))?)
        .spawn()
        .map_err(|e| Failed(format!("cannot start the hub: {e}")))?;
    let mut reader = BufReader::new(child.stdout.take().expect("piped"));
    let _hub = HubProcess(child);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| Failed(e.to_string()))?;
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| Failed(format!("hub said: {line}")))?
        .to_owned();
    outln!("   {url} (tenant `demo`)");

    step("4. Sync over ODBC");
    let config_text = format!(
        "[agent]\ndata_dir = {:?}\n[hub]\nurl = {url:?}\n[plugins]\ndirectories = [{:?}]\n\n[[tenants]]\nid = \"demo\"\napi_key = {key:?}\n\n  [[tenants.sources]]\n  id = \"visma\"\n  plugin = \"visma-business\"\n  fiscal_years = {{ type = \"list\", years = [2024, 2025] }}\n  [tenants.sources.settings]\n  system_database = \"demo_vbsys\"\n  company_database = \"demo_F{{company}}\"\n  connection = {{ driver = \"SQLite3\", directory = {erp_dir:?} }}\n",
        dir.join("agent"),
        plugins
    );
    let config_path = dir.join("ledgerlink.toml");
    std::fs::write(&config_path, &config_text).map_err(|e| Failed(e.to_string()))?;
    let config = config::parse(&config_text, &config_path).map_err(|e| Failed(e.to_string()))?;
    let agent = Agent::new(config, exe.clone());
    let report = agent
        .sync("visma", &SyncRequest::default(), CancelFlag::new(), false)
        .map_err(|e| Failed(e.to_string()))?;
    for (key, outcome) in &report.years {
        let what = match outcome {
            YearOutcome::Uploaded { snapshot_id, counts } => format!(
                "uploaded {} voucher lines, snapshot {}…",
                counts.get("voucher_lines").copied().unwrap_or(0),
                &snapshot_id[..12]
            ),
            other => format!("{other:?}"),
        };
        outln!("   company {} {}: {what}", key.company, key.fiscal_year);
    }

    step("5. The hub's trial balance");
    let client = reqwest::blocking::Client::new();
    for (key, _) in &report.years {
        let path =
            format!("{url}/v1/companies/{}/trial-balance?year={}&source=visma", key.company, key.fiscal_year);
        let body: Value = client
            .get(&path)
            .bearer_auth(key_of(&agent))
            .send()
            .and_then(|r| r.json())
            .map_err(|e| Failed(format!("asking the hub for {path}: {e}")))?;
        outln!("   company {} — {}", key.company, key.fiscal_year);
        outln!("   {:<8} {:>16} {:>16} {:>16}", "account", "debit", "credit", "net");
        if let Some(accounts) = body["accounts"].as_object() {
            for (account, row) in accounts {
                let cell = |k: &str| row[k].as_str().unwrap_or("?").to_owned();
                outln!("   {account:<8} {:>16} {:>16} {:>16}", cell("debit"), cell("credit"), cell("net"));
            }
        }
    }

    step("Where everything lives");
    outln!("   ERP database (SQLite):  {erp_dir}");
    outln!("   plugin:                 {}", plugins.display());
    outln!("   hub data and log:       {} , {}", dir.join("hub").display(), dir.join("hub.log").display());
    outln!("   agent configuration:    {}", config_path.display());
    outln!("   agent state and spool:  {}", dir.join("agent").display());
    outln!(
        "   Try: ledgerlink sync --source visma --config {}   (exit 7: nothing changed)",
        config_path.display()
    );
    outln!("   (the demo's hub stops now; `ledgerlink-hub serve --data {} --listen 127.0.0.1:8080` serves it again)", dir.join("hub").display());
    Ok(report.exit())
}

fn key_of(agent: &Agent) -> String {
    agent.config.tenants.first().map(|t| t.api_key.expose().to_owned()).unwrap_or_default()
}
