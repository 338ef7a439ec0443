//! The Core API's trust model under attack, end to end on both stores: a
//! flow cannot supply the biometric reference it is matched against, an
//! enrolled user cannot be registered anew, completions re-check what they
//! rely on in their own transaction, and concurrent requests cannot exceed
//! the per-user IDV-run limit or leave two devices behind a recovery.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::audit::Actor;
use domain::credential::CredentialStatus;
use domain::flow::FlowId;
use domain::operations::OperatorActions;
use domain::service::{FlowPolicy, RequestContext};
use domain::{AuditQuery, ExternalUserId, StoreError};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testkit::core_client::{expect_error, webauthn_id};
use testkit::{Store, TestApp, on_both_stores, spawn_core, spawn_core_with};
use uuid::Uuid;

on_both_stores!(
    a_recovery_cannot_supply_the_reference_it_is_matched_against,
    a_reference_staged_by_an_abandoned_flow_is_discarded,
    a_completed_recovery_makes_its_reference_the_users,
    an_enrolled_user_cannot_be_registered_again,
    concurrent_registrations_enrol_a_user_once,
    a_suspension_before_completion_stops_a_pending_step_up,
    a_suspension_racing_a_completion_never_lets_an_inactive_passkey_through,
    parallel_recoveries_leave_exactly_one_device,
    parallel_identity_flows_at_the_limit_start_no_extra_runs,
    transaction_contexts_are_kept_as_keyed_digests,
);

/// The reference every test enrols with (see `TestApp::enrolled`).
const ENROLLED: &[u8] = b"encrypted-biometric-token";

fn id(flow: &Value) -> &str {
    flow["id"].as_str().unwrap()
}

fn flow_id(flow: &Value) -> FlowId {
    FlowId(id(flow).parse().unwrap())
}

async fn user_id(app: &TestApp, user: &str) -> domain::UserId {
    app.repo
        .user_by_external_id(&ExternalUserId::parse(user).unwrap())
        .await
        .unwrap()
        .id
}

/// What the release route hands the SDK for `flow`.
async fn release(app: &TestApp, flow: &Value) -> (StatusCode, Value) {
    app.post(
        &format!(
            "/api/core/v1/flows/{}/biometric-reference/release",
            id(flow)
        ),
        json!({}),
    )
    .await
}

async fn released_token(app: &TestApp, flow: &Value) -> Vec<u8> {
    let (status, body) = release(app, flow).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    URL_SAFE_NO_PAD
        .decode(body["token"].as_str().unwrap())
        .unwrap()
}

/// The flow that stored the user's current reference.
async fn reference_owner(app: &TestApp, user: &str) -> Uuid {
    let user = user_id(app, user).await;
    app.repo.reference_of(user).await.unwrap().created_by_flow.0
}

async fn recovery(app: &TestApp, user: &str) -> Value {
    app.created(json!({ "type": "recovery", "external_user_id": user }))
        .await
}

/// A recovery with its new passkey and a reference of its own, waiting only
/// on its identity proof.
async fn prepared_recovery(app: &TestApp, user: &str, device: &str, reference: &[u8]) -> Value {
    let flow = recovery(app, user).await;
    let (status, body) = app.store_reference(&flow, reference).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.register_credential(&flow, device).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "awaiting_verification");
    flow
}

async fn live_credentials(app: &TestApp, user: &str) -> Vec<String> {
    let user = user_id(app, user).await;
    app.repo
        .live_credentials_of(user)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.webauthn_id.as_str().to_owned())
        .collect()
}

async fn a_recovery_cannot_supply_the_reference_it_is_matched_against(store: Store) {
    let app = spawn_core(store).await;
    let enrolment = app.enrolled("alice", "alice-phone").await;
    // The attacker starts a recovery for the victim and submits their own face.
    let attack = recovery(&app, "alice").await;
    let (status, staged) = app.store_reference(&attack, b"attacker-face").await;
    assert_eq!(status, StatusCode::OK, "{staged}");
    assert_eq!(staged["biometric_reference_stored"], true);
    // The SDK is handed the victim's reference, not the staged one: the
    // attacker's live capture is matched against the victim.
    assert_eq!(released_token(&app, &attack).await, ENROLLED);
    assert_eq!(
        reference_owner(&app, "alice").await.to_string(),
        id(&enrolment)
    );
    let (_, user) = app.get_json("/api/core/v1/users/alice").await;
    assert_eq!(user["has_biometric_reference"], true);

    // The provider declines the attacker: nothing of theirs stays behind.
    let (status, _) = app.outcome(&attack, "declined").await;
    assert_eq!(status, StatusCode::OK);
    let failed = app.flow(id(&attack)).await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(
        reference_owner(&app, "alice").await.to_string(),
        id(&enrolment)
    );
    assert!(matches!(
        app.repo.staged_reference_of(flow_id(&attack)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        live_credentials(&app, "alice").await,
        [webauthn_id("alice-phone")]
    );
    let step_up = app
        .created(json!({ "type": "step_up", "external_user_id": "alice" }))
        .await;
    assert_eq!(released_token(&app, &step_up).await, ENROLLED);
    let types = app.audit_types(id(&attack)).await;
    assert!(types.contains(&"biometric_reference.staged".to_owned()));
    assert!(!types.contains(&"biometric_reference.stored".to_owned()));
}

async fn a_reference_staged_by_an_abandoned_flow_is_discarded(store: Store) {
    let app = spawn_core(store).await;
    let enrolment = app.enrolled("bea", "bea-phone").await;
    // Cancelled by the caller.
    let cancelled = recovery(&app, "bea").await;
    app.store_reference(&cancelled, b"other-face").await;
    let (status, body) = app
        .post(
            &format!("/api/core/v1/flows/{}/cancel", id(&cancelled)),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert!(matches!(
        app.repo.staged_reference_of(flow_id(&cancelled)).await,
        Err(StoreError::NotFound)
    ));
    // Left to expire, and never touched again: the sweep removes it.
    let forgotten = recovery(&app, "bea").await;
    app.store_reference(&forgotten, b"other-face").await;
    let flows = app.flows.clone().unwrap();
    assert_eq!(flows.discard_stale_staged_references().await.unwrap(), 0);
    app.clock.advance(time::Duration::minutes(16));
    assert_eq!(flows.discard_stale_staged_references().await.unwrap(), 1);
    assert!(matches!(
        app.repo.staged_reference_of(flow_id(&forgotten)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        reference_owner(&app, "bea").await.to_string(),
        id(&enrolment)
    );
}

async fn a_completed_recovery_makes_its_reference_the_users(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("cleo", "cleo-old-phone").await;
    let flow = prepared_recovery(&app, "cleo", "cleo-new-phone", b"cleo-new-face").await;
    // Its own staged reference is never released to it.
    assert_eq!(released_token(&app, &flow).await, ENROLLED);
    app.outcome(&flow, "approved").await;
    let done = app.flow(id(&flow)).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(reference_owner(&app, "cleo").await.to_string(), id(&flow));
    assert_eq!(
        live_credentials(&app, "cleo").await,
        [webauthn_id("cleo-new-phone")]
    );
    let step_up = app
        .created(json!({ "type": "step_up", "external_user_id": "cleo" }))
        .await;
    assert_eq!(released_token(&app, &step_up).await, b"cleo-new-face");
    assert!(matches!(
        app.repo.staged_reference_of(flow_id(&flow)).await,
        Err(StoreError::NotFound)
    ));
}

async fn an_enrolled_user_cannot_be_registered_again(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("dana", "dana-phone").await;
    let user = user_id(&app, "dana").await;
    let flows_before = app.repo.flows_of(user, 100).await.unwrap();
    let (status, body) = app.create_flow("registration", "dana").await;
    expect_error(status, &body, StatusCode::CONFLICT, "user_already_enrolled");
    // Still refused with every passkey revoked: the reference is the user's.
    let credential = app
        .repo
        .credential_by_webauthn_id(&webauthn_id("dana-phone"))
        .await
        .unwrap();
    operator(&app)
        .set_credential_status(
            &fraud_team(),
            credential.id,
            CredentialStatus::Revoked,
            "lost",
        )
        .await
        .unwrap();
    let (status, body) = app.create_flow("registration", "dana").await;
    expect_error(status, &body, StatusCode::CONFLICT, "user_already_enrolled");

    assert_eq!(app.repo.flows_of(user, 100).await.unwrap(), flows_before);
    let rejected: Vec<_> = app
        .audit_trail()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("user_already_enrolled"))
        .collect();
    assert_eq!(rejected.len(), 2);
    assert!(rejected.iter().all(
        |e| e.subject.user_id == Some(user) && e.event_type.as_str() == "flow.request_rejected"
    ));
}

async fn concurrent_registrations_enrol_a_user_once(store: Store) {
    let app = Arc::new(spawn_core(store).await);
    for round in 0..5 {
        let user = format!("eve-{round}");
        // Both begin before either completes: the user has nothing enrolled yet.
        let first = app
            .created(json!({ "type": "registration", "external_user_id": user }))
            .await;
        let second = app
            .created(json!({ "type": "registration", "external_user_id": user }))
            .await;
        for (flow, seed) in [(&first, "first"), (&second, "second")] {
            app.store_reference(flow, seed.as_bytes()).await;
            let (status, body) = app
                .register_credential(flow, &format!("{user}-{seed}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (a, b) = tokio::join!(
            app.outcome(&first, "approved"),
            app.outcome(&second, "approved")
        );
        assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
        let states = [app.flow(id(&first)).await, app.flow(id(&second)).await];
        let completed: Vec<&Value> = states
            .iter()
            .filter(|f| f["state"] == "completed")
            .collect();
        assert_eq!(completed.len(), 1, "{states:?}");
        let other = states.iter().find(|f| f["state"] != "completed").unwrap();
        assert_eq!(
            (other["state"].as_str(), other["failure_reason"].as_str()),
            (Some("failed"), Some("user_already_enrolled"))
        );
        assert_eq!(
            reference_owner(&app, &user).await.to_string(),
            id(completed[0])
        );
        assert_eq!(live_credentials(&app, &user).await.len(), 1);
    }
}

/// A fraud team suspends the passkey `device` through the operators' actions.
async fn suspend(app: &TestApp, device: &str) {
    let credential = app
        .repo
        .credential_by_webauthn_id(&webauthn_id(device))
        .await
        .unwrap();
    operator(app)
        .set_credential_status(
            &fraud_team(),
            credential.id,
            CredentialStatus::Suspended,
            "fraud",
        )
        .await
        .unwrap();
}

fn operator(app: &TestApp) -> OperatorActions {
    OperatorActions::new(app.repo.clone(), app.clock.clone())
}

fn fraud_team() -> RequestContext {
    RequestContext {
        actor: Actor::Operator("fraud-analyst".into()),
        correlation_id: None,
    }
}

/// A step-up whose assertion is in, waiting on the provider.
async fn step_up_with_possession(app: &TestApp, user: &str, device: &str) -> Value {
    let flow = app
        .created(json!({ "type": "step_up", "external_user_id": user }))
        .await;
    let (status, body) = app.assert_with(&flow, device, 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "awaiting_verification", "{body}");
    flow
}

async fn a_suspension_before_completion_stops_a_pending_step_up(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("finn", "finn-phone").await;
    let flow = step_up_with_possession(&app, "finn", "finn-phone").await;
    suspend(&app, "finn-phone").await;
    let (status, _) = app.outcome(&flow, "approved").await;
    assert_eq!(status, StatusCode::OK);
    let ended = app.flow(id(&flow)).await;
    assert_eq!(
        (ended["state"].as_str(), ended["failure_reason"].as_str()),
        (Some("failed"), Some("credential_not_active")),
        "{ended}"
    );
    assert!(ended["result"].is_null(), "no approval to act on");
    let types = app.audit_types(id(&flow)).await;
    assert!(types.contains(&"flow.failed".to_owned()));
    assert!(!types.contains(&"flow.completed".to_owned()));
}

async fn a_suspension_racing_a_completion_never_lets_an_inactive_passkey_through(store: Store) {
    let app = Arc::new(spawn_core(store).await);
    let mut outcomes = (0, 0);
    for round in 0..12 {
        let user = format!("gus-{round}");
        let device = format!("gus-{round}-phone");
        app.enrolled(&user, &device).await;
        let flow = step_up_with_possession(&app, &user, &device).await;
        let credential = app
            .repo
            .credential_by_webauthn_id(&webauthn_id(&device))
            .await
            .unwrap();
        let suspension = {
            let app = app.clone();
            tokio::spawn(async move { suspend(&app, &device).await })
        };
        let (status, _) = app.outcome(&flow, "approved").await;
        assert_eq!(status, StatusCode::OK);
        suspension.await.unwrap();
        let ended = app.flow(id(&flow)).await;
        let events = app
            .repo
            .audit_events(&AuditQuery {
                user_id: Some(credential.user_id),
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .items;
        let seq_of = |t: &str| {
            events
                .iter()
                .find(|e| {
                    e.event.event_type.as_str() == t
                        && (e.event.subject.flow_id == Some(flow_id(&flow).0)
                            || t == "credential.suspended")
                })
                .map(|e| e.seq)
        };
        match ended["state"].as_str() {
            // Completed only while the passkey was still active: the
            // suspension was committed after the completion.
            Some("completed") => {
                outcomes.0 += 1;
                assert!(
                    seq_of("flow.completed").unwrap() < seq_of("credential.suspended").unwrap()
                );
            }
            Some("failed") => {
                outcomes.1 += 1;
                assert_eq!(ended["failure_reason"], "credential_not_active");
                assert!(seq_of("credential.suspended").unwrap() < seq_of("flow.failed").unwrap());
            }
            other => panic!("the flow must have ended, not {other:?}: {ended}"),
        }
    }
    assert_eq!(outcomes.0 + outcomes.1, 12);
}

async fn parallel_recoveries_leave_exactly_one_device(store: Store) {
    let app = Arc::new(spawn_core(store).await);
    for round in 0..4 {
        let user = format!("hana-{round}");
        app.enrolled(&user, &format!("{user}-old")).await;
        let mut recoveries = Vec::new();
        for n in 0..4 {
            let device = format!("{user}-new-{n}");
            let face = format!("{user}-face-{n}");
            recoveries.push(prepared_recovery(&app, &user, &device, face.as_bytes()).await);
        }
        let approvals = recoveries.iter().map(|flow| {
            let app = app.clone();
            let flow = flow.clone();
            tokio::spawn(async move { app.outcome(&flow, "approved").await })
        });
        for answer in futures::future::join_all(approvals).await {
            let (status, body) = answer.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let mut completed = Vec::new();
        for (n, flow) in recoveries.iter().enumerate() {
            let now = app.flow(id(flow)).await;
            match now["state"].as_str() {
                Some("completed") => completed.push(n),
                Some("cancelled") => {}
                other => panic!("a losing recovery is cancelled, not {other:?}: {now}"),
            }
        }
        assert_eq!(completed.len(), 1, "round {round}");
        let winner = completed[0];
        assert_eq!(
            live_credentials(&app, &user).await,
            [webauthn_id(&format!("{user}-new-{winner}"))]
        );
        assert_eq!(
            reference_owner(&app, &user).await.to_string(),
            id(&recoveries[winner])
        );
    }
}

async fn parallel_identity_flows_at_the_limit_start_no_extra_runs(store: Store) {
    let app = Arc::new(
        spawn_core_with(
            store,
            FlowPolicy {
                max_idv_runs_per_user_per_day: 3,
                max_open_flows_per_user: 50,
                ..FlowPolicy::default()
            },
        )
        .await,
    );
    for round in 0..4 {
        let user = format!("ivan-{round}");
        app.enrolled(&user, &format!("{user}-phone")).await; // one run
        let attempts = (0..12).map(|_| {
            let app = app.clone();
            let user = user.clone();
            tokio::spawn(async move { app.create_flow("step_up", &user).await })
        });
        let mut created = 0;
        for result in futures::future::join_all(attempts).await {
            let (status, body) = result.unwrap();
            match status {
                StatusCode::CREATED => created += 1,
                _ => expect_error(
                    status,
                    &body,
                    StatusCode::TOO_MANY_REQUESTS,
                    "idv_run_limit_reached",
                ),
            }
        }
        assert_eq!(created, 2, "round {round}");
        let pseudonym = app
            .repo
            .user_by_external_id(&ExternalUserId::parse(&user).unwrap())
            .await
            .unwrap()
            .pseudonym;
        assert_eq!(
            app.synthetic.runs_for(&pseudonym),
            3,
            "no billed run beyond the limit"
        );
    }
}

async fn transaction_contexts_are_kept_as_keyed_digests(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("jade", "jade-phone").await;
    let context = json!({ "amount": "250.00", "currency": "EUR", "payee": "ACME Ltd" });
    let expected = Sha256::digest(serde_json::to_vec(&context).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let flow = app
        .created(json!({
            "type": "step_up",
            "external_user_id": "jade",
            "transaction_context": context,
        }))
        .await;
    // The integration still gets the SHA-256 to compare with what it showed.
    assert_eq!(flow["transaction_context_sha256"], expected.as_str());
    app.assert_with(&flow, "jade-phone", 1).await;
    app.outcome(&flow, "approved").await;
    let done = app.flow(id(&flow)).await;
    assert_eq!(
        done["result"]["transaction_context_sha256"],
        expected.as_str()
    );

    // Stored and audited keyed: no reader of either can confirm a guess.
    let stored = app.repo.flow(flow_id(&flow)).await.unwrap();
    let digest = stored.transaction_context_digest.unwrap();
    assert_eq!(digest.key_id, "test");
    assert_eq!(digest.hmac.len(), 64);
    assert_ne!(digest.hmac, expected);
    let trail = serde_json::to_string(
        &app.audit_trail()
            .await
            .iter()
            .map(|e| &e.details)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!trail.contains(&expected), "no plain digest in the trail");
    assert!(trail.contains(&digest.hmac));
    assert!(trail.contains("transaction_context_key_id"));
}
