//! References staged on a flow, promoted to the user's when it completes, and
//! removed with the flow or once stale.

use std::sync::Arc;

use domain::custody::BiometricReference;
use domain::flow::{Flow, FlowId, FlowState, FlowType, NewCredential};
use domain::{AuditEventType, Change, Conflict, Effect, NewAuditEvent, Repository};
use serde_json::json;
use time::Duration;
use uuid::Uuid;

use super::{completed, effects, open, stage, staged};
use crate::Tamper;
use crate::fixtures::{
    T0, all_events, assert_conflict, assert_not_found, at, credential_from, event, flow, insert,
    new_credential, reference, snapshot, stored_user, update,
};

pub async fn a_staged_reference_replaces_the_flows_earlier_one_and_is_not_the_users(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let registration = flow(alice.id, FlowType::Registration, T0);
    let other = flow(alice.id, FlowType::Registration, at(1));
    repo.apply(&insert(&registration)).await.unwrap();
    repo.apply(&insert(&other)).await.unwrap();
    assert_not_found(repo.staged_reference_of(registration.id).await);
    assert_not_found(repo.staged_reference_of(FlowId(Uuid::new_v4())).await);

    // Staged by the flow's next version, as `PUT …/biometric-reference` does.
    let v2 = Flow {
        version: 2,
        reference_stored: true,
        updated_at: at(2),
        ..registration.clone()
    };
    let staged_event = NewAuditEvent {
        details: json!({ "bytes": 5, "key_id": "key-2026" }),
        ..event(AuditEventType::BiometricReferenceStaged, &alice, at(2))
    };
    let first = [0x00, 0xff, 0x10, 0x80, 0x00];
    repo.apply(&Change {
        effects: vec![stage(&registration, &first, at(2))],
        events: vec![staged_event.clone()],
        ..update(&v2)
    })
    .await
    .unwrap();
    assert_eq!(staged(&*repo, &registration).await, Some(first.to_vec()));
    assert_eq!(repo.flow(registration.id).await.unwrap(), v2);
    assert_eq!(all_events(&*repo).await[0], staged_event);

    // Staged again: the later one replaces it; another flow's is its own.
    let second = vec![0x42; 300];
    repo.apply(&effects(vec![
        stage(&registration, &second, at(3)),
        stage(&other, b"other", at(3)),
    ]))
    .await
    .unwrap();
    assert_eq!(staged(&*repo, &registration).await, Some(second.clone()));
    assert_eq!(staged(&*repo, &other).await, Some(b"other".to_vec()));
    assert_not_found(repo.reference_of(alice.id).await);

    // A change that loses its flow write stages nothing.
    let stale = Flow {
        version: 2,
        updated_at: at(4),
        ..registration.clone()
    };
    let result = repo
        .apply(&Change {
            effects: vec![stage(&registration, b"lost", at(4))],
            events: vec![event(
                AuditEventType::BiometricReferenceStaged,
                &alice,
                at(4),
            )],
            ..update(&stale)
        })
        .await;
    assert_conflict(result, Conflict::FlowVersion);
    assert_eq!(staged(&*repo, &registration).await, Some(second));

    // Discarded: that flow's only, and discarding nothing is no error.
    repo.apply(&effects(vec![Effect::DiscardStagedReference(
        registration.id,
    )]))
    .await
    .unwrap();
    assert_not_found(repo.staged_reference_of(registration.id).await);
    assert_eq!(staged(&*repo, &other).await, Some(b"other".to_vec()));
    repo.apply(&effects(vec![Effect::DiscardStagedReference(
        registration.id,
    )]))
    .await
    .unwrap();
}

/// The tamper deletes flows behind the repository's back: no method does.
pub async fn deleting_a_user_or_a_flow_removes_what_it_staged(
    repo: Arc<dyn Repository>,
    tamper: Tamper,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let alices = [
        flow(alice.id, FlowType::Registration, T0),
        flow(alice.id, FlowType::Recovery, at(1)),
    ];
    let bobs_recovery = flow(bob.id, FlowType::Recovery, at(2));
    let bobs_registration = flow(bob.id, FlowType::Registration, at(3));
    for f in alices.iter().chain([&bobs_recovery, &bobs_registration]) {
        repo.apply(&Change {
            effects: vec![stage(f, f.id.0.as_bytes(), f.created_at)],
            ..insert(f)
        })
        .await
        .unwrap();
    }

    repo.delete_user(
        alice.id,
        &event(AuditEventType::UserDeleted, &alice, at(10)),
    )
    .await
    .unwrap();
    for f in &alices {
        assert_not_found(repo.staged_reference_of(f.id).await);
    }
    assert!(staged(&*repo, &bobs_recovery).await.is_some());

    tamper("DELETE FROM flows WHERE flow_type = 'recovery'".into()).await;
    assert_not_found(repo.staged_reference_of(bobs_recovery.id).await);
    assert_eq!(
        staged(&*repo, &bobs_registration).await,
        Some(bobs_registration.id.0.as_bytes().to_vec())
    );
    assert_eq!(
        repo.discard_stale_staged_references(at(20)).await.unwrap(),
        0,
        "nothing of the deleted flows is left behind"
    );
}

pub async fn stale_staged_references_are_discarded_and_open_flows_keep_theirs(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let now = at(3600);
    let lasting = |f: Flow| Flow {
        expires_at: now + Duration::minutes(10),
        ..f
    };
    let kept = [
        lasting(open(
            &alice,
            FlowType::Registration,
            FlowState::Pending,
            at(0),
        )),
        lasting(open(
            &alice,
            FlowType::Recovery,
            FlowState::AwaitingVerification,
            at(1),
        )),
        lasting(open(&alice, FlowType::Recovery, FlowState::Verified, at(2))),
        lasting(open(&bob, FlowType::Recovery, FlowState::InReview, at(3))),
    ];
    let mut stale: Vec<Flow> = [
        FlowState::Completed,
        FlowState::Failed,
        FlowState::Expired,
        FlowState::Cancelled,
    ]
    .into_iter()
    .map(|state| lasting(open(&alice, FlowType::Registration, state, at(4))))
    .collect();
    // Open, but past their expiry at `now`: exactly at it, and before it.
    stale.push(Flow {
        expires_at: now,
        ..open(&bob, FlowType::Registration, FlowState::Pending, at(5))
    });
    stale.push(Flow {
        expires_at: now - Duration::microseconds(1),
        ..open(
            &alice,
            FlowType::Recovery,
            FlowState::AwaitingVerification,
            at(6),
        )
    });
    // Nothing staged: nothing to count.
    let bare = open(&alice, FlowType::Registration, FlowState::Failed, at(7));
    repo.apply(&insert(&bare)).await.unwrap();
    for f in kept.iter().chain(&stale) {
        repo.apply(&Change {
            effects: vec![stage(f, f.id.0.as_bytes(), f.created_at)],
            ..insert(f)
        })
        .await
        .unwrap();
    }

    assert_eq!(repo.discard_stale_staged_references(now).await.unwrap(), 6);
    for f in &stale {
        assert_eq!(staged(&*repo, f).await, None, "{:?}", f.state);
    }
    for f in &kept {
        assert_eq!(
            staged(&*repo, f).await,
            Some(f.id.0.as_bytes().to_vec()),
            "{:?}",
            f.state
        );
        assert_eq!(repo.flow(f.id).await.unwrap(), *f, "the flow is untouched");
    }
    assert_eq!(repo.discard_stale_staged_references(now).await.unwrap(), 0);
}

pub async fn enrolling_a_user_with_a_reference_is_a_conflict_and_writes_nothing(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let first = Flow {
        reference_stored: true,
        pending_credential: Some(new_credential()),
        ..flow(alice.id, FlowType::Registration, T0)
    };
    repo.apply(&Change {
        effects: vec![stage(&first, b"first", T0)],
        ..insert(&first)
    })
    .await
    .unwrap();

    // The first registration to complete enrols the user.
    let done = completed(&first, at(60));
    let enrolled = BiometricReference {
        created_by_flow: first.id,
        ..reference(alice.id, b"first", at(60))
    };
    repo.apply(&Change {
        effects: vec![
            Effect::InsertCredential(credential_from(
                &done,
                first.pending_credential.as_ref().unwrap(),
                at(60),
            )),
            Effect::EnrolReference(enrolled.clone()),
            Effect::DiscardStagedReference(first.id),
        ],
        events: vec![event(
            AuditEventType::BiometricReferenceStored,
            &alice,
            at(60),
        )],
        ..update(&done)
    })
    .await
    .unwrap();
    assert_eq!(repo.reference_of(alice.id).await.unwrap(), enrolled);
    assert_not_found(repo.staged_reference_of(first.id).await);

    // A second registration, completing later, may not replace it.
    let second = Flow {
        reference_stored: true,
        pending_credential: Some(NewCredential {
            id: Uuid::new_v4(),
            webauthn_id: "BAUG".into(),
            ..new_credential()
        }),
        ..flow(alice.id, FlowType::Registration, at(1))
    };
    repo.apply(&Change {
        effects: vec![stage(&second, b"second", at(1))],
        ..insert(&second)
    })
    .await
    .unwrap();
    let before = snapshot(&*repo, alice.id).await;
    let done = completed(&second, at(120));
    let pending = second.pending_credential.clone().unwrap();
    let result = repo
        .apply(&Change {
            effects: vec![
                Effect::InsertCredential(credential_from(&done, &pending, at(120))),
                Effect::EnrolReference(BiometricReference {
                    created_by_flow: second.id,
                    ..reference(alice.id, b"second", at(120))
                }),
                Effect::DiscardStagedReference(second.id),
            ],
            events: vec![
                event(AuditEventType::CredentialRegistered, &alice, at(120)),
                event(AuditEventType::BiometricReferenceStored, &alice, at(120)),
            ],
            ..update(&done)
        })
        .await;
    assert_conflict(result, Conflict::ReferenceExists);

    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_eq!(
        repo.flow(second.id).await.unwrap(),
        second,
        "version unchanged"
    );
    assert_not_found(repo.credential(pending.id).await);
    assert_eq!(repo.reference_of(alice.id).await.unwrap(), enrolled);
    assert_eq!(staged(&*repo, &second).await, Some(b"second".to_vec()));

    // Another user enrols as usual.
    let bob = stored_user(&*repo, "bob").await;
    let bobs = reference(bob.id, b"bob's", at(130));
    repo.apply(&effects(vec![Effect::EnrolReference(bobs.clone())]))
        .await
        .unwrap();
    assert_eq!(repo.reference_of(bob.id).await.unwrap(), bobs);
}
