//! Operators' bearer tokens, verified against the customer's OIDC provider.
//!
//! - Signature algorithms are allow-listed: asymmetric only (RSA, RSA-PSS,
//!   ECDSA, EdDSA). `none` and every HMAC algorithm are refused before any key
//!   is looked at, so a token "signed" with the public key as an HMAC secret
//!   goes nowhere. A key's own `alg`, when the JWKS states one, must match.
//! - The JWKS is fetched from the configured URL and cached for ten minutes;
//!   an unknown `kid` triggers a refresh, at most once every ten seconds (a
//!   stream of forged `kid`s cannot hammer the provider). When no current keys
//!   can be had, verification fails closed.
//! - `iss` and `aud` (string or array) are checked by the JWT library; `exp`
//!   (required), `nbf` and `iat` against the injected clock with the
//!   configured skew.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::Clock;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use management::auth::{AuthFailure, Operator, OperatorVerifier};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::RwLock;

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

/// How long fetched keys are trusted before they are fetched again.
pub const JWKS_TTL: time::Duration = time::Duration::minutes(10);
/// The shortest interval between two fetches triggered by unknown `kid`s.
pub const REFRESH_INTERVAL: time::Duration = time::Duration::seconds(10);

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
}

pub struct JwksVerifier {
    settings: VerifierSettings,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    cache: RwLock<Cache>,
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
    /// an unknown `kid`, at most once per [`REFRESH_INTERVAL`]) from the provider.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, AuthFailure> {
        let now = self.clock.now();
        {
            let cache = self.cache.read().await;
            let current = cache.fetched_at.is_some_and(|at| now - at < JWKS_TTL);
            if current {
                if let Some(key) = cache.keys.get(kid) {
                    return Ok(key.clone());
                }
                if cache
                    .fetched_at
                    .is_some_and(|at| now - at < REFRESH_INTERVAL)
                {
                    return Err(invalid("unknown_key"));
                }
            }
        }
        let mut cache = self.cache.write().await;
        // Another request may have refreshed while this one waited.
        let fresh = cache
            .fetched_at
            .is_some_and(|at| now - at < REFRESH_INTERVAL);
        if !fresh {
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(now);
                }
                Err(detail) => {
                    tracing::warn!(error = %detail, "cannot fetch the operator JWKS");
                    let current = cache.fetched_at.is_some_and(|at| now - at < JWKS_TTL);
                    if !current {
                        return Err(AuthFailure::Unavailable(detail));
                    }
                }
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| invalid("unknown_key"))
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
