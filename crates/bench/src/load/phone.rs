//! The simulated phones of `builtin` mode: a software authenticator's
//! answers to the service's WebAuthn options.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_core_06::proto::{
    AttestationConveyancePreference, CreationChallengeResponse, RequestChallengeResponse,
};

/// The authenticator's registration response to `options`, made at `origin`.
pub(crate) fn registration_response(
    phone: &mut SoftPasskey,
    origin: &Url,
    options: &Value,
) -> anyhow::Result<Value> {
    let options: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).context("creation options")?;
    let asks_attestation = options
        .public_key
        .attestation
        .as_ref()
        .is_some_and(|a| !matches!(a, AttestationConveyancePreference::None));
    let response = phone
        .do_registration(origin.clone(), options)
        .map_err(|e| anyhow::anyhow!("software authenticator: {e:?}"))?;
    let mut response = serde_json::to_value(response)?;
    if !asks_attestation {
        strip_attestation(&mut response)?;
    }
    Ok(response)
}

/// Replaces the attestation statement of a registration `response` with
/// `none`: what the passkeys of phones (iCloud Keychain, Google Password
/// Manager) send when the relying party asks for no attestation, so what the
/// service sees from the mobile apps it serves. The software authenticator
/// always signs a `packed` self-attestation instead, which the service would
/// verify at the cost of one P-256 verification per registration (`bench
/// webauthn` measures that verification).
fn strip_attestation(response: &mut Value) -> anyhow::Result<()> {
    use serde_cbor_2::Value as Cbor;
    let field = &mut response["response"]["attestationObject"];
    let encoded = field.as_str().context("attestationObject")?;
    let mut object: BTreeMap<Cbor, Cbor> =
        serde_cbor_2::from_slice(&URL_SAFE_NO_PAD.decode(encoded)?)?;
    let auth_data = object
        .remove(&Cbor::Text("authData".into()))
        .context("authData")?;
    let none = BTreeMap::from([
        (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
        (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
        (Cbor::Text("authData".into()), auth_data),
    ]);
    *field = Value::String(URL_SAFE_NO_PAD.encode(serde_cbor_2::to_vec(&Cbor::Map(none))?));
    Ok(())
}

/// The authenticator's assertion for `options`, made at `origin`.
pub(crate) fn assertion_response(
    phone: &mut SoftPasskey,
    origin: &Url,
    options: &Value,
) -> anyhow::Result<Value> {
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).context("request options")?;
    let response = phone
        .do_authentication(origin.clone(), options)
        .map_err(|e| anyhow::anyhow!("software authenticator: {e:?}"))?;
    Ok(serde_json::to_value(response)?)
}

pub(super) fn webauthn_body(response: Value) -> Value {
    json!({ "webauthn": { "response": response, "platform": "android", "device_label": "Bench phone" } })
}
