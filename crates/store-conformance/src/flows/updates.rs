//! The conditional update that makes concurrent transitions safe, and the
//! all-or-nothing of a change.

use std::sync::Arc;

use domain::flow::{FailureReason, Flow, FlowState, FlowType, Handoff, IdentityStatus};
use domain::{
    AuditEventType, Change, Conflict, Effect, ExternalUserId, FlowLimits, FlowWrite, Limit,
    NewAuditEvent, Repository, StoreError, User,
};
use serde_json::json;
use time::macros::datetime;

use crate::fixtures::{
    T0, all_events, assert_conflict, assert_limit, assert_not_found, at, credential,
    credential_from, event, flow, full_flow, insert, insert_within, reference, snapshot,
    stored_user, update,
};

pub async fn an_update_over_the_stored_version_round_trips(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let v1 = full_flow(alice.id);
    repo.apply(&insert(&v1)).await.unwrap();

    // The enrolled device claims the hand-off and proves possession.
    let claimed = datetime!(2026-04-01 08:02:03.000007 UTC);
    let v2 = Flow {
        version: 2,
        possession_done: true,
        handoff: Some(Handoff {
            claimed_at: Some(claimed),
            ..v1.handoff.clone().unwrap()
        }),
        updated_at: claimed,
        ..v1.clone()
    };
    repo.apply(&update(&v2)).await.unwrap();
    assert_eq!(repo.flow(v1.id).await.unwrap(), v2);

    // The identity proof completes the flow; the pending credential becomes real.
    let done = datetime!(2026-04-01 08:04:05.999999 UTC);
    let pending = v2.pending_credential.clone().unwrap();
    let v3 = Flow {
        version: 3,
        state: FlowState::Completed,
        identity: IdentityStatus::Verified,
        credential_id: Some(pending.id),
        pending_credential: None,
        updated_at: done,
        completed_at: Some(done),
        ..v2.clone()
    };
    let registered = credential_from(&v3, &pending, done);
    let completed = event(AuditEventType::FlowCompleted, &alice, done);
    repo.apply(&Change {
        effects: vec![Effect::InsertCredential(registered.clone())],
        events: vec![completed.clone()],
        ..update(&v3)
    })
    .await
    .unwrap();

    assert_eq!(repo.flow(v1.id).await.unwrap(), v3);
    let code = v3.handoff.as_ref().unwrap().code_sha256;
    assert_eq!(repo.flow_by_handoff(&code).await.unwrap(), v3);
    let run = v3.idv_run_id.as_deref().unwrap();
    assert_eq!(repo.flow_by_run(run).await.unwrap(), v3);
    assert_eq!(repo.credential(registered.id).await.unwrap(), registered);
    assert_eq!(all_events(&*repo).await[0], completed);
}

pub async fn an_update_sets_the_run_and_the_failure_reason(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let v1 = flow(alice.id, FlowType::Registration, T0);
    repo.apply(&insert(&v1)).await.unwrap();
    assert_not_found(repo.flow_by_run("run-42").await);

    let v2 = Flow {
        version: 2,
        state: FlowState::AwaitingVerification,
        idv_run_id: Some("run-42".into()),
        sdk_token_sealed: Some(vec![0xde, 0xad, 0x00, 0xbe, 0xef]),
        updated_at: datetime!(2026-04-01 08:00:00.500000 UTC),
        ..v1.clone()
    };
    repo.apply(&update(&v2)).await.unwrap();
    assert_eq!(repo.flow_by_run("run-42").await.unwrap(), v2);

    let v3 = Flow {
        version: 3,
        state: FlowState::Failed,
        identity: IdentityStatus::Failed,
        failure_reason: Some(FailureReason::IdvDeclined),
        updated_at: datetime!(2026-04-01 08:03:00.000001 UTC),
        ..v2.clone()
    };
    repo.apply(&update(&v3)).await.unwrap();
    assert_eq!(repo.flow(v1.id).await.unwrap(), v3);
    assert_eq!(repo.flow_by_run("run-42").await.unwrap(), v3);
}

pub async fn a_stale_flow_version_is_a_conflict_and_writes_nothing(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let existing = credential(alice.id, "AQID", T0);
    repo.apply(&Change {
        effects: vec![Effect::InsertCredential(existing.clone())],
        ..Change::default()
    })
    .await
    .unwrap();
    let v1 = flow(alice.id, FlowType::StepUp, T0);
    repo.apply(&insert(&v1)).await.unwrap();
    let v2 = Flow {
        version: 2,
        state: FlowState::AwaitingVerification,
        idv_run_id: Some("run-1".into()),
        updated_at: at(1),
        ..v1.clone()
    };
    repo.apply(&update(&v2)).await.unwrap();
    let before = snapshot(&*repo, alice.id).await;

    // Derived from v1, which is no longer the stored version.
    let stale = Flow {
        version: 2,
        state: FlowState::Cancelled,
        updated_at: at(2),
        ..v1.clone()
    };
    let newcomer = credential(alice.id, "BAUG", at(2));
    let change = Change {
        effects: vec![
            Effect::InsertCredential(newcomer.clone()),
            Effect::UseCredential {
                id: existing.id,
                sign_count: 6,
                backup_state: true,
                at: at(2),
            },
            Effect::StoreReference(reference(alice.id, b"reference", at(2))),
            Effect::SetApplicant {
                user_id: alice.id,
                sealed: vec![1, 2, 3],
            },
            Effect::RecordProviderEvent {
                dedupe_key: "evt-1".into(),
                run_id: "run-1".into(),
                at: at(2),
            },
        ],
        events: vec![event(AuditEventType::FlowCancelled, &alice, at(2))],
        ..update(&stale)
    };
    assert_conflict(repo.apply(&change).await, Conflict::FlowVersion);
    // A version from the future is no better.
    let ahead = Change {
        flow: Some(FlowWrite::Update {
            flow: Flow {
                version: 4,
                ..stale.clone()
            },
        }),
        ..change.clone()
    };
    assert_conflict(repo.apply(&ahead).await, Conflict::FlowVersion);

    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_eq!(repo.flow(v1.id).await.unwrap(), v2);
    assert_not_found(repo.credential(newcomer.id).await);
    assert_not_found(repo.credential_by_webauthn_id("BAUG").await);
    assert_eq!(repo.credential(existing.id).await.unwrap(), existing);
    // The provider event was not recorded: recording it now succeeds.
    repo.apply(&Change {
        effects: vec![Effect::RecordProviderEvent {
            dedupe_key: "evt-1".into(),
            run_id: "run-1".into(),
            at: at(3),
        }],
        ..Change::default()
    })
    .await
    .unwrap();
}

pub async fn concurrent_updates_from_one_version_have_exactly_one_winner(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let v1 = flow(alice.id, FlowType::Registration, T0);
    repo.apply(&insert(&v1)).await.unwrap();

    let attempts = (0u8..8).map(|i| {
        let repo = repo.clone();
        let next = Flow {
            version: 2,
            state: FlowState::AwaitingVerification,
            idv_run_id: Some(format!("run-{i}")),
            sdk_token_sealed: Some(vec![i]),
            updated_at: at(1),
            ..v1.clone()
        };
        let change = Change {
            events: vec![event(AuditEventType::FlowIdvStarted, &alice, at(1))],
            ..update(&next)
        };
        tokio::spawn(async move {
            let result = repo.apply(&change).await;
            (next, change.events[0].clone(), result)
        })
    });
    let results = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for result in results {
        match result.unwrap() {
            (next, event, Ok(())) => winners.push((next, event)),
            (_, _, Err(StoreError::Conflict(Conflict::FlowVersion))) => {}
            (_, _, Err(other)) => {
                panic!("a losing update must be a flow_version conflict, got {other:?}")
            }
        }
    }
    assert_eq!(winners.len(), 1);
    let (winner, won) = winners.pop().unwrap();
    assert_eq!(repo.flow(v1.id).await.unwrap(), winner);
    let events = all_events(&*repo).await;
    assert_eq!(events.len(), 2, "user.created and the winner's event only");
    assert_eq!(events[0], won);
}

pub async fn a_change_can_create_a_user_with_their_first_flow(repo: Arc<dyn Repository>) {
    let alice = User::new(ExternalUserId::parse("alice").unwrap(), T0);
    let first = flow(alice.id, FlowType::Registration, T0);
    let user_created = event(AuditEventType::UserCreated, &alice, T0);
    let flow_created = event(AuditEventType::FlowCreated, &alice, T0);
    repo.apply(&Change {
        effects: vec![Effect::CreateUser(alice.clone())],
        events: vec![user_created.clone(), flow_created.clone()],
        ..insert(&first)
    })
    .await
    .unwrap();
    assert_eq!(repo.user_by_id(alice.id).await.unwrap(), alice);
    assert_eq!(repo.flow(first.id).await.unwrap(), first);
    assert_eq!(all_events(&*repo).await, vec![flow_created, user_created]);

    // The same change refused by a limit creates no user either.
    let bob = User::new(ExternalUserId::parse("bob").unwrap(), T0);
    let refused = flow(bob.id, FlowType::Registration, T0);
    let before = all_events(&*repo).await;
    let result = repo
        .apply(&Change {
            effects: vec![Effect::CreateUser(bob.clone())],
            events: vec![event(AuditEventType::UserCreated, &bob, T0)],
            ..insert_within(
                &refused,
                FlowLimits {
                    max_open_flows: 0,
                    max_idv_runs_per_day: 10,
                    now: T0,
                },
            )
        })
        .await;
    assert_limit(result, Limit::OpenFlows);
    assert_not_found(repo.user_by_id(bob.id).await);
    assert_not_found(repo.user_by_external_id(&bob.external_id).await);
    assert_not_found(repo.flow(refused.id).await);
    assert_eq!(all_events(&*repo).await, before);
}

pub async fn a_failed_event_rolls_back_the_flow_and_its_effects(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let existing = credential(alice.id, "AQID", T0);
    repo.apply(&Change {
        effects: vec![Effect::InsertCredential(existing.clone())],
        ..Change::default()
    })
    .await
    .unwrap();
    let v1 = full_flow(alice.id);
    repo.apply(&insert(&v1)).await.unwrap();
    let before = snapshot(&*repo, alice.id).await;

    let v2 = Flow {
        version: 2,
        state: FlowState::Completed,
        identity: IdentityStatus::Verified,
        pending_credential: None,
        updated_at: at(60),
        completed_at: Some(at(60)),
        ..v1.clone()
    };
    let newcomer = credential_from(&v2, v1.pending_credential.as_ref().unwrap(), at(60));
    // Details must be a JSON object; the store refuses anything else.
    let bad = NewAuditEvent {
        details: json!("not an object"),
        ..event(AuditEventType::FlowCompleted, &alice, at(60))
    };
    let result = repo
        .apply(&Change {
            effects: vec![
                Effect::InsertCredential(newcomer.clone()),
                Effect::UseCredential {
                    id: existing.id,
                    sign_count: 9,
                    backup_state: true,
                    at: at(60),
                },
                Effect::StoreReference(reference(alice.id, b"reference", at(60))),
                Effect::SetApplicant {
                    user_id: alice.id,
                    sealed: vec![4, 5, 6],
                },
            ],
            events: vec![
                event(AuditEventType::CredentialRegistered, &alice, at(60)),
                bad,
            ],
            ..update(&v2)
        })
        .await;
    assert!(result.is_err(), "{result:?}");

    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_eq!(repo.flow(v1.id).await.unwrap(), v1);
    assert_not_found(repo.credential(newcomer.id).await);
}
