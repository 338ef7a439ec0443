//! The refusals every operation of a runtime's OpenAPI document can answer,
//! added to each operation from what it takes, so that no document leaves
//! out a status its routes answer:
//!
//! - path or query parameters: `400 invalid_parameter` ([`crate::ApiPath`],
//!   [`crate::ApiQuery`]);
//! - a JSON body (under the authenticated prefix): `400 invalid_request_body`, `413 payload_too_large`,
//!   `415 unsupported_media_type` ([`crate::ApiJson`]);
//! - an `Idempotency-Key` header: `400 invalid_idempotency_key`,
//!   `409 idempotency_request_in_progress`, `422 idempotency_key_reused`;
//! - a route behind the runtime's authentication: `401 unauthorized`;
//! - every route: `503 server_busy`, `request_timeout`
//!   ([`crate::HttpLimits`]), `service_unavailable`.
//!
//! A status the operation documents already keeps its description, with the
//! codes it did not name added.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

/// Adds the shared refusals to every operation of a document.
#[derive(Debug, Clone, Copy)]
pub struct ErrorResponses {
    /// Operations under this path prefix answer `401` with these codes.
    pub authenticated_prefix: &'static str,
    /// What `401` means under the prefix.
    pub unauthorized: &'static str,
}

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let authenticated = path.starts_with(self.authenticated_prefix);
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for (status, codes) in self.refusals(operation, authenticated) {
                    add(operation, status, &codes);
                }
            }
        }
    }
}

impl ErrorResponses {
    fn refusals(&self, operation: &Operation, authenticated: bool) -> Vec<(&'static str, String)> {
        let parameters = operation.parameters.as_deref().unwrap_or_default();
        let takes = |place: ParameterIn| parameters.iter().any(|p| p.parameter_in == place);
        let idempotent = parameters.iter().any(|p| {
            p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case("idempotency-key")
        });
        let mut refusals = Vec::new();
        if takes(ParameterIn::Path) || takes(ParameterIn::Query) {
            refusals.push(("400", "`invalid_parameter`".to_owned()));
        }
        // Bodies under the prefix are read as JSON; a route outside it (the
        // provider's webhook) documents how it reads its own.
        if authenticated && operation.request_body.is_some() {
            refusals.push(("400", "`invalid_request_body`".to_owned()));
            refusals.push(("413", "`payload_too_large`".to_owned()));
            refusals.push(("415", "`unsupported_media_type`".to_owned()));
        }
        if idempotent {
            refusals.push(("400", "`invalid_idempotency_key`".to_owned()));
            refusals.push((
                "409",
                "`idempotency_request_in_progress`: retry shortly".to_owned(),
            ));
            refusals.push((
                "422",
                "`idempotency_key_reused`: the key came with another request".to_owned(),
            ));
        }
        if authenticated {
            refusals.push(("401", self.unauthorized.to_owned()));
        }
        refusals.push((
            "503",
            "`server_busy`, `request_timeout`, `service_unavailable`: retry after `Retry-After`"
                .to_owned(),
        ));
        refusals
    }
}

/// Documents `status` with the error body, naming `codes` in its description.
fn add(operation: &mut Operation, status: &str, codes: &str) {
    let responses = &mut operation.responses.responses;
    let entry = responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(Response::new("")));
    let RefOr::T(response) = entry else {
        return;
    };
    let first_code = codes.split(':').next().unwrap_or(codes);
    if response.description.is_empty() {
        response.description = codes.to_owned();
    } else if !response.description.contains(first_code) {
        response.description = format!("{}; {codes}", response.description);
    }
    response
        .content
        .entry("application/json".to_owned())
        .or_insert_with(|| Content::new(Some(Ref::from_schema_name("ErrorBody"))));
}
