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

/// One OpenAPI link: from an operation's answer to an operation that takes
/// what the answer holds.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// The answering operation: path, method (`get`, `post`, …) and status.
    pub from: (&'static str, &'static str, &'static str),
    /// The operation id it leads to.
    pub to: &'static str,
    /// The parameters it passes: name, and a runtime expression
    /// (`$response.body#/id`) or a constant.
    pub parameters: &'static [(&'static str, &'static str)],
}

/// Adds links to a document, so that a client (or a test generator) can go
/// from a resource's answer to the operations on it.
#[derive(Debug, Clone, Copy)]
pub struct Links(pub &'static [Link]);

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut OpenApi) {
        for link in self.0 {
            let (path, method, status) = link.from;
            let Some(item) = openapi.paths.paths.get_mut(path) else {
                continue;
            };
            let operation = match method {
                "get" => item.get.as_mut(),
                "put" => item.put.as_mut(),
                "delete" => item.delete.as_mut(),
                _ => item.post.as_mut(),
            };
            let Some(RefOr::T(response)) =
                operation.and_then(|o| o.responses.responses.get_mut(status))
            else {
                continue;
            };
            let mut builder = utoipa::openapi::link::Link::builder().operation_id(link.to);
            for (name, value) in link.parameters {
                builder = builder.parameter(*name, *value);
            }
            response
                .links
                .insert(link.to.to_owned(), RefOr::T(builder.build()));
        }
    }
}

/// A document as committed: pretty JSON with a trailing newline.
pub fn pretty(openapi: &OpenApi) -> String {
    let json = openapi.to_pretty_json().unwrap_or_default();
    // utoipa 5 writes a link's `operationId` as `operation_id`, which no
    // OpenAPI reader knows; no schema of ours has a property of that name.
    let mut json = json.replace("\"operation_id\": ", "\"operationId\": ");
    json.push('\n');
    json
}
