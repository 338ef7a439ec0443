//! Real WebAuthn ceremonies against a `builtin` Core API, with
//! webauthn-authenticator-rs's software passkeys playing the phone: what the
//! tests of the built-in relying party and of the credential export share.

use std::time::Duration;

use relying_party::{Attestation, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::TestApp;
use url::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::{AuthenticatorBackend, WebauthnAuthenticator};
use webauthn_rs_core::proto::{CreationChallengeResponse, RequestChallengeResponse};

pub(crate) const ORIGIN: &str = "https://bank.example";

/// The relying party's settings: `bank.example`, user verification, no attestation.
pub(crate) fn settings() -> Settings {
    Settings {
        rp_id: "bank.example".into(),
        rp_name: "Example Bank".into(),
        origins: vec![Url::parse(ORIGIN).unwrap()],
        user_verification: true,
        attestation: Attestation::None,
        timeout: Duration::from_secs(120),
    }
}

pub(crate) fn id(flow: &Value) -> &str {
    flow["id"].as_str().unwrap()
}

pub(crate) fn options(flow: &Value) -> Value {
    flow["possession"]["webauthn_options"].clone()
}

/// The authenticator's registration response to `flow`'s options, made at `origin`.
pub(crate) fn create(
    authenticator: &mut impl AuthenticatorBackend,
    flow: &Value,
    origin: &str,
) -> Value {
    let options: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options(flow) })).unwrap();
    let response = authenticator
        .do_registration(Url::parse(origin).unwrap(), options)
        .unwrap();
    serde_json::to_value(response).unwrap()
}

/// The authenticator's assertion for `options`, made at `origin`.
pub(crate) fn get(authenticator: &mut SoftPasskey, options: Value, origin: &str) -> Value {
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).unwrap();
    let response = authenticator
        .do_authentication(Url::parse(origin).unwrap(), options)
        .unwrap();
    serde_json::to_value(response).unwrap()
}

pub(crate) async fn prove(app: &TestApp, flow: &Value, response: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/core/v1/flows/{}/possession", id(flow)),
        json!({ "webauthn": { "response": response, "platform": "android", "device_label": "Test phone" } }),
    )
    .await
}

/// Enrolls `user` with a passkey on `phone`: registration, reference, approval.
pub(crate) async fn enroll(app: &TestApp, user: &str, phone: &mut SoftPasskey) -> Value {
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": user }))
        .await;
    let (status, _) = app
        .store_reference(&flow, b"encrypted-biometric-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = prove(app, &flow, create(phone, &flow, ORIGIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.outcome(&flow, "approved").await;
    let done = app.flow(id(&flow)).await;
    assert_eq!(done["state"], "completed", "{done}");
    done
}
