//! The control plane, outside `/v3.6`: how tests finish runs over HTTP.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::config::DeliveryOutcome;
use super::handle::Shared;
use super::responses::{error_response, json_response, method_not_allowed, not_found};

/// `POST /__control/workflow_runs/{id}/complete {"status": "…"}`: answers
/// once every delivery attempt is over, with their outcomes; with
/// `"deliver": "background"` it answers at once (no outcomes) and delivers
/// afterwards, as the provider answers its SDK before the webhook goes out.
pub(super) async fn control(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &str,
    bytes: &[u8],
) -> Response {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let ["workflow_runs", run_id, "complete"] = segments.as_slice() else {
        return not_found("Not found");
    };
    if method != Method::POST {
        return method_not_allowed();
    }
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let status = body["status"].as_str().unwrap_or_default();
    match shared.complete(run_id, status) {
        Ok((run, plan)) if body["deliver"] == "background" => {
            shared.deliver_in_background(plan);
            json_response(StatusCode::OK, json!({"run": run, "deliveries": []}))
        }
        Ok((run, plan)) => {
            let outcomes = shared.deliver(plan).await;
            let deliveries: Vec<Value> = outcomes
                .iter()
                .map(|o| match o {
                    DeliveryOutcome::Status(code) => json!(code),
                    DeliveryOutcome::NoAnswer => json!("no_answer"),
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({"run": run, "deliveries": deliveries}),
            )
        }
        Err((code, message)) => error_response(code, "control_error", &message, json!({})),
    }
}
