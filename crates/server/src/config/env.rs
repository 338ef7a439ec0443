//! The process environment as a plain map, so configuration is built (and
//! tested) without touching process state. An empty value counts as unset.

use std::collections::BTreeMap;

/// Every `BIOMETRIC_PASSKEY_*` variable the runtimes read. Any other variable
/// with the prefix draws a warning: a typo should not silently become a default.
pub const KNOWN_VARIABLES: &[&str] = &[
    "BIOMETRIC_PASSKEY_STORE",
    "BIOMETRIC_PASSKEY_SQLITE_PATH",
    "BIOMETRIC_PASSKEY_LOG_LEVEL",
    "BIOMETRIC_PASSKEY_METRICS_PORT",
    "BIOMETRIC_PASSKEY_HTTP_HEADER_READ_TIMEOUT",
    "BIOMETRIC_PASSKEY_HTTP_REQUEST_TIMEOUT",
    "BIOMETRIC_PASSKEY_SHUTDOWN_DRAIN",
    "BIOMETRIC_PASSKEY_HTTP_MAX_CONCURRENT_REQUESTS",
    "BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS",
    "BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE",
    "BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE",
    "BIOMETRIC_PASSKEY_TRUSTED_PROXIES",
    "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
    "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID",
    "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS",
    "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE",
    "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
    "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
    "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
    "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN",
    "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
    "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET",
    "BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION",
    "BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL",
    "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_MAX_AGE",
    "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
    "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE",
    "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
    "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_CLAIM",
    "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_PREFIX",
    "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_CLOCK_SKEW",
    "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID",
    "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES",
    "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
    "BIOMETRIC_PASSKEY_AUDIT_PARTITION_RETENTION_MONTHS",
    "BIOMETRIC_PASSKEY_CORE_API_KEYS",
    "BIOMETRIC_PASSKEY_CORE_API_AUTH",
    "BIOMETRIC_PASSKEY_POSSESSION_MODE",
    "BIOMETRIC_PASSKEY_WEBAUTHN_RP_ID",
    "BIOMETRIC_PASSKEY_WEBAUTHN_RP_NAME",
    "BIOMETRIC_PASSKEY_WEBAUTHN_ORIGINS",
    "BIOMETRIC_PASSKEY_WEBAUTHN_USER_VERIFICATION",
    "BIOMETRIC_PASSKEY_WEBAUTHN_ATTESTATION",
    "BIOMETRIC_PASSKEY_WEBAUTHN_ATTESTATION_ROOTS_FILE",
    "BIOMETRIC_PASSKEY_WEBAUTHN_ALLOWED_AAGUIDS",
    "BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE",
    "BIOMETRIC_PASSKEY_WEBAUTHN_CHALLENGE_TTL",
    "BIOMETRIC_PASSKEY_WEBAUTHN_COUNTER_POLICY",
    "BIOMETRIC_PASSKEY_WEBAUTHN_BACKUP_ELIGIBLE_POLICY",
    "BIOMETRIC_PASSKEY_IDV_RECONCILE_AFTER",
    "BIOMETRIC_PASSKEY_FLOW_TTL",
    "BIOMETRIC_PASSKEY_HANDOFF_TTL",
    "BIOMETRIC_PASSKEY_FLOW_MAX_OPEN_PER_USER",
    "BIOMETRIC_PASSKEY_IDV_MAX_RUNS_PER_USER_PER_DAY",
    "BIOMETRIC_PASSKEY_TRANSACTION_CONTEXT_MAX_BYTES",
    "BIOMETRIC_PASSKEY_RECOVERY_REVOKES_EXISTING_CREDENTIALS",
    "BIOMETRIC_PASSKEY_FLOW_RETENTION",
    "BIOMETRIC_PASSKEY_VERSION_DETAIL",
    "BIOMETRIC_PASSKEY_PROVIDER_CLEANUP_MAX_ATTEMPTS",
    "BIOMETRIC_PASSKEY_PROVIDER_EVENT_RETENTION",
    // Read by the test suite only, never by a runtime; listed so it draws no warning.
    "BIOMETRIC_PASSKEY_TEST_PG_URL",
];

#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The variable's value; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value as set, empty included (`None` only when unset).
    pub fn get_raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Names with our prefix that no runtime reads (likely typos).
    pub fn unknown_prefixed(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("BIOMETRIC_PASSKEY_") && !KNOWN_VARIABLES.contains(k))
            .collect()
    }
}
