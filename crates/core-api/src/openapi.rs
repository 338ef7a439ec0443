//! The Core API's OpenAPI document, generated from the handlers' annotations.
//! `docs/openapi/core-v1.json` is this document; a test fails when they differ.

use utoipa::OpenApi;

use http_common::openapi::ErrorResponses;

use crate::v1::{flows, handoffs, synthetic, users};
use crate::webhooks;

/// The refusals every operation can answer (see [`ErrorResponses`]).
const ERRORS: ErrorResponses = ErrorResponses {
    authenticated_prefix: "/api/core/v1/",
    unauthorized: "`unauthorized`: no valid API key (when the deployment requires keys)",
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "biometric-passkey Core API",
        description = "Flows for the customer's backend: registration, sign-in, step-up (also cross-platform) and recovery. Every /api/core/v1 call needs `Authorization: Bearer <API key>` (otherwise 401 `unauthorized`) unless the operator set BIOMETRIC_PASSKEY_CORE_API_AUTH=none. Errors are `{\"error\": {\"code\", \"message\", \"correlation_id\"}}` with the stable codes of docs/errors.md.",
        version = "1"
    ),
    paths(
        flows::create,
        flows::read,
        flows::possession,
        flows::cancel,
        flows::store_reference,
        flows::release_reference,
        handoffs::claim,
        users::read,
        users::delete,
        synthetic::set_outcome,
        webhooks::receive,
    ),
    modifiers(&ApiKeyAuth, &ERRORS, &FlowLinks),
    tags(
        (name = "flows", description = "One attempt at registration, sign-in, step-up or recovery"),
        (name = "biometric reference", description = "Custody of the IDV SDK's encrypted biometric token"),
        (name = "users", description = "Users by the customer's identifier"),
        (name = "synthetic", description = "Synthetic IDV mode only: choose a run's outcome"),
        (name = "provider webhooks", description = "The IDV provider's signed deliveries (`onfido` mode only); operators route them to the Core API"),
    )
)]
pub struct CoreApiDoc;

/// `Authorization: Bearer <API key>` on every `/api/core/v1` operation (a
/// deployment with `BIOMETRIC_PASSKEY_CORE_API_AUTH=none` takes calls
/// without). The service routes and the provider's webhook take no key.
struct ApiKeyAuth;

impl utoipa::Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("One of the keys in BIOMETRIC_PASSKEY_CORE_API_KEYS"))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with(ERRORS.authenticated_prefix) {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                operation.security = Some(vec![SecurityRequirement::new(
                    "api_key",
                    Vec::<String>::new(),
                )]);
            }
        }
    }
}

/// Links from the answers that name a flow or a user to the operations that
/// take them, so that a client (or a test generator) can follow a flow from
/// its creation: OpenAPI's `links`, by operation id.
struct FlowLinks;

impl FlowLinks {
    /// (operation, status of the answer naming the flow)
    const SOURCES: [(&'static str, &'static str, &'static str); 3] = [
        ("/api/core/v1/flows", "post", "201"),
        ("/api/core/v1/flows/{flow_id}", "get", "200"),
        ("/api/core/v1/handoffs/claim", "post", "200"),
    ];
    /// (link name, operation id, its parameter, where the answer holds it)
    const TARGETS: [(&'static str, &'static str, &'static str, &'static str); 8] = [
        ("read_flow", "read_flow", "flow_id", "$response.body#/id"),
        (
            "submit_possession",
            "submit_possession",
            "flow_id",
            "$response.body#/id",
        ),
        (
            "cancel_flow",
            "cancel_flow",
            "flow_id",
            "$response.body#/id",
        ),
        (
            "store_biometric_reference",
            "store_biometric_reference",
            "flow_id",
            "$response.body#/id",
        ),
        (
            "release_biometric_reference",
            "release_biometric_reference",
            "flow_id",
            "$response.body#/id",
        ),
        (
            "read_user",
            "read_user",
            "external_user_id",
            "$response.body#/external_user_id",
        ),
        (
            "delete_user",
            "delete_user",
            "external_user_id",
            "$response.body#/external_user_id",
        ),
        (
            "set_synthetic_outcome",
            "set_synthetic_outcome",
            "run_id",
            "$response.body#/identity/workflow_run_id",
        ),
    ];
}

impl utoipa::Modify for FlowLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::Link;
        for (path, method, status) in Self::SOURCES {
            let Some(item) = openapi.paths.paths.get_mut(path) else {
                continue;
            };
            let operation = match method {
                "get" => item.get.as_mut(),
                _ => item.post.as_mut(),
            };
            let Some(RefOr::T(response)) =
                operation.and_then(|o| o.responses.responses.get_mut(status))
            else {
                continue;
            };
            for (name, operation_id, parameter, value) in Self::TARGETS {
                response.links.insert(
                    name.to_owned(),
                    RefOr::T(
                        Link::builder()
                            .operation_id(operation_id)
                            .parameter(parameter, value)
                            .build(),
                    ),
                );
            }
        }
    }
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    let json = CoreApiDoc::openapi().to_pretty_json().unwrap_or_default();
    // utoipa 5 writes a link's `operationId` as `operation_id`, which no
    // OpenAPI reader knows; no schema of ours has a property of that name.
    let mut json = json.replace("\"operation_id\": ", "\"operationId\": ");
    json.push('\n');
    json
}
