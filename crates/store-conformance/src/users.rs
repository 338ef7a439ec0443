//! What a change writes on a user (the provider-side applicant) and what
//! deleting a user takes along (flows, credentials, biometric reference) or
//! keeps (the audit trail).

use std::sync::Arc;

use domain::credential::Credential;
use domain::flow::{Flow, FlowType};
use domain::{
    Actor, AuditEventType, AuditQuery, Change, Effect, ExternalUserId, NewAuditEvent, Repository,
    User,
};

use crate::fixtures::{
    assert_not_found, at, credential, event, flow, full_flow, insert, reference, stored_user,
};

pub async fn set_applicant_is_visible_on_the_user(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    assert_eq!(repo.user_by_id(alice.id).await.unwrap(), alice);

    let sealed = vec![0x00, 0xff, 0x01, 0x80, 0x00];
    repo.apply(&Change {
        effects: vec![Effect::SetApplicant {
            user_id: alice.id,
            sealed: sealed.clone(),
        }],
        events: vec![event(AuditEventType::FlowIdvStarted, &alice, at(1))],
        ..Change::default()
    })
    .await
    .unwrap();
    let with_applicant = User {
        idv_applicant_sealed: Some(sealed),
        ..alice.clone()
    };
    assert_eq!(repo.user_by_id(alice.id).await.unwrap(), with_applicant);
    assert_eq!(
        repo.user_by_external_id(&alice.external_id).await.unwrap(),
        with_applicant
    );

    // A later applicant replaces the earlier one.
    repo.apply(&Change {
        effects: vec![Effect::SetApplicant {
            user_id: alice.id,
            sealed: vec![9; 64],
        }],
        ..Change::default()
    })
    .await
    .unwrap();
    assert_eq!(
        repo.user_by_id(alice.id)
            .await
            .unwrap()
            .idv_applicant_sealed,
        Some(vec![9; 64])
    );
    assert_eq!(repo.user_by_id(bob.id).await.unwrap(), bob);
}

/// Stores a flow, two credentials, a reference and an applicant for `user`;
/// returns the flows and credentials.
async fn everything_of(
    repo: &dyn Repository,
    user: &User,
    webauthn_ids: [&str; 2],
) -> (Vec<Flow>, Vec<Credential>) {
    let full = full_flow(user.id);
    let bare = flow(user.id, FlowType::SignIn, at(1));
    let credentials = vec![
        credential(user.id, webauthn_ids[0], at(2)),
        credential(user.id, webauthn_ids[1], at(3)),
    ];
    repo.apply(&Change {
        events: vec![event(AuditEventType::FlowCreated, user, full.created_at)],
        ..insert(&full)
    })
    .await
    .unwrap();
    repo.apply(&Change {
        effects: vec![
            Effect::InsertCredential(credentials[0].clone()),
            Effect::InsertCredential(credentials[1].clone()),
            Effect::StoreReference(reference(user.id, b"reference", at(3))),
            Effect::SetApplicant {
                user_id: user.id,
                sealed: vec![1, 2, 3],
            },
        ],
        events: vec![event(AuditEventType::CredentialRegistered, user, at(3))],
        ..insert(&bare)
    })
    .await
    .unwrap();
    (vec![bare, full], credentials)
}

pub async fn delete_user_removes_their_flows_credentials_and_reference(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let bob = stored_user(&*repo, "bob").await;
    let (flows, credentials) = everything_of(&*repo, &alice, ["AQID", "BAUG"]).await;
    let (bobs_flows, bobs_credentials) = everything_of(&*repo, &bob, ["BwgJ", "CgsM"]).await;
    let bobs_reference = repo.reference_of(bob.id).await.unwrap();
    let bob_now = repo.user_by_id(bob.id).await.unwrap();
    let trail = |user: &User| {
        let repo = repo.clone();
        let query = AuditQuery {
            user_id: Some(user.id),
            limit: 100,
            ..AuditQuery::default()
        };
        async move {
            repo.audit_events(&query)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.event)
                .collect::<Vec<_>>()
        }
    };
    let alices_trail = trail(&alice).await;
    assert_eq!(alices_trail.len(), 3);

    let deleted = NewAuditEvent {
        actor: Actor::Operator("operator-7".into()),
        ..event(AuditEventType::UserDeleted, &alice, at(10))
    };
    repo.delete_user(alice.id, &deleted).await.unwrap();

    assert_not_found(repo.user_by_id(alice.id).await);
    for f in &flows {
        assert_not_found(repo.flow(f.id).await);
    }
    let full = &flows[1];
    assert_not_found(
        repo.flow_by_handoff(&full.handoff.as_ref().unwrap().code_sha256)
            .await,
    );
    assert_not_found(repo.flow_by_run(full.idv_run_id.as_deref().unwrap()).await);
    assert_eq!(repo.flows_of(alice.id, 100).await.unwrap(), vec![]);
    for c in &credentials {
        assert_not_found(repo.credential(c.id).await);
        assert_not_found(repo.credential_by_webauthn_id(c.webauthn_id.as_str()).await);
    }
    assert_eq!(repo.credentials_of(alice.id).await.unwrap(), vec![]);
    assert_not_found(repo.reference_of(alice.id).await);

    // The trail is kept, with the deletion on top.
    let mut expected = vec![deleted];
    expected.extend(alices_trail);
    assert_eq!(trail(&alice).await, expected);

    // Bob keeps everything.
    assert_eq!(repo.user_by_id(bob.id).await.unwrap(), bob_now);
    assert_eq!(repo.flows_of(bob.id, 100).await.unwrap(), bobs_flows);
    assert_eq!(repo.credentials_of(bob.id).await.unwrap(), bobs_credentials);
    assert_eq!(repo.reference_of(bob.id).await.unwrap(), bobs_reference);

    // The rows are gone, not hidden: a new user may take the same WebAuthn id,
    // run id and hand-off code.
    let again = User::new(ExternalUserId::parse("alice").unwrap(), at(20));
    repo.create_user(&again, &event(AuditEventType::UserCreated, &again, at(20)))
        .await
        .unwrap();
    let reused = Flow {
        user_id: again.id,
        id: flow(again.id, FlowType::Recovery, at(20)).id,
        ..full.clone()
    };
    repo.apply(&Change {
        effects: vec![Effect::InsertCredential(credential(
            again.id,
            "AQID",
            at(20),
        ))],
        ..insert(&reused)
    })
    .await
    .unwrap();
    assert_eq!(
        repo.flow_by_run(full.idv_run_id.as_deref().unwrap())
            .await
            .unwrap(),
        reused
    );
    assert_eq!(
        repo.credential_by_webauthn_id("AQID")
            .await
            .unwrap()
            .user_id,
        again.id
    );
}

pub async fn users_are_searched_by_prefix_in_identifier_order(repo: Arc<dyn Repository>) {
    for (name, day) in [
        ("alpha_1", 1),
        ("alpha-2", 2),
        ("alphaX", 3),
        ("beta", 4),
        ("ALPHA", 5),
        ("alp", 6),
    ] {
        let user = domain::User::new(
            domain::ExternalUserId::parse(name).unwrap(),
            time::macros::datetime!(2026-01-01 00:00 UTC) + time::Duration::days(day),
        );
        repo.create_user(
            &user,
            &crate::fixtures::event(domain::AuditEventType::UserCreated, &user, user.created_at),
        )
        .await
        .unwrap();
    }
    let names = |page: &domain::Page<domain::User, domain::UserCursor>| {
        page.items
            .iter()
            .map(|u| u.external_id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let query = |prefix: &str, after: Option<domain::UserCursor>, limit| domain::UserQuery {
        prefix: Some(prefix.to_owned()),
        after,
        limit,
        ..domain::UserQuery::default()
    };
    let first = repo.search_users(&query("alpha", None, 2)).await.unwrap();
    assert_eq!(
        names(&first),
        ["alpha-2", "alphaX"],
        "byte order, case-sensitive"
    );
    assert_eq!(
        first.next,
        Some(domain::UserCursor::ExternalId("alphaX".into()))
    );
    let second = repo
        .search_users(&query("alpha", first.next.clone(), 2))
        .await
        .unwrap();
    assert_eq!(
        (names(&second), second.next),
        (vec!["alpha_1".to_owned()], None)
    );
    // `_` is a character of identifiers, not a wildcard.
    let underscore = repo.search_users(&query("alpha_", None, 10)).await.unwrap();
    assert_eq!(names(&underscore), ["alpha_1"]);
    let dated = repo
        .search_users(&domain::UserQuery {
            created_from: Some(time::macros::datetime!(2026-01-03 00:00 UTC)),
            created_before: Some(time::macros::datetime!(2026-01-06 00:00 UTC)),
            limit: 10,
            ..domain::UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        names(&dated),
        ["alpha-2", "alphaX", "beta"],
        "from inclusive, before exclusive"
    );
    // Searches by date alone run in creation order, page by page.
    let by_date = |after| domain::UserQuery {
        created_from: Some(time::macros::datetime!(2026-01-01 00:00 UTC)),
        after,
        limit: 4,
        ..domain::UserQuery::default()
    };
    let page = repo.search_users(&by_date(None)).await.unwrap();
    assert_eq!(names(&page), ["alpha_1", "alpha-2", "alphaX", "beta"]);
    let rest = repo
        .search_users(&by_date(page.next.clone()))
        .await
        .unwrap();
    assert_eq!(
        (names(&rest), rest.next),
        (vec!["ALPHA".to_owned(), "alp".to_owned()], None)
    );
}

pub async fn deleting_a_user_queues_their_provider_cleanup(repo: Arc<dyn Repository>) {
    let user = domain::User {
        idv_applicant_sealed: Some(vec![1, 2, 3]),
        ..domain::User::new(
            domain::ExternalUserId::parse("leaving").unwrap(),
            time::macros::datetime!(2026-02-01 00:00 UTC),
        )
    };
    repo.create_user(
        &user,
        &crate::fixtures::event(domain::AuditEventType::UserCreated, &user, user.created_at),
    )
    .await
    .unwrap();
    let at = time::macros::datetime!(2026-03-01 12:00 UTC);
    let deleted = crate::fixtures::event(domain::AuditEventType::UserDeleted, &user, at);
    repo.delete_user(user.id, &deleted).await.unwrap();
    let queued = repo.pending_provider_cleanups(10).await.unwrap();
    assert_eq!(
        queued,
        vec![domain::store::ProviderCleanup {
            user_id: user.id,
            customer_user_id: user.pseudonym.clone(),
            applicant_sealed: Some(vec![1, 2, 3]),
            requested_at: at,
            attempts: 0,
            last_attempt_at: None,
            next_attempt_at: None,
            dead_at: None,
        }]
    );
    assert_eq!(repo.due_provider_cleanups(at, 10).await.unwrap(), queued);
    let counts = |pending, retrying, dead| domain::store::ProviderCleanupCounts {
        pending,
        retrying,
        dead,
    };
    assert_eq!(
        repo.provider_cleanup_counts().await.unwrap(),
        counts(1, 0, 0)
    );
    let retry = at + time::Duration::minutes(1);
    repo.fail_provider_cleanup(user.id, at, Some(retry))
        .await
        .unwrap();
    assert_eq!(
        repo.provider_cleanup_counts().await.unwrap(),
        counts(1, 1, 0)
    );
    assert!(
        repo.due_provider_cleanups(at, 10).await.unwrap().is_empty(),
        "not due before its retry"
    );
    let due = repo.due_provider_cleanups(retry, 10).await.unwrap();
    assert_eq!(
        (
            due[0].attempts,
            due[0].last_attempt_at,
            due[0].next_attempt_at
        ),
        (1, Some(at), Some(retry))
    );
    repo.fail_provider_cleanup(user.id, retry, None)
        .await
        .unwrap();
    let dead = &repo.pending_provider_cleanups(10).await.unwrap()[0];
    assert_eq!((dead.attempts, dead.dead_at), (2, Some(retry)));
    assert_eq!(
        repo.provider_cleanup_counts().await.unwrap(),
        counts(0, 0, 1)
    );
    assert!(
        repo.due_provider_cleanups(retry + time::Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "a dead clean-up is never due"
    );
    repo.finish_provider_cleanup(user.id).await.unwrap();
    assert!(repo.pending_provider_cleanups(10).await.unwrap().is_empty());
    assert_eq!(
        repo.provider_cleanup_counts().await.unwrap(),
        counts(0, 0, 0)
    );
}

pub async fn users_are_found_by_credential_status(repo: Arc<dyn Repository>) {
    let with = crate::fixtures::stored_user(&*repo, "with-suspended").await;
    let without = crate::fixtures::stored_user(&*repo, "all-active").await;
    let mut suspended = crate::fixtures::credential(with.id, "d2l0aA", crate::fixtures::T0);
    suspended.status = domain::credential::CredentialStatus::Suspended;
    let active = crate::fixtures::credential(without.id, "YWN0aXZl", crate::fixtures::T0);
    repo.apply(&domain::Change {
        effects: vec![
            domain::Effect::InsertCredential(suspended),
            domain::Effect::InsertCredential(active),
        ],
        ..domain::Change::default()
    })
    .await
    .unwrap();
    let find = |status| domain::UserQuery {
        credential_status: Some(status),
        limit: 10,
        ..domain::UserQuery::default()
    };
    let names = |page: domain::Page<domain::User, domain::UserCursor>| {
        page.items
            .into_iter()
            .map(|u| u.external_id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    use domain::credential::CredentialStatus::*;
    assert_eq!(
        names(repo.search_users(&find(Suspended)).await.unwrap()),
        ["with-suspended"]
    );
    assert_eq!(
        names(repo.search_users(&find(Active)).await.unwrap()),
        ["all-active"]
    );
    assert!(names(repo.search_users(&find(Revoked)).await.unwrap()).is_empty());
}
