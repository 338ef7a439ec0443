//! Operators: who is calling the Management API, and what they may do.
//!
//! The ports the management runtime is built on: an [`OperatorVerifier`]
//! turns a bearer token into an [`Operator`] (the JWKS-backed one lives in
//! `operator-auth`), and [`ProviderOrigins`] names the endpoints of the
//! operators' identity provider that the dashboard calls from the browser.
//! Scopes come from the configured claim, the configured prefix stripped;
//! only the canonical `management.*` scopes are honoured.

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;

/// A Management API permission, by its canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    UsersRead,
    UsersDelete,
    CredentialsRead,
    CredentialsSuspend,
    CredentialsActivate,
    CredentialsRevoke,
    /// Export every passkey's public key (docs/credential-export.md): rare
    /// and sensitive, so the dashboard does not ask for it by default.
    CredentialsExport,
    FlowsRead,
    AuditRead,
}

impl Scope {
    pub const ALL: [Self; 9] = [
        Self::UsersRead,
        Self::UsersDelete,
        Self::CredentialsRead,
        Self::CredentialsSuspend,
        Self::CredentialsActivate,
        Self::CredentialsRevoke,
        Self::CredentialsExport,
        Self::FlowsRead,
        Self::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "management.users.read",
            Self::UsersDelete => "management.users.delete",
            Self::CredentialsRead => "management.credentials.read",
            Self::CredentialsSuspend => "management.credentials.suspend",
            Self::CredentialsActivate => "management.credentials.activate",
            Self::CredentialsRevoke => "management.credentials.revoke",
            Self::CredentialsExport => "management.credentials.export",
            Self::FlowsRead => "management.flows.read",
            Self::AuditRead => "management.audit.read",
        }
    }

    fn parse(canonical: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == canonical)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The token's `sub`; recorded on every audit event of the operator's actions.
    pub sub: String,
    pub scopes: BTreeSet<Scope>,
}

impl Operator {
    /// The operator's scopes from the raw values of the scope claim: with a
    /// prefix configured, only values carrying it count (and lose it);
    /// then only canonical `management.*` names are honoured.
    pub fn from_claims(sub: String, raw_scopes: &[String], prefix: &str) -> Self {
        let scopes = raw_scopes
            .iter()
            .filter_map(|raw| raw.strip_prefix(prefix))
            .filter_map(Scope::parse)
            .collect();
        Self { sub, scopes }
    }

    /// Whether the operator holds `scope`.
    pub fn holds(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why a bearer token was not accepted. `reason` is for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Malformed, expired, wrong issuer or audience, bad signature, unknown key…
    Invalid { reason: &'static str },
    /// The keys to check it with cannot be had (JWKS unreachable): fail closed.
    Unavailable(String),
}

/// Verifies an operator's bearer token.
#[async_trait]
pub trait OperatorVerifier: Send + Sync + 'static {
    async fn verify(&self, bearer: &str) -> Result<Operator, AuthFailure>;
}

/// The endpoints of the operators' identity provider that the dashboard's
/// browser code may call, as its discovery document names them.
#[async_trait]
pub trait ProviderOrigins: Send + Sync + 'static {
    /// The endpoints' URLs (or origins); empty while none are known. The
    /// policy keeps only the well-formed origins among them.
    async fn endpoints(&self) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_canonical_management_scopes_are_honoured() {
        let op = Operator::from_claims(
            "op".into(),
            &raw(&[
                "openid",
                "management.users.read",
                "management.users.READ",
                "management.everything",
                "management.audit.read",
            ]),
            "",
        );
        assert_eq!(
            op.scopes,
            BTreeSet::from([Scope::UsersRead, Scope::AuditRead])
        );
    }

    #[test]
    fn a_configured_prefix_is_required_and_stripped() {
        let values = raw(&["api://bp/management.users.read", "management.flows.read"]);
        let prefixed = Operator::from_claims("op".into(), &values, "api://bp/");
        assert_eq!(prefixed.scopes, BTreeSet::from([Scope::UsersRead]));
        // Without the prefix configured, prefixed values are not management scopes.
        let plain = Operator::from_claims("op".into(), &values, "");
        assert_eq!(plain.scopes, BTreeSet::from([Scope::FlowsRead]));
    }
}
