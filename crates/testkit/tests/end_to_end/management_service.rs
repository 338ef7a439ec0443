//! The management runtime's domain service, with no HTTP: built over the
//! SQLite store with a manual clock, beside the Core API's flow service on
//! the same store and the synthetic provider.

use std::sync::Arc;

use domain::audit::AuditEventType;
use domain::flow::{FlowState, FlowType};
use domain::management::{FlowFilter, ManagementService};
use domain::service::{CreateFlow, FlowPolicy, FlowService, RequestContext};
use domain::{Actor, Clock, ExternalUserId, ManualClock};
use idv::synthetic::SyntheticProvider;
use testkit::{Store, T0, fresh_repository, test_key};
use time::Duration;

struct Services {
    management: ManagementService,
    flows: FlowService,
    repo: Arc<dyn domain::Repository>,
    clock: Arc<ManualClock>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

async fn services() -> Services {
    let (repo, keep) = fresh_repository(Store::Sqlite).await;
    let clock = Arc::new(ManualClock::new(T0));
    Services {
        management: ManagementService::new(repo.clone(), clock.clone()),
        flows: FlowService::new(
            repo.clone(),
            Arc::new(SyntheticProvider::new()),
            clock.clone(),
            test_key(),
            FlowPolicy::default(),
        ),
        repo,
        clock,
        _keep: keep,
    }
}

fn integration() -> RequestContext {
    RequestContext {
        actor: Actor::Integration(None),
        correlation_id: None,
    }
}

fn ada() -> ExternalUserId {
    ExternalUserId::parse("ada").unwrap()
}

fn by_state(state: FlowState) -> FlowFilter {
    FlowFilter {
        flow_type: None,
        state: Some(state),
        limit: 50,
    }
}

/// A flow nobody touched after its expiry reads `expired` through every read
/// of the management service (its listing, its state filter, the user's
/// recent flows and the flow itself) while its row still holds its former
/// state; the Core API's door, which settles the expiry, reads the same.
#[tokio::test]
async fn an_untouched_flow_past_its_expiry_reads_expired_to_operators() {
    let s = services().await;
    let created = s
        .flows
        .create_flow(
            &integration(),
            CreateFlow {
                flow_type: FlowType::Registration,
                external_user_id: ada(),
                transaction_context: None,
                cross_platform: false,
            },
        )
        .await
        .unwrap();
    let id = created.flow.id;
    let former = created.flow.state;
    assert!(!former.is_terminal(), "{former}");

    let listed = s.management.flows(&ada(), &by_state(former)).await.unwrap();
    assert_eq!(listed.flows.len(), 1);
    assert_eq!(listed.user.external_id, ada());
    let none = s
        .management
        .flows(&ada(), &by_state(FlowState::Expired))
        .await
        .unwrap();
    assert!(none.flows.is_empty());

    s.clock
        .advance(FlowPolicy::default().flow_ttl + Duration::seconds(1));
    assert_eq!(s.repo.flow(id).await.unwrap().state, former, "untouched");

    let detail = s.management.flow(id).await.unwrap();
    assert_eq!(detail.flow.state, FlowState::Expired);
    assert_eq!(detail.user.external_id, ada());
    let all = s
        .management
        .flows(
            &ada(),
            &FlowFilter {
                flow_type: None,
                state: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.flows.len(), 1);
    assert_eq!(all.flows[0].state, FlowState::Expired);
    let expired = s
        .management
        .flows(&ada(), &by_state(FlowState::Expired))
        .await
        .unwrap();
    assert_eq!(expired.flows.len(), 1);
    assert_eq!(expired.flows[0].id, id);
    let as_former = s.management.flows(&ada(), &by_state(former)).await.unwrap();
    assert!(as_former.flows.is_empty(), "no longer {former}");
    let user = s.management.user(&ada(), 20).await.unwrap();
    assert_eq!(user.recent_flows.len(), 1);
    assert_eq!(user.recent_flows[0].state, FlowState::Expired);
    assert_eq!(user.recent_flows[0].id, id);

    // The Core API's door settles the expiry and reads what operators read.
    let core = s.flows.get_flow(id).await.unwrap();
    assert_eq!(core.flow.state, FlowState::Expired);
    assert_eq!(s.repo.flow(id).await.unwrap().state, FlowState::Expired);
    let settled = s.management.flow(id).await.unwrap();
    assert_eq!(settled.flow, core.flow);
    let timeline: Vec<AuditEventType> = settled
        .timeline
        .iter()
        .map(|e| e.event.event_type)
        .collect();
    assert_eq!(
        timeline.first(),
        Some(&AuditEventType::FlowCreated),
        "oldest first: {timeline:?}"
    );
    assert_eq!(
        timeline.last(),
        Some(&AuditEventType::FlowExpired),
        "{timeline:?}"
    );
}

/// Unknown users and flows are the API's `404`s.
#[tokio::test]
async fn unknown_users_and_flows_are_not_found() {
    let s = services().await;
    let err = s
        .management
        .flows(&ada(), &by_state(FlowState::Expired))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "user_not_found");
    let err = s.management.user(&ada(), 20).await.unwrap_err();
    assert_eq!(err.code.as_str(), "user_not_found");
    let err = s
        .management
        .flow(domain::flow::FlowId(domain::ids::new_id(s.clock.now())))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "flow_not_found");
}
