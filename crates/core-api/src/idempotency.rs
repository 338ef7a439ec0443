//! `Idempotency-Key` on creating and completing calls.
//!
//! The first request with a key is processed and its response stored for 24
//! hours; a repeat with the same method, path and body gets the stored
//! response again, marked `Idempotent-Replayed: true`; a repeat with a
//! different request is refused (422); one arriving while the first is still
//! processed is told to retry (409). A 5xx answer is not stored, so the
//! client may retry it with the same key. The key is optional.
//!
//! Storing, sealing and opening the responses is the domain's
//! ([`domain::idempotency::Idempotency`]), which also keeps the customer's
//! user id out of what is stored; this layer reads the key, buffers the
//! request and response, and names the user a response concerns
//! ([`ConcernsUser`]), so that deleting the user deletes it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::UserId;
use domain::idempotency::Begin;
use http_common::ApiError;
use http_common::correlation::ResponseFuture;
use proto::ErrorCode;
use tower::{Layer, Service};

use crate::CoreState;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// The largest response we store for replay.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Set on a response (as an extension) by a route whose answer concerns a
/// user: the stored copy is then deleted with the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcernsUser(pub UserId);

fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// The middleware; apply it (as a route layer) to the routes that create or
/// complete.
///
/// A plain tower layer rather than `axum::middleware::from_fn_with_state`,
/// which clones and boxes the route on every request: a request without a key
/// goes straight to the route.
#[derive(Clone)]
pub struct IdempotencyLayer {
    state: Arc<CoreState>,
}

impl IdempotencyLayer {
    pub fn new(state: Arc<CoreState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotent<S>;

    fn layer(&self, inner: S) -> Idempotent<S> {
        Idempotent {
            state: self.state.clone(),
            inner,
        }
    }
}

/// [`IdempotencyLayer`]'s service.
#[derive(Clone)]
pub struct Idempotent<S> {
    state: Arc<CoreState>,
    inner: S,
}

impl<S> Service<Request> for Idempotent<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let key = match key_of(request.headers()) {
            Ok(None) => return Box::pin(self.inner.call(request)),
            Ok(Some(key)) => key,
            Err(err) => return Box::pin(std::future::ready(Ok(err.into_response()))),
        };
        // The readied service goes with the request; a clone stays for the next.
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let state = self.state.clone();
        Box::pin(async move {
            Ok(match process(&state, key, request, inner).await {
                Ok(response) => response,
                Err(err) => err.into_response(),
            })
        })
    }
}

async fn process<S>(
    state: &CoreState,
    key: String,
    request: Request,
    mut inner: S,
) -> Result<Response, ApiError>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let (parts, body) = request.into_parts();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let scope = state
        .idempotency
        .scope(parts.method.as_str(), parts.uri.path(), route);
    let body: Bytes = to_bytes(body, crate::v1::BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the body exceeds this route's size limit",
        )
    })?;

    let claim = match state.idempotency.begin(&scope, &key, &body).await? {
        Begin::Replay(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let mut response = (status, stored.body.to_vec()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            return Ok(response);
        }
        Begin::Mismatch => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request",
            ));
        }
        Begin::InProgress => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyRequestInProgress,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ));
        }
        Begin::Proceed(claim) => claim,
    };

    let Ok(response) = inner
        .call(Request::from_parts(parts, Body::from(body)))
        .await;
    let status = response.status();
    if status.is_server_error() {
        // Nothing replayable: let the client retry with the same key.
        if let Err(e) = state.idempotency.abandon(claim).await {
            tracing::warn!(error = %e, "could not release an idempotency claim; it expires on its own");
        }
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let user = parts.extensions.get::<ConcernsUser>().map(|c| c.0);
    let bytes = to_bytes(body, MAX_RESPONSE)
        .await
        .map_err(|e| ApiError::internal(format!("buffering a response: {e}")))?;
    if let Err(e) = state
        .idempotency
        .finish(claim, status.as_u16(), &bytes, user)
        .await
    {
        // The change itself is committed; a retry will find the claim unfinished
        // until its lock passes, then be processed (and refused by the flow's state).
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
