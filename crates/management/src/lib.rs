//! The management runtime: the Management API, the browser-safe runtime
//! configuration, and the dashboard, all from one origin at its root.

pub mod auth;
pub mod dashboard;
pub mod openapi;
pub mod runtime_config;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use http_common::{ApiJson, ServiceInfo, finish_with_fallback, service_routes};

pub use runtime_config::{ManagementAuth, ManagementUi};

/// Everything the management runtime's handlers share.
#[derive(Clone)]
pub struct ManagementState {
    pub service: ServiceInfo,
    pub auth: Arc<ManagementAuth>,
    pub ui: Arc<ManagementUi>,
    /// The domain's use cases for operators: every read and action goes
    /// through it.
    pub management: Arc<domain::management::ManagementService>,
    pub verifier: Arc<dyn auth::OperatorVerifier>,
    /// The identity provider's endpoints the dashboard calls from the browser
    /// (for its Content-Security-Policy).
    pub provider_origins: Arc<dyn dashboard::ProviderOrigins>,
    pub limits: http_common::HttpLimits,
    /// Places for exports (audit and credential) running at once (see
    /// [`v1::MAX_CONCURRENT_EXPORTS`]).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// The authenticator models the operator's metadata names, by AAGUID.
    pub authenticators: Arc<domain::credential::AuthenticatorNames>,
    /// The COSE_Key of a key the built-in relying party stored, for the
    /// credential export.
    pub cose_key_of: domain::credential::export::CoseKeyOf,
}

pub fn router(state: ManagementState) -> Router {
    let config = runtime_config::runtime_config(&state.auth, &state.ui);
    let runtime_config = get(move || {
        let config = config.clone();
        async move {
            // The dashboard reads this at every start; it must never be stale.
            ([(header::CACHE_CONTROL, "no-store")], ApiJson(config)).into_response()
        }
    });
    let dashboard = dashboard::Dashboard::new(&state.auth.issuer, state.provider_origins.clone());
    let limits = state.limits;
    finish_with_fallback(
        service_routes(state.service.clone())
            .route("/runtime-config.json", runtime_config)
            .merge(v1::routes(state)),
        move |method, uri, headers| async move { dashboard.serve(method, uri, headers).await },
        &limits,
    )
}
