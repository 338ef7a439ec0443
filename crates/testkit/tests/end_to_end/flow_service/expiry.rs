//! How a flow ends without completing: its expiry, settled lazily by the
//! first call that touches it once the clock passes its time, and its
//! cancellation.

use domain::audit::{Actor, AuditEventType};
use domain::flow::{FlowState, FlowType, IdentityOutcome};
use domain::service::{EventOutcome, FlowPolicy};
use domain::{StoreError, credential::CredentialStatus};
use testkit::core_client::webauthn_id;
use time::Duration;

use super::{assertion, harness, integration, new_credential};

/// A sign-in answered after its time: the proof is refused as expired, the
/// flow is written `expired` (by the system) on the way, the passkey is not
/// used, and every later read reports it expired. One second earlier the
/// same flow was still open.
#[tokio::test]
async fn a_late_possession_proof_is_refused_and_the_flow_reported_expired() {
    let h = harness().await;
    h.enrolled("ivan", "ivan-phone").await;
    let flow = h.created(FlowType::SignIn, "ivan").await;
    let id = flow.flow.id;
    let ttl = FlowPolicy::default().flow_ttl;

    h.clock.advance(ttl - Duration::seconds(1));
    let open = h.flows.get_flow(id).await.unwrap();
    assert_eq!(open.flow.state, FlowState::Verified);
    assert_eq!(
        open.flow.version, flow.flow.version,
        "a read writes nothing"
    );

    h.clock.advance(Duration::seconds(1));
    assert_eq!(
        h.repo.flow(id).await.unwrap().state,
        FlowState::Verified,
        "untouched: the row still holds its former state"
    );
    let err = h.prove(id, assertion("ivan-phone", 1)).await.unwrap_err();
    assert_eq!(err.code.as_str(), "flow_expired");

    let stored = h.repo.flow(id).await.unwrap();
    assert_eq!(stored.state, FlowState::Expired);
    assert_eq!(stored.version, flow.flow.version + 1);
    let passkey = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("ivan-phone"))
        .await
        .unwrap();
    assert_eq!(passkey.sign_count, 0);
    assert_eq!(passkey.last_used_at, None);
    assert_eq!(passkey.status, CredentialStatus::Active);

    let trail = h.trail(id).await;
    let expired = trail.last().unwrap();
    assert_eq!(expired.event_type, AuditEventType::FlowExpired);
    assert_eq!(expired.actor, Actor::System);
    assert!(
        !trail
            .iter()
            .any(|e| e.event_type == AuditEventType::CredentialUsed)
    );

    assert_eq!(
        h.flows.get_flow(id).await.unwrap().flow.state,
        FlowState::Expired
    );
    let again = h.prove(id, assertion("ivan-phone", 2)).await.unwrap_err();
    assert_eq!(again.code.as_str(), "flow_expired");
    assert_eq!(h.repo.flow(id).await.unwrap().version, stored.version);
}

/// The provider's verdict on the run of an expired registration is
/// acknowledged and moves nothing: no credential, no reference, and the
/// reference the flow staged is discarded by the expiry.
#[tokio::test]
async fn a_verdict_after_the_expiry_changes_nothing() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "jo").await;
    let id = flow.flow.id;
    h.stage(id, b"jo-face").await.unwrap();
    h.prove(id, new_credential("jo-phone")).await.unwrap();
    h.clock
        .advance(FlowPolicy::default().flow_ttl + Duration::seconds(1));

    assert_eq!(
        h.decide(&flow, IdentityOutcome::Approved).await,
        EventOutcome::NoChange
    );
    let stored = h.repo.flow(id).await.unwrap();
    assert_eq!(stored.state, FlowState::Expired);
    assert!(matches!(
        h.repo.staged_reference_of(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        h.repo.reference_of(stored.user_id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        h.repo
            .credential_by_webauthn_id(&webauthn_id("jo-phone"))
            .await,
        Err(StoreError::NotFound)
    ));
    let types = h.trail_types(id).await;
    assert!(types.contains(&AuditEventType::FlowExpired), "{types:?}");
    assert!(!types.contains(&AuditEventType::FlowVerified), "{types:?}");
    assert!(!types.contains(&AuditEventType::FlowCompleted), "{types:?}");
}

/// A cancelled flow has ended: a second cancellation and a possession proof
/// are refused, and the flow stays as the cancellation left it.
#[tokio::test]
async fn a_cancelled_flow_takes_nothing_more() {
    let h = harness().await;
    h.enrolled("jan", "jan-phone").await;
    let flow = h.created(FlowType::StepUp, "jan").await;
    let id = flow.flow.id;
    let cancelled = h.flows.cancel(&integration(), id).await.unwrap();
    assert_eq!(cancelled.flow.state, FlowState::Cancelled);

    let err = h.flows.cancel(&integration(), id).await.unwrap_err();
    assert_eq!(err.code.as_str(), "flow_ended");
    let err = h.prove(id, assertion("jan-phone", 1)).await.unwrap_err();
    assert_eq!(err.code.as_str(), "flow_ended");
    let stored = h.repo.flow(id).await.unwrap();
    assert_eq!(
        (stored.state, stored.version),
        (FlowState::Cancelled, cancelled.flow.version)
    );
    assert_eq!(
        h.trail_types(id)
            .await
            .iter()
            .filter(|t| **t == AuditEventType::FlowCancelled)
            .count(),
        1
    );
}
