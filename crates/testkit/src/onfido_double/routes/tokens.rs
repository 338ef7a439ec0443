//! Tokens: `/biometric_tokens/{customer_user_id}` (what an approved run
//! enrolled, visible after the configured delay: assumption 5) and
//! `/sdk_token`.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::onfido_double::responses::{
    field_error, json_response, token_not_found, validation_error,
};
use crate::onfido_double::state::{BiometricToken, DoubleState};
use crate::onfido_double::{new_id, now};

/// `GET /biometric_tokens/{user}`: the user's visible tokens.
pub(super) fn list(state: &DoubleState, user: &str) -> Response {
    let now = Instant::now();
    let list: Vec<Value> = state
        .tokens
        .iter()
        .filter(|t| t.user_id == user && t.visible(now))
        .map(BiometricToken::to_json)
        .collect();
    json_response(StatusCode::OK, json!({"biometric_tokens": list}))
}

/// `DELETE /biometric_tokens/{user}`: every visible token, or 404 when none.
pub(super) fn delete_all(state: &mut DoubleState, user: &str) -> Response {
    let now = Instant::now();
    let mut count = 0;
    for token in state
        .tokens
        .iter_mut()
        .filter(|t| t.user_id == user && t.visible(now))
    {
        token.deleted = true;
        count += 1;
    }
    if count == 0 {
        token_not_found()
    } else {
        json_response(
            StatusCode::OK,
            json!({"biometric_tokens": {"deleted_items": {"count": count}}}),
        )
    }
}

/// `GET /biometric_tokens/{user}/{uuid}`
pub(super) fn read(state: &mut DoubleState, user: &str, uuid: &str) -> Response {
    match find(state, user, uuid) {
        Some(token) => json_response(StatusCode::OK, json!({"biometric_token": token.to_json()})),
        None => token_not_found(),
    }
}

/// `PUT /biometric_tokens/{user}/{uuid} {"status": "approved" | "declined"}`
pub(super) fn update(state: &mut DoubleState, user: &str, uuid: &str, body: &Value) -> Response {
    let status = body["status"].as_str().map(str::to_owned);
    let Some(token) = find(state, user, uuid) else {
        return token_not_found();
    };
    match status.as_deref() {
        Some(s @ ("approved" | "declined")) => {
            token.status = s.to_owned();
            json_response(StatusCode::OK, json!({"biometric_token": token.to_json()}))
        }
        _ => {
            let mut fields = Map::new();
            field_error(&mut fields, "status", "must be one of: approved, declined");
            validation_error(fields)
        }
    }
}

/// `DELETE /biometric_tokens/{user}/{uuid}`
pub(super) fn delete(state: &mut DoubleState, user: &str, uuid: &str) -> Response {
    match find(state, user, uuid) {
        Some(token) => {
            token.deleted = true;
            json_response(
                StatusCode::OK,
                json!({"biometric_token": {"deleted_items": {"count": 1}}}),
            )
        }
        None => token_not_found(),
    }
}

fn find<'a>(state: &'a mut DoubleState, user: &str, uuid: &str) -> Option<&'a mut BiometricToken> {
    let now = Instant::now();
    state
        .tokens
        .iter_mut()
        .find(|t| t.user_id == user && t.uuid == uuid && t.visible(now))
}

/// `POST /sdk_token` (200, not 201): an SDK token for a live applicant.
pub(super) fn sdk_token(state: &DoubleState, body: &Value) -> Response {
    let mut fields = Map::new();
    match body["applicant_id"].as_str() {
        None => field_error(&mut fields, "applicant_id", "can't be blank"),
        Some(id) if state.live_applicant(id).is_none() => {
            field_error(&mut fields, "applicant_id", "Applicant not found")
        }
        Some(_) => {}
    }
    if !fields.is_empty() {
        return validation_error(fields);
    }
    let applicant = body["applicant_id"].as_str().unwrap_or_default();
    json_response(
        StatusCode::OK,
        json!({"token": jwt_shaped(json!({
            "exp": (now() + time::Duration::minutes(90)).unix_timestamp(),
            "payload": {"app": new_id(), "applicant_id": applicant, "is_sandbox": true},
            "uuid": new_id(),
        }))}),
    )
}

/// A run's SDK token: JWT-shaped, valid five weeks.
pub fn sdk_token_for(run_id: &str, now: OffsetDateTime) -> String {
    jwt_shaped(json!({
        "exp": (now + time::Duration::weeks(5)).unix_timestamp(),
        "payload": {"app": new_id(), "workflow_run_id": run_id, "is_sandbox": true},
        "uuid": new_id(),
    }))
}

/// `header.payload.signature` in base64url; the signature is random.
fn jwt_shaped(claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES512","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature: Vec<u8> = (0..4)
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect();
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
}
