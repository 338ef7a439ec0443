//! The management runtime's OIDC sign-in and dashboard client.

use std::time::Duration;

use super::*;

#[test]
fn management_defaults_follow_the_deployment_guide() {
    let config = ManagementConfig::from_env(&management_env(&[])).unwrap();
    assert_eq!(config.auth.scope_claim, "scope");
    assert_eq!(config.auth.scope_prefix, "");
    assert_eq!(config.auth.clock_skew, Duration::from_secs(30));
    assert_eq!(config.ui.scopes.len(), 11);
    assert!(
        config
            .ui
            .scopes
            .iter()
            .any(|s| s == "management.credentials.revoke")
    );
    assert!(!config.audit.partition_maintenance_enabled);

    let env = management_env(&[(
        "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES",
        "openid  management.users.read",
    )]);
    let config = ManagementConfig::from_env(&env).unwrap();
    assert_eq!(config.ui.scopes, vec!["openid", "management.users.read"]);

    // Set but empty is refused, never widened to the default list.
    for empty in ["", "   "] {
        let env = management_env(&[("BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES", empty)]);
        let problems = ManagementConfig::from_env(&env).unwrap_err();
        assert_eq!(
            variables(&problems),
            vec!["BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES"],
            "{empty:?}"
        );
    }
}

#[test]
fn management_accepts_loopback_http_only() {
    let env = management_env(&[
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "http://localhost:8080/",
        ),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "http://127.0.0.1:8080/jwks",
        ),
    ]);
    assert!(ManagementConfig::from_env(&env).is_ok());
    let env = management_env(&[
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "http://issuer.example.com/",
        ),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "ftp://issuer.example.com/jwks",
        ),
    ]);
    let problems = ManagementConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec![
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL"
        ]
    );
}
