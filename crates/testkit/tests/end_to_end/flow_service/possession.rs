//! The possession proof: a new passkey carried by a registration until it
//! completes, and an assertion by an enrolled passkey, held to the counter
//! rule and re-checked when the flow completes. Each accepted once; a
//! refused proof changes nothing.

use domain::StoreError;
use domain::audit::{Actor, AuditEventType, Outcome};
use domain::credential::CredentialStatus;
use domain::flow::{FailureReason, FlowState, FlowType, IdentityOutcome};
use domain::operations::OperatorActions;
use domain::possession::CounterPolicy;
use domain::service::{EventOutcome, FlowPolicy, RequestContext};
use testkit::core_client::webauthn_id;

use super::{assertion, harness, harness_with, new_credential, provider};

/// A registration's new passkey is kept on the flow, not yet the user's;
/// the same proof again is refused and changes nothing; the passkey is
/// inserted, active, when the flow completes.
#[tokio::test]
async fn a_new_passkey_is_accepted_once_and_becomes_the_users_on_completion() {
    let h = harness().await;
    let flow = h.created(FlowType::Registration, "ada").await;
    let id = flow.flow.id;
    let proved = h.prove(id, new_credential("ada-phone")).await.unwrap();
    assert!(proved.flow.possession_done);
    assert_eq!(proved.flow.state, FlowState::AwaitingVerification);
    let pending = proved.flow.pending_credential.clone().unwrap();
    assert_eq!(pending.webauthn_id, webauthn_id("ada-phone"));
    assert!(matches!(
        h.repo
            .credential_by_webauthn_id(&webauthn_id("ada-phone"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        h.trail_types(id)
            .await
            .contains(&AuditEventType::FlowPossessionVerified)
    );

    for replay in [new_credential("ada-phone"), new_credential("ada-tablet")] {
        let err = h.prove(id, replay).await.unwrap_err();
        assert_eq!(err.code.as_str(), "proof_not_expected");
    }
    let stored = h.repo.flow(id).await.unwrap();
    assert_eq!(stored.version, proved.flow.version);
    assert_eq!(stored.pending_credential, Some(pending.clone()));

    h.stage(id, b"ada-face").await.unwrap();
    assert_eq!(
        h.decide(&flow, IdentityOutcome::Approved).await,
        EventOutcome::Applied
    );
    assert_eq!(h.repo.flow(id).await.unwrap().state, FlowState::Completed);
    let passkey = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("ada-phone"))
        .await
        .unwrap();
    assert_eq!(passkey.id, pending.id);
    assert_eq!(passkey.status, CredentialStatus::Active);
    assert_eq!(passkey.created_by_flow, id);
}

/// A passkey registered already (here by another user) is refused for a
/// new registration: audited against the flow, which is left as it was.
#[tokio::test]
async fn a_passkey_registered_already_is_refused_and_audited() {
    let h = harness().await;
    h.enrolled("bob", "bob-phone").await;
    let flow = h.created(FlowType::Registration, "eve").await;
    let id = flow.flow.id;
    let err = h.prove(id, new_credential("bob-phone")).await.unwrap_err();
    assert_eq!(err.code.as_str(), "credential_already_registered");
    let stored = h.repo.flow(id).await.unwrap();
    assert_eq!(stored.version, flow.flow.version);
    assert!(!stored.possession_done);
    let rejected = h.trail(id).await.pop().unwrap();
    assert_eq!(rejected.event_type, AuditEventType::FlowRequestRejected);
    assert_eq!(
        rejected.reason.as_deref(),
        Some("credential_already_registered")
    );
}

/// A sign-in's assertion completes the flow and uses the passkey (its
/// counter and last use); the same assertion replayed is refused and the
/// passkey is left as the first one left it.
#[tokio::test]
async fn an_assertion_is_accepted_once() {
    let h = harness().await;
    h.enrolled("carl", "carl-phone").await;
    let flow = h.created(FlowType::SignIn, "carl").await;
    let id = flow.flow.id;
    let done = h.prove(id, assertion("carl-phone", 7)).await.unwrap();
    assert_eq!(done.flow.state, FlowState::Completed);
    let used = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("carl-phone"))
        .await
        .unwrap();
    assert_eq!(used.sign_count, 7);
    assert_eq!(used.last_used_at, Some(domain::Clock::now(&*h.clock)));
    assert_eq!(done.flow.credential_id, Some(used.id));
    let types = h.trail_types(id).await;
    assert!(types.ends_with(&[
        AuditEventType::FlowPossessionVerified,
        AuditEventType::CredentialUsed,
        AuditEventType::FlowCompleted,
    ]));

    h.clock.advance(time::Duration::seconds(5));
    let err = h.prove(id, assertion("carl-phone", 8)).await.unwrap_err();
    assert_eq!(err.code.as_str(), "flow_ended");
    let after = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("carl-phone"))
        .await
        .unwrap();
    assert_eq!(
        (after.sign_count, after.last_used_at),
        (7, used.last_used_at)
    );
    assert_eq!(h.repo.flow(id).await.unwrap().version, done.flow.version);
}

/// An assertion whose signature counter does not grow past the stored one
/// is refused (the authenticator may be cloned) and audited, each time;
/// the passkey and the flow are left as they were, and a growing counter is
/// then accepted.
#[tokio::test]
async fn a_counter_regression_is_refused_and_changes_nothing() {
    let h = harness().await;
    h.enrolled("nia", "nia-phone").await;
    let first = h.created(FlowType::SignIn, "nia").await;
    h.prove(first.flow.id, assertion("nia-phone", 5))
        .await
        .unwrap();
    let second = h.created(FlowType::SignIn, "nia").await;
    let id = second.flow.id;
    for reported in [5, 4, 0] {
        let err = h
            .prove(id, assertion("nia-phone", reported))
            .await
            .unwrap_err();
        assert_eq!(err.code.as_str(), "counter_regression", "{reported}");
    }
    let passkey = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("nia-phone"))
        .await
        .unwrap();
    assert_eq!(passkey.sign_count, 5);
    let stored = h.repo.flow(id).await.unwrap();
    assert_eq!(
        (stored.state, stored.version),
        (FlowState::Verified, second.flow.version)
    );
    let regressions: Vec<_> = h
        .trail(id)
        .await
        .into_iter()
        .filter(|e| e.event_type == AuditEventType::CredentialCounterRegression)
        .collect();
    assert_eq!(regressions.len(), 3);
    assert!(regressions.iter().all(|e| e.outcome == Outcome::Rejected));
    assert_eq!(regressions[1].details["stored"], 5);
    assert_eq!(regressions[1].details["reported"], 4);
    assert!(
        !h.trail_types(id)
            .await
            .contains(&AuditEventType::CredentialUsed)
    );

    let done = h.prove(id, assertion("nia-phone", 6)).await.unwrap();
    assert_eq!(done.flow.state, FlowState::Completed);
}

/// Under the `warn` counter policy a regression is let through and audited
/// with the change, the stored counter kept.
#[tokio::test]
async fn under_warn_a_counter_regression_is_accepted_and_the_counter_kept() {
    let h = harness_with(FlowPolicy {
        counter_policy: CounterPolicy::Warn,
        ..FlowPolicy::default()
    })
    .await;
    h.enrolled("ola", "ola-phone").await;
    let first = h.created(FlowType::SignIn, "ola").await;
    h.prove(first.flow.id, assertion("ola-phone", 5))
        .await
        .unwrap();
    let second = h.created(FlowType::SignIn, "ola").await;
    let done = h
        .prove(second.flow.id, assertion("ola-phone", 2))
        .await
        .unwrap();
    assert_eq!(done.flow.state, FlowState::Completed);
    let passkey = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("ola-phone"))
        .await
        .unwrap();
    assert_eq!(passkey.sign_count, 5);
    let trail = h.trail(second.flow.id).await;
    let regression = trail
        .iter()
        .find(|e| e.event_type == AuditEventType::CredentialCounterRegression)
        .unwrap();
    assert_eq!(regression.outcome, Outcome::Success);
    assert_eq!(regression.details["policy"], "warn");
}

/// Another user's passkey is answered as an unknown one (audited); a flow
/// is given the kind of proof it takes only.
#[tokio::test]
async fn another_users_passkey_and_the_wrong_kind_of_proof_are_refused() {
    let h = harness().await;
    h.enrolled("pia", "pia-phone").await;
    h.enrolled("quinn", "quinn-phone").await;
    let flow = h.created(FlowType::SignIn, "pia").await;
    let id = flow.flow.id;
    let err = h.prove(id, assertion("quinn-phone", 1)).await.unwrap_err();
    assert_eq!(err.code.as_str(), "credential_not_found");
    let rejected = h.trail(id).await.pop().unwrap();
    assert_eq!(
        rejected.reason.as_deref(),
        Some("credential_unknown_or_of_another_user")
    );
    let err = h.prove(id, new_credential("pia-tablet")).await.unwrap_err();
    assert_eq!(err.code.as_str(), "invalid_credential");
    let quinns = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("quinn-phone"))
        .await
        .unwrap();
    assert_eq!((quinns.sign_count, quinns.last_used_at), (0, None));
    assert_eq!(h.repo.flow(id).await.unwrap().version, flow.flow.version);
}

/// A passkey suspended by the operators after a step-up's assertion, before
/// the identity verdict, fails the flow in the completing change instead of
/// completing it, the provider's event still recorded once; its later
/// assertions are refused (audited), and so are new sign-ins of a user left
/// with no active passkey.
#[tokio::test]
async fn a_suspended_passkey_is_refused_and_stops_a_pending_completion() {
    let h = harness().await;
    h.enrolled("finn", "finn-phone").await;
    let step_up = h.created(FlowType::StepUp, "finn").await;
    let id = step_up.flow.id;
    let proved = h.prove(id, assertion("finn-phone", 1)).await.unwrap();
    assert_eq!(proved.flow.state, FlowState::AwaitingVerification);
    let sign_in = h.created(FlowType::SignIn, "finn").await;
    let passkey = h
        .repo
        .credential_by_webauthn_id(&webauthn_id("finn-phone"))
        .await
        .unwrap();
    OperatorActions::new(h.repo.clone(), h.clock.clone())
        .set_credential_status(
            &RequestContext {
                actor: Actor::Operator("fraud-analyst".into()),
                correlation_id: None,
            },
            passkey.id,
            CredentialStatus::Suspended,
            "fraud",
        )
        .await
        .unwrap();

    assert_eq!(
        h.decide(&step_up, IdentityOutcome::Approved).await,
        EventOutcome::Applied
    );
    let failed = h.repo.flow(id).await.unwrap();
    assert_eq!(failed.state, FlowState::Failed);
    assert_eq!(
        failed.failure_reason,
        Some(FailureReason::CredentialNotActive)
    );
    let types = h.trail_types(id).await;
    assert!(!types.contains(&AuditEventType::FlowCompleted), "{types:?}");
    assert!(types.contains(&AuditEventType::FlowFailed), "{types:?}");
    let run = failed.idv_run_id.as_deref().unwrap();
    let again = h
        .flows
        .ingest_run_event(&provider(), run, Some("approved"), None)
        .await
        .unwrap();
    assert_eq!(again, EventOutcome::Duplicate);

    let err = h
        .prove(sign_in.flow.id, assertion("finn-phone", 2))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "credential_not_active");
    let rejected = h.trail(sign_in.flow.id).await.pop().unwrap();
    assert_eq!(rejected.reason.as_deref(), Some("credential_suspended"));
    let err = h.create(FlowType::SignIn, "finn").await.unwrap_err();
    assert_eq!(err.code.as_str(), "no_active_credential");
}
