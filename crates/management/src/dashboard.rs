//! The dashboard's files: a single-page app built from `dashboard/` (Vite) into
//! `dashboard/dist`, embedded into the binary at compile time when present.
//!
//! - `/assets/*` are content-hashed by the build: cached for a year, immutable.
//! - Every other GET outside `/api/` is a page of the app (`/`, `/login`,
//!   `/auth/callback`, deep links such as `/users/u-1`): `index.html`, never
//!   cached, under a strict Content-Security-Policy.
//! - A binary built without `dashboard/dist` (no Node at build time) serves the
//!   Management API as usual and a short page saying the dashboard is not
//!   part of this build.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
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
#[derive(Debug, Clone)]
pub struct Dashboard {
    csp: HeaderValue,
}

impl Dashboard {
    /// `issuer` is the operators' OIDC issuer: the only other origin the app
    /// talks to (discovery and the token endpoint).
    pub fn new(issuer: &str) -> Self {
        Self {
            csp: HeaderValue::from_str(&content_security_policy(issuer))
                .unwrap_or_else(|_| HeaderValue::from_static(BASE_POLICY_SELF_ONLY)),
        }
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
        match Assets::get("index.html") {
            Some(file) => {
                let mut response = file_response(&file, NO_CACHE, &headers);
                self.page_headers(response.headers_mut());
                response
            }
            None => self.not_built(),
        }
    }

    fn page_headers(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
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

    fn not_built(&self) -> Response {
        let mut response = (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, NO_CACHE),
            ],
            NOT_BUILT_PAGE,
        )
            .into_response();
        self.page_headers(response.headers_mut());
        response
    }
}

const NOT_BUILT_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>biometric-passkey management</title></head><body>\
<h1>The dashboard is not part of this build</h1>\
<p>This binary was built without the dashboard's files. The Management API \
under <code>/api/management/v1/</code> works as usual.</p>\
<p>To include the dashboard, run <code>scripts/build-dashboard</code> (needs Node.js) \
before building the binary; release images always include it.</p></body></html>";

/// Used only if the issuer cannot be put in a header (configuration validation
/// already refuses such issuers): the app then cannot sign in, but stays locked down.
const BASE_POLICY_SELF_ONLY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// No inline script or style, nothing from other origins but the issuer's
/// endpoints, no framing.
pub fn content_security_policy(issuer: &str) -> String {
    let connect = match url::Url::parse(issuer) {
        Ok(url) if matches!(url.scheme(), "https" | "http") => {
            format!("'self' {}", url.origin().ascii_serialization())
        }
        _ => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         font-src 'self'; connect-src {connect}; manifest-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
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

    #[test]
    fn the_policy_allows_only_this_origin_and_the_issuer() {
        let csp = content_security_policy("https://login.example.com/tenant/v2.0/");
        assert!(csp.contains("connect-src 'self' https://login.example.com;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn a_loopback_issuer_keeps_its_port() {
        let csp = content_security_policy("http://127.0.0.1:3001/");
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:3001;"));
    }

    #[test]
    fn an_unparseable_issuer_adds_no_origin() {
        assert!(content_security_policy("not a url").contains("connect-src 'self';"));
    }
}
