//! Real ceremonies between the relying party and webauthn-rs's software
//! authenticators: what succeeds, and what each kind of forgery is refused as.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crypto_glue::traits::{EncodeDer, EncodePem, LineEndingPem};
use domain::possession::{CeremonyError, PasskeyUser, StoredPasskey};
use relying_party::metadata::{TrustedAuthenticator, TrustedMetadata};
use relying_party::{Attestation, Settings, WebauthnRp};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::{AAGUID as SOFT_TOKEN_AAGUID, SoftToken};

const ORIGIN: &str = "https://bank.example";

fn settings() -> Settings {
    Settings {
        rp_id: "bank.example".into(),
        rp_name: "Example Bank".into(),
        origins: vec![
            Url::parse(ORIGIN).unwrap(),
            Url::parse("https://login.bank.example").unwrap(),
            Url::parse("android:apk-key-hash:c2VsZi1zaWduZWQtYXBwLWtleS1oYXNo").unwrap(),
        ],
        user_verification: true,
        attestation: Attestation::None,
        timeout: Duration::from_secs(120),
    }
}

fn rp() -> WebauthnRp {
    WebauthnRp::new(&settings()).unwrap()
}

fn user() -> PasskeyUser<'static> {
    PasskeyUser {
        handle: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001),
        name: "customer-42",
        display_name: "customer-42",
    }
}

fn creation(options: &Value) -> CreationChallengeResponse {
    serde_json::from_value(json!({ "publicKey": options })).unwrap()
}

fn request(options: &Value) -> RequestChallengeResponse {
    serde_json::from_value(json!({ "publicKey": options })).unwrap()
}

fn origin(url: &str) -> Url {
    Url::parse(url).unwrap()
}

/// An authenticator that verifies its user (as a phone's biometric unlock does).
fn phone() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// Registers a passkey on `authenticator` and returns it as stored.
fn register(rp: &WebauthnRp, authenticator: &mut SoftPasskey) -> StoredPasskey {
    let start = rp.start_registration(user(), &[]).unwrap();
    let response = authenticator
        .do_registration(origin(ORIGIN), creation(&start.options))
        .unwrap();
    let verified = rp
        .verify_registration(&start.state, &serde_json::to_value(&response).unwrap())
        .unwrap();
    StoredPasskey {
        webauthn_id: verified.webauthn_id,
        data: verified.data,
    }
}

fn assert_with(
    rp: &WebauthnRp,
    authenticator: &mut SoftPasskey,
    passkey: &StoredPasskey,
    at: &str,
) -> (Vec<u8>, Value) {
    let start = rp
        .start_authentication(std::slice::from_ref(passkey))
        .unwrap();
    let response = authenticator
        .do_authentication(origin(at), request(&start.options))
        .unwrap();
    (start.state, serde_json::to_value(&response).unwrap())
}

#[test]
fn a_passkey_registers_and_then_signs_in() {
    let rp = rp();
    let mut phone = phone();
    let start = rp.start_registration(user(), &[]).unwrap();
    assert_eq!(start.options["rp"]["id"], "bank.example");
    assert_eq!(
        start.options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(start.options["attestation"], "none");
    let response = phone
        .do_registration(origin(ORIGIN), creation(&start.options))
        .unwrap();
    let registered = rp
        .verify_registration(&start.state, &serde_json::to_value(&response).unwrap())
        .unwrap();
    assert!(registered.user_verified);
    // The software passkey self-attests; nothing is verified against a root
    // when the policy asks for no attestation.
    assert_eq!(registered.attestation_format, "packed");
    assert!(!registered.attestation_verified);
    assert!(!registered.public_key.is_empty());
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&registered.webauthn_id).unwrap(),
        response.raw_id.to_vec()
    );

    let passkey = StoredPasskey {
        webauthn_id: registered.webauthn_id.clone(),
        data: registered.data,
    };
    let start = rp
        .start_authentication(std::slice::from_ref(&passkey))
        .unwrap();
    assert_eq!(
        start.options["allowCredentials"][0]["id"],
        registered.webauthn_id
    );
    let response = phone
        .do_authentication(origin(ORIGIN), request(&start.options))
        .unwrap();
    let asserted = rp
        .verify_authentication(&start.state, &serde_json::to_value(&response).unwrap())
        .unwrap();
    assert_eq!(asserted.webauthn_id, registered.webauthn_id);
    assert!(asserted.user_verified);
    assert!(asserted.sign_count > registered.sign_count);
}

#[test]
fn excluded_credentials_are_named_in_the_options() {
    let rp = rp();
    let existing = register(&rp, &mut phone());
    let start = rp
        .start_registration(user(), std::slice::from_ref(&existing.webauthn_id))
        .unwrap();
    assert_eq!(
        start.options["excludeCredentials"][0]["id"],
        existing.webauthn_id
    );
}

#[test]
fn an_origin_outside_the_allowed_list_is_refused() {
    let rp = rp();
    let mut phone = phone();
    let passkey = register(&rp, &mut phone);
    // A sibling subdomain: the RP ID matches, the exact origin is not allowed.
    let (state, response) = assert_with(&rp, &mut phone, &passkey, "https://evil.bank.example");
    assert_eq!(
        rp.verify_authentication(&state, &response),
        Err(CeremonyError::Origin)
    );
}

#[test]
fn a_response_made_for_another_rp_id_is_refused() {
    let rp = rp();
    let mut phone = phone();
    let mut start = rp.start_registration(user(), &[]).unwrap();
    // A client (or phishing page) that asked the authenticator for another RP ID.
    start.options["rp"]["id"] = json!("login.bank.example");
    let response = phone
        .do_registration(
            origin("https://login.bank.example"),
            creation(&start.options),
        )
        .unwrap();
    assert_eq!(
        rp.verify_registration(&start.state, &serde_json::to_value(&response).unwrap()),
        Err(CeremonyError::RpId)
    );
}

#[test]
fn a_response_to_another_ceremony_is_refused() {
    let rp = rp();
    let mut phone = phone();
    let passkey = register(&rp, &mut phone);
    let (_, response_to_first) = assert_with(&rp, &mut phone, &passkey, ORIGIN);
    let (second_state, _) = assert_with(&rp, &mut phone, &passkey, ORIGIN);
    assert_eq!(
        rp.verify_authentication(&second_state, &response_to_first),
        Err(CeremonyError::Challenge)
    );
}

#[test]
fn a_tampered_signature_is_refused() {
    let rp = rp();
    let mut phone = phone();
    let passkey = register(&rp, &mut phone);
    let (state, mut response) = assert_with(&rp, &mut phone, &passkey, ORIGIN);
    let signature = response["response"]["signature"].as_str().unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    response["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(bytes));
    assert_eq!(
        rp.verify_authentication(&state, &response),
        Err(CeremonyError::Signature)
    );
}

#[test]
fn a_registration_without_user_verification_is_refused_when_required() {
    let rp = rp();
    // An authenticator that only checks presence, answering options that were
    // altered on the way to ask for no verification.
    let mut presence_only = SoftPasskey::new(false);
    let mut start = rp.start_registration(user(), &[]).unwrap();
    start.options["authenticatorSelection"]["userVerification"] = json!("discouraged");
    let response = presence_only
        .do_registration(origin(ORIGIN), creation(&start.options))
        .unwrap();
    assert_eq!(
        rp.verify_registration(&start.state, &serde_json::to_value(&response).unwrap()),
        Err(CeremonyError::UserVerification)
    );
}

#[test]
fn an_assertion_without_user_verification_is_refused_when_required() {
    // A passkey registered while verification was only preferred...
    let lax = WebauthnRp::new(&Settings {
        user_verification: false,
        ..settings()
    })
    .unwrap();
    let mut presence_only = SoftPasskey::new(false);
    let passkey = register(&lax, &mut presence_only);
    // ...asserted without it where it is required.
    let rp = rp();
    let mut start = rp
        .start_authentication(std::slice::from_ref(&passkey))
        .unwrap();
    start.options["userVerification"] = json!("discouraged");
    let response = presence_only
        .do_authentication(origin(ORIGIN), request(&start.options))
        .unwrap();
    assert_eq!(
        rp.verify_authentication(&start.state, &serde_json::to_value(&response).unwrap()),
        Err(CeremonyError::UserVerification)
    );
}

#[test]
fn a_credential_outside_the_allowed_list_is_refused() {
    let rp = rp();
    let mut phone = phone();
    let mine = register(&rp, &mut phone);
    let mut other_phone = SoftPasskey::new(true);
    let theirs = register(&rp, &mut other_phone);
    // The ceremony allows `mine`; the other phone answers with `theirs`.
    let start = rp
        .start_authentication(std::slice::from_ref(&mine))
        .unwrap();
    let mut options = start.options.clone();
    options["allowCredentials"][0]["id"] = json!(theirs.webauthn_id);
    let response = other_phone
        .do_authentication(origin(ORIGIN), request(&options))
        .unwrap();
    assert_eq!(
        rp.verify_authentication(&start.state, &serde_json::to_value(&response).unwrap()),
        Err(CeremonyError::CredentialNotAllowed)
    );
}

#[test]
fn an_android_app_origin_is_accepted_when_configured() {
    let rp = rp();
    let mut phone = phone();
    let passkey = register(&rp, &mut phone);
    let start = rp
        .start_authentication(std::slice::from_ref(&passkey))
        .unwrap();
    // The app's origin cannot be given to the software client (it wants a
    // host), so the client data is rewritten as Android's would read.
    let response = phone
        .do_authentication(origin(ORIGIN), request(&start.options))
        .unwrap();
    let mut response = serde_json::to_value(&response).unwrap();
    let client_data = URL_SAFE_NO_PAD
        .decode(response["response"]["clientDataJSON"].as_str().unwrap())
        .unwrap();
    let mut client_data: Value = serde_json::from_slice(&client_data).unwrap();
    client_data["origin"] = json!("android:apk-key-hash:c2VsZi1zaWduZWQtYXBwLWtleS1oYXNo");
    response["response"]["clientDataJSON"] =
        json!(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&client_data).unwrap()));
    // The signature covers the client data's hash, so the rewrite breaks it:
    // the origin check passes and the signature check is what refuses.
    assert_eq!(
        rp.verify_authentication(&start.state, &response),
        Err(CeremonyError::Signature)
    );
}

#[test]
fn attestation_from_an_allowed_authenticator_is_verified() {
    let (mut token, ca) = SoftToken::new(true).unwrap();
    let pem = ca.to_pem(LineEndingPem::LF).unwrap();
    let attested = |aaguids: Vec<Uuid>| {
        WebauthnRp::new(&Settings {
            attestation: Attestation::Required {
                roots: vec![pem.clone()],
                aaguids,
                metadata: None,
            },
            ..settings()
        })
        .unwrap()
    };

    let rp = attested(vec![SOFT_TOKEN_AAGUID]);
    let start = rp.start_registration(user(), &[]).unwrap();
    assert_eq!(start.options["attestation"], "direct");
    let response = token
        .do_registration(origin(ORIGIN), creation(&start.options))
        .unwrap();
    let registered = rp
        .verify_registration(&start.state, &serde_json::to_value(&response).unwrap())
        .unwrap();
    assert!(registered.attestation_verified);
    assert_eq!(registered.attestation_format, "packed");
    assert_eq!(registered.aaguid, Some(SOFT_TOKEN_AAGUID));

    let strict = attested(vec![Uuid::from_u128(42)]);
    let start = strict.start_registration(user(), &[]).unwrap();
    let response = token
        .do_registration(origin(ORIGIN), creation(&start.options))
        .unwrap();
    assert!(matches!(
        strict.verify_registration(&start.state, &serde_json::to_value(&response).unwrap()),
        Err(CeremonyError::Attestation(_))
    ));

    // A passkey with no attestation at all is refused under the policy.
    let start = strict.start_registration(user(), &[]).unwrap();
    let mut options = start.options.clone();
    options["attestation"] = json!("none");
    let response = phone()
        .do_registration(origin(ORIGIN), creation(&options))
        .unwrap();
    assert!(matches!(
        strict.verify_registration(&start.state, &serde_json::to_value(&response).unwrap()),
        Err(CeremonyError::Attestation(_))
    ));
}

/// Metadata listing `roots` (DER) for the soft token's AAGUID, with `status`.
fn metadata(roots: Vec<Vec<u8>>, status: Option<&str>) -> TrustedMetadata {
    let mut metadata = TrustedMetadata::default();
    metadata.authenticators.insert(
        SOFT_TOKEN_AAGUID,
        TrustedAuthenticator {
            roots,
            compromised: status.map(str::to_owned),
        },
    );
    metadata
}

fn register_soft_token(rp: &WebauthnRp, token: &mut SoftToken) -> Result<Uuid, CeremonyError> {
    let start = rp.start_registration(user(), &[]).unwrap();
    let response = token
        .do_registration(origin(ORIGIN), creation(&start.options))
        .unwrap();
    rp.verify_registration(&start.state, &serde_json::to_value(&response).unwrap())
        .map(|registered| registered.aaguid.unwrap())
}

#[test]
fn attestation_roots_come_from_the_metadata_per_aaguid() {
    let (mut token, ca) = SoftToken::new(true).unwrap();
    let der = ca.to_der().unwrap();
    let with = |roots: Vec<String>, aaguids: Vec<Uuid>, metadata: TrustedMetadata| {
        WebauthnRp::new(&Settings {
            attestation: Attestation::Required {
                roots,
                aaguids,
                metadata: Some(metadata),
            },
            ..settings()
        })
    };

    // The metadata's root for the AAGUID, no roots file, no allow-list.
    let rp = with(vec![], vec![], metadata(vec![der.clone()], None)).unwrap();
    assert_eq!(register_soft_token(&rp, &mut token), Ok(SOFT_TOKEN_AAGUID));

    // The metadata lists another root for it: refused.
    let (_, stranger) = SoftToken::new(true).unwrap();
    let rp = with(
        vec![],
        vec![],
        metadata(vec![stranger.to_der().unwrap()], None),
    )
    .unwrap();
    assert!(matches!(
        register_soft_token(&rp, &mut token),
        Err(CeremonyError::Attestation(_))
    ));

    // Its root listed under another AAGUID only: refused.
    let mut elsewhere = TrustedMetadata::default();
    elsewhere.authenticators.insert(
        Uuid::from_u128(7),
        TrustedAuthenticator {
            roots: vec![der.clone()],
            compromised: None,
        },
    );
    let rp = with(vec![], vec![], elsewhere).unwrap();
    assert!(matches!(
        register_soft_token(&rp, &mut token),
        Err(CeremonyError::Attestation(_))
    ));

    // An allow-list that leaves its AAGUID out: refused.
    let mut two = metadata(vec![der.clone()], None);
    two.authenticators.insert(
        Uuid::from_u128(7),
        TrustedAuthenticator {
            roots: vec![stranger.to_der().unwrap()],
            compromised: None,
        },
    );
    let rp = with(vec![], vec![Uuid::from_u128(7)], two).unwrap();
    assert!(matches!(
        register_soft_token(&rp, &mut token),
        Err(CeremonyError::Attestation(_))
    ));

    // The roots file adds its roots for the allowed AAGUIDs the metadata
    // does not vouch for.
    let pem = ca.to_pem(LineEndingPem::LF).unwrap();
    let rp = with(
        vec![pem],
        vec![SOFT_TOKEN_AAGUID],
        metadata(vec![stranger.to_der().unwrap()], None),
    )
    .unwrap();
    assert_eq!(register_soft_token(&rp, &mut token), Ok(SOFT_TOKEN_AAGUID));
}

#[test]
fn an_authenticator_the_metadata_reports_compromised_is_refused() {
    let (mut token, ca) = SoftToken::new(true).unwrap();
    let der = ca.to_der().unwrap();
    let pem = ca.to_pem(LineEndingPem::LF).unwrap();
    for status in relying_party::metadata::COMPROMISED_STATUSES {
        // Refused whether the metadata's root or the roots file trusts it.
        for roots in [vec![], vec![pem.clone()]] {
            let rp = WebauthnRp::new(&Settings {
                attestation: Attestation::Required {
                    roots,
                    aaguids: vec![SOFT_TOKEN_AAGUID],
                    metadata: Some(metadata(vec![der.clone()], Some(status))),
                },
                ..settings()
            })
            .unwrap();
            assert_eq!(
                register_soft_token(&rp, &mut token),
                Err(CeremonyError::AuthenticatorCompromised {
                    aaguid: SOFT_TOKEN_AAGUID,
                    status: status.to_owned(),
                })
            );
        }
    }
}

#[test]
fn an_allowed_aaguid_nothing_gives_a_root_for_is_a_bad_setting() {
    let (_, ca) = SoftToken::new(true).unwrap();
    let err = WebauthnRp::new(&Settings {
        attestation: Attestation::Required {
            roots: vec![],
            aaguids: vec![SOFT_TOKEN_AAGUID, Uuid::from_u128(9)],
            metadata: Some(metadata(vec![ca.to_der().unwrap()], None)),
        },
        ..settings()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("00000000-0000-0000-0000-000000000009"),
        "{err}"
    );
    // Metadata that lists no root at all trusts nothing.
    assert!(
        WebauthnRp::new(&Settings {
            attestation: Attestation::Required {
                roots: vec![],
                aaguids: vec![],
                metadata: Some(metadata(vec![], None)),
            },
            ..settings()
        })
        .is_err()
    );
}

#[test]
fn a_malformed_response_is_refused_as_such() {
    let rp = rp();
    let start = rp.start_registration(user(), &[]).unwrap();
    assert!(matches!(
        rp.verify_registration(&start.state, &json!({"id": 3})),
        Err(CeremonyError::Malformed(_))
    ));
}

#[test]
fn settings_without_origins_or_roots_are_refused() {
    assert!(
        WebauthnRp::new(&Settings {
            origins: vec![],
            ..settings()
        })
        .is_err()
    );
    assert!(
        WebauthnRp::new(&Settings {
            attestation: Attestation::Required {
                roots: vec![],
                aaguids: vec![Uuid::from_u128(1)],
                metadata: None,
            },
            ..settings()
        })
        .is_err()
    );
    assert!(
        WebauthnRp::new(&Settings {
            attestation: Attestation::Required {
                roots: vec!["not a certificate".into()],
                aaguids: vec![Uuid::from_u128(1)],
                metadata: None,
            },
            ..settings()
        })
        .is_err()
    );
}

/// P-256's field prime, big-endian.
const P256_PRIME: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// `passkey` with one coordinate of its stored public key changed by `change`.
fn with_coordinate(
    passkey: &StoredPasskey,
    coordinate: &str,
    change: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> StoredPasskey {
    let mut data = passkey.data.clone();
    let slot = &mut data["cred"]["key"]["EC_EC2"][coordinate];
    let bytes = URL_SAFE_NO_PAD
        .decode(
            slot.as_str()
                .unwrap_or_else(|| panic!("no {coordinate} in {}", passkey.data)),
        )
        .unwrap();
    *slot = json!(URL_SAFE_NO_PAD.encode(change(bytes)));
    StoredPasskey {
        webauthn_id: passkey.webauthn_id.clone(),
        data,
    }
}

/// Big-endian `a + b`, one byte longer.
fn add(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut sum = vec![0u8; a.len().max(b.len()) + 1];
    let mut carry = 0u16;
    for i in 0..sum.len() {
        let digit = |n: &[u8]| n.len().checked_sub(i + 1).map_or(0, |at| u16::from(n[at]));
        let total = digit(a) + digit(b) + carry;
        let at = sum.len() - 1 - i;
        sum[at] = (total & 0xff) as u8;
        carry = total >> 8;
    }
    sum
}

#[test]
fn a_stored_key_off_the_curve_verifies_nothing() {
    let rp = rp();
    let mut phone = phone();
    let passkey = register(&rp, &mut phone);
    let off_curve = with_coordinate(&passkey, "y", |mut y| {
        let last = y.len() - 1;
        y[last] ^= 0x01;
        y
    });
    let (state, response) = assert_with(&rp, &mut phone, &off_curve, ORIGIN);
    assert!(rp.verify_authentication(&state, &response).is_err());
    // The same assertion against the key as registered verifies.
    let (state, response) = assert_with(&rp, &mut phone, &passkey, ORIGIN);
    assert!(rp.verify_authentication(&state, &response).is_ok());
}

/// A coordinate beyond the field's prime names the same point as that
/// coordinate less the prime, so a library that reduced it instead of
/// refusing it would take a key no authenticator reports.
#[test]
fn a_stored_key_with_a_coordinate_beyond_the_field_verifies_nothing() {
    let rp = rp();
    let mut phone = phone();
    let passkey = register(&rp, &mut phone);
    let beyond = with_coordinate(&passkey, "x", |x| add(&x, &P256_PRIME));
    let (state, response) = assert_with(&rp, &mut phone, &beyond, ORIGIN);
    assert!(rp.verify_authentication(&state, &response).is_err());
}
