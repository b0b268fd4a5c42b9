//! The host's main job end to end: real ERP databases, real plugins, the real
//! `ledgerlink` and `ledgerlink-hub` processes on loopback.

use ledgerlink_e2e::agent::{text, Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::{erp_plugin, plugin_library, reader_password, settings_for, SmallDisk};
use ledgerlink_fixtures::{Backend, Erp, Fixture, FixtureSpec};
use ledgerlink_plugin_api::canonical::Decimal;
use serde_json::{json, Value};
use std::process::Output;

fn decimal(value: &Value) -> Decimal {
    value.as_str().unwrap_or_else(|| panic!("{value} is not a decimal string")).parse().expect("decimal")
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| panic!("killed: {}", text(output)))
}

/// Every company/year of the fixture: the hub's trial balance equals the fixture's SQL.
fn assert_hub_matches_sql(hub: &Hub, key: &str, source: &str, fixture: &Fixture) {
    for company in fixture.companies() {
        for &year in &company.years {
            let expected = fixture.expected(&company.id, year).expect("expected");
            let tb = hub.trial_balance(key, source, &company.id, year);
            let accounts = tb["accounts"].as_object().expect("accounts");
            assert_eq!(
                accounts.len(),
                expected.trial_balance.accounts.len(),
                "{source} {} {year}",
                company.id
            );
            for (account, row) in &expected.trial_balance.accounts {
                assert_eq!(
                    decimal(&accounts[account]["debit"]),
                    row.debit,
                    "{source} {} {year} {account}",
                    company.id
                );
                assert_eq!(
                    decimal(&accounts[account]["credit"]),
                    row.credit,
                    "{source} {} {year} {account}",
                    company.id
                );
            }
        }
    }
}

fn odbc_source(id: &str, erp: Erp, fixture: &Fixture) -> SourceConfig {
    SourceConfig {
        id: id.into(),
        plugin: erp.slug().into(),
        settings: settings_for(erp, fixture, &reader_password()),
        years: vec![2024, 2025],
        extra: String::new(),
    }
}

#[test]
fn every_odbc_plugin_syncs_to_the_hub_and_the_trial_balances_equal_sql() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let fixtures: Vec<(Erp, Fixture)> = Erp::ALL
        .into_iter()
        .map(|erp| (erp, Fixture::create(FixtureSpec::new(erp, Backend::Postgres)).expect("fixture")))
        .collect();
    let sources: Vec<SourceConfig> =
        fixtures.iter().map(|(erp, f)| odbc_source(erp.slug(), *erp, f)).collect();
    let plugins: Vec<_> = Erp::ALL.into_iter().map(erp_plugin).collect();
    let agent = Agent::new(&plugins, &hub.url, &key, &sources);
    for (erp, fixture) in &fixtures {
        let output = agent.sync(erp.slug(), &[]);
        assert_eq!(exit_code(&output), 0, "{erp}: {}", text(&output));
        assert_hub_matches_sql(&hub, &key, erp.slug(), fixture);
    }
}

#[test]
fn unchanged_data_is_not_sent_again_and_a_change_sends_only_its_year() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let mut fixture =
        Fixture::create(FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres)).expect("fixture");
    let agent = Agent::new(
        &[erp_plugin(Erp::VismaBusiness)],
        &hub.url,
        &key,
        &[odbc_source("vb", Erp::VismaBusiness, &fixture)],
    );
    assert_eq!(exit_code(&agent.sync("vb", &[])), 0);
    let second = agent.sync("vb", &[]);
    assert_eq!(exit_code(&second), 7, "nothing changed: {}", text(&second));
    assert_eq!(text(&second).matches("unchanged").count(), 4, "{}", text(&second));

    let company = fixture.companies()[0].id.clone();
    fixture.touch_one_line(&company, 2025).expect("touch");
    let third = agent.sync("vb", &[]);
    assert_eq!(exit_code(&third), 0, "{}", text(&third));
    let out = String::from_utf8_lossy(&third.stdout).to_string();
    let uploaded: Vec<&str> = out.lines().filter(|l| l.starts_with("uploaded")).collect();
    assert_eq!(uploaded.len(), 1, "{out}");
    assert!(uploaded[0].contains(&format!("company {company}")) && uploaded[0].contains("2025"), "{out}");
    assert_eq!(hub.snapshot_count(&key, "vb", &company, 2025), 2, "one new snapshot for the changed year");
    assert_eq!(hub.snapshot_count(&key, "vb", &company, 2024), 1);
    assert_hub_matches_sql(&hub, &key, "vb", &fixture);

    let forced = agent.sync("vb", &["--force", "--company", &company, "--year", "2024"]);
    assert_eq!(exit_code(&forced), 0, "{}", text(&forced));
    assert_eq!(hub.snapshot_count(&key, "vb", &company, 2024), 1, "same content: the hub keeps one snapshot");
}

/// The synthetic plugin for 2025 with these settings.
fn synthetic_source(settings: Value) -> SourceConfig {
    SourceConfig {
        id: "synthetic".into(),
        plugin: "synthetic".into(),
        settings,
        years: vec![2025],
        extra: String::new(),
    }
}

/// An agent of the hub's tenant `key` with the synthetic plugin as its one source.
fn synthetic_agent(hub: &Hub, key: &str, settings: Value) -> Agent {
    Agent::new(&[plugin_library("fixture_synthetic")], &hub.url, key, &[synthetic_source(settings)])
}

fn hello_source() -> SourceConfig {
    SourceConfig {
        id: "hello".into(),
        plugin: "hello-erp".into(),
        settings: json!({"batch_size": 3}),
        years: vec![2024, 2025],
        extra: String::new(),
    }
}

#[test]
fn hub_down_spools_and_the_next_run_delivers_exactly_once() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
    hub.stop();
    let down = agent.sync("hello", &[]);
    assert_eq!(exit_code(&down), 6, "spooled: {}", text(&down));
    assert_eq!(agent.spooled().len(), 4, "one snapshot per company and year on disk");
    let again = agent.sync("hello", &[]);
    assert_eq!(exit_code(&again), 6, "still down: {}", text(&again));
    assert_eq!(agent.spooled().len(), 4, "nothing extracted twice into the spool");

    hub.restart();
    let up = agent.sync("hello", &[]);
    assert_eq!(exit_code(&up), 0, "{}", text(&up));
    assert!(agent.spooled().is_empty(), "the spool is empty after delivery");
    for company in ["1", "2"] {
        for year in [2024, 2025] {
            assert_eq!(hub.snapshot_count(&key, "hello", company, year), 1, "{company}/{year}");
        }
    }
    assert_eq!(exit_code(&agent.sync("hello", &[])), 7);
}

/// A hub (stopped), its tenant key, and an agent whose sync of company 1's 2025
/// waits in the spool, with that entry's directory.
fn one_spooled_snapshot() -> (Hub, String, Agent, std::path::PathBuf) {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
    hub.stop();
    assert_eq!(exit_code(&agent.sync("hello", &["--company", "1", "--year", "2025"])), 6);
    let entry = agent.spooled().pop().expect("one spooled snapshot");
    (hub, key, agent, entry)
}

#[test]
fn a_spooled_snapshot_another_run_is_delivering_is_left_to_it() {
    let (mut hub, key, agent, entry) = one_spooled_snapshot();
    // Another run (this test, as another process would) holds the entry's claim.
    let claim = claim_as_another_run(&entry);
    hub.restart();

    // A run of another year delivers its own and leaves the claimed one alone.
    let other = agent.sync("hello", &["--company", "1", "--year", "2024"]);
    assert_eq!(exit_code(&other), 0, "{}", text(&other));
    assert_eq!(agent.spooled(), std::slice::from_ref(&entry), "left for the run that claimed it");
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 0, "not uploaded twice at once");
    // A run of the same year says why it waits.
    let same = agent.sync("hello", &["--company", "1", "--year", "2025"]);
    assert_eq!(exit_code(&same), 6, "{}", text(&same));
    assert!(text(&same).contains("another run of this tenant is uploading it"), "{}", text(&same));
    assert_eq!(agent.spooled(), [entry]);

    drop(claim);
    let after = agent.sync("hello", &["--company", "1", "--year", "2025"]);
    assert_eq!(exit_code(&after), 0, "{}", text(&after));
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1);
    assert!(agent.spooled().is_empty());
}

/// Holds the claim on a spooled entry, as another run delivering it would.
fn claim_as_another_run(entry: &std::path::Path) -> std::fs::File {
    let name = entry.file_name().and_then(|n| n.to_str()).expect("entry name");
    let spool = entry.parent().and_then(std::path::Path::parent).expect("spool directory");
    let claim = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(spool.join("claims").join(format!("{name}.lock")))
        .expect("claim file");
    claim.try_lock().expect("nobody else holds the claim");
    claim
}

#[test]
fn a_newer_snapshot_of_a_year_waits_for_an_older_one_another_run_is_delivering() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 600}));
    hub.stop();
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 6);
    // The ERP changes while the hub is down: a newer snapshot of the same year.
    let config = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(&agent.config, config.replace("voucher_lines = 600", "voucher_lines = 900")).unwrap();
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 6);
    let spooled = agent.spooled();
    assert_eq!(spooled.len(), 2, "{spooled:?}");
    let older = claim_as_another_run(&spooled[0]);
    hub.restart();

    let output = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&output), 6, "{}", text(&output));
    assert!(
        text(&output).contains("an older snapshot of this year is being uploaded by another run"),
        "{}",
        text(&output)
    );
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 0, "the newer one did not overtake it");

    drop(older);
    let after = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&after), 0, "{}", text(&after));
    assert!(agent.spooled().is_empty());
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1, "the older one was superseded, not sent");
    let (_, current) = hub.get(&key, "/v1/companies/1/current?year=2025");
    let id = current["snapshot_id"].as_str().expect("snapshot id").to_owned();
    let (_, detail) = hub.get(&key, &format!("/v1/snapshots/{id}"));
    let lines: u64 = detail["manifest"]["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["entity"] == "voucher_lines")
        .map(|p| p["records"].as_u64().expect("records"))
        .sum();
    assert_eq!(lines, 900, "the newest snapshot is the current one");
}

#[test]
fn parts_are_postcard_for_a_hub_that_reads_it_and_ndjson_for_one_that_does_not() {
    let mut served = Vec::new();
    for (args, format) in [(&[][..], Some("postcard")), (&["--no-postcard-parts"][..], None)] {
        let hub = Hub::start_args(args);
        let key = hub.create_tenant("acme");
        let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
        let output = agent.sync("hello", &[]);
        assert_eq!(exit_code(&output), 0, "{}", text(&output));
        let (status, current) = hub.get(&key, "/v1/companies/1/current?year=2025");
        assert_eq!(status, 200, "{current}");
        let id = current["snapshot_id"].as_str().expect("snapshot id").to_owned();
        let (_, detail) = hub.get(&key, &format!("/v1/snapshots/{id}"));
        assert_eq!(detail["manifest"].get("part_format").and_then(Value::as_str), format, "{args:?}");
        let (status, lines) = hub.get_text(&key, &format!("/v1/snapshots/{id}/entities/voucher_lines"));
        assert_eq!(status, 200);
        served.push(lines);
    }
    assert!(served[0].lines().count() > 10, "{}", served[0]);
    assert_eq!(served[0], served[1], "the hub serves the same records whatever the parts' format");
}

/// What [`start_front`] does with a connection.
const FRONT_BUSY_BUT_CAPABILITIES: u8 = 0;
const FRONT_ALL_BUSY: u8 = 1;
const FRONT_RELAY: u8 = 2;

/// A front on loopback for `hub_url`, switched by the returned mode: it answers
/// the capabilities question itself with `capabilities` and every other request
/// with 503 (the hub is busy), or everything with 503, or relays to the hub.
fn start_front(hub_url: &str, capabilities: Value) -> (String, std::sync::Arc<std::sync::atomic::AtomicU8>) {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU8, Ordering};
    let target = hub_url.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mode = std::sync::Arc::new(AtomicU8::new(FRONT_BUSY_BUT_CAPABILITIES));
    let switch = mode.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let mode = switch.load(Ordering::SeqCst);
            if mode == FRONT_RELAY {
                relay(client, &target);
                continue;
            }
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let response = if mode == FRONT_BUSY_BUT_CAPABILITIES
                && request_line.starts_with("GET /v1/capabilities ")
            {
                let body = capabilities.to_string();
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
            };
            let _ = (&client).write_all(response.as_bytes());
        }
    });
    (url, mode)
}

fn spooled_part_format(spooled: &std::path::Path) -> Value {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(spooled.join("manifest.json")).expect("manifest")).unwrap();
    manifest.get("part_format").cloned().unwrap_or(Value::Null)
}

#[test]
fn a_snapshot_spooled_in_postcard_for_a_hub_rolled_back_to_ndjson_is_delivered_as_ndjson() {
    use std::sync::atomic::Ordering;
    let hub = Hub::start_args(&["--no-postcard-parts"]);
    let key = hub.create_tenant("acme");
    let (status, mut capabilities) = hub.get(&key, "/v1/capabilities");
    assert_eq!(status, 200, "{capabilities}");
    assert_eq!(capabilities["part_formats"], json!(["ndjson"]));
    // Before the rollback the hub read postcard, and it was busy when the agent synced.
    capabilities["part_formats"] = json!(["postcard", "ndjson"]);
    let (front, mode) = start_front(&hub.url, capabilities);
    let agent = Agent::new(&[plugin_library("hello_erp")], &front, &key, &[hello_source()]);
    let busy = agent.sync("hello", &["--company", "1", "--year", "2025"]);
    assert_eq!(exit_code(&busy), 6, "spooled: {}", text(&busy));
    let spooled = agent.spooled().pop().expect("one spooled snapshot");
    assert_eq!(spooled_part_format(&spooled), "postcard");

    // While the hub cannot say what it reads, the entry stays as it is, and a new
    // snapshot is written in the formats the hub named last (decision 0021).
    mode.store(FRONT_ALL_BUSY, Ordering::SeqCst);
    let still_busy = agent.sync("hello", &["--company", "1", "--year", "2024"]);
    assert_eq!(exit_code(&still_busy), 6, "{}", text(&still_busy));
    let entries = agent.spooled();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries.contains(&spooled) && spooled_part_format(&spooled) == "postcard",
        "the entry is untouched"
    );
    assert!(entries.iter().all(|e| spooled_part_format(e) == "postcard"), "2024 as the hub said last time");

    // The rolled-back hub answers: both snapshots are rewritten and delivered by a
    // run that selects only 2024 — 2025 converted, not extracted again.
    mode.store(FRONT_RELAY, Ordering::SeqCst);
    let output = agent.sync("hello", &["--company", "1", "--year", "2024"]);
    assert_eq!(exit_code(&output), 0, "{}", text(&output));
    assert!(text(&output).contains("rewritten as NDJSON"), "{}", text(&output));
    assert!(agent.spooled().is_empty(), "everything delivered");
    for year in [2024, 2025] {
        assert_eq!(hub.snapshot_count(&key, "hello", "1", year), 1, "{year}");
    }
    let (_, current) = hub.get(&key, "/v1/companies/1/current?year=2025");
    let id = current["snapshot_id"].as_str().expect("snapshot id").to_owned();
    let (_, detail) = hub.get(&key, &format!("/v1/snapshots/{id}"));
    assert_eq!(detail["manifest"].get("part_format"), None, "NDJSON, the default, is left out");
    let tb = hub.trial_balance(&key, "hello", "1", 2025);
    assert_eq!(decimal(&tb["accounts"]["3000"]["credit"]), "11000.00".parse::<Decimal>().unwrap());
}

#[test]
fn a_flipped_byte_in_a_spooled_part_is_detected_and_never_accepted() {
    let (mut hub, key, agent, entry) = one_spooled_snapshot();
    let part = entry.join("part-00007.zst");
    let mut bytes = std::fs::read(&part).expect("voucher lines part");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&part, bytes).unwrap();

    hub.restart();
    let output = agent.sync("hello", &["--company", "1", "--year", "2025"]);
    assert!(text(&output).contains("damaged"), "{}", text(&output));
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1, "the re-extracted snapshot arrived");
    let tb = hub.trial_balance(&key, "hello", "1", 2025);
    assert_eq!(decimal(&tb["accounts"]["3000"]["credit"]), "11000.00".parse::<Decimal>().unwrap());
    assert!(agent.spooled().is_empty());
}

#[test]
fn a_spooled_part_that_cannot_be_read_now_is_kept_and_delivered_once_it_can() {
    let (mut hub, key, agent, entry) = one_spooled_snapshot();
    // A part that cannot be read (a directory in its place: an I/O error even for
    // root, as permissions, a disk error or a virus scanner holding it would be).
    let part = entry.join("part-00007.zst");
    let aside = agent.dir().join("part-00007.aside");
    std::fs::rename(&part, &aside).unwrap();
    std::fs::create_dir(&part).unwrap();
    hub.restart();

    let output = agent.sync("hello", &["--company", "1", "--year", "2025"]);
    assert_ne!(exit_code(&output), 0, "{}", text(&output));
    assert!(text(&output).contains("part-00007.zst"), "the path is named: {}", text(&output));
    assert!(!text(&output).contains("damaged"), "not mistaken for damage: {}", text(&output));
    assert_eq!(agent.spooled(), std::slice::from_ref(&entry), "kept, not removed");
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 0);

    std::fs::remove_dir(&part).unwrap();
    std::fs::rename(&aside, &part).unwrap();
    let output = agent.sync("hello", &["--company", "1", "--year", "2025"]);
    assert_eq!(exit_code(&output), 0, "{}", text(&output));
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1, "the kept snapshot, once");
    assert!(agent.spooled().is_empty());
}

#[test]
fn an_erp_back_in_an_earlier_state_makes_that_data_current_again() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 600}));
    let set_lines = |lines: u64| {
        let config = std::fs::read_to_string(&agent.config).unwrap();
        let at = config.find("voucher_lines = ").expect("the setting");
        let end = at + config[at..].find('\n').unwrap();
        std::fs::write(&agent.config, format!("{}voucher_lines = {lines}{}", &config[..at], &config[end..]))
            .unwrap();
    };
    let current_lines = || {
        let (_, current) = hub.get(&key, "/v1/companies/1/current?year=2025");
        current["records"].as_u64().unwrap_or_default()
    };
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 0);
    let with_600 = current_lines();
    set_lines(900);
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 0);
    assert!(current_lines() > with_600);
    // Back to the first state (a restored backup, an edit undone): the same
    // snapshot as the first, which the hub has; it must be current again.
    set_lines(600);
    let back = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&back), 0, "{}", text(&back));
    assert_eq!(current_lines(), with_600, "the hub shows what the ERP holds now");
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 2, "no new version for the same data");
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 7, "and nothing to send after that");
}

#[test]
fn the_same_data_under_a_new_token_is_not_a_new_version_when_the_hub_cannot_say_its_formats() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 600}));
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 0);
    let spooled_format = || agent.spooled().first().map(|e| spooled_part_format(e));
    // A new token for the same data, while the hub is down: the agent cannot ask
    // which formats it reads, and must not write the parts differently because of that.
    let config = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(
        &agent.config,
        config.replace("voucher_lines = 600", "voucher_lines = 600\ntoken_suffix = \"-touched\""),
    )
    .unwrap();
    hub.stop();
    let output = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&output), 7, "the content is what the hub has: {}", text(&output));
    assert_eq!(spooled_format(), None, "nothing spooled");
    hub.restart();
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 7);
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1, "no second version of the same data");
}

#[test]
fn a_state_store_moved_away_sends_everything_again_but_adds_no_version_to_the_hub() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 600}));
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 0);
    // Damaged, say, and moved away as the error message advises.
    let data = agent.dir().join("data");
    for name in ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm"] {
        let _ = std::fs::rename(data.join(name), data.join(format!("{name}.damaged")));
    }
    let again = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&again), 0, "nothing acknowledged in the new store: {}", text(&again));
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1, "the same snapshot, which the hub has");
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 7);
}

#[test]
fn a_spooled_snapshot_that_could_not_be_read_for_a_while_never_brings_older_data_back() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 600}));
    hub.stop();
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 6);
    let old = agent.spooled().pop().expect("the 600-line snapshot, spooled");
    // Its entry file cannot be read for a while (permissions, say): it is kept aside.
    let entry_file = old.join("entry.json");
    let aside = agent.dir().join("entry.json.aside");
    std::fs::rename(&entry_file, &aside).unwrap();
    std::fs::create_dir(&entry_file).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // the next run is a later second
    hub.restart();
    let config = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(&agent.config, config.replace("voucher_lines = 600", "voucher_lines = 900")).unwrap();
    assert_eq!(exit_code(&agent.sync("synthetic", &[])), 0, "the newer data is delivered");
    let (_, current) = hub.get(&key, "/v1/companies/1/current?year=2025");
    let newer = current["snapshot_id"].clone();

    // Readable again: older than what the hub acknowledged, so it is dropped, not delivered.
    std::fs::remove_dir(&entry_file).unwrap();
    std::fs::rename(&aside, &entry_file).unwrap();
    let output = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&output), 7, "{}", text(&output));
    assert!(agent.spooled().is_empty(), "the superseded snapshot is gone: {}", text(&output));
    let (_, current) = hub.get(&key, "/v1/companies/1/current?year=2025");
    assert_eq!(current["snapshot_id"], newer, "the newer data stays current");
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1);
}

#[test]
fn invalid_data_is_not_uploaded_and_the_report_names_the_source_key() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 1000, "unbalanced_voucher": 7}));
    let output = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&output), 5, "{}", text(&output));
    assert!(
        text(&output).contains("AcTr:7:1") && text(&output).contains("does not balance"),
        "{}",
        text(&output)
    );
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 0);
    assert!(agent.spooled().is_empty(), "invalid data is not spooled either");
}

#[test]
fn a_voucher_whose_lines_come_back_later_is_refused_by_the_hub_and_never_counted_twice() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    // 250 000 lines make three parts, which the hub verifies in stretches side by
    // side: voucher 7 starts the first, its lines come back at the end of the last.
    let settings = json!({"voucher_lines": 250_000, "repeated_voucher": 7});
    let agent = synthetic_agent(&hub, &key, settings);
    let output = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&output), 5, "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("validation_failed")
            && said.contains("[AcTr:7:1] voucher_id: the lines of voucher `7` come back here")
            && said.contains("send this message to the plugin's vendor"),
        "{said}"
    );
    assert_eq!(
        hub.snapshot_count(&key, "synthetic", "1", 2025),
        0,
        "nothing stored, so nothing counted twice"
    );
    assert_eq!(agent.spooled().len(), 1, "the snapshot waits in the spool for a fixed plugin: {said}");

    // The same data without the repeat is accepted: the refusal was the repeat's.
    let fixed = synthetic_agent(&hub, &key, json!({"voucher_lines": 250_000}));
    let output = fixed.sync("synthetic", &[]);
    assert_eq!(exit_code(&output), 0, "{}", text(&output));
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1);
}

/// A hub with tenant `acme`, a Visma Business database in PostgreSQL, and an agent
/// whose source `vb` reads it.
fn visma_business_on_postgres() -> (Hub, String, Fixture, Agent) {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let fixture = Fixture::create(FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres)).expect("fixture");
    let agent = Agent::new(
        &[erp_plugin(Erp::VismaBusiness)],
        &hub.url,
        &key,
        &[odbc_source("vb", Erp::VismaBusiness, &fixture)],
    );
    (hub, key, fixture, agent)
}

#[test]
fn no_secret_reaches_output_spool_state_or_the_hub_log() {
    let (hub, key, fixture, agent) = visma_business_on_postgres();
    let mut outputs = Vec::new();
    let first = agent.command(&["sync", "--source", "vb"]).env("LEDGERLINK_LOG", "trace").output().unwrap();
    assert_eq!(exit_code(&first), 0, "{}", text(&first));
    // The plugin's log lines come through its worker with their own level.
    let first_text = text(&first);
    let plugin_lines: Vec<&str> =
        first_text.lines().filter(|l| l.contains("extracting accounts from")).collect();
    assert!(!plugin_lines.is_empty(), "{first_text}");
    assert!(plugin_lines.iter().all(|l| l.contains("DEBUG") && !l.contains("WARN")), "{plugin_lines:#?}");
    outputs.push(text(&first));
    outputs.push(text(&agent.command(&["config", "validate"]).output().unwrap()));
    // A failing run too: a wrong password must not show either.
    let wrong = Agent::new(
        &[erp_plugin(Erp::VismaBusiness)],
        &hub.url,
        &key,
        &[SourceConfig {
            settings: settings_for(Erp::VismaBusiness, &fixture, "Wrong-Pass-3141"),
            ..odbc_source("vb", Erp::VismaBusiness, &fixture)
        }],
    );
    let failed = wrong.command(&["sync", "--source", "vb"]).env("LEDGERLINK_LOG", "trace").output().unwrap();
    assert_eq!(exit_code(&failed), 4, "{}", text(&failed));
    assert!(text(&failed).contains("password authentication failed"), "{}", text(&failed));
    outputs.push(text(&failed));

    let mut files = Vec::new();
    for dir in [agent.dir().join("data"), wrong.dir().join("data"), hub.data_dir().to_owned()] {
        collect_files(&dir, &mut files);
    }
    let secrets = [reader_password(), key.clone(), "Wrong-Pass-3141".to_owned()];
    for secret in &secrets {
        for (i, out) in outputs.iter().enumerate() {
            assert!(!out.contains(secret.as_str()), "output {i} shows a secret");
        }
        for file in &files {
            let bytes = std::fs::read(file).unwrap_or_default();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} contains a secret", file.display());
        }
    }
    assert!(files.len() > 3, "the check looked at the state, spool and hub files: {files:?}");
}

#[test]
fn a_configuration_encrypted_at_rest_syncs_a_real_database_and_its_file_reveals_no_secret() {
    let (hub, key, fixture, agent) = visma_business_on_postgres();
    let validated = agent.command(&["config", "validate"]).output().unwrap();
    assert_eq!(exit_code(&validated), 0, "{}", text(&validated));
    let said = text(&validated);
    assert!(
        said.contains("secrets in clear (tenants[0].api_key") && said.contains("config encrypt"),
        "{said}"
    );
    assert!(said.contains("other users can access it"), "the file is world-readable: {said}");

    let encrypted = agent.command(&["config", "encrypt"]).output().unwrap();
    let said = text(&encrypted);
    assert_eq!(exit_code(&encrypted), 0, "{said}");
    assert!(said.contains("tenants[0].api_key") && said.contains("settings.connection.password"), "{said}");
    let file = std::fs::read_to_string(&agent.config).unwrap();
    assert!(!file.contains(&key), "the key is still in clear:\n{file}");
    assert!(!file.contains(&reader_password()), "the password is still in clear:\n{file}");
    let validated = agent.command(&["config", "validate"]).output().unwrap();
    assert_eq!(exit_code(&validated), 0, "{}", text(&validated));
    assert!(!text(&validated).contains("warning"), "{}", text(&validated));

    let synced = agent.sync("vb", &[]);
    assert_eq!(exit_code(&synced), 0, "{}", text(&synced));
    assert_hub_matches_sql(&hub, &key, "vb", &fixture);

    // Without its key the file is useless, and the refusal says what to restore.
    let key_file = agent.dir().join("data").join("secret.key");
    std::fs::rename(&key_file, agent.dir().join("elsewhere.key")).unwrap();
    let refused = agent.sync("vb", &["--force"]);
    let said = text(&refused);
    assert_eq!(exit_code(&refused), 3, "{said}");
    assert!(said.contains("ledgerlink.toml:") && said.contains("secret.key does not exist"), "{said}");
    assert!(said.contains("restore the key file"), "{said}");
    assert!(!said.contains(&key) && !said.contains(&reader_password()), "{said}");
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn a_bad_configuration_is_exit_3_naming_file_and_line() {
    let hub = Hub::start();
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, "llk_x", &[hello_source()]);
    let text_before = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(
        &agent.config,
        text_before.replace("timeout_secs = 10", "timeout_secs = 10\ntimeout_sec = 3"),
    )
    .unwrap();
    let output = agent.sync("hello", &[]);
    assert_eq!(exit_code(&output), 3, "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("ledgerlink.toml:6:1") && message.contains("timeout_sec"), "{message}");
}

#[test]
fn a_full_disk_fails_the_sync_cleanly_and_a_later_run_delivers() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 40000}));
    let disk = SmallDisk::mount(agent.dir().join("small-disk"), 64);
    agent.set_spool(&disk.0, 1 << 30);
    let full = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&full), 4, "{}", text(&full));
    assert!(
        text(&full).contains("No space left on device") && text(&full).contains("free disk space"),
        "{}",
        text(&full)
    );
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 0);
    let torn = std::fs::read_dir(disk.0.join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(torn, 0, "the half-written snapshot was removed");

    drop(disk); // unmount: the spool directory is on the real disk again
    let later = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&later), 0, "{}", text(&later));
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1);
}

#[test]
fn a_full_disk_on_the_hub_keeps_the_data_in_the_spool_and_says_so_and_a_later_run_delivers() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 40000}));
    hub.stop();
    let disk = SmallDisk::mount(hub.data_dir().join("hub/parts"), 1024);
    hub.restart();
    // Whatever else filled the hub's disk.
    let ballast = disk.0.join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    while std::io::Write::write_all(&mut file, &[0u8; 4096]).is_ok() {}
    drop(file);
    let full = agent.sync("synthetic", &[]);
    let said = text(&full);
    assert_eq!(exit_code(&full), 6, "{said}");
    assert!(said.contains("507") && said.contains("storage is full"), "{said}");
    assert_eq!(agent.spooled().len(), 1, "the data waits in the agent's spool: {said}");
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 0);
    let log = std::fs::read_to_string(hub.data_dir().join("hub.log")).unwrap_or_default();
    assert!(log.contains("The hub's storage is full") && log.contains("free space"), "{log}");

    std::fs::remove_file(&ballast).unwrap(); // the central service freed space
    let later = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&later), 0, "{}", text(&later));
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1, "delivered once");
    assert!(agent.spooled().is_empty());
    hub.stop();
    drop(disk);
}

#[test]
fn a_full_temporary_folder_fails_a_read_in_lanes_cleanly_and_a_later_run_delivers() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let fixture = Fixture::create(FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres)).expect("fixture");
    let company = fixture.companies()[0].id.clone();
    let mut source = SourceConfig { years: vec![2025], ..odbc_source("vb", Erp::VismaBusiness, &fixture) };
    source.settings["connection"]["lanes"] = 2.into();
    source.settings["connection"]["lane_min_rows"] = 1.into();
    let agent = Agent::new(&[erp_plugin(Erp::VismaBusiness)], &hub.url, &key, &[source]);
    let disk = SmallDisk::mount(agent.dir().join("small-tmp"), 4);
    let full = agent.command(&["sync", "--source", "vb"]).env("TMPDIR", &disk.0).output().expect("sync runs");
    let message = text(&full);
    assert_eq!(exit_code(&full), 4, "{message}");
    assert!(
        message.contains("lane 1 could not use its temporary file")
            && message.contains("No space left on device")
            && message.contains("TMPDIR"),
        "{message}"
    );
    assert_eq!(hub.snapshot_count(&key, "vb", &company, 2025), 0, "nothing partial reached the hub");

    drop(disk);
    let later =
        agent.command(&["sync", "--source", "vb"]).env("TMPDIR", agent.dir()).output().expect("sync runs");
    assert_eq!(exit_code(&later), 0, "{}", text(&later));
    assert_eq!(hub.snapshot_count(&key, "vb", &company, 2025), 1);
}

#[test]
fn a_database_that_takes_no_more_connections_fails_a_read_in_lanes_with_the_way_out() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let fixture = Fixture::create(FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres)).expect("fixture");
    let company = fixture.companies()[0].clone();
    let limit = |n: i32| {
        let sql = format!("ALTER DATABASE \"{}\" CONNECTION LIMIT {n}", company.database);
        fixture.query(&company.id, &sql).expect("set the connection limit");
    };
    let source_with = |lanes: u64| {
        let mut source =
            SourceConfig { years: vec![2025], ..odbc_source("vb", Erp::VismaBusiness, &fixture) };
        source.settings["connection"]["lanes"] = lanes.into();
        source.settings["connection"]["lane_min_rows"] = 1.into();
        source
    };
    // The company database admits CONNECTIONS: the plugin's connection for the
    // change tokens and one lane, not a second lane.
    const CONNECTIONS: i32 = 2;
    let laned = Agent::new(&[erp_plugin(Erp::VismaBusiness)], &hub.url, &key, &[source_with(2)]);
    limit(CONNECTIONS);
    let refused = laned.sync("vb", &[]);
    limit(-1);
    let message = text(&refused);
    assert_eq!(exit_code(&refused), 4, "{message}");
    assert!(
        message.contains("too many connections") && message.contains("Lower `connection.lanes`"),
        "{message}"
    );
    assert_eq!(hub.snapshot_count(&key, "vb", &company.id, 2025), 0, "nothing partial reached the hub");
    assert!(laned.spooled().is_empty(), "nor the spool");

    // The way out the message names: one lane reads within the same limit.
    let single = Agent::new(&[erp_plugin(Erp::VismaBusiness)], &hub.url, &key, &[source_with(1)]);
    limit(CONNECTIONS);
    let output = single.sync("vb", &[]);
    limit(-1);
    assert_eq!(exit_code(&output), 0, "{}", text(&output));
    assert_eq!(hub.snapshot_count(&key, "vb", &company.id, 2025), 1);
}

#[test]
fn a_commit_that_takes_longer_than_the_request_timeout_still_completes() {
    // The hub verifies every record before it answers a commit; with a one-second
    // request timeout, 300 000 lines take longer than that on a (debug-built) hub.
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = synthetic_agent(&hub, &key, json!({"voucher_lines": 300_000}));
    let config = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(&agent.config, config.replace("timeout_secs = 10", "timeout_secs = 1")).unwrap();
    let output = agent.sync("synthetic", &[]);
    assert_eq!(exit_code(&output), 0, "{}", text(&output));
    assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1);
}

#[test]
fn a_full_spool_makes_extraction_wait_and_says_why() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
    agent.set_spool(&agent.dir().join("spool"), 2_000);
    hub.stop();
    let output = agent.sync("hello", &[]);
    assert_eq!(exit_code(&output), 6, "{}", text(&output));
    assert!(text(&output).contains("the spool is full"), "{}", text(&output));
    let spooled = std::fs::read_dir(agent.dir().join("spool/ready")).map(|d| d.count()).unwrap_or(0);
    assert!(
        (1..4).contains(&spooled),
        "some snapshots wait in the spool, the rest was not extracted: {spooled}"
    );
    // What is on disk is reported spooled; what was not extracted, deferred.
    let out = text(&output);
    assert_eq!(out.matches("spooled      company").count(), spooled, "{out}");
    assert_eq!(out.matches("deferred     company").count(), 4 - spooled, "{out}");

    hub.restart();
    let first = agent.sync("hello", &[]);
    assert_eq!(exit_code(&first), 0, "{}", text(&first));
    if hub.snapshot_count(&key, "hello", "2", 2025) == 0 {
        // Room freed by the uploads is used by the next run.
        assert_eq!(exit_code(&agent.sync("hello", &[])), 0);
    }
    for company in ["1", "2"] {
        for year in [2024, 2025] {
            assert_eq!(hub.snapshot_count(&key, "hello", company, year), 1, "{company}/{year}");
        }
    }
}

#[test]
fn the_agent_uploads_over_https_trusting_a_private_ca_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("hub.pem"), dir.path().join("hub.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let hub = Hub::start_tls(&cert_path, &key_path);
    assert!(hub.url.starts_with("https://"), "{}", hub.url);
    let key = hub.create_tenant("acme");
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);

    let untrusted = agent.sync("hello", &["--company", "1", "--year", "2025"]);
    let output = text(&untrusted);
    assert_eq!(exit_code(&untrusted), 3, "not a passing outage but the configuration's to fix: {output}");
    assert!(output.contains("cannot be trusted") && output.contains("certificate"), "{output}");
    assert!(output.contains("Resolution:") && output.contains("`hub.ca_file`"), "{output}");
    assert_eq!(agent.spooled().len(), 1, "the data waits in the spool");

    let config = std::fs::read_to_string(&agent.config).unwrap();
    let config =
        config.replace("timeout_secs = 10\n", &format!("timeout_secs = 10\nca_file = {:?}\n", cert_path));
    std::fs::write(&agent.config, config).unwrap();
    let trusted = agent.sync("hello", &[]);
    assert_eq!(exit_code(&trusted), 0, "{}", text(&trusted));
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1);
}

/// Relays one client connection to `target` (host:port), both ways, on threads.
fn relay(client: std::net::TcpStream, target: &str) {
    let Ok(server) = std::net::TcpStream::connect(target) else { return };
    let (mut client_read, mut server_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut server_read, mut client_write) = (server, client);
    std::thread::spawn(move || std::io::copy(&mut client_read, &mut server_write));
    std::thread::spawn(move || std::io::copy(&mut server_read, &mut client_write));
}

/// A relay on loopback standing in for a corporate proxy: it forwards every
/// connection to the hub (which accepts the absolute-form requests a client
/// sends to an HTTP proxy) and counts them.
fn start_proxy(hub_url: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let target = hub_url.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            relay(client, &target);
        }
    });
    (url, connections)
}

#[test]
fn uploads_go_through_the_proxy_from_https_proxy() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let (proxy, connections) = start_proxy(&hub.url);
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
    let output = agent.command(&["sync", "--source", "hello"]).env("HTTPS_PROXY", &proxy).output().unwrap();
    assert_eq!(exit_code(&output), 0, "{}", text(&output));
    assert!(connections.load(std::sync::atomic::Ordering::SeqCst) >= 1, "no request went through the proxy");
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1);
}

/// Replaces `from` with `to` in the agent's configuration file.
fn edit_config(agent: &Agent, from: &str, to: &str) {
    let text = std::fs::read_to_string(&agent.config).expect("config");
    assert!(text.contains(from), "`{from}` is in the configuration");
    std::fs::write(&agent.config, text.replace(from, to)).expect("config");
}

/// Requests the hub logged for `method path`, with their statuses.
fn hub_requests(hub: &Hub, method: &str, path: &str) -> Vec<String> {
    let log = std::fs::read_to_string(&hub.log).expect("hub log");
    let needle = format!("method={method} path={path} ");
    log.lines()
        .filter_map(|line| {
            line.split_once(&needle).map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").into())
        })
        .collect()
}

/// After a refused first run (exit 3, every year refused with `says` and left
/// in the spool), the fix lets the next run deliver exactly what waited.
fn refused_then_delivered(hub: &mut Hub, key: &str, agent: &Agent, says: &str, fix: impl FnOnce(&mut Hub)) {
    let refused = agent.sync("hello", &[]);
    let output = text(&refused);
    assert_eq!(exit_code(&refused), 3, "a configuration error: {output}");
    assert_eq!(output.matches("refused      company").count(), 4, "every year is refused: {output}");
    assert!(output.contains(says) && output.contains("Resolution:"), "says what to do: {output}");
    assert!(output.contains("The data stays in the spool"), "{output}");
    assert!(!output.contains("llk_"), "no API key is printed: {output}");
    assert_eq!(agent.spooled().len(), 4, "every year waits in the spool");
    // `status` says why the last run did not go through.
    let status = agent.command(&["status", "--json"]).output().expect("status runs");
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let last = status["tenants"][0]["sources"][0]["last_outcome"].as_str().unwrap_or_default().to_owned();
    assert!(last.starts_with("configuration error (company 1 2024: ") && last.contains(says), "{last}");
    // Again, with the four snapshots waiting: each is reported once and sent at most once.
    let posts = |hub: &Hub| hub_requests(hub, "POST", "/v1/snapshots").len();
    let before = posts(hub);
    let again = agent.sync("hello", &[]);
    let output = text(&again);
    assert_eq!(exit_code(&again), 3, "{output}");
    assert_eq!(output.matches("refused      company").count(), 4, "each year once: {output}");
    assert!(posts(hub) - before <= 4, "no snapshot is sent twice in a run: {}", posts(hub) - before);
    // A run of one year still reports the others waiting behind the same refusal.
    let one = agent.sync("hello", &["--company", "1", "--year", "2024"]);
    let output = text(&one);
    assert_eq!(exit_code(&one), 3, "not `nothing changed` while data waits: {output}");
    assert!(output.matches("refused      company").count() >= 1, "{output}");

    fix(hub);
    let delivered = agent.sync("hello", &[]);
    assert_eq!(exit_code(&delivered), 0, "{}", text(&delivered));
    assert!(agent.spooled().is_empty(), "the spool is empty after delivery");
    for company in ["1", "2"] {
        for year in [2024, 2025] {
            assert_eq!(hub.snapshot_count(key, "hello", company, year), 1, "{company}/{year}");
        }
    }
    assert_eq!(exit_code(&agent.sync("hello", &[])), 7);
}

#[test]
fn a_refused_api_key_is_a_configuration_error_and_the_corrected_key_delivers_what_waited() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let mistyped = format!("{}x", &key[..key.len() - 1]);
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &mistyped, &[hello_source()]);
    refused_then_delivered(&mut hub, &key, &agent, "refused this tenant's API key", |hub| {
        // One refused upload is enough: the run's other years are not sent to be refused again.
        assert_eq!(hub_requests(hub, "POST", "/v1/snapshots"), ["status=401"; 3], "one per run");
        edit_config(&agent, &mistyped, &key);
    });
}

#[test]
fn a_hub_url_that_is_not_the_hub_is_a_configuration_error_naming_hub_url() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let wrong = format!("{}/ledgerlink", hub.url);
    let agent = Agent::new(&[plugin_library("hello_erp")], &wrong, &key, &[hello_source()]);
    refused_then_delivered(&mut hub, &key, &agent, "Resolution: set `hub.url`", |hub| {
        edit_config(&agent, &wrong, &hub.url);
    });
}

#[test]
fn a_part_larger_than_the_hub_accepts_is_a_configuration_error_and_waits_for_a_larger_limit() {
    let mut hub = Hub::start_args(&["--max-part-bytes", "64"]);
    let key = hub.create_tenant("acme");
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
    refused_then_delivered(&mut hub, &key, &agent, "Resolution: raise the limit", |hub| {
        hub.restart_with_args(&[])
    });
}

#[test]
fn two_plugin_files_with_one_id_run_neither_and_the_sync_says_which() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
    // A partner's copy of the example that kept its id.
    std::fs::copy(plugin_library("hello_erp"), agent.dir().join("plugins/libacme_erp.so")).expect("copy");
    let output = agent.sync("hello", &[]);
    let text = text(&output);
    assert_eq!(exit_code(&output), 4, "{text}");
    assert!(text.contains("plugin `hello-erp` is provided by more than one file"), "{text}");
    assert!(text.contains("libacme_erp.so") && text.contains("libhello_erp.so"), "names both: {text}");
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 0, "nothing ran");
    std::fs::remove_file(agent.dir().join("plugins/libacme_erp.so")).expect("remove the copy");
    assert_eq!(exit_code(&agent.sync("hello", &[])), 0, "one file again: it runs");
}

#[test]
fn a_year_another_run_is_extracting_is_left_to_it_and_not_read_twice() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[hello_source()]);
    let spool =
        ledgerlink_host::spool::Spool::open(&agent.dir().join("data/spool"), u64::MAX).expect("spool");
    let year = |fiscal_year| ledgerlink_host::state::SnapshotKey {
        tenant: "acme".into(),
        source: "hello".into(),
        company: "1".into(),
        fiscal_year,
    };
    // Held as a `ledgerlink sync` extracting 2025 of company 1 would.
    let extracting = spool.lock_year(&year(2025)).expect("lock").expect("free");
    let output = agent.sync("hello", &["--company", "1"]);
    let text = text(&output);
    assert_eq!(exit_code(&output), 6, "{text}");
    assert!(text.contains("another run is extracting this year"), "{text}");
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2024), 1, "the other year went: {text}");
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 0, "{text}");
    assert!(agent.spooled().is_empty(), "2025 was not read: {text}");
    drop(extracting);
    assert_eq!(exit_code(&agent.sync("hello", &["--company", "1"])), 0);
    assert_eq!(hub.snapshot_count(&key, "hello", "1", 2025), 1);
}

#[test]
fn https_to_a_port_without_tls_is_a_configuration_error_naming_the_port() {
    let mut hub = Hub::start();
    let key = hub.create_tenant("acme");
    let https = hub.url.replace("http://", "https://");
    let agent = Agent::new(&[plugin_library("hello_erp")], &https, &key, &[hello_source()]);
    refused_then_delivered(&mut hub, &key, &agent, "does not speak TLS on that port", |hub| {
        edit_config(&agent, &https, &hub.url);
    });
}

#[test]
fn the_settings_every_odbc_plugin_runs_with_pass_config_validate() {
    let fixtures: Vec<(Erp, Fixture)> = [Backend::Sqlite, Backend::Postgres]
        .into_iter()
        .flat_map(|backend| Erp::ALL.into_iter().map(move |erp| (erp, backend)))
        .map(|(erp, backend)| (erp, Fixture::create(FixtureSpec::new(erp, backend)).expect("fixture")))
        .collect();
    let sources: Vec<SourceConfig> = fixtures
        .iter()
        .enumerate()
        .map(|(n, (erp, f))| odbc_source(&format!("{}-{n}", erp.slug()), *erp, f))
        .collect();
    let plugins: Vec<_> = Erp::ALL.into_iter().map(erp_plugin).collect();
    let agent = Agent::new(&plugins, "http://127.0.0.1:9", "llk_unused", &sources);
    let output = agent.command(&["config", "validate"]).output().expect("runs");
    assert_eq!(exit_code(&output), 0, "the plugins' schemas accept their own settings: {}", text(&output));
}

#[test]
fn sync_json_answers_on_stdout_when_the_sync_cannot_start() {
    let agent =
        Agent::new(&[plugin_library("hello_erp")], "http://127.0.0.1:9", "llk_unused", &[hello_source()]);
    let output = agent.sync("helo", &["--json"]);
    assert_eq!(exit_code(&output), 3, "{}", text(&output));
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(json["exit_code"], 3, "{json}");
    assert!(json["error"].as_str().unwrap().contains("helo"), "{json}");
}

#[test]
fn after_a_plugin_crash_the_later_years_say_where_it_crashed_not_that_they_did() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let source = SourceConfig {
        id: "m".into(),
        plugin: "misbehaving".into(),
        settings: json!({"mode": "abort"}),
        years: vec![2024, 2025],
        extra: String::new(),
    };
    let agent = Agent::new(&[plugin_library("fixture_misbehaving")], &hub.url, &key, &[source]);
    let output = agent.sync("m", &[]);
    let text = text(&output);
    assert_eq!(exit_code(&output), 4, "{text}");
    let line = |year: &str| {
        text.lines().find(|l| l.starts_with("failed") && l.contains(year)).unwrap_or("").to_owned()
    };
    assert!(
        line("2024").contains("crashed: signal 6 (SIGABRT) (during extract voucher_lines (company 1, 2024))"),
        "{text}"
    );
    assert!(
        line("2025")
            .contains("earlier, during extract voucher_lines (company 1, 2024), so this call was not run"),
        "{text}"
    );
}
