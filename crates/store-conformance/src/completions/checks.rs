//! What a completion re-checks in its own transaction, the provider-side
//! applicant remembered once, and the standing a flow's creation reads.

use std::sync::Arc;

use domain::credential::{Credential, CredentialStatus};
use domain::flow::{Flow, FlowType};
use domain::{AuditEventType, Change, Conflict, Effect, Repository, User};
use uuid::Uuid;

use super::{completed, effects};
use crate::fixtures::{
    T0, all_events, assert_conflict, at, credential, event, flow, insert, reference, snapshot,
    stored_user, update,
};

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
