//! Biometric-reference custody (a reference staged on a flow, promoted to
//! the user's when the flow completes, released only to a flow verifying
//! against it) and the hand-off of a cross-platform flow to the device.

use domain::StoreError;
use domain::audit::{AuditEventType, Outcome};
use domain::credential::CredentialStatus;
use domain::flow::{FailureReason, FlowId, FlowState, FlowType, IdentityOutcome};
use domain::service::{EventOutcome, FlowPolicy, FlowView};
use domain::tally::TallyKind;
use testkit::core_client::webauthn_id;

use super::{ENROLLED_REFERENCE, Harness, assertion, harness, integration, new_credential, user};

impl Harness {
    async fn released(&self, id: FlowId) -> Vec<u8> {
        self.flows
            .release_reference(&integration(), id)
            .await
            .unwrap()
            .to_vec()
    }

    /// The flow that stored the user's current reference.
    async fn reference_owner(&self, flow: &FlowView) -> FlowId {
        let reference = self.repo.reference_of(flow.flow.user_id).await.unwrap();
        reference.created_by_flow
    }

    async fn claim(&self, code: &str, name: &str) -> domain::DomainResult<FlowView> {
        self.flows
            .claim_handoff(&integration(), code, &user(name))
            .await
    }
}

/// A registration's reference is staged on the flow (audited, sealed, never
/// the user's yet) and becomes the user's in the change that completes the
/// flow; it is then released to the user's step-up.
#[tokio::test]
async fn a_staged_reference_becomes_the_users_when_its_flow_completes() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "ada").await;
    let id = flow.flow.id;
    let staged = h.stage(id, b"ada-face").await.unwrap();
    assert!(staged.flow.reference_stored);
    let sealed = h.repo.staged_reference_of(id).await.unwrap();
    assert!(!sealed.windows(8).any(|w| w == b"ada-face"), "sealed");
    assert!(matches!(
        h.repo.reference_of(flow.flow.user_id).await,
        Err(StoreError::NotFound)
    ));
    let event = h.trail(id).await.pop().unwrap();
    assert_eq!(event.event_type, AuditEventType::BiometricReferenceStaged);
    assert_eq!(event.details["bytes"], 8);

    h.prove(id, new_credential("ada-phone")).await.unwrap();
    assert!(matches!(
        h.repo.reference_of(flow.flow.user_id).await,
        Err(StoreError::NotFound)
    ));
    h.decide(&flow, IdentityOutcome::Approved).await;
    assert_eq!(h.reference_owner(&flow).await, id);
    assert!(matches!(
        h.repo.staged_reference_of(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        h.trail_types(id)
            .await
            .contains(&AuditEventType::BiometricReferenceStored)
    );

    let step_up = h.created(FlowType::StepUp, "ada").await;
    assert_eq!(step_up.flow.reference_flow_id, Some(id));
    assert_eq!(h.released(step_up.flow.id).await, b"ada-face");
    assert_eq!(
        h.trail(step_up.flow.id).await.pop().unwrap().event_type,
        AuditEventType::BiometricReferenceReleased
    );
}

/// A recovery is matched against the reference the user had, never the one
/// it stages itself; on completion its reference and passkey replace the
/// user's earlier ones.
#[tokio::test]
async fn a_recovery_is_matched_against_the_earlier_reference_and_then_replaces_it() {
    let h = harness().await;
    let enrolment = h.enrolled("cleo", "cleo-old-phone").await;
    let recovery = h.created(FlowType::Recovery, "cleo").await;
    let id = recovery.flow.id;
    h.stage(id, b"cleo-new-face").await.unwrap();
    assert_eq!(h.released(id).await, ENROLLED_REFERENCE);
    h.prove(id, new_credential("cleo-new-phone")).await.unwrap();
    assert_eq!(h.reference_owner(&enrolment).await, enrolment.flow.id);

    assert_eq!(
        h.decide(&recovery, IdentityOutcome::Approved).await,
        EventOutcome::Applied
    );
    assert_eq!(h.repo.flow(id).await.unwrap().state, FlowState::Completed);
    assert_eq!(h.reference_owner(&enrolment).await, id);
    let old = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("cleo-old-phone"))
        .await
        .unwrap();
    assert_eq!(old.status, CredentialStatus::Revoked);
    let step_up = h.created(FlowType::StepUp, "cleo").await;
    assert_eq!(h.released(step_up.flow.id).await, b"cleo-new-face");
}

/// The reference is released only to a step-up or recovery awaiting its
/// identity proof (refusals audited); a reference is staged only by a flow
/// that creates a passkey, and within the size rule.
#[tokio::test]
async fn the_reference_goes_only_to_a_flow_that_verifies_against_it() {
    let h = harness().await;
    h.enrolled("dora", "dora-phone").await;
    let sign_in = h.created(FlowType::SignIn, "dora").await;
    let err = h
        .flows
        .release_reference(&integration(), sign_in.flow.id)
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "biometric_reference_not_releasable");
    let rejected = h.trail(sign_in.flow.id).await.pop().unwrap();
    assert_eq!(
        (rejected.outcome, rejected.reason.as_deref()),
        (Outcome::Rejected, Some("reference_not_releasable"))
    );

    let step_up = h.created(FlowType::StepUp, "dora").await;
    h.flows
        .cancel(&integration(), step_up.flow.id)
        .await
        .unwrap();
    let err = h
        .flows
        .release_reference(&integration(), step_up.flow.id)
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "biometric_reference_not_releasable");

    let err = h.stage(sign_in.flow.id, b"face").await.unwrap_err();
    assert_eq!(err.code.as_str(), "proof_not_expected");
    let registration = h.created(FlowType::Registration, "eli").await;
    let err = h.stage(registration.flow.id, b"").await.unwrap_err();
    assert_eq!(err.code.as_str(), "invalid_request_body");
    assert!(matches!(
        h.repo.staged_reference_of(registration.flow.id).await,
        Err(StoreError::NotFound)
    ));
}

/// A cross-platform step-up's hand-off code is claimed once, by the flow's
/// user: the device then gets the SDK token and may prove possession. Other
/// claims are refused alike (audited with why); an unknown code is counted,
/// not audited one by one.
#[tokio::test]
async fn a_hand_off_code_is_claimed_once_by_its_user() {
    let h = harness().await;
    h.enrolled("sami", "sami-phone").await;
    h.enrolled("tove", "tove-phone").await;
    let flow = h.cross_platform_step_up("sami").await;
    let id = flow.flow.id;
    let code = flow.handoff_code.clone().unwrap();
    assert!(flow.sdk_token.is_none(), "not to the browser side");
    let err = h.prove(id, assertion("sami-phone", 1)).await.unwrap_err();
    assert_eq!(err.code.as_str(), "proof_not_yet_accepted");

    let err = h.claim(&code, "tove").await.unwrap_err();
    assert_eq!(err.code.as_str(), "handoff_invalid");
    let claimed = h.claim(&code, "sami").await.unwrap();
    assert!(claimed.sdk_token.is_some(), "the device gets the SDK token");
    assert!(claimed.handoff_code.is_none());
    let err = h.claim(&code, "sami").await.unwrap_err();
    assert_eq!(err.code.as_str(), "handoff_invalid");

    let trail = h.trail(id).await;
    let claims = trail
        .iter()
        .filter(|e| e.event_type == AuditEventType::FlowHandoffClaimed)
        .count();
    assert_eq!(claims, 1);
    let reasons: Vec<_> = trail
        .iter()
        .filter(|e| e.event_type == AuditEventType::FlowRequestRejected)
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert_eq!(reasons, ["handoff_other_user", "handoff_already_claimed"]);

    let before = h.whole_trail().await.len();
    let err = h.claim("made-up-code", "sami").await.unwrap_err();
    assert_eq!(err.code.as_str(), "handoff_invalid");
    assert_eq!(
        h.whole_trail().await.len(),
        before,
        "not audited one by one"
    );
    let tallied = h.flows.flush_refusal_tally(true).await.unwrap();
    assert_eq!(tallied.len(), 1);
    assert_eq!(tallied[0].kind, TallyKind::ClaimRefused);
    assert_eq!(
        (tallied[0].reason.as_str(), tallied[0].count),
        ("handoff_unknown", 1)
    );

    let proved = h.prove(id, assertion("sami-phone", 1)).await.unwrap();
    assert!(proved.flow.possession_done);
}

/// A hand-off code not claimed within its own time is refused, while its
/// flow is still open.
#[tokio::test]
async fn an_unclaimed_hand_off_code_expires_before_its_flow() {
    let h = harness().await;
    h.enrolled("uma", "uma-phone").await;
    let flow = h.cross_platform_step_up("uma").await;
    h.clock.advance(FlowPolicy::default().handoff_ttl);
    let err = h
        .claim(&flow.handoff_code.unwrap(), "uma")
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "handoff_invalid");
    let rejected = h.trail(flow.flow.id).await.pop().unwrap();
    assert_eq!(rejected.reason.as_deref(), Some("handoff_expired"));
    let stored = h.repo.flow(flow.flow.id).await.unwrap();
    assert_eq!(stored.state, FlowState::AwaitingVerification);
    assert!(stored.handoff.unwrap().claimed_at.is_none());
}

/// Two registrations of a new user, both ready to complete: the first
/// verdict enrols the user; the second registration fails as the user is
/// enrolled already, its passkey and reference never the user's.
#[tokio::test]
async fn of_two_registrations_of_a_user_only_the_first_to_complete_enrols() {
    let h = harness().await;
    let first = h.created(FlowType::Registration, "gus").await;
    let second = h.created(FlowType::Registration, "gus").await;
    for (flow, device, face) in [
        (&first, "gus-phone", b"gus-face".as_slice()),
        (&second, "gus-tablet", b"gus-other-face".as_slice()),
    ] {
        h.stage(flow.flow.id, face).await.unwrap();
        h.prove(flow.flow.id, new_credential(device)).await.unwrap();
    }
    h.decide(&first, IdentityOutcome::Approved).await;
    h.decide(&second, IdentityOutcome::Approved).await;

    let done = h.repo.flow(first.flow.id).await.unwrap();
    assert_eq!(done.state, FlowState::Completed);
    let refused = h.repo.flow(second.flow.id).await.unwrap();
    assert_eq!(refused.state, FlowState::Failed);
    assert_eq!(
        refused.failure_reason,
        Some(FailureReason::UserAlreadyEnrolled)
    );
    assert_eq!(h.reference_owner(&first).await, first.flow.id);
    assert!(matches!(
        h.repo
            .credential_by_webauthn_id(&webauthn_id("gus-tablet"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        h.repo.staged_reference_of(second.flow.id).await,
        Err(StoreError::NotFound)
    ));
    let step_up = h.created(FlowType::StepUp, "gus").await;
    assert_eq!(h.released(step_up.flow.id).await, b"gus-face");
}

/// Claims of one hand-off code racing each other: exactly one wins.
#[tokio::test]
async fn racing_claims_of_a_hand_off_code_have_one_winner() {
    let h = harness().await;
    h.enrolled("vic", "vic-phone").await;
    let flow = h.cross_platform_step_up("vic").await;
    let code = flow.handoff_code.clone().unwrap();
    let results = futures::future::join_all((0..8).map(|_| h.claim(&code, "vic"))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(err.code.as_str(), "handoff_invalid");
    }
    let claims = h
        .trail_types(flow.flow.id)
        .await
        .into_iter()
        .filter(|t| *t == AuditEventType::FlowHandoffClaimed)
        .count();
    assert_eq!(claims, 1);
}
