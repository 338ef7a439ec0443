//! The provider's answers: the §8 error envelope
//! (`{"error": {"type", "message", "fields"}}`) and its variants.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

const VALIDATION_MESSAGE: &str = "There was a validation error on this request";

pub(super) fn json_response(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// The §8 envelope: `{"error": {"type", "message", "fields"}}`.
pub(super) fn error_response(
    status: StatusCode,
    kind: &str,
    message: &str,
    fields: Value,
) -> Response {
    json_response(
        status,
        json!({"error": {"type": kind, "message": message, "fields": fields}}),
    )
}

pub(super) fn validation_error(fields: Map<String, Value>) -> Response {
    error_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
        VALIDATION_MESSAGE,
        Value::Object(fields),
    )
}

pub(super) fn not_found(message: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        message,
        json!({}),
    )
}

/// Biometric tokens' exact 404 (spec §5.1): no `fields`.
pub(super) fn token_not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {"type": "resource_not_found", "message": "Not found"}}),
    )
}

/// The 429 answer. Assumption (spec §9: body and headers unverified): the §8
/// envelope with `type: "rate_limit"`, and `Retry-After` in seconds when known.
pub(super) fn rate_limited(retry_after: Option<u64>) -> Response {
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit",
        "Rate limit exceeded, please try again later",
        json!({}),
    );
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Assumption (spec §10): the 401 envelope's type.
pub(super) fn unauthorized() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "authorization_error",
        "Please provide a valid API token",
        json!({}),
    )
}

pub(super) fn field_error(
    fields: &mut Map<String, Value>,
    field: &str,
    message: impl Into<String>,
) {
    let entry = fields
        .entry(field.to_owned())
        .or_insert_with(|| json!({"messages": []}));
    if let Some(messages) = entry["messages"].as_array_mut() {
        messages.push(Value::String(message.into()));
    }
}

pub(super) fn applicant_not_found(id: &str) -> Response {
    not_found(&format!(
        "Could not find the following resource: Applicant with id={id}"
    ))
}

pub(super) fn run_not_found(id: &str) -> Response {
    not_found(&format!(
        "Could not find the following resource: WorkflowRun with id={id}"
    ))
}

pub(super) fn task_not_found(id: &str) -> Response {
    not_found(&format!(
        "Could not find the following resource: Task with id={id}"
    ))
}

/// Assumption: the envelope's type for a wrong method.
pub(super) fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        json!({}),
    )
}
