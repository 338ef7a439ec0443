//! Integration authentication: when API keys are configured
//! (`BIOMETRIC_PASSKEY_CORE_API_KEYS`), every `/api/core/v1` call needs
//! `Authorization: Bearer <key>`. Only the keys' SHA-256 digests are kept;
//! the presented key's digest is compared with each in constant time.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_common::ApiError;
use proto::ErrorCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The digests of the accepted keys. Empty: authentication is off. Cheap to
/// clone (each request's state holds it).
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: std::sync::Arc<[[u8; 32]]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            digests: keys
                .into_iter()
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every key, so the time taken does not depend on which one matched.
        self.digests
            .iter()
            .fold(0u8, |found, key| found | key.ct_eq(&digest).unwrap_u8())
            == 1
    }
}

/// The middleware, mounted only when keys are configured (with none it
/// would refuse every call).
pub async fn require_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(key) if keys.accepts(key) => next.run(request).await,
        _ => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "a valid API key is required: Authorization: Bearer <key>",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"biometric-passkey-core\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new([
            "first-key-0123456789abcdef0123456789",
            "second-key-0123456789abcdef01234567",
        ]);
        assert!(keys.is_enabled());
        assert!(keys.accepts("first-key-0123456789abcdef0123456789"));
        assert!(keys.accepts("second-key-0123456789abcdef01234567"));
        assert!(!keys.accepts("first-key-0123456789abcdef012345678"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::default().is_enabled());
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 keys)");
    }
}
