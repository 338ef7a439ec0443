//! Wire types of the management runtime.

use serde::{Deserialize, Serialize};

/// `/runtime-config.json`: the dashboard's browser-safe configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub oidc: OidcRuntimeConfig,
    /// Empty: the Management API is called on the same origin.
    pub api_base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcRuntimeConfig {
    pub authority: String,
    pub client_id: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub scope_claim: String,
    pub scope_prefix: String,
}
