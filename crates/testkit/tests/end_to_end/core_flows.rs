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
    another_users_credential_is_refused,
    suspended_and_revoked_credentials_are_refused,
    a_counter_regression_is_refused_and_audited,
    malformed_and_unknown_input_gets_stable_codes,
    transaction_contexts_are_checked,
    idempotency_keys_replay_and_refuse_reuse,
    idempotency_records_name_no_user_and_leave_with_the_user_or_their_day,
    ended_flows_keep_no_sdk_token_and_leave_after_their_retention,
    a_failing_provider_cleanup_retries_with_backoff_and_dies_without_blocking_the_rest,
    parallel_completions_have_exactly_one_winner,
    cross_platform_step_up_hands_off_once,
    guessed_hand_off_codes_are_counted_and_cut_off_per_user,
    long_polling_answers_when_the_flow_changes,
    per_user_limits_apply,
    a_provider_outage_fails_the_flow_cleanly,
    deleting_a_user_removes_everything_but_the_trail,
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

async fn another_users_credential_is_refused(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("kim", "kim-phone").await;
    app.enrolled("lea", "lea-phone").await;
    let flow = app
        .created(json!({ "type": "sign_in", "external_user_id": "lea" }))
        .await;
    let (status, body) = app.assert_with(&flow, "kim-phone", 1).await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "credential_not_found");
    let (status, body) = app.assert_with(&flow, "nobody-phone", 1).await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "credential_not_found");
    let unchanged = app.flow(id(&flow)).await;
    assert_eq!(
        (unchanged["state"].as_str(), unchanged["version"].as_i64()),
        (Some("verified"), Some(1))
    );
    let (_, kim) = app.get_json("/api/core/v1/users/kim").await;
    assert_eq!(
        kim["credentials"][0]["sign_count"], 0,
        "kim's credential untouched"
    );
    assert_eq!(
        app.audit_types(id(&flow)).await,
        [
            "flow.created",
            "flow.request_rejected",
            "flow.request_rejected"
        ]
    );
}

async fn set_status(app: &TestApp, webauthn: &str, from: CredentialStatus, to: CredentialStatus) {
    let credential = app
        .repo
        .credential_by_webauthn_id(&webauthn_id(webauthn))
        .await
        .unwrap();
    app.repo
        .apply(&Change {
            flow: None,
            effects: vec![Effect::SetCredentialStatus {
                id: credential.id,
                from,
                to,
                reason: Some("test".into()),
                at: testkit::T0,
            }],
            events: vec![],
        })
        .await
        .unwrap();
}

async fn suspended_and_revoked_credentials_are_refused(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("max", "max-phone").await;
    let flow = app
        .created(json!({ "type": "sign_in", "external_user_id": "max" }))
        .await;
    set_status(
        &app,
        "max-phone",
        CredentialStatus::Active,
        CredentialStatus::Suspended,
    )
    .await;
    let (status, body) = app.assert_with(&flow, "max-phone", 1).await;
    expect_error(status, &body, StatusCode::CONFLICT, "credential_not_active");
    set_status(
        &app,
        "max-phone",
        CredentialStatus::Suspended,
        CredentialStatus::Revoked,
    )
    .await;
    let (status, body) = app.assert_with(&flow, "max-phone", 1).await;
    expect_error(status, &body, StatusCode::CONFLICT, "credential_not_active");
    // With no active credential left, new sign-ins are refused up front.
    let (status, body) = app.create_flow("sign_in", "max").await;
    expect_error(status, &body, StatusCode::CONFLICT, "no_active_credential");
}

async fn a_counter_regression_is_refused_and_audited(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("nia", "nia-phone").await;
    let first = app
        .created(json!({ "type": "sign_in", "external_user_id": "nia" }))
        .await;
    assert_eq!(
        app.assert_with(&first, "nia-phone", 5).await.0,
        StatusCode::OK
    );
    let second = app
        .created(json!({ "type": "sign_in", "external_user_id": "nia" }))
        .await;
    for reported in [5, 4, 0] {
        let (status, body) = app.assert_with(&second, "nia-phone", reported).await;
        expect_error(status, &body, StatusCode::CONFLICT, "counter_regression");
    }
    let (_, user) = app.get_json("/api/core/v1/users/nia").await;
    assert_eq!(user["credentials"][0]["sign_count"], 5);
    assert_eq!(app.flow(id(&second)).await["state"], "verified");
    let regressions = app
        .audit_types(id(&second))
        .await
        .into_iter()
        .filter(|t| t == "credential.counter_regression")
        .count();
    assert_eq!(regressions, 3);
    assert_eq!(
        app.assert_with(&second, "nia-phone", 6).await.0,
        StatusCode::OK
    );
}

async fn malformed_and_unknown_input_gets_stable_codes(store: Store) {
    let app = spawn_core(store).await;
    let cases: Vec<(StatusCode, Value, &str)> = vec![
        app.get_json("/api/core/v1/flows/not-a-uuid").await,
        app.get_json("/api/core/v1/flows/0190c7a4-0000-7000-8000-000000000000")
            .await,
        app.get_json("/api/core/v1/users/bad%20id").await,
        app.get_json("/api/core/v1/users/nobody").await,
        app.create_flow("registration", "has space").await,
        app.create_flow("registration", &"x".repeat(129)).await,
        app.create_flow("sign_in", "nobody").await,
        app.create_flow("teleport", "alice").await,
        app.post(
            "/api/core/v1/flows",
            json!({ "type": "registration", "external_user_id": "a", "extra": 1 }),
        )
        .await,
        // The framework's own refusals (query, path, content type) come in
        // the same JSON body.
        app.get_json("/api/core/v1/flows/0190c7a4-0000-7000-8000-000000000000?wait_seconds=-1")
            .await,
        app.get_json("/api/core/v1/flows/0190c7a4-0000-7000-8000-000000000000?wait_seconds=31")
            .await,
        app.get_json("/api/core/v1/flows/0190c7a4-0000-7000-8000-000000000000?after_version=x")
            .await,
        app.get_json("/api/core/v1/users/%FF").await,
        app.send(
            app.client
                .post(app.url("/api/core/v1/flows"))
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await,
    ]
    .into_iter()
    .zip([
        "invalid_parameter",
        "flow_not_found",
        "invalid_external_user_id",
        "user_not_found",
        "invalid_external_user_id",
        "invalid_external_user_id",
        "user_not_found",
        "invalid_request_body",
        "invalid_request_body",
        "invalid_parameter",
        "invalid_parameter",
        "invalid_parameter",
        "invalid_parameter",
        "unsupported_media_type",
    ])
    .map(|((status, body), code)| (status, body, code))
    .collect();
    for (status, body, code) in cases {
        assert!(status.is_client_error(), "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["correlation_id"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        );
    }
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "olga" }))
        .await;
    let (status, body) = app
        .post(
            &format!("/api/core/v1/flows/{}/possession", id(&flow)),
            json!({ "credential": { "id": "not base64!" } }),
        )
        .await;
    expect_error(status, &body, StatusCode::BAD_REQUEST, "invalid_credential");
    let (status, body) = app.assert_with(&flow, "olga-phone", 1).await;
    expect_error(status, &body, StatusCode::BAD_REQUEST, "invalid_credential");
}

async fn transaction_contexts_are_checked(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("pia", "pia-phone").await;
    let big = json!({ "blob": "x".repeat(5000) });
    let (status, body) = app
        .post(
            "/api/core/v1/flows",
            json!({ "type": "step_up", "external_user_id": "pia", "transaction_context": big }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("transaction_context_too_large")
        )
    );
    let (status, body) = app
        .post(
            "/api/core/v1/flows",
            json!({ "type": "step_up", "external_user_id": "pia", "transaction_context": [1] }),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_body",
    );
    let (status, body) = app
        .post(
            "/api/core/v1/flows",
            json!({ "type": "sign_in", "external_user_id": "pia", "transaction_context": {} }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("transaction_context_not_allowed")
        )
    );
}

async fn idempotency_keys_replay_and_refuse_reuse(store: Store) {
    let app = spawn_core(store).await;
    let body = json!({ "type": "registration", "external_user_id": "quinn" });
    let send = |body: Value| {
        app.client
            .post(app.url("/api/core/v1/flows"))
            .header("Idempotency-Key", "create-quinn-1")
            .json(&body)
    };
    let first = send(body.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_headers = first.headers().clone();
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    for response in [&first_headers, again.headers()] {
        assert_eq!(response["cache-control"], "no-store");
        assert_eq!(response["x-content-type-options"], "nosniff");
    }
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the same response, SDK token included");
    assert_eq!(
        app.audit_types(id(&first))
            .await
            .iter()
            .filter(|t| *t == "flow.created")
            .count(),
        1
    );

    let (status, other) = app
        .send(send(
            json!({ "type": "registration", "external_user_id": "quinn2" }),
        ))
        .await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    let (status, bad) = app
        .send(
            app.client
                .post(app.url("/api/core/v1/flows"))
                .header("Idempotency-Key", "")
                .json(&body),
        )
        .await;
    expect_error(
        status,
        &bad,
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    );
}

/// The stored idempotency records, as a re-seal lists them: (scope, key).
async fn idempotency_rows(app: &TestApp) -> Vec<(String, String)> {
    use domain::rotation::{RowKey, SealedColumn};
    app.repo
        .sealed_not_under(SealedColumn::IdempotentResponse, "no-such-key", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|row| match row.row {
            RowKey::Idempotency { scope, key } => (scope, key),
            RowKey::Id(id) => panic!("an idempotency record keyed by {id}"),
        })
        .collect()
}

async fn idempotency_records_name_no_user_and_leave_with_the_user_or_their_day(store: Store) {
    let app = spawn_core(store).await;
    let create = |user: &str, key: &str| {
        app.client
            .post(app.url("/api/core/v1/flows"))
            .header("Idempotency-Key", key)
            .json(&json!({ "type": "registration", "external_user_id": user }))
    };
    let (status, _) = app.send(create("wanda-7781", "create-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.send(create("vera-5512", "create-2")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .send(
            app.client
                .delete(app.url("/api/core/v1/users/wanda-7781"))
                .header("Idempotency-Key", "delete-1"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let mut rows = idempotency_rows(&app).await;
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    let keys: Vec<&str> = rows.iter().map(|(_, key)| key.as_str()).collect();
    assert_eq!(
        keys,
        ["create-2", "delete-1"],
        "the deleted user's flow went with them"
    );
    assert_eq!(rows[0].0, "POST /api/core/v1/flows");
    let deletion = &rows[1].0;
    assert!(
        deletion.starts_with("DELETE /api/core/v1/users/~") && !deletion.contains("wanda"),
        "the user's id is stored as a keyed digest: {deletion}"
    );

    // Their day over, the rest go with the Core API's housekeeping.
    let housekeeping = domain::retention::Housekeeping::new(
        app.repo.clone(),
        app.clock.clone(),
        domain::retention::RetentionPolicy::default(),
    );
    assert_eq!(
        housekeeping.run_once().await.unwrap().idempotency_records,
        0
    );
    app.clock.advance(time::Duration::hours(24));
    let report = housekeeping.run_once().await.unwrap();
    assert_eq!(report.idempotency_records, 2);
    assert!(idempotency_rows(&app).await.is_empty());
}

async fn ended_flows_keep_no_sdk_token_and_leave_after_their_retention(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("greta", "greta-phone").await;
    let cancelled = step_up(&app, "greta").await;
    let untouched = step_up(&app, "greta").await;
    let stored = |flow: &Value| {
        let id = domain::flow::FlowId(id(flow).parse().unwrap());
        let repo = app.repo.clone();
        async move { repo.flow(id).await }
    };
    assert!(stored(&cancelled).await.unwrap().sdk_token_sealed.is_some());
    let (status, _) = app
        .post(
            &format!("/api/core/v1/flows/{}/cancel", id(&cancelled)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stored(&cancelled).await.unwrap().sdk_token_sealed,
        None,
        "the write that ends the flow clears its token"
    );

    // The untouched flow expires without a write: housekeeping clears it.
    let housekeeping = domain::retention::Housekeeping::new(
        app.repo.clone(),
        app.clock.clone(),
        domain::retention::RetentionPolicy::default(),
    );
    app.clock.advance(time::Duration::minutes(16));
    let report = housekeeping.run_once().await.unwrap();
    assert_eq!(report.expired_flow_secrets, 1, "{report:?}");
    let expired = stored(&untouched).await.unwrap();
    assert_eq!(expired.sdk_token_sealed, None);
    assert_eq!(expired.state.as_str(), "awaiting_verification");

    // Thirty days after their expiry, the flows themselves go.
    app.clock.advance(time::Duration::days(30));
    let report = housekeeping.run_once().await.unwrap();
    assert!(report.ended_flows >= 2, "{report:?}");
    let (status, _) = app
        .get_json(&format!("/api/core/v1/flows/{}", id(&untouched)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, user) = app.get_json("/api/core/v1/users/greta").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the user and their passkey stay: {user}"
    );
}

/// A deleted user whose stored applicant id cannot be decrypted fails every
/// attempt: the users deleted after them are still forgotten, the failing one
/// is retried with backoff and, after its last attempt, marked dead.
async fn a_failing_provider_cleanup_retries_with_backoff_and_dies_without_blocking_the_rest(
    store: Store,
) {
    use domain::service::{FlowService, provider_cleanup_backoff};
    use domain::{AuditEventType, Clock, ExternalUserId, NewAuditEvent, Subject, User};

    let app = spawn_core(store).await;
    let policy = FlowPolicy {
        provider_cleanup_max_attempts: 3,
        ..FlowPolicy::default()
    };
    let flows = FlowService::new(
        app.repo.clone(),
        app.synthetic.clone(),
        app.clock.clone(),
        testkit::test_key(),
        policy,
    );
    let mut users = Vec::new();
    for (n, name) in ["broken", "fine-1", "fine-2"].into_iter().enumerate() {
        let mut user = User::new(ExternalUserId::parse(name).unwrap(), testkit::T0);
        if n == 0 {
            user.idv_applicant_sealed = Some(b"not a sealed value".to_vec());
        }
        let event = |t| {
            NewAuditEvent::new(
                t,
                domain::Actor::Integration(None),
                Subject::default(),
                app.clock.now(),
            )
        };
        app.repo
            .create_user(&user, &event(AuditEventType::UserCreated))
            .await
            .unwrap();
        app.repo
            .delete_user(user.id, &event(AuditEventType::UserDeleted))
            .await
            .unwrap();
        app.clock.advance(time::Duration::seconds(1));
        users.push(user);
    }

    let first = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!(
        first.forgotten, 2,
        "the failing item blocks nothing: {first:?}"
    );
    assert_eq!(first.retrying.len(), 1);
    assert_eq!(first.retrying[0].user_id, users[0].id);
    assert!(first.retrying[0].reason.contains("cannot be opened"));
    let queued = app.repo.pending_provider_cleanups(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].next_attempt_at,
        Some(app.clock.now() + provider_cleanup_backoff(1))
    );

    // Not due before its backoff; the second attempt waits twice as long.
    let early = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!(early, Default::default());
    app.clock.advance(provider_cleanup_backoff(1));
    let second = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!(second.retrying.len(), 1);
    assert_eq!(provider_cleanup_backoff(2), provider_cleanup_backoff(1) * 2);
    app.clock.advance(provider_cleanup_backoff(2));
    let third = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!((third.retrying.len(), third.dead.len()), (0, 1));
    assert_eq!(third.dead[0].attempts, 3);

    let dead = &app.repo.pending_provider_cleanups(10).await.unwrap()[0];
    assert_eq!(dead.dead_at, Some(app.clock.now()));
    app.clock.advance(time::Duration::days(1));
    assert_eq!(
        flows.process_provider_cleanups(50).await.unwrap(),
        Default::default(),
        "a dead clean-up is not tried again"
    );
}

async fn parallel_completions_have_exactly_one_winner(store: Store) {
    let app = std::sync::Arc::new(spawn_core(store).await);
    app.enrolled("rosa", "rosa-phone").await;
    let flow = app
        .created(json!({ "type": "sign_in", "external_user_id": "rosa" }))
        .await;
    let attempts = (1..=16).map(|count| {
        let app = app.clone();
        let flow = flow.clone();
        tokio::spawn(async move { app.assert_with(&flow, "rosa-phone", count).await })
    });
    let mut wins = 0;
    for attempt in futures::future::join_all(attempts).await {
        let (status, body) = attempt.unwrap();
        match status {
            StatusCode::OK => wins += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(wins, 1);
    let types = app.audit_types(id(&flow)).await;
    assert_eq!(types.iter().filter(|t| *t == "flow.completed").count(), 1);
    assert_eq!(types.iter().filter(|t| *t == "credential.used").count(), 1);
}

/// Thousands of guessed hand-off codes: the trail gains one row per actor,
/// reason and minute, not one per guess; a user past
/// [`DEFAULT_HANDOFF_REFUSALS`] refusals is answered 429 for the rest of the
/// minute, while other users' claims go through.
async fn guessed_hand_off_codes_are_counted_and_cut_off_per_user(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("sami", "sami-phone").await;
    app.enrolled("tove", "tove-phone").await;
    let rows_before = app.audit_trail().await.len();
    let claim = |code: String, user: &'static str| {
        app.post(
            "/api/core/v1/handoffs/claim",
            json!({ "code": code, "external_user_id": user }),
        )
    };
    let mut statuses = Vec::new();
    for n in 0..2000 {
        let (status, body) = claim(format!("guess-{n}"), "sami").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["error"]["code"], "too_many_refused_requests");
        }
        statuses.push(status);
    }
    let limit = DEFAULT_HANDOFF_REFUSALS as usize;
    assert!(
        statuses[..limit]
            .iter()
            .all(|s| *s == StatusCode::NOT_FOUND)
    );
    assert!(
        statuses[limit..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
    );
    // Even the right code is refused for sami until the minute ends…
    let flow = app
        .created(json!({ "type": "step_up", "external_user_id": "sami", "cross_platform": true }))
        .await;
    let code = flow["handoff"]["code"].as_str().unwrap().to_owned();
    let (status, _) = claim(code.clone(), "sami").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // …while tove, claimed through the same backend, is not held up.
    let tove = app
        .created(json!({ "type": "step_up", "external_user_id": "tove", "cross_platform": true }))
        .await;
    let (status, body) = claim(tove["handoff"]["code"].as_str().unwrap().into(), "tove").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The minute ends within the code's two minutes.
    app.clock.advance(time::Duration::seconds(61));
    let (status, body) = claim(code, "sami").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.flush_refusal_tally(true).await;

    let trail = app.audit_trail().await;
    let written = &trail[..trail.len() - rows_before];
    let counted: Vec<(String, u64)> = written
        .iter()
        .filter(|e| e.event_type.as_str() == "flow.request_rejected" && e.subject.flow_id.is_none())
        .map(|e| {
            assert_eq!(e.actor, domain::audit::Actor::Integration(None));
            (
                e.reason.clone().unwrap_or_default(),
                e.details["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut counted = counted;
    counted.sort();
    assert_eq!(
        counted,
        vec![
            ("handoff_limited".to_owned(), (2000 - limit + 1) as u64),
            ("handoff_unknown".to_owned(), limit as u64),
        ]
    );
    assert!(
        written.len() < 40,
        "the two step-ups' events and the counts, not a row per guess: {}",
        written.len()
    );
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

async fn per_user_limits_apply(store: Store) {
    let policy = FlowPolicy {
        max_open_flows_per_user: 2,
        max_idv_runs_per_user_per_day: 3,
        ..FlowPolicy::default()
    };
    let app = spawn_core_with(store, policy).await;
    app.created(json!({ "type": "registration", "external_user_id": "vera" }))
        .await;
    app.created(json!({ "type": "registration", "external_user_id": "vera" }))
        .await;
    let (status, body) = app.create_flow("registration", "vera").await;
    expect_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_open_flows",
    );
    // Expired flows no longer count as open, but their IDV runs still count for the day.
    app.clock.advance(time::Duration::minutes(20));
    app.created(json!({ "type": "registration", "external_user_id": "vera" }))
        .await;
    let (status, body) = app.create_flow("registration", "vera").await;
    expect_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "idv_run_limit_reached",
    );
    app.clock.advance(time::Duration::hours(25));
    app.created(json!({ "type": "registration", "external_user_id": "vera" }))
        .await;
}

async fn a_provider_outage_fails_the_flow_cleanly(store: Store) {
    let app = spawn_core(store).await;
    app.synthetic.set_unavailable(true);
    let (status, body) = app.create_flow("registration", "walt").await;
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "idv_unavailable",
    );
    let trail = app.audit_trail().await;
    let failed = trail
        .iter()
        .find(|e| e.event_type.as_str() == "flow.failed")
        .expect("flow.failed");
    assert_eq!(failed.reason.as_deref(), Some("idv_unavailable"));
    let flow_id = failed.subject.flow_id.unwrap().to_string();
    assert_eq!(
        app.flow(&flow_id).await["state"],
        "failed",
        "not left pending"
    );
    app.synthetic.set_unavailable(false);
    app.created(json!({ "type": "registration", "external_user_id": "walt" }))
        .await;
}

async fn deleting_a_user_removes_everything_but_the_trail(store: Store) {
    let app = spawn_core(store).await;
    let done = app.enrolled("xena", "xena-phone").await;
    let (status, _) = app
        .send(app.client.delete(app.url("/api/core/v1/users/xena")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get_json("/api/core/v1/users/xena").await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "user_not_found");
    let (status, _) = app
        .get_json(&format!("/api/core/v1/flows/{}", id(&done)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        app.repo
            .credential_by_webauthn_id(&webauthn_id("xena-phone"))
            .await
            .is_err()
    );
    let trail = app.audit_trail().await;
    let deleted = &trail[0];
    assert_eq!(deleted.event_type.as_str(), "user.deleted");
    assert!(deleted.subject.user_pseudonym.is_some());
    assert!(
        !format!("{trail:?}").contains("xena"),
        "the trail keeps no customer identifier"
    );
    // The identifier can be enrolled again.
    app.enrolled("xena", "xena-phone").await;
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
