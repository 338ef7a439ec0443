//! The Management API's OpenAPI document, generated from the handlers'
//! annotations. `docs/openapi/management-v1.json` is this document; a test
//! fails when they differ. The dashboard's API types are generated from it.

use utoipa::OpenApi;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use http_common::openapi::ErrorResponses;

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
        v1::users,
        v1::user,
        v1::delete_user,
        v1::credential,
        v1::credential_action,
        v1::flows,
        v1::flow,
        v1::audit,
        v1::audit_export,
        v1::provider_cleanups,
    ),
    modifiers(&BearerAuth, &ERRORS, &ClosedLists),
    security(("bearer" = [])),
    tags(
        (name = "operator", description = "Who is signed in; management.* scopes held"),
        (name = "users", description = "management.users.read, management.users.delete"),
        (name = "credentials", description = "management.credentials.read, .suspend, .activate, .revoke"),
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
    let mut json = ManagementApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_default();
    json.push('\n');
    json
}
