//! The provider's word on a run: events de-duplicated and acted on only
//! after the run is re-read, the reconciler settling runs whose event never
//! came, and a provider outage while a run starts.

use domain::StoreError;
use domain::audit::{Actor, AuditEventType, Outcome};
use domain::flow::{FailureReason, FlowState, FlowType, IdentityOutcome, IdentityStatus};
use domain::idv::SyntheticControl;
use domain::service::{EventOutcome, FlowPolicy, ReconcileReport};
use time::Duration;

use super::{harness, new_credential, provider};

fn count(types: &[AuditEventType], of: AuditEventType) -> usize {
    types.iter().filter(|t| **t == of).count()
}

/// A run's approval completes its registration once; the same event again,
/// with or without the status it claims, is a duplicate and changes
/// nothing.
#[tokio::test]
async fn a_provider_event_is_acted_on_once() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "ada").await;
    let id = flow.flow.id;
    h.stage(id, b"ada-face").await.unwrap();
    h.prove(id, new_credential("ada-phone")).await.unwrap();
    assert_eq!(
        h.decide(&flow, IdentityOutcome::Approved).await,
        EventOutcome::Applied
    );
    let done = h.repo.flow(id).await.unwrap();
    assert_eq!(done.state, FlowState::Completed);

    let run = done.idv_run_id.clone().unwrap();
    for claimed in [Some("approved"), None] {
        let outcome = h
            .flows
            .ingest_run_event(&provider(), &run, claimed, None)
            .await
            .unwrap();
        assert_eq!(outcome, EventOutcome::Duplicate, "{claimed:?}");
    }
    assert_eq!(h.repo.flow(id).await.unwrap(), done);
    let types = h.trail_types(id).await;
    assert_eq!(count(&types, AuditEventType::ProviderEventReceived), 1);
    assert_eq!(count(&types, AuditEventType::FlowVerified), 1);
    assert_eq!(count(&types, AuditEventType::FlowCompleted), 1);
    let received = h
        .trail(id)
        .await
        .into_iter()
        .find(|e| e.event_type == AuditEventType::ProviderEventReceived)
        .unwrap();
    assert_eq!(received.actor, Actor::Provider);
    assert_eq!(received.details["status"], "approved");
}

/// An event claiming a status the run does not have yet moves nothing and
/// records nothing, so the same event, once the run has it, still applies.
#[tokio::test]
async fn an_event_is_acted_on_by_the_runs_status_read_back() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "bo").await;
    let run = flow.flow.idv_run_id.clone().unwrap();
    let early = h
        .flows
        .ingest_run_event(&provider(), &run, Some("approved"), None)
        .await
        .unwrap();
    assert_eq!(early, EventOutcome::NoChange);
    let stored = h.repo.flow(flow.flow.id).await.unwrap();
    assert_eq!(stored.identity, IdentityStatus::Pending);
    assert_eq!(stored.version, flow.flow.version);

    assert_eq!(
        h.decide(&flow, IdentityOutcome::Approved).await,
        EventOutcome::Applied
    );
    let stored = h.repo.flow(flow.flow.id).await.unwrap();
    assert_eq!(stored.identity, IdentityStatus::Verified);
    assert_eq!(stored.state, FlowState::Verified, "waiting on its passkey");
    assert_eq!(stored.version, flow.flow.version + 1);
}

/// A declined run fails its flow with the reason, discarding the reference
/// it staged; a run in review waits for its verdict.
#[tokio::test]
async fn a_declined_run_fails_the_flow_and_a_review_waits() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "cy").await;
    let id = flow.flow.id;
    h.stage(id, b"cy-face").await.unwrap();
    h.decide(&flow, IdentityOutcome::Review).await;
    assert_eq!(h.repo.flow(id).await.unwrap().state, FlowState::InReview);
    h.decide(&flow, IdentityOutcome::Declined).await;
    let failed = h.repo.flow(id).await.unwrap();
    assert_eq!(failed.state, FlowState::Failed);
    assert_eq!(failed.failure_reason, Some(FailureReason::IdvDeclined));
    assert!(matches!(
        h.repo.staged_reference_of(id).await,
        Err(StoreError::NotFound)
    ));
    let event = h.trail(id).await.pop().unwrap();
    assert_eq!(event.event_type, AuditEventType::FlowFailed);
    assert_eq!(
        (event.outcome, event.reason.as_deref()),
        (Outcome::Failure, Some("idv_declined"))
    );
}

/// An event about a run no flow holds is audited as rejected and not
/// recorded as seen.
#[tokio::test]
async fn an_event_for_an_unknown_run_is_audited_and_not_recorded() {
    let h = harness().await;
    let outcome = h
        .flows
        .ingest_run_event(&provider(), "no-such-run", Some("approved"), None)
        .await
        .unwrap();
    assert_eq!(outcome, EventOutcome::UnknownRun);
    let trail = h.whole_trail().await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].event_type, AuditEventType::ProviderEventReceived);
    assert_eq!(
        (trail[0].outcome, trail[0].reason.as_deref()),
        (Outcome::Rejected, Some("unknown_run"))
    );
    let key = domain::service::provider_event_key("synthetic", "no-such-run", "approved");
    assert!(!h.repo.provider_event_seen(&key).await.unwrap());
}

/// A run decided with no event is settled by the reconciler once the flow
/// has waited the policy's `reconcile_after`, once; the event arriving late
/// is then a duplicate.
#[tokio::test]
async fn the_reconciler_settles_a_run_whose_event_never_came() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "dee").await;
    let id = flow.flow.id;
    let run = flow.flow.idv_run_id.clone().unwrap();
    h.idv.set_outcome(&run, IdentityOutcome::Approved).unwrap();

    let early = h.flows.reconcile(50).await.unwrap();
    assert_eq!(
        early,
        ReconcileReport::default(),
        "the event may still come"
    );
    h.clock
        .advance(FlowPolicy::default().reconcile_after + Duration::seconds(1));
    let pass = h.flows.reconcile(50).await.unwrap();
    assert_eq!((pass.checked, pass.applied), (1, 1));
    let stored = h.repo.flow(id).await.unwrap();
    assert_eq!(stored.identity, IdentityStatus::Verified);
    let again = h.flows.reconcile(50).await.unwrap();
    assert_eq!(again.checked, 0, "checked flows wait for the next interval");

    let late = h
        .flows
        .ingest_run_event(&provider(), &run, Some("approved"), None)
        .await
        .unwrap();
    assert_eq!(late, EventOutcome::Duplicate);
    assert_eq!(h.repo.flow(id).await.unwrap().version, stored.version);
    let verified = h.trail(id).await;
    let system_verified: Vec<_> = verified
        .iter()
        .filter(|e| e.event_type == AuditEventType::FlowVerified)
        .collect();
    assert_eq!(system_verified.len(), 1);
    assert_eq!(system_verified[0].actor, Actor::System);
}

/// The provider down while a flow starts its run: the creation is refused
/// as unavailable and the flow, written first, is failed so it holds none of
/// the user's open flows; the reconciler stops at the provider's failure,
/// and once the provider is back re-reads each open run once an interval.
#[tokio::test]
async fn a_provider_outage_fails_the_new_flow_and_stops_the_reconciler() {
    let h = harness().await;
    let waiting = h.created(FlowType::Registration, "eve").await;
    h.idv.set_unavailable(true);
    let err = h.create(FlowType::Registration, "eve").await.unwrap_err();
    assert_eq!(err.code.as_str(), "idv_unavailable");
    let flows = h.repo.flows_of(waiting.flow.user_id, 10).await.unwrap();
    let failed: Vec<_> = flows.iter().filter(|f| f.id != waiting.flow.id).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, FlowState::Failed);
    assert_eq!(
        failed[0].failure_reason,
        Some(FailureReason::IdvUnavailable)
    );

    h.clock
        .advance(FlowPolicy::default().reconcile_after + Duration::seconds(1));
    let err = h.flows.reconcile(50).await.unwrap_err();
    assert_eq!(err.code.as_str(), "idv_unavailable");
    assert_eq!(
        h.repo.flow(waiting.flow.id).await.unwrap().identity,
        IdentityStatus::Pending
    );
    h.idv.set_unavailable(false);
    let pass = h.flows.reconcile(50).await.unwrap();
    assert_eq!(
        (pass.checked, pass.applied),
        (1, 0),
        "the run is still open"
    );
    let again = h.flows.reconcile(50).await.unwrap();
    assert_eq!(
        again.checked, 0,
        "a checked run waits for the next interval"
    );
    h.clock
        .advance(FlowPolicy::default().reconcile_after + Duration::seconds(1));
    assert_eq!(h.flows.reconcile(50).await.unwrap().checked, 1);
}
