//! The per-user limits checked with a flow's insertion: open flows, and IDV
//! runs of the last 24 hours.

use std::sync::Arc;

use domain::flow::{FailureReason, Flow, FlowState, FlowType, IdentityStatus};
use domain::{AuditEventType, Change, Effect, FlowLimits, Limit, Repository, StoreError};
use time::Duration;
use time::macros::datetime;

use crate::fixtures::{
    T0, all_events, assert_limit, assert_not_found, at, event, flow, insert, insert_within,
    reference, snapshot, stored_user,
};

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
