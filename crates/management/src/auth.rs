//! Operators: who is calling the Management API, and what they may do.
//!
//! A bearer token is verified by an [`OperatorVerifier`], the domain's port
//! (`domain::operator`; the JWKS-backed one lives in `operator-auth`). Scopes
//! come from the configured claim, the configured prefix stripped; only the
//! canonical `management.*` scopes are honoured. Missing or invalid tokens get 401 with
//! `WWW-Authenticate`; a missing scope gets 403 naming it. Neither says why a
//! signature failed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use domain::operator::{AuthFailure, Operator, OperatorVerifier, Scope};
use http_common::ApiError;
use proto::ErrorCode;

/// The Management API's scope check on an [`Operator`].
pub trait RequireScope {
    /// `Ok` when the operator holds `scope`; otherwise the 403 naming it.
    fn require(&self, scope: Scope) -> Result<(), ApiError>;
}

impl RequireScope for Operator {
    fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.holds(scope) {
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

    #[test]
    fn a_missing_scope_is_a_403_naming_it() {
        let op = Operator::from_claims("op".into(), &["management.users.read".to_owned()], "");
        assert!(op.require(Scope::UsersRead).is_ok());
        let err = op.require(Scope::CredentialsRevoke).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains("management.credentials.revoke"));
    }
}
