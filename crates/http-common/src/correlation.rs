//! One correlation id per request: taken from a well-formed incoming
//! `X-Request-Id`, otherwise generated; echoed in the response, carried by every
//! log line of the request (the log format reads [`CorrelationId::with_current`])
//! and by every error body.
//!
//! The `request served` line names the route (`/api/core/v1/users/{external_user_id}`),
//! never the path as requested: paths carry customers' identifiers, and the
//! correlation id links the line to the audit trail, which holds pseudonyms.
//! [`RouteLayer`] hands the matched route to it; a request no route matched
//! is logged with its first path segment only.
//!
//! The same layer sets the headers every answer carries: `X-Content-Type-Options:
//! nosniff` on every response, and `Cache-Control: no-store` on every JSON
//! response (API answers carry flows, tokens and personal data: no shared or
//! browser cache may keep them).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower::{Layer, Service};

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id we adopt; longer ones are replaced.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: CorrelationId;
}

/// A request's correlation id. Cheap to clone: the request, its task-local and
/// its audit context share one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(Arc<str>);

impl CorrelationId {
    /// Adopts an incoming id when it is 1–128 characters of `A-Z a-z 0-9 . _ ~ : -`.
    pub fn adopt(raw: &str) -> Option<Self> {
        let well_formed = !raw.is_empty()
            && raw.len() <= MAX_LEN
            && raw.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b':' | b'-')
            });
        well_formed.then(|| Self(raw.into()))
    }

    /// A random UUID (version 4); see [`domain::ids::new_random_id`].
    pub fn generate() -> Self {
        Self(domain::ids::new_random_id().to_string().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the request being served, if any.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Calls `f` with the id of the request being served, without copying it,
    /// and says whether there was one: what the log format uses for every line.
    pub fn with_current(f: impl FnOnce(&str)) -> bool {
        CURRENT.try_with(|id| f(id.as_str())).is_ok()
    }
}

/// What a middleware written as a plain tower service (rather than with
/// `axum::middleware::from_fn`) answers: a boxed future of the response.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The middleware: assigns the id, makes it the request's task-local (which log
/// lines and audit events read), logs the outcome.
///
/// No `tracing` span per request: entering and leaving one at every poll of
/// the request's future cost a few per cent of the service's CPU, and a
/// task-local gives log lines the same id.
///
/// A plain tower layer rather than `axum::middleware::from_fn`, which clones
/// and boxes the service it wraps on every request; this one calls it as is.
#[derive(Debug, Clone, Copy, Default)]
pub struct CorrelateLayer;

impl<S> Layer<S> for CorrelateLayer {
    type Service = Correlate<S>;

    fn layer(&self, inner: S) -> Correlate<S> {
        Correlate { inner }
    }
}

/// [`CorrelateLayer`]'s service.
#[derive(Debug, Clone)]
pub struct Correlate<S> {
    inner: S,
}

impl<S> Service<Request> for Correlate<S>
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

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(CorrelationId::adopt)
            .unwrap_or_else(CorrelationId::generate);
        request.extensions_mut().insert(id.clone());
        // Below `info`, no closing line is logged and nothing is copied for it.
        let access = tracing::enabled!(tracing::Level::INFO).then(|| AccessLine {
            method: request.method().clone(),
            unmatched: first_segment(request.uri().path()),
            started: Instant::now(),
        });
        let served = CURRENT.sync_scope(id.clone(), || self.inner.call(request));
        Box::pin(async move {
            let Ok(mut response) = CURRENT.scope(id.clone(), served).await;
            if let Some(line) = access {
                let route = response
                    .extensions()
                    .get::<MatchedRoute>()
                    .map(|r| r.0.as_str());
                line.log(&id, route, response.status().as_u16());
            }
            if let Ok(value) = HeaderValue::from_str(id.as_str()) {
                response.headers_mut().insert(REQUEST_ID.clone(), value);
            }
            protect(response.headers_mut());
            Ok(response)
        })
    }
}

/// Sets the headers every response carries (see the module's documentation).
fn protect(headers: &mut HeaderMap) {
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    if is_json(headers) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// `application/json`, or any `+json` type (such as `application/problem+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"))
}

/// The first segment of `path` (`/assets/…`): all a request no route
/// matched is logged with, as the rest may be anything.
fn first_segment(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    match rest.split_once('/') {
        Some((first, more)) if !more.is_empty() => format!("/{first}/…"),
        Some((first, _)) => format!("/{first}/"),
        None => format!("/{rest}"),
    }
}

/// The route a request matched, carried from the router to the access line
/// in the response's extensions.
#[derive(Debug, Clone)]
struct MatchedRoute(MatchedPath);

/// Puts the matched route's template into the response for the access line;
/// [`crate::finish`] applies it to every route.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteLayer;

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route { inner }
    }
}

/// [`RouteLayer`]'s service.
#[derive(Debug, Clone)]
pub struct Route<S> {
    inner: S,
}

impl<S> Service<Request> for Route<S>
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
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .cloned()
            .map(MatchedRoute);
        let served = self.inner.call(request);
        Box::pin(async move {
            let Ok(mut response) = served.await;
            if let Some(route) = route {
                response.extensions_mut().insert(route);
            }
            Ok(response)
        })
    }
}

/// What the line that closes a request needs from it.
struct AccessLine {
    method: Method,
    /// What is logged when no route matched.
    unmatched: String,
    started: Instant,
}

impl AccessLine {
    /// Logged after the request's task-local is gone, with the id as a field
    /// of its own.
    fn log(self, id: &CorrelationId, route: Option<&str>, status: u16) {
        tracing::info!(
            correlation_id = %id.as_str(),
            method = %self.method,
            path = %route.unwrap_or(&self.unmatched),
            status,
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "request served"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_version_4_uuids_that_are_adopted_back() {
        let a = CorrelationId::generate();
        let b = CorrelationId::generate();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.as_str()).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(CorrelationId::adopt(a.as_str()), Some(a));
    }

    #[test]
    fn an_unmatched_path_is_logged_with_its_first_segment_only() {
        assert_eq!(first_segment("/"), "/");
        assert_eq!(first_segment("/favicon.ico"), "/favicon.ico");
        assert_eq!(first_segment("/users/"), "/users/");
        assert_eq!(first_segment("/users/alice"), "/users/…");
        assert_eq!(first_segment("/api/core/v1/users/alice/x"), "/api/…");
    }

    #[test]
    fn adopts_only_well_formed_ids() {
        for ok in [
            "abc",
            "0b6f2c1e-5d4a-4c1e-9a7b-2e8d6f0a1b2c",
            "trace:1.2_3~x",
            &"a".repeat(128),
        ] {
            assert!(CorrelationId::adopt(ok).is_some(), "{ok}");
        }
        for bad in ["", "a b", "a\nb", "<script>", "a;b", "ü", &"a".repeat(129)] {
            assert!(CorrelationId::adopt(bad).is_none(), "{bad:?}");
        }
    }
}
