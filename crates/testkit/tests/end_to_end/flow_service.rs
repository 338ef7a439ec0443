//! The Core API's flow service, with no HTTP: built over the SQLite store
//! with a manual clock and the synthetic provider, and called directly, so
//! each use-case rule is tested where it lives. Tests assert the domain's
//! outcomes: the values and errors returned, what the store holds after, and
//! the audit trail. A module per use case.

use std::sync::Arc;

use domain::audit::{AuditEventType, NewAuditEvent};
use domain::flow::{FlowId, FlowType, IdentityOutcome};
use domain::idv::SyntheticControl;
use domain::service::{
    CreateFlow, EventOutcome, FlowPolicy, FlowService, FlowView, PossessionProof, RequestContext,
};
use domain::{Actor, AuditQuery, DomainResult, ExternalUserId, ManualClock, Repository};
use idv::synthetic::SyntheticProvider;
use testkit::core_client::webauthn_id;
use testkit::{Store, T0, fresh_repository, test_key};

mod cleanup;
mod creation;
mod custody_and_handoff;
mod expiry;
mod possession;
mod provider_events;

/// The reference every enrolment stages.
const ENROLLED_REFERENCE: &[u8] = b"encrypted-biometric-token";

/// A flow service over a fresh SQLite store, its clock and its provider.
struct Harness {
    flows: FlowService,
    repo: Arc<dyn Repository>,
    clock: Arc<ManualClock>,
    idv: Arc<SyntheticProvider>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

async fn harness() -> Harness {
    harness_with(FlowPolicy::default()).await
}

async fn harness_with(policy: FlowPolicy) -> Harness {
    let (repo, keep) = fresh_repository(Store::Sqlite).await;
    let clock = Arc::new(ManualClock::new(T0));
    let idv = Arc::new(SyntheticProvider::new());
    Harness {
        flows: FlowService::new(repo.clone(), idv.clone(), clock.clone(), test_key(), policy),
        repo,
        clock,
        idv,
        _keep: keep,
    }
}

/// The customer's backend, as the Core API's routes name it.
fn integration() -> RequestContext {
    RequestContext {
        actor: Actor::Integration(None),
        correlation_id: Some("test-correlation".to_owned()),
    }
}

/// The IDV provider, as its events name it.
fn provider() -> RequestContext {
    RequestContext {
        actor: Actor::Provider,
        correlation_id: None,
    }
}

fn user(name: &str) -> ExternalUserId {
    ExternalUserId::parse(name).unwrap()
}

fn request(flow_type: FlowType, name: &str) -> CreateFlow {
    CreateFlow {
        flow_type,
        external_user_id: user(name),
        transaction_context: None,
        cross_platform: false,
    }
}

/// A new credential proof for the passkey named `seed`.
fn new_credential(seed: &str) -> PossessionProof {
    PossessionProof::NewCredential {
        webauthn_id: webauthn_id(seed),
        public_key: None,
        aaguid: None,
        sign_count: 0,
        transports: vec!["internal".to_owned()],
        backup_eligible: false,
        backup_state: false,
        platform: Some("ios".to_owned()),
        device_label: Some("Test phone".to_owned()),
    }
}

/// An assertion by the passkey named `seed`, reporting `sign_count`.
fn assertion(seed: &str, sign_count: u32) -> PossessionProof {
    PossessionProof::Assertion {
        webauthn_id: webauthn_id(seed),
        sign_count,
        backup_eligible: None,
        backup_state: None,
    }
}

impl Harness {
    async fn create(&self, flow_type: FlowType, name: &str) -> DomainResult<FlowView> {
        self.flows
            .create_flow(&integration(), request(flow_type, name))
            .await
    }

    async fn created(&self, flow_type: FlowType, name: &str) -> FlowView {
        self.create(flow_type, name).await.unwrap()
    }

    /// A step-up whose passkey is on another device: it carries a hand-off code.
    async fn cross_platform_step_up(&self, name: &str) -> FlowView {
        self.flows
            .create_flow(
                &integration(),
                CreateFlow {
                    cross_platform: true,
                    ..request(FlowType::StepUp, name)
                },
            )
            .await
            .unwrap()
    }

    async fn prove(&self, id: FlowId, proof: PossessionProof) -> DomainResult<FlowView> {
        self.flows
            .submit_possession(&integration(), id, proof)
            .await
    }

    async fn stage(&self, id: FlowId, token: &[u8]) -> DomainResult<FlowView> {
        self.flows.store_reference(&integration(), id, token).await
    }

    /// The synthetic provider decides `flow`'s run, and its event is ingested
    /// as the provider's webhook is.
    async fn decide(&self, flow: &FlowView, outcome: IdentityOutcome) -> EventOutcome {
        let run = flow.flow.idv_run_id.as_deref().unwrap();
        self.idv.set_outcome(run, outcome).unwrap();
        self.flows
            .ingest_run_event(&provider(), run, Some(status(outcome)), None)
            .await
            .unwrap()
    }

    /// `name` registered with the passkey `seed` and [`ENROLLED_REFERENCE`]:
    /// the completed registration.
    async fn enrolled(&self, name: &str, seed: &str) -> FlowView {
        let flow = self.created(FlowType::Registration, name).await;
        self.stage(flow.flow.id, ENROLLED_REFERENCE).await.unwrap();
        self.prove(flow.flow.id, new_credential(seed))
            .await
            .unwrap();
        assert_eq!(
            self.decide(&flow, IdentityOutcome::Approved).await,
            EventOutcome::Applied
        );
        self.flows.get_flow(flow.flow.id).await.unwrap()
    }

    /// The audit events about `id`, oldest first.
    async fn trail(&self, id: FlowId) -> Vec<NewAuditEvent> {
        let page = self
            .repo
            .audit_events(&AuditQuery {
                flow_id: Some(id.0),
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        page.items.into_iter().rev().map(|e| e.event).collect()
    }

    async fn trail_types(&self, id: FlowId) -> Vec<AuditEventType> {
        self.trail(id).await.iter().map(|e| e.event_type).collect()
    }

    /// The whole trail, oldest first.
    async fn whole_trail(&self) -> Vec<NewAuditEvent> {
        let page = self
            .repo
            .audit_events(&AuditQuery {
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        page.items.into_iter().rev().map(|e| e.event).collect()
    }
}

/// The status name the provider's event announces for `outcome`.
fn status(outcome: IdentityOutcome) -> &'static str {
    match outcome {
        IdentityOutcome::Approved => "approved",
        IdentityOutcome::Review => "review",
        IdentityOutcome::Declined => "declined",
        IdentityOutcome::Abandoned => "abandoned",
        IdentityOutcome::Error => "error",
    }
}
