//! The Core API runtime: what the customer's backend integrates with.
//!
//! [`router`] is mounted by the `core` subcommand, by `dev`, and by the tests,
//! so all three serve exactly the same thing.

use axum::Router;
use http_common::{ServiceInfo, finish, service_routes};

/// Everything the Core API's handlers share.
#[derive(Clone)]
pub struct CoreState {
    pub service: ServiceInfo,
}

/// The Core API: service endpoints (`/api/health`, `/api/ready`, `/api/version`).
pub fn router(state: CoreState) -> Router {
    finish(service_routes(state.service))
}
