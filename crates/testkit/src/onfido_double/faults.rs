//! Route faults: the next calls to a route misbehave. `ServerError`,
//! `NonJsonBadGateway` and `RateLimited` answer in the route's place and
//! process nothing; `UnavailableAfterProcessing`, `Delay` and
//! `DropConnection` let the route process the call, then answer 503, answer
//! late, or cut the connection (assumption 6).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::config::{Fault, Route};
use super::listener::ConnHandle;
use super::responses::{error_response, rate_limited};
use super::state::DoubleState;

impl DoubleState {
    /// The fault set on `route`, counting this call against it.
    pub(super) fn take_fault(&mut self, route: Route) -> Option<Fault> {
        let (fault, remaining) = self.route_faults.get_mut(&route)?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            self.route_faults.remove(&route);
        }
        Some(fault)
    }
}

/// The answer of a fault that processes nothing, given in the route's place.
pub(super) fn refusal(fault: &Fault) -> Option<Response> {
    match fault {
        Fault::ServerError => Some(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Something went wrong",
            json!({}),
        )),
        Fault::NonJsonBadGateway => Some(
            (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response(),
        ),
        Fault::RateLimited { retry_after } => Some(rate_limited(retry_after.map(u64::from))),
        Fault::Delay(_) | Fault::DropConnection | Fault::UnavailableAfterProcessing => None,
    }
}

/// The answer once the route processed the call: a gateway's 503 in its
/// place under `UnavailableAfterProcessing`. Returns the fault still to apply
/// as the answer leaves.
pub(super) fn after_processing(
    response: Response,
    fault: Option<Fault>,
) -> (Response, Option<Fault>) {
    if fault == Some(Fault::UnavailableAfterProcessing) {
        let response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The service is temporarily unavailable",
            json!({}),
        );
        return (response, None);
    }
    (response, fault)
}

/// The answer as it leaves: late under `Delay`, never under
/// `DropConnection` (the connection is cut before a byte is written).
pub(super) async fn as_answered(
    response: Response,
    fault: Option<Fault>,
    conn: &ConnHandle,
) -> Response {
    match fault {
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            response
        }
        Some(Fault::DropConnection) => {
            conn.cut();
            response
        }
        _ => response,
    }
}
