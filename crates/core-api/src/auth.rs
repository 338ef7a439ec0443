//! Integration authentication: when API keys are configured
//! (`BIOMETRIC_PASSKEY_CORE_API_KEYS`), every `/api/core/v1` call needs
//! `Authorization: Bearer <key>`. Only the keys' SHA-256 digests are kept;
//! the presented key's digest is compared with each in constant time.
//!
//! Each key is known by its fingerprint, `key-` and the first 16 hex digits
//! of its SHA-256 digest: not a secret (a key is at least 32 random
//! characters, so 64 bits of its digest reveal nothing), but enough to tell
//! keys apart. The middleware makes the accepted key's fingerprint the
//! request's [`current_key_id`], which the handlers record as the actor of
//! the call's audit events.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_common::ApiError;
use http_common::correlation::ResponseFuture;
use proto::ErrorCode;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use tower::{Layer, Service};

tokio::task_local! {
    static CURRENT_KEY: KeyId;
}

/// A key's fingerprint: `key-` and the first 16 hex digits of the SHA-256
/// digest of the key. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(Arc<str>);

impl KeyId {
    fn of_digest(digest: &[u8; 32]) -> Self {
        Self(format!("key-{}", hex::encode(&digest[..8])).into())
    }

    /// The fingerprint of `key`.
    pub fn of_key(key: &str) -> Self {
        Self::of_digest(&Sha256::digest(key.as_bytes()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fingerprint of the key the request being served was accepted with;
/// `None` when the API takes calls without a key.
pub fn current_key_id() -> Option<KeyId> {
    CURRENT_KEY.try_with(Clone::clone).ok()
}

/// The digests of the accepted keys. Empty: authentication is off. Cheap to
/// clone (each request's state holds it).
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<[[u8; 32]]>,
    ids: Arc<[KeyId]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let digests: Arc<[[u8; 32]]> = keys
            .into_iter()
            .map(|k| Sha256::digest(k.as_bytes()).into())
            .collect();
        let ids = digests.iter().map(KeyId::of_digest).collect();
        Self { digests, ids }
    }

    pub fn is_enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// The fingerprints of the accepted keys, in the configured order.
    pub fn ids(&self) -> &[KeyId] {
        &self.ids
    }

    /// The fingerprint of the configured key equal to `presented`, if any.
    fn identify(&self, presented: &str) -> Option<&KeyId> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every key, so the time taken does not depend on which one matched.
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, key) in self.digests.iter().enumerate() {
            let equal = key.ct_eq(&digest);
            index = u32::conditional_select(&index, &(i as u32), equal);
            found |= equal;
        }
        bool::from(found).then(|| &self.ids[index as usize])
    }
}

/// The middleware, mounted only when keys are configured (with none it
/// would refuse every call). A plain tower layer, like the correlation and
/// idempotency layers, rather than `axum::middleware::from_fn`, which clones
/// and boxes the service it wraps on every request.
#[derive(Debug, Clone)]
pub struct RequireKeyLayer {
    keys: ApiKeys,
}

impl RequireKeyLayer {
    pub fn new(keys: ApiKeys) -> Self {
        Self { keys }
    }
}

impl<S> Layer<S> for RequireKeyLayer {
    type Service = RequireKey<S>;

    fn layer(&self, inner: S) -> RequireKey<S> {
        RequireKey {
            inner,
            keys: self.keys.clone(),
        }
    }
}

/// [`RequireKeyLayer`]'s service.
#[derive(Debug, Clone)]
pub struct RequireKey<S> {
    inner: S,
    keys: ApiKeys,
}

impl<S> Service<Request> for RequireKey<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let accepted = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|key| self.keys.identify(key))
            .cloned();
        let Some(id) = accepted else {
            return Box::pin(std::future::ready(Ok(unauthorized())));
        };
        let served = CURRENT_KEY.sync_scope(id.clone(), || self.inner.call(request));
        Box::pin(CURRENT_KEY.scope(id, served))
    }
}

fn unauthorized() -> Response {
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
        assert_eq!(
            keys.identify("first-key-0123456789abcdef0123456789"),
            Some(&keys.ids()[0])
        );
        assert_eq!(
            keys.identify("second-key-0123456789abcdef01234567"),
            Some(&keys.ids()[1])
        );
        assert_eq!(keys.identify("first-key-0123456789abcdef012345678"), None);
        assert_eq!(keys.identify(""), None);
        assert!(!ApiKeys::default().is_enabled());
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 keys)");
    }

    #[test]
    fn a_key_id_is_the_start_of_its_sha256_digest() {
        // printf %s first-key-0123456789abcdef0123456789 | sha256sum | cut -c1-16
        let key = "first-key-0123456789abcdef0123456789";
        assert_eq!(KeyId::of_key(key).as_str(), "key-f40ce08accf01882");
        assert_eq!(
            ApiKeys::new([key]).ids()[0].as_str(),
            "key-f40ce08accf01882"
        );
    }
}
