//! `/api/core/v1`: the flow API.

pub mod flows;
pub mod handoffs;
pub mod synthetic;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use domain::audit::Actor;
use domain::service::RequestContext;
use http_common::CorrelationId;

use crate::CoreState;
use crate::idempotency::IdempotencyLayer;

/// The request's audit context: the customer's backend, known by the
/// fingerprint of the API key it called with, and the request's correlation id.
pub(crate) fn integration() -> RequestContext {
    RequestContext {
        actor: Actor::Integration(crate::auth::current_key_id().map(|id| id.as_str().to_owned())),
        correlation_id: CorrelationId::current().map(|id| id.as_str().to_owned()),
    }
}

/// The largest request body of the flow API: a base64 biometric reference
/// and its JSON envelope. The idempotency layer buffers up to the same size.
pub const BODY_LIMIT: usize = domain::custody::MAX_REFERENCE_BYTES * 2 + 1024;

pub fn routes(state: CoreState) -> Router {
    // Handlers share one copy of the state: extracting it per request is then
    // one reference count, whatever the state holds.
    let api_keys = state.api_keys.clone();
    let synthetic = state.synthetic.is_some();
    let state = Arc::new(state);
    // Creating and completing calls accept an Idempotency-Key.
    let idempotent_routes = Router::new()
        .route("/api/core/v1/flows", post(flows::create))
        .route(
            "/api/core/v1/flows/{flow_id}/possession",
            post(flows::possession),
        )
        .route("/api/core/v1/flows/{flow_id}/cancel", post(flows::cancel))
        .route(
            "/api/core/v1/flows/{flow_id}/biometric-reference",
            put(flows::store_reference),
        )
        .route("/api/core/v1/handoffs/claim", post(handoffs::claim))
        .route(
            "/api/core/v1/users/{external_user_id}",
            axum::routing::delete(users::delete),
        )
        .route_layer(IdempotencyLayer::new(state.clone()));
    let mut router = Router::new()
        .route("/api/core/v1/flows/{flow_id}", get(flows::read))
        .route(
            "/api/core/v1/flows/{flow_id}/biometric-reference/release",
            post(flows::release_reference),
        )
        .route("/api/core/v1/users/{external_user_id}", get(users::read))
        .merge(idempotent_routes);
    if synthetic {
        router = router.route(
            "/api/core/v1/synthetic/runs/{run_id}/outcome",
            post(synthetic::set_outcome),
        );
    }
    if api_keys.is_enabled() {
        // Without keys the network protects the API and no check runs.
        router = router.route_layer(crate::auth::RequireKeyLayer::new(api_keys));
    }
    router
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
