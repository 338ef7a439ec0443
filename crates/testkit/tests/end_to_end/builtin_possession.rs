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

on_both_stores!(
    every_flow_type_completes_with_real_ceremonies,
    a_wrong_origin_is_refused_and_changes_nothing,
    a_wrong_rp_id_is_refused_and_changes_nothing,
    a_replayed_response_is_refused,
    a_response_to_another_flows_challenge_is_refused,
    an_expired_challenge_is_refused,
    a_tampered_signature_is_refused,
    a_malformed_response_is_refused_and_changes_nothing,
    missing_user_verification_is_refused,
    another_users_or_an_unknown_credential_is_refused,
    a_counter_regression_is_refused_under_enforce,
    a_counter_regression_is_let_through_and_audited_under_warn,
    an_excluded_credential_cannot_be_registered_again,
    a_disallowed_authenticator_model_is_refused,
    attestation_is_verified_against_the_roots_the_metadata_gives,
    an_authenticator_the_metadata_reports_revoked_is_refused_and_audited,
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

async fn a_wrong_origin_is_refused_and_changes_nothing(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "bob", &mut phone).await;
    let flow = sign_in(&app, "bob").await;
    let response = get(&mut phone, options(&flow), "https://evil.bank.example");
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "bob",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_origin_not_allowed",
    )
    .await;
}

async fn a_wrong_rp_id_is_refused_and_changes_nothing(store: Store) {
    let settings = Settings {
        origins: vec![
            Url::parse(ORIGIN).unwrap(),
            Url::parse("https://login.bank.example").unwrap(),
        ],
        ..settings()
    };
    let app = app_with(store, FlowPolicy::default(), &settings).await;
    let mut phone = SoftPasskey::new(true);
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "carol" }))
        .await;
    // The authenticator was asked for another RP ID (a client that rewrote it).
    let mut altered = flow.clone();
    altered["possession"]["webauthn_options"]["rp"]["id"] = json!("login.bank.example");
    let response = create(&mut phone, &altered, "https://login.bank.example");
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "carol",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_rp_id_mismatch",
    )
    .await;
}

async fn a_replayed_response_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "dave", &mut phone).await;
    let first = sign_in(&app, "dave").await;
    let response = get(&mut phone, options(&first), ORIGIN);
    let (status, _) = prove(&app, &first, response.clone()).await;
    assert_eq!(status, StatusCode::OK);
    // The same response again, to the same flow (its challenge is spent)…
    let (status, body) = prove(&app, &first, response.clone()).await;
    expect_error(status, &body, StatusCode::CONFLICT, "flow_ended");
    // …and to a new flow, whose challenge it does not answer.
    let second = sign_in(&app, "dave").await;
    let attempt = prove(&app, &second, response).await;
    refused(
        &app,
        &second,
        "dave",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_challenge_mismatch",
    )
    .await;
}

async fn a_response_to_another_flows_challenge_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "erin", &mut phone).await;
    let one = sign_in(&app, "erin").await;
    let two = sign_in(&app, "erin").await;
    let for_one = get(&mut phone, options(&one), ORIGIN);
    let attempt = prove(&app, &two, for_one.clone()).await;
    refused(
        &app,
        &two,
        "erin",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_challenge_mismatch",
    )
    .await;
    // The flow it was made for still takes it.
    let (status, body) = prove(&app, &one, for_one).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn an_expired_challenge_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "finn", &mut phone).await;
    let flow = sign_in(&app, "finn").await;
    let response = get(&mut phone, options(&flow), ORIGIN);
    // Past the challenge's 5 minutes, within the flow's 15.
    app.clock.advance(time::Duration::minutes(6));
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "finn",
        attempt,
        StatusCode::CONFLICT,
        "webauthn_ceremony_expired",
    )
    .await;
}

async fn a_tampered_signature_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "gina", &mut phone).await;
    let flow = sign_in(&app, "gina").await;
    let mut response = get(&mut phone, options(&flow), ORIGIN);
    let mut signature = URL_SAFE_NO_PAD
        .decode(response["response"]["signature"].as_str().unwrap())
        .unwrap();
    let last = signature.len() - 1;
    signature[last] ^= 0x01;
    response["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(signature));
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "gina",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_signature_invalid",
    )
    .await;
}

async fn a_malformed_response_is_refused_and_changes_nothing(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "uma", &mut phone).await;
    // An assertion that is not one: no authenticator data, no signature.
    let flow = sign_in(&app, "uma").await;
    let attempt = prove(&app, &flow, json!({ "id": 3, "response": {} })).await;
    refused(
        &app,
        &flow,
        "uma",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_response_malformed",
    )
    .await;
    // A new phone's registration without its attestation object.
    app.clock.advance(time::Duration::days(1));
    let recovery = app
        .created(json!({ "type": "recovery", "external_user_id": "uma" }))
        .await;
    let mut response = create(&mut SoftPasskey::new(true), &recovery, ORIGIN);
    response["response"]
        .as_object_mut()
        .unwrap()
        .remove("attestationObject");
    let attempt = prove(&app, &recovery, response).await;
    refused(
        &app,
        &recovery,
        "uma",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_response_malformed",
    )
    .await;
}

async fn missing_user_verification_is_refused(store: Store) {
    let app = app(store).await;
    // An authenticator that checks presence only, given options altered to
    // ask for no verification.
    let mut presence_only = SoftPasskey::new(false);
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "hugo" }))
        .await;
    let mut altered = flow.clone();
    altered["possession"]["webauthn_options"]["authenticatorSelection"]["userVerification"] =
        json!("discouraged");
    let response = create(&mut presence_only, &altered, ORIGIN);
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "hugo",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_user_not_verified",
    )
    .await;
}

async fn another_users_or_an_unknown_credential_is_refused(store: Store) {
    let app = app(store).await;
    let mut ivy_phone = SoftPasskey::new(true);
    let mut jack_phone = SoftPasskey::new(true);
    enroll(&app, "ivy", &mut ivy_phone).await;
    let jack = enroll(&app, "jack", &mut jack_phone).await;
    let jack_passkey = credentials(&app, "jack").await[0]["webauthn_id"].clone();
    assert!(jack["id"].is_string());

    // Jack's phone answers Ivy's sign-in with Jack's passkey.
    let (flow, attempt) = answered_with(&app, "ivy", &mut jack_phone, &jack_passkey).await;
    refused(
        &app,
        &flow,
        "ivy",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_credential_not_allowed",
    )
    .await;

    // A passkey this backend never registered.
    let mut stranger = SoftPasskey::new(true);
    let unknown = {
        let rp = WebauthnRp::new(&settings()).unwrap();
        use domain::possession::PasskeyUser;
        let start = rp
            .start_registration(
                PasskeyUser {
                    handle: Uuid::from_u128(7),
                    name: "x",
                    display_name: "x",
                },
                &[],
            )
            .unwrap();
        let fake_flow = json!({ "possession": { "webauthn_options": start.options } });
        create(&mut stranger, &fake_flow, ORIGIN)["id"].clone()
    };
    let (flow, attempt) = answered_with(&app, "ivy", &mut stranger, &unknown).await;
    refused(
        &app,
        &flow,
        "ivy",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_credential_not_allowed",
    )
    .await;
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

async fn a_disallowed_authenticator_model_is_refused(store: Store) {
    use crypto_glue::traits::{EncodePem, LineEndingPem};
    use webauthn_authenticator_rs::softtoken::SoftToken;
    let (mut token, ca) = SoftToken::new(true).unwrap();
    let settings = Settings {
        attestation: Attestation::Required {
            roots: vec![ca.to_pem(LineEndingPem::LF).unwrap()],
            aaguids: vec![Uuid::from_u128(0xdead_beef)],
            metadata: None,
        },
        ..settings()
    };
    let app = app_with(store, FlowPolicy::default(), &settings).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "nia" }))
        .await;
    assert_eq!(options(&flow)["attestation"], "direct");
    let response = create(&mut token, &flow, ORIGIN);
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "nia",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_attestation_not_allowed",
    )
    .await;
}

/// A FIDO Metadata Service BLOB as the FIDO Alliance publishes it, signed by
/// a chain made here (root → leaf) and read as the product reads one, with
/// that root in place of the FIDO Alliance's: `entries` are its entries.
fn metadata_blob(entries: Value) -> relying_party::metadata::TrustedMetadata {
    use base64::engine::general_purpose::STANDARD;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let root_key = KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(root_params, root_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["mds.test".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![STANDARD.encode(leaf.der())]);
    let claims =
        json!({ "legalHeader": "test", "no": 7, "nextUpdate": "2999-01-01", "entries": entries });
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&leaf_key.serialize_der()),
    )
    .unwrap();
    relying_party::metadata::load(token.as_bytes(), &root.pem(), testkit::T0)
        .unwrap()
        .trust
        .unwrap()
}

/// A BLOB entry for the software token's model: `roots` (DER) and `statuses`.
fn soft_token_entry(roots: &[Vec<u8>], statuses: &[&str]) -> Value {
    use base64::engine::general_purpose::STANDARD;
    use webauthn_authenticator_rs::softtoken::AAGUID;
    json!({
        "aaguid": AAGUID.to_string(),
        "metadataStatement": {
            "description": "Software token",
            "aaguid": AAGUID.to_string(),
            "attestationRootCertificates": roots.iter().map(|r| STANDARD.encode(r)).collect::<Vec<_>>(),
        },
        "statusReports": statuses.iter().map(|s| json!({ "status": s })).collect::<Vec<_>>(),
    })
}

/// Attestation required, trusting only what `metadata` gives: no roots
/// file, no AAGUID list.
fn from_metadata(metadata: relying_party::metadata::TrustedMetadata) -> Settings {
    Settings {
        attestation: Attestation::Required {
            roots: vec![],
            aaguids: vec![],
            metadata: Some(metadata),
        },
        ..settings()
    }
}

async fn attestation_is_verified_against_the_roots_the_metadata_gives(store: Store) {
    use crypto_glue::traits::EncodeDer;
    use webauthn_authenticator_rs::softtoken::{AAGUID, SoftToken};
    let (mut token, ca) = SoftToken::new(true).unwrap();
    let (_, stranger) = SoftToken::new(true).unwrap();
    let listed = metadata_blob(json!([soft_token_entry(
        &[ca.to_der().unwrap()],
        &["FIDO_CERTIFIED_L1"]
    )]));
    let app = app_with(store, FlowPolicy::default(), &from_metadata(listed)).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "ola" }))
        .await;
    assert_eq!(options(&flow)["attestation"], "direct");
    let (status, body) = prove(&app, &flow, create(&mut token, &flow, ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .store_reference(&flow, b"encrypted-biometric-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    app.outcome(&flow, "approved").await;
    assert_eq!(app.flow(id(&flow)).await["state"], "completed");
    assert_eq!(
        credentials(&app, "ola").await[0]["aaguid"],
        AAGUID.to_string()
    );

    // The same authenticator, the BLOB listing another root for its model:
    // refused, and nothing registered.
    let other = metadata_blob(json!([soft_token_entry(
        &[stranger.to_der().unwrap()],
        &[]
    )]));
    let app = app_with(store, FlowPolicy::default(), &from_metadata(other)).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "pat" }))
        .await;
    let attempt = prove(&app, &flow, create(&mut token, &flow, ORIGIN)).await;
    refused(
        &app,
        &flow,
        "pat",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_attestation_not_allowed",
    )
    .await;
}

async fn an_authenticator_the_metadata_reports_revoked_is_refused_and_audited(store: Store) {
    use crypto_glue::traits::EncodeDer;
    use webauthn_authenticator_rs::softtoken::{AAGUID, SoftToken};
    let (mut token, ca) = SoftToken::new(true).unwrap();
    let revoked = metadata_blob(json!([soft_token_entry(
        &[ca.to_der().unwrap()],
        &["FIDO_CERTIFIED_L1", "REVOKED"],
    )]));
    let app = app_with(store, FlowPolicy::default(), &from_metadata(revoked)).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "quin" }))
        .await;
    let attempt = prove(&app, &flow, create(&mut token, &flow, ORIGIN)).await;
    refused(
        &app,
        &flow,
        "quin",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_authenticator_compromised",
    )
    .await;
    let trail = app.audit_trail().await;
    let event = trail
        .iter()
        .find(|e| {
            e.event_type.as_str() == "flow.request_rejected"
                && e.subject.flow_id.map(|f| f.to_string()).as_deref() == Some(id(&flow))
        })
        .expect("audited");
    assert_eq!(
        event.reason.as_deref(),
        Some("webauthn_authenticator_compromised")
    );
    assert_eq!(
        event.details,
        json!({ "code": "webauthn_authenticator_compromised", "aaguid": AAGUID.to_string(), "status": "REVOKED" })
    );
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
