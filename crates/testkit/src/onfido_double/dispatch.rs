//! Every request: the control plane, or the API (recorded, counted against
//! the rate limit, authenticated, resolved to its endpoint, faulted, handled).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::config::{Fault, OnfidoDoubleConfig, RecordedRequest};
use super::control::control;
use super::deliveries::DeliveryPlan;
use super::endpoint::endpoint;
use super::faults;
use super::handle::Shared;
use super::listener::ConnHandle;
use super::responses::{error_response, rate_limited};
use super::routes;

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;

/// Every request arrives here: control plane, or the API.
pub(super) async fn dispatch(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    if let Some(rest) = parts.uri.path().strip_prefix("/__control/") {
        return control(&shared, &parts.method, rest, &bytes).await;
    }
    let (response, plan, fault) = api(&shared, &parts, &bytes);
    if let Some(plan) = plan {
        shared.deliver_in_background(plan);
    }
    faults::as_answered(response, fault, &conn).await
}

/// The API, synchronously under the lock. Returns the answer, deliveries to
/// send in the background, and the fault still to apply (delay or drop).
fn api(
    shared: &Shared,
    parts: &Parts,
    bytes: &[u8],
) -> (Response, Option<DeliveryPlan>, Option<Fault>) {
    let mut state = shared.state();
    let authorized = authorized(&state.config, &parts.headers);
    let body = if bytes.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|_| ())
    };
    state.record(recorded(parts, bytes, body.as_ref().ok(), authorized));
    if let Err(wait) = state.admit(Instant::now()) {
        return (rate_limited(Some(wait)), None, None);
    }
    let endpoint = match endpoint(&parts.method, parts.uri.path(), authorized) {
        Ok(endpoint) => endpoint,
        Err(refusal) => return (refusal.into_response(), None, None),
    };
    let fault = endpoint.route().and_then(|route| state.take_fault(route));
    if let Some(refusal) = fault.as_ref().and_then(faults::refusal) {
        return (refusal, None, None);
    }
    let Ok(body) = body else {
        // Assumption: how a body that is not JSON is refused.
        let response = error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid JSON in request body",
            json!({}),
        );
        return (response, None, fault);
    };
    let (response, plan) = routes::handle(shared, &mut state, endpoint, &parts.uri, &body);
    let (response, fault) = faults::after_processing(response, fault);
    (response, plan, fault)
}

/// Whether `Authorization` is exactly `Token token=<api_token>`.
fn authorized(config: &OnfidoDoubleConfig, headers: &HeaderMap) -> bool {
    let expected = format!("Token token={}", config.api_token);
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

/// The request as [`OnfidoDouble::requests`](super::OnfidoDouble::requests)
/// shows it: the body as JSON (or as text when it is not), `Authorization`
/// masked.
fn recorded(
    parts: &Parts,
    bytes: &[u8],
    body: Option<&Value>,
    authorized: bool,
) -> RecordedRequest {
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        body: body
            .cloned()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(bytes).into_owned())),
        authorized,
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if *name == header::AUTHORIZATION {
                    "<masked>".to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_owned(), shown)
            })
            .collect(),
    }
}
