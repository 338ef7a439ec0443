//! The service endpoints both runtimes serve: liveness, readiness, version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use domain::Repository;
use proto::ErrorCode;
use proto::service::{Health, Readiness, VersionInfo};

use crate::error::ApiError;
use crate::json::ApiJson;

/// What readiness checks: the runtime can do useful work.
#[async_trait]
pub trait ReadinessProbe: Send + Sync + 'static {
    async fn check(&self) -> Result<(), String>;
}

/// The database is ready when it answers a round trip.
pub struct DatabaseProbe(pub Arc<dyn Repository>);

#[async_trait]
impl ReadinessProbe for DatabaseProbe {
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// Whether the runtime is shutting down: from then on readiness is false,
/// so that load balancers take the replica out while it still serves what
/// they send it. Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Readiness is false from now on.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the service endpoints need. Cheap to clone: runtimes keep it in
/// every request's state.
#[derive(Clone)]
pub struct ServiceInfo {
    pub version: Arc<VersionInfo>,
    pub readiness: Arc<dyn ReadinessProbe>,
    pub draining: Draining,
}

impl ServiceInfo {
    /// Service endpoints whose readiness is the repository's.
    pub fn for_repository(version: VersionInfo, repo: Arc<dyn Repository>) -> Self {
        Self {
            version: Arc::new(version),
            readiness: Arc::new(DatabaseProbe(repo)),
            draining: Draining::default(),
        }
    }
}

/// `GET /api/health`, `GET /api/ready`, `GET /api/version`.
pub fn service_routes(info: ServiceInfo) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/ready", get(ready))
        .route("/api/version", get(version))
        .with_state(info)
}

/// Liveness: the process serves HTTP. Deliberately ignores the database, so an
/// outage does not make the orchestrator restart healthy pods.
async fn health() -> ApiJson<Health> {
    ApiJson(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: the runtime is not shutting down, and the database answers.
async fn ready(State(info): State<ServiceInfo>) -> Result<ApiJson<Readiness>, ApiError> {
    if info.draining.is_draining() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "the runtime is shutting down",
        ));
    }
    match info.readiness.check().await {
        Ok(()) => Ok(ApiJson(Readiness {
            status: "ready".to_owned(),
            database: "ok".to_owned(),
        })),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotReady,
                "the database is not reachable",
            ))
        }
    }
}

async fn version(State(info): State<ServiceInfo>) -> ApiJson<VersionInfo> {
    ApiJson(VersionInfo::clone(&info.version))
}
