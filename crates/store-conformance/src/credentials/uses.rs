//! A credential's use: its counter, its status, and the flow version written
//! with it.

use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::flow::{Flow, FlowState, FlowType};
use domain::{AuditEventType, Change, Conflict, Effect, Repository, StoreError};
use time::macros::datetime;

use super::{effects, use_of};
use crate::fixtures::{
    T0, all_events, assert_conflict, at, credential, event, flow, insert, reference, snapshot,
    stored_user, update,
};

pub async fn a_use_records_the_counter_backup_state_and_time(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0);
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();

    let used_at = datetime!(2026-04-01 10:11:12.131415 UTC);
    let used = event(AuditEventType::CredentialUsed, &alice, used_at);
    repo.apply(&Change {
        effects: vec![use_of(&c, 7, used_at)],
        events: vec![used.clone()],
        ..Change::default()
    })
    .await
    .unwrap();
    let after_first = Credential {
        sign_count: 7,
        backup_state: true,
        updated_at: used_at,
        last_used_at: Some(used_at),
        ..c.clone()
    };
    assert_eq!(repo.credential(c.id).await.unwrap(), after_first);
    assert_eq!(all_events(&*repo).await[0], used);

    // Up to the largest counter there is.
    let again = datetime!(2026-04-01 10:11:13.000001 UTC);
    repo.apply(&effects(vec![use_of(&after_first, u32::MAX, again)]))
        .await
        .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            sign_count: u32::MAX,
            backup_state: false,
            updated_at: again,
            last_used_at: Some(again),
            ..c
        }
    );
}

pub async fn a_counter_that_does_not_grow_is_a_conflict_and_writes_nothing(
    repo: Arc<dyn Repository>,
) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();
    let before = snapshot(&*repo, alice.id).await;

    for reported in [5, 4, 0] {
        let result = repo
            .apply(&Change {
                effects: vec![
                    Effect::StoreReference(reference(alice.id, b"reference", at(1))),
                    use_of(&c, reported, at(1)),
                ],
                events: vec![event(AuditEventType::CredentialUsed, &alice, at(1))],
                ..Change::default()
            })
            .await;
        assert_conflict(result, Conflict::CredentialState);
    }
    assert_eq!(snapshot(&*repo, alice.id).await, before);
    assert_eq!(repo.credential(c.id).await.unwrap(), c);
}

pub async fn a_use_kept_despite_its_counter_keeps_the_stored_counter(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        ..credential(alice.id, "BAUG", T0)
    };
    repo.apply(&effects(vec![
        Effect::InsertCredential(c.clone()),
        Effect::InsertCredential(suspended.clone()),
    ]))
    .await
    .unwrap();
    repo.apply(&effects(vec![Effect::UseCredentialKeepingCounter {
        id: c.id,
        backup_state: !c.backup_state,
        at: at(1),
    }]))
    .await
    .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            backup_state: !c.backup_state,
            updated_at: at(1),
            last_used_at: Some(at(1)),
            ..c.clone()
        }
    );
    // Still only an active credential.
    let before = snapshot(&*repo, alice.id).await;
    let result = repo
        .apply(&effects(vec![Effect::UseCredentialKeepingCounter {
            id: suspended.id,
            backup_state: true,
            at: at(2),
        }]))
        .await;
    assert_conflict(result, Conflict::CredentialState);
    assert_eq!(snapshot(&*repo, alice.id).await, before);
}

pub async fn an_authenticator_without_a_counter_may_stay_at_zero(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = Credential {
        sign_count: 0,
        ..credential(alice.id, "AQID", T0)
    };
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();

    repo.apply(&effects(vec![use_of(&c, 0, at(1))]))
        .await
        .unwrap();
    repo.apply(&effects(vec![use_of(&c, 0, at(2))]))
        .await
        .unwrap();
    assert_eq!(
        repo.credential(c.id).await.unwrap(),
        Credential {
            backup_state: true,
            updated_at: at(2),
            last_used_at: Some(at(2)),
            ..c
        }
    );
}

pub async fn a_suspended_or_revoked_credential_cannot_be_used(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        ..credential(alice.id, "AQID", T0)
    };
    let revoked = Credential {
        status: CredentialStatus::Revoked,
        ..credential(alice.id, "BAUG", at(1))
    };
    repo.apply(&effects(vec![
        Effect::InsertCredential(suspended.clone()),
        Effect::InsertCredential(revoked.clone()),
    ]))
    .await
    .unwrap();
    let before = snapshot(&*repo, alice.id).await;

    for c in [&suspended, &revoked] {
        let result = repo
            .apply(&Change {
                effects: vec![use_of(c, 6, at(2))],
                events: vec![event(AuditEventType::CredentialUsed, &alice, at(2))],
                ..Change::default()
            })
            .await;
        assert_conflict(result, Conflict::CredentialState);
    }
    assert_eq!(snapshot(&*repo, alice.id).await, before);

    // Once active again, it may be used.
    let activated_at = at(3);
    repo.apply(&effects(vec![Effect::SetCredentialStatus {
        id: suspended.id,
        from: CredentialStatus::Suspended,
        to: CredentialStatus::Active,
        reason: None,
        at: activated_at,
    }]))
    .await
    .unwrap();
    repo.apply(&effects(vec![use_of(&suspended, 6, at(4))]))
        .await
        .unwrap();
    assert_eq!(repo.credential(suspended.id).await.unwrap().sign_count, 6);
}

/// A flow's next version written with a passkey's use is undone with it
/// when the use is refused (the counter did not grow, the passkey is no
/// longer active).
pub async fn a_refused_use_undoes_the_flow_version_written_with_it(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    let suspended = Credential {
        status: CredentialStatus::Suspended,
        ..credential(alice.id, "BAUG", T0)
    };
    repo.apply(&effects(vec![
        Effect::InsertCredential(c.clone()),
        Effect::InsertCredential(suspended.clone()),
    ]))
    .await
    .unwrap();
    let v1 = flow(alice.id, FlowType::SignIn, T0);
    repo.apply(&insert(&v1)).await.unwrap();
    let v2 = Flow {
        version: 2,
        state: FlowState::Completed,
        possession_done: true,
        updated_at: at(1),
        completed_at: Some(at(1)),
        ..v1.clone()
    };
    let before = snapshot(&*repo, alice.id).await;

    let uses = [
        use_of(&c, 5, at(1)),
        use_of(&suspended, 6, at(1)),
        Effect::UseCredentialKeepingCounter {
            id: suspended.id,
            backup_state: true,
            at: at(1),
        },
    ];
    for refused in uses {
        let result = repo
            .apply(&Change {
                effects: vec![refused],
                events: vec![event(AuditEventType::FlowCompleted, &alice, at(1))],
                ..update(&v2)
            })
            .await;
        assert_conflict(result, Conflict::CredentialState);
        assert_eq!(snapshot(&*repo, alice.id).await, before);
    }

    // Over a stale version, the flow's conflict is the one answered.
    let stale = Flow {
        version: 3,
        ..v2.clone()
    };
    assert_conflict(
        repo.apply(&Change {
            effects: vec![use_of(&c, 6, at(1))],
            ..update(&stale)
        })
        .await,
        Conflict::FlowVersion,
    );
    assert_eq!(snapshot(&*repo, alice.id).await, before);
}

/// Two sign-ins that both report the passkey's next counter: one wins, and
/// the other's flow keeps its version.
pub async fn concurrent_uses_of_one_counter_have_exactly_one_winner(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let c = credential(alice.id, "AQID", T0); // counter at 5
    repo.apply(&effects(vec![Effect::InsertCredential(c.clone())]))
        .await
        .unwrap();
    let mut attempts = Vec::new();
    for i in 0..8 {
        let v1 = flow(alice.id, FlowType::SignIn, at(i));
        repo.apply(&insert(&v1)).await.unwrap();
        let v2 = Flow {
            version: 2,
            state: FlowState::Completed,
            possession_done: true,
            credential_id: Some(c.id),
            updated_at: at(10),
            completed_at: Some(at(10)),
            ..v1.clone()
        };
        let change = Change {
            effects: vec![use_of(&c, 6, at(10))],
            events: vec![event(AuditEventType::FlowCompleted, &alice, at(10))],
            ..update(&v2)
        };
        let repo = repo.clone();
        attempts.push(tokio::spawn(
            async move { (v1, v2, repo.apply(&change).await) },
        ));
    }
    let mut winners = 0;
    for joined in futures::future::join_all(attempts).await {
        let (v1, v2, result) = joined.unwrap();
        let stored = repo.flow(v1.id).await.unwrap();
        match result {
            Ok(()) => {
                winners += 1;
                assert_eq!(stored, v2);
            }
            Err(StoreError::Conflict(Conflict::CredentialState)) => {
                assert_eq!(stored, v1, "a refused use leaves its flow as it was");
            }
            Err(other) => panic!("a losing use must be a credential_state conflict, got {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(repo.credential(c.id).await.unwrap().sign_count, 6);
    let completed = all_events(&*repo)
        .await
        .into_iter()
        .filter(|e| e.event_type == AuditEventType::FlowCompleted)
        .count();
    assert_eq!(completed, 1, "the winner's event only");
}
