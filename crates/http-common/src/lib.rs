//! HTTP plumbing both runtimes share.
//!
//! Each runtime builds its routes, then [`finish`] adds what every request
//! gets: a correlation id, a request log line, a body-size cap, the
//! runtime's cap on concurrent requests and time limit per request, and JSON
//! answers for unknown routes and methods.
//!
//! **Architecture invariant:** this crate, like the runtimes' crates, sees the
//! domain's ports and `proto`'s wire types, never SQL or an HTTP client.

pub mod correlation;
pub mod error;
pub mod extract;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod service;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use correlation::CorrelationId;
pub use error::ApiError;
pub use extract::{ApiBody, ApiPath, ApiQuery};
pub use json::ApiJson;
pub use limits::{HttpLimits, RequestSlot};
pub use service::{DatabaseProbe, Draining, ReadinessProbe, ServiceInfo, service_routes};

/// Parses a customer's user identifier from a path or query parameter;
/// `400 invalid_external_user_id`, saying why, otherwise.
pub fn external_user_id(raw: &str) -> Result<domain::ExternalUserId, ApiError> {
    domain::ExternalUserId::parse(raw)
        .map_err(|e| ApiError::bad_request(proto::ErrorCode::InvalidExternalUserId, e.to_string()))
}

/// Default cap on request bodies; routes that need less set their own.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Adds the cross-cutting layers and the JSON 404/405 answers to a runtime's router.
pub fn finish(router: Router, limits: &HttpLimits) -> Router {
    layered(router.fallback(error::route_not_found), limits)
}

/// Like [`finish`], with `fallback` answering the requests no route matches
/// (the dashboard's pages, served for any path it may deep-link to).
pub fn finish_with_fallback<H, T>(router: Router, fallback: H, limits: &HttpLimits) -> Router
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    layered(router.fallback(fallback), limits)
}

fn layered(router: Router, limits: &HttpLimits) -> Router {
    router
        .route_layer(correlation::RouteLayer)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            limits::Bounds::new(limits),
            limits::bounded,
        ))
        .layer(correlation::CorrelateLayer)
}
