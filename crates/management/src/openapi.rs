//! The Management API's OpenAPI document, generated from the handlers'
//! annotations. `docs/openapi/management-v1.json` is this document; a test
//! fails when they differ. The dashboard's API types are generated from it.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::v1;

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
    modifiers(&BearerAuth),
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

/// The document as committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut json = ManagementApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_default();
    json.push('\n');
    json
}
