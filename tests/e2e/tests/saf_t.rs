//! SAF-T end to end: the official example through the saf-t plugin into a real hub,
//! the 1.30 export (CLI and HTTP) validated by xmllint, and the round trip back in.

use ledgerlink_e2e::agent::{text, Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::{binary, plugin_library, repo_root, xmllint_saf_t_130};
use ledgerlink_plugin_api::canonical::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

type Totals = BTreeMap<String, (Decimal, Decimal)>;

/// Debit and credit per account, read from the XML with roxmltree (not the plugin's parser).
fn totals_from_xml(file: &Path) -> Totals {
    let text = std::fs::read_to_string(file).expect("read xml");
    let doc = roxmltree::Document::parse(text.trim_start_matches('\u{feff}')).expect("xml parses");
    let mut totals = Totals::new();
    for line in doc.descendants().filter(|n| n.has_tag_name("Line")) {
        let child = |name: &str| line.children().find(|c| c.has_tag_name(name));
        let account = child("AccountID").and_then(|a| a.text()).expect("AccountID").trim().to_owned();
        let amount = |side: &str| {
            child(side)
                .and_then(|s| s.children().find(|c| c.has_tag_name("Amount")))
                .map(|a| a.text().unwrap_or("0").trim().parse::<Decimal>().expect("decimal"))
        };
        let row = totals.entry(account).or_default();
        if let Some(d) = amount("DebitAmount") {
            row.0 += d;
        }
        if let Some(c) = amount("CreditAmount") {
            row.1 += c;
        }
    }
    totals
}

fn hub_totals(tb: &Value) -> Totals {
    tb["accounts"]
        .as_object()
        .expect("accounts")
        .iter()
        .map(|(k, v)| {
            let d = |f: &str| v[f].as_str().expect("decimal string").parse::<Decimal>().expect("decimal");
            (k.clone(), (d("debit"), d("credit")))
        })
        .collect()
}

fn saf_t_source(id: &str, dir: &Path) -> SourceConfig {
    SourceConfig {
        id: id.into(),
        plugin: "saf-t".into(),
        settings: json!({ "directory": dir.to_str().expect("utf-8 path") }),
        years: vec![2015],
        extra: String::new(),
    }
}

const COMPANY: &str = "999999999";

#[test]
fn official_example_imports_exports_as_valid_1_30_and_round_trips() {
    let example = repo_root().join("tests/fixtures/saf-t/example-999999999-v1.10.xml");
    let expected = totals_from_xml(&example);
    assert!(expected.len() >= 3, "the example has lines: {expected:?}");

    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let input = tempfile::tempdir().unwrap();
    std::fs::copy(&example, input.path().join("example.xml")).unwrap();
    let agent = Agent::new(&[plugin_library("saf_t")], &hub.url, &key, &[saf_t_source("saft", input.path())]);
    let output = agent.sync("saft", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let imported = hub_totals(&hub.trial_balance(&key, "saft", COMPANY, 2015));
    assert_eq!(imported, expected, "hub trial balance = sums of DebitAmount/CreditAmount in the XML");

    // Export with the CLI (the hub keeps serving) and validate against the 1.30 schema.
    let exported = tempfile::tempdir().unwrap();
    let file = exported.path().join("export.xml");
    let cli = Command::new(binary("ledgerlink-hub"))
        .args([
            "export",
            "saf-t",
            "--tenant",
            "acme",
            "--company",
            COMPANY,
            "--year",
            "2015",
            "--source",
            "saft",
        ])
        .args(["--contact-name", "Ola Nordmann", "--contact-phone", "99999999", "--out"])
        .arg(&file)
        .arg("--data")
        .arg(hub.data_dir().join("hub"))
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", text(&cli));
    xmllint_saf_t_130(&file).unwrap_or_else(|e| panic!("CLI export is not valid SAF-T 1.30: {e}"));
    assert_eq!(totals_from_xml(&file), expected, "the export carries the same lines");

    // The HTTP endpoint streams the same kind of file.
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/v1/companies/{COMPANY}/saf-t?year=2015", hub.url))
        .bearer_auth(&key)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let http_file = exported.path().join("http.xml");
    std::fs::write(&http_file, response.bytes().unwrap()).unwrap();
    xmllint_saf_t_130(&http_file).unwrap_or_else(|e| panic!("HTTP export is not valid SAF-T 1.30: {e}"));
    let (status, body) = hub.get(&key, &format!("/v1/companies/{COMPANY}/saf-t?year=1999"));
    assert_eq!(status, 404, "{body}");

    // Round trip: the 1.30 export imported by another tenant gives the same trial balance.
    let key2 = hub.create_tenant("roundtrip");
    let again = tempfile::tempdir().unwrap();
    std::fs::copy(&file, again.path().join("export-1.30.xml")).unwrap();
    let agent2 =
        Agent::new(&[plugin_library("saf_t")], &hub.url, &key2, &[saf_t_source("saft130", again.path())]);
    let output = agent2.sync("saft130", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(hub_totals(&hub.trial_balance(&key2, "saft130", COMPANY, 2015)), expected);
}

#[test]
fn a_malformed_file_is_reported_with_its_line_and_nothing_is_uploaded() {
    let example =
        std::fs::read_to_string(repo_root().join("tests/fixtures/saf-t/example-999999999-v1.10.xml"))
            .unwrap();
    // Break an amount deep in the ledger: a decimal comma, as some exports write.
    let broken = example.replacen("<n1:Amount>2500</n1:Amount>", "<n1:Amount>2500,00</n1:Amount>", 1);
    assert_ne!(broken, example);
    let line = broken.lines().position(|l| l.contains("2500,00")).unwrap() + 1;
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("broken.xml"), &broken).unwrap();
    let agent = Agent::new(&[plugin_library("saf_t")], &hub.url, &key, &[saf_t_source("saft", input.path())]);
    let output = agent.sync("saft", &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(4), "a source error: {out}");
    assert!(out.contains(&format!("line {line}")), "names line {line}: {out}");
    assert!(out.contains("Amount"), "names the element: {out}");

    // Unbalanced structure is caught too, with its line.
    let truncated = &example[..example.len() / 2];
    std::fs::write(input.path().join("broken.xml"), truncated).unwrap();
    let output = agent.sync("saft", &[]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(text(&output).contains("line "), "{}", text(&output));

    let (status, companies) = hub.get(&key, "/v1/companies");
    assert_eq!(status, 200);
    assert_eq!(companies["companies"].as_array().map(Vec::len), Some(0), "nothing uploaded: {companies}");
}
