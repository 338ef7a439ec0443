//! Flows read back as written, by id and in the listings the domain relies on.

use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::flow::{FailureReason, Flow, FlowId, FlowState, FlowType, IdentityStatus};
use domain::{AuditEventType, Change, Effect, ExternalUserId, FlowQuery, Repository};
use time::Duration;
use time::macros::datetime;
use uuid::Uuid;

use crate::fixtures::{
    T0, all_events, assert_not_found, at, credential, event, flow, full_flow, insert, reference,
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

pub async fn a_flow_for_a_missing_user_is_not_found(repo: Arc<dyn Repository>) {
    let ghost = domain::UserId(Uuid::new_v4());
    let orphan = flow(ghost, FlowType::SignIn, T0);
    assert_not_found(repo.apply(&insert(&orphan)).await);
    assert_not_found(repo.flow(orphan.id).await);
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
