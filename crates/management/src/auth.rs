//! Operators: who is calling the Management API, and what they may do.
//!
//! A bearer token is verified by an [`OperatorVerifier`] (the JWKS-backed one
//! lives in `operator-auth`; this crate sees only the port). Scopes come from
//! the configured claim, the configured prefix stripped; only the canonical
//! `management.*` scopes are honoured. Missing or invalid tokens get 401 with
//! `WWW-Authenticate`; a missing scope gets 403 naming it. Neither says why a
//! signature failed.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_common::ApiError;
use proto::ErrorCode;

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

    /// `Ok` when the operator holds `scope`; otherwise the 403 naming it.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::MissingScope,
                format!("access denied: this action needs the scope {scope}"),
            ))
        }
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

#[async_trait]
pub trait OperatorVerifier: Send + Sync + 'static {
    async fn verify(&self, bearer: &str) -> Result<Operator, AuthFailure>;
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"biometric-passkey-management\", error=\"invalid_token\"",
        ),
    );
    response
}

/// The middleware: verifies the bearer token and hands the [`Operator`] to handlers.
pub async fn authenticate(
    State(verifier): State<Arc<dyn OperatorVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(bearer) = bearer else {
        return unauthorized("a bearer token is required");
    };
    match verifier.verify(bearer).await {
        Ok(operator) => {
            request.extensions_mut().insert(operator);
            next.run(request).await
        }
        Err(AuthFailure::Invalid { reason }) => {
            tracing::info!(reason, "operator token refused");
            unauthorized("the bearer token is not valid")
        }
        Err(AuthFailure::Unavailable(detail)) => {
            ApiError::unavailable(format!("operator keys: {detail}")).into_response()
        }
    }
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

    #[test]
    fn a_missing_scope_is_a_403_naming_it() {
        let op = Operator::from_claims("op".into(), &raw(&["management.users.read"]), "");
        assert!(op.require(Scope::UsersRead).is_ok());
        let err = op.require(Scope::CredentialsRevoke).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains("management.credentials.revoke"));
    }
}
