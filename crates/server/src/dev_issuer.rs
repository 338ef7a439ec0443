//! The development sign-in: a minimal OIDC issuer for `biometric-passkey dev`.
//!
//! **It exists only in `dev`, on loopback.** [`DevIssuer::new`] refuses any
//! bind address that is not a loopback address, and nothing in the
//! `management` command or its configuration can enable it: only
//! [`crate::dev`] wires it into the management runtime it serves. In every
//! other setup operators sign in with the organisation's own OIDC provider.
//!
//! It lets a newcomer open the dashboard and act as an operator without
//! installing an identity provider: the authorization code flow with PKCE
//! (S256) for the dashboard, a public client. The sign-in page asks for an
//! operator name (the tokens' `sub`) and which of the requested `management.*`
//! scopes to grant; there is no password, so anyone who can reach the page can
//! act as any operator with any scope.
//!
//! - `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json`:
//!   discovery, and the ES256 key generated in memory at every start.
//! - `GET /dev-oidc/authorize`: validates the request and shows the sign-in
//!   page; `POST /dev-oidc/authorize` re-validates it, keeps a one-time code in
//!   memory for 60 seconds and redirects back to the dashboard's callback.
//! - `POST /dev-oidc/token`: redeems a code once, with its PKCE verifier, for
//!   an access token (for the Management API) and an ID token (for the dashboard).
//! - `GET /dev-oidc/logout`: back to the dashboard's sign-in page. Tokens are
//!   not revoked; they expire after an hour.
//!
//! Only the dashboard's own callback (`{origin}/auth/callback`) and sign-in
//! page (`{origin}/login`) are ever redirected to. Codes, tokens and verifiers
//! are never logged.

mod codes;
mod keys;
mod page;
mod request;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::Clock;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use self::codes::{CODE_LIFETIME, Codes, Grant, random_base64url};
use self::keys::SigningKey;
use self::request::{AuthorizationRequest, Expected, Params, is_code_verifier, s256};
use crate::config::ManagementConfig;

/// How long the tokens it issues are valid, in seconds.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;

/// The largest form the sign-in and token endpoints accept.
const BODY_LIMIT: usize = 16 * 1024;

/// The development-only OIDC issuer of one management runtime.
#[derive(Clone)]
pub struct DevIssuer {
    state: Arc<Issuer>,
}

/// What the handlers share.
struct Issuer {
    /// The configured issuer, exactly (with its trailing slash).
    issuer: String,
    /// `http://{bind address}`: where the endpoints are served.
    origin: String,
    audience: String,
    client_id: String,
    scope_claim: String,
    scope_prefix: String,
    /// The scopes the dashboard requests, as `/runtime-config.json` gives them.
    scopes: Vec<String>,
    key: SigningKey,
    codes: Codes,
    clock: Arc<dyn Clock>,
}

impl DevIssuer {
    /// The issuer for the management runtime bound to `addr` and configured
    /// by `config`. Refuses a bind address that is not loopback, and a
    /// configured issuer that is not `http://{addr}/` (tokens it signed would
    /// not verify). Generates a new signing key.
    pub fn new(
        addr: SocketAddr,
        config: &ManagementConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "the development sign-in serves only on loopback, and {addr} is not a loopback address"
            );
        }
        let origin = format!("http://{addr}");
        let expected_issuer = format!("{origin}/");
        if config.auth.issuer != expected_issuer {
            anyhow::bail!(
                "the development sign-in must be the configured issuer: expected {expected_issuer}, configured {}",
                config.auth.issuer
            );
        }
        let scopes = management::runtime_config::runtime_config(&config.auth, &config.ui)
            .oidc
            .scopes;
        let key = SigningKey::generate().context("while generating the development signing key")?;
        Ok(Self {
            state: Arc::new(Issuer {
                issuer: config.auth.issuer.clone(),
                origin,
                audience: config.auth.audience.clone(),
                client_id: config.ui.client_id.clone(),
                scope_claim: config.auth.scope_claim.clone(),
                scope_prefix: config.auth.scope_prefix.clone(),
                scopes,
                key,
                codes: Codes::default(),
                clock,
            }),
        })
    }

    /// Where the endpoints are served, e.g. `http://127.0.0.1:3001`.
    pub fn origin(&self) -> &str {
        &self.state.origin
    }

    /// The issuer's routes, to merge into the management runtime's router.
    /// They carry their own correlation and body-size layers, and no fallback.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .route(
                "/dev-oidc/authorize",
                get(authorize_page).post(authorize_submit),
            )
            .route("/dev-oidc/token", axum::routing::post(token))
            .route("/dev-oidc/logout", get(logout))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(http_common::correlation::CorrelateLayer)
            .with_state(self.state.clone())
    }
}

impl Issuer {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    fn callback(&self) -> String {
        self.endpoint("/auth/callback")
    }

    fn expected(&self) -> Expected<'_> {
        Expected {
            client_id: &self.client_id,
            redirect_uri: self.callback(),
            scopes: &self.scopes,
        }
    }

    /// Whether `scope` is one of the Management API's (after the configured prefix).
    fn is_management(&self, scope: &str) -> bool {
        scope
            .strip_prefix(self.scope_prefix.as_str())
            .is_some_and(|canonical| canonical.starts_with("management."))
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }
}

const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

/// `GET /.well-known/openid-configuration`
async fn discovery(State(issuer): State<Arc<Issuer>>) -> Response {
    let document = json!({
        "issuer": issuer.issuer,
        "authorization_endpoint": issuer.endpoint("/dev-oidc/authorize"),
        "token_endpoint": issuer.endpoint("/dev-oidc/token"),
        "jwks_uri": issuer.endpoint("/.well-known/jwks.json"),
        "end_session_endpoint": issuer.endpoint("/dev-oidc/logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": issuer.scopes,
    });
    // The key, and so the document's meaning, changes at every start.
    ([NO_STORE], Json(document)).into_response()
}

/// `GET /.well-known/jwks.json`
async fn jwks(State(issuer): State<Arc<Issuer>>) -> Response {
    ([NO_STORE], Json(json!({ "keys": [issuer.key.jwk()] }))).into_response()
}

/// `GET /dev-oidc/authorize`: the sign-in page, for a valid request only.
async fn authorize_page(State(issuer): State<Arc<Issuer>>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    match AuthorizationRequest::from_params(&params, "scope", &issuer.expected()) {
        Ok(request) => page::respond(
            StatusCode::OK,
            page::sign_in(&request, |scope| issuer.is_management(scope)),
        ),
        Err(problem) => page::respond(StatusCode::BAD_REQUEST, page::problem(&problem)),
    }
}

/// `POST /dev-oidc/authorize`: the submitted sign-in page.
async fn authorize_submit(State(issuer): State<Arc<Issuer>>, body: Bytes) -> Response {
    match grant(&issuer, &Params::parse(&body)) {
        Ok(location) => ([NO_STORE], Redirect::to(&location)).into_response(),
        Err(problem) => page::respond(StatusCode::BAD_REQUEST, page::problem(&problem)),
    }
}

/// Re-validates the submitted request, keeps a code for it, and returns where to send the browser.
fn grant(issuer: &Issuer, params: &Params) -> Result<String, String> {
    let request =
        AuthorizationRequest::from_params(params, page::REQUESTED_SCOPE_FIELD, &issuer.expected())?;
    let sub = request::operator_name(params.required("sub")?)?;
    let mut chosen = Vec::new();
    for scope in params.all("scope") {
        if !issuer.is_management(scope) || !request.scopes.iter().any(|s| s == scope) {
            return Err(format!(
                "the scope {scope} was not among the requested management scopes"
            ));
        }
        chosen.push(scope);
    }
    let scopes = request
        .scopes
        .iter()
        .filter(|s| !issuer.is_management(s) || chosen.contains(&s.as_str()))
        .cloned()
        .collect();
    let now = issuer.clock.now();
    let code = issuer.codes.issue(
        Grant {
            client_id: request.client_id,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge,
            nonce: request.nonce,
            sub,
            scopes,
            expires_at: now + CODE_LIFETIME,
        },
        now,
    );
    let mut location = url::Url::parse(&request.redirect_uri)
        .map_err(|_| "the redirect_uri is not a URL".to_owned())?;
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = &request.state {
            query.append_pair("state", state);
        }
    }
    Ok(location.into())
}

/// An error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug)]
struct TokenError {
    error: &'static str,
    description: &'static str,
}

impl TokenError {
    fn invalid_request(description: &'static str) -> Self {
        Self {
            error: "invalid_request",
            description,
        }
    }

    fn invalid_grant(description: &'static str) -> Self {
        Self {
            error: "invalid_grant",
            description,
        }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        (
            StatusCode::BAD_REQUEST,
            [NO_STORE, (header::PRAGMA, "no-cache")],
            Json(body),
        )
            .into_response()
    }
}

/// `POST /dev-oidc/token`: redeems an authorization code.
async fn token(State(issuer): State<Arc<Issuer>>, body: Bytes) -> Response {
    match redeem(&issuer, &Params::parse(&body)) {
        Ok(tokens) => ([NO_STORE, (header::PRAGMA, "no-cache")], Json(tokens)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn single<'a>(params: &'a Params, name: &str) -> Result<&'a str, TokenError> {
    params
        .required(name)
        .map_err(|_| TokenError::invalid_request("a required parameter is missing or repeated"))
}

fn redeem(issuer: &Issuer, params: &Params) -> Result<Value, TokenError> {
    if single(params, "grant_type")? != "authorization_code" {
        return Err(TokenError {
            error: "unsupported_grant_type",
            description: "only authorization_code is supported",
        });
    }
    let code = single(params, "code")?;
    // Single use: the code is gone from here on, whatever follows.
    let grant = issuer.codes.take(code);
    let redirect_uri = single(params, "redirect_uri")?;
    let client_id = single(params, "client_id")?;
    let verifier = single(params, "code_verifier")?;
    if !is_code_verifier(verifier) {
        return Err(TokenError::invalid_request(
            "code_verifier must be 43 to 128 unreserved characters",
        ));
    }
    let grant = grant.ok_or(TokenError::invalid_grant(
        "the code is unknown or was already used",
    ))?;
    if issuer.clock.now() >= grant.expires_at {
        return Err(TokenError::invalid_grant("the code has expired"));
    }
    if client_id != grant.client_id || redirect_uri != grant.redirect_uri {
        return Err(TokenError::invalid_grant(
            "the code was issued to another client or redirect_uri",
        ));
    }
    let challenge_matches: bool = s256(verifier)
        .as_bytes()
        .ct_eq(grant.code_challenge.as_bytes())
        .into();
    if !challenge_matches {
        return Err(TokenError::invalid_grant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    tokens(issuer, &grant).map_err(|e| {
        tracing::error!(error = %e, "the development sign-in could not sign a token");
        TokenError {
            error: "server_error",
            description: "the token could not be signed",
        }
    })
}

/// The access and ID tokens for a redeemed grant.
fn tokens(issuer: &Issuer, grant: &Grant) -> Result<Value, jsonwebtoken::errors::Error> {
    let now = issuer.now();
    let exp = now.saturating_add(TOKEN_LIFETIME_SECS);
    let scope = grant.scopes.join(" ");

    let mut access = Map::new();
    access.insert("iss".into(), json!(issuer.issuer));
    access.insert("aud".into(), json!(issuer.audience));
    access.insert("sub".into(), json!(grant.sub));
    access.insert("client_id".into(), json!(grant.client_id));
    access.insert(issuer.scope_claim.clone(), json!(scope));
    access.insert("iat".into(), json!(now));
    access.insert("nbf".into(), json!(now));
    access.insert("exp".into(), json!(exp));
    access.insert("jti".into(), json!(random_base64url::<16>()));
    let access_token = issuer.key.sign("at+jwt", &Value::Object(access))?;

    let mut id = json!({
        "iss": issuer.issuer,
        "sub": grant.sub,
        "aud": grant.client_id,
        "iat": now,
        "exp": exp,
        "name": grant.sub,
    });
    if let (Some(nonce), Some(claims)) = (&grant.nonce, id.as_object_mut()) {
        claims.insert("nonce".into(), json!(nonce));
    }
    let id_token = issuer.key.sign("JWT", &id)?;

    Ok(json!({
        "access_token": access_token,
        "id_token": id_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "scope": scope,
    }))
}

/// `GET /dev-oidc/logout`: back to the dashboard's sign-in page.
async fn logout(State(issuer): State<Arc<Issuer>>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let login = issuer.endpoint("/login");
    let requested = params.optional("post_logout_redirect_uri").ok().flatten();
    let location = match (requested, url::Url::parse(&login)) {
        (Some(uri), Ok(mut url)) if uri == login => {
            if let Ok(Some(state)) = params.optional("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            url.into()
        }
        _ => login,
    };
    let mut response = Redirect::to(&location).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
