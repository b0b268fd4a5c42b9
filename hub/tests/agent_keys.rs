//! Agent identity keys against the real hub binary: the first signed offer of an
//! agent id registers its key, and afterwards only that key offers as that agent.

mod support;

use ledgerlink_protocol::identity::{
    AgentSigner, AGENT_KEY_HEADER, AGENT_SIGNATURE_HEADER, AGENT_SIGNED_AT_HEADER, HELLO_LABEL, SIGNED_LABEL,
};
use ledgerlink_protocol::Manifest;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

/// The time `hours_ago` hours ago, as an agent writes its signing time.
fn time_ago(hours_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// POSTs `manifest` as an offer, signed by `signer` now when given (with `signed_body`
/// instead of the body, to forge a signature).
fn offer(
    client: &Client,
    manifest: &Manifest,
    signer: Option<&AgentSigner>,
    signed_body: Option<&[u8]>,
) -> Reply {
    offer_signed_at(client, manifest, signer, signed_body, &time_ago(0))
}

fn offer_signed_at(
    client: &Client,
    manifest: &Manifest,
    signer: Option<&AgentSigner>,
    signed_body: Option<&[u8]>,
    at: &str,
) -> Reply {
    let body = serde_json::to_vec(manifest).unwrap();
    let mut request = client
        .http
        .post(format!("{}/v1/snapshots", client.base))
        .bearer_auth(&client.key)
        .header("content-type", "application/json");
    if let Some(signer) = signer {
        request =
            request.header(AGENT_KEY_HEADER, signer.public_key()).header(AGENT_SIGNED_AT_HEADER, at).header(
                AGENT_SIGNATURE_HEADER,
                signer.sign_labelled(SIGNED_LABEL, at, signed_body.unwrap_or(&body)),
            );
    }
    let response = request.body(body).send().unwrap();
    let status = response.status();
    Reply { status, content_type: "application/json".into(), text: response.text().unwrap() }
}

fn manifest_of(agent: &str, seed: u64) -> Manifest {
    let mut snapshot = build_snapshot(&sample_books("0001", 5, seed), "visma-main");
    snapshot.manifest.agent_id = agent.into();
    snapshot.manifest
}

fn reset(hub: &Hub, token: &str, tenant: &str, agent: &str) -> (StatusCode, Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/v1/admin/agents/{tenant}/{agent}/key/reset", hub.url))
        .bearer_auth(token)
        .json(&json!({ "reason": "server reinstalled" }))
        .send()
        .unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn only_the_key_an_agent_first_signed_with_offers_as_that_agent_until_support_resets_it() {
    let TwoTenants { data, acme_key, globex_key, alice, victor, hub } = TwoTenants::start();
    let acme = hub.client(&acme_key);
    let (first, second) = (AgentSigner::from_seed(&[1; 32]), AgentSigner::from_seed(&[2; 32]));

    // An agent without a key (older than identity keys) still uploads.
    assert_eq!(offer(&acme, &manifest_of("agent-old", 1), None, None).status, StatusCode::CREATED);
    assert_eq!(reset(&hub, &alice, "acme", "agent-old").0, StatusCode::NOT_FOUND, "no key to reset");

    // The first signed offer registers the key; the same offer again is fine.
    let signed = manifest_of("agent-1", 2);
    assert_eq!(offer(&acme, &signed, Some(&first), None).status, StatusCode::CREATED);
    assert_eq!(offer(&acme, &signed, Some(&first), None).status, StatusCode::OK);

    // Anyone else offering as agent-1 is refused, and nothing is stored.
    let forged = manifest_of("agent-1", 3);
    let forged_id = ledgerlink_protocol::snapshot_id(&forged);
    let refused = offer(&acme, &forged, Some(&second), None);
    refused.assert_error(403, "agent_key_mismatch", "agent-key reset");
    offer(&acme, &forged, None, None).assert_error(401, "agent_signature_required", "not signed");
    offer(&acme, &forged, Some(&first), Some(b"another manifest")).assert_error(
        401,
        "agent_signature_invalid",
        "does not match",
    );
    acme.get(&format!("/v1/snapshots/{forged_id}")).assert_error(404, "snapshot_not_found", &forged_id);

    // A signature is accepted for a day around the hub's time: an old request sent again is refused.
    let replayed = offer_signed_at(&acme, &forged, Some(&first), None, &time_ago(25));
    replayed.assert_error(401, "agent_signature_stale", "NTP");
    let ahead = offer_signed_at(&acme, &forged, Some(&first), None, &time_ago(-25));
    ahead.assert_error(401, "agent_signature_stale", "24 hours");
    offer_signed_at(&acme, &forged, Some(&first), None, "yesterday").assert_error(
        401,
        "agent_signature_invalid",
        "RFC 3339",
    );
    acme.get(&format!("/v1/snapshots/{forged_id}")).assert_error(404, "snapshot_not_found", &forged_id);
    let late_but_fine = offer_signed_at(&acme, &manifest_of("agent-1", 9), Some(&first), None, &time_ago(23));
    assert_eq!(late_but_fine.status, StatusCode::CREATED, "{}", late_but_fine.text);

    // Keys are per tenant: another tenant's agent of the same id has its own.
    let globex = hub.client(&globex_key);
    assert_eq!(offer(&globex, &manifest_of("agent-1", 4), Some(&second), None).status, StatusCode::CREATED);

    // A signed hello at the service's start registers the key before any upload.
    let hello = |signer: &AgentSigner| {
        let body = serde_json::to_vec(&json!({ "agent_id": "agent-2", "version": "0.1.0" })).unwrap();
        let at = time_ago(0);
        let response = acme
            .http
            .post(format!("{}/v1/agents/hello", hub.url))
            .bearer_auth(&acme_key)
            .header("user-agent", "Ledgerlink/0.1.0 (srv; Debian 12; ledgerlink; Visma Business)")
            .header("content-type", "application/json")
            .header(AGENT_KEY_HEADER, signer.public_key())
            .header(AGENT_SIGNED_AT_HEADER, &at)
            .header(AGENT_SIGNATURE_HEADER, signer.sign_labelled(HELLO_LABEL, &at, &body))
            .body(body)
            .send()
            .unwrap();
        response.status()
    };
    assert_eq!(hello(&first), StatusCode::OK);
    assert_eq!(hello(&second), StatusCode::FORBIDDEN, "another key says hello as agent-2");
    offer(&acme, &manifest_of("agent-2", 7), Some(&second), None).assert_error(
        403,
        "agent_key_mismatch",
        "agent-2",
    );
    assert_eq!(offer(&acme, &manifest_of("agent-2", 7), Some(&first), None).status, StatusCode::CREATED);

    // A reinstalled agent: support resets its key, and its next signed offer registers the new one.
    assert_eq!(reset(&hub, &victor, "acme", "agent-1").0, StatusCode::FORBIDDEN, "a viewer changes nothing");
    let (status, body) = reset(&hub, &alice, "acme", "agent-1");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reset"]["public_key"], first.public_key());
    assert_eq!(offer(&acme, &forged, Some(&second), None).status, StatusCode::CREATED);
    offer(&acme, &manifest_of("agent-1", 5), Some(&first), None).assert_error(
        403,
        "agent_key_mismatch",
        "agent-1",
    );
    let globex_offer = offer(&globex, &manifest_of("agent-1", 8), Some(&first), None);
    globex_offer.assert_error(403, "agent_key_mismatch", "agent-1");
    assert_eq!(
        offer(&globex, &manifest_of("agent-1", 8), Some(&second), None).status,
        StatusCode::CREATED,
        "resetting acme's agent left globex's alone"
    );

    // A hub that takes signed uploads only refuses an agent without a key too.
    drop(hub);
    let strict = Hub::start(&data.path, &["--require-agent-signatures"]);
    let acme = strict.client(&acme_key);
    offer(&acme, &manifest_of("agent-new", 6), None, None).assert_error(
        401,
        "agent_signature_required",
        "signed uploads only",
    );
    assert_eq!(offer(&acme, &manifest_of("agent-new", 6), Some(&first), None).status, StatusCode::CREATED);
    let hub = strict;

    let audit: Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/admin/audit", hub.url))
        .bearer_auth(&alice)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let entry =
        audit["entries"].as_array().unwrap().iter().find(|e| e["action"] == "agent_key.reset").unwrap();
    assert_eq!((entry["actor"].as_str(), entry["agent_id"].as_str()), (Some("alice"), Some("agent-1")));
    assert_eq!(entry["details"]["reason"], "server reinstalled");
}
