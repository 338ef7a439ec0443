//! Operators' actions on credentials (suspend, activate, revoke), each under
//! its own scope and audited; passkeys named from the operator's
//! authenticator metadata.

use super::*;

on_both_stores!(
    credential_lifecycle_actions_are_scoped_and_audited,
    passkeys_are_named_from_the_operators_authenticator_metadata,
);

async fn credential_lifecycle_actions_are_scoped_and_audited(store: Store) {
    let s = setup(store).await;
    s.core.enrolled("alice", "alice-phone").await;
    let id = reads_need_their_own_scope(&s).await;
    let reason = json!({ "reason": "reported stolen" });
    each_action_needs_its_own_scope(&s, &id, &reason).await;
    a_suspended_credential_is_activated_again(&s, &id, &reason).await;
    a_revoked_credential_stays_revoked(&s, &id, reason).await;
    credential_actions_are_audited_with_the_operator(&s).await;
}

fn credential_action(id: &str, action: &str) -> String {
    format!("/api/management/v1/credentials/{id}/{action}")
}

/// The user and the credential read with their scopes, and not with
/// another's; the user's view holds no reference material. Gives the id of
/// alice's credential.
async fn reads_need_their_own_scope(s: &Setup) -> String {
    let (status, user) = s
        .get("management.users.read", "/api/management/v1/users/alice")
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["has_biometric_reference"], true);
    assert!(
        !user.to_string().contains("encrypted-biometric-token"),
        "no reference material"
    );
    let (status, _) = s
        .get("management.flows.read", "/api/management/v1/users/alice")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let id = user["credentials"][0]["id"].as_str().unwrap().to_owned();

    let (status, credential) = s
        .get(
            "management.credentials.read",
            &format!("/api/management/v1/credentials/{id}"),
        )
        .await;
    assert_eq!(
        (status, credential["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    let (status, _) = s
        .get(
            "management.users.read",
            &format!("/api/management/v1/credentials/{id}"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    id
}

async fn each_action_needs_its_own_scope(s: &Setup, id: &str, reason: &Value) {
    for (action, scope) in [
        ("suspend", "management.credentials.suspend"),
        ("activate", "management.credentials.activate"),
        ("revoke", "management.credentials.revoke"),
    ] {
        let (status, body) = s
            .post(
                ALL.replace(scope, "").as_str(),
                &credential_action(id, action),
                reason.clone(),
            )
            .await;
        expect_error(status, &body, StatusCode::FORBIDDEN, "missing_scope");
        assert!(body["error"]["message"].as_str().unwrap().contains(scope));
    }
}

/// Suspended once (not twice), the credential no longer starts a step-up;
/// activated, it is active again.
async fn a_suspended_credential_is_activated_again(s: &Setup, id: &str, reason: &Value) {
    let (status, suspended) = s
        .post(
            "management.credentials.suspend",
            &credential_action(id, "suspend"),
            reason.clone(),
        )
        .await;
    assert_eq!(
        (status, suspended["status"].as_str()),
        (StatusCode::OK, Some("suspended"))
    );
    let (status, body) = s
        .post(
            "management.credentials.suspend",
            &credential_action(id, "suspend"),
            reason.clone(),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "credential_transition_not_allowed",
    );
    // The Core API now refuses to start a step-up: the user's only credential is suspended.
    let (status, body) = s.core.create_flow("step_up", "alice").await;
    expect_error(status, &body, StatusCode::CONFLICT, "no_active_credential");

    let (status, active) = s
        .post(
            "management.credentials.activate",
            &credential_action(id, "activate"),
            reason.clone(),
        )
        .await;
    assert_eq!(
        (status, active["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
}

/// Revoked with its reason, the credential cannot be activated; a blank
/// reason and a malformed id are client mistakes.
async fn a_revoked_credential_stays_revoked(s: &Setup, id: &str, reason: Value) {
    let (status, revoked) = s
        .post(
            "management.credentials.revoke",
            &credential_action(id, "revoke"),
            json!({ "reason": "device replaced" }),
        )
        .await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    assert_eq!(revoked["status_reason"], "device replaced");
    let (status, body) = s
        .post(
            "management.credentials.activate",
            &credential_action(id, "activate"),
            reason.clone(),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "credential_transition_not_allowed",
    );
    let (status, body) = s
        .post(
            "management.credentials.revoke",
            &credential_action(id, "revoke"),
            json!({ "reason": " " }),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_body",
    );
    let (status, body) = s
        .post(
            "management.credentials.revoke",
            "/api/management/v1/credentials/not-a-uuid/revoke",
            reason,
        )
        .await;
    expect_error(status, &body, StatusCode::BAD_REQUEST, "invalid_parameter");
}

async fn credential_actions_are_audited_with_the_operator(s: &Setup) {
    let actions: Vec<(String, Option<String>, Option<String>)> = s
        .core
        .audit_trail()
        .await
        .into_iter()
        .rev()
        .filter(|e| {
            e.actor.kind() == "operator" && e.event_type.as_str().starts_with("credential.")
        })
        .map(|e| {
            (
                e.event_type.as_str().to_owned(),
                e.actor.id().map(str::to_owned),
                e.reason,
            )
        })
        .collect();
    let by_agent = |t: &str, r: &str| {
        (
            t.to_owned(),
            Some("support-agent-9".to_owned()),
            Some(r.to_owned()),
        )
    };
    assert_eq!(
        actions,
        [
            by_agent("credential.suspended", "reported stolen"),
            by_agent("credential.activated", "reported stolen"),
            by_agent("credential.revoked", "device replaced"),
        ]
    );
}

/// The AAGUID the test client registers with.
const TEST_AAGUID: &str = "08987058-cadc-4b81-b6e1-30de50dcbe96";

async fn passkeys_are_named_from_the_operators_authenticator_metadata(store: Store) {
    let core = spawn_core(store).await;
    core.enrolled("nora", "nora-phone").await;
    let key = SigningKey::generate("k1");
    let jwks = JwksDouble::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("aaguids.json");
    std::fs::write(
        &list,
        json!({
            TEST_AAGUID: { "name": "Windows Hello", "icon_light": "data:image/svg+xml;base64,AA==" },
            "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": { "name": "iCloud Keychain" },
        })
        .to_string(),
    )
    .unwrap();
    let mut config = management_config();
    config.auth.issuer = ISSUER.into();
    config.auth.jwks_url = jwks.url.clone();
    config.metadata_file = Some(list);
    let s = Setup {
        management: spawn_management_for(&core, config.clone()).await,
        core,
        key,
        _jwks: jwks,
    };

    let (status, user) = s
        .get("management.users.read", "/api/management/v1/users/nora")
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let credential = &user["credentials"][0];
    assert_eq!(credential["aaguid"], TEST_AAGUID);
    assert_eq!(credential["authenticator"], "Windows Hello");
    let id = credential["id"].as_str().unwrap();
    let (status, detail) = s
        .get(
            "management.credentials.read",
            &format!("/api/management/v1/credentials/{id}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["authenticator"], "Windows Hello");

    // Without metadata, or for an AAGUID the metadata does not name: null.
    config.metadata_file = None;
    let plain = spawn_management_for(&s.core, config.clone()).await;
    let (status, detail) = plain
        .send(
            plain
                .client
                .get(plain.url(&format!("/api/management/v1/credentials/{id}")))
                .bearer_auth(s.token("management.credentials.read")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["authenticator"], Value::Null);
    assert!(detail.as_object().unwrap().contains_key("authenticator"));

    // A BLOB that does not chain to the FIDO Alliance root: the runtime does
    // not start, and says which setting and why.
    let blob = dir.path().join("blob.jwt");
    std::fs::write(&blob, self_signed_blob()).unwrap();
    config.metadata_file = Some(blob);
    let Err(err) = server::app::management_router_with_clock(
        &config,
        s.core.repo.clone(),
        "management",
        s.core.clock.clone(),
    ) else {
        panic!("a BLOB outside the FIDO chain is refused");
    };
    let message = err.to_string();
    assert!(
        message.contains("BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE")
            && message.contains("does not verify to the FIDO Alliance root certificate"),
        "{message}"
    );
}

/// A well-formed BLOB signed by a self-signed certificate's key.
fn self_signed_blob() -> String {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mds.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![
        base64::engine::general_purpose::STANDARD.encode(cert.der()),
    ]);
    let claims = json!({ "no": 1, "nextUpdate": "2999-01-01", "entries": [] });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
    )
    .unwrap()
}
