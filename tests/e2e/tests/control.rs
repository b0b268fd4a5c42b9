//! Remote control end to end: real `ledgerlink run` services connected to a real
//! `ledgerlink-hub` over each control transport, driven by the `ledgerlink-hub
//! admin` CLI and the admin API with support tokens.

use ledgerlink_e2e::agent::{Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::{binary, erp_plugin, plugin_library, settings_for};
use ledgerlink_fixtures::{Backend, Erp, Fixture, FixtureSpec};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A support token of `role`, created with the hub CLI.
fn support_token(hub: &Hub, name: &str, role: &str) -> String {
    let output = Command::new(binary("ledgerlink-hub"))
        .args(["support-token", "create", name, "--role", role, "--data"])
        .arg(hub.data_dir().join("hub"))
        .output()
        .expect("support-token create runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("lls_"))
        .unwrap_or_else(|| panic!("no support token in: {}", text(&output)))
        .to_owned()
}

/// `ledgerlink-hub admin ARGS --json` with a support token.
fn admin(hub: &Hub, token: &str, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(binary("ledgerlink-hub"))
        .arg("admin")
        .args(args)
        .args(["--json", "--hub", &hub.url])
        .env("LEDGERLINK_SUPPORT_TOKEN", token)
        .output()
        .expect("ledgerlink-hub admin runs");
    let value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.success(), value, text(&output))
}

/// A control section with short intervals, so reconnects and polls are quick.
fn control_section(transport: &str) -> String {
    format!(
        "\n[control]\ntransport = {transport:?}\nheartbeat_secs = 1\nreconnect_min_secs = 1\nreconnect_max_secs = 2\npoll_wait_secs = 2\n"
    )
}

fn hello_source(schedule: &str) -> SourceConfig {
    SourceConfig {
        id: "hello".into(),
        plugin: "hello-erp".into(),
        settings: json!({}),
        years: vec![2024, 2025],
        extra: format!("  schedule = {schedule}"),
    }
}

const NIGHTLY: &str = "{ type = \"nightly\", window_start = \"03:00\", window_end = \"03:01\" }";

fn hello_agent(hub: &Hub, key: &str, transport: &str, schedule: &str) -> Agent {
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, key, &[hello_source(schedule)]);
    append_control(&agent, transport);
    agent
}

fn append_control(agent: &Agent, transport: &str) {
    let mut config = std::fs::read_to_string(&agent.config).unwrap();
    config.push_str(&control_section(transport));
    std::fs::write(&agent.config, config).unwrap();
}

/// A running `ledgerlink run` with its log file.
struct Service {
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    fn start(agent: &Agent, name: &str) -> Service {
        let log = agent.dir().join(format!("{name}.log"));
        let child = agent
            .command(&["run", "--drain-secs", "5"])
            .env("LEDGERLINK_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ledgerlink run starts");
        Service { child: Some(child), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

fn agent_id(agent: &Agent) -> String {
    let output = agent.command(&["status", "--json"]).output().unwrap();
    let status: Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", text(&output)));
    status["agent_id"].as_str().expect("agent id").to_owned()
}

/// The agent as the hub's admin API shows it.
fn hub_agent(hub: &Hub, token: &str, tenant: &str, id: &str) -> Value {
    let (_, value, _) = admin(hub, token, &["agents", "show", tenant, id]);
    value
}

fn wait_online(hub: &Hub, token: &str, tenant: &str, id: &str, transport: &str) {
    wait_for(&format!("agent {id} online over {transport}"), Duration::from_secs(20), || {
        let agent = hub_agent(hub, token, tenant, id);
        agent["online"] == true && agent["transport"] == transport && agent["status"]["agent_id"] == id
    });
}

/// A hub, tenant `acme`, a support token, and a hello-erp agent's service online over `transport`.
struct OnlineAgent {
    hub: Hub,
    token: String,
    agent: Agent,
    id: String,
    service: Service,
}

impl OnlineAgent {
    fn start(support: &str, transport: &str) -> OnlineAgent {
        let hub = Hub::start();
        let key = hub.create_tenant("acme");
        let token = support_token(&hub, support, "support");
        let agent = hello_agent(&hub, &key, transport, NIGHTLY);
        let id = agent_id(&agent);
        let service = Service::start(&agent, "run");
        wait_online(&hub, &token, "acme", &id, transport);
        OnlineAgent { hub, token, agent, id, service }
    }
}

#[test]
fn every_transport_carries_admin_commands_and_their_results() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let token = support_token(&hub, "alice", "support");
    let transports = ["websocket", "sse", "long-poll"];
    let agents: Vec<Agent> = transports.iter().map(|t| hello_agent(&hub, &key, t, NIGHTLY)).collect();
    let _services: Vec<Service> = agents.iter().map(|a| Service::start(a, "run")).collect();
    // The customer lets support read diagnostics (the agent CLI asks the hub with the tenant's key).
    let granted = agents[0].command(&["support-access", "grant", "--hours", "1"]).output().unwrap();
    assert!(granted.status.success(), "{}", text(&granted));
    for (agent, transport) in agents.iter().zip(transports) {
        let id = agent_id(agent);
        wait_online(&hub, &token, "acme", &id, transport);
        let (ok, row, out) = admin(
            &hub,
            &token,
            &["sync", "acme", &id, "--source", "hello", "--year", "2025", "--wait", "30"],
        );
        assert!(ok, "{transport}: {out}");
        assert_eq!(row["state"], "done", "{transport}: {row}");
        assert_eq!(row["result"]["exit_code"], 0, "{transport}: {row}");
        assert_eq!(row["result"]["years"][0]["outcome"], "uploaded", "{transport}: {row}");
        let status: Value =
            serde_json::from_slice(&agent.command(&["status", "--json"]).output().unwrap().stdout).unwrap();
        let last = &status["tenants"][0]["sources"][0]["last_outcome"];
        assert_eq!(last, "uploaded", "{transport}: the run is recorded as a local sync records it: {status}");
        let (ok, row, out) = admin(&hub, &token, &["diagnostics", "acme", &id, "--wait", "30"]);
        assert!(ok, "{transport}: {out}");
        let diagnostics = row["result"].to_string();
        assert!(diagnostics.contains("hello-erp") && diagnostics.contains("recent_log"), "{diagnostics}");
        assert!(!diagnostics.contains(&key[4..]), "{transport}: the tenant key leaked into diagnostics");
        // The sync's outcome and the companies it saw are on the hub.
        wait_for("the sync report on the hub", Duration::from_secs(10), || {
            let agent = hub_agent(&hub, &token, "acme", &id);
            agent["syncs"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["year"] == 2025 && s["outcome"] == "uploaded"))
                && agent["companies"].as_array().is_some_and(|c| !c.is_empty())
        });
    }
    // The manifest names its agent: one snapshot per agent.
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 3);
}

#[test]
fn an_sse_agent_that_stops_answering_is_shown_offline_and_back_online_when_it_resumes() {
    let OnlineAgent { hub, token, id, service, .. } = OnlineAgent::start("sam", "sse");
    // It answers the hub's pings (one per heartbeat, 1 s here) for a while…
    std::thread::sleep(Duration::from_secs(3));
    // …then hangs (as a stopped process does): its connection stays open, but it answers no ping.
    let pid = service.child.as_ref().expect("running").id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let stopped = Instant::now();
    wait_for("the hung agent shown offline", Duration::from_secs(20), || {
        hub_agent(&hub, &token, "acme", &id)["online"] == false
    });
    assert!(stopped.elapsed() >= Duration::from_secs(2), "not before three heartbeats passed unanswered");
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    wait_online(&hub, &token, "acme", &id, "sse");
}

#[test]
fn a_remote_reload_checks_the_configuration_against_the_plugins_as_config_validate_does() {
    let OnlineAgent { hub, token, agent, id, service: _service } = OnlineAgent::start("rita", "websocket");
    let good = std::fs::read_to_string(&agent.config).unwrap();
    let section = "[tenants.sources.settings]\n";
    assert!(good.contains(section), "{good}");
    // Valid TOML and a valid configuration, but below the plugin's `minimum`.
    std::fs::write(&agent.config, good.replace(section, &format!("{section}  batch_size = 0\n"))).unwrap();
    let validate = agent.command(&["config", "validate"]).output().unwrap();
    assert_eq!(validate.status.code(), Some(3), "{}", text(&validate));

    let (ok, row, out) = admin(&hub, &token, &["reload", "acme", &id, "--wait", "30"]);
    assert!(!ok && row["state"] == "failed", "refused as `config validate` refuses it: {out}");
    let error = row["error"].as_str().unwrap_or_default();
    assert!(error.contains("nothing changed") && error.contains("batch_size"), "{out}");

    std::fs::write(&agent.config, &good).unwrap();
    let (ok, row, out) = admin(&hub, &token, &["reload", "acme", &id, "--wait", "30"]);
    assert!(ok && row["result"]["valid"] == true, "{out}");
    // The key in clear is named, as at start; once encrypted, nothing is said.
    let warnings = row["result"]["warnings"].to_string();
    assert!(warnings.contains("1 secret in clear (tenants[0].api_key)"), "{out}");
    let encrypted = agent.command(&["config", "encrypt"]).output().unwrap();
    assert!(encrypted.status.success(), "{}", text(&encrypted));
    let (ok, row, out) = admin(&hub, &token, &["reload", "acme", &id, "--wait", "30"]);
    assert!(ok && row["result"]["warnings"] == json!([]), "{out}");
}

#[test]
fn revoking_a_tenant_disconnects_its_agents_and_refuses_commands_for_them() {
    for transport in ["websocket", "sse"] {
        let OnlineAgent { hub, token, id, service, .. } = OnlineAgent::start("vera", transport);
        let revoke = Command::new(binary("ledgerlink-hub"))
            .args(["tenant", "revoke", "acme", "--data"])
            .arg(hub.data_dir().join("hub"))
            .output()
            .unwrap();
        assert!(revoke.status.success(), "{}", text(&revoke));
        wait_for(
            &format!("the revoked tenant's agent offline ({transport})"),
            Duration::from_secs(15),
            || hub_agent(&hub, &token, "acme", &id)["online"] == false,
        );
        let (ok, _, out) = admin(&hub, &token, &["status", "acme", &id, "--wait", "5"]);
        assert!(!ok && out.contains("tenant_revoked") && out.contains("revoked"), "{transport}: {out}");
        assert!(
            !service.log().contains("Command from the hub"),
            "{transport}: no command reached the agent: {}",
            service.log()
        );
    }
}

#[test]
fn support_reads_diagnostics_only_while_the_customer_grants_it_and_the_customer_sees_each_look() {
    let OnlineAgent { hub, token, id, agent, service } = OnlineAgent::start("alice", "websocket");
    let (ok, _, out) = admin(&hub, &token, &["diagnostics", "acme", &id, "--wait", "30"]);
    assert!(!ok && out.contains("consent_required"), "{out}");
    assert!(
        out.contains("ledgerlink support-access grant --hours"),
        "the refusal says what to ask for: {out}"
    );
    let (ok, listed, out) = admin(&hub, &token, &["support-access"]);
    assert!(ok && listed["grants"] == json!([]), "{out}");

    // The customer grants diagnostics for two hours on its server.
    let granted = agent
        .command(&["support-access", "grant", "--hours", "2", "--reason", "ticket 4711"])
        .output()
        .unwrap();
    let said = text(&granted);
    assert!(granted.status.success(), "{said}");
    assert!(said.contains("Support may look at tenant acme's diagnostics until"), "{said}");
    let (_, listed, _) = admin(&hub, &token, &["support-access"]);
    assert_eq!(listed["grants"][0]["reason"], "ticket 4711", "{listed}");
    let shown = Command::new(binary("ledgerlink-hub"))
        .args(["admin", "agents", "show", "acme", &id, "--hub", &hub.url])
        .env("LEDGERLINK_SUPPORT_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        text(&shown).contains("support access granted by the customer: diagnostics until"),
        "{}",
        text(&shown)
    );

    let (ok, row, out) = admin(&hub, &token, &["diagnostics", "acme", &id, "--wait", "30"]);
    assert!(ok, "{out}");
    assert!(row["result"]["recent_log"].is_array(), "{row}");
    let command_id = row["command"]["id"].as_str().unwrap().to_owned();
    // Agent listings never carry diagnostics: each read is one logged look.
    let shown = hub_agent(&hub, &token, "acme", &id);
    let listed_row =
        shown["commands"].as_array().unwrap().iter().find(|c| c["command"]["id"] == command_id.as_str());
    let listed_row = listed_row.unwrap_or_else(|| panic!("{shown}"));
    assert!(listed_row["result"].is_null(), "{listed_row}");
    assert!(listed_row["result_withheld"].as_str().unwrap().contains(&command_id), "{listed_row}");

    // Diagnostics do not open the data; a grant of data does, for support's `admin data` too.
    let (ok, _, out) = admin(&hub, &token, &["data", "acme", "/v1/companies"]);
    assert!(!ok && out.contains("consent_required") && out.contains("its data"), "{out}");
    let granted =
        agent.command(&["support-access", "grant", "--hours", "1", "--scope", "data"]).output().unwrap();
    assert!(granted.status.success(), "{}", text(&granted));
    let (ok, companies, out) = admin(&hub, &token, &["data", "acme", "/v1/companies"]);
    assert!(ok && companies["companies"].is_array(), "{out}");

    let looks = agent.command(&["support-access", "list", "--json"]).output().unwrap();
    let looks: Value = serde_json::from_slice(&looks.stdout).unwrap_or_else(|_| panic!("{}", text(&looks)));
    let accesses = looks["accesses"].as_array().unwrap();
    assert_eq!(accesses[0]["what"], "GET /v1/companies", "{looks}");
    assert_eq!(accesses[0]["scope"], "data", "{looks}");
    assert!(accesses.len() > 1, "{looks}");
    assert!(
        accesses[1..].iter().all(|a| a["actor"] == "alice"
            && a["scope"] == "diagnostics"
            && a["what"].as_str().unwrap().contains(&command_id)),
        "{looks}"
    );

    // Withdrawn: the stored result is withheld again, and new diagnostics are refused.
    let revoked = agent.command(&["support-access", "revoke", "--all"]).output().unwrap();
    assert!(revoked.status.success() && text(&revoked).contains("is withdrawn"), "{}", text(&revoked));
    let (ok, row, out) = admin(&hub, &token, &["command", "acme", &id, &command_id]);
    assert!(ok, "{out}");
    assert!(
        row["result"].is_null() && row["result_withheld"].as_str().unwrap().contains("has not granted"),
        "{row}"
    );
    let (ok, _, out) = admin(&hub, &token, &["diagnostics", "acme", &id]);
    assert!(!ok && out.contains("consent_required"), "{out}");
    let listing = agent.command(&["support-access", "list"]).output().unwrap();
    let listing = text(&listing);
    assert!(listing.contains("Support has no access to tenant acme's diagnostics or data now"), "{listing}");
    assert!(listing.contains("withdrawn") && listing.contains("alice (diagnostics"), "{listing}");
    drop(service);
}

#[test]
fn support_access_on_the_agent_names_a_refused_key_an_unreachable_hub_and_a_missing_tenant() {
    let mut hub = Hub::start();
    hub.create_tenant("acme");
    let wrong_key = format!("llk_{}", "7".repeat(64));
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &wrong_key, &[hello_source(NIGHTLY)]);
    let refused = agent.command(&["support-access", "grant", "--hours", "1"]).output().unwrap();
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("refused tenant acme's API key") && said.contains("Resolution"), "{said}");
    assert!(!said.contains(&wrong_key[4..]), "the key is not repeated: {said}");

    let too_long = agent.command(&["support-access", "grant", "--hours", "169"]).output().unwrap();
    assert_eq!(too_long.status.code(), Some(2), "{}", text(&too_long));
    let unknown = agent.command(&["support-access", "list", "--tenant", "globex"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(3), "{}", text(&unknown));
    assert!(text(&unknown).contains("no tenant `globex`; its tenants: acme"), "{}", text(&unknown));

    hub.stop();
    let down = agent.command(&["support-access", "list"]).output().unwrap();
    let said = text(&down);
    assert_eq!(down.status.code(), Some(1), "{said}");
    assert!(said.contains("is unreachable or failing") && said.contains("run the command again"), "{said}");
    assert!(!said.contains("spool"), "nothing here is spooled: {said}");
}

#[test]
fn an_agent_reinstalled_without_its_identity_key_is_refused_until_support_resets_it_and_loses_nothing() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let token = support_token(&hub, "alice", "support");
    let agent = hello_agent(&hub, &key, "websocket", NIGHTLY);
    let id = agent_id(&agent);
    let first = agent.sync("hello", &["--year", "2025"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let key_file = agent.dir().join("data").join("agent-key");
    assert!(key_file.exists(), "the agent made its identity key");
    let status: Value =
        serde_json::from_slice(&agent.command(&["status", "--json"]).output().unwrap().stdout).unwrap();
    let fingerprint =
        status["identity_key"]["fingerprint"].as_str().unwrap_or_else(|| panic!("{status}")).to_owned();
    let (ok, listed, out) = admin(&hub, &token, &["agent-key", "reset", "acme", "agent-unknown"]);
    assert!(!ok && out.contains("agent_key_not_found"), "{out} {listed}");

    // A damaged key: nothing is sent, and the message says what to do.
    let kept = std::fs::read(&key_file).unwrap();
    std::fs::write(&key_file, "not a key\n").unwrap();
    let damaged = agent.sync("hello", &["--year", "2025", "--force"]);
    assert_eq!(damaged.status.code(), Some(3), "{}", text(&damaged));
    assert!(
        text(&damaged).contains("is damaged") && text(&damaged).contains("agent-key reset"),
        "{}",
        text(&damaged)
    );
    std::fs::write(&key_file, kept).unwrap();
    let again = agent.sync("hello", &["--year", "2025"]);
    assert!(matches!(again.status.code(), Some(0 | 7)), "the restored key works: {}", text(&again));

    // The key is lost (a reinstall with the old agent id): the hub refuses the
    // new key, says what to do, and the snapshot waits in the spool.
    std::fs::remove_file(&key_file).unwrap();
    let refused = agent.sync("hello", &["--year", "2025", "--force"]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{said}");
    assert!(said.contains("does not recognise this agent's identity key"), "{said}");
    assert!(said.contains("ledgerlink-hub admin agent-key reset"), "{said}");
    assert_eq!(agent.spooled().len(), 2, "both companies' snapshots wait: {said}");

    let (ok, reset, out) =
        admin(&hub, &token, &["agent-key", "reset", "acme", &id, "--reason", "reinstalled"]);
    assert!(ok, "{out}");
    assert_eq!(
        reset["reset"]["fingerprint"],
        fingerprint.as_str(),
        "the hub knew the agent by the key status shows"
    );
    let delivered = agent.sync("hello", &["--year", "2025"]);
    assert!(matches!(delivered.status.code(), Some(0 | 7)), "{}", text(&delivered));
    assert!(agent.spooled().is_empty(), "the waiting snapshot went with the next run: {}", text(&delivered));
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1, "the same data, stored once");
}

#[test]
fn a_switch_queued_for_an_offline_agent_is_shown_as_queued_until_the_agent_applies_it() {
    let OnlineAgent { hub, token, id, mut service, agent } = OnlineAgent::start("quinn", "websocket");
    wait_for("the plugin in the agent's status", Duration::from_secs(10), || {
        hub_agent(&hub, &token, "acme", &id)["status"]["plugins"][0]["enabled"] == true
    });
    service.stop();
    wait_for("the agent offline", Duration::from_secs(10), || {
        hub_agent(&hub, &token, "acme", &id)["online"] == false
    });
    let (ok, _, out) =
        admin(&hub, &token, &["plugin", "disable", "acme", &id, "hello-erp", "--reason", "ERP upgrade"]);
    assert!(ok, "{out}");

    let shown = || {
        let output = Command::new(binary("ledgerlink-hub"))
            .args(["admin", "agents", "show", "acme", &id, "--hub", &hub.url])
            .env("LEDGERLINK_SUPPORT_TOKEN", &token)
            .output()
            .unwrap();
        text(&output)
    };
    let queued = shown();
    assert!(
        queued.contains("hello-erp 0.3.0: enabled; switching off queued by quinn")
            && queued.contains("ERP upgrade, applied when the agent connects"),
        "{queued}"
    );
    let dom = chromium(&format!("{}/console#token={token}", hub.url), "--dump-dom");
    assert!(dom.contains("switching off queued by quinn"), "the console says so too:\n{dom}");
    assert!(dom.contains("no support access"), "the console shows that the customer granted nothing:\n{dom}");
    let status: Value =
        serde_json::from_slice(&agent.command(&["status", "--json"]).output().unwrap().stdout).unwrap();
    let fingerprint = status["identity_key"]["fingerprint"].as_str().unwrap_or_else(|| panic!("{status}"));
    assert!(
        dom.contains(&format!("key {fingerprint}")),
        "the console shows the key the signed hello registered:\n{dom}"
    );

    let _service = Service::start(&agent, "run");
    wait_for("the agent to apply it", Duration::from_secs(20), || {
        hub_agent(&hub, &token, "acme", &id)["status"]["plugins"][0]["enabled"] == false
    });
    let applied = shown();
    assert!(
        applied.contains("hello-erp 0.3.0: disabled remotely by quinn") && !applied.contains("queued"),
        "{applied}"
    );
    assert!(
        applied.contains("plugin.disable by quinn at") && applied.contains(": done"),
        "recent commands: {applied}"
    );
}

#[test]
fn a_plugin_switched_off_remotely_stays_off_across_restarts_until_switched_on() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let token = support_token(&hub, "bob", "support");
    let every_second = "{ type = \"cron\", expression = \"* * * * * *\" }";
    let agent = hello_agent(&hub, &key, "auto", every_second);
    let id = agent_id(&agent);
    let mut service = Service::start(&agent, "first");
    wait_online(&hub, &token, "acme", &id, "websocket");
    wait_for("a scheduled job", Duration::from_secs(20), || service.log().contains("Job finished."));

    let (ok, row, out) = admin(
        &hub,
        &token,
        &["plugin", "disable", "acme", &id, "hello-erp", "--reason", "ERP upgrade", "--wait", "20"],
    );
    assert!(ok, "{out}");
    assert_eq!(row["result"]["enabled"], false, "{row}");
    wait_for("two skipped runs", Duration::from_secs(20), || {
        let log = service.log();
        let after = &log[log.find("Plugin disabled remotely.").unwrap_or(log.len())..];
        after.matches("Scheduled run skipped.").count() >= 2
    });
    let log = service.log();
    let after = &log[log.find("Plugin disabled remotely.").unwrap()..];
    // At most the job that was already running when the command came finishes.
    assert!(after.matches("Job started.").count() <= 1, "{after}");
    let status = String::from_utf8_lossy(&agent.command(&["status"]).output().unwrap().stdout).to_string();
    assert!(
        status.contains("plugin hello-erp: disabled remotely by bob at ") && status.contains(": ERP upgrade"),
        "{status}"
    );
    // The hub sees the agent report it disabled.
    wait_for("the hub to show the plugin off", Duration::from_secs(10), || {
        hub_agent(&hub, &token, "acme", &id)["status"]["plugins"][0]["enabled"] == false
    });

    service.stop();
    let mut service = Service::start(&agent, "second");
    wait_for("two skipped runs after the restart", Duration::from_secs(20), || {
        service.log().matches("Scheduled run skipped.").count() >= 2
    });
    assert!(!service.log().contains("Job started."), "{}", service.log());
    let manual = agent.sync("hello", &[]);
    assert_eq!(manual.status.code(), Some(3), "a manual sync is refused too: {}", text(&manual));
    assert!(text(&manual).contains("disabled remotely by bob"), "{}", text(&manual));

    wait_online(&hub, &token, "acme", &id, "websocket");
    let (ok, row, out) = admin(&hub, &token, &["plugin", "enable", "acme", &id, "hello-erp", "--wait", "20"]);
    assert!(ok && row["result"]["enabled"] == true, "{out}");
    wait_for("a scheduled job after switching on", Duration::from_secs(20), || {
        service.log().contains("Job finished.")
    });
    service.stop();
}

#[test]
fn a_command_for_an_offline_agent_runs_exactly_once_after_it_reconnects() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let token = support_token(&hub, "carol", "support");
    let agent = hello_agent(&hub, &key, "sse", NIGHTLY);
    let id = agent_id(&agent);
    let mut service = Service::start(&agent, "first");
    wait_online(&hub, &token, "acme", &id, "sse");
    service.stop();
    wait_for("the hub to see the agent offline", Duration::from_secs(10), || {
        hub_agent(&hub, &token, "acme", &id)["online"] == false
    });

    let (ok, row, out) =
        admin(&hub, &token, &["sync", "acme", &id, "--source", "hello", "--expires-secs", "600"]);
    assert!(ok, "{out}");
    assert_eq!(row["state"], "queued", "{row}");
    let command = row["command"]["id"].as_str().unwrap().to_owned();

    let mut service = Service::start(&agent, "second");
    wait_for("the queued command to be done", Duration::from_secs(30), || {
        let (_, row, _) = admin(&hub, &token, &["command", "acme", &id, &command]);
        row["state"] == "done"
    });
    service.stop();
    let third = Service::start(&agent, "third");
    wait_online(&hub, &token, "acme", &id, "sse");
    let (ok, _, out) = admin(&hub, &token, &["status", "acme", &id, "--wait", "20"]);
    assert!(ok, "{out}");
    let runs = |log: &str| {
        log.lines().filter(|l| l.contains("Command from the hub.") && l.contains(&command)).count()
    };
    assert_eq!(runs(&service.log()) + runs(&third.log()), 1, "executed exactly once");
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1);
}

#[test]
fn the_hub_restarts_agents_reconnect_and_no_one_crosses_a_tenant() {
    let mut hub = Hub::start();
    let acme_key = hub.create_tenant("acme");
    let globex_key = hub.create_tenant("globex");
    let support = support_token(&hub, "dave", "support");
    let viewer = support_token(&hub, "erin", "viewer");
    let acme = hello_agent(&hub, &acme_key, "websocket", NIGHTLY);
    let globex = hello_agent(&hub, &globex_key, "long-poll", NIGHTLY);
    let (acme_id, globex_id) = (agent_id(&acme), agent_id(&globex));
    let _acme_service = Service::start(&acme, "run");
    let globex_service = Service::start(&globex, "run");
    wait_online(&hub, &support, "acme", &acme_id, "websocket");
    wait_online(&hub, &support, "globex", &globex_id, "long-poll");

    // A viewer sees but cannot change anything.
    let (ok, _, out) = admin(&hub, &viewer, &["agents", "list"]);
    assert!(ok, "{out}");
    let (ok, _, out) = admin(&hub, &viewer, &["plugin", "disable", "acme", &acme_id, "hello-erp"]);
    assert!(!ok && out.contains("403"), "{out}");
    let http = reqwest::blocking::Client::new();
    let post = |token: &str, tenant: &str, agent: &str| {
        http.post(format!("{}/v1/admin/agents/{tenant}/{agent}/commands", hub.url))
            .bearer_auth(token)
            .json(&json!({ "type": "status" }))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post(&viewer, "acme", &acme_id), 403);
    // A tenant key is not a support token, and a support token is not a tenant key.
    assert_eq!(post(&acme_key, "acme", &acme_id), 401);
    let status =
        http.get(format!("{}/v1/admin/agents", hub.url)).bearer_auth(&acme_key).send().unwrap().status();
    assert_eq!(status.as_u16(), 401);
    assert_eq!(hub.get(&support, "/v1/companies").0, 400, "a support token reads data only naming a tenant");
    // An agent is addressed within its tenant only.
    assert_eq!(post(&support, "acme", &globex_id), 404);
    assert_eq!(post(&support, "globex", &acme_id), 404);
    let (ok, _, out) = admin(&hub, &support, &["status", "acme", &acme_id, "--wait", "20"]);
    assert!(ok, "{out}");
    assert!(!globex_service.log().contains("Command from the hub."), "{}", globex_service.log());
    // Another tenant's agent connecting with an id it does not own sees nothing of acme.
    let poll: Value = http
        .get(format!("{}/v1/control/poll?agent_id={acme_id}&wait_secs=1&resume=true", hub.url))
        .bearer_auth(&globex_key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(poll.as_array().unwrap().iter().all(|m| m["type"] != "command"), "{poll}");

    // The hub restarts; both agents reconnect by themselves and take commands again.
    hub.restart();
    wait_online(&hub, &support, "acme", &acme_id, "websocket");
    wait_online(&hub, &support, "globex", &globex_id, "long-poll");
    for (tenant, id) in [("acme", &acme_id), ("globex", &globex_id)] {
        let (ok, row, out) =
            admin(&hub, &support, &["sync", tenant, id, "--source", "hello", "--wait", "30"]);
        assert!(ok && row["state"] == "done", "{tenant}: {out}");
    }
    let (ok, audit, out) = admin(&hub, &support, &["audit"]);
    assert!(ok, "{out}");
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"command.sync") && actions.iter().all(|a| !a.is_empty()), "{audit}");
    assert!(
        audit["entries"].as_array().unwrap().iter().all(|e| e["actor"] == "dave"),
        "viewers changed nothing"
    );
}

#[test]
fn a_new_company_is_reported_and_synced_only_once_selected_on_the_hub() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let token = support_token(&hub, "frank", "support");
    let mut spec = FixtureSpec::new(Erp::VismaBusiness, Backend::Sqlite);
    spec.voucher_lines = 200;
    spec.years = vec![2025];
    let mut fixture = Fixture::create(spec).expect("fixture");
    let source = SourceConfig {
        id: "visma".into(),
        plugin: Erp::VismaBusiness.slug().into(),
        settings: settings_for(Erp::VismaBusiness, &fixture, ""),
        years: vec![2025],
        extra: format!("  schedule = {NIGHTLY}"),
    };
    let agent = Agent::new(&[erp_plugin(Erp::VismaBusiness)], &hub.url, &key, &[source]);
    append_control(&agent, "websocket");
    let id = agent_id(&agent);
    let _service = Service::start(&agent, "run");
    wait_online(&hub, &token, "acme", &id, "websocket");
    let sync = |force: bool| {
        let mut args = vec!["sync", "acme", id.as_str(), "--source", "visma", "--wait", "60"];
        if force {
            args.push("--force");
        }
        let (ok, row, out) = admin(&hub, &token, &args);
        assert!(ok, "{out}");
        let synced: Vec<String> = row["result"]["years"]
            .as_array()
            .unwrap()
            .iter()
            .map(|y| y["company"].as_str().unwrap().to_owned())
            .collect();
        synced
    };
    let original: Vec<String> = fixture.companies().iter().map(|c| c.id.clone()).collect();
    assert_eq!(sync(false), original, "the first report integrates every company");
    let selection = |company: &str| -> Option<bool> {
        let agent = hub_agent(&hub, &token, "acme", &id);
        agent["companies"]
            .as_array()?
            .iter()
            .find(|c| c["company"]["id"] == company)
            .map(|c| c["selected"] == true)
    };
    wait_for("the first selection", Duration::from_secs(10), || {
        original.iter().all(|c| selection(c) == Some(true))
    });

    let added = fixture.add_company(100).expect("add company").id;
    assert_eq!(sync(false), original, "a new company is not synced before it is selected");
    let (ok, row, out) =
        admin(&hub, &token, &["sync", "acme", &id, "--source", "visma", "--company", &added, "--wait", "60"]);
    assert!(!ok && row["state"] == "failed", "asked for by name, it is refused, not skipped: {out}");
    let error = row["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("company `{added}` of source `visma` is not selected on the hub")),
        "{out}"
    );
    wait_for("the new company listed as available", Duration::from_secs(10), || {
        selection(&added) == Some(false)
    });
    assert_eq!(hub.snapshot_count(&key, "visma", &added, 2025), 0);

    // The customer picks, on the hub, with its own API key (no support token).
    let (status, listed) = hub.get(&key, &format!("/v1/agents/{id}/companies"));
    assert_eq!(status, 200, "{listed}");
    let offered =
        listed["companies"].as_array().unwrap().iter().find(|c| c["company"]["id"] == added.as_str());
    assert_eq!(offered.map(|c| c["selected"].clone()), Some(json!(false)), "{listed}");
    let mut all = original.clone();
    all.push(added.clone());
    let path = format!("/v1/agents/{id}/sources/visma/companies");
    let (status, refused) = hub.put(&key, &path, &json!({ "companies": ["no-such-company"] }));
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("unknown_company")), "{refused}");
    let (status, desired) = hub.put(&key, &path, &json!({ "companies": all, "reason": "new branch" }));
    assert_eq!(status, 200, "{desired}");
    let (_, audit, _) = admin(&hub, &token, &["audit"]);
    assert!(
        audit.to_string().contains("tenant acme (its API key)"),
        "the customer's choice is audit-logged: {audit}"
    );
    let (status, _) =
        hub.put(&key, "/v1/agents/agent-of-someone-else/sources/visma/companies", &json!({"companies": []}));
    assert_eq!(status, 404, "only the tenant's own agents");
    wait_for("the agent to get the selection", Duration::from_secs(10), || {
        let output = agent.command(&["status", "--json"]).output().unwrap();
        let status: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        status["tenants"][0]["sources"][0]["companies_selected_on_hub"]
            .as_array()
            .is_some_and(|c| c.len() == all.len())
    });
    assert!(sync(false).contains(&added), "selected: synced");
    assert_eq!(hub.snapshot_count(&key, "visma", &added, 2025), 1);

    let mut args = vec!["companies", "acme", id.as_str(), "visma"];
    args.extend(original.iter().map(String::as_str));
    let (ok, _, out) = admin(&hub, &token, &args);
    assert!(ok, "{out}");
    wait_for("the agent to get the narrower selection", Duration::from_secs(10), || {
        let output = agent.command(&["status", "--json"]).output().unwrap();
        let status: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        status["tenants"][0]["sources"][0]["companies_selected_on_hub"]
            .as_array()
            .is_some_and(|c| c.len() == original.len())
    });
    assert!(!sync(true).contains(&added), "deselected: no longer synced");
    assert_eq!(selection(&added), Some(false));
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=FILE`); returns stdout.
fn chromium(url: &str, mode: &str) -> String {
    let profile = tempfile::tempdir().expect("browser profile");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(mode)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs (scripts/setup installs Debian's chromium package)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_console_switches_a_plugin_off_in_a_real_browser() {
    let OnlineAgent { hub, token, agent, id, service: _service } = OnlineAgent::start("grace", "websocket");
    wait_for("the plugin in the agent's status", Duration::from_secs(10), || {
        hub_agent(&hub, &token, "acme", &id)["status"]["plugins"][0]["enabled"] == true
    });

    let toggle = format!("toggle--acme--{id}--hello-erp");
    let dom = chromium(&format!("{}/console#token={token}&click={toggle}", hub.url), "--dump-dom");
    assert!(dom.contains(&toggle), "the console rendered the plugin toggle:\n{dom}");
    wait_for("the agent to report the plugin disabled", Duration::from_secs(20), || {
        let agent = hub_agent(&hub, &token, "acme", &id);
        agent["status"]["plugins"][0]["enabled"] == false
            && agent["commands"][0]["command"]["type"] == "plugin.disable"
            && agent["commands"][0]["state"] == "done"
    });
    let status = String::from_utf8_lossy(&agent.command(&["status"]).output().unwrap().stdout).to_string();
    assert!(status.contains("disabled remotely by grace"), "{status}");

    let url = format!("{}/console#token={token}", hub.url);
    let dom = chromium(&url, "--dump-dom");
    assert!(dom.contains("disabled by grace"), "the console shows who switched it off:\n{dom}");
    let artifacts = ledgerlink_e2e::target_dir().parent().expect("target dir").join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("console.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&url, &format!("--screenshot={}", shot.display()));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot at {}", shot.display());
}

#[test]
fn a_refused_key_on_the_control_channel_is_one_warning_with_the_resolution() {
    let hub = Hub::start();
    let _key = hub.create_tenant("acme");
    let agent = hello_agent(&hub, "llk_mistyped0000000000000000", "auto", NIGHTLY);
    let service = Service::start(&agent, "run");
    // Reconnects every 1–2 s: wait for several rounds.
    wait_for("several failed connection rounds", Duration::from_secs(30), || {
        service.log().matches("Control channel could not connect with this transport.").count() >= 9
    });
    let log = service.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("Control channel is down")).collect();
    assert_eq!(warnings.len(), 1, "a lasting failure is warned about once: {log}");
    assert!(warnings[0].contains("WARN") && warnings[0].contains("check the tenant's api_key"), "{log}");
    assert!(!log.contains("llk_mistyped"), "the key is never logged: {log}");
}
