//! Credentials (inserted, used and moved through their lifecycle by `apply`'s
//! effects) and the one biometric reference each user may have.

use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::flow::{Flow, FlowState, FlowType};
use domain::{AuditEventType, Change, Conflict, Effect, Repository, StoreError};
use time::macros::datetime;
use uuid::Uuid;

use crate::fixtures::{
    T0, all_events, assert_conflict, assert_not_found, at, credential, event, flow, insert,
    reference, snapshot, stored_user, update,
};

fn effects(effects: Vec<Effect>) -> Change {
    Change {
        effects,
        ..Change::default()
    }
}

fn use_of(c: &Credential, sign_count: u32, at: time::OffsetDateTime) -> Effect {
    Effect::UseCredential {
        id: c.id,
        sign_count,
        backup_state: !c.backup_state,
        at,
    }
}

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

pub async fn a_use_records_the_counter_backup_state_and_time(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0);
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();

    let used_at = datetime!(2026-04-01 10:11:12.131415 UTC);
    let used = event(AuditEventType::CredentialUsed, &alice, used_at);
    repo.apply(&Change {
        effects: vec![use_of(&c, 7, used_at)],
        events: vec![used.clone()],
        ..Change::default()
    })
    .await
    .unwrap();
    let after_first = Credential {
        sign_count: 7,
        backup_state: true,
        updated_at: used_at,
        last_used_at: Some(used_at),
        ..c.clone()
    };
    assert_eq!(repo.credential(c.id).await.unwrap(), after_first);
    assert_eq!(all_events(&*repo).await[0], used);

    // Up to the largest counter there is.
    let again = datetime!(2026-04-01 10:11:13.000001 UTC);
    repo.apply(&effects(vec![use_of(&after_first, u32::MAX, again)]))
        .await
        .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            sign_count: u32::MAX,
            backup_state: false,
            updated_at: again,
            last_used_at: Some(again),
            ..c
        }
    );
}

pub async fn a_counter_that_does_not_grow_is_a_conflict_and_writes_nothing(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();
    let before = snapshot(&*repo, alice.id).await;

    for reported in [5, 4, 0] {
        let result = repo
            .apply(&Change {
                effects: vec![
                    Effect::StoreReference(reference(alice.id, b"reference", at(1))),
                    use_of(&c, reported, at(1)),
                ],
                events: vec![event(AuditEventType::CredentialUsed, &alice, at(1))],
                ..Change::default()
            })
            .await;
        assert_conflict(result, Conflict::CredentialState);
    }
    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_eq!(repo.credential(c.id).await.unwrap(), c);
}

pub async fn a_use_kept_despite_its_counter_keeps_the_stored_counter(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        ..credential(alice.id, "BAUG", T0)
    };
    repo.apply(&effects(vec![
        Effect::InsertCredential(c.clone()),
        Effect::InsertCredential(suspended.clone()),
    ]))
    .await
    .unwrap();
    repo.apply(&effects(vec![Effect::UseCredentialKeepingCounter {
        id: c.id,
        backup_state: !c.backup_state,
        at: at(1),
    }]))
    .await
    .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            backup_state: !c.backup_state,
            updated_at: at(1),
            last_used_at: Some(at(1)),
            ..c.clone()
        }
    );
    // Still only an active credential.
    let before = snapshot(&*repo, alice.id).await;
    let result = repo
        .apply(&effects(vec![Effect::UseCredentialKeepingCounter {
            id: suspended.id,
            backup_state: true,
            at: at(2),
        }]))
        .await;
    assert_conflict(result, Conflict::CredentialState);
    assert_eq!(snapshot(&*repo, alice.id).await, before);
}

pub async fn an_authenticator_without_a_counter_may_stay_at_zero(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = Credential {
        sign_count: 0,
        ..credential(alice.id, "AQID", T0)
    };
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();

    repo.apply(&effects(vec![use_of(&c, 0, at(1))]))
        .await
        .unwrap();
    repo.apply(&effects(vec![use_of(&c, 0, at(2))]))
        .await
        .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            backup_state: true,
            updated_at: at(2),
            last_used_at: Some(at(2)),
            ..c
        }
    );
}

pub async fn a_suspended_or_revoked_credential_cannot_be_used(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        ..credential(alice.id, "AQID", T0)
    };
    let revoked = Credential {
        status: CredentialStatus::Revoked,
        ..credential(alice.id, "BAUG", at(1))
    };
    repo.apply(&effects(vec![
        Effect::InsertCredential(suspended.clone()),
        Effect::InsertCredential(revoked.clone()),
    ]))
    .await
    .unwrap();
    let before = snapshot(&*repo, alice.id).await;

    for c in [&suspended, &revoked] {
        let result = repo
            .apply(&Change {
                effects: vec![use_of(c, 6, at(2))],
                events: vec![event(AuditEventType::CredentialUsed, &alice, at(2))],
                ..Change::default()
            })
            .await;
        assert_conflict(result, Conflict::CredentialState);
    }
    assert_eq!(snapshot(&*repo, alice.id).await, before);

    // Once active again, it may be used.
    let activated_at = at(3);
    repo.apply(&effects(vec![Effect::SetCredentialStatus {
        id: suspended.id,
        from: CredentialStatus::Suspended,
        to: CredentialStatus::Active,
        reason: None,
        at: activated_at,
    }]))
    .await
    .unwrap();
    repo.apply(&effects(vec![use_of(&suspended, 6, at(4))]))
        .await
        .unwrap();
    assert_eq!(repo.credential(suspended.id).await.unwrap().sign_count, 6);
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

/// A flow's next version written with a passkey's use is undone with it
/// when the use is refused (the counter did not grow, the passkey is no
/// longer active).
pub async fn a_refused_use_undoes_the_flow_version_written_with_it(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        ..credential(alice.id, "BAUG", T0)
    };
    repo.apply(&effects(vec![
        Effect::InsertCredential(c.clone()),
        Effect::InsertCredential(suspended.clone()),
    ]))
    .await
    .unwrap();
    let v1 = flow(alice.id, FlowType::SignIn, T0);
    repo.apply(&insert(&v1)).await.unwrap();
    let v2 = Flow {
        version: 2,
        state: FlowState::Completed,
        possession_done: true,
        updated_at: at(1),
        completed_at: Some(at(1)),
        ..v1.clone()
    };
    let before = snapshot(&*repo, alice.id).await;

    let uses = [
        use_of(&c, 5, at(1)),
        use_of(&suspended, 6, at(1)),
        Effect::UseCredentialKeepingCounter {
            id: suspended.id,
            backup_state: true,
            at: at(1),
        },
    ];
    for refused in uses {
        let result = repo
            .apply(&Change {
                effects: vec![refused],
                events: vec![event(AuditEventType::FlowCompleted, &alice, at(1))],
                ..update(&v2)
            })
            .await;
        assert_conflict(result, Conflict::CredentialState);
        assert_eq!(snapshot(&*repo, alice.id).await, before);
    }

    // Over a stale version, the flow's conflict is the one answered.
    let stale = Flow {
        version: 3,
        ..v2.clone()
    };
    assert_conflict(
        repo.apply(&Change {
            effects: vec![use_of(&c, 6, at(1))],
            ..update(&stale)
        })
        .await,
        Conflict::FlowVersion,
    );
    assert_eq!(snapshot(&*repo, alice.id).await, before);
}

/// Two sign-ins that both report the passkey's next counter: one wins, and
/// the other's flow keeps its version.
pub async fn concurrent_uses_of_one_counter_have_exactly_one_winner(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();
    let mut attempts = Vec::new();
    for i in 0..8 {
        let v1 = flow(alice.id, FlowType::SignIn, at(i));
        repo.apply(&insert(&v1)).await.unwrap();
        let v2 = Flow {
            version: 2,
            state: FlowState::Completed,
            possession_done: true,
            credential_id: Some(c.id),
            updated_at: at(10),
            completed_at: Some(at(10)),
            ..v1.clone()
        };
        let change = Change {
            effects: vec![use_of(&c, 6, at(10))],
            events: vec![event(AuditEventType::FlowCompleted, &alice, at(10))],
            ..update(&v2)
        };
        let repo = repo.clone();
        attempts.push(tokio::spawn(
            async move { (v1, v2, repo.apply(&change).await) },
        ));
    }
    let mut winners = 0;
    for joined in futures::future::join_all(attempts).await {
        let (v1, v2, result) = joined.unwrap();
        let stored = repo.flow(v1.id).await.unwrap();
        match result {
            Ok(()) => {
                winners += 1;
                assert_eq!(stored, v2);
            }
            Err(StoreError::Conflict(Conflict::CredentialState)) => {
                assert_eq!(stored, v1, "a refused use leaves its flow as it was");
            }
            Err(other) => panic!("a losing use must be a credential_state conflict, got {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(repo.credential(c.id).await.unwrap().sign_count, 6);
    let completed = all_events(&*repo)
        .await
        .into_iter()
        .filter(|e| e.event_type == AuditEventType::FlowCompleted)
        .count();
    assert_eq!(completed, 1, "the winner's event only");
}
