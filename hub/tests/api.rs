//! Integration tests: the real `ledgerlink-hub` binary on 127.0.0.1:0, spoken to over HTTP.

mod support;

use ledgerlink_plugin_api::canonical::{Decimal, RecordBatch, VoucherLine};
use ledgerlink_protocol::{encode_part, snapshot_id, Manifest, PartFormat};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;
use support::*;

/// Hub with small limits so oversized bodies are cheap to produce.
const SMALL_LIMITS: &[&str] = &["--max-part-bytes", "65536", "--max-manifest-bytes", "65536"];

#[test]
fn upload_commit_and_query_trial_balance_matches_independent_sum() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, &[]);
    let client = hub.client(&key);

    let books = sample_books("0001", 60, 7);
    let snap = build_snapshot(&books, "visma-main");
    let reply = client.open_snapshot(&snap.manifest);
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let body = reply.json();
    let id = body["snapshot_id"].as_str().unwrap().to_owned();
    assert_eq!(id, snapshot_id(&snap.manifest), "the hub's id is the protocol's content address");
    assert_eq!(body["state"], "open");
    assert_eq!(body["missing_parts"], json!([0, 1, 2, 3, 4]));

    // Nothing is visible before commit.
    assert_eq!(client.get("/v1/companies").json(), json!({ "companies": [] }));
    for (i, part) in snap.parts.iter().enumerate() {
        assert_eq!(client.put_part(&id, i, &part.bytes).status, StatusCode::NO_CONTENT);
    }
    client.get(&format!("/v1/snapshots/{id}/entities/accounts")).assert_error(
        409,
        "snapshot_not_committed",
        "not committed",
    );

    let reply = client.commit(&id);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let committed = reply.json();
    assert_eq!(committed["state"], "committed");
    assert_eq!(committed["current"], true);
    let total =
        (books.accounts.len() + books.customers.len() + books.vouchers.len() + books.lines.len()) as u64;
    assert_eq!(committed["records"], total);

    // Trial balance equals the one computed here from the records.
    let reply = client.get("/v1/companies/0001/trial-balance?year=2025");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let tb = reply.json();
    assert_eq!(tb["snapshot_id"], id.as_str());
    assert_eq!(tb["currency"], "NOK");
    let expected = expected_trial_balance(&books.lines);
    assert!(expected.len() >= 5, "the sample touches several accounts");
    assert_eq!(parse_trial_balance(&tb), expected);
    let nets: Decimal = expected.values().map(|r| r.2).sum();
    assert_eq!(nets, Decimal::ZERO);

    // Companies, current, history.
    let companies = client.get("/v1/companies").json();
    assert_eq!(companies["companies"][0]["company_id"], "0001");
    assert_eq!(companies["companies"][0]["source_id"], "visma-main");
    assert_eq!(companies["companies"][0]["years"][0]["current_snapshot_id"], id.as_str());
    assert_eq!(client.current("0001", 2025), Some(id.clone()));
    assert_eq!(client.history("0001", 2025), vec![id.clone()]);
    client.get("/v1/companies/0001/current?year=2024").assert_error(404, "no_current_snapshot", "2024");
    client.get("/v1/companies/0001/current").assert_error(400, "missing_year", "year");
    client.get("/v1/companies/0001/trial-balance?year=abc").assert_error(400, "invalid_year", "abc");

    // Entity stream: NDJSON of every line in order, spanning both parts, exact decimals.
    let reply = client.get(&format!("/v1/snapshots/{id}/entities/voucher_lines"));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/x-ndjson");
    let got: Vec<VoucherLine> = reply.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got, books.lines);
    let accounts = ndjson_lines(&client.get(&format!("/v1/snapshots/{id}/entities/accounts")).text);
    assert_eq!(accounts.len(), books.accounts.len());
    assert_eq!(client.get(&format!("/v1/snapshots/{id}/entities/suppliers")).text, "", "no parts, no lines");
    client.get(&format!("/v1/snapshots/{id}/entities/invoices")).assert_error(
        404,
        "unknown_entity",
        "invoices",
    );

    // Snapshot detail.
    let detail = client.get(&format!("/v1/snapshots/{id}")).json();
    assert_eq!(detail["missing_parts"], json!([]));
    assert_eq!(serde_json::from_value::<Manifest>(detail["manifest"].clone()).unwrap(), snap.manifest);
}

#[test]
fn retried_uploads_and_commits_never_duplicate() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, &[]);
    let client = hub.client(&key);
    let books = sample_books("0001", 20, 11);
    let snap = build_snapshot(&books, "visma-main");

    // First attempt: manifest and two parts, then the "connection drops".
    let first = client.open_snapshot(&snap.manifest);
    assert_eq!(first.status, StatusCode::CREATED);
    let id = first.json()["snapshot_id"].as_str().unwrap().to_owned();
    client.put_part(&id, 0, &snap.parts[0].bytes);
    client.put_part(&id, 3, &snap.parts[3].bytes);

    // Retry from the start: same id, 200, and the hub says what is still missing.
    let again = client.open_snapshot(&snap.manifest);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), json!({ "snapshot_id": id, "state": "open", "missing_parts": [1, 2, 4] }));
    for (i, part) in snap.parts.iter().enumerate() {
        assert_eq!(
            client.put_part(&id, i, &part.bytes).status,
            StatusCode::NO_CONTENT,
            "re-PUT is idempotent"
        );
    }

    // Commit whose response is never read: write the request, wait until it took effect, drop the socket.
    let addr = hub.url.trim_start_matches("http://");
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    write!(
        raw,
        "POST /v1/snapshots/{id}/commit HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    assert!(client.wait_committed(&id, Duration::from_secs(30)), "the first commit took effect");
    drop(raw);

    let retry = client.commit(&id);
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    let retry2 = client.commit(&id);
    assert_eq!(retry.json(), retry2.json(), "commit is idempotent");
    assert_eq!(retry.json()["snapshot_id"], id.as_str());

    // The same upload once more after commit: known, committed, nothing missing.
    let after = client.open_snapshot(&snap.manifest);
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.json(), json!({ "snapshot_id": id, "state": "committed", "missing_parts": [] }));
    assert_eq!(client.put_part(&id, 2, &snap.parts[2].bytes).status, StatusCode::NO_CONTENT);
    assert_eq!(client.upload_and_commit(&snap), id);

    assert_eq!(client.history("0001", 2025), vec![id.clone()], "exactly one snapshot in history");
    let companies = client.get("/v1/companies").json();
    assert_eq!(companies["companies"][0]["years"][0]["snapshots"], 1);

    // A changed upload is a new snapshot and becomes current; the old one stays in history.
    let newer = build_snapshot(&sample_books("0001", 21, 11), "visma-main");
    let new_id = client.upload_and_commit(&newer);
    assert_ne!(new_id, id);
    assert_eq!(client.history("0001", 2025), vec![new_id.clone(), id.clone()]);
    assert_eq!(client.current("0001", 2025), Some(new_id));
}

#[test]
fn bad_input_is_rejected_with_a_reason_and_nothing_becomes_visible() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, SMALL_LIMITS);
    let client = hub.client(&key);
    let books = sample_books("0001", 30, 3);
    let good = build_snapshot(&books, "src");
    let good_id = client.upload_and_commit(&good);
    let good_tb = client.get("/v1/companies/0001/trial-balance?year=2025").json();

    // Later uploads of changed books, each with one lie.
    let books2 = sample_books("0001", 31, 4);
    let base = build_snapshot(&books2, "src");

    // 1. Flipped byte in a part: refused at PUT, nothing kept.
    let id = client.upload_parts_except(&base, &[3]);
    let mut flipped = base.parts[3].bytes.clone();
    flipped[10] ^= 0x01;
    let body = client.put_part(&id, 3, &flipped).assert_error(400, "part_checksum_mismatch", "sha256");
    assert_eq!(body["error"]["details"]["part"], 3);
    let status = client.open_snapshot(&base.manifest).json();
    assert_eq!(status["missing_parts"], json!([3]), "the damaged part was not kept");
    client.commit(&id).assert_error(409, "parts_missing", "[3]");

    // 2. Wrong size: refused at PUT.
    client.put_part(&id, 3, &base.parts[3].bytes[1..]).assert_error(
        400,
        "part_size_mismatch",
        "manifest says",
    );

    // 3. Wrong record count: the manifest claims one more record than part 3 holds.
    let mut lying = base.clone();
    lying.manifest.parts[3].records += 1;
    let id = client.upload(&lying);
    let declared = lying.manifest.parts[3].records;
    client.commit(&id).assert_error(
        400,
        "record_count_mismatch",
        &format!("holds {} records but the manifest says {declared}", declared - 1),
    );

    // 4. Unknown schema version.
    let mut future = base.clone();
    future.manifest.schema_version = 99;
    client.open_snapshot(&future.manifest).assert_error(
        400,
        "unsupported_schema_version",
        "schema_version 99",
    );

    // 5. Oversized bodies: manifest and part.
    let mut huge = serde_json::to_vec(&base.manifest).unwrap();
    huge.extend(vec![b' '; 70_000]);
    client.post_raw("/v1/snapshots", huge).assert_error(413, "body_too_large", "65536");
    client.put_part(&id, 0, vec![0u8; 70_000].as_slice()).assert_error(413, "body_too_large", "65536");
    let mut big_part = base.clone();
    big_part.manifest.parts[0].bytes = 70_000;
    client.open_snapshot(&big_part.manifest).assert_error(400, "part_size", "part 0");

    // 6. Malformed JSON and JSON of the wrong shape.
    client.post_raw("/v1/snapshots", b"{\"protocol_version\": 1,".to_vec()).assert_error(
        400,
        "malformed_json",
        "JSON",
    );
    client.post("/v1/snapshots", &json!({ "protocol_version": 1 })).assert_error(
        400,
        "invalid_body",
        "missing field",
    );

    // 7. Unbalanced voucher: one line off by a cent.
    let mut unbalanced_books = books2.clone();
    unbalanced_books.lines[0].amount += Decimal::new(1, 2);
    let unbalanced = build_snapshot(&unbalanced_books, "src");
    let id = client.upload(&unbalanced);
    let body = client.commit(&id).assert_error(422, "validation_failed", "does not balance");
    assert_eq!(body["error"]["details"]["problems"][0]["field"], "amount");

    // 8. Manifest that lies about its company, year or parts.
    let mut wrong_year = base.clone();
    wrong_year.manifest.fiscal_year = 2031;
    client.open_snapshot(&wrong_year.manifest).assert_error(400, "unknown_fiscal_year", "2031");
    let mut bad_company = base.clone();
    bad_company.manifest.company.currency = "KRONER".into();
    client.open_snapshot(&bad_company.manifest).assert_error(400, "invalid_company", "KRONER");
    let mut dup = base.clone();
    dup.manifest.parts[2].index = 1;
    client.open_snapshot(&dup.manifest).assert_error(400, "duplicate_part_index", "part index 1");
    let mut gap = base.clone();
    gap.manifest.parts[4].index = 9;
    client.open_snapshot(&gap.manifest).assert_error(400, "missing_part_index", "part index 4 is missing");
    let mut wrong_entity = base.clone();
    wrong_entity.manifest.parts[0].entity = ledgerlink_plugin_api::canonical::Entity::TaxCodes;
    let id = client.upload(&wrong_entity);
    client.commit(&id).assert_error(400, "invalid_record", "part 0 (tax_codes), line 1");
    let mut not_lines = base.clone();
    not_lines.manifest.parts[0].entity = ledgerlink_plugin_api::canonical::Entity::VoucherLines;
    let id = client.upload(&not_lines);
    client.commit(&id).assert_error(400, "invalid_record", "part 0 (voucher_lines), line 1: not a valid");

    // 9. A voucher dated outside the fiscal year.
    let mut late_books = books2.clone();
    for line in late_books.lines.iter_mut().filter(|l| l.voucher_id == late_books.vouchers[0].id) {
        line.date = ledgerlink_plugin_api::canonical::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    }
    let id = client.upload(&build_snapshot(&late_books, "src"));
    client.commit(&id).assert_error(422, "validation_failed", "outside fiscal year 2025");

    // 10. Unknown snapshot, unknown part.
    client.commit(&"0".repeat(64)).assert_error(404, "snapshot_not_found", "does not exist");
    client.put_part(&good_id, 17, b"x").assert_error(404, "part_not_found", "no part `17`");

    // Nothing of the above became visible.
    assert_eq!(client.current("0001", 2025), Some(good_id.clone()));
    assert_eq!(client.history("0001", 2025), vec![good_id]);
    assert_eq!(client.get("/v1/companies/0001/trial-balance?year=2025").json(), good_tb);
    assert_eq!(client.get("/v1/companies").json()["companies"].as_array().unwrap().len(), 1);
}

#[test]
fn tenants_are_isolated_and_revoked_keys_refused() {
    let data = DataDir::new();
    let key_a = create_tenant(&data.path, "tenant-a");
    let key_b = create_tenant(&data.path, "tenant-b");
    let hub = Hub::start(&data.path, &[]);
    let (a, b) = (hub.client(&key_a), hub.client(&key_b));

    let snap = build_snapshot(&sample_books("B1", 10, 5), "src-b");
    let committed = b.upload_and_commit(&snap);
    let open_snap = build_snapshot(&sample_books("B1", 12, 5), "src-b");
    let open = b.upload(&open_snap);

    // Everything of B is 404 to A: snapshots, parts, commit, entities, companies, trial balance.
    for id in [&committed, &open] {
        a.get(&format!("/v1/snapshots/{id}")).assert_error(404, "snapshot_not_found", id);
        a.put_part(id, 0, &open_snap.parts[0].bytes).assert_error(404, "snapshot_not_found", id);
        a.commit(id).assert_error(404, "snapshot_not_found", id);
        a.get(&format!("/v1/snapshots/{id}/entities/accounts")).assert_error(404, "snapshot_not_found", id);
    }
    assert_eq!(a.get("/v1/companies").json(), json!({ "companies": [] }));
    for path in [
        "/v1/companies/B1/snapshots?year=2025",
        "/v1/companies/B1/current?year=2025",
        "/v1/companies/B1/trial-balance?year=2025",
        "/v1/companies/B1/trial-balance?year=2025&source=src-b",
    ] {
        a.get(path).assert_error(404, "company_not_found", "B1");
    }
    // B's open snapshot is untouched by A's attempts.
    assert_eq!(b.get(&format!("/v1/snapshots/{open}")).json()["state"], "open");

    // The same content uploaded by A is A's own new snapshot (201, nothing shared, nothing leaked).
    let reply = a.open_snapshot(&snap.manifest);
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json()["missing_parts"], json!([0, 1, 2, 3, 4]));
    assert_eq!(b.history("B1", 2025), vec![committed.clone()]);

    // Authentication failures are 401 with a JSON error.
    let anonymous = hub.client("");
    let r = anonymous.http.get(format!("{}/v1/companies", hub.url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "unauthorized");
    hub.client("llk_not-a-key").get("/v1/companies").assert_error(401, "unauthorized", "not valid");
    revoke_tenant(&data.path, "tenant-a");
    a.get("/v1/companies").assert_error(401, "unauthorized", "revoked");
    a.open_snapshot(&snap.manifest).assert_error(401, "unauthorized", "revoked");
    assert_eq!(b.get("/v1/companies").status, StatusCode::OK, "B is unaffected");
    let list = run(&["tenant", "list", "--data", data.path.to_str().unwrap()]);
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("tenant-a\trevoked") && list.contains("tenant-b\tactive"), "{list}");
    assert!(!list.contains("llk_"), "keys are never shown again");

    // Same company id from two sources of one tenant: ambiguous unless `source=` picks one.
    b.upload_and_commit(&build_snapshot(&sample_books("B1", 8, 9), "src-other"));
    let body = b.get("/v1/companies/B1/current?year=2025").assert_error(409, "ambiguous_company", "source=");
    assert_eq!(body["error"]["details"]["sources"], json!(["src-b", "src-other"]));
    assert_eq!(
        b.get("/v1/companies/B1/current?year=2025&source=src-b").json()["snapshot_id"],
        committed.as_str()
    );
    assert_eq!(b.get("/v1/companies").json()["companies"].as_array().unwrap().len(), 2);
}

#[test]
fn commit_works_after_the_hub_is_killed_between_upload_and_commit() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let books = sample_books("0001", 40, 21);
    let snap = build_snapshot(&books, "src");

    let hub = Hub::start(&data.path, &[]);
    let id = hub.client(&key).upload(&snap);
    hub.kill();

    let hub = Hub::start(&data.path, &[]);
    let client = hub.client(&key);
    let status = client.open_snapshot(&snap.manifest);
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.json()["missing_parts"], json!([]), "every uploaded part survived");
    let reply = client.commit(&id);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let tb = client.get("/v1/companies/0001/trial-balance?year=2025").json();
    assert_eq!(parse_trial_balance(&tb), expected_trial_balance(&books.lines));

    // And the committed state survives another crash.
    hub.kill();
    let hub = Hub::start(&data.path, &[]);
    assert_eq!(hub.client(&key).current("0001", 2025), Some(id));
}

#[test]
fn public_endpoints_openapi_and_agent_hello() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, &[]);
    let anonymous = reqwest::blocking::Client::new();

    let health = anonymous.get(format!("{}/healthz", hub.url)).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let served: Value = anonymous.get(format!("{}/v1/openapi.json", hub.url)).send().unwrap().json().unwrap();
    let file: Value = serde_json::from_str(ledgerlink_hub::api::OPENAPI_JSON).unwrap();
    assert_eq!(served, file);
    let documented: BTreeSet<String> = served["paths"].as_object().unwrap().keys().cloned().collect();
    let routed: BTreeSet<String> =
        ledgerlink_hub::server::route_list().iter().map(|r| r.1.to_owned()).collect();
    assert_eq!(documented, routed);

    let client = hub.client(&key);
    let r = client.get("/v1/nothing-here");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "not_found");

    let ua = "Ledgerlink/0.3.1 (srv-erp01; Windows Server 2022; NT SERVICE\\ledgerlink; Visma Business)";
    let hello = json!({ "agent_id": "agent-1", "version": "0.3.1", "plugins": [{ "id": "visma-business", "version": "1.2.0" }] });
    let r = client
        .http
        .post(format!("{}/v1/agents/hello", hub.url))
        .bearer_auth(&key)
        .header("user-agent", ua)
        .json(&hello)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().unwrap()["protocol_versions"], json!([1]));
    let agents = client.get("/v1/agents").json();
    let agent = &agents["agents"][0];
    assert_eq!(agent["agent_id"], "agent-1");
    assert_eq!(agent["user_agent"], ua);
    assert_eq!(agent["os"], "Windows Server 2022");
    assert_eq!(agent["erp"], "Visma Business");
    assert_eq!(agent["plugins"][0]["id"], "visma-business");
    let r = client
        .http
        .post(format!("{}/v1/agents/hello", hub.url))
        .bearer_auth(&key)
        .header("user-agent", "curl/8")
        .json(&hello)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "invalid_user_agent");

    // The request log names the tenant and never the key.
    hub.kill();
    let log = std::fs::read_to_string(data.path.with_extension("log")).unwrap();
    assert!(log.contains("tenant=acme") || log.contains("\"tenant\":\"acme\""), "{log}");
    assert!(log.contains("/v1/agents/hello"), "{log}");
    assert!(!log.contains(&key), "the API key must never be logged");
}

#[test]
fn plain_http_is_refused_off_loopback_and_tls_serves() {
    let data = DataDir::new();
    let out = run(&["serve", "--listen", "0.0.0.0:0", "--data", data.path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve plain HTTP") && err.contains("--tls-cert"), "{err}");

    let cert = rcgen::generate_simple_self_signed(vec!["hub.test".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let hub = Hub::start(
        &data.path,
        &["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()],
    );
    let addr: std::net::SocketAddr = hub.url.strip_prefix("https://").expect("https URL").parse().unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("hub.test", addr)
        .build()
        .unwrap();
    let r = client.get(format!("https://hub.test:{}/healthz", addr.port())).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let plain = reqwest::blocking::Client::new().get(format!("http://{addr}/healthz")).send();
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP is not served on a TLS port"
    );
}

#[test]
fn part_codec_output_is_what_the_hub_stores_and_serves() {
    // A single-part snapshot built with `encode_part` streams back byte-for-byte the same records.
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, &[]);
    let client = hub.client(&key);
    let books = sample_books("0002", 5, 1);
    let snap = manifest_for(
        &books,
        "src",
        vec![
            encode_part(PartFormat::Ndjson, &RecordBatch::Accounts(books.accounts.clone())).unwrap(),
            encode_part(PartFormat::Ndjson, &RecordBatch::VoucherLines(books.lines.clone())).unwrap(),
        ],
    );
    let id = client.upload_and_commit(&snap);
    let text = client.get(&format!("/v1/snapshots/{id}/entities/voucher_lines")).text;
    let mut expected = Vec::new();
    ledgerlink_protocol::write_batch_ndjson(&RecordBatch::VoucherLines(books.lines.clone()), &mut expected)
        .unwrap();
    assert_eq!(text.as_bytes(), expected.as_slice());
    assert!(text.contains(&format!("\"amount\":\"{}\"", books.lines[0].amount)), "exact decimal strings");
}

#[test]
fn postcard_parts_are_verified_and_served_like_ndjson_ones() {
    let data = DataDir::new();
    let (key_a, key_b) = (create_tenant(&data.path, "ndjson"), create_tenant(&data.path, "postcard"));
    let hub = Hub::start(&data.path, &[]);
    let (ndjson, postcard) = (hub.client(&key_a), hub.client(&key_b));

    let capabilities = postcard.get("/v1/capabilities").json();
    assert_eq!(capabilities["part_formats"], json!(["postcard", "ndjson"]), "{capabilities}");
    assert_eq!(capabilities["protocol_versions"], json!([1]));

    let books = sample_books("0001", 40, 11);
    let as_json = build_snapshot(&books, "src");
    let as_postcard = build_snapshot_as(PartFormat::Postcard, &books, "src");
    assert_ne!(snapshot_id(&as_json.manifest), snapshot_id(&as_postcard.manifest));
    let (id_a, id_b) = (ndjson.upload_and_commit(&as_json), postcard.upload_and_commit(&as_postcard));

    let tb = |client: &Client| {
        parse_trial_balance(&client.get("/v1/companies/0001/trial-balance?year=2025").json())
    };
    assert_eq!(tb(&postcard), expected_trial_balance(&books.lines));
    assert_eq!(tb(&postcard), tb(&ndjson));
    for entity in ["accounts", "customers", "vouchers", "voucher_lines"] {
        let served =
            |client: &Client, id: &str| client.get(&format!("/v1/snapshots/{id}/entities/{entity}")).text;
        let text = served(&postcard, &id_b);
        assert!(!text.is_empty(), "{entity}");
        assert_eq!(text, served(&ndjson, &id_a), "{entity} is served as the same NDJSON");
    }

    // A voucher that does not balance is found in postcard parts too.
    let mut unbalanced = sample_books("0001", 41, 12);
    unbalanced.lines[5].amount += Decimal::ONE;
    let snap = build_snapshot_as(PartFormat::Postcard, &unbalanced, "src");
    let id = postcard.upload(&snap);
    let voucher = &unbalanced.lines[5].voucher_id;
    postcard.commit(&id).assert_error(
        422,
        "validation_failed",
        &format!("voucher `{voucher}` does not balance"),
    );

    // NDJSON bytes under a manifest that says postcard: refused, naming part and record.
    let books3 = sample_books("0001", 42, 13);
    let mut parts = build_snapshot_as(PartFormat::Postcard, &books3, "src").parts;
    parts[0] = encode_part(PartFormat::Ndjson, &RecordBatch::Accounts(books3.accounts.clone())).unwrap();
    let mut lying = manifest_for(&books3, "src", parts);
    lying.manifest.part_format = PartFormat::Postcard;
    let id = postcard.upload(&lying);
    postcard.commit(&id).assert_error(400, "invalid_record", "part 0 (accounts), record 1");
    assert_eq!(postcard.current("0001", 2025), Some(id_b), "nothing bad became current");
    drop(hub);

    // A hub told to read NDJSON only says so, and refuses postcard manifests with the way out.
    let hub = Hub::start(&data.path, &["--no-postcard-parts"]);
    let client = hub.client(&key_b);
    assert_eq!(client.get("/v1/capabilities").json()["part_formats"], json!(["ndjson"]));
    let snap = build_snapshot_as(PartFormat::Postcard, &sample_books("0001", 43, 14), "src");
    client.open_snapshot(&snap.manifest).assert_error(400, "unsupported_part_format", "GET /v1/capabilities");
    client.upload_and_commit(&build_snapshot(&sample_books("0001", 43, 14), "src"));
}

#[test]
fn parts_damaged_on_disk_before_commit_are_asked_for_again_in_part_order() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    // Two threads even on one core: parts 3 and 4 (the voucher lines) are checked side by side.
    let hub = Hub::start(&data.path, &["--verify-threads", "2"]);
    let client = hub.client(&key);
    let books = sample_books("0001", 60, 21);
    let snap = build_snapshot_as(PartFormat::Postcard, &books, "src");
    let id = client.upload(&snap);
    for part in ["000003.zst", "000004.zst"] {
        let blob = std::fs::read_dir(data.path.join("parts"))
            .unwrap()
            .map(|tenant| tenant.unwrap().path().join(&id).join(part))
            .find(|path| path.exists())
            .expect("the stored part");
        let mut bytes = std::fs::read(&blob).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&blob, bytes).unwrap();
    }

    // The first damaged part in part order is named, as one pass would find it.
    client.commit(&id).assert_error(409, "parts_missing", "stored part 3 is damaged");
    assert_eq!(client.current("0001", 2025), None, "nothing became visible");
    assert_eq!(client.put_part(&id, 3, &snap.parts[3].bytes).status, StatusCode::NO_CONTENT);
    let second = client.commit(&id);
    assert_eq!(second.status, StatusCode::CONFLICT, "{:?}", second.json());
    assert_eq!(second.json()["error"]["details"]["missing_parts"], json!([4]));
    assert_eq!(client.open_snapshot(&snap.manifest).json()["missing_parts"], json!([4]));
    assert_eq!(client.current("0001", 2025), None, "still nothing visible");
    assert_eq!(client.put_part(&id, 4, &snap.parts[4].bytes).status, StatusCode::NO_CONTENT);
    assert_eq!(client.commit(&id).status, StatusCode::OK);
    assert_eq!(client.current("0001", 2025), Some(id));
}

#[test]
fn the_snapshot_offered_last_is_current_even_when_it_came_before_or_an_older_one_commits_last() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, &[]);
    let client = hub.client(&key);
    let snapshot = |vouchers| build_snapshot(&sample_books("0001", vouchers, 7), "visma-main");
    let (a, b) = (snapshot(10), snapshot(11));

    let a_id = client.upload_and_commit(&a);
    let b_id = client.upload_and_commit(&b);
    assert_eq!(client.current("0001", 2025), Some(b_id.clone()));
    // The ERP went back to state A: the agent offers the very same snapshot again.
    let again = client.open_snapshot(&a.manifest);
    assert_eq!(again.json()["state"], "committed", "{}", again.text);
    assert_eq!(client.current("0001", 2025), Some(a_id.clone()), "A is the data read last");
    assert_eq!(client.commit(&a_id).status, StatusCode::OK);
    assert_eq!(client.current("0001", 2025), Some(a_id.clone()));
    assert_eq!(client.history("0001", 2025).len(), 2, "no new version for the same data");

    // An older snapshot whose commit finishes after a newer one's (its verification
    // outlived the agent's patience; the agent offered newer data meanwhile).
    let (late, newer) = (snapshot(12), snapshot(13));
    let late_id = client.upload_parts_except(&late, &[]);
    let newer_id = client.upload_and_commit(&newer);
    assert_eq!(client.commit(&late_id).status, StatusCode::OK);
    assert_eq!(
        client.current("0001", 2025),
        Some(newer_id.clone()),
        "the late commit does not displace newer data"
    );
    let summary = client.commit(&late_id).json();
    assert_eq!(summary["current"], false, "{summary}");
    assert_eq!(client.commit(&newer_id).json()["current"], true);
}

/// An SSE control stream held open on a raw socket; `ended` tells whether the hub closed it.
struct EventStream {
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl EventStream {
    fn open(hub: &Hub, key: &str, agent_id: &str) -> EventStream {
        use std::io::Read;
        let addr = hub.url.trim_start_matches("http://").to_owned();
        let mut socket = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            socket,
            "GET /v1/control/sse?agent_id={agent_id}&heartbeat_secs=1 HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ended.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // The hub ends a chunked stream with a zero-length chunk, then (HTTP/1.1) may keep the socket.
            let mut tail = Vec::new();
            while let Ok(n) = socket.read(&mut buffer) {
                tail.extend_from_slice(&buffer[..n]);
                if n == 0 || tail.windows(5).any(|w| w == b"0\r\n\r\n") {
                    break;
                }
                tail.drain(..tail.len().saturating_sub(8));
            }
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        EventStream { ended }
    }

    fn ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn an_sse_agent_that_stopped_answering_pings_loses_its_stream_and_one_that_never_did_keeps_it() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, &[]);
    let client = hub.client(&key);
    // An older agent: it posts (an empty batch here, its status in life) but never a pong.
    let older = EventStream::open(&hub, &key, "older");
    // A current agent answers one ping, then hangs.
    let hung = EventStream::open(&hub, &key, "hung");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.post("/v1/control/messages?agent_id=older", &json!([])).status, StatusCode::NO_CONTENT);
    let pong = client.post("/v1/control/messages?agent_id=hung", &json!([{"type": "pong"}]));
    assert_eq!(pong.status, StatusCode::NO_CONTENT, "{}", pong.text);
    let started = std::time::Instant::now();
    while !hung.ended() && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(hung.ended(), "the hub ended the stream of the agent that stopped answering");
    assert!(started.elapsed() >= Duration::from_secs(2), "not before three heartbeats passed");
    assert!(!older.ended(), "an agent that never sends a pong is not judged by pongs");
}
