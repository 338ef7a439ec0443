//! The Core API runtime: what the customer's backend integrates with.
//!
//! [`router`] is mounted by the `core` subcommand, by `dev`, and by the tests,
//! so all three serve exactly the same thing. Handlers parse the wire types of
//! `proto`, call the domain's `FlowService`, and render its answers; the
//! routes and their documentation live together in [`v1`].

pub mod auth;
pub mod convert;
pub mod idempotency;
pub mod openapi;
pub mod refusals;
pub mod v1;
pub mod watch;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use domain::Clock;
use domain::idv::SyntheticControl;
use domain::service::FlowService;
use http_common::{HttpLimits, ServiceInfo, finish, service_routes};

pub use watch::FlowWatch;

/// Everything the Core API's handlers share.
#[derive(Clone)]
pub struct CoreState {
    pub service: ServiceInfo,
    pub flows: Arc<FlowService>,
    /// Stores and replays the responses of calls with an `Idempotency-Key`.
    pub idempotency: Arc<domain::idempotency::Idempotency>,
    pub clock: Arc<dyn Clock>,
    pub watch: Arc<FlowWatch>,
    /// Present in `synthetic` mode only: mounts the outcome control route.
    pub synthetic: Option<Arc<dyn SyntheticControl>>,
    /// Empty: calls are not authenticated (the network must protect the API).
    pub api_keys: auth::ApiKeys,
    /// Present when the identity provider delivers events by webhook: mounts
    /// its route.
    pub provider_webhook: Option<Arc<dyn domain::idv::WebhookVerifier>>,
    pub limits: HttpLimits,
    pub refusals: refusals::RefusalLimits,
    /// Refused hand-off claims per (API key fingerprint, user).
    pub handoff_refusals: Arc<refusals::RefusalCounter<(Option<String>, String)>>,
}

/// The Core API: service endpoints and `/api/core/v1`.
pub fn router(state: CoreState) -> Router {
    let mut router = service_routes(state.service.clone());
    if let Some(webhook) = &state.provider_webhook {
        // Public: the provider authenticates by signature, not by API key.
        let webhook_state = webhooks::WebhookState {
            webhook: webhook.clone(),
            flows: state.flows.clone(),
            clock: state.clock.clone(),
        };
        let gate = refusals::WebhookGate {
            counter: refusals::RefusalCounter::new(state.refusals.webhook_per_minute),
            trusted_proxies: state.refusals.trusted_proxies.clone(),
            clock: state.clock.clone(),
            flows: state.flows.clone(),
        };
        router = router.merge(
            Router::new()
                .route(
                    proto::core::PROVIDER_WEBHOOK_PATH,
                    axum::routing::post(webhooks::receive),
                )
                .layer(axum::extract::DefaultBodyLimit::max(webhooks::MAX_BODY))
                .with_state(Arc::new(webhook_state))
                .route_layer(axum::middleware::from_fn_with_state(
                    Arc::new(gate),
                    refusals::limit_webhook,
                )),
        );
    }
    let limits = state.limits;
    finish(router.merge(v1::routes(state)), &limits)
}
