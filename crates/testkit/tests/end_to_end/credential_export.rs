//! The credential export, round trip: a passkey registered in `builtin` mode
//! by webauthn-rs's software authenticator is exported, through the command's
//! code and through the Management API over HTTP, and a new assertion from
//! that authenticator verifies against the exported COSE public key with
//! libraries independent of the product's relying party (coset for the
//! COSE_Key, p256 for the signature). `external`-mode credentials export what
//! was reported. Every export is audited once, with the door it went through;
//! the API's needs its own scope.

use crate::ceremony::{ORIGIN, enroll, get, options, settings};

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coset::{CborSerializable, CoseKey, Label};
use domain::ExternalUserId;
use domain::audit::{Actor, AuditEventType};
use domain::service::FlowPolicy;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use relying_party::WebauthnRp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::credentials::{Users, export};
use sha2::{Digest, Sha256};
use testkit::core_client::expect_error;
use testkit::core_client::webauthn_id;
use testkit::jwks_double::{JwksDouble, SigningKey};
use testkit::{
    Store, T0, TestApp, management_config, on_both_stores, spawn_core, spawn_core_builtin,
    spawn_management_for,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

on_both_stores!(
    an_exported_builtin_passkey_verifies_a_new_assertion_independently,
    external_credentials_export_what_was_reported,
    the_management_api_exports_under_its_own_scope,
    a_management_api_export_cut_short_is_recorded_incomplete,
);

/// The export's lines: header, credentials, end.
async fn exported(app: &TestApp, users: Users) -> (Value, Vec<Value>, Value) {
    let mut out = Vec::new();
    export(
        app.repo.clone(),
        app.clock.clone(),
        users,
        "ops@example",
        &mut out,
    )
    .await
    .unwrap();
    let mut lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let end = lines.pop().unwrap();
    let header = lines.remove(0);
    assert_eq!(header["format"], "biometric-passkey.credentials");
    assert_eq!(header["version"], 1);
    assert_eq!(end["end"]["credentials"], lines.len());
    (header, lines, end)
}

fn b64(value: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(value.as_str().unwrap()).unwrap()
}

/// The P-256 key of a COSE_Key, read without the product's code.
fn p256_key(cose: &[u8]) -> VerifyingKey {
    let key = CoseKey::from_slice(cose).unwrap();
    assert_eq!(key.kty, coset::KeyType::Assigned(coset::iana::KeyType::EC2));
    assert_eq!(
        key.alg,
        Some(coset::Algorithm::Assigned(coset::iana::Algorithm::ES256))
    );
    let param = |label: i64| {
        key.params
            .iter()
            .find(|(l, _)| *l == Label::Int(label))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(param(-1).as_integer().map(i128::from), Some(1), "P-256");
    let x = param(-2).into_bytes().unwrap();
    let y = param(-3).into_bytes().unwrap();
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    VerifyingKey::from_encoded_point(&point).unwrap()
}

/// A new assertion from `phone`, for a sign-in's challenge, verifies against
/// the key of the exported `line`, read and checked without the product's code.
async fn verifies_a_new_assertion(
    app: &TestApp,
    phone: &mut SoftPasskey,
    user: &str,
    line: &Value,
) {
    let key = p256_key(&b64(&line["public_key"]));
    let flow = app
        .created(json!({ "type": "sign_in", "external_user_id": user }))
        .await;
    let assertion = get(phone, options(&flow), ORIGIN);
    assert_eq!(assertion["rawId"], line["credential_id"]);
    let response = &assertion["response"];
    let mut signed = b64(&response["authenticatorData"]);
    signed.extend_from_slice(&Sha256::digest(b64(&response["clientDataJSON"])));
    let signature = Signature::from_der(&b64(&response["signature"])).unwrap();
    key.verify(&signed, &signature)
        .expect("the assertion verifies against the exported key");
    // The key is that credential's alone.
    let mut tampered = signed.clone();
    tampered[0] ^= 1;
    assert!(key.verify(&tampered, &signature).is_err());
}

async fn an_exported_builtin_passkey_verifies_a_new_assertion_independently(store: Store) {
    let rp = Arc::new(WebauthnRp::new(&settings()).unwrap());
    let app = spawn_core_builtin(store, FlowPolicy::default(), rp).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "export-alice", &mut phone).await;
    let mut other = SoftPasskey::new(true);
    enroll(&app, "export-bob", &mut other).await;

    let (_, lines, _) = exported(&app, Users::All).await;
    assert_eq!(lines.len(), 2);
    let (_, lines, end) = exported(
        &app,
        Users::One(ExternalUserId::parse("export-alice").unwrap()),
    )
    .await;
    assert_eq!(end["end"]["users"], 1);
    let [line] = lines.as_slice() else {
        panic!("one credential: {lines:?}")
    };
    assert_eq!(line["external_user_id"], "export-alice");
    assert_eq!(line["status"], "active");
    assert_eq!(line["possession_mode"], "builtin");
    assert_eq!(line["sign_count"], 0);
    assert!(line["created_at"].is_string());
    assert!(line["last_used_at"].is_null());
    assert!(line["backup_eligible"].is_boolean() && line["backup_state"].is_boolean());
    assert!(line["transports"].is_array());
    verifies_a_new_assertion(&app, &mut phone, "export-alice", line).await;

    // Each export is one audit event: who, which users, how many credentials.
    let exports: Vec<_> = app
        .audit_trail()
        .await
        .into_iter()
        .filter(|e| {
            e.event_type == AuditEventType::OperatorRead && e.details["read"] == "credential_export"
        })
        .collect();
    assert_eq!(exports.len(), 2, "{exports:?}");
    let newest = &exports[0];
    assert_eq!(newest.actor, Actor::Operator("ops@example".into()));
    assert_eq!(newest.details["via"], "cli");
    assert_eq!(newest.details["users"], "user");
    assert_eq!(newest.details["credentials"], 1);
    assert_eq!(newest.details["complete"], true);
    assert!(newest.subject.user_id.is_some());
    assert_eq!(exports[1].details["users"], "all");
    assert_eq!(exports[1].details["credentials"], 2);
}

async fn external_credentials_export_what_was_reported(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("export-carol", "carol-phone").await;
    let (_, lines, _) = exported(&app, Users::All).await;
    let [line] = lines.as_slice() else {
        panic!("one credential: {lines:?}")
    };
    assert_eq!(line["possession_mode"], "external");
    assert_eq!(line["credential_id"], webauthn_id("carol-phone"));
    assert_eq!(line["aaguid"], "08987058-cadc-4b81-b6e1-30de50dcbe96");
    assert_eq!(line["transports"], json!(["internal", "hybrid"]));
    assert!(line["public_key"].is_null(), "none was reported");
    let missing = export(
        app.repo.clone(),
        app.clock.clone(),
        Users::One(ExternalUserId::parse("nobody").unwrap()),
        "ops@example",
        &mut Vec::new(),
    )
    .await;
    assert!(missing.is_err());
}

const ISSUER: &str = "http://127.0.0.1:9/issuer";
const EXPORT: &str = "/api/management/v1/credentials/export";

/// An operator's token with `scopes`, signed by `key`.
fn token(key: &SigningKey, scopes: &str) -> String {
    let now = T0.unix_timestamp();
    key.sign(&json!({
        "iss": ISSUER, "aud": "biometric-passkey-management-api", "sub": "support-agent-9",
        "iat": now, "exp": now + 3600, "scope": scopes,
    }))
}

/// The export's lines as the Management API streams them: header,
/// credentials, end.
async fn exported_over_http(management: &TestApp, token: &str, query: &str) -> (Vec<Value>, Value) {
    let response = management
        .client
        .get(management.url(&format!("{EXPORT}{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-ndjson",
        "JSON lines"
    );
    let mut lines: Vec<Value> = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let end = lines.pop().unwrap();
    let header = lines.remove(0);
    assert_eq!(header["format"], "biometric-passkey.credentials");
    assert_eq!(header["version"], 1);
    assert!(header["exported_at"].is_string());
    assert_eq!(end["end"]["credentials"], lines.len());
    (lines, end)
}

async fn credential_exports(app: &TestApp) -> Vec<domain::NewAuditEvent> {
    app.audit_trail()
        .await
        .into_iter()
        .filter(|e| {
            e.event_type == AuditEventType::OperatorRead && e.details["read"] == "credential_export"
        })
        .collect()
}

async fn the_management_api_exports_under_its_own_scope(store: Store) {
    let rp = Arc::new(WebauthnRp::new(&settings()).unwrap());
    let core = spawn_core_builtin(store, FlowPolicy::default(), rp).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&core, "export-alice", &mut phone).await;
    let mut other = SoftPasskey::new(true);
    enroll(&core, "export-bob", &mut other).await;
    let key = SigningKey::generate("k1");
    let jwks = JwksDouble::start(&[&key]).await;
    let mut config = management_config();
    config.auth.issuer = ISSUER.into();
    config.auth.jwks_url = jwks.url.clone();
    let management = spawn_management_for(&core, config).await;
    let exporter = token(&key, "management.credentials.export");

    refused_without_the_export_scope(&core, &management, &key).await;
    client_mistakes_export_nothing(&core, &management, &exporter).await;

    // Everyone's, then one user's.
    let (lines, end) = exported_over_http(&management, &exporter, "").await;
    assert_eq!(end["end"], json!({ "users": 2, "credentials": 2 }));
    let users: Vec<&str> = lines
        .iter()
        .map(|l| l["external_user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["export-alice", "export-bob"], "in identifier order");
    let (lines, end) =
        exported_over_http(&management, &exporter, "?external_user_id=export-alice").await;
    assert_eq!(end["end"], json!({ "users": 1, "credentials": 1 }));
    let [line] = lines.as_slice() else {
        panic!("one credential: {lines:?}")
    };
    assert_eq!(line["external_user_id"], "export-alice");
    assert_eq!(line["possession_mode"], "builtin");
    assert_eq!(line["status"], "active");
    verifies_a_new_assertion(&core, &mut phone, "export-alice", line).await;

    each_export_is_audited_once_via_the_api(&core).await;
}

/// No token: 401. Every other scope, the dashboard's default ones among
/// them: 403, and nothing exported.
async fn refused_without_the_export_scope(core: &TestApp, management: &TestApp, key: &SigningKey) {
    let (status, body) = management
        .send(management.client.get(management.url(EXPORT)))
        .await;
    expect_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let others = token(
        key,
        "management.users.read management.users.delete management.credentials.read \
         management.credentials.suspend management.credentials.activate \
         management.credentials.revoke management.flows.read management.audit.read",
    );
    let (status, body) = management
        .send(
            management
                .client
                .get(management.url(EXPORT))
                .bearer_auth(&others),
        )
        .await;
    expect_error(status, &body, StatusCode::FORBIDDEN, "missing_scope");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("management.credentials.export"),
        "{body}"
    );
    assert!(credential_exports(core).await.is_empty());
}

/// Client mistakes: an unknown user, a malformed id, an unknown parameter.
async fn client_mistakes_export_nothing(core: &TestApp, management: &TestApp, exporter: &str) {
    for (query, status, code) in [
        (
            "?external_user_id=nobody",
            StatusCode::NOT_FOUND,
            "user_not_found",
        ),
        (
            "?external_user_id=a%20b",
            StatusCode::BAD_REQUEST,
            "invalid_external_user_id",
        ),
        (
            "?user=export-alice",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
    ] {
        let (got, body) = management
            .send(
                management
                    .client
                    .get(management.url(&format!("{EXPORT}{query}")))
                    .bearer_auth(exporter),
            )
            .await;
        expect_error(got, &body, status, code);
    }
    assert!(credential_exports(core).await.is_empty());
}

/// Each export is one audit event under the operator, via the API.
async fn each_export_is_audited_once_via_the_api(core: &TestApp) {
    let exports = credential_exports(core).await;
    assert_eq!(exports.len(), 2, "{exports:?}");
    let (one, all) = (&exports[0], &exports[1]);
    for event in [one, all] {
        assert_eq!(event.actor, Actor::Operator("support-agent-9".into()));
        assert_eq!(event.details["via"], "api");
        assert_eq!(event.details["format_version"], 1);
        assert_eq!(event.details["complete"], true);
        assert!(event.correlation_id.is_some());
    }
    assert_eq!(one.details["users"], "user");
    assert_eq!(one.details["users_exported"], 1);
    assert_eq!(one.details["credentials"], 1);
    assert!(one.subject.user_id.is_some());
    assert_eq!(all.details["users"], "all");
    assert_eq!(all.details["users_exported"], 2);
    assert_eq!(all.details["credentials"], 2);
    assert!(all.subject.user_id.is_none());
}

/// A client that stops reading before the `end` line: what it got has no end
/// line, and the export is on the record as `complete: false` with what was
/// sent. The router is called in process, so the body is read exactly as far
/// as the test reads it (over a socket, the rest would already be buffered).
async fn a_management_api_export_cut_short_is_recorded_incomplete(store: Store) {
    use futures::StreamExt;
    let rp = Arc::new(WebauthnRp::new(&settings()).unwrap());
    let core = spawn_core_builtin(store, FlowPolicy::default(), rp).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&core, "cut-alice", &mut phone).await;
    let key = SigningKey::generate("k1");
    let jwks = JwksDouble::start(&[&key]).await;
    let mut config = management_config();
    config.auth.issuer = ISSUER.into();
    config.auth.jwks_url = jwks.url.clone();
    let router = server::app::management_router_with_clock(
        &config,
        core.repo.clone(),
        "management",
        core.clock.clone(),
    )
    .unwrap();
    let mut request = axum::http::Request::get(EXPORT)
        .header(
            "authorization",
            format!("Bearer {}", token(&key, "management.credentials.export")),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9,
        ))));
    let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    // The first part: the header and the first page of users.
    let first = body.next().await.unwrap().unwrap();
    let lines: Vec<Value> = std::str::from_utf8(&first)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "biometric-passkey.credentials");
    assert_eq!(lines[1]["external_user_id"], "cut-alice");
    assert!(lines.iter().all(|l| l.get("end").is_none()), "{lines:?}");
    assert!(credential_exports(&core).await.is_empty(), "not yet ended");
    drop(body);

    // Recorded by the runtime once the body is dropped.
    let mut recorded = Vec::new();
    for _ in 0..100 {
        recorded = credential_exports(&core).await;
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(recorded.len(), 1, "one record of the export");
    let details = &recorded[0].details;
    assert_eq!(details["complete"], false, "{details}");
    assert_eq!(details["via"], "api");
    assert_eq!(details["users_exported"], 1);
    assert_eq!(details["credentials"], 1);
}
