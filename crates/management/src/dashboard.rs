//! The dashboard's files: a single-page app built from `dashboard/` (Vite) into
//! `dashboard/dist`, embedded into the binary at compile time when present.
//!
//! - `/assets/*` are content-hashed by the build: cached for a year, immutable.
//! - Every other GET outside `/api/` is a page of the app (`/`, `/login`,
//!   `/auth/callback`, deep links such as `/users/u-1`): `index.html`, never
//!   cached, under a strict Content-Security-Policy. Its `connect-src` names
//!   this origin, the issuer's, and the origins of the endpoints the
//!   provider's discovery document gives for the browser's calls (token,
//!   userinfo, JWKS, revocation): a [`ProviderOrigins`] port, fetched and
//!   cached in `operator-auth`. Every origin is checked here before it
//!   reaches the header: `https` (`http` only on loopback), a plain host, no
//!   wildcard.
//! - A binary built without `dashboard/dist` (no Node at build time) serves the
//!   Management API as usual and a short page saying the dashboard is not
//!   part of this build.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
pub use domain::operator::ProviderOrigins;
use rust_embed::{Embed, EmbeddedFile};

#[derive(Embed)]
#[folder = "../../dashboard/dist"]
#[allow_missing = true]
struct Assets;

/// Hashed build output: safe to cache until the hash changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The app's shell: always revalidated, so a deployment is picked up at once.
const NO_CACHE: &str = "no-cache";
/// Other root files (the icon): short-lived.
const SHORT: &str = "public, max-age=3600";

/// Serves the dashboard for the requests no other route matched.
#[derive(Clone)]
pub struct Dashboard {
    issuer: String,
    provider: Arc<dyn ProviderOrigins>,
}

impl Dashboard {
    /// `issuer` is the operators' OIDC issuer (the app reads its discovery
    /// document there); `provider` names the other endpoints the app calls.
    pub fn new(issuer: &str, provider: Arc<dyn ProviderOrigins>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            provider,
        }
    }

    async fn csp(&self) -> HeaderValue {
        let endpoints = self.provider.endpoints().await;
        HeaderValue::from_str(&content_security_policy(&self.issuer, &endpoints))
            .unwrap_or_else(|_| HeaderValue::from_static(BASE_POLICY_SELF_ONLY))
    }

    /// Whether the dashboard's files are part of this binary.
    pub fn is_built() -> bool {
        Assets::get("index.html").is_some()
    }

    pub async fn serve(&self, method: Method, uri: Uri, headers: HeaderMap) -> Response {
        let path = uri.path();
        if path == "/api" || path.starts_with("/api/") {
            return http_common::error::route_not_found().await.into_response();
        }
        if method != Method::GET && method != Method::HEAD {
            return http_common::error::route_not_found().await.into_response();
        }
        let name = path.trim_start_matches('/');
        if name.starts_with("assets/") {
            return match Assets::get(name) {
                Some(file) => file_response(&file, IMMUTABLE, &headers),
                None => not_found(),
            };
        }
        // Root files of the build (the icon); never index.html under another name.
        if !name.is_empty()
            && !name.contains('/')
            && name != "index.html"
            && let Some(file) = Assets::get(name)
        {
            return file_response(&file, SHORT, &headers);
        }
        let csp = self.csp().await;
        match Assets::get("index.html") {
            Some(file) => {
                let mut response = file_response(&file, NO_CACHE, &headers);
                page_headers(response.headers_mut(), csp);
                response
            }
            None => not_built(csp),
        }
    }
}

fn page_headers(headers: &mut HeaderMap, csp: HeaderValue) {
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

fn not_built(csp: HeaderValue) -> Response {
    let mut response = (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, NO_CACHE),
        ],
        NOT_BUILT_PAGE,
    )
        .into_response();
    page_headers(response.headers_mut(), csp);
    response
}

const NOT_BUILT_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>biometric-passkey management</title></head><body>\
<h1>The dashboard is not part of this build</h1>\
<p>This binary was built without the dashboard's files. The Management API \
under <code>/api/management/v1/</code> works as usual.</p>\
<p>To include the dashboard, run <code>scripts/build-dashboard</code> (needs Node.js) \
before building the binary; release images always include it.</p></body></html>";

/// Used only if the policy cannot be put in a header (the origins are checked
/// before, so it cannot happen): the app then cannot sign in, but stays locked down.
const BASE_POLICY_SELF_ONLY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// No inline script or style, nothing from other origins but the identity
/// provider's (the issuer's origin and those of `endpoints`), no framing.
pub fn content_security_policy(issuer: &str, endpoints: &[String]) -> String {
    let mut connect = vec!["'self'".to_owned()];
    let issuer = connect_origin(issuer);
    connect.extend(issuer.clone());
    let mut others: Vec<String> = endpoints
        .iter()
        .filter_map(|endpoint| connect_origin(endpoint))
        .filter(|origin| Some(origin) != issuer.as_ref())
        .collect();
    others.sort();
    others.dedup();
    connect.extend(others);
    let connect = connect.join(" ");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         font-src 'self'; connect-src {connect}; manifest-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The origin of `url` as a `connect-src` source, when it is one the browser
/// may be allowed to call: `https`, or `http` on a loopback host; a host of
/// letters, digits, dots and hyphens (or an IPv4 address), so nothing in it
/// reads as a wildcard or a second source. CSP's grammar has no IPv6 literals.
pub fn connect_origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let loopback = match url.host()? {
        url::Host::Domain(domain) => {
            let plain = !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !plain {
                return None;
            }
            domain == "localhost"
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(_) => return None,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return None,
    }
    Some(url.origin().ascii_serialization())
}

fn file_response(file: &EmbeddedFile, cache: &'static str, request: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut builder = Response::builder()
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, &etag)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if matches {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::NOT_MODIFIED.into_response());
    }
    builder = builder.header(header::CONTENT_TYPE, content_type(file.metadata.mimetype()));
    builder
        .body(Body::from(file.data.clone().into_owned()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn content_type(mime: &str) -> String {
    if mime.starts_with("text/") || mime == "application/javascript" || mime == "image/svg+xml" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, NO_CACHE)],
        "not found",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(issuer: &str, endpoints: &[&str]) -> String {
        let endpoints: Vec<String> = endpoints.iter().map(|e| (*e).to_owned()).collect();
        content_security_policy(issuer, &endpoints)
    }

    #[test]
    fn the_policy_allows_only_this_origin_and_the_issuer() {
        let csp = policy("https://login.example.com/tenant/v2.0/", &[]);
        assert!(csp.contains("connect-src 'self' https://login.example.com;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn a_loopback_issuer_keeps_its_port() {
        let csp = policy("http://127.0.0.1:3001/", &[]);
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:3001;"));
    }

    #[test]
    fn an_unparseable_issuer_adds_no_origin() {
        assert!(policy("not a url", &[]).contains("connect-src 'self';"));
    }

    #[test]
    fn the_providers_endpoints_add_their_origins_once_each() {
        let csp = policy(
            "https://accounts.example.com",
            &[
                "https://oauth2.example-apis.com/token",
                "https://openidconnect.example-apis.com/v1/userinfo",
                "https://www.example-apis.com/oauth2/v3/certs",
                "https://oauth2.example-apis.com/revoke",
                "https://accounts.example.com/jwks",
            ],
        );
        assert!(
            csp.contains(
                "connect-src 'self' https://accounts.example.com https://oauth2.example-apis.com \
                 https://openidconnect.example-apis.com https://www.example-apis.com;"
            ),
            "{csp}"
        );
    }

    #[test]
    fn endpoints_that_are_not_plain_secure_origins_are_left_out() {
        let csp = policy(
            "https://login.example.com",
            &[
                "https://*.example.com/token",
                "*",
                "https:",
                "http://idp.example.com/token",
                "javascript:alert(1)",
                "data:text/plain,x",
                "https://a.example.com; script-src *",
                "https://a.example.com 'unsafe-inline'",
                "wss://idp.example.com/",
                "https://[2001:db8::1]/token",
                "not a url",
                "",
            ],
        );
        assert!(
            csp.contains("connect-src 'self' https://login.example.com;"),
            "{csp}"
        );
        assert!(!csp.contains('*'), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn loopback_endpoints_may_be_plain_http() {
        let csp = policy(
            "http://127.0.0.1:8080",
            &["http://127.0.0.1:8081/token", "http://localhost:8082/jwks"],
        );
        assert!(
            csp.contains(
                "connect-src 'self' http://127.0.0.1:8080 http://127.0.0.1:8081 http://localhost:8082;"
            ),
            "{csp}"
        );
    }
}
