//! The background clean-ups: references staged by flows that ended without
//! completing, and the provider forgetting deleted users.

use domain::StoreError;
use domain::flow::{FlowState, FlowType};
use domain::service::{FlowPolicy, ProviderCleanupReport, provider_cleanup_backoff};
use time::Duration;

use super::{harness, harness_with, integration, user};

/// A reference staged by a cancelled flow goes with the cancellation; one
/// staged by a flow left to expire, never touched again, is discarded by the
/// sweep once the flow's time is up, not before. The user's own reference
/// stays.
#[tokio::test]
async fn references_staged_by_flows_that_ended_are_discarded() {
    let h = harness().await;
    let enrolment = h.enrolled("bea", "bea-phone").await;
    let cancelled = h.created(FlowType::Recovery, "bea").await;
    h.stage(cancelled.flow.id, b"other-face").await.unwrap();
    h.flows
        .cancel(&integration(), cancelled.flow.id)
        .await
        .unwrap();
    assert!(matches!(
        h.repo.staged_reference_of(cancelled.flow.id).await,
        Err(StoreError::NotFound)
    ));

    let forgotten = h.created(FlowType::Recovery, "bea").await;
    let id = forgotten.flow.id;
    h.stage(id, b"other-face").await.unwrap();
    h.clock
        .advance(FlowPolicy::default().flow_ttl - Duration::seconds(1));
    assert_eq!(h.flows.discard_stale_staged_references().await.unwrap(), 0);
    assert!(h.repo.staged_reference_of(id).await.is_ok());
    h.clock.advance(Duration::seconds(1));
    assert_eq!(h.flows.discard_stale_staged_references().await.unwrap(), 1);
    assert!(matches!(
        h.repo.staged_reference_of(id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        h.repo.flow(id).await.unwrap().state,
        FlowState::AwaitingVerification,
        "the sweep does not write the flow"
    );
    assert_eq!(h.flows.discard_stale_staged_references().await.unwrap(), 0);
    let reference = h.repo.reference_of(enrolment.flow.user_id).await.unwrap();
    assert_eq!(reference.created_by_flow, enrolment.flow.id);
}

/// A deleted user is gone at once; the provider forgets them (their runs)
/// through the clean-up queue's next pass.
#[tokio::test]
async fn a_deleted_user_is_forgotten_by_the_provider_through_the_queue() {
    let h = harness().await;
    let enrolment = h.enrolled("cat", "cat-phone").await;
    let pseudonym = h
        .repo
        .user_by_id(enrolment.flow.user_id)
        .await
        .unwrap()
        .pseudonym;
    assert_eq!(h.idv.runs_for(&pseudonym), 1);
    h.flows
        .delete_user(&integration(), &user("cat"))
        .await
        .unwrap();
    assert!(matches!(
        h.repo.user_by_external_id(&user("cat")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(h.flows.provider_cleanup_counts().await.unwrap().pending, 1);
    assert_eq!(h.idv.runs_for(&pseudonym), 1, "not before the queue's pass");

    let report = h.flows.process_provider_cleanups(10).await.unwrap();
    assert_eq!(report.forgotten, 1);
    assert_eq!(h.idv.runs_for(&pseudonym), 0);
    let counts = h.flows.provider_cleanup_counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
}

/// A provider clean-up that fails is retried after its wait, not before,
/// and after the policy's last attempt is marked dead; the reason names the
/// kind of failure only.
#[tokio::test]
async fn a_failing_provider_cleanup_is_retried_after_its_wait_then_dies() {
    let h = harness_with(FlowPolicy {
        provider_cleanup_max_attempts: 2,
        ..FlowPolicy::default()
    })
    .await;
    let enrolment = h.enrolled("dee", "dee-phone").await;
    h.flows
        .delete_user(&integration(), &user("dee"))
        .await
        .unwrap();
    h.idv.set_unavailable(true);

    let first = h.flows.process_provider_cleanups(10).await.unwrap();
    assert_eq!(first.retrying.len(), 1);
    assert_eq!(first.retrying[0].user_id, enrolment.flow.user_id);
    assert_eq!(first.retrying[0].attempts, 1);
    assert_eq!(
        first.retrying[0].reason,
        "the identity-verification provider is unavailable"
    );
    assert_eq!(
        h.flows.process_provider_cleanups(10).await.unwrap(),
        ProviderCleanupReport::default(),
        "not due yet"
    );
    h.clock.advance(provider_cleanup_backoff(1));
    let last = h.flows.process_provider_cleanups(10).await.unwrap();
    assert!(last.retrying.is_empty());
    assert_eq!(last.dead.len(), 1);
    assert_eq!(last.dead[0].attempts, 2);
    let counts = h.flows.provider_cleanup_counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 1));
}
