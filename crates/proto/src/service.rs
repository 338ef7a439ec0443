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

/// `GET /api/version`: what is running. The commit and build time are shown
/// only where the operator enabled them (`BIOMETRIC_PASSKEY_VERSION_DETAIL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_time: Option<String>,
    /// `core`, `management` or `dev`.
    pub runtime: String,
}
