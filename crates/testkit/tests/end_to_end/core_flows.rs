//! The Core API's flows end to end over HTTP, on both stores: every flow type
//! from creation to `completed`, and every failure path.

use core_api::refusals::DEFAULT_HANDOFF_REFUSALS;
use domain::credential::CredentialStatus;
use domain::service::FlowPolicy;
use domain::{Change, Effect};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::core_client::{expect_error, webauthn_id};
use testkit::{Store, TestApp, on_both_stores, spawn_core, spawn_core_with};

mod refusals;
mod retention;

on_both_stores!(
    registration_runs_to_completion,
    registration_waits_for_its_biometric_reference,
    sign_in_runs_to_completion,
    step_up_binds_the_transaction_context,
    recovery_revokes_earlier_credentials,
    recovery_can_keep_earlier_credentials,
    identity_failures_fail_the_flow,
    review_can_end_either_way,
    an_expired_flow_cannot_complete,
    a_cancelled_flow_cannot_complete,
    cross_platform_step_up_hands_off_once,
    long_polling_answers_when_the_flow_changes,
    the_reference_is_released_only_to_a_waiting_flow,
);

fn id(flow: &Value) -> &str {
    flow["id"].as_str().unwrap()
}

async fn step_up(app: &TestApp, user: &str) -> Value {
    app.created(json!({ "type": "step_up", "external_user_id": user }))
        .await
}

async fn registration_runs_to_completion(store: Store) {
    let app = spawn_core(store).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "alice" }))
        .await;
    assert_eq!(flow["state"], "awaiting_verification");
    assert_eq!(flow["identity"]["provider"], "synthetic");
    assert_eq!(flow["identity"]["status"], "pending");
    assert!(
        flow["identity"]["sdk_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert_eq!(flow["version"], 2);

    let (status, after_reference) = app.store_reference(&flow, b"ebt").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after_reference["biometric_reference_stored"], true);
    let (_, staged) = app.get_json("/api/core/v1/users/alice").await;
    assert_eq!(
        staged["has_biometric_reference"], false,
        "staged on the flow until it completes"
    );
    let (status, after_credential) = app.register_credential(&flow, "alice-phone").await;
    assert_eq!(status, StatusCode::OK, "{after_credential}");
    assert_eq!(
        after_credential["state"], "awaiting_verification",
        "identity still pending"
    );
    assert_eq!(after_credential["possession"]["status"], "verified");

    let (status, event) = app.outcome(&flow, "approved").await;
    assert_eq!(
        (status, event["result"].as_str()),
        (StatusCode::OK, Some("applied"))
    );
    let done = app.flow(id(&flow)).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["result"]["assurance"], "possession_and_biometric");
    assert!(
        done["identity"]["sdk_token"].is_null(),
        "no token once the capture is over"
    );

    let (status, user) = app.get_json("/api/core/v1/users/alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["has_biometric_reference"], true);
    let credential = &user["credentials"][0];
    assert_eq!(credential["status"], "active");
    assert_eq!(credential["webauthn_id"], webauthn_id("alice-phone"));
    assert_eq!(credential["id"], done["result"]["credential_id"]);
    assert_eq!(credential["platform"], "ios");
    assert_eq!(credential["transports"], json!(["internal", "hybrid"]));

    assert_eq!(
        app.audit_types(id(&flow)).await,
        [
            "flow.created",
            "flow.idv_started",
            "biometric_reference.staged",
            "flow.possession_verified",
            "provider.event_received",
            "flow.verified",
            "credential.registered",
            "biometric_reference.stored",
            "flow.completed",
        ]
    );
}

async fn registration_waits_for_its_biometric_reference(store: Store) {
    let app = spawn_core(store).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "bea" }))
        .await;
    app.register_credential(&flow, "bea-phone").await;
    app.outcome(&flow, "approved").await;
    assert_eq!(app.flow(id(&flow)).await["state"], "verified");
    let (status, done) = app.store_reference(&flow, b"ebt").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["state"], "completed");
}

async fn sign_in_runs_to_completion(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("carl", "carl-phone").await;
    let flow = app
        .created(json!({ "type": "sign_in", "external_user_id": "carl" }))
        .await;
    assert_eq!(flow["state"], "verified");
    assert_eq!(flow["identity"]["status"], "not_required");
    assert_eq!(flow["identity"]["provider"], "none");
    let (status, done) = app.assert_with(&flow, "carl-phone", 7).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "completed");
    assert_eq!(done["result"]["assurance"], "possession");
    let (_, user) = app.get_json("/api/core/v1/users/carl").await;
    assert_eq!(user["credentials"][0]["sign_count"], 7);
    assert!(user["credentials"][0]["last_used_at"].is_string());
}

async fn step_up_binds_the_transaction_context(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("dora", "dora-phone").await;
    let context =
        json!({ "payee": "ACME Ltd", "amount": { "value": "2500.00", "currency": "EUR" } });
    let flow = app
        .created(json!({ "type": "step_up", "external_user_id": "dora", "transaction_context": context }))
        .await;
    let expected = Sha256::digest(serde_json::to_vec(&context).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert_eq!(flow["transaction_context_sha256"], expected);
    assert_eq!(flow["transaction_context"], context);

    let (status, released) = app
        .post(
            &format!(
                "/api/core/v1/flows/{}/biometric-reference/release",
                id(&flow)
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["token"], webauthn_id("encrypted-biometric-token"));

    app.assert_with(&flow, "dora-phone", 1).await;
    app.outcome(&flow, "approved").await;
    let done = app.flow(id(&flow)).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["result"]["transaction_context_sha256"], expected);
    assert_eq!(done["transaction_context"], context, "echoed back");
    assert!(
        app.audit_types(id(&flow))
            .await
            .contains(&"biometric_reference.released".to_owned())
    );
}

async fn recovery(app: &TestApp, user: &str, new_seed: &str) -> Value {
    app.clock.advance(time::Duration::days(30));
    let flow = app
        .created(json!({ "type": "recovery", "external_user_id": user }))
        .await;
    let (status, body) = app.register_credential(&flow, new_seed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.outcome(&flow, "approved").await;
    app.flow(id(&flow)).await
}

async fn recovery_revokes_earlier_credentials(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("erik", "erik-old").await;
    let done = recovery(&app, "erik", "erik-new").await;
    assert_eq!(done["state"], "completed");
    let (_, user) = app.get_json("/api/core/v1/users/erik").await;
    let statuses: Vec<(Value, Value, Value)> = user["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["webauthn_id"].clone(),
                c["status"].clone(),
                c["status_reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (
                json!(webauthn_id("erik-old")),
                json!("revoked"),
                json!("recovery")
            ),
            (json!(webauthn_id("erik-new")), json!("active"), Value::Null),
        ]
    );
    assert!(
        app.audit_types(id(&done))
            .await
            .contains(&"credential.revoked".to_owned())
    );
}

async fn recovery_can_keep_earlier_credentials(store: Store) {
    let policy = FlowPolicy {
        recovery_revokes_existing: false,
        ..FlowPolicy::default()
    };
    let app = spawn_core_with(store, policy).await;
    app.enrolled("fay", "fay-old").await;
    recovery(&app, "fay", "fay-new").await;
    let (_, user) = app.get_json("/api/core/v1/users/fay").await;
    assert!(
        user["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "active")
    );
}

async fn identity_failures_fail_the_flow(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("gus", "gus-phone").await;
    for (outcome, reason) in [
        ("declined", "idv_declined"),
        ("abandoned", "idv_abandoned"),
        ("error", "idv_error"),
    ] {
        let flow = step_up(&app, "gus").await;
        app.outcome(&flow, outcome).await;
        let failed = app.flow(id(&flow)).await;
        assert_eq!(failed["state"], "failed");
        assert_eq!(failed["failure_reason"], reason);
        let (status, body) = app.assert_with(&flow, "gus-phone", 100).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "flow_ended");
    }
}

async fn review_can_end_either_way(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("hana", "hana-phone").await;
    for (final_outcome, final_state) in [("approved", "verified"), ("declined", "failed")] {
        let flow = step_up(&app, "hana").await;
        app.outcome(&flow, "review").await;
        assert_eq!(app.flow(id(&flow)).await["state"], "in_review");
        app.outcome(&flow, final_outcome).await;
        assert_eq!(app.flow(id(&flow)).await["state"], final_state);
    }
}

async fn an_expired_flow_cannot_complete(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("ivan", "ivan-phone").await;
    let flow = step_up(&app, "ivan").await;
    app.clock.advance(time::Duration::minutes(16));
    let (status, body) = app.assert_with(&flow, "ivan-phone", 1).await;
    expect_error(status, &body, StatusCode::CONFLICT, "flow_expired");
    assert_eq!(app.flow(id(&flow)).await["state"], "expired");
    let (status, _) = app.outcome(&flow, "approved").await;
    assert_eq!(status, StatusCode::OK, "the event is acknowledged");
    assert_eq!(
        app.flow(id(&flow)).await["state"],
        "expired",
        "and changes nothing"
    );
    assert!(
        app.audit_types(id(&flow))
            .await
            .contains(&"flow.expired".to_owned())
    );
}

async fn a_cancelled_flow_cannot_complete(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("jan", "jan-phone").await;
    let flow = step_up(&app, "jan").await;
    let (status, cancelled) = app
        .post(
            &format!("/api/core/v1/flows/{}/cancel", id(&flow)),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (status, body) = app
        .post(
            &format!("/api/core/v1/flows/{}/cancel", id(&flow)),
            json!({}),
        )
        .await;
    expect_error(status, &body, StatusCode::CONFLICT, "flow_ended");
    let (status, _) = app.assert_with(&flow, "jan-phone", 1).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn cross_platform_step_up_hands_off_once(store: Store) {
    let app = std::sync::Arc::new(spawn_core(store).await);
    app.enrolled("sami", "sami-phone").await;
    app.enrolled("tove", "tove-phone").await;
    let flow = app
        .created(json!({ "type": "step_up", "external_user_id": "sami", "cross_platform": true }))
        .await;
    let code = flow["handoff"]["code"].as_str().unwrap().to_owned();
    assert!(
        flow["identity"]["sdk_token"].is_null(),
        "the browser side never sees the SDK token"
    );
    assert!(
        app.flow(id(&flow)).await["handoff"]["code"].is_null(),
        "the code is shown once"
    );
    let (status, body) = app.assert_with(&flow, "sami-phone", 1).await;
    expect_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "proof_not_yet_accepted",
    );

    let claim = |code: String, user: &'static str| {
        let app = app.clone();
        async move {
            app.post(
                "/api/core/v1/handoffs/claim",
                json!({ "code": code, "external_user_id": user }),
            )
            .await
        }
    };
    let (status, body) = claim(code.clone(), "tove").await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "handoff_invalid");
    let (status, body) = claim("made-up-code".into(), "sami").await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "handoff_invalid");

    let racers = (0..8).map(|_| tokio::spawn(claim(code.clone(), "sami")));
    let results: Vec<(StatusCode, Value)> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        winners[0]["identity"]["sdk_token"].is_string(),
        "the phone gets the SDK token"
    );
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::NOT_FOUND)
    );

    app.assert_with(&flow, "sami-phone", 1).await;
    app.outcome(&flow, "approved").await;
    assert_eq!(app.flow(id(&flow)).await["state"], "completed");
    let types = app.audit_types(id(&flow)).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "flow.handoff_claimed")
            .count(),
        1
    );
}

async fn long_polling_answers_when_the_flow_changes(store: Store) {
    let app = std::sync::Arc::new(spawn_core(store).await);
    app.enrolled("uma", "uma-phone").await;
    let flow = step_up(&app, "uma").await;
    let version = flow["version"].as_i64().unwrap();

    // Nothing changes: the wait ends at its bound with the same version.
    let started = std::time::Instant::now();
    let (status, same) = app
        .get_json(&format!(
            "/api/core/v1/flows/{}?after_version={version}&wait_seconds=1",
            id(&flow)
        ))
        .await;
    assert_eq!(
        (status, same["version"].as_i64()),
        (StatusCode::OK, Some(version))
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    let waiter = {
        let app = app.clone();
        let path = format!(
            "/api/core/v1/flows/{}?after_version={version}&wait_seconds=20",
            id(&flow)
        );
        tokio::spawn(async move { app.get_json(&path).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.outcome(&flow, "approved").await;
    let (status, changed) = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("the waiter answers once the flow changes")
        .unwrap();
    assert_eq!(
        (status, changed["state"].as_str()),
        (StatusCode::OK, Some("verified"))
    );

    let (status, body) = app
        .get_json(&format!(
            "/api/core/v1/flows/{}?after_version=0&wait_seconds=31",
            id(&flow)
        ))
        .await;
    expect_error(status, &body, StatusCode::BAD_REQUEST, "invalid_parameter");
}

async fn the_reference_is_released_only_to_a_waiting_flow(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("yuri", "yuri-phone").await;
    let release = |flow: Value| {
        let app = &app;
        async move {
            app.post(
                &format!(
                    "/api/core/v1/flows/{}/biometric-reference/release",
                    id(&flow)
                ),
                json!({}),
            )
            .await
        }
    };
    let sign_in = app
        .created(json!({ "type": "sign_in", "external_user_id": "yuri" }))
        .await;
    let (status, body) = release(sign_in).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("biometric_reference_not_releasable")
        )
    );
    let flow = step_up(&app, "yuri").await;
    app.outcome(&flow, "approved").await;
    let (status, body) = release(flow.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("biometric_reference_not_releasable")
        )
    );
    assert!(
        app.audit_types(id(&flow))
            .await
            .contains(&"flow.request_rejected".to_owned())
    );
    // Step-up needs a reference in the first place.
    let fresh = app
        .created(json!({ "type": "registration", "external_user_id": "zoe" }))
        .await;
    app.register_credential(&fresh, "zoe-phone").await;
    app.outcome(&fresh, "approved").await;
    let (status, body) = app.create_flow("step_up", "zoe").await;
    expect_error(status, &body, StatusCode::CONFLICT, "no_active_credential");
}
