//! Authenticator models and attestation: a model the policy disallows,
//! attestation verified against the roots the FIDO metadata gives, and an
//! authenticator the metadata reports revoked.

use super::*;

on_both_stores!(
    a_disallowed_authenticator_model_is_refused,
    attestation_is_verified_against_the_roots_the_metadata_gives,
    an_authenticator_the_metadata_reports_revoked_is_refused_and_audited,
);

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
