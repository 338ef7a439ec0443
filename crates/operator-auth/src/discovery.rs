//! The identity provider's discovery document (OpenID Connect Discovery 1.0),
//! read for the endpoints the dashboard calls from the browser: the token,
//! userinfo, JWKS and revocation endpoints. The dashboard's
//! Content-Security-Policy allows their origins (`management::dashboard`), so
//! a provider whose endpoints live on other origins than its issuer (Google,
//! Amazon Cognito, some Azure AD set-ups) works.
//!
//! - The document is fetched from `<issuer>/.well-known/openid-configuration`
//!   when a page is first served, then again once it is ten minutes old. One
//!   fetch runs at a time; the others wait for it rather than fetch again.
//! - A document whose `issuer` is not the configured issuer is not used (the
//!   specification requires them to be identical; a trailing slash aside).
//! - After a failed fetch the next waits (1 s, doubling up to a minute), and
//!   the endpoints last fetched stay in use for up to an hour past their ten
//!   minutes. Past that, and before the first good fetch, no endpoint is
//!   named: the policy allows the issuer's origin only (fail closed).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::Clock;
use domain::operator::ProviderOrigins;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Mutex, RwLock};

use crate::{FIRST_BACKOFF, MAX_BACKOFF, OUTAGE_GRACE};

/// How long a fetched document is used before it is fetched again.
pub const DISCOVERY_TTL: time::Duration = time::Duration::minutes(10);

/// The discovery document's fields naming endpoints the dashboard's browser
/// code may call (oidc-client-ts: code redemption, userinfo, signing keys,
/// token revocation). The authorization and end-session endpoints are
/// navigations, which `connect-src` does not govern.
pub const BROWSER_ENDPOINTS: [&str; 4] = [
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "revocation_endpoint",
];

#[derive(Default)]
struct Cache {
    endpoints: Vec<String>,
    fetched_at: Option<OffsetDateTime>,
    attempted_at: Option<OffsetDateTime>,
    failures: u32,
}

impl Cache {
    fn current(&self, now: OffsetDateTime) -> bool {
        let lifetime = if self.failures > 0 {
            DISCOVERY_TTL + OUTAGE_GRACE
        } else {
            DISCOVERY_TTL
        };
        self.fetched_at.is_some_and(|at| now - at < lifetime)
    }

    fn fetch_due(&self, now: OffsetDateTime) -> bool {
        if self.failures > 0 {
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << self.failures.min(10).saturating_sub(1))
                .min(MAX_BACKOFF);
            if self.attempted_at.is_some_and(|at| now - at < backoff) {
                return false;
            }
        }
        self.fetched_at.is_none_or(|at| now - at >= DISCOVERY_TTL)
    }

    fn answer(&self, now: OffsetDateTime) -> Vec<String> {
        if self.current(now) {
            self.endpoints.clone()
        } else {
            Vec::new()
        }
    }
}

/// The provider's discovery document, fetched and cached.
pub struct ProviderDiscovery {
    issuer: String,
    url: String,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    fetching: Mutex<()>,
}

impl ProviderDiscovery {
    pub fn new(issuer: &str, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            url: discovery_url(issuer),
            clock,
            http,
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
        })
    }

    async fn fetch(&self) -> Result<Vec<String>, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("fetching {}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!(
                "fetching {}: HTTP {}",
                self.url,
                response.status().as_u16()
            ));
        }
        let document: Value = response
            .json()
            .await
            .map_err(|e| format!("{} is not a JSON document: {e}", self.url))?;
        browser_endpoints(&self.issuer, &document)
    }
}

/// Where the discovery document of `issuer` is.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The endpoints of [`BROWSER_ENDPOINTS`] a discovery document names, once
/// its `issuer` is checked against the configured one.
pub fn browser_endpoints(issuer: &str, document: &Value) -> Result<Vec<String>, String> {
    let stated = document["issuer"].as_str().unwrap_or_default();
    if stated.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(format!(
            "the discovery document names the issuer {stated:?}, not the configured {issuer:?}"
        ));
    }
    Ok(BROWSER_ENDPOINTS
        .iter()
        .filter_map(|field| document[*field].as_str())
        .map(str::to_owned)
        .collect())
}

#[async_trait]
impl ProviderOrigins for ProviderDiscovery {
    async fn endpoints(&self) -> Vec<String> {
        let now = self.clock.now();
        {
            let cache = self.cache.read().await;
            if !cache.fetch_due(now) {
                return cache.answer(now);
            }
        }
        let _fetching = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            if !cache.fetch_due(now) {
                return cache.answer(now);
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.attempted_at = Some(now);
        match fetched {
            Ok(endpoints) => {
                if cache.fetched_at.is_none() || endpoints != cache.endpoints {
                    tracing::info!(
                        endpoints = ?endpoints,
                        "the dashboard's policy allows the identity provider's endpoints"
                    );
                }
                cache.endpoints = endpoints;
                cache.fetched_at = Some(now);
                cache.failures = 0;
            }
            Err(detail) => {
                cache.failures = cache.failures.saturating_add(1);
                tracing::warn!(
                    error = %detail,
                    failures = cache.failures,
                    serving_cached_endpoints = cache.current(now),
                    "cannot read the identity provider's discovery document; \
                     the dashboard's policy allows its issuer's origin only until it can"
                );
            }
        }
        cache.answer(now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn the_document_is_at_the_issuers_well_known_path() {
        assert_eq!(
            discovery_url("https://login.example.com/tenant/v2.0/"),
            "https://login.example.com/tenant/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://accounts.example.com"),
            "https://accounts.example.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn only_the_browsers_endpoints_are_read() {
        let document = json!({
            "issuer": "https://accounts.example.com",
            "authorization_endpoint": "https://accounts.example.com/auth",
            "token_endpoint": "https://oauth2.example-apis.com/token",
            "userinfo_endpoint": "https://openidconnect.example-apis.com/v1/userinfo",
            "jwks_uri": "https://www.example-apis.com/oauth2/v3/certs",
            "revocation_endpoint": "https://oauth2.example-apis.com/revoke",
            "registration_endpoint": "https://elsewhere.example.net/register",
            "end_session_endpoint": "https://accounts.example.com/logout",
        });
        assert_eq!(
            browser_endpoints("https://accounts.example.com/", &document).unwrap(),
            [
                "https://oauth2.example-apis.com/token",
                "https://openidconnect.example-apis.com/v1/userinfo",
                "https://www.example-apis.com/oauth2/v3/certs",
                "https://oauth2.example-apis.com/revoke",
            ]
        );
    }

    #[test]
    fn a_document_for_another_issuer_is_refused() {
        let document = json!({
            "issuer": "https://impostor.example.com",
            "token_endpoint": "https://impostor.example.com/token",
        });
        assert!(browser_endpoints("https://accounts.example.com", &document).is_err());
        assert!(
            browser_endpoints(
                "https://accounts.example.com",
                &json!({"token_endpoint": "x"})
            )
            .is_err()
        );
    }

    #[test]
    fn a_failed_fetch_backs_off_and_the_last_endpoints_outlive_it_for_a_while() {
        let t0 = time::macros::datetime!(2026-06-01 09:00:00 UTC);
        let mut cache = Cache::default();
        assert!(cache.fetch_due(t0));
        assert!(cache.answer(t0).is_empty());
        cache.endpoints = vec!["https://idp.example.com/token".into()];
        cache.fetched_at = Some(t0);
        cache.attempted_at = Some(t0);
        assert!(!cache.fetch_due(t0 + time::Duration::minutes(9)));
        let stale = t0 + DISCOVERY_TTL;
        assert!(cache.fetch_due(stale));
        // The refresh fails: the endpoints stay, and the next try waits.
        cache.failures = 1;
        cache.attempted_at = Some(stale);
        assert_eq!(cache.answer(stale).len(), 1);
        assert!(!cache.fetch_due(stale));
        assert!(cache.fetch_due(stale + FIRST_BACKOFF));
        // An hour past the ten minutes, the policy falls back to the issuer.
        let late = t0 + DISCOVERY_TTL + OUTAGE_GRACE;
        assert!(cache.answer(late).is_empty());
    }
}
