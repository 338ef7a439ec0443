//! `/applicants`: created, listed, read, deleted.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::onfido_double::responses::{
    applicant_not_found, field_error, json_response, validation_error,
};
use crate::onfido_double::state::{Applicant, DoubleState};
use crate::onfido_double::{new_id, now, ts};

/// Characters applicant names may not contain (spec §3.1).
const FORBIDDEN_NAME_CHARS: &[char] = &['!', '#', '$', '%', '*', '=', '<', '>', ';', '{', '}', '"'];

/// `GET /applicants`: the live ones, newest first.
pub(super) fn list(state: &DoubleState) -> Response {
    let mut list: Vec<&Value> = state
        .applicants
        .values()
        .filter(|a| !a.deleted)
        .map(|a| &a.json)
        .collect();
    list.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
    json_response(StatusCode::OK, json!({"applicants": list}))
}

/// `GET /applicants/{id}`: one scheduled for deletion reads with its
/// `delete_at`; a deleted one is 404 (assumption 2).
pub(super) fn read(state: &DoubleState, id: &str) -> Response {
    match state.live_applicant(id) {
        Some(applicant) => json_response(StatusCode::OK, applicant.json.clone()),
        None => applicant_not_found(id),
    }
}

/// `DELETE /applicants/{id}`: 204, then 404 (assumption 2).
pub(super) fn delete(state: &mut DoubleState, id: &str) -> Response {
    match state.applicants.get_mut(id).filter(|a| !a.deleted) {
        Some(applicant) => {
            applicant.deleted = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => applicant_not_found(id),
    }
}

/// `POST /applicants`: validated as the provider documents (spec §3.1).
pub(super) fn create(state: &mut DoubleState, body: &Value) -> Response {
    let mut fields = Map::new();
    let Some(object) = body.as_object() else {
        field_error(&mut fields, "first_name", "can't be blank");
        field_error(&mut fields, "last_name", "can't be blank");
        return validation_error(fields);
    };
    for name in ["first_name", "last_name"] {
        match object.get(name) {
            None | Some(Value::Null) => field_error(&mut fields, name, "can't be blank"),
            Some(Value::String(s)) if s.trim().is_empty() => {
                field_error(&mut fields, name, "can't be blank")
            }
            Some(Value::String(s)) if s.contains(FORBIDDEN_NAME_CHARS) => field_error(
                &mut fields,
                name,
                "must not contain any of the following characters: ! # $ % * = < > ; { } \"",
            ),
            Some(Value::String(_)) => {}
            Some(_) => field_error(&mut fields, name, "must be a string"),
        }
    }
    if let Some(email) = object.get("email").filter(|v| !v.is_null())
        && !email.as_str().is_some_and(|e| e.contains('@'))
    {
        field_error(&mut fields, "email", "invalid format");
    }
    if let Some(consents) = object.get("consents").filter(|v| !v.is_null()) {
        let names = [
            "privacy_notices_read",
            "ssn_verification",
            "phone_number_verification",
        ];
        let valid = consents.as_array().is_some_and(|list| {
            list.iter().all(|c| {
                c["name"].as_str().is_some_and(|n| names.contains(&n)) && c["granted"].is_boolean()
            })
        });
        if !valid {
            field_error(&mut fields, "consents", "invalid format");
        }
    }
    if !fields.is_empty() {
        return validation_error(fields);
    }
    let id = new_id();
    let field = |name: &str| object.get(name).cloned().unwrap_or(Value::Null);
    let applicant = json!({
        "id": id,
        "created_at": ts(now()),
        "delete_at": null,
        "href": format!("/v3.6/applicants/{id}"),
        "sandbox": state.config.api_token.starts_with("api_sandbox"),
        "first_name": field("first_name"),
        "last_name": field("last_name"),
        "email": field("email"),
        "dob": field("dob"),
        "id_numbers": object.get("id_numbers").cloned().unwrap_or(json!([])),
        "phone_number": field("phone_number"),
        "address": field("address"),
        "location": field("location"),
    });
    state.applicants.insert(
        id,
        Applicant {
            json: applicant.clone(),
            deleted: false,
        },
    );
    state.applicants_created += 1;
    json_response(StatusCode::CREATED, applicant)
}
