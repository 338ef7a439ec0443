//! Credentials stored, read and moved through their statuses, and the one
//! biometric reference each user may have.

use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::flow::{Flow, FlowState, FlowType};
use domain::{AuditEventType, Change, Conflict, Effect, Repository, StoreError};
use time::macros::datetime;
use uuid::Uuid;

use super::effects;
use crate::fixtures::{
    T0, all_events, assert_conflict, assert_not_found, at, credential, event, flow, insert,
    reference, snapshot, stored_user, update,
};

pub async fn credentials_round_trip_by_id_webauthn_id_and_user_oldest_first(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let bare = Credential {
        public_key: None,
        aaguid: None,
        sign_count: 0,
        transports: vec![],
        backup_eligible: false,
        platform: None,
        device_label: None,
        status: CredentialStatus::Suspended,
        status_reason: Some("reported lost".into()),
        ..credential(alice.id, "AQID", datetime!(2026-04-01 08:00:00.000001 UTC))
    };
    let full = Credential {
        sign_count: u32::MAX,
        backup_state: true,
        updated_at: datetime!(2026-04-02 09:00:00.999999 UTC),
        last_used_at: Some(datetime!(2026-04-02 09:00:00.999999 UTC)),
        ..credential(alice.id, "BAUG", datetime!(2026-04-01 08:00:00.000002 UTC))
    };
    let revoked = Credential {
        status: CredentialStatus::Revoked,
        ..credential(alice.id, "BwgJ", datetime!(2026-04-01 08:00:01.500000 UTC))
    };
    let bobs = credential(bob.id, "CgsM", T0);
    let registered = event(AuditEventType::CredentialRegistered, &alice, T0);
    // Written newest first, so the order read back is the store's doing.
    repo.apply(&Change {
        effects: vec![
            Effect::InsertCredential(revoked.clone()),
            Effect::InsertCredential(full.clone()),
            Effect::InsertCredential(bare.clone()),
            Effect::InsertCredential(bobs.clone()),
        ],
        events: vec![registered.clone()],
        ..Change::default()
    })
    .await
    .unwrap();

    for c in [&bare, &full, &revoked, &bobs] {
        assert_eq!(&repo.credential(c.id).await.unwrap(), c);
        assert_eq!(
            &repo
                .credential_by_webauthn_id(c.webauthn_id.as_str())
                .await
                .unwrap(),
            c
        );
    }
    assert_eq!(
        repo.credentials_of(alice.id).await.unwrap(),
        vec![bare.clone(), full.clone(), revoked]
    );
    assert_eq!(repo.credentials_of(bob.id).await.unwrap(), vec![bobs]);
    assert_eq!(
        repo.live_credentials_of(alice.id).await.unwrap(),
        vec![bare, full],
        "revoked credentials are not live"
    );
    assert_eq!(all_events(&*repo).await[0], registered);
}

pub async fn unknown_credentials_are_not_found(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    repo.apply(&effects(vec![Effect::InsertCredential(credential(
        alice.id, "AQID", T0,
    ))]))
    .await
    .unwrap();
    let bob = stored_user(&*repo, "bob").await;

    assert_not_found(repo.credential(Uuid::new_v4()).await);
    assert_not_found(repo.credential_by_webauthn_id("BAUG").await);
    assert_eq!(repo.credentials_of(bob.id).await.unwrap(), vec![]);
}

pub async fn a_duplicate_webauthn_id_is_a_conflict_and_rolls_back_the_change(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let taken = credential(alice.id, "AQID", T0);
    repo.apply(&effects(vec![Effect::InsertCredential(taken.clone())]))
        .await
        .unwrap();
    let v1 = flow(bob.id, FlowType::Registration, T0);
    repo.apply(&insert(&v1)).await.unwrap();
    let before = snapshot(&*repo, bob.id).await;

    // Bob's registration completes with a credential whose WebAuthn id is taken.
    let v2 = Flow {
        version: 2,
        state: FlowState::Completed,
        possession_done: true,
        reference_stored: true,
        updated_at: at(60),
        completed_at: Some(at(60)),
        ..v1.clone()
    };
    let clash = credential(bob.id, "AQID", at(60));
    let result = repo
        .apply(&Change {
            effects: vec![
                Effect::StoreReference(reference(bob.id, b"bob's reference", at(60))),
                Effect::SetApplicant {
                    user_id: bob.id,
                    sealed: vec![7],
                },
                Effect::InsertCredential(clash.clone()),
            ],
            events: vec![event(AuditEventType::FlowCompleted, &bob, at(60))],
            ..update(&v2)
        })
        .await;
    match result {
        Err(StoreError::Conflict(Conflict::WebAuthnIdTaken)) => {}
        other => panic!("expected a Conflict on the WebAuthn id, got {other:?}"),
    }

    assert_eq!(snapshot(&*repo, bob.id).await, before);
    assert_eq!(repo.flow(v1.id).await.unwrap(), v1);
    assert_not_found(repo.credential(clash.id).await);
    assert_eq!(repo.credential_by_webauthn_id("AQID").await.unwrap(), taken);
}

pub async fn only_an_active_credential_counts_as_active(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    assert!(
        !repo.has_active_credential(alice.id).await.unwrap(),
        "none yet"
    );
    let c = credential(alice.id, "AQID", T0);
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();
    assert!(repo.has_active_credential(alice.id).await.unwrap());
    for (from, to) in [
        (CredentialStatus::Active, CredentialStatus::Suspended),
        (CredentialStatus::Suspended, CredentialStatus::Revoked),
    ] {
        repo.apply(&effects(vec![Effect::SetCredentialStatus {
            id: c.id,
            from,
            to,
            reason: None,
            at: T0,
        }]))
        .await
        .unwrap();
        assert!(
            !repo.has_active_credential(alice.id).await.unwrap(),
            "{to:?}"
        );
    }
    let bob = stored_user(&*repo, "bob").await;
    repo.apply(&effects(vec![Effect::InsertCredential(credential(
        bob.id, "BAUG", T0,
    ))]))
    .await
    .unwrap();
    assert!(
        !repo.has_active_credential(alice.id).await.unwrap(),
        "another user's does not count"
    );
}

pub async fn a_status_change_records_the_status_reason_and_time(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0);
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();

    let suspended_at = datetime!(2026-04-01 11:00:00.000009 UTC);
    let suspended = event(AuditEventType::CredentialSuspended, &alice, suspended_at);
    repo.apply(&Change {
        effects: vec![Effect::SetCredentialStatus {
            id: c.id,
            from: CredentialStatus::Active,
            to: CredentialStatus::Suspended,
            reason: Some("device reported lost".into()),
            at: suspended_at,
        }],
        events: vec![suspended.clone()],
        ..Change::default()
    })
    .await
    .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            status: CredentialStatus::Suspended,
            status_reason: Some("device reported lost".into()),
            updated_at: suspended_at,
            ..c.clone()
        }
    );
    assert_eq!(all_events(&*repo).await[0], suspended);

    // Back to active without a reason clears the old one.
    let activated_at = datetime!(2026-04-01 12:00:00.999990 UTC);
    repo.apply(&effects(vec![Effect::SetCredentialStatus {
        id: c.id,
        from: CredentialStatus::Suspended,
        to: CredentialStatus::Active,
        reason: None,
        at: activated_at,
    }]))
    .await
    .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            updated_at: activated_at,
            ..c
        }
    );
}

pub async fn a_status_change_from_the_wrong_status_is_a_conflict_and_writes_nothing(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // active
    let v1 = flow(alice.id, FlowType::StepUp, T0);
    repo.apply(&Change {
        effects: vec![Effect::InsertCredential(c.clone())],
        ..insert(&v1)
    })
    .await
    .unwrap();
    let before = snapshot(&*repo, alice.id).await;

    let v2 = Flow {
        version: 2,
        state: FlowState::Cancelled,
        updated_at: at(5),
        ..v1.clone()
    };
    let result = repo
        .apply(&Change {
            effects: vec![
                Effect::StoreReference(reference(alice.id, b"reference", at(5))),
                Effect::SetCredentialStatus {
                    id: c.id,
                    from: CredentialStatus::Suspended,
                    to: CredentialStatus::Revoked,
                    reason: Some("operator".into()),
                    at: at(5),
                },
            ],
            events: vec![event(AuditEventType::CredentialRevoked, &alice, at(5))],
            ..update(&v2)
        })
        .await;
    assert_conflict(result, Conflict::CredentialState);

    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_eq!(repo.credential(c.id).await.unwrap(), c);
    assert_eq!(repo.flow(v1.id).await.unwrap(), v1);
}

pub async fn a_biometric_reference_is_stored_read_and_replaced(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    assert_not_found(repo.reference_of(alice.id).await);

    let first = reference(
        alice.id,
        &[0x00, 0xff, 0x10, 0x80, 0x00],
        datetime!(2026-04-01 08:30:00.000001 UTC),
    );
    let stored = event(AuditEventType::BiometricReferenceStored, &alice, at(1));
    repo.apply(&Change {
        effects: vec![Effect::StoreReference(first.clone())],
        events: vec![stored.clone()],
        ..Change::default()
    })
    .await
    .unwrap();
    assert_eq!(repo.reference_of(alice.id).await.unwrap(), first);
    assert_eq!(all_events(&*repo).await[0], stored);

    // A later registration or recovery replaces it: one reference per user.
    let second = reference(
        alice.id,
        &[0x42; 300],
        datetime!(2026-04-02 08:30:00.999999 UTC),
    );
    repo.apply(&effects(vec![Effect::StoreReference(second.clone())]))
        .await
        .unwrap();
    assert_eq!(repo.reference_of(alice.id).await.unwrap(), second);

    assert_not_found(repo.reference_of(bob.id).await);
}
