//! `builtin` possession mode end to end over HTTP, on both stores: the Core API
//! issues WebAuthn options and verifies real responses from webauthn-rs's
//! software authenticators. Every refusal has its code, is audited, and
//! changes neither the flow nor the user's credentials.

use crate::ceremony::{ORIGIN, create, enroll, get, id, options, prove, settings};

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::possession::{BackupPolicy, CounterPolicy};
use domain::service::FlowPolicy;
use relying_party::{Attestation, Settings, WebauthnRp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::core_client::expect_error;
use testkit::core_client::webauthn_id;
use testkit::{Store, TestApp, on_both_stores, spawn_core_builtin, spawn_core_with};
use url::Url;
use uuid::Uuid;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

mod attestation;
mod refusals;

on_both_stores!(
    every_flow_type_completes_with_real_ceremonies,
    a_counter_regression_is_refused_under_enforce,
    a_counter_regression_is_let_through_and_audited_under_warn,
    an_excluded_credential_cannot_be_registered_again,
    external_facts_are_refused_in_builtin_mode,
    the_backup_eligibility_policy_applies_to_reported_facts,
    one_response_sent_many_times_at_once_is_accepted_once,
);

async fn app_with(store: Store, policy: FlowPolicy, settings: &Settings) -> TestApp {
    spawn_core_builtin(store, policy, Arc::new(WebauthnRp::new(settings).unwrap())).await
}

async fn app(store: Store) -> TestApp {
    app_with(store, FlowPolicy::default(), &settings()).await
}

async fn sign_in(app: &TestApp, user: &str) -> Value {
    app.created(json!({ "type": "sign_in", "external_user_id": user }))
        .await
}

async fn credentials(app: &TestApp, user: &str) -> Value {
    let (status, body) = app.get_json(&format!("/api/core/v1/users/{user}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["credentials"].clone()
}

/// Asserts a refusal with `code`, and that nothing moved: the flow's version
/// and state, the user's credentials; the refusal is in the audit trail.
async fn refused(
    app: &TestApp,
    flow: &Value,
    user: &str,
    attempt: (StatusCode, Value),
    status: StatusCode,
    code: &str,
) {
    let before = credentials(app, user).await;
    let (got_status, body) = attempt;
    expect_error(got_status, &body, status, code);
    let now = app.flow(id(flow)).await;
    assert_eq!(now["version"], flow["version"], "the flow did not move");
    assert_eq!(now["state"], flow["state"]);
    assert_eq!(now["possession"]["status"], "pending");
    assert_eq!(
        credentials(app, user).await,
        before,
        "credentials unchanged"
    );
    assert!(
        app.audit_types(id(flow))
            .await
            .contains(&"flow.request_rejected".to_owned()),
        "the refusal is audited"
    );
}

async fn every_flow_type_completes_with_real_ceremonies(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    let (passkey_id, sign_count) = a_real_registration_completes(&app, &mut phone).await;
    a_real_sign_in_completes(&app, &mut phone, &passkey_id, sign_count).await;
    a_real_step_up_completes(&app, &mut phone).await;
    let new_passkey = a_recovery_on_a_new_phone_revokes_the_old_passkey(&app, &passkey_id).await;
    the_old_phone_enrols_anew(&app, &mut phone, &passkey_id, &new_passkey).await;
}

/// Registration: creation options for a new user, no exclusions. Gives the
/// passkey's id and its stored counter.
async fn a_real_registration_completes(app: &TestApp, phone: &mut SoftPasskey) -> (String, u32) {
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "alice" }))
        .await;
    let opts = options(&flow);
    assert_eq!(opts["rp"]["id"], "bank.example");
    assert_eq!(
        opts["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(opts["excludeCredentials"], json!([]));
    assert!(opts["challenge"].as_str().unwrap().len() >= 43);
    let (status, _) = app
        .store_reference(&flow, b"encrypted-biometric-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = create(phone, &flow, ORIGIN);
    let (status, body) = prove(app, &flow, response.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["possession"]["status"], "verified");
    assert!(
        body["possession"].get("webauthn_options").is_none(),
        "options are given only at creation"
    );
    app.outcome(&flow, "approved").await;
    assert_eq!(app.flow(id(&flow)).await["state"], "completed");
    let registered = credentials(app, "alice").await;
    let passkey_id = response["id"].as_str().unwrap();
    assert_eq!(registered[0]["webauthn_id"], passkey_id);
    assert_eq!(registered[0]["device_label"], "Test phone");
    let stored = app
        .repo
        .credential_by_webauthn_id(passkey_id)
        .await
        .unwrap();
    let passkey = stored.passkey.expect("what the relying party verified");
    assert!(passkey.user_verified);
    assert!(!passkey.attestation_verified);
    assert!(stored.public_key.is_some());
    (passkey_id.to_owned(), stored.sign_count)
}

/// Sign-in: request options allow exactly the active passkey.
async fn a_real_sign_in_completes(
    app: &TestApp,
    phone: &mut SoftPasskey,
    passkey_id: &str,
    sign_count: u32,
) {
    let flow = sign_in(app, "alice").await;
    assert_eq!(
        options(&flow)["allowCredentials"],
        json!([{ "type": "public-key", "id": passkey_id }])
    );
    let (status, body) = prove(app, &flow, get(phone, options(&flow), ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "completed");
    let used = app
        .repo
        .credential_by_webauthn_id(passkey_id)
        .await
        .unwrap();
    assert!(used.sign_count > sign_count, "the counter moved on");
}

/// Step-up: the same passkey plus the biometric match.
async fn a_real_step_up_completes(app: &TestApp, phone: &mut SoftPasskey) {
    let flow = app
        .created(json!({
            "type": "step_up",
            "external_user_id": "alice",
            "transaction_context": { "payee": "ACME Ltd", "amount": "2500.00 EUR" },
        }))
        .await;
    let (status, _) = app
        .post(
            &format!(
                "/api/core/v1/flows/{}/biometric-reference/release",
                id(&flow)
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = prove(app, &flow, get(phone, options(&flow), ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.outcome(&flow, "approved").await;
    assert_eq!(app.flow(id(&flow)).await["state"], "completed");
}

/// Recovery on a new phone: the old passkey is excluded, then revoked; the
/// new phone signs in and the old passkey is no longer offered. Gives the
/// new passkey's id.
async fn a_recovery_on_a_new_phone_revokes_the_old_passkey(
    app: &TestApp,
    passkey_id: &str,
) -> Value {
    app.clock.advance(time::Duration::days(1));
    let mut new_phone = SoftPasskey::new(true);
    let flow = app
        .created(json!({ "type": "recovery", "external_user_id": "alice" }))
        .await;
    assert_eq!(
        options(&flow)["excludeCredentials"][0]["id"],
        passkey_id,
        "the user's passkeys are excluded"
    );
    let response = create(&mut new_phone, &flow, ORIGIN);
    let (status, body) = prove(app, &flow, response.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.outcome(&flow, "approved").await;
    assert_eq!(app.flow(id(&flow)).await["state"], "completed");
    let after = credentials(app, "alice").await;
    let status_of = |webauthn_id: &Value| {
        after
            .as_array()
            .unwrap()
            .iter()
            .find(|c| &c["webauthn_id"] == webauthn_id)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status_of(&json!(passkey_id)), Some(json!("revoked")));
    assert_eq!(status_of(&response["id"]), Some(json!("active")));

    // The new phone signs in; the old one is no longer offered.
    let flow = sign_in(app, "alice").await;
    assert_eq!(
        options(&flow)["allowCredentials"],
        json!([{ "type": "public-key", "id": response["id"] }])
    );
    let (status, body) = prove(app, &flow, get(&mut new_phone, options(&flow), ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    response["id"].clone()
}

/// The old phone, found again, enrols anew: its revoked passkey is not
/// excluded, so the authenticator makes another instead of refusing.
async fn the_old_phone_enrols_anew(
    app: &TestApp,
    phone: &mut SoftPasskey,
    passkey_id: &str,
    new_passkey: &Value,
) {
    app.clock.advance(time::Duration::days(1));
    let flow = app
        .created(json!({ "type": "recovery", "external_user_id": "alice" }))
        .await;
    let opts = options(&flow);
    let excluded: Vec<&Value> = opts["excludeCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(excluded, [new_passkey], "only the live passkey");
    let again = create(phone, &flow, ORIGIN);
    assert_ne!(again["id"], json!(passkey_id), "a new credential");
    let (status, body) = prove(app, &flow, again).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A sign-in of `user` answered by `authenticator` with `passkey_id`, a
/// passkey the ceremony does not allow (the options are rewritten on the way,
/// as a malicious client could).
async fn answered_with(
    app: &TestApp,
    user: &str,
    authenticator: &mut SoftPasskey,
    passkey_id: &Value,
) -> (Value, (StatusCode, Value)) {
    let flow = sign_in(app, user).await;
    let mut opts = options(&flow);
    opts["allowCredentials"] = json!([{ "type": "public-key", "id": passkey_id }]);
    let response = get(authenticator, opts, ORIGIN);
    let attempt = prove(app, &flow, response).await;
    (flow, attempt)
}

/// Two sign-ins answered in reverse order: the second answer carries a lower
/// counter than the one already stored (as a cloned authenticator's would).
async fn counter_regression(app: &TestApp, user: &str) -> (Value, Value) {
    let mut phone = SoftPasskey::new(true);
    enroll(app, user, &mut phone).await;
    let early = sign_in(app, user).await;
    let late = sign_in(app, user).await;
    let early_response = get(&mut phone, options(&early), ORIGIN);
    let late_response = get(&mut phone, options(&late), ORIGIN);
    let (status, body) = prove(app, &late, late_response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (early, early_response)
}

async fn a_counter_regression_is_refused_under_enforce(store: Store) {
    let app = app(store).await;
    let (flow, response) = counter_regression(&app, "kim").await;
    let (status, body) = prove(&app, &flow, response).await;
    expect_error(status, &body, StatusCode::CONFLICT, "counter_regression");
    assert_eq!(app.flow(id(&flow)).await["version"], flow["version"]);
    assert!(
        app.audit_types(id(&flow))
            .await
            .contains(&"credential.counter_regression".to_owned())
    );
}

async fn a_counter_regression_is_let_through_and_audited_under_warn(store: Store) {
    let policy = FlowPolicy {
        counter_policy: CounterPolicy::Warn,
        ..FlowPolicy::default()
    };
    let app = app_with(store, policy, &settings()).await;
    let (flow, response) = counter_regression(&app, "lou").await;
    let (status, body) = prove(&app, &flow, response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "completed");
    let trail = app.audit_trail().await;
    let event = trail
        .iter()
        .find(|e| e.event_type.as_str() == "credential.counter_regression")
        .expect("audited");
    assert_eq!(event.details["policy"], "warn");
}

async fn an_excluded_credential_cannot_be_registered_again(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "max" }))
        .await;
    let (status, _) = app
        .store_reference(&flow, b"encrypted-biometric-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    let registration = create(&mut phone, &flow, ORIGIN);
    let (status, _) = prove(&app, &flow, registration.clone()).await;
    assert_eq!(status, StatusCode::OK);
    app.outcome(&flow, "approved").await;
    // A recovery excludes the passkey; its earlier registration replayed is refused.
    app.clock.advance(time::Duration::days(1));
    let recovery = app
        .created(json!({ "type": "recovery", "external_user_id": "max" }))
        .await;
    assert_eq!(
        options(&recovery)["excludeCredentials"][0]["id"],
        registration["id"]
    );
    let attempt = prove(&app, &recovery, registration).await;
    refused(
        &app,
        &recovery,
        "max",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_challenge_mismatch",
    )
    .await;
}

async fn external_facts_are_refused_in_builtin_mode(store: Store) {
    let policy = FlowPolicy {
        backup_policy: BackupPolicy::Reject,
        ..FlowPolicy::default()
    };
    let app = app_with(store, policy, &settings()).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "otto" }))
        .await;
    let (status, body) = app.register_credential(&flow, "otto-phone").await;
    expect_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "possession_mode_mismatch",
    );
    assert_eq!(app.flow(id(&flow)).await["version"], flow["version"]);
}

/// The policy is the domain's: it applies to the facts an `external` relying
/// party reports just as to the ones the built-in one verifies.
async fn the_backup_eligibility_policy_applies_to_reported_facts(store: Store) {
    let reject = FlowPolicy {
        backup_policy: BackupPolicy::Reject,
        ..FlowPolicy::default()
    };
    let app = spawn_core_with(store, reject).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "pia" }))
        .await;
    let possession = format!("/api/core/v1/flows/{}/possession", id(&flow));
    let synced = json!({ "credential": {
        "id": webauthn_id("pia-synced"), "sign_count": 0, "backup_eligible": true, "backup_state": true,
    }});
    let attempt = app.post(&possession, synced).await;
    refused(
        &app,
        &flow,
        "pia",
        attempt,
        StatusCode::CONFLICT,
        "backup_eligible_not_allowed",
    )
    .await;

    let bound = json!({ "credential": { "id": webauthn_id("pia-bound"), "sign_count": 0 }});
    let (status, body) = app.post(&possession, bound).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .store_reference(&flow, b"encrypted-biometric-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    app.outcome(&flow, "approved").await;
    assert_eq!(app.flow(id(&flow)).await["state"], "completed");

    // The flag changing later is a security event, refused under `reject`.
    let flow = sign_in(&app, "pia").await;
    let attempt = app
        .post(
            &format!("/api/core/v1/flows/{}/possession", id(&flow)),
            json!({ "assertion": { "credential_id": webauthn_id("pia-bound"), "sign_count": 1, "backup_eligible": true }}),
        )
        .await;
    let (status, body) = attempt;
    expect_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "backup_eligibility_changed",
    );
    assert_eq!(app.flow(id(&flow)).await["version"], flow["version"]);
    assert!(
        app.audit_types(id(&flow))
            .await
            .contains(&"credential.backup_eligibility_changed".to_owned())
    );

    // Under `warn` (the default) a synced passkey registers, audited.
    let app = spawn_core_with(store, FlowPolicy::default()).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "quin" }))
        .await;
    let synced = json!({ "credential": {
        "id": webauthn_id("quin-synced"), "sign_count": 0, "backup_eligible": true, "backup_state": true,
    }});
    let (status, body) = app
        .post(
            &format!("/api/core/v1/flows/{}/possession", id(&flow)),
            synced,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        app.audit_types(id(&flow))
            .await
            .contains(&"credential.backup_eligible".to_owned())
    );
}

/// The challenge is consumed by the write that accepts the proof: of many
/// concurrent submissions of one genuine response, exactly one is accepted.
async fn one_response_sent_many_times_at_once_is_accepted_once(store: Store) {
    let app = Arc::new(app(store).await);
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "ruth", &mut phone).await;
    let flow = sign_in(&app, "ruth").await;
    let response = get(&mut phone, options(&flow), ORIGIN);
    let attempts = (0..12).map(|_| {
        let (app, flow, response) = (app.clone(), flow.clone(), response.clone());
        tokio::spawn(async move { prove(&app, &flow, response).await })
    });
    let mut accepted = 0;
    for attempt in futures::future::join_all(attempts).await {
        let (status, body) = attempt.unwrap();
        match status {
            StatusCode::OK => accepted += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted, 1);
    let types = app.audit_types(id(&flow)).await;
    assert_eq!(types.iter().filter(|t| *t == "credential.used").count(), 1);
}
