//! Operators' bearer tokens, verified against the customer's OIDC provider.
//!
//! - Signature algorithms are allow-listed: asymmetric only (RSA, RSA-PSS,
//!   ECDSA, EdDSA). `none` and every HMAC algorithm are refused before any key
//!   is looked at, so a token "signed" with the public key as an HMAC secret
//!   goes nowhere. A key's own `alg`, when the JWKS states one, must match.
//! - The JWKS is fetched from the configured URL and cached for ten minutes;
//!   an unknown `kid` triggers a refresh, at most once every ten seconds (a
//!   stream of forged `kid`s cannot hammer the provider). One fetch runs at a
//!   time, outside the cache's lock: requests whose key is cached are answered
//!   while it runs, the others wait for it rather than fetch again. After a
//!   failed fetch the next waits (1 s, doubling up to a minute), and the keys
//!   last fetched keep being used for up to an hour past their ten minutes, so
//!   an identity-provider outage neither stalls every request nor locks the
//!   operators out at once. Past that, verification fails closed.
//! - A token that says it is something else than an access token is refused:
//!   a `typ` header other than `at+jwt` (RFC 9068) or plain `JWT`, and a
//!   `typ` claim other than `Bearer` (Keycloak marks ID and refresh tokens
//!   so). An ID token presented as an access token goes nowhere.
//! - `iss` and `aud` (string or array) are checked by the JWT library; `exp`
//!   (required), `nbf` and `iat` against the injected clock with the
//!   configured skew.
//!
//! The provider's discovery document, read for the dashboard's
//! Content-Security-Policy, is in [`discovery`].

pub mod discovery;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::Clock;
use domain::operator::{AuthFailure, Operator, OperatorVerifier};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Mutex, RwLock};

/// The algorithms an operator token may be signed with.
pub const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The `typ` headers an access token may carry: RFC 9068's, and the plain
/// one most providers set.
pub const ACCESS_TOKEN_TYPES: [&str; 3] = ["at+jwt", "application/at+jwt", "JWT"];

/// How long fetched keys are trusted before they are fetched again.
pub const JWKS_TTL: time::Duration = time::Duration::minutes(10);
/// The shortest interval between two fetches triggered by unknown `kid`s.
pub const REFRESH_INTERVAL: time::Duration = time::Duration::seconds(10);
/// How long the keys last fetched stay in use past [`JWKS_TTL`] while the
/// provider cannot be reached.
pub const OUTAGE_GRACE: time::Duration = time::Duration::hours(1);
/// The wait after a failed fetch, doubled per further failure up to
/// [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: time::Duration = time::Duration::seconds(1);
pub const MAX_BACKOFF: time::Duration = time::Duration::minutes(1);

#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    pub scope_claim: String,
    pub scope_prefix: String,
    pub clock_skew: Duration,
}

struct Key {
    key: DecodingKey,
    /// The JWK's own `alg`, when stated.
    alg: Option<String>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<Key>>,
    fetched_at: Option<OffsetDateTime>,
    /// The last fetch, whether it succeeded or not.
    attempted_at: Option<OffsetDateTime>,
    /// Fetches failed since the last success.
    failures: u32,
}

impl Cache {
    /// How long the keys are used after they were fetched: longer while the
    /// provider cannot be reached.
    fn lifetime(&self) -> time::Duration {
        if self.failures > 0 {
            JWKS_TTL + OUTAGE_GRACE
        } else {
            JWKS_TTL
        }
    }

    fn current(&self, now: OffsetDateTime) -> bool {
        self.fetched_at.is_some_and(|at| now - at < self.lifetime())
    }

    /// Whether a fetch is due now, for a token naming `kid`.
    fn fetch_due(&self, kid: &str, now: OffsetDateTime) -> bool {
        let since_attempt = self.attempted_at.map(|at| now - at);
        if self.failures > 0 {
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << self.failures.min(10).saturating_sub(1))
                .min(MAX_BACKOFF);
            if since_attempt.is_some_and(|since| since < backoff) {
                return false;
            }
        }
        match self.fetched_at {
            None => true,
            Some(at) if now - at >= JWKS_TTL => true,
            Some(_) => {
                !self.keys.contains_key(kid)
                    && since_attempt.is_none_or(|since| since >= REFRESH_INTERVAL)
            }
        }
    }

    /// The answer the cache gives for `kid` now.
    fn answer(&self, kid: &str, now: OffsetDateTime) -> Result<Arc<Key>, AuthFailure> {
        if !self.current(now) {
            return Err(AuthFailure::Unavailable(
                "no current operator JWKS: the identity provider cannot be reached".into(),
            ));
        }
        self.keys
            .get(kid)
            .cloned()
            .ok_or_else(|| invalid("unknown_key"))
    }
}

pub struct JwksVerifier {
    settings: VerifierSettings,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// Held by the one request fetching the JWKS.
    fetching: Mutex<()>,
}

fn invalid(reason: &'static str) -> AuthFailure {
    AuthFailure::Invalid { reason }
}

impl JwksVerifier {
    pub fn new(settings: VerifierSettings, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            settings,
            clock,
            http,
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
        })
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<Key>>, String> {
        let response = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .map_err(|e| format!("fetching the JWKS: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "fetching the JWKS: HTTP {}",
                response.status().as_u16()
            ));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| format!("the JWKS is not a key set: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) else {
                continue; // A key we cannot use (no kid, unsupported type) is skipped, not fatal.
            };
            let alg = jwk.common.key_algorithm.map(|a| a.to_string());
            keys.insert(kid.clone(), Arc::new(Key { key, alg }));
        }
        Ok(keys)
    }

    /// The key for `kid`: from the cache while it is current; otherwise (or for
    /// an unknown `kid`, at most once per [`REFRESH_INTERVAL`]) from the
    /// provider, one fetch at a time and never while holding the cache.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, AuthFailure> {
        let now = self.clock.now();
        {
            let cache = self.cache.read().await;
            if !cache.fetch_due(kid, now) {
                return cache.answer(kid, now);
            }
        }
        let _fetching = self.fetching.lock().await;
        {
            // Another request may have fetched while this one waited.
            let cache = self.cache.read().await;
            if !cache.fetch_due(kid, now) {
                return cache.answer(kid, now);
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.attempted_at = Some(now);
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched_at = Some(now);
                cache.failures = 0;
            }
            Err(detail) => {
                cache.failures = cache.failures.saturating_add(1);
                tracing::warn!(
                    error = %detail,
                    failures = cache.failures,
                    serving_cached_keys = cache.current(now),
                    "cannot fetch the operator JWKS"
                );
            }
        }
        cache.answer(kid, now)
    }

    fn check_times(&self, claims: &Value) -> Result<(), AuthFailure> {
        let now = self.clock.now().unix_timestamp();
        let skew = i64::try_from(self.settings.clock_skew.as_secs()).unwrap_or(i64::MAX);
        let exp = claims["exp"]
            .as_i64()
            .ok_or_else(|| invalid("exp_missing"))?;
        if now > exp.saturating_add(skew) {
            return Err(invalid("expired"));
        }
        if let Some(nbf) = claims["nbf"].as_i64()
            && now.saturating_add(skew) < nbf
        {
            return Err(invalid("not_yet_valid"));
        }
        if let Some(iat) = claims["iat"].as_i64()
            && iat > now.saturating_add(skew)
        {
            return Err(invalid("issued_in_the_future"));
        }
        Ok(())
    }

    fn scopes(&self, claims: &Value) -> Vec<String> {
        match &claims[self.settings.scope_claim.as_str()] {
            Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[async_trait]
impl OperatorVerifier for JwksVerifier {
    async fn verify(&self, bearer: &str) -> Result<Operator, AuthFailure> {
        let header = decode_header(bearer).map_err(|_| invalid("malformed"))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(invalid("algorithm_not_allowed"));
        }
        if header.typ.as_deref().is_some_and(|typ| {
            !ACCESS_TOKEN_TYPES
                .iter()
                .any(|t| typ.eq_ignore_ascii_case(t))
        }) {
            return Err(invalid("not_an_access_token"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid("kid_missing"))?;
        let key = self.key(kid).await?;
        if key
            .alg
            .as_deref()
            .is_some_and(|alg| alg != format!("{:?}", header.alg))
        {
            return Err(invalid("algorithm_mismatch"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Times are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = decode::<Value>(bearer, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            invalid(match e.kind() {
                ErrorKind::InvalidSignature => "signature",
                ErrorKind::InvalidIssuer => "issuer",
                ErrorKind::InvalidAudience => "audience",
                ErrorKind::MissingRequiredClaim(_) => "claim_missing",
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_) => "key_mismatch",
                _ => "invalid",
            })
        })?;
        if data.claims["typ"]
            .as_str()
            .is_some_and(|typ| !typ.eq_ignore_ascii_case("Bearer"))
        {
            return Err(invalid("not_an_access_token"));
        }
        self.check_times(&data.claims)?;
        let sub = data.claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("sub_missing"))?;
        Ok(Operator::from_claims(
            sub.to_owned(),
            &self.scopes(&data.claims),
            &self.settings.scope_prefix,
        ))
    }
}
