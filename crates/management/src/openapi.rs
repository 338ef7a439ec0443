//! The Management API's OpenAPI document, generated from the handlers'
//! annotations. `docs/openapi/management-v1.json` is this document; a test
//! fails when they differ. The dashboard's API types are generated from it.

use utoipa::OpenApi;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use http_common::openapi::{ErrorResponses, Link, Links};

use crate::v1;

/// The refusals every operation can answer (see [`ErrorResponses`]).
const ERRORS: ErrorResponses = ErrorResponses {
    authenticated_prefix: "/api/management/v1/",
    unauthorized: "`unauthorized`: no bearer token, or one that is not valid",
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "biometric-passkey Management API",
        description = "For support and fraud teams, behind the company's OIDC sign-in: bearer JWTs verified against the configured JWKS, issuer and audience; each route needs its `management.*` scope (403 `missing_scope` names it); every change is audited with the operator's `sub`. Errors are `{\"error\": {\"code\", \"message\", \"correlation_id\"}}` with the stable codes of docs/errors.md.",
        version = "1"
    ),
    paths(
        v1::me,
        v1::users::users,
        v1::users::user,
        v1::users::delete_user,
        v1::credentials::credential_export,
        v1::credentials::credential,
        v1::credentials::credential_action,
        v1::flows::flows,
        v1::flows::flow,
        v1::audit::audit,
        v1::audit::audit_export,
        v1::overview::overview,
        v1::provider_cleanups::provider_cleanups,
    ),
    modifiers(&BearerAuth, &ERRORS, &ClosedLists, &LINKS),
    security(("bearer" = [])),
    tags(
        (name = "operator", description = "Who is signed in; management.* scopes held"),
        (name = "users", description = "management.users.read, management.users.delete"),
        (name = "credentials", description = "management.credentials.read, .suspend, .activate, .revoke, .export"),
        (name = "flows", description = "management.flows.read"),
        (name = "audit", description = "management.audit.read"),
    )
)]
pub struct ManagementApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Links from each answer naming a user, a credential or a flow to the
/// operations on it.
const LINKS: Links = Links(&[
    link(
        USERS,
        "user",
        &[(
            "external_user_id",
            "$response.body#/users/0/external_user_id",
        )],
    ),
    link(
        USERS,
        "flows",
        &[(
            "external_user_id",
            "$response.body#/users/0/external_user_id",
        )],
    ),
    link(
        USERS,
        "delete_user",
        &[(
            "external_user_id",
            "$response.body#/users/0/external_user_id",
        )],
    ),
    link(
        USER,
        "credential",
        &[("id", "$response.body#/credentials/0/id")],
    ),
    link(
        USER,
        "credential_action",
        &[
            ("id", "$response.body#/credentials/0/id"),
            ("action", "suspend"),
        ],
    ),
    link(USER, "flow", &[("id", "$response.body#/recent_flows/0/id")]),
    link(
        USER,
        "flows",
        &[("external_user_id", "$response.body#/external_user_id")],
    ),
    link(
        USER,
        "delete_user",
        &[("external_user_id", "$response.body#/external_user_id")],
    ),
    link(FLOWS, "flow", &[("id", "$response.body#/0/id")]),
    link(
        FLOW,
        "user",
        &[("external_user_id", "$response.body#/external_user_id")],
    ),
    link(
        CREDENTIAL,
        "credential_action",
        &[("id", "$response.body#/id"), ("action", "revoke")],
    ),
    link(
        CREDENTIAL_ACTION,
        "credential",
        &[("id", "$response.body#/id")],
    ),
]);
const USERS: (&str, &str, &str) = ("/api/management/v1/users", "get", "200");
const USER: (&str, &str, &str) = ("/api/management/v1/users/{external_user_id}", "get", "200");
const FLOWS: (&str, &str, &str) = ("/api/management/v1/flows", "get", "200");
const FLOW: (&str, &str, &str) = ("/api/management/v1/flows/{id}", "get", "200");
const CREDENTIAL: (&str, &str, &str) = ("/api/management/v1/credentials/{id}", "get", "200");
const CREDENTIAL_ACTION: (&str, &str, &str) = (
    "/api/management/v1/credentials/{id}/{action}",
    "post",
    "200",
);

const fn link(
    from: (&'static str, &'static str, &'static str),
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
) -> Link {
    Link {
        from,
        to,
        parameters,
    }
}

/// The query parameters whose values form a closed list the server checks:
/// the audit trail's event types and the credential statuses.
struct ClosedLists;

impl utoipa::Modify for ClosedLists {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let event_types: Vec<&str> = domain::audit::AuditEventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        let statuses = ["active", "suspended", "revoked"];
        for (path, parameter, values) in [
            ("/api/management/v1/audit", "type", &event_types[..]),
            ("/api/management/v1/audit/export", "type", &event_types[..]),
            (
                "/api/management/v1/users",
                "credential_status",
                &statuses[..],
            ),
        ] {
            let Some(operation) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.get.as_mut())
            else {
                continue;
            };
            for p in operation.parameters.iter_mut().flatten() {
                if p.name == parameter {
                    p.schema = Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(values.iter().copied()))
                            .into(),
                    );
                }
            }
        }
    }
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    http_common::openapi::pretty(&ManagementApiDoc::openapi())
}
