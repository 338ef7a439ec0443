//! `Idempotency-Key` records (claim, replay, retake, release) and the
//! de-duplication of provider events.

use std::sync::Arc;

use domain::flow::{Flow, FlowState, FlowType, IdentityStatus};
use domain::store::{IdempotencyBegin, StoredResponse};
use domain::{
    Actor, AuditEventType, Change, Conflict, Effect, NewAuditEvent, Purge, Repository, Subject,
};
use time::{Duration, OffsetDateTime};

use crate::fixtures::{
    T0, all_events, assert_conflict, at, event, flow, insert, snapshot, stored_user, update,
};

const FLOWS: &str = "core:POST /v1/flows";
const USERS: &str = "core:DELETE /v1/users";

fn sha(n: u8) -> [u8; 32] {
    [n; 32]
}

fn response(status: u16, body: &[u8]) -> StoredResponse {
    StoredResponse {
        status,
        body_sealed: body.to_vec(),
    }
}

/// The lock a claim taken at `now` holds: 30 seconds.
fn lock(now: OffsetDateTime) -> OffsetDateTime {
    now + Duration::seconds(30)
}

async fn begin(
    repo: &dyn Repository,
    scope: &str,
    key: &str,
    request: u8,
    now: OffsetDateTime,
) -> IdempotencyBegin {
    repo.idempotency_begin(scope, key, &sha(request), now, lock(now))
        .await
        .unwrap()
}

pub async fn a_new_key_proceeds_and_a_repeat_in_flight_is_in_progress(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, T0).await,
        IdempotencyBegin::Proceed
    );
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, at(1)).await,
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        begin(repo, FLOWS, "k1", 2, at(2)).await,
        IdempotencyBegin::Mismatch
    );
    // Another key is another request.
    assert_eq!(
        begin(repo, FLOWS, "k2", 1, at(2)).await,
        IdempotencyBegin::Proceed
    );
}

pub async fn a_finished_request_replays_its_exact_response(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, T0).await,
        IdempotencyBegin::Proceed
    );
    let stored = response(201, &[0x00, 0xff, b'{', 0x80, b'}', 0x00]);
    repo.idempotency_finish(FLOWS, "k1", &stored, T0 + Duration::hours(24), None)
        .await
        .unwrap();

    assert_eq!(
        begin(repo, FLOWS, "k1", 1, at(1)).await,
        IdempotencyBegin::Replay(stored.clone())
    );
    // Past the claim's lock a finished record still replays, until it expires.
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, T0 + Duration::hours(23)).await,
        IdempotencyBegin::Replay(stored)
    );
    assert_eq!(
        begin(repo, FLOWS, "k1", 2, T0 + Duration::hours(23)).await,
        IdempotencyBegin::Mismatch
    );
}

pub async fn an_unfinished_claim_is_retaken_once_its_lock_has_passed(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, T0).await,
        IdempotencyBegin::Proceed
    );
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, lock(T0) - Duration::microseconds(1)).await,
        IdempotencyBegin::InProgress
    );
    // The first attempt is presumed dead; the retry takes over.
    let retry = lock(T0) + Duration::seconds(1);
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, retry).await,
        IdempotencyBegin::Proceed
    );
    // The retaken claim holds a new lock.
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, retry + Duration::seconds(1)).await,
        IdempotencyBegin::InProgress
    );
    let stored = response(200, b"retried");
    repo.idempotency_finish(FLOWS, "k1", &stored, retry + Duration::hours(1), None)
        .await
        .unwrap();
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, retry + Duration::seconds(2)).await,
        IdempotencyBegin::Replay(stored)
    );
}

pub async fn an_expired_response_is_forgotten(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    let expires = T0 + Duration::hours(1);
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, T0).await,
        IdempotencyBegin::Proceed
    );
    let first = response(201, b"first");
    repo.idempotency_finish(FLOWS, "k1", &first, expires, None)
        .await
        .unwrap();
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, expires - Duration::seconds(1)).await,
        IdempotencyBegin::Replay(first)
    );

    // Past its expiry the key is free, even for another request.
    let later = expires + Duration::seconds(1);
    assert_eq!(
        begin(repo, FLOWS, "k1", 2, later).await,
        IdempotencyBegin::Proceed
    );
    assert_eq!(
        begin(repo, FLOWS, "k1", 2, later + Duration::seconds(1)).await,
        IdempotencyBegin::InProgress
    );
    let second = response(409, b"second");
    repo.idempotency_finish(FLOWS, "k1", &second, later + Duration::hours(1), None)
        .await
        .unwrap();
    assert_eq!(
        begin(repo, FLOWS, "k1", 2, later + Duration::seconds(2)).await,
        IdempotencyBegin::Replay(second)
    );
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, later + Duration::seconds(2)).await,
        IdempotencyBegin::Mismatch
    );
}

pub async fn abandon_releases_an_unfinished_claim_only(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, T0).await,
        IdempotencyBegin::Proceed
    );
    repo.idempotency_abandon(FLOWS, "k1").await.unwrap();
    // Released well before its lock would have passed.
    assert_eq!(
        begin(repo, FLOWS, "k1", 2, at(1)).await,
        IdempotencyBegin::Proceed
    );

    let stored = response(202, b"done");
    repo.idempotency_finish(FLOWS, "k1", &stored, T0 + Duration::hours(24), None)
        .await
        .unwrap();
    repo.idempotency_abandon(FLOWS, "k1").await.unwrap();
    assert_eq!(
        begin(repo, FLOWS, "k1", 2, at(2)).await,
        IdempotencyBegin::Replay(stored)
    );

    // Releasing a key never claimed is harmless.
    repo.idempotency_abandon(FLOWS, "never-claimed")
        .await
        .unwrap();
}

pub async fn idempotency_keys_are_separate_per_scope(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, T0).await,
        IdempotencyBegin::Proceed
    );
    // The same key in another scope, with another body, is another request.
    assert_eq!(
        begin(repo, USERS, "k1", 2, T0).await,
        IdempotencyBegin::Proceed
    );

    let flows_response = response(201, b"flow");
    repo.idempotency_finish(FLOWS, "k1", &flows_response, T0 + Duration::hours(1), None)
        .await
        .unwrap();
    assert_eq!(
        begin(repo, USERS, "k1", 2, at(1)).await,
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, at(1)).await,
        IdempotencyBegin::Replay(flows_response.clone())
    );

    repo.idempotency_abandon(USERS, "k1").await.unwrap();
    assert_eq!(
        begin(repo, FLOWS, "k1", 1, at(2)).await,
        IdempotencyBegin::Replay(flows_response)
    );
    assert_eq!(
        begin(repo, USERS, "k1", 2, at(2)).await,
        IdempotencyBegin::Proceed
    );
}

pub async fn concurrent_claims_of_one_key_have_exactly_one_winner(repo: Arc<dyn Repository>) {
    let race = |now: OffsetDateTime| {
        let attempts = (0..8).map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.idempotency_begin(FLOWS, "k1", &sha(1), now, lock(now))
                    .await
                    .unwrap()
            })
        });
        futures::future::join_all(attempts)
    };
    let count = |results: &[IdempotencyBegin], what: IdempotencyBegin| {
        results.iter().filter(|r| **r == what).count()
    };

    let first: Vec<_> = race(T0).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(count(&first, IdempotencyBegin::Proceed), 1, "{first:?}");
    assert_eq!(count(&first, IdempotencyBegin::InProgress), 7, "{first:?}");

    // Once the lock has passed, exactly one of the retries retakes it.
    let retakes: Vec<_> = race(lock(T0) + Duration::seconds(1))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(count(&retakes, IdempotencyBegin::Proceed), 1, "{retakes:?}");
    assert_eq!(
        count(&retakes, IdempotencyBegin::InProgress),
        7,
        "{retakes:?}"
    );
}

fn provider_event(at: OffsetDateTime) -> NewAuditEvent {
    NewAuditEvent::new(
        AuditEventType::ProviderEventReceived,
        Actor::Provider,
        Subject::default(),
        at,
    )
}

fn record(dedupe_key: &str, run_id: &str, at: OffsetDateTime) -> Effect {
    Effect::RecordProviderEvent {
        dedupe_key: dedupe_key.into(),
        run_id: run_id.into(),
        at,
    }
}

pub async fn a_provider_event_is_recorded_once(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let v1 = Flow {
        state: FlowState::AwaitingVerification,
        idv_run_id: Some("run-1".into()),
        ..flow(alice.id, FlowType::Registration, T0)
    };
    repo.apply(&insert(&v1)).await.unwrap();
    let received = provider_event(at(1));
    repo.apply(&Change {
        effects: vec![record("evt-1", "run-1", at(1))],
        events: vec![received.clone()],
        ..Change::default()
    })
    .await
    .unwrap();
    assert_eq!(all_events(&*repo).await[0], received);
    let before = snapshot(&*repo, alice.id).await;

    // A redelivery, with the flow transition it would cause.
    let v2 = Flow {
        version: 2,
        state: FlowState::Verified,
        identity: IdentityStatus::Verified,
        updated_at: at(2),
        ..v1.clone()
    };
    let redelivered = Change {
        effects: vec![
            Effect::SetApplicant {
                user_id: alice.id,
                sealed: vec![1, 2],
            },
            record("evt-1", "run-1", at(2)),
        ],
        events: vec![
            provider_event(at(2)),
            event(AuditEventType::FlowVerified, &alice, at(2)),
        ],
        ..update(&v2)
    };
    assert_conflict(repo.apply(&redelivered).await, Conflict::ProviderEvent);
    // The key alone identifies the event, whatever run it names.
    assert_conflict(
        repo.apply(&Change {
            effects: vec![record("evt-1", "run-2", at(3))],
            events: vec![provider_event(at(3))],
            ..Change::default()
        })
        .await,
        Conflict::ProviderEvent,
    );
    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_eq!(repo.flow(v1.id).await.unwrap(), v1);

    // Another key is another event.
    let next = provider_event(at(4));
    repo.apply(&Change {
        effects: vec![record("evt-2", "run-1", at(4))],
        events: vec![next.clone()],
        ..update(&v2)
    })
    .await
    .unwrap();
    assert_eq!(repo.flow(v1.id).await.unwrap(), v2);
    assert_eq!(all_events(&*repo).await[0], next);
}

async fn finish(
    repo: &dyn Repository,
    key: &str,
    expires_at: OffsetDateTime,
    user: Option<domain::UserId>,
) {
    repo.idempotency_finish(FLOWS, key, &response(201, key.as_bytes()), expires_at, user)
        .await
        .unwrap();
}

pub async fn records_past_their_window_are_purged_in_batches(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    for key in ["k1", "k2", "k3", "k4", "live", "unfinished"] {
        assert_eq!(
            begin(repo, FLOWS, key, 1, T0).await,
            IdempotencyBegin::Proceed
        );
    }
    for key in ["k1", "k2", "k3", "k4"] {
        finish(repo, key, T0 + Duration::hours(24), None).await;
    }
    finish(repo, "live", T0 + Duration::hours(48), None).await;
    // A day later: four finished records and the abandoned claim are past.
    let before = T0 + Duration::hours(24);
    let purge = Purge::IdempotencyRecords { before };
    assert_eq!(repo.purge(purge, 2).await.unwrap(), Some(2));
    assert_eq!(repo.purge(purge, 2).await.unwrap(), Some(2));
    assert_eq!(repo.purge(purge, 2).await.unwrap(), Some(1));
    assert_eq!(repo.purge(purge, 2).await.unwrap(), Some(0));
    // The live record still replays; the purged ones are new requests again.
    assert!(matches!(
        begin(repo, FLOWS, "live", 1, before).await,
        IdempotencyBegin::Replay(_)
    ));
    for key in ["k1", "k4", "unfinished"] {
        assert_eq!(
            begin(repo, FLOWS, key, 2, before).await,
            IdempotencyBegin::Proceed
        );
    }
}

pub async fn deleting_a_user_deletes_the_records_about_them(repo: Arc<dyn Repository>) {
    let repo = &*repo;
    let leaving = stored_user(repo, "leaving").await;
    let staying = stored_user(repo, "staying").await;
    for key in ["mine1", "mine2", "theirs", "nobodys"] {
        assert_eq!(
            begin(repo, FLOWS, key, 1, T0).await,
            IdempotencyBegin::Proceed
        );
    }
    let expires = T0 + Duration::hours(24);
    finish(repo, "mine1", expires, Some(leaving.id)).await;
    finish(repo, "mine2", expires, Some(leaving.id)).await;
    finish(repo, "theirs", expires, Some(staying.id)).await;
    finish(repo, "nobodys", expires, None).await;

    let deleted = event(AuditEventType::UserDeleted, &leaving, at(5));
    repo.delete_user(leaving.id, &deleted).await.unwrap();

    for key in ["mine1", "mine2"] {
        assert_eq!(
            begin(repo, FLOWS, key, 1, at(6)).await,
            IdempotencyBegin::Proceed,
            "{key} went with the user"
        );
    }
    for key in ["theirs", "nobodys"] {
        assert!(matches!(
            begin(repo, FLOWS, key, 1, at(6)).await,
            IdempotencyBegin::Replay(_)
        ));
    }

    // A request about the user that finishes after their deletion stores
    // nothing; its claim lapses with its lock.
    assert_eq!(
        begin(repo, FLOWS, "late", 1, at(7)).await,
        IdempotencyBegin::Proceed
    );
    finish(repo, "late", expires, Some(leaving.id)).await;
    assert_eq!(
        begin(repo, FLOWS, "late", 1, at(8)).await,
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        begin(repo, FLOWS, "late", 1, at(40)).await,
        IdempotencyBegin::Proceed,
        "nothing to replay once the lock has passed"
    );
}

/// A redelivered provider event undoes the flow version written with it,
/// and its events.
pub async fn a_provider_event_seen_before_undoes_the_flow_version_written_with_it(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let v1 = Flow {
        state: FlowState::AwaitingVerification,
        idv_run_id: Some("run-1".into()),
        ..flow(alice.id, FlowType::StepUp, T0)
    };
    repo.apply(&insert(&v1)).await.unwrap();
    repo.apply(&Change {
        effects: vec![record("evt-1", "run-1", at(1))],
        events: vec![provider_event(at(1))],
        ..Change::default()
    })
    .await
    .unwrap();
    let before = snapshot(&*repo, alice.id).await;

    let v2 = Flow {
        version: 2,
        state: FlowState::Completed,
        identity: IdentityStatus::Verified,
        updated_at: at(2),
        completed_at: Some(at(2)),
        ..v1.clone()
    };
    let redelivered = Change {
        effects: vec![record("evt-1", "run-1", at(2))],
        events: vec![
            provider_event(at(2)),
            event(AuditEventType::FlowCompleted, &alice, at(2)),
        ],
        ..update(&v2)
    };
    assert_conflict(repo.apply(&redelivered).await, Conflict::ProviderEvent);
    assert_eq!(snapshot(&*repo, alice.id).await, before);

    // A new event moves the flow.
    let fresh = Change {
        effects: vec![record("evt-2", "run-1", at(2))],
        ..redelivered
    };
    repo.apply(&fresh).await.unwrap();
    assert_eq!(repo.flow(v1.id).await.unwrap(), v2);
    assert!(repo.provider_event_seen("evt-2").await.unwrap());
}
