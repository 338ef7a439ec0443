//! What the Core API refuses, with its stable codes, and changes nothing for:
//! another user's or an inactive credential, a counter regression, malformed
//! input, transaction contexts, the per-user limits, a second completion,
//! guessed hand-off codes; and a provider outage failing the flow cleanly.

use super::*;

on_both_stores!(
    another_users_credential_is_refused,
    suspended_and_revoked_credentials_are_refused,
    a_counter_regression_is_refused_and_audited,
    malformed_and_unknown_input_gets_stable_codes,
    transaction_contexts_are_checked,
    per_user_limits_apply,
    parallel_completions_have_exactly_one_winner,
    guessed_hand_off_codes_are_counted_and_cut_off_per_user,
    a_provider_outage_fails_the_flow_cleanly,
);

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
