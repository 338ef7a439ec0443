//! The Core API's OpenAPI document, generated from the handlers' annotations.
//! `docs/openapi/core-v1.json` is this document; a test fails when they differ.

use utoipa::OpenApi;

use crate::v1::{flows, handoffs, synthetic, users};

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
    ),
    tags(
        (name = "flows", description = "One attempt at registration, sign-in, step-up or recovery"),
        (name = "biometric reference", description = "Custody of the IDV SDK's encrypted biometric token"),
        (name = "users", description = "Users by the customer's identifier"),
        (name = "synthetic", description = "Synthetic IDV mode only: choose a run's outcome"),
    )
)]
pub struct CoreApiDoc;

/// The document as committed: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut json = CoreApiDoc::openapi().to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}
