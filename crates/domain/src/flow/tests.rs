use time::Duration;
use time::macros::datetime;

use super::*;

const T0: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);

fn flow(flow_type: FlowType) -> Flow {
    Flow::new(
        FlowId(Uuid::nil()),
        UserId(Uuid::nil()),
        flow_type,
        T0,
        T0 + Duration::minutes(15),
    )
}

fn started(flow_type: FlowType) -> Flow {
    flow(flow_type)
        .apply(
            &Fact::RunStarted {
                run_id: "run-1".into(),
                sdk_token_sealed: Some(vec![1]),
            },
            T0,
        )
        .unwrap()
}

const CRED: Fact = Fact::Possession {
    credential_id: Uuid::nil(),
};

#[test]
fn sign_in_completes_on_possession_alone() {
    let done = flow(FlowType::SignIn).apply(&CRED, T0).unwrap();
    assert_eq!(done.state, FlowState::Completed);
    assert_eq!(done.completed_at, Some(T0));
    assert_eq!(done.version, 2);
}

#[test]
fn step_up_completes_when_both_proofs_are_in_whatever_their_order() {
    let f = started(FlowType::StepUp);
    assert_eq!(f.state, FlowState::AwaitingVerification);

    let identity_first = f
        .apply(&Fact::Identity(IdentityOutcome::Approved), T0)
        .unwrap();
    assert_eq!(identity_first.state, FlowState::Verified);
    assert_eq!(
        identity_first.apply(&CRED, T0).unwrap().state,
        FlowState::Completed
    );

    let possession_first = f.apply(&CRED, T0).unwrap();
    assert_eq!(possession_first.state, FlowState::AwaitingVerification);
    let done = possession_first
        .apply(&Fact::Identity(IdentityOutcome::Approved), T0)
        .unwrap();
    assert_eq!(done.state, FlowState::Completed);
}

#[test]
fn registration_also_needs_its_biometric_reference() {
    let f = started(FlowType::Registration)
        .apply(&Fact::Identity(IdentityOutcome::Approved), T0)
        .unwrap()
        .apply(&CRED, T0)
        .unwrap();
    assert_eq!(f.state, FlowState::Verified, "no reference yet");
    assert_eq!(
        f.apply(&Fact::ReferenceStored, T0).unwrap().state,
        FlowState::Completed
    );
}

#[test]
fn recovery_does_not_wait_for_a_new_reference() {
    let f = started(FlowType::Recovery)
        .apply(&Fact::Identity(IdentityOutcome::Approved), T0)
        .unwrap()
        .apply(&CRED, T0)
        .unwrap();
    assert_eq!(f.state, FlowState::Completed);
}

#[test]
fn identity_failures_fail_the_flow_with_their_reason() {
    for (outcome, reason) in [
        (IdentityOutcome::Declined, FailureReason::IdvDeclined),
        (IdentityOutcome::Abandoned, FailureReason::IdvAbandoned),
        (IdentityOutcome::Error, FailureReason::IdvError),
    ] {
        let failed = started(FlowType::StepUp)
            .apply(&Fact::Identity(outcome), T0)
            .unwrap();
        assert_eq!(failed.state, FlowState::Failed);
        assert_eq!(failed.failure_reason, Some(reason));
        assert_eq!(failed.apply(&CRED, T0), Err(TransitionError::Terminal));
    }
}

#[test]
fn review_can_end_either_way() {
    let review = started(FlowType::StepUp)
        .apply(&Fact::Identity(IdentityOutcome::Review), T0)
        .unwrap();
    assert_eq!(review.state, FlowState::InReview);
    let approved = review
        .apply(&Fact::Identity(IdentityOutcome::Approved), T0)
        .unwrap();
    assert_eq!(approved.state, FlowState::Verified);
    let declined = review
        .apply(&Fact::Identity(IdentityOutcome::Declined), T0)
        .unwrap();
    assert_eq!(declined.state, FlowState::Failed);
}

#[test]
fn an_expired_flow_only_accepts_expiry() {
    let f = started(FlowType::StepUp);
    let late = f.expires_at;
    assert_eq!(f.apply(&CRED, late), Err(TransitionError::Expired));
    assert_eq!(
        f.apply(&Fact::Identity(IdentityOutcome::Approved), late),
        Err(TransitionError::Expired)
    );
    assert_eq!(
        f.apply(&Fact::Expired, late - Duration::seconds(1)),
        Err(TransitionError::NotYet)
    );
    let expired = f.apply(&Fact::Expired, late).unwrap();
    assert_eq!(expired.state, FlowState::Expired);
    assert_eq!(
        expired.apply(&Fact::Cancelled, late),
        Err(TransitionError::Terminal)
    );
}

#[test]
fn proofs_count_once() {
    let f = flow(FlowType::StepUp);
    assert_eq!(
        f.apply(&Fact::Identity(IdentityOutcome::Approved), T0),
        Err(TransitionError::NotYet)
    );
    let f = started(FlowType::StepUp).apply(&CRED, T0).unwrap();
    assert_eq!(f.apply(&CRED, T0), Err(TransitionError::AlreadyDone));
    assert_eq!(
        flow(FlowType::SignIn).apply(&Fact::Identity(IdentityOutcome::Approved), T0),
        Err(TransitionError::NotExpected)
    );
    assert_eq!(
        flow(FlowType::StepUp).apply(&Fact::ReferenceStored, T0),
        Err(TransitionError::NotExpected)
    );
}

#[test]
fn a_cross_platform_step_up_takes_possession_only_after_its_hand_off_is_claimed() {
    let mut f = started(FlowType::StepUp);
    f.cross_platform = true;
    f.handoff = Some(Handoff {
        code_sha256: [0; 32],
        expires_at: T0 + Duration::minutes(2),
        claimed_at: None,
    });
    assert_eq!(f.apply(&CRED, T0), Err(TransitionError::NotYet));
    let claimed = f.apply(&Fact::HandoffClaimed, T0).unwrap();
    assert_eq!(
        claimed.apply(&Fact::HandoffClaimed, T0),
        Err(TransitionError::AlreadyDone)
    );
    assert!(claimed.apply(&CRED, T0).unwrap().possession_done);
}

#[test]
fn run_start_failure_fails_the_flow() {
    let failed = flow(FlowType::Registration)
        .apply(&Fact::RunNotStarted, T0)
        .unwrap();
    assert_eq!(failed.state, FlowState::Failed);
    assert_eq!(failed.failure_reason, Some(FailureReason::IdvUnavailable));
}

#[test]
fn a_run_found_late_is_recorded_only_on_a_flow_failed_for_want_of_one() {
    let open = flow(FlowType::StepUp);
    assert_eq!(
        open.with_run_found_late("run-1", T0),
        Err(TransitionError::NotExpected)
    );
    let failed = open.apply(&Fact::RunNotStarted, T0).unwrap();
    let found = failed.with_run_found_late("run-1", T0).unwrap();
    assert_eq!(found.state, FlowState::Failed);
    assert_eq!(found.idv_run_id.as_deref(), Some("run-1"));
    assert_eq!(found.version, failed.version + 1);
    assert_eq!(
        found.with_run_found_late("run-2", T0),
        Err(TransitionError::AlreadyDone)
    );
    let cancelled = flow(FlowType::StepUp).apply(&Fact::Cancelled, T0).unwrap();
    assert_eq!(
        cancelled.with_run_found_late("run-1", T0),
        Err(TransitionError::NotExpected)
    );
}

#[test]
fn names_round_trip() {
    for t in FlowType::ALL {
        assert_eq!(t.as_str().parse::<FlowType>(), Ok(*t));
    }
    for s in FlowState::ALL {
        assert_eq!(s.as_str().parse::<FlowState>(), Ok(*s));
    }
}

#[test]
fn the_write_that_ends_a_flow_clears_its_sdk_token_and_ceremony() {
    let with_ceremony = |f: Flow| Flow {
        ceremony: Some(Ceremony {
            state_sealed: vec![2],
            expires_at: T0 + Duration::minutes(5),
        }),
        ..f
    };
    let open = with_ceremony(started(FlowType::StepUp));
    let still_open = open.apply(&CRED, T0).unwrap();
    assert_eq!(
        still_open.sdk_token_sealed,
        Some(vec![1]),
        "the SDK may still need it"
    );
    for (fact, now) in [
        (Fact::Identity(IdentityOutcome::Approved), T0),
        (Fact::Identity(IdentityOutcome::Declined), T0),
        (Fact::Cancelled, T0),
        (Fact::Refused(FailureReason::CredentialNotActive), T0),
        (Fact::Expired, T0 + Duration::minutes(16)),
    ] {
        let ended = with_ceremony(still_open.clone()).apply(&fact, now).unwrap();
        assert!(ended.state.is_terminal(), "{fact:?}");
        assert_eq!(
            (ended.sdk_token_sealed, ended.ceremony),
            (None, None),
            "{fact:?}"
        );
    }
}
