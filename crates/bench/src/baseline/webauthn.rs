//! `builtin` mode's stand-ins: WebAuthn options with a ceremony, what the
//! product stores of a verified registration, and the counter an assertion
//! reports. Nothing is verified.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::credential::{Credential, CredentialStatus};
use domain::flow::{Ceremony, Flow};
use domain::{User, ids};
use serde_json::{Value, json};

use super::bad;

/// `builtin` mode: WebAuthn options for `flow` with a fresh challenge, and
/// the ceremony the flow keeps (the options themselves, where the product
/// keeps its sealed state).
pub(super) fn ceremony(
    rp_id: &str,
    user: &User,
    flow: &Flow,
    passkeys: &[Credential],
) -> (Value, Ceremony) {
    let challenge = URL_SAFE_NO_PAD.encode(ids::random_bytes::<32>());
    let descriptor = |c: &Credential| json!({ "type": "public-key", "id": c.webauthn_id.as_str() });
    let options = if flow.flow_type.creates_credential() {
        json!({
            "rp": { "id": rp_id, "name": rp_id },
            "user": {
                "id": URL_SAFE_NO_PAD.encode(user.id.0.as_bytes()),
                "name": user.external_id.as_str(),
                "displayName": user.external_id.as_str(),
            },
            "challenge": challenge,
            "pubKeyCredParams": [{ "type": "public-key", "alg": -7 }],
            "timeout": 120_000,
            "excludeCredentials": passkeys.iter().map(descriptor).collect::<Vec<_>>(),
            "authenticatorSelection": { "requireResidentKey": false, "userVerification": "required" },
            "attestation": "none",
        })
    } else {
        json!({
            "challenge": challenge,
            "timeout": 120_000,
            "rpId": rp_id,
            "allowCredentials": passkeys
                .iter()
                .filter(|c| c.status == CredentialStatus::Active && c.passkey.is_some())
                .map(descriptor)
                .collect::<Vec<_>>(),
            "userVerification": "required",
        })
    };
    let ceremony = Ceremony {
        state_sealed: options.to_string().into_bytes(),
        expires_at: flow.created_at + time::Duration::minutes(5),
    };
    (options, ceremony)
}

/// Stand-ins for what the product stores of a verified registration: the
/// public key (webauthn-rs's COSE key of a P-256 key, as JSON) and the passkey
/// (webauthn-rs's serialised form, around the same key).
pub(super) fn registered(webauthn_id: &str) -> (Vec<u8>, Value) {
    let coordinate = || URL_SAFE_NO_PAD.encode(ids::random_bytes::<32>());
    let key = json!({
        "type_": "ES256",
        "key": { "EC_EC2": { "curve": "SECP256R1", "x": coordinate(), "y": coordinate() } },
    });
    let passkey = json!({
        "cred": key,
        "counter": 0,
        "cred_id": webauthn_id,
        "extensions": {
            "appid": "NotRequested",
            "cred_props": "Ignored",
            "cred_protect": "Ignored",
            "hmac_create_secret": "NotRequested",
        },
        "transports": null,
        "attestation": { "data": "Self_", "metadata": "None" },
        "backup_state": false,
        "user_verified": true,
        "backup_eligible": false,
        "attestation_format": "packed",
        "registration_policy": "required",
    });
    (key.to_string().into_bytes(), passkey)
}

/// The signature counter in a WebAuthn assertion's authenticator data.
pub(super) fn assertion_counter(response: &Value) -> Result<u32, (StatusCode, String)> {
    let data = URL_SAFE_NO_PAD
        .decode(
            response["response"]["authenticatorData"]
                .as_str()
                .unwrap_or(""),
        )
        .map_err(bad)?;
    let counter: [u8; 4] = data
        .get(33..37)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("authenticator data too short"))?;
    Ok(u32::from_be_bytes(counter))
}
