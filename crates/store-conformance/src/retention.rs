//! Rows removed past their retention (`domain::retention`): each kind in
//! batches, and only what is past.

use std::sync::Arc;

use domain::flow::{Ceremony, Flow, FlowState, FlowType};
use domain::{Change, Effect, Purge, Repository, StoreError};
use time::Duration;

use crate::fixtures::{T0, at, flow, insert, stored_user};

fn with_secrets(flow: Flow) -> Flow {
    Flow {
        state: FlowState::AwaitingVerification,
        idv_run_id: Some(format!("run-{}", flow.id.0)),
        sdk_token_sealed: Some(vec![7; 40]),
        ceremony: Some(Ceremony {
            state_sealed: vec![8; 40],
            expires_at: flow.expires_at,
        }),
        ..flow
    }
}

pub async fn provider_events_past_their_retention_are_purged(repo: Arc<dyn Repository>) {
    for (key, seconds) in [("old-1", 1), ("old-2", 2), ("new", 100)] {
        repo.apply(&Change {
            effects: vec![Effect::RecordProviderEvent {
                dedupe_key: key.into(),
                run_id: "run-1".into(),
                at: at(seconds),
            }],
            ..Change::default()
        })
        .await
        .unwrap();
    }
    let purge = Purge::ProviderEvents { before: at(50) };
    assert_eq!(repo.purge(purge, 1).await.unwrap(), Some(1));
    assert_eq!(repo.purge(purge, 1).await.unwrap(), Some(1));
    assert_eq!(repo.purge(purge, 1).await.unwrap(), Some(0));
    assert!(!repo.provider_event_seen("old-1").await.unwrap());
    assert!(!repo.provider_event_seen("old-2").await.unwrap());
    assert!(repo.provider_event_seen("new").await.unwrap());
}

pub async fn expired_flows_lose_their_sdk_token_and_ceremony(repo: Arc<dyn Repository>) {
    let user = stored_user(&*repo, "erin").await;
    let expired = with_secrets(flow(user.id, FlowType::StepUp, T0));
    let open = with_secrets(flow(user.id, FlowType::StepUp, at(600)));
    repo.apply(&insert(&expired)).await.unwrap();
    repo.apply(&insert(&open)).await.unwrap();

    // 20 minutes in: the first flow (15 minutes) has expired, the second not.
    let now = at(20 * 60);
    let purge = Purge::ExpiredFlowSecrets { now };
    assert_eq!(repo.purge(purge, 10).await.unwrap(), Some(1));
    assert_eq!(repo.purge(purge, 10).await.unwrap(), Some(0));
    assert_eq!(
        repo.flow(expired.id).await.unwrap(),
        Flow {
            sdk_token_sealed: None,
            ceremony: None,
            ..expired
        },
        "nothing else of the flow changes"
    );
    assert_eq!(repo.flow(open.id).await.unwrap(), open);
}

pub async fn flows_past_their_retention_are_removed_with_what_they_staged(
    repo: Arc<dyn Repository>,
) {
    let user = stored_user(&*repo, "frank").await;
    let old = Flow {
        state: FlowState::Completed,
        ..flow(user.id, FlowType::Registration, T0)
    };
    let unfinished = flow(user.id, FlowType::Registration, at(1));
    let recent = flow(user.id, FlowType::Registration, T0 + Duration::days(2));
    for f in [&old, &unfinished, &recent] {
        repo.apply(&insert(f)).await.unwrap();
    }
    repo.apply(&Change {
        effects: vec![Effect::StageReference {
            flow_id: unfinished.id,
            sealed: vec![1, 2, 3],
            at: at(2),
        }],
        ..Change::default()
    })
    .await
    .unwrap();

    let purge = Purge::EndedFlows {
        before: T0 + Duration::days(1),
    };
    assert_eq!(repo.purge(purge, 1).await.unwrap(), Some(1));
    assert_eq!(repo.purge(purge, 1).await.unwrap(), Some(1));
    assert_eq!(repo.purge(purge, 1).await.unwrap(), Some(0));
    for gone in [&old, &unfinished] {
        assert!(matches!(
            repo.flow(gone.id).await,
            Err(StoreError::NotFound)
        ));
    }
    assert!(matches!(
        repo.staged_reference_of(unfinished.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(repo.flow(recent.id).await.unwrap(), recent);
}
