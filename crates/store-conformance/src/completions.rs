//! What a flow's completion relies on: references staged on a flow and
//! promoted to the user's when it completes, the passkey re-checked by a
//! completion, a recovery's set-based cancellations and revocations, and the
//! provider-side applicant remembered once per user.

use std::collections::HashSet;
use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::custody::BiometricReference;
use domain::flow::{Ceremony, Flow, FlowId, FlowState, FlowType, IdentityStatus, NewCredential};
use domain::{
    Actor, AuditEventType, Change, Conflict, Effect, NewAuditEvent, Repository, StoreError,
    Subject, User,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::Tamper;
use crate::fixtures::{
    T0, all_events, assert_conflict, assert_not_found, at, credential, credential_from, event,
    flow, found, insert, new_credential, reference, snapshot, stored_user, update,
};

fn effects(effects: Vec<Effect>) -> Change {
    Change {
        effects,
        ..Change::default()
    }
}

fn stage(flow: &Flow, sealed: &[u8], at: OffsetDateTime) -> Effect {
    Effect::StageReference {
        flow_id: flow.id,
        sealed: sealed.to_vec(),
        at,
    }
}

/// What `flow` staged, `None` when it staged nothing.
async fn staged(repo: &dyn Repository, flow: &Flow) -> Option<Vec<u8>> {
    found(repo.staged_reference_of(flow.id).await)
}

/// A flow open (`state`) until 15 minutes after `created_at`.
fn open(user: &User, flow_type: FlowType, state: FlowState, created_at: OffsetDateTime) -> Flow {
    Flow {
        state,
        ..flow(user.id, flow_type, created_at)
    }
}

/// `before`'s next version, completed at `at`.
fn completed(before: &Flow, at: OffsetDateTime) -> Flow {
    Flow {
        version: before.version + 1,
        state: FlowState::Completed,
        identity: IdentityStatus::Verified,
        possession_done: true,
        updated_at: at,
        completed_at: Some(at),
        ..before.clone()
    }
}

/// Every event of `event_type` in the trail, oldest first.
async fn events_of(repo: &dyn Repository, event_type: AuditEventType) -> Vec<NewAuditEvent> {
    let mut events: Vec<_> = all_events(repo)
        .await
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .collect();
    events.reverse();
    events
}

/// `written` are copies of `template`, one per id `about` picks out of each
/// (exactly `ids`, each once), with distinct event ids.
#[track_caller]
fn assert_copies(
    written: &[NewAuditEvent],
    template: &NewAuditEvent,
    ids: &[Uuid],
    about: impl Fn(&Subject) -> Option<Uuid>,
    with: impl Fn(&NewAuditEvent, Uuid) -> NewAuditEvent,
) {
    let got: HashSet<Uuid> = written.iter().filter_map(|e| about(&e.subject)).collect();
    let want: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(got, want, "one event about each");
    assert_eq!(
        written.len(),
        ids.len(),
        "one event about each: {written:?}"
    );
    let event_ids: HashSet<Uuid> = written.iter().map(|e| e.id).collect();
    assert_eq!(event_ids.len(), written.len(), "distinct event ids");
    assert!(
        !event_ids.contains(&template.id),
        "each copy has an id of its own"
    );
    for e in written {
        let id = about(&e.subject).unwrap();
        assert_eq!(e, &with(template, id).with_id(e.id), "the template's copy");
    }
}

trait WithId {
    fn with_id(self, id: Uuid) -> Self;
}

impl WithId for NewAuditEvent {
    fn with_id(self, id: Uuid) -> Self {
        NewAuditEvent { id, ..self }
    }
}

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

pub async fn requiring_an_active_credential_passes_only_for_an_active_one(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let active = credential(alice.id, "AQID", T0);
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        status_reason: Some("fraud".into()),
        ..credential(alice.id, "BAUG", T0)
    };
    let revoked = Credential {
        status: CredentialStatus::Revoked,
        ..credential(alice.id, "BwgJ", T0)
    };
    let v1 = Flow {
        possession_done: true,
        credential_id: Some(active.id),
        ..flow(alice.id, FlowType::StepUp, T0)
    };
    repo.apply(&Change {
        effects: vec![
            Effect::InsertCredential(active.clone()),
            Effect::InsertCredential(suspended.clone()),
            Effect::InsertCredential(revoked.clone()),
        ],
        ..insert(&v1)
    })
    .await
    .unwrap();

    // Refused for a passkey that is not active (or not there): the whole
    // change is rolled back.
    let before = snapshot(&*repo, alice.id).await;
    for id in [suspended.id, revoked.id, Uuid::new_v4()] {
        let result = repo
            .apply(&Change {
                effects: vec![
                    Effect::StoreReference(reference(alice.id, b"reference", at(5))),
                    Effect::InsertCredential(credential(alice.id, "CgsM", at(5))),
                    Effect::RequireActiveCredential(id),
                ],
                events: vec![event(AuditEventType::FlowCompleted, &alice, at(5))],
                ..update(&completed(&v1, at(5)))
            })
            .await;
        assert_conflict(result, Conflict::CredentialNotActive);
        assert_eq!(snapshot(&*repo, alice.id).await, before);
        assert_eq!(repo.flow(v1.id).await.unwrap(), v1);
    }

    // Passes for an active one, and writes nothing of its own.
    let done = completed(&v1, at(6));
    let finished = event(AuditEventType::FlowCompleted, &alice, at(6));
    repo.apply(&Change {
        effects: vec![Effect::RequireActiveCredential(active.id)],
        events: vec![finished.clone()],
        ..update(&done)
    })
    .await
    .unwrap();
    assert_eq!(repo.flow(v1.id).await.unwrap(), done);
    assert_eq!(repo.credential(active.id).await.unwrap(), active);
    assert_eq!(repo.credential(suspended.id).await.unwrap(), suspended);
    assert_eq!(all_events(&*repo).await[0], finished);
}

pub async fn revoking_other_credentials_revokes_the_users_live_ones_but_the_kept_one(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let active = credential(alice.id, "AQID", T0);
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        status_reason: Some("reported lost".into()),
        ..credential(alice.id, "BAUG", at(1))
    };
    let revoked = Credential {
        status: CredentialStatus::Revoked,
        status_reason: Some("operator".into()),
        ..credential(alice.id, "BwgJ", at(2))
    };
    let bobs = credential(bob.id, "CgsM", at(3));
    repo.apply(&effects(
        [&active, &suspended, &revoked, &bobs]
            .into_iter()
            .map(|c| Effect::InsertCredential(c.clone()))
            .collect(),
    ))
    .await
    .unwrap();

    // A recovery completes: its new passkey is kept.
    let v1 = Flow {
        state: FlowState::Verified,
        pending_credential: Some(new_credential()),
        ..flow(alice.id, FlowType::Recovery, at(4))
    };
    repo.apply(&insert(&v1)).await.unwrap();
    let done = completed(&v1, at(60));
    let kept = credential_from(&done, v1.pending_credential.as_ref().unwrap(), at(60));
    let template = NewAuditEvent {
        reason: Some("recovery".into()),
        correlation_id: Some("req-recovery".into()),
        details: json!({ "by": "recovery" }),
        ..NewAuditEvent::new(
            AuditEventType::CredentialRevoked,
            Actor::Provider,
            Subject {
                flow_id: Some(v1.id.0),
                ..Subject::of_user(&alice)
            },
            at(60),
        )
    };
    let finished = event(AuditEventType::FlowCompleted, &alice, at(60));
    repo.apply(&Change {
        effects: vec![
            Effect::InsertCredential(kept.clone()),
            Effect::RevokeOtherCredentials {
                user_id: alice.id,
                keep: kept.id,
                reason: "recovery".into(),
                at: at(60),
                event: template.clone(),
            },
        ],
        events: vec![finished.clone()],
        ..update(&done)
    })
    .await
    .unwrap();

    let revoked_now = |c: &Credential| Credential {
        status: CredentialStatus::Revoked,
        status_reason: Some("recovery".into()),
        updated_at: at(60),
        ..c.clone()
    };
    assert_eq!(
        repo.credentials_of(alice.id).await.unwrap(),
        vec![
            revoked_now(&active),
            revoked_now(&suspended),
            revoked.clone(),
            kept.clone()
        ],
        "an already revoked passkey keeps its reason and time"
    );
    assert_eq!(repo.credentials_of(bob.id).await.unwrap(), vec![bobs]);
    assert_copies(
        &events_of(&*repo, AuditEventType::CredentialRevoked).await,
        &template,
        &[active.id, suspended.id],
        |s| s.credential_id,
        |t, id| NewAuditEvent {
            subject: Subject {
                credential_id: Some(id),
                ..t.subject.clone()
            },
            ..t.clone()
        },
    );
    assert_eq!(all_events(&*repo).await[0], finished);

    // With nothing else to revoke: no write, no event.
    let events = all_events(&*repo).await.len();
    repo.apply(&effects(vec![Effect::RevokeOtherCredentials {
        user_id: alice.id,
        keep: kept.id,
        reason: "recovery".into(),
        at: at(70),
        event: template.clone(),
    }]))
    .await
    .unwrap();
    assert_eq!(all_events(&*repo).await.len(), events);
    assert_eq!(repo.credential(kept.id).await.unwrap(), kept);
}

pub async fn cancelling_other_flows_cancels_the_users_open_flows_but_the_kept_one(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let now = at(600);
    let recovery = Flow {
        pending_credential: Some(new_credential()),
        ..open(&alice, FlowType::Recovery, FlowState::Verified, at(10))
    };
    let with_ceremony = Flow {
        ceremony: Some(Ceremony {
            state_sealed: vec![0x00, 0x9c, 0xff],
            expires_at: at(300),
        }),
        ..open(&alice, FlowType::StepUp, FlowState::Pending, at(1))
    };
    let others = [
        with_ceremony,
        open(
            &alice,
            FlowType::Recovery,
            FlowState::AwaitingVerification,
            at(2),
        ),
        open(&alice, FlowType::SignIn, FlowState::Verified, at(3)),
        open(&alice, FlowType::StepUp, FlowState::InReview, at(4)),
    ];
    let untouched = [
        // Ended, or past its expiry at `now`.
        open(&alice, FlowType::StepUp, FlowState::Completed, at(5)),
        open(&alice, FlowType::StepUp, FlowState::Failed, at(5)),
        Flow {
            expires_at: now,
            ..open(&alice, FlowType::Recovery, FlowState::Pending, at(6))
        },
        // Another user's.
        open(&bob, FlowType::Recovery, FlowState::Pending, at(7)),
    ];
    for f in others.iter().chain(&untouched).chain([&recovery]) {
        repo.apply(&Change {
            effects: vec![stage(f, f.id.0.as_bytes(), f.created_at)],
            ..insert(f)
        })
        .await
        .unwrap();
    }
    // A version the user's flows moved to before the recovery completes.
    let moved = Flow {
        version: 2,
        updated_at: at(20),
        ..others[1].clone()
    };
    repo.apply(&update(&moved)).await.unwrap();
    let others = [
        others[0].clone(),
        moved,
        others[2].clone(),
        others[3].clone(),
    ];

    let template = NewAuditEvent {
        reason: Some("recovery".into()),
        correlation_id: Some("req-recovery".into()),
        details: json!({ "recovery_flow_id": recovery.id }),
        ..NewAuditEvent::new(
            AuditEventType::FlowCancelled,
            Actor::Provider,
            Subject {
                user_id: Some(alice.id),
                ..Subject::default()
            },
            now,
        )
    };
    let done = completed(&recovery, now);
    repo.apply(&Change {
        effects: vec![Effect::CancelOtherFlows {
            user_id: alice.id,
            keep: recovery.id,
            at: now,
            event: template.clone(),
        }],
        events: vec![event(AuditEventType::FlowCompleted, &alice, now)],
        ..update(&done)
    })
    .await
    .unwrap();

    assert_eq!(repo.flow(recovery.id).await.unwrap(), done);
    assert!(
        staged(&*repo, &recovery).await.is_some(),
        "the kept flow's staged reference is its own to promote"
    );
    for f in &others {
        assert_eq!(
            repo.flow(f.id).await.unwrap(),
            Flow {
                state: FlowState::Cancelled,
                version: f.version + 1,
                updated_at: now,
                ceremony: None,
                ..f.clone()
            }
        );
        assert_not_found(repo.staged_reference_of(f.id).await);
        // A change derived from the version the recovery cancelled loses.
        let late = Flow {
            version: f.version + 1,
            state: FlowState::Completed,
            updated_at: now + Duration::seconds(1),
            ..f.clone()
        };
        assert_conflict(repo.apply(&update(&late)).await, Conflict::FlowVersion);
    }
    for f in &untouched {
        assert_eq!(repo.flow(f.id).await.unwrap(), *f);
        assert_eq!(staged(&*repo, f).await, Some(f.id.0.as_bytes().to_vec()));
    }
    let ids: Vec<Uuid> = others.iter().map(|f| f.id.0).collect();
    assert_copies(
        &events_of(&*repo, AuditEventType::FlowCancelled).await,
        &template,
        &ids,
        |s| s.flow_id,
        |t, id| NewAuditEvent {
            subject: Subject {
                flow_id: Some(id),
                ..t.subject.clone()
            },
            ..t.clone()
        },
    );

    // The kept flow is spared even while it is open itself.
    let bobs = &untouched[3];
    let bobs_other = open(&bob, FlowType::StepUp, FlowState::Pending, at(8));
    repo.apply(&insert(&bobs_other)).await.unwrap();
    repo.apply(&effects(vec![Effect::CancelOtherFlows {
        user_id: bob.id,
        keep: bobs.id,
        at: now,
        event: NewAuditEvent {
            subject: Subject::of_user(&bob),
            ..template.clone()
        },
    }]))
    .await
    .unwrap();
    assert_eq!(repo.flow(bobs.id).await.unwrap(), *bobs);
    assert_eq!(
        staged(&*repo, bobs).await,
        Some(bobs.id.0.as_bytes().to_vec())
    );
    assert_eq!(
        repo.flow(bobs_other.id).await.unwrap().state,
        FlowState::Cancelled
    );
}

pub async fn an_applicant_is_set_once_and_replaced_only_as_read(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let first = vec![0x00, 0xff, 0x01, 0x80, 0x00];
    assert!(
        repo.set_applicant_if_absent(alice.id, &first)
            .await
            .unwrap()
    );
    let with_first = User {
        idv_applicant_sealed: Some(first.clone()),
        ..alice.clone()
    };
    assert_eq!(repo.user_by_id(alice.id).await.unwrap(), with_first);

    assert!(
        !repo
            .set_applicant_if_absent(alice.id, &[9; 64])
            .await
            .unwrap(),
        "the first one stays"
    );
    assert_eq!(repo.user_by_id(alice.id).await.unwrap(), with_first);
    assert_eq!(repo.user_by_id(bob.id).await.unwrap(), bob);
    assert!(
        !repo
            .set_applicant_if_absent(domain::UserId(Uuid::new_v4()), &first)
            .await
            .unwrap(),
        "no such user"
    );

    // A replacement takes only over the applicant it was decided on.
    let second = vec![0x02; 48];
    assert!(
        !repo
            .replace_applicant(alice.id, &[9; 64], &second)
            .await
            .unwrap(),
        "not the stored applicant"
    );
    assert_eq!(repo.user_by_id(alice.id).await.unwrap(), with_first);
    assert!(
        repo.replace_applicant(alice.id, &first, &second)
            .await
            .unwrap()
    );
    assert_eq!(
        repo.user_by_id(alice.id)
            .await
            .unwrap()
            .idv_applicant_sealed,
        Some(second.clone())
    );
    assert!(
        !repo
            .replace_applicant(alice.id, &first, &[7; 48])
            .await
            .unwrap(),
        "replaced already"
    );
    assert_eq!(repo.user_by_id(bob.id).await.unwrap(), bob);
}

/// A suspended passkey is live (the user is enrolled) but not active; the
/// reference's flow is the one that stored the current reference.
pub async fn flow_prerequisites_tell_live_passkeys_and_the_references_flow(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        ..credential(alice.id, "AQID", T0)
    };
    let first = reference(alice.id, b"first", T0);
    repo.apply(&effects(vec![
        Effect::InsertCredential(suspended.clone()),
        Effect::EnrolReference(first.clone()),
        Effect::InsertCredential(credential(bob.id, "BAUG", T0)),
    ]))
    .await
    .unwrap();
    let read = repo
        .flow_prerequisites(&alice.external_id, at(1))
        .await
        .unwrap();
    assert!(!read.has_active_credential && read.has_live_credential);
    assert_eq!(read.reference_flow_id, Some(first.created_by_flow));

    let replaced = reference(alice.id, b"recovered", at(2));
    repo.apply(&effects(vec![
        Effect::SetCredentialStatus {
            id: suspended.id,
            from: CredentialStatus::Suspended,
            to: CredentialStatus::Revoked,
            reason: None,
            at: at(2),
        },
        Effect::StoreReference(replaced.clone()),
    ]))
    .await
    .unwrap();
    let read = repo
        .flow_prerequisites(&alice.external_id, at(3))
        .await
        .unwrap();
    assert!(!read.has_active_credential && !read.has_live_credential);
    assert_eq!(read.reference_flow_id, Some(replaced.created_by_flow));
    let bobs = repo
        .flow_prerequisites(&bob.external_id, at(3))
        .await
        .unwrap();
    assert!(bobs.has_active_credential && bobs.has_live_credential);
    assert_eq!(bobs.reference_flow_id, None);
}

/// Two recoveries of one user, verified, with their completions written at
/// once (each cancelling the user's other flows and revoking their other
/// passkeys): one wins, the other loses its flow write, and the user is left
/// with the winner's passkey as their only active one. A store that locked
/// the flows in the order each change reaches them would deadlock here.
pub async fn concurrent_recoveries_of_one_user_leave_one_new_passkey(repo: Arc<dyn Repository>) {
    recoveries_completing_at_once(repo, "alice").await;
}

/// [`concurrent_recoveries_of_one_user_leave_one_new_passkey`] for a new
/// user named `external`, so that it can be run many times on one store.
pub async fn recoveries_completing_at_once(repo: Arc<dyn Repository>, external: &str) {
    let user = stored_user(&*repo, external).await;
    // WebAuthn ids unique across runs on one store (32 base64url characters).
    let old = credential(user.id, &Uuid::new_v4().simple().to_string(), T0);
    repo.apply(&effects(vec![Effect::InsertCredential(old.clone())]))
        .await
        .unwrap();
    let recoveries: Vec<Flow> = (0..2)
        .map(|i| {
            let pending = NewCredential {
                id: Uuid::new_v4(),
                webauthn_id: Uuid::new_v4().simple().to_string(),
                ..new_credential()
            };
            Flow {
                pending_credential: Some(pending),
                possession_done: true,
                ..open(&user, FlowType::Recovery, FlowState::Verified, at(i))
            }
        })
        .collect();
    for f in &recoveries {
        repo.apply(&insert(f)).await.unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(recoveries.len()));
    let attempts = recoveries.iter().map(|f| {
        let repo = repo.clone();
        let barrier = barrier.clone();
        let done = completed(f, at(60));
        let pending = f.pending_credential.clone().unwrap();
        let about = |t| NewAuditEvent {
            reason: Some("recovery".into()),
            ..event(t, &user, at(60))
        };
        let change = Change {
            effects: vec![
                Effect::InsertCredential(credential_from(&done, &pending, at(60))),
                Effect::CancelOtherFlows {
                    user_id: user.id,
                    keep: f.id,
                    at: at(60),
                    event: about(AuditEventType::FlowCancelled),
                },
                Effect::RevokeOtherCredentials {
                    user_id: user.id,
                    keep: pending.id,
                    reason: "recovery".into(),
                    at: at(60),
                    event: about(AuditEventType::CredentialRevoked),
                },
            ],
            events: vec![
                event(AuditEventType::CredentialRegistered, &user, at(60)),
                event(AuditEventType::FlowCompleted, &user, at(60)),
            ],
            ..update(&done)
        };
        tokio::spawn(async move {
            barrier.wait().await;
            let result = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                repo.apply(&change).await
            })
            .await;
            (pending.id, result)
        })
    });
    let mut winners = Vec::new();
    for joined in futures::future::join_all(attempts).await {
        match joined.unwrap() {
            (id, Ok(Ok(()))) => winners.push(id),
            (_, Ok(Err(StoreError::Conflict(Conflict::FlowVersion)))) => {}
            (_, Ok(Err(other))) => {
                panic!("a losing completion must be a flow_version conflict, got {other:?}")
            }
            (_, Err(_)) => panic!("a completion did not finish in 30 s: a deadlock?"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one recovery completes");
    let active: Vec<Uuid> = repo
        .credentials_of(user.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.status == CredentialStatus::Active)
        .map(|c| c.id)
        .collect();
    assert_eq!(
        active, winners,
        "the winner's passkey is the only active one"
    );
    let states: HashSet<FlowState> = repo
        .flows_of(user.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.state)
        .collect();
    assert_eq!(
        states,
        HashSet::from([FlowState::Completed, FlowState::Cancelled])
    );
}
