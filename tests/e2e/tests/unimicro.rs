//! Uni Micro end to end: the unimicro plugin against the API emulator (429s,
//! expiring tokens, slow answers), through the real host into a real hub.

use ledgerlink_e2e::agent::{text, Agent, SourceConfig};
use ledgerlink_e2e::emulator::{Emulator, CLIENT_SECRET};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::{plugin_library, xmllint_saf_t_130};
use ledgerlink_plugin_api::canonical::Decimal;
use serde_json::{json, Value};

fn source(emulator: &Emulator, extra: Value) -> SourceConfig {
    SourceConfig {
        id: "uni".into(),
        plugin: "unimicro".into(),
        settings: emulator.settings(extra),
        years: vec![2024, 2025],
        extra: String::new(),
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn every_entity_syncs_through_429s_and_expired_tokens_and_balances_equal_the_emulator() {
    // Every 60th call is rate-limited; a token dies after 40 calls.
    let emulator = Emulator::start(&[
        "--rate-limit-every",
        "60",
        "--token-max-requests",
        "40",
        "--vouchers-per-year",
        "150",
    ]);
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(
        &[plugin_library("unimicro")],
        &hub.url,
        &key,
        &[source(&emulator, json!({ "page_size": 100, "timeout_secs": 10 }))],
    );
    let output = agent.sync("uni", &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");

    let stats = emulator.get("/_emulator/stats");
    assert!(stats["rate_limited"].as_u64().unwrap() > 0, "the emulator answered 429: {stats}");
    assert!(stats["unauthorized"].as_u64().unwrap() > 0, "a token expired: {stats}");
    assert!(stats["tokens_issued"].as_u64().unwrap() > 1, "a new token was fetched after the 401: {stats}");

    let (_, companies) = hub.get(&key, "/v1/companies");
    let listed = companies["companies"].as_array().expect("companies");
    assert_eq!(listed.len(), 2, "both emulated companies: {companies}");
    for (org, company_key) in [
        ("921876543", "0f6a3b52-7c1d-4e8a-9b7e-2d4c5a6b7c81"),
        ("932198765", "8e2b9c14-3f5a-4d6b-a1c2-9e8f7d6c5b42"),
    ] {
        for year in [2024, 2025] {
            let expected =
                emulator.get(&format!("/_emulator/trial-balance?company={company_key}&year={year}"));
            let expected = expected["accounts"].as_object().expect("accounts");
            let tb = hub.trial_balance(&key, "uni", org, year);
            let got = tb["accounts"].as_object().expect("accounts");
            assert_eq!(got.len(), expected.len(), "{org} {year}: {tb}");
            for (account, row) in expected {
                for side in ["debit", "credit"] {
                    let want: Decimal = row[side].as_str().unwrap().parse().unwrap();
                    let have: Decimal = got[account][side].as_str().unwrap().parse().unwrap();
                    assert_eq!(have, want, "{org} {year} {account} {side}");
                }
            }
        }
        // Master data arrived: every entity has records.
        let (_, current) = hub.get(&key, &format!("/v1/companies/{org}/current?year=2025"));
        let (_, snapshot) =
            hub.get(&key, &format!("/v1/snapshots/{}", current["snapshot_id"].as_str().unwrap()));
        let parts = snapshot["manifest"]["parts"].as_array().expect("parts");
        for entity in [
            "accounts",
            "customers",
            "suppliers",
            "dimension_types",
            "dimension_values",
            "tax_codes",
            "vouchers",
            "voucher_lines",
        ] {
            let records: u64 =
                parts.iter().filter(|p| p["entity"] == entity).map(|p| p["records"].as_u64().unwrap()).sum();
            assert!(records > 0, "{org}: {entity} extracted: {snapshot}");
        }
    }

    // The SAF-T 1.30 export of Uni Micro data validates.
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/v1/companies/921876543/saf-t?year=2025", hub.url))
        .bearer_auth(&key)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("uni.xml");
    std::fs::write(&file, &bytes).unwrap();
    xmllint_saf_t_130(&file).unwrap_or_else(|e| panic!("not valid SAF-T 1.30: {e}"));

    // Neither the client secret nor any token shows in output, agent files or the hub log.
    let mut texts = vec![out];
    for f in files_under(agent.dir()).into_iter().chain([hub.log.clone()]) {
        if f.extension().is_some_and(|e| e == "toml") {
            continue; // the configuration holds the secret by design
        }
        texts.push(String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).into_owned());
    }
    for t in &texts {
        assert!(!t.contains(CLIENT_SECRET), "the client secret leaked");
        assert!(!t.contains("umat_") && !t.contains("umrt_"), "a token leaked");
    }
}

#[test]
fn a_slow_api_times_out_with_a_clear_error_and_bad_credentials_fail_once_clearly() {
    let emulator = Emulator::start(&[
        "--slow-entity",
        "journalentrylines",
        "--slow-ms",
        "3000",
        "--vouchers-per-year",
        "5",
    ]);
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(
        &[plugin_library("unimicro")],
        &hub.url,
        &key,
        &[source(&emulator, json!({ "timeout_secs": 1 }))],
    );
    let output = agent.sync("uni", &["--company", "921876543", "--year", "2024"]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(text(&output).contains("did not answer in time"), "{}", text(&output));

    let wrong = SourceConfig {
        settings: json!({ "client_secret": "Wrong-Secret-1618" }),
        ..source(&emulator, json!({}))
    };
    let mut settings = emulator.settings(json!({}));
    settings["client_secret"] = json!("Wrong-Secret-1618");
    let agent =
        Agent::new(&[plugin_library("unimicro")], &hub.url, &key, &[SourceConfig { settings, ..wrong }]);
    let output = agent.sync("uni", &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(4), "{out}");
    assert!(out.contains("refused the credentials"), "{out}");
    assert!(!out.contains("Wrong-Secret-1618"), "the wrong secret is not shown either");
}
