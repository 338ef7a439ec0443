//! Bodies of the service endpoints both runtimes share: health, readiness, version.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/health`: the process serves HTTP. Never consults the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// `GET /api/ready`: whether the runtime can do useful work (database reachable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub database: String,
}

/// `GET /api/version`: what is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    pub version: String,
    pub commit: String,
    pub build_time: String,
    /// `core`, `management` or `dev`.
    pub runtime: String,
}
