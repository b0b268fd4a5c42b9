//! Support access only with the customer's consent, against the real hub binary:
//! support reads a tenant's data only under the tenant's active grant, every read
//! is logged where the customer sees it, and a withdrawn grant closes access at once.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

/// GET `path` with `token`, as support reading `tenant`'s data when given.
fn support_get(hub: &Hub, token: &str, tenant: Option<&str>, path: &str) -> Reply {
    let client = hub.client(token);
    let mut request = client.http.get(format!("{}{path}", hub.url)).bearer_auth(token);
    if let Some(tenant) = tenant {
        request = request.header("Ledgerlink-Tenant", tenant);
    }
    let response = request.send().unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    Reply { status, content_type, text: response.text().unwrap() }
}

fn delete(client: &Client, path: &str) -> Reply {
    let response =
        client.http.delete(format!("{}{path}", client.base)).bearer_auth(&client.key).send().unwrap();
    let status = response.status();
    Reply { status, content_type: "application/json".into(), text: response.text().unwrap() }
}

fn grant(client: &Client, body: Value) -> Value {
    let reply = client.post("/v1/support-access", &body);
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()
}

const TRIAL_BALANCE: &str = "/v1/companies/0001/trial-balance?year=2025";

#[test]
fn support_reads_tenant_data_only_under_an_active_grant_and_every_read_is_logged() {
    let TwoTenants { data, acme_key, globex_key, alice, victor, hub } = TwoTenants::start();
    let acme = hub.client(&acme_key);
    let globex = hub.client(&globex_key);
    acme.upload_and_commit(&build_snapshot(&sample_books("0001", 40, 3), "visma-main"));
    let own = acme.get(TRIAL_BALANCE);
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);

    // No header, no grant, another tenant's grant: no data.
    support_get(&hub, &alice, None, TRIAL_BALANCE).assert_error(
        400,
        "tenant_header_required",
        "Ledgerlink-Tenant",
    );
    // A tenant key reads its own data only, and says so when asked for another's.
    support_get(&hub, &globex_key, Some("acme"), TRIAL_BALANCE).assert_error(
        400,
        "tenant_header_mismatch",
        "globex",
    );
    assert_eq!(support_get(&hub, &acme_key, Some("acme"), TRIAL_BALANCE).json(), own.json());
    let refused = support_get(&hub, &alice, Some("acme"), TRIAL_BALANCE);
    let body = refused.assert_error(403, "consent_required", "ledgerlink support-access grant");
    assert_eq!(body["error"]["details"]["scope"], "data");
    grant(&acme, json!({ "hours": 2 }));
    support_get(&hub, &alice, Some("acme"), TRIAL_BALANCE).assert_error(
        403,
        "consent_required",
        "has not granted",
    );
    grant(&globex, json!({ "hours": 2, "scopes": ["data"] }));
    support_get(&hub, &alice, Some("acme"), TRIAL_BALANCE).assert_error(403, "consent_required", "acme");
    support_get(&hub, &alice, Some("nobody"), TRIAL_BALANCE).assert_error(404, "tenant_not_found", "nobody");
    let forged = format!("lls_{}", "0".repeat(64));
    support_get(&hub, &forged, Some("acme"), TRIAL_BALANCE).assert_error(401, "unauthorized", "not valid");

    // With a grant of data, support reads what the customer reads; a viewer too.
    let granted =
        grant(&acme, json!({ "hours": 4, "scopes": ["data", "diagnostics"], "reason": "ticket 4711" }));
    assert_eq!(granted["scopes"], json!(["diagnostics", "data"]));
    assert_eq!(granted["active"], true);
    assert_eq!(granted["granted_by"], "tenant acme (its API key)");
    let read = support_get(&hub, &alice, Some("acme"), TRIAL_BALANCE);
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.json(), own.json(), "support sees the customer's trial balance");
    let companies = support_get(&hub, &victor, Some("acme"), "/v1/companies");
    assert_eq!(companies.json(), acme.get("/v1/companies").json());

    // A grant of data opens reads only: no upload, control channel or agent list, header or not.
    let http = reqwest::blocking::Client::new();
    for (method, path) in [
        ("POST", "/v1/snapshots"),
        ("PUT", "/v1/snapshots/0123/parts/0"),
        ("GET", "/v1/control/poll?agent_id=a&wait_secs=1"),
        ("GET", "/v1/agents"),
        ("GET", "/v1/support-access"),
        ("POST", "/v1/support-access"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let status = http
            .request(method.clone(), format!("{}{path}", hub.url))
            .bearer_auth(&alice)
            .header("Ledgerlink-Tenant", "acme")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }

    // The customer sees each look: who, under which grant, what.
    let listing = acme.get("/v1/support-access").json();
    let looks: Vec<(String, String)> = listing["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["actor"].as_str().unwrap().to_owned(), a["what"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        looks,
        [
            ("victor".to_owned(), "GET /v1/companies".to_owned()),
            ("alice".to_owned(), format!("GET {TRIAL_BALANCE}")),
        ]
    );
    assert!(listing["accesses"].as_array().unwrap().iter().all(|a| a["grant_id"] == granted["grant_id"]));
    assert_eq!(listing["grants"].as_array().unwrap().len(), 2);
    assert_eq!(listing["accesses_total"], 2);
    let latest = acme.get("/v1/support-access?limit=1").json();
    assert_eq!((latest["accesses"].as_array().unwrap().len(), &latest["accesses_total"]), (1, &json!(2)));
    acme.get("/v1/support-access?limit=0").assert_error(400, "invalid_limit", "1 to");
    assert!(globex.get("/v1/support-access").json()["accesses"].as_array().unwrap().is_empty());

    // Support sees who grants what.
    let admin = support_get(&hub, &victor, None, "/v1/admin/support-access?tenant=acme").json();
    let active: Vec<&Value> =
        admin["grants"].as_array().unwrap().iter().filter(|g| g["active"] == true).collect();
    assert_eq!(active.len(), 2, "{admin}");
    assert!(active.iter().any(|g| g["reason"] == "ticket 4711"));

    // Withdrawn: closed at once. Only the tenant that granted can withdraw.
    let id = granted["grant_id"].as_str().unwrap();
    delete(&globex, &format!("/v1/support-access/{id}")).assert_error(404, "grant_not_found", id);
    let revoked = delete(&acme, &format!("/v1/support-access/{id}"));
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let revoked = revoked.json();
    assert_eq!(revoked["active"], false);
    support_get(&hub, &alice, Some("acme"), TRIAL_BALANCE).assert_error(403, "consent_required", "acme");
    let again = delete(&acme, &format!("/v1/support-access/{id}")).json();
    assert_eq!(again["revoked_at"], revoked["revoked_at"], "a second withdrawal changes nothing");

    // A tenant whose key is revoked grants nothing: it could not withdraw a grant any more.
    assert_eq!(support_get(&hub, &alice, Some("globex"), "/v1/companies").status, StatusCode::OK);
    revoke_tenant(&data.path, "globex");
    support_get(&hub, &alice, Some("globex"), "/v1/companies").assert_error(
        403,
        "consent_required",
        "globex",
    );

    // Granting and withdrawing are audit-logged as the customer.
    let audit = support_get(&hub, &alice, None, "/v1/admin/audit").json();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tenant"] == "acme")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["support_access.revoke", "support_access.grant", "support_access.grant"]);

    // No token or key reaches the hub's log.
    drop(hub);
    let log = std::fs::read_to_string(data.path.with_extension("log")).unwrap();
    for secret in [&alice, &victor, &acme_key, &globex_key] {
        assert!(!log.contains(&secret[4..]), "a token or key is in the hub's log");
    }
    assert!(log.contains("Support looked under the customer's grant."), "the looks are in the hub's log");
}

#[test]
fn a_grant_is_for_a_limited_time_and_names_what_it_opens() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let hub = Hub::start(&data.path, &[]);
    let acme = hub.client(&key);
    for (body, code, needle) in [
        (json!({ "hours": 0 }), "invalid_hours", "1 to 168"),
        (json!({ "hours": 169 }), "invalid_hours", "limited time"),
        (json!({ "hours": 1, "scopes": [] }), "invalid_scopes", "diagnostics, data"),
        (json!({ "hours": 1, "scopes": ["everything"] }), "invalid_body", "unknown variant"),
        (json!({ "hours": 1, "until": "forever" }), "invalid_body", "unknown field"),
        (json!({ "scopes": ["data"] }), "invalid_body", "missing field `hours`"),
    ] {
        acme.post("/v1/support-access", &body).assert_error(400, code, needle);
    }
    let granted = grant(&acme, json!({ "hours": 168, "reason": "  " }));
    assert_eq!(granted["scopes"], json!(["diagnostics"]), "diagnostics unless data is named");
    assert_eq!(granted["reason"], Value::Null, "a blank reason is none");
    let created = chrono::DateTime::parse_from_rfc3339(granted["created_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(granted["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, chrono::Duration::hours(168));
}

/// POST `body` to the admin API path with a support token.
fn support_post(hub: &Hub, token: &str, path: &str, body: &Value) -> Reply {
    let response = reqwest::blocking::Client::new()
        .post(format!("{}{path}", hub.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    let status = response.status();
    Reply { status, content_type: "application/json".into(), text: response.text().unwrap() }
}

#[test]
fn diagnostics_are_collected_and_kept_only_while_the_customer_grants_them() {
    let data = DataDir::new();
    let key = create_tenant(&data.path, "acme");
    let alice = support_token(&data.path, "alice", "support");
    let hub = Hub::start(&data.path, &[]);
    let acme = hub.client(&key);
    // An agent over long-poll, driven by hand: it registers with its first poll.
    let poll = || acme.get("/v1/control/poll?agent_id=agent-1&wait_secs=1").json();
    poll();
    let commands = "/v1/admin/agents/acme/agent-1/commands";
    let diagnostics = json!({ "type": "diagnostics" });
    support_post(&hub, &alice, commands, &diagnostics).assert_error(403, "consent_required", "diagnostics");

    // A command waits at most as long as the grant lasts.
    let granted = grant(&acme, json!({ "hours": 1 }));
    let queued = support_post(&hub, &alice, commands, &diagnostics);
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    let queued = queued.json();
    assert_eq!(queued["expires_at"], granted["expires_at"], "not the default day");
    let id = queued["command"]["id"].as_str().unwrap().to_owned();
    assert!(poll().as_array().unwrap().iter().any(|m| m["command"]["id"] == id.as_str()), "delivered");

    // Withdrawn before the agent answered: the command ends, and an answer is not kept.
    let grant_id = granted["grant_id"].as_str().unwrap();
    let revoked =
        acme.http.delete(format!("{}/v1/support-access/{grant_id}", hub.url)).bearer_auth(&key).send();
    assert_eq!(revoked.unwrap().status(), StatusCode::OK);
    let row = support_get(&hub, &alice, None, &format!("{commands}/{id}")).json();
    assert_eq!(row["state"], "expired", "{row}");
    let answer = |command: &str, line: &str| {
        let ack = json!([{ "type": "ack", "ack": { "command_id": command, "ok": true,
            "result": { "recent_log": [line] } } }]);
        let reply = acme.post("/v1/control/messages?agent_id=agent-1", &ack);
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    };
    answer(&id, "collected after the grant ended");
    grant(&acme, json!({ "hours": 1 }));
    let row = support_get(&hub, &alice, None, &format!("{commands}/{id}")).json();
    assert!(row["result"].is_null(), "{row}");
    assert!(row["error"].as_str().unwrap().contains("discarded"), "{row}");

    // Under a grant the answer is kept and read, as one look.
    let second = support_post(&hub, &alice, commands, &diagnostics).json();
    let second_id = second["command"]["id"].as_str().unwrap().to_owned();
    answer(&second_id, "connected to db01.acme.local as erp_reader");
    let row = support_get(&hub, &alice, None, &format!("{commands}/{second_id}")).json();
    assert_eq!(row["result"]["recent_log"][0], "connected to db01.acme.local as erp_reader", "{row}");
    let looks = acme.get("/v1/support-access").json();
    assert_eq!(looks["accesses_total"], 1, "only the read that showed something is a look: {looks}");

    drop(hub);
    // Nothing of the discarded answer is on the hub's disk; the kept one is, once.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(&data.path).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("hub.sqlite3") {
            stored.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    let count = |needle: &[u8]| stored.windows(needle.len()).filter(|w| *w == needle).count();
    assert_eq!(count(b"collected after the grant ended"), 0, "the discarded answer is not stored");
    assert!(count(b"connected to db01.acme.local") >= 1, "the kept answer is stored");
}
