//! Flows: what `apply` writes to the `flows` table, the conditional update that
//! makes concurrent transitions safe, the per-user limits checked with an
//! insertion, and the all-or-nothing of a change.

use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::flow::{FailureReason, Flow, FlowId, FlowState, FlowType, Handoff, IdentityStatus};
use domain::{
    AuditEventType, Change, Conflict, Effect, ExternalUserId, FlowLimits, FlowQuery, FlowWrite,
    Limit, NewAuditEvent, Repository, StoreError, User,
};
use serde_json::json;
use time::Duration;
use time::macros::datetime;
use uuid::Uuid;

use crate::fixtures::{
    T0, all_events, assert_conflict, assert_limit, assert_not_found, at, credential,
    credential_from, event, flow, full_flow, insert, insert_within, reference, snapshot,
    stored_user, update,
};

pub async fn a_flow_with_every_field_round_trips(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let full = full_flow(alice.id);
    let created = event(AuditEventType::FlowCreated, &alice, full.created_at);
    repo.apply(&Change {
        events: vec![created.clone()],
        ..insert(&full)
    })
    .await
    .unwrap();

    assert_eq!(repo.flow(full.id).await.unwrap(), full);
    let code = full.handoff.as_ref().unwrap().code_sha256;
    assert_eq!(repo.flow_by_handoff(&code).await.unwrap(), full);
    let run = full.idv_run_id.as_deref().unwrap();
    assert_eq!(repo.flow_by_run(run).await.unwrap(), full);
    assert_eq!(repo.flows_of(alice.id, 10).await.unwrap(), vec![full]);
    assert_eq!(all_events(&*repo).await[0], created);
}

pub async fn a_flow_without_optional_fields_round_trips(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let bare = flow(alice.id, FlowType::SignIn, T0);
    repo.apply(&insert(&bare)).await.unwrap();

    assert_eq!(repo.flow(bare.id).await.unwrap(), bare);
    assert_eq!(repo.flows_of(alice.id, 10).await.unwrap(), vec![bare]);
}

pub async fn every_flow_type_state_identity_and_failure_reason_round_trips(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    for (i, state) in FlowState::ALL.iter().enumerate() {
        let f = Flow {
            state: *state,
            identity: IdentityStatus::ALL[i % IdentityStatus::ALL.len()],
            failure_reason: FailureReason::ALL.get(i).copied(),
            ..flow(
                alice.id,
                FlowType::ALL[i % FlowType::ALL.len()],
                at(i64::try_from(i).unwrap()),
            )
        };
        repo.apply(&insert(&f)).await.unwrap();
        assert_eq!(repo.flow(f.id).await.unwrap(), f);
    }
}

pub async fn unknown_flows_are_not_found(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let full = full_flow(alice.id);
    repo.apply(&insert(&full)).await.unwrap();

    assert_not_found(repo.flow(domain::flow::FlowId(Uuid::new_v4())).await);
    assert_not_found(repo.flow_by_handoff(&[7; 32]).await);
    assert_not_found(repo.flow_by_run("run-unknown").await);
    let bob = stored_user(&*repo, "bob").await;
    assert_eq!(repo.flows_of(bob.id, 10).await.unwrap(), vec![]);
}

pub async fn flows_of_lists_a_users_flows_newest_first_up_to_the_limit(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let oldest = flow(alice.id, FlowType::Registration, at(0));
    let newest = flow(alice.id, FlowType::StepUp, at(2));
    let middle = flow(alice.id, FlowType::SignIn, at(1));
    let bobs = flow(bob.id, FlowType::SignIn, at(3));
    for f in [&oldest, &newest, &middle, &bobs] {
        repo.apply(&insert(f)).await.unwrap();
    }

    assert_eq!(
        repo.flows_of(alice.id, 10).await.unwrap(),
        vec![newest.clone(), middle.clone(), oldest]
    );
    assert_eq!(
        repo.flows_of(alice.id, 2).await.unwrap(),
        vec![newest, middle]
    );
    assert_eq!(repo.flows_of(bob.id, 10).await.unwrap(), vec![bobs]);
}

/// The management listing filters on the state a flow reads as at the
/// query's now ([`Flow::as_of`]): an open flow past its expiry is `expired`
/// (at its expiry itself too) and no longer in its stored state, a flow that
/// ended keeps its state past its expiry, and the limit counts matching
/// flows only.
pub async fn a_flow_listing_filters_on_the_state_each_flow_reads_as_now(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    // Each expires 15 minutes (900 s) after its creation.
    let lapsed = flow(alice.id, FlowType::SignIn, at(0));
    let settled = Flow {
        state: FlowState::Expired,
        ..flow(alice.id, FlowType::Registration, at(1))
    };
    let cancelled = Flow {
        state: FlowState::Cancelled,
        ..flow(alice.id, FlowType::Recovery, at(2))
    };
    let open = Flow {
        state: FlowState::AwaitingVerification,
        ..flow(alice.id, FlowType::StepUp, at(600))
    };
    let bobs = flow(bob.id, FlowType::SignIn, at(0));
    for f in [&lapsed, &settled, &cancelled, &open, &bobs] {
        repo.apply(&insert(f)).await.unwrap();
    }
    let user = alice.id;
    let list = |flow_type: Option<FlowType>, state: Option<FlowState>, now, limit| {
        let repo = repo.clone();
        async move {
            repo.search_flows(&FlowQuery {
                user,
                flow_type,
                state,
                now,
                limit,
            })
            .await
            .unwrap()
        }
    };

    let now = at(1000);
    assert_eq!(
        list(None, None, now, 10).await,
        vec![
            open.clone(),
            cancelled.clone(),
            settled.clone(),
            lapsed.clone()
        ]
    );
    assert_eq!(
        list(None, Some(FlowState::Expired), now, 10).await,
        vec![settled.clone(), lapsed.clone()]
    );
    assert_eq!(
        list(None, Some(FlowState::Pending), now, 10).await,
        vec![],
        "the lapsed flow no longer reads pending"
    );
    assert_eq!(
        list(None, Some(FlowState::Cancelled), now, 10).await,
        vec![cancelled.clone()]
    );
    assert_eq!(
        list(None, Some(FlowState::AwaitingVerification), now, 10).await,
        vec![open.clone()]
    );
    assert_eq!(
        list(Some(FlowType::SignIn), Some(FlowState::Expired), now, 10).await,
        vec![lapsed.clone()]
    );
    assert_eq!(
        list(None, Some(FlowState::Expired), now, 1).await,
        vec![settled.clone()],
        "the limit counts matching flows"
    );
    // Before the lapsed flow's expiry it reads pending; at it, expired.
    assert_eq!(
        list(None, Some(FlowState::Pending), at(899), 10).await,
        vec![lapsed.clone()]
    );
    assert_eq!(
        list(None, Some(FlowState::Expired), at(900), 10).await,
        vec![settled.clone(), lapsed.clone()]
    );
    // Every state's listing is exactly what `Flow::as_of` reads.
    for now in [at(0), at(899), at(900), at(1000), at(1500), at(2000)] {
        for state in FlowState::ALL {
            let expected: Vec<Flow> = repo
                .flows_of(alice.id, 10)
                .await
                .unwrap()
                .into_iter()
                .filter(|f| f.clone().as_of(now).state == *state)
                .collect();
            assert_eq!(
                list(None, Some(*state), now, 10).await,
                expected,
                "{state} at {now}"
            );
        }
    }
}

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

pub async fn the_open_flow_limit_refuses_the_next_flow_and_writes_nothing(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let now = at(60);
    // One flow in each open state, none expired at `now`.
    let open = [
        FlowState::Pending,
        FlowState::AwaitingVerification,
        FlowState::Verified,
        FlowState::InReview,
    ];
    for (i, state) in open.into_iter().enumerate() {
        let f = Flow {
            state,
            ..flow(alice.id, FlowType::SignIn, at(i64::try_from(i).unwrap()))
        };
        repo.apply(&insert(&f)).await.unwrap();
    }
    let limits = |max_open_flows| FlowLimits {
        max_open_flows,
        max_idv_runs_per_day: 100,
        now,
    };
    let before = snapshot(&*repo, alice.id).await;

    let fifth = flow(alice.id, FlowType::SignIn, now);
    let refused = Change {
        effects: vec![Effect::StoreReference(reference(
            alice.id,
            b"reference",
            now,
        ))],
        events: vec![event(AuditEventType::FlowCreated, &alice, now)],
        ..insert_within(&fifth, limits(4))
    };
    assert_limit(repo.apply(&refused).await, Limit::OpenFlows);
    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_not_found(repo.flow(fifth.id).await);

    // Limits are per user.
    let bob = stored_user(&*repo, "bob").await;
    let bobs = flow(bob.id, FlowType::SignIn, now);
    repo.apply(&insert_within(&bobs, limits(4))).await.unwrap();

    // One more slot lets the same flow in.
    repo.apply(&insert_within(&fifth, limits(5))).await.unwrap();
    assert_eq!(repo.flow(fifth.id).await.unwrap(), fifth);
}

pub async fn terminal_and_expired_flows_do_not_count_as_open(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let now = at(3600);
    let terminal = [
        FlowState::Completed,
        FlowState::Failed,
        FlowState::Expired,
        FlowState::Cancelled,
    ];
    for state in terminal {
        let f = Flow {
            state,
            expires_at: now + Duration::minutes(10),
            ..flow(alice.id, FlowType::SignIn, at(0))
        };
        repo.apply(&insert(&f)).await.unwrap();
    }
    // Open states, but past their expiry at `now`: exactly at it, and before it.
    for (state, expires_at) in [
        (FlowState::Pending, now),
        (FlowState::Verified, now - Duration::microseconds(1)),
        (FlowState::InReview, at(60)),
    ] {
        let f = Flow {
            state,
            expires_at,
            ..flow(alice.id, FlowType::SignIn, at(1))
        };
        repo.apply(&insert(&f)).await.unwrap();
    }

    let limits = FlowLimits {
        max_open_flows: 1,
        max_idv_runs_per_day: 100,
        now,
    };
    let first = flow(alice.id, FlowType::SignIn, now);
    repo.apply(&insert_within(&first, limits)).await.unwrap();
    // The limit still holds: the flow just created is open.
    let second = flow(alice.id, FlowType::SignIn, now);
    assert_limit(
        repo.apply(&insert_within(&second, limits)).await,
        Limit::OpenFlows,
    );
    assert_not_found(repo.flow(second.id).await);
}

pub async fn the_idv_run_limit_counts_identity_flows_of_the_last_24_hours(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let now = datetime!(2026-04-03 12:00:00.500000 UTC);
    let hours_ago = |h: i64| now - Duration::hours(h);
    // Counted: flows needing identity created in the last 24 hours, whatever their state.
    let counted = [
        Flow {
            state: FlowState::Failed,
            identity: IdentityStatus::Failed,
            failure_reason: Some(FailureReason::IdvDeclined),
            ..flow(alice.id, FlowType::StepUp, hours_ago(2))
        },
        Flow {
            state: FlowState::Completed,
            identity: IdentityStatus::Verified,
            completed_at: Some(hours_ago(1)),
            ..flow(alice.id, FlowType::Recovery, hours_ago(3))
        },
    ];
    // Not counted: created 25 hours ago; needing no identity.
    let uncounted = [
        flow(alice.id, FlowType::Registration, hours_ago(25)),
        flow(alice.id, FlowType::SignIn, hours_ago(1)),
    ];
    for f in counted.iter().chain(&uncounted) {
        repo.apply(&insert(f)).await.unwrap();
    }
    let limits = FlowLimits {
        max_open_flows: 100,
        max_idv_runs_per_day: 3,
        now,
    };

    let third = flow(alice.id, FlowType::Registration, now);
    repo.apply(&insert_within(&third, limits)).await.unwrap();

    let before = snapshot(&*repo, alice.id).await;
    let fourth = flow(alice.id, FlowType::StepUp, now);
    let refused = Change {
        effects: vec![Effect::SetApplicant {
            user_id: alice.id,
            sealed: vec![1],
        }],
        events: vec![event(AuditEventType::FlowCreated, &alice, now)],
        ..insert_within(&fourth, limits)
    };
    assert_limit(repo.apply(&refused).await, Limit::IdvRuns);
    assert_eq!(snapshot(&*repo, alice.id).await, before);

    // A sign-in needs no identity proof, so the limit never holds it back.
    let sign_in = flow(alice.id, FlowType::SignIn, now);
    repo.apply(&insert_within(&sign_in, limits)).await.unwrap();
    assert_eq!(repo.flow(sign_in.id).await.unwrap(), sign_in);
}

/// One read tells a flow's creation who the user is, whether they have an
/// active passkey and a reference, and how far they are from the limits,
/// counted as the insertion counts them.
pub async fn flow_prerequisites_read_the_user_and_their_standing(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let now = datetime!(2026-04-03 12:00:00.500000 UTC);
    let unknown = ExternalUserId::parse("nobody").unwrap();
    assert_not_found(repo.flow_prerequisites(&unknown, now).await);

    let bare = repo
        .flow_prerequisites(&alice.external_id, now)
        .await
        .unwrap();
    assert_eq!(bare.user, alice);
    assert!(!bare.has_active_credential && !bare.has_live_credential);
    assert_eq!(bare.reference_flow_id, None);
    assert_eq!((bare.open_flows, bare.idv_runs_last_day), (0, 0));

    let revoked = Credential {
        status: CredentialStatus::Revoked,
        ..credential(alice.id, "AQID", T0)
    };
    let stored = reference(alice.id, b"reference", T0);
    repo.apply(&Change {
        effects: vec![
            Effect::InsertCredential(revoked),
            Effect::StoreReference(stored.clone()),
        ],
        ..Change::default()
    })
    .await
    .unwrap();
    let hours_ago = |h: i64| now - Duration::hours(h);
    let flows = [
        // Open, and an identity run of the last day.
        Flow {
            expires_at: now + Duration::minutes(5),
            ..flow(alice.id, FlowType::StepUp, hours_ago(1))
        },
        // Open, no identity.
        Flow {
            expires_at: now + Duration::minutes(5),
            ..flow(alice.id, FlowType::SignIn, hours_ago(1))
        },
        // Past its expiry; an identity run 25 hours ago.
        Flow {
            expires_at: now,
            ..flow(alice.id, FlowType::Recovery, hours_ago(25))
        },
        // Terminal; an identity run of the last day.
        Flow {
            state: FlowState::Failed,
            identity: IdentityStatus::Failed,
            failure_reason: Some(FailureReason::IdvDeclined),
            expires_at: now + Duration::minutes(5),
            ..flow(alice.id, FlowType::Registration, hours_ago(2))
        },
    ];
    for f in &flows {
        repo.apply(&insert(f)).await.unwrap();
    }
    let read = repo
        .flow_prerequisites(&alice.external_id, now)
        .await
        .unwrap();
    assert!(
        !read.has_active_credential && !read.has_live_credential,
        "a revoked passkey is neither active nor live"
    );
    assert_eq!(read.reference_flow_id, Some(stored.created_by_flow));
    assert_eq!((read.open_flows, read.idv_runs_last_day), (2, 2));

    repo.apply(&Change {
        effects: vec![Effect::InsertCredential(credential(alice.id, "BAUG", T0))],
        ..Change::default()
    })
    .await
    .unwrap();
    let read = repo
        .flow_prerequisites(&alice.external_id, now)
        .await
        .unwrap();
    assert!(read.has_active_credential && read.has_live_credential);
}

pub async fn concurrent_flow_creations_respect_the_open_flow_limit(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let limits = FlowLimits {
        max_open_flows: 3,
        max_idv_runs_per_day: 100,
        now: T0,
    };
    let attempts = (0..8).map(|_| {
        let repo = repo.clone();
        let f = flow(alice.id, FlowType::SignIn, T0);
        tokio::spawn(async move { repo.apply(&insert_within(&f, limits)).await })
    });
    let results = futures::future::join_all(attempts).await;
    let mut created = 0;
    for result in results {
        match result.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::LimitReached(Limit::OpenFlows)) => {}
            Err(other) => panic!("a refused creation must be LimitReached, got {other:?}"),
        }
    }
    assert_eq!(created, 3);
    assert_eq!(repo.flows_of(alice.id, 100).await.unwrap().len(), 3);
}

pub async fn a_flow_for_a_missing_user_is_not_found(repo: Arc<dyn Repository>) {
    let ghost = domain::UserId(Uuid::new_v4());
    let orphan = flow(ghost, FlowType::SignIn, T0);
    assert_not_found(repo.apply(&insert(&orphan)).await);
    assert_not_found(repo.flow(orphan.id).await);
}

pub async fn flows_awaiting_the_provider_are_listed_oldest_check_first(repo: Arc<dyn Repository>) {
    let user = stored_user(&*repo, "reco").await;
    let waiting = |minutes: i64, run: &str| {
        let mut f = flow(user.id, FlowType::StepUp, T0 + Duration::minutes(minutes));
        f.state = FlowState::AwaitingVerification;
        f.idv_run_id = Some(run.to_owned());
        f.expires_at = T0 + Duration::hours(1);
        f
    };
    let older = waiting(0, "run-older");
    let newer = waiting(5, "run-newer");
    let mut ended = waiting(1, "run-ended");
    ended.state = FlowState::Completed;
    let mut expired = waiting(2, "run-expired");
    expired.expires_at = T0 + Duration::minutes(20);
    for f in [&older, &newer, &ended, &expired] {
        repo.apply(&insert(f)).await.unwrap();
    }
    let now = T0 + Duration::minutes(30);
    let ids = |flows: Vec<Flow>| flows.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let listed = repo
        .flows_awaiting_provider(T0 + Duration::minutes(10), now, 10)
        .await
        .unwrap();
    assert_eq!(ids(listed), vec![older.id, newer.id]);
    assert_eq!(
        ids(repo
            .flows_awaiting_provider(T0 + Duration::minutes(3), now, 10)
            .await
            .unwrap()),
        vec![older.id]
    );
    assert_eq!(
        ids(repo
            .flows_awaiting_provider(T0 + Duration::minutes(10), now, 1)
            .await
            .unwrap()),
        vec![older.id]
    );

    repo.mark_provider_checked(older.id, T0 + Duration::minutes(8))
        .await
        .unwrap();
    let listed = repo
        .flows_awaiting_provider(T0 + Duration::minutes(10), now, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(listed),
        vec![newer.id, older.id],
        "a checked flow goes to the back"
    );
    assert_eq!(
        repo.flow(older.id).await.unwrap(),
        older,
        "checking is not a change of the flow"
    );
}

pub async fn failed_flows_marked_for_a_run_look_up_are_listed_until_it_is_done(
    repo: Arc<dyn Repository>,
) {
    let user = stored_user(&*repo, "lookup").await;
    let failed = |minutes: i64| {
        let mut f = flow(user.id, FlowType::StepUp, T0 + Duration::minutes(minutes));
        f.state = FlowState::Failed;
        f.failure_reason = Some(FailureReason::IdvUnavailable);
        f
    };
    let mark = |f: &Flow, pending: bool| Change {
        effects: vec![Effect::SetRunLookup {
            flow_id: f.id,
            pending,
        }],
        ..Change::default()
    };
    let older = failed(0);
    let newer = failed(5);
    let unmarked = failed(1);
    for f in [&older, &newer, &unmarked] {
        repo.apply(&insert(f)).await.unwrap();
    }
    for f in [&older, &newer] {
        repo.apply(&mark(f, true)).await.unwrap();
    }
    let ids = |flows: Vec<Flow>| flows.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let listed = |before: i64, limit: u32| {
        let repo = repo.clone();
        async move {
            ids(repo
                .flows_awaiting_run_lookup(T0 + Duration::minutes(before), limit)
                .await
                .unwrap())
        }
    };
    assert_eq!(listed(10, 10).await, vec![older.id, newer.id]);
    assert_eq!(listed(3, 10).await, vec![older.id], "failed too recently");
    assert_eq!(listed(10, 1).await, vec![older.id]);

    // Found: the run is recorded with the flow and the mark cleared at once.
    let mut found = older.clone();
    found.version += 1;
    found.idv_run_id = Some("run-found".into());
    repo.apply(&Change {
        effects: mark(&older, false).effects,
        ..update(&found)
    })
    .await
    .unwrap();
    assert_eq!(listed(10, 10).await, vec![newer.id]);
    assert_eq!(repo.flow(older.id).await.unwrap(), found);
    // Not found: the mark alone is cleared, the flow unchanged.
    repo.apply(&mark(&newer, false)).await.unwrap();
    assert_eq!(listed(10, 10).await, Vec::<FlowId>::new());
    assert_eq!(repo.flow(newer.id).await.unwrap(), newer);
}

pub async fn recorded_provider_events_are_seen(repo: Arc<dyn Repository>) {
    assert!(
        !repo
            .provider_event_seen("onfido:workflow_run:r1:approved")
            .await
            .unwrap()
    );
    repo.apply(&Change {
        effects: vec![Effect::RecordProviderEvent {
            dedupe_key: "onfido:workflow_run:r1:approved".into(),
            run_id: "r1".into(),
            at: T0,
        }],
        ..Change::default()
    })
    .await
    .unwrap();
    assert!(
        repo.provider_event_seen("onfido:workflow_run:r1:approved")
            .await
            .unwrap()
    );
    assert!(
        !repo
            .provider_event_seen("onfido:workflow_run:r1:declined")
            .await
            .unwrap()
    );
}

/// The counts a flow's creation read beforehand serve an early refusal only:
/// a flow created after the read, before the insertion, counts against it.
pub async fn a_limit_reached_after_the_read_refuses_the_flow_and_its_events(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let now = at(60);
    let limits = FlowLimits {
        max_open_flows: 1,
        max_idv_runs_per_day: 100,
        now,
    };
    let read = repo
        .flow_prerequisites(&alice.external_id, now)
        .await
        .unwrap();
    assert_eq!(read.open_flows, 0);

    // Another replica's creation lands between the read and the write.
    let other = flow(alice.id, FlowType::SignIn, now);
    repo.apply(&insert_within(&other, limits)).await.unwrap();
    let before = snapshot(&*repo, alice.id).await;

    let late = flow(alice.id, FlowType::SignIn, now);
    let refused = Change {
        events: vec![event(AuditEventType::FlowCreated, &alice, now)],
        ..insert_within(&late, limits)
    };
    assert_limit(repo.apply(&refused).await, Limit::OpenFlows);
    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_not_found(repo.flow(late.id).await);
}

pub async fn concurrent_identity_flow_creations_respect_the_idv_run_limit(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let limits = FlowLimits {
        max_open_flows: 100,
        max_idv_runs_per_day: 2,
        now: T0,
    };
    let attempts = (0..8).map(|_| {
        let repo = repo.clone();
        let f = flow(alice.id, FlowType::StepUp, T0);
        let change = Change {
            events: vec![event(AuditEventType::FlowCreated, &alice, T0)],
            ..insert_within(&f, limits)
        };
        tokio::spawn(async move { repo.apply(&change).await })
    });
    let results = futures::future::join_all(attempts).await;
    let mut created = 0;
    for result in results {
        match result.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::LimitReached(Limit::IdvRuns)) => {}
            Err(other) => panic!("a refused creation must be LimitReached, got {other:?}"),
        }
    }
    assert_eq!(created, 2);
    assert_eq!(repo.flows_of(alice.id, 100).await.unwrap().len(), 2);
    assert_eq!(
        all_events(&*repo).await.len(),
        3,
        "user.created and the two created flows' events only"
    );
}
