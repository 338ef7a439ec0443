//! The Core API's OpenAPI document, generated from the handlers' annotations.
//! `docs/openapi/core-v1.json` is this document; a test fails when they differ.

use utoipa::OpenApi;

use http_common::openapi::{ErrorResponses, Link, Links};

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
    modifiers(&ApiKeyAuth, &ERRORS, &LINKS),
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
/// its creation.
const LINKS: Links = Links(&{
    const FLOW: &[(&str, &str)] = &[("flow_id", "$response.body#/id")];
    const USER: &[(&str, &str)] = &[("external_user_id", "$response.body#/external_user_id")];
    const RUN: &[(&str, &str)] = &[("run_id", "$response.body#/identity/workflow_run_id")];
    const TARGETS: [(&str, &[(&str, &str)]); 8] = [
        ("read_flow", FLOW),
        ("submit_possession", FLOW),
        ("cancel_flow", FLOW),
        ("store_biometric_reference", FLOW),
        ("release_biometric_reference", FLOW),
        ("read_user", USER),
        ("delete_user", USER),
        ("set_synthetic_outcome", RUN),
    ];
    const SOURCES: [(&str, &str, &str); 3] = [
        ("/api/core/v1/flows", "post", "201"),
        ("/api/core/v1/flows/{flow_id}", "get", "200"),
        ("/api/core/v1/handoffs/claim", "post", "200"),
    ];
    let mut links = [Link {
        from: ("", "", ""),
        to: "",
        parameters: &[],
    }; 24];
    let mut i = 0;
    while i < 24 {
        let (to, parameters) = TARGETS[i % 8];
        links[i] = Link {
            from: SOURCES[i / 8],
            to,
            parameters,
        };
        i += 1;
    }
    links
});

/// The document as committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    http_common::openapi::pretty(&CoreApiDoc::openapi())
}
