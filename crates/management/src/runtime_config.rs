//! `/runtime-config.json`: what the dashboard needs to start its OIDC sign-in.
//! Browser-readable, so it carries nothing secret or operator-specific.

use std::time::Duration;

use proto::management::{OidcRuntimeConfig, RuntimeConfig};

/// How the Management API authenticates operators (`BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementAuth {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    pub scope_claim: String,
    pub scope_prefix: String,
    pub clock_skew: Duration,
}

/// What the dashboard asks the identity provider for (`BIOMETRIC_PASSKEY_MANAGEMENT_UI_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementUi {
    pub client_id: String,
    /// Canonical `management.*` form; the prefix is applied when rendering.
    pub scopes: Vec<String>,
}

/// The scopes the dashboard requests by default when none are configured.
pub const DEFAULT_UI_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "management.audit.read",
    "management.credentials.activate",
    "management.credentials.read",
    "management.credentials.revoke",
    "management.credentials.suspend",
    "management.flows.read",
    "management.users.delete",
    "management.users.read",
];

pub fn runtime_config(auth: &ManagementAuth, ui: &ManagementUi) -> RuntimeConfig {
    RuntimeConfig {
        oidc: OidcRuntimeConfig {
            authority: auth.issuer.clone(),
            client_id: ui.client_id.clone(),
            audience: auth.audience.clone(),
            scopes: ui
                .scopes
                .iter()
                .map(|scope| prefixed(scope, &auth.scope_prefix))
                .collect(),
            scope_claim: auth.scope_claim.clone(),
            scope_prefix: auth.scope_prefix.clone(),
        },
        // Same-origin Management API calls in the supported topology.
        api_base_url: String::new(),
    }
}

/// Applies the provider's namespace prefix to `management.*` scopes only.
fn prefixed(scope: &str, prefix: &str) -> String {
    if scope.starts_with("management.") {
        format!("{prefix}{scope}")
    } else {
        scope.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(prefix: &str) -> ManagementAuth {
        ManagementAuth {
            issuer: "https://issuer.example.com/".into(),
            audience: "biometric-passkey-management-api".into(),
            jwks_url: "https://issuer.example.com/.well-known/jwks.json".into(),
            scope_claim: "scope".into(),
            scope_prefix: prefix.into(),
            clock_skew: Duration::from_secs(30),
        }
    }

    fn ui() -> ManagementUi {
        ManagementUi {
            client_id: "biometric-passkey-management-ui".into(),
            scopes: vec!["openid".into(), "management.users.read".into()],
        }
    }

    #[test]
    fn renders_exactly_the_contract_fields() {
        let json = serde_json::to_value(runtime_config(&auth(""), &ui())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "oidc": {
                    "authority": "https://issuer.example.com/",
                    "clientId": "biometric-passkey-management-ui",
                    "audience": "biometric-passkey-management-api",
                    "scopes": ["openid", "management.users.read"],
                    "scopeClaim": "scope",
                    "scopePrefix": ""
                },
                "apiBaseUrl": ""
            })
        );
    }

    #[test]
    fn the_prefix_applies_to_management_scopes_only() {
        let config = runtime_config(&auth("api://bp/"), &ui());
        assert_eq!(
            config.oidc.scopes,
            vec!["openid", "api://bp/management.users.read"]
        );
        assert_eq!(config.oidc.scope_prefix, "api://bp/");
    }

    #[test]
    fn nothing_secret_is_rendered() {
        let json = serde_json::to_string(&runtime_config(&auth(""), &ui())).unwrap();
        assert!(
            !json.contains("jwks"),
            "the JWKS URL is server-side configuration"
        );
    }
}
