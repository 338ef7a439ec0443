//! A recovery's completion: the user's other passkeys revoked and other flows
//! cancelled, set-based, under the user's lock.

use std::collections::HashSet;
use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::flow::{Ceremony, Flow, FlowState, FlowType, NewCredential};
use domain::{
    Actor, AuditEventType, Change, Conflict, Effect, NewAuditEvent, Repository, StoreError,
    Subject, User,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{assert_copies, completed, effects, events_of, open, stage, staged};
use crate::fixtures::{
    T0, all_events, assert_conflict, assert_not_found, at, credential, credential_from, event,
    flow, insert, new_credential, stored_user, update,
};

/// Alice's passkeys in every status, and one of Bob's.
struct Passkeys {
    active: Credential,
    suspended: Credential,
    revoked: Credential,
    bobs: Credential,
}

async fn store_passkeys(repo: &dyn Repository, alice: &User, bob: &User) -> Passkeys {
    let passkeys = Passkeys {
        active: credential(alice.id, "AQID", T0),
        suspended: Credential {
            status: CredentialStatus::Suspended,
            status_reason: Some("reported lost".into()),
            ..credential(alice.id, "BAUG", at(1))
        },
        revoked: Credential {
            status: CredentialStatus::Revoked,
            status_reason: Some("operator".into()),
            ..credential(alice.id, "BwgJ", at(2))
        },
        bobs: credential(bob.id, "CgsM", at(3)),
    };
    repo.apply(&effects(
        [
            &passkeys.active,
            &passkeys.suspended,
            &passkeys.revoked,
            &passkeys.bobs,
        ]
        .into_iter()
        .map(|c| Effect::InsertCredential(c.clone()))
        .collect(),
    ))
    .await
    .unwrap();
    passkeys
}

/// The event a recovery's revocations copy, one per revoked passkey.
fn revocation_template(alice: &User, recovery: &Flow) -> NewAuditEvent {
    NewAuditEvent {
        reason: Some("recovery".into()),
        correlation_id: Some("req-recovery".into()),
        details: json!({ "by": "recovery" }),
        ..NewAuditEvent::new(
            AuditEventType::CredentialRevoked,
            Actor::Provider,
            Subject {
                flow_id: Some(recovery.id.0),
                ..Subject::of_user(alice)
            },
            at(60),
        )
    }
}

pub async fn revoking_other_credentials_revokes_the_users_live_ones_but_the_kept_one(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let Passkeys {
        active,
        suspended,
        revoked,
        bobs,
    } = store_passkeys(&*repo, &alice, &bob).await;

    // A recovery completes: its new passkey is kept.
    let v1 = Flow {
        state: FlowState::Verified,
        pending_credential: Some(new_credential()),
        ..flow(alice.id, FlowType::Recovery, at(4))
    };
    repo.apply(&insert(&v1)).await.unwrap();
    let done = completed(&v1, at(60));
    let kept = credential_from(&done, v1.pending_credential.as_ref().unwrap(), at(60));
    let template = revocation_template(&alice, &v1);
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

/// Alice's flows a recovery cancels: open, one with a ceremony, one moved to
/// a second version before the recovery completes.
async fn flows_to_cancel(repo: &dyn Repository, alice: &User) -> [Flow; 4] {
    let with_ceremony = Flow {
        ceremony: Some(Ceremony {
            state_sealed: vec![0x00, 0x9c, 0xff],
            expires_at: at(300),
        }),
        ..open(alice, FlowType::StepUp, FlowState::Pending, at(1))
    };
    let others = [
        with_ceremony,
        open(
            alice,
            FlowType::Recovery,
            FlowState::AwaitingVerification,
            at(2),
        ),
        open(alice, FlowType::SignIn, FlowState::Verified, at(3)),
        open(alice, FlowType::StepUp, FlowState::InReview, at(4)),
    ];
    store_with_staged_references(repo, &others).await;
    let moved = Flow {
        version: 2,
        updated_at: at(20),
        ..others[1].clone()
    };
    repo.apply(&update(&moved)).await.unwrap();
    [
        others[0].clone(),
        moved,
        others[2].clone(),
        others[3].clone(),
    ]
}

/// Flows a recovery of Alice's at `now` leaves alone: ended, past their
/// expiry, and Bob's.
fn flows_left_alone(alice: &User, bob: &User, now: OffsetDateTime) -> [Flow; 4] {
    [
        open(alice, FlowType::StepUp, FlowState::Completed, at(5)),
        open(alice, FlowType::StepUp, FlowState::Failed, at(5)),
        Flow {
            expires_at: now,
            ..open(alice, FlowType::Recovery, FlowState::Pending, at(6))
        },
        open(bob, FlowType::Recovery, FlowState::Pending, at(7)),
    ]
}

/// Inserts each flow with a reference staged on it (its own id's bytes).
async fn store_with_staged_references(repo: &dyn Repository, flows: &[Flow]) {
    for f in flows {
        repo.apply(&Change {
            effects: vec![stage(f, f.id.0.as_bytes(), f.created_at)],
            ..insert(f)
        })
        .await
        .unwrap();
    }
}

/// The event a recovery's cancellations copy, one per cancelled flow.
fn cancellation_template(alice: &User, recovery: &Flow, now: OffsetDateTime) -> NewAuditEvent {
    NewAuditEvent {
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
    }
}

/// Each of `flows` is cancelled at `now` as a next version, without its
/// ceremony and its staged reference; a change derived from the version
/// the recovery cancelled loses.
async fn assert_cancelled(repo: &dyn Repository, flows: &[Flow], now: OffsetDateTime) {
    for f in flows {
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
        let late = Flow {
            version: f.version + 1,
            state: FlowState::Completed,
            updated_at: now + Duration::seconds(1),
            ..f.clone()
        };
        assert_conflict(repo.apply(&update(&late)).await, Conflict::FlowVersion);
    }
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
    let others = flows_to_cancel(&*repo, &alice).await;
    let untouched = flows_left_alone(&alice, &bob, now);
    store_with_staged_references(&*repo, &untouched).await;
    store_with_staged_references(&*repo, std::slice::from_ref(&recovery)).await;

    let template = cancellation_template(&alice, &recovery, now);
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
    assert_cancelled(&*repo, &others, now).await;
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

    the_kept_flow_is_spared_while_open(&*repo, &bob, &untouched[3], &template, now).await;
}

/// Bob's recovery `bobs`, still open, cancels his other flow but not itself.
async fn the_kept_flow_is_spared_while_open(
    repo: &dyn Repository,
    bob: &User,
    bobs: &Flow,
    template: &NewAuditEvent,
    now: OffsetDateTime,
) {
    let bobs_other = open(bob, FlowType::StepUp, FlowState::Pending, at(8));
    repo.apply(&insert(&bobs_other)).await.unwrap();
    repo.apply(&effects(vec![Effect::CancelOtherFlows {
        user_id: bob.id,
        keep: bobs.id,
        at: now,
        event: NewAuditEvent {
            subject: Subject::of_user(bob),
            ..template.clone()
        },
    }]))
    .await
    .unwrap();
    assert_eq!(repo.flow(bobs.id).await.unwrap(), *bobs);
    assert_eq!(
        staged(repo, bobs).await,
        Some(bobs.id.0.as_bytes().to_vec())
    );
    assert_eq!(
        repo.flow(bobs_other.id).await.unwrap().state,
        FlowState::Cancelled
    );
}

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
    let completions = recoveries
        .iter()
        .map(|f| {
            let pending = f.pending_credential.clone().unwrap();
            (pending.id, recovery_completion(&user, f))
        })
        .collect();
    let winners = apply_at_once(&repo, completions).await;
    assert_one_recovery_won(&*repo, &user, &winners).await;
}

/// The change completing the recovery `f` at 60 s: its new passkey, the
/// user's other flows cancelled and other passkeys revoked.
fn recovery_completion(user: &User, f: &Flow) -> Change {
    let done = completed(f, at(60));
    let pending = f.pending_credential.clone().unwrap();
    let about = |t| NewAuditEvent {
        reason: Some("recovery".into()),
        ..event(t, user, at(60))
    };
    Change {
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
            event(AuditEventType::CredentialRegistered, user, at(60)),
            event(AuditEventType::FlowCompleted, user, at(60)),
        ],
        ..update(&done)
    }
}

/// Applies the changes at once (each named by an id); the ids of those
/// written. A loser must be a `flow_version` conflict, and every change
/// must finish within 30 s.
async fn apply_at_once(repo: &Arc<dyn Repository>, changes: Vec<(Uuid, Change)>) -> Vec<Uuid> {
    let barrier = Arc::new(tokio::sync::Barrier::new(changes.len()));
    let attempts = changes.into_iter().map(|(id, change)| {
        let repo = repo.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let result = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                repo.apply(&change).await
            })
            .await;
            (id, result)
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
    winners
}

/// Exactly one recovery completed: its passkey is the user's only active
/// one, and the other recovery is cancelled.
async fn assert_one_recovery_won(repo: &dyn Repository, user: &User, winners: &[Uuid]) {
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
