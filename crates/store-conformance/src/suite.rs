//! The behaviours every store must show. Each function takes a fresh, migrated
//! repository and panics on a deviation.

use std::sync::Arc;

use domain::{
    Actor, AuditEventType, AuditQuery, Conflict, ExternalUserId, NewAuditEvent, Outcome,
    Repository, StoreError, Subject, User,
};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-03-31 23:59:59.123456 UTC);

fn user(external: &str) -> User {
    User::new(ExternalUserId::parse(external).unwrap(), T0)
}

fn created(user: &User) -> NewAuditEvent {
    NewAuditEvent::new(
        AuditEventType::UserCreated,
        Actor::Integration(None),
        Subject::of_user(user),
        user.created_at,
    )
}

async fn all_events(repo: &dyn Repository) -> Vec<NewAuditEvent> {
    let page = repo
        .audit_events(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    page.items.into_iter().map(|e| e.event).collect()
}

pub async fn ping_answers(repo: Arc<dyn Repository>) {
    repo.ping().await.unwrap();
}

pub async fn user_round_trips(repo: Arc<dyn Repository>) {
    let alice = user("alice");
    let event = created(&alice);
    repo.create_user(&alice, &event).await.unwrap();

    let read = repo.user_by_external_id(&alice.external_id).await.unwrap();
    assert_eq!(read, alice);
    assert_eq!(all_events(&*repo).await, vec![event]);
}

pub async fn duplicate_external_id_is_a_conflict_and_writes_nothing(repo: Arc<dyn Repository>) {
    let first = user("bob");
    repo.create_user(&first, &created(&first)).await.unwrap();

    let second = user("bob");
    let err = repo
        .create_user(&second, &created(&second))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::ExternalIdTaken)),
        "{err:?}"
    );

    assert_eq!(
        repo.user_by_external_id(&first.external_id).await.unwrap(),
        first
    );
    assert_eq!(
        all_events(&*repo).await.len(),
        1,
        "the losing insert wrote no event"
    );
}

pub async fn unknown_user_is_not_found(repo: Arc<dyn Repository>) {
    let err = repo
        .user_by_external_id(&ExternalUserId::parse("nobody").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

pub async fn a_failed_audit_insert_rolls_back_the_change(repo: Arc<dyn Repository>) {
    let carol = user("carol");
    // Details must be a JSON object; the store refuses anything else.
    let bad_event = NewAuditEvent {
        details: json!(["not", "an", "object"]),
        ..created(&carol)
    };
    assert!(repo.create_user(&carol, &bad_event).await.is_err());

    let err = repo
        .user_by_external_id(&carol.external_id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound),
        "the user insert was rolled back: {err:?}"
    );
    assert!(all_events(&*repo).await.is_empty());
}

pub async fn delete_user_removes_the_user_and_records_the_event(repo: Arc<dyn Repository>) {
    let dave = user("dave");
    repo.create_user(&dave, &created(&dave)).await.unwrap();

    let deleted = NewAuditEvent {
        actor: Actor::Operator("operator-7".into()),
        ..NewAuditEvent::new(
            AuditEventType::UserDeleted,
            Actor::System,
            Subject {
                user_id: Some(dave.id),
                user_pseudonym: Some(dave.pseudonym.clone()),
                ..Subject::default()
            },
            T0 + time::Duration::minutes(5),
        )
    };
    repo.delete_user(dave.id, &deleted).await.unwrap();
    assert!(matches!(
        repo.user_by_external_id(&dave.external_id).await,
        Err(StoreError::NotFound)
    ));

    // Deleting again finds nothing and writes nothing.
    let again = NewAuditEvent::new(
        AuditEventType::UserDeleted,
        Actor::System,
        Subject::default(),
        T0,
    );
    assert!(matches!(
        repo.delete_user(dave.id, &again).await,
        Err(StoreError::NotFound)
    ));

    let events = all_events(&*repo).await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0], deleted,
        "newest first; the trail keeps the pseudonym"
    );
}

pub async fn concurrent_creations_of_one_user_have_exactly_one_winner(repo: Arc<dyn Repository>) {
    let attempts = (0..8).map(|_| {
        let repo = repo.clone();
        tokio::spawn(async move {
            let erin = user("erin");
            repo.create_user(&erin, &created(&erin)).await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let mut wins = 0;
    for result in results {
        match result.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict(Conflict::ExternalIdTaken)) => {}
            Err(other) => panic!("a losing creation must be a conflict, got {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(all_events(&*repo).await.len(), 1);
}

pub async fn audit_events_round_trip_every_field(repo: Arc<dyn Repository>) {
    let frank = user("frank");
    let event = NewAuditEvent {
        outcome: Outcome::Rejected,
        reason: Some("credential_suspended".into()),
        correlation_id: Some("req-123".into()),
        details: json!({"nested": {"n": 1, "s": "x"}, "list": [1, 2]}),
        ..NewAuditEvent::new(
            AuditEventType::UserDeleted,
            Actor::Operator("auth0|abc".into()),
            Subject {
                user_id: Some(frank.id),
                user_pseudonym: Some(frank.pseudonym.clone()),
                credential_id: Some(Uuid::new_v4()),
                flow_id: Some(Uuid::new_v4()),
            },
            datetime!(2026-12-31 23:59:59.999999 UTC),
        )
    };
    repo.append_audit(&event).await.unwrap();
    let minimal = NewAuditEvent::new(
        AuditEventType::UserCreated,
        Actor::Provider,
        Subject::default(),
        T0,
    );
    repo.append_audit(&minimal).await.unwrap();

    assert_eq!(all_events(&*repo).await, vec![minimal, event]);
}

/// A change's events take consecutive positions in the order given, every
/// field intact, whichever months they fall in.
pub async fn a_changes_events_keep_their_order_and_every_field(repo: Arc<dyn Repository>) {
    let grace = user("grace");
    let full = NewAuditEvent {
        outcome: Outcome::Failure,
        reason: Some("recovery".into()),
        correlation_id: Some("req-456".into()),
        details: json!({"type": "recovery", "n": [1, {"k": null}]}),
        ..NewAuditEvent::new(
            AuditEventType::CredentialRevoked,
            Actor::Operator("okta|ops-1".into()),
            Subject {
                user_id: Some(grace.id),
                user_pseudonym: Some(grace.pseudonym.clone()),
                credential_id: Some(Uuid::new_v4()),
                flow_id: Some(Uuid::new_v4()),
            },
            T0,
        )
    };
    let minimal = NewAuditEvent::new(
        AuditEventType::FlowCompleted,
        Actor::System,
        Subject::default(),
        // The next month: another partition on PostgreSQL.
        T0 + time::Duration::seconds(1),
    );
    let third = NewAuditEvent::new(
        AuditEventType::FlowCreated,
        Actor::Integration(Some("key-0123456789abcdef".into())),
        Subject {
            user_id: Some(grace.id),
            ..Subject::default()
        },
        T0,
    );
    let written = vec![full, minimal, third];
    repo.apply(&domain::Change {
        events: written.clone(),
        ..domain::Change::default()
    })
    .await
    .unwrap();

    let page = repo
        .audit_events(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let mut read = page.items;
    read.reverse();
    assert_eq!(
        read.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        written
    );
    let positions: Vec<i64> = read.iter().map(|e| e.seq).collect();
    assert!(
        positions.windows(2).all(|w| w[1] == w[0] + 1),
        "{positions:?}"
    );
}

pub async fn audit_search_is_newest_first_and_paginates(repo: Arc<dyn Repository>) {
    let mut written = Vec::new();
    for i in 0..5 {
        let e = NewAuditEvent::new(
            AuditEventType::UserCreated,
            Actor::System,
            Subject::default(),
            T0 + time::Duration::seconds(i),
        );
        repo.append_audit(&e).await.unwrap();
        written.push(e.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = repo
            .audit_events(&AuditQuery {
                before_seq: cursor,
                limit: 2,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|e| e.event.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    written.reverse();
    assert_eq!(seen, written, "every event once, newest first");
    assert_eq!(pages, 3);
}

pub async fn audit_search_filters_by_user_type_and_time(repo: Arc<dyn Repository>) {
    let grace = user("grace");
    let heidi = user("heidi");
    let at = |minutes: i64| T0 + time::Duration::minutes(minutes);
    let event = |t: AuditEventType, u: &User, minutes| {
        NewAuditEvent::new(
            t,
            Actor::Integration(None),
            Subject {
                user_id: Some(u.id),
                ..Subject::default()
            },
            at(minutes),
        )
    };
    let g1 = event(AuditEventType::UserCreated, &grace, 0);
    let h1 = event(AuditEventType::UserCreated, &heidi, 1);
    let g2 = event(AuditEventType::UserDeleted, &grace, 2);
    for e in [&g1, &h1, &g2] {
        repo.append_audit(e).await.unwrap();
    }
    let ids = |q: AuditQuery| {
        let repo = repo.clone();
        async move {
            repo.audit_events(&q)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.event.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(AuditQuery {
            user_id: Some(grace.id),
            ..AuditQuery::default()
        })
        .await,
        vec![g2.id, g1.id]
    );
    assert_eq!(
        ids(AuditQuery {
            event_type: Some(AuditEventType::UserCreated),
            ..AuditQuery::default()
        })
        .await,
        vec![h1.id, g1.id]
    );
    // `from` is inclusive, `before` exclusive.
    assert_eq!(
        ids(AuditQuery {
            occurred_from: Some(at(1)),
            occurred_before: Some(at(2)),
            ..AuditQuery::default()
        })
        .await,
        vec![h1.id]
    );
}
