//! Creating a flow: who may start one, the user's limits, and what creation
//! writes to the store and the audit trail.

use domain::audit::{Actor, AuditEventType, Outcome};
use domain::flow::{FlowState, FlowType, IdentityStatus};
use domain::service::{CreateFlow, FlowPolicy, transaction_context_sha256};
use domain::{ErrorKind, StoreError};
use futures::future::join_all;
use serde_json::json;
use time::Duration;

use super::{harness, harness_with, integration, request, user};

/// A registration of someone unknown creates the user with the flow, starts
/// the flow's IDV run, and audits the user's creation, the flow's and the
/// run's start, by the one asking; a second registration of the same user
/// (not enrolled yet) reuses them.
#[tokio::test]
async fn a_registration_of_someone_new_creates_them_and_audits_each_step() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "ada").await;
    assert_eq!(flow.flow.state, FlowState::AwaitingVerification);
    assert_eq!(flow.flow.identity, IdentityStatus::Pending);
    assert_eq!(
        flow.flow.version, 2,
        "written pending, then its run recorded"
    );
    assert!(flow.sdk_token.is_some());
    let stored = h.repo.user_by_external_id(&user("ada")).await.unwrap();
    assert_eq!(stored.id, flow.flow.user_id);
    assert_eq!(h.idv.runs_for(&stored.pseudonym), 1);
    assert_eq!(h.repo.flow(flow.flow.id).await.unwrap(), flow.flow);

    let trail = h.whole_trail().await;
    let types: Vec<_> = trail.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            AuditEventType::UserCreated,
            AuditEventType::FlowCreated,
            AuditEventType::FlowIdvStarted,
        ]
    );
    assert_eq!(trail[0].subject.user_id, Some(stored.id));
    let created = &trail[1];
    assert_eq!(created.subject.flow_id, Some(flow.flow.id.0));
    assert_eq!(created.actor, Actor::Integration(None));
    assert_eq!(created.correlation_id.as_deref(), Some("test-correlation"));
    assert_eq!(created.details["type"], "registration");
    assert_eq!(created.details["cross_platform"], false);

    let again = h.created(FlowType::Registration, "ada").await;
    assert_eq!(again.flow.user_id, stored.id);
    let users_created = h
        .whole_trail()
        .await
        .iter()
        .filter(|e| e.event_type == AuditEventType::UserCreated)
        .count();
    assert_eq!(users_created, 1);
}

/// Flows other than a registration need a user who exists: refused, and
/// nothing is written (no user, no event).
#[tokio::test]
async fn flows_for_an_unknown_user_are_refused_and_write_nothing() {
    let h = harness().await;
    for flow_type in [FlowType::SignIn, FlowType::StepUp, FlowType::Recovery] {
        let err = h.create(flow_type, "nobody").await.unwrap_err();
        assert_eq!(err.code.as_str(), "user_not_found", "{flow_type}");
        assert_eq!(err.kind, ErrorKind::NotFound);
    }
    assert!(matches!(
        h.repo.user_by_external_id(&user("nobody")).await,
        Err(StoreError::NotFound)
    ));
    assert!(h.whole_trail().await.is_empty());
}

/// An enrolled user registering again is refused (they enrol a new device
/// with a recovery): audited against the user, and no flow is written.
#[tokio::test]
async fn an_enrolled_user_cannot_register_again() {
    let h = harness().await;
    let enrolment = h.enrolled("bob", "bob-phone").await;
    let err = h.create(FlowType::Registration, "bob").await.unwrap_err();
    assert_eq!(err.code.as_str(), "user_already_enrolled");
    assert_eq!(err.kind, ErrorKind::Conflict);

    let flows = h.repo.flows_of(enrolment.flow.user_id, 10).await.unwrap();
    assert_eq!(flows.len(), 1, "only the enrolment");
    let rejected: Vec<_> = h
        .whole_trail()
        .await
        .into_iter()
        .filter(|e| e.event_type == AuditEventType::FlowRequestRejected)
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].outcome, Outcome::Rejected);
    assert_eq!(rejected[0].reason.as_deref(), Some("user_already_enrolled"));
    assert_eq!(rejected[0].subject.user_id, Some(enrolment.flow.user_id));
    assert_eq!(rejected[0].subject.flow_id, None);
}

/// A user past their open flows, then past their IDV runs of the day, is
/// refused with the store's typed limit as the domain's error; nothing is
/// written and no run is started. Expired flows stop counting as open; their
/// runs count for the day.
#[tokio::test]
async fn a_user_past_their_limits_is_refused_before_a_run_starts() {
    let h = harness_with(FlowPolicy {
        max_open_flows_per_user: 2,
        max_idv_runs_per_user_per_day: 3,
        ..FlowPolicy::default()
    })
    .await;
    let first = h.created(FlowType::Registration, "vera").await;
    h.created(FlowType::Registration, "vera").await;
    let err = h.create(FlowType::Registration, "vera").await.unwrap_err();
    assert_eq!(err.code.as_str(), "too_many_open_flows");
    assert_eq!(err.kind, ErrorKind::TooManyRequests);
    let user_id = first.flow.user_id;
    let pseudonym = h.repo.user_by_id(user_id).await.unwrap().pseudonym;
    assert_eq!(h.repo.flows_of(user_id, 10).await.unwrap().len(), 2);
    assert_eq!(h.idv.runs_for(&pseudonym), 2);

    h.clock.advance(Duration::minutes(20));
    h.created(FlowType::Registration, "vera").await;
    let err = h.create(FlowType::Registration, "vera").await.unwrap_err();
    assert_eq!(err.code.as_str(), "idv_run_limit_reached");
    assert_eq!(err.kind, ErrorKind::TooManyRequests);
    assert_eq!(h.repo.flows_of(user_id, 10).await.unwrap().len(), 3);
    assert_eq!(h.idv.runs_for(&pseudonym), 3);

    h.clock.advance(Duration::hours(25));
    h.created(FlowType::Registration, "vera").await;
}

/// Creations racing at the open-flow limit: the store's check in the
/// flow's insertion lets exactly the limit through; the others are refused
/// with the limit's error.
#[tokio::test]
async fn concurrent_creations_at_the_limit_write_exactly_the_limit() {
    let h = harness_with(FlowPolicy {
        max_open_flows_per_user: 3,
        ..FlowPolicy::default()
    })
    .await;
    let enrolment = h.enrolled("cai", "cai-phone").await;
    let ctx = integration();
    let results =
        join_all((0..8).map(|_| h.flows.create_flow(&ctx, request(FlowType::SignIn, "cai")))).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 3, "{results:?}");
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(err.code.as_str(), "too_many_open_flows", "{err}");
    }
    let open = h
        .repo
        .flows_of(enrolment.flow.user_id, 20)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| !f.state.is_terminal())
        .count();
    assert_eq!(open, 3);
}

/// A step-up's transaction context is sealed with the flow and shown back
/// with its SHA-256; the audit trail keeps only a keyed digest. Other flow
/// types take none.
#[tokio::test]
async fn a_step_up_keeps_its_transaction_context_sealed_and_audits_a_keyed_digest() {
    let h = harness().await;
    h.enrolled("dan", "dan-phone").await;
    let context = json!({ "amount": "250.00", "payee": "Example Bank" });
    let flow = h
        .flows
        .create_flow(
            &integration(),
            CreateFlow {
                transaction_context: Some(context.clone()),
                ..request(FlowType::StepUp, "dan")
            },
        )
        .await
        .unwrap();
    assert_eq!(flow.transaction_context.as_ref(), Some(&context));
    assert_eq!(
        flow.transaction_context_sha256,
        Some(transaction_context_sha256(&context))
    );
    let stored = h.repo.flow(flow.flow.id).await.unwrap();
    let sealed = stored.transaction_context_sealed.as_deref().unwrap();
    assert!(
        !sealed.windows(7).any(|w| w == b"Example"),
        "sealed, not stored in the clear"
    );
    let digest = stored.transaction_context_digest.unwrap();
    let created = h
        .trail(flow.flow.id)
        .await
        .into_iter()
        .find(|e| e.event_type == AuditEventType::FlowCreated)
        .unwrap();
    assert_eq!(
        created.details["transaction_context_hmac"],
        json!(digest.hmac)
    );
    assert_eq!(created.details["transaction_context_key_id"], "test");
    assert!(!created.details.to_string().contains("Example Bank"));

    let err = h
        .flows
        .create_flow(
            &integration(),
            CreateFlow {
                transaction_context: Some(context),
                ..request(FlowType::SignIn, "dan")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "transaction_context_not_allowed");
}
