//! Bounded work per request: each runtime serves at most so many requests at
//! once, and stops a request that runs past its time limit, so that slow or
//! numerous clients cannot hold the process. (The time a client may take to
//! send its request headers is bounded where connections are served.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// `BIOMETRIC_PASSKEY_HTTP_*`: what one runtime takes on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers before the
    /// connection is closed.
    pub header_read_timeout: Duration,
    /// How long a request may run (a long-poll's wait included).
    pub request_timeout: Duration,
    /// Requests served at once; more are answered `503 server_busy`.
    /// Long-polls count against their own cap while they wait.
    pub max_concurrent_requests: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 512,
        }
    }
}

/// A request's place under [`HttpLimits::max_concurrent_requests`]. A handler
/// about to wait for a long time without working (a long-poll) gives it up,
/// to count against a cap of its own instead.
#[derive(Clone, Debug, Default)]
pub struct RequestSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl RequestSlot {
    /// Frees the place for another request; the request goes on.
    pub fn release(&self) {
        if let Ok(mut permit) = self.0.lock() {
            permit.take();
        }
    }
}

/// The middleware state: one semaphore for all of a runtime's routes.
#[derive(Clone)]
pub(crate) struct Bounds {
    permits: Arc<Semaphore>,
    request_timeout: Duration,
}

impl Bounds {
    pub(crate) fn new(limits: &HttpLimits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.max_concurrent_requests as usize)),
            request_timeout: limits.request_timeout,
        }
    }
}

/// Refuses a request over the cap at once; stops one past its time limit.
pub(crate) async fn bounded(
    State(bounds): State<Bounds>,
    mut request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = bounds.permits.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy,
            "this replica is serving as many requests as it takes at once; retry later",
        )
        .into_response();
    };
    // Held here until the response is ready (the request's own copy goes
    // when the handler has taken what it needs from the request).
    let slot = RequestSlot(Arc::new(Mutex::new(Some(permit))));
    request.extensions_mut().insert(slot.clone());
    let _slot = slot;
    match tokio::time::timeout(bounds.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                limit_seconds = bounds.request_timeout.as_secs(),
                "request stopped at its time limit"
            );
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::RequestTimeout,
                format!(
                    "the request took longer than {} seconds and was stopped; retry later",
                    bounds.request_timeout.as_secs()
                ),
            )
            .into_response()
        }
    }
}
