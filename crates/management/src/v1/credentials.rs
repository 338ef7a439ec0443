//! Credentials: one passkey, its lifecycle actions (suspend, activate,
//! revoke), and the streamed credential export.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use domain::audit::Subject;
use domain::credential::export::{Export, Users as ExportUsers, Via};
use domain::credential::{Credential, CredentialStatus};
use http_common::{ApiError, ApiJson, ApiPath, ApiQuery};
use proto::ErrorCode;
use proto::management::{CredentialActionRequest, CredentialSummary, VerifiedRegistrationFacts};
use serde::Deserialize;
use serde_json::json;

use super::exports::{ExportRecord, export_place, ndjson};
use super::{operator_context, record_read, uuid_param};
use crate::ManagementState;
use crate::auth::{Operator, RequireScope, Scope};

/// A credential as operators see it, its authenticator named from the
/// operator's metadata.
fn credential_summary(state: &ManagementState, c: Credential) -> CredentialSummary {
    CredentialSummary {
        id: c.id,
        status: c.status.as_str().to_owned(),
        status_reason: c.status_reason,
        authenticator: state.authenticators.name_of(c.aaguid).map(str::to_owned),
        aaguid: c.aaguid,
        platform: c.platform,
        device_label: c.device_label,
        backup_eligible: c.backup_eligible,
        backup_state: c.backup_state,
        verified_registration: c.passkey.map(|p| VerifiedRegistrationFacts {
            user_verified: p.user_verified,
            attestation_format: p.attestation_format,
            attestation_verified: p.attestation_verified,
        }),
        created_at: c.created_at,
        last_used_at: c.last_used_at,
    }
}

/// [`credential_summary`] of each.
pub(super) fn credential_summaries(
    state: &ManagementState,
    credentials: Vec<Credential>,
) -> Vec<CredentialSummary> {
    credentials
        .into_iter()
        .map(|c| credential_summary(state, c))
        .collect()
}

#[utoipa::path(get, path = "/api/management/v1/credentials/{id}", tag = "credentials", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = CredentialSummary), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
pub async fn credential(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<CredentialSummary>, ApiError> {
    operator.require(Scope::CredentialsRead)?;
    let credential = state.management.credential(uuid_param(&raw, "id")?).await?;
    let subject = Subject {
        user_id: Some(credential.user_id),
        credential_id: Some(credential.id),
        ..Subject::default()
    };
    record_read(&state, &operator, "credential", subject, json!({})).await?;
    Ok(ApiJson(credential_summary(&state, credential)))
}

/// The scope an action needs and the status it moves to; `None` for a path
/// that names no action.
fn action(raw: &str) -> Option<(Scope, CredentialStatus)> {
    match raw {
        "suspend" => Some((Scope::CredentialsSuspend, CredentialStatus::Suspended)),
        "activate" => Some((Scope::CredentialsActivate, CredentialStatus::Active)),
        "revoke" => Some((Scope::CredentialsRevoke, CredentialStatus::Revoked)),
        _ => None,
    }
}

#[utoipa::path(post, path = "/api/management/v1/credentials/{id}/{action}", tag = "credentials", params(("id" = uuid::Uuid, Path), ("action" = String, Path, description = "`suspend` (management.credentials.suspend), `activate` (management.credentials.activate) or `revoke` (management.credentials.revoke)")), request_body = CredentialActionRequest, responses((status = 200, body = CredentialSummary), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody), (status = 409, description = "`credential_transition_not_allowed`", body = proto::ErrorBody)))]
/// `suspend`, `activate` or `revoke`, each under its own scope.
pub async fn credential_action(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath((raw, action_name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CredentialActionRequest>,
) -> Result<ApiJson<CredentialSummary>, ApiError> {
    let Some((scope, to)) = action(&action_name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::RouteNotFound,
            "no such route",
        ));
    };
    operator.require(scope)?;
    let id = uuid_param(&raw, "id")?;
    let credential = state
        .management
        .set_credential_status(&operator_context(&operator), id, to, &body.reason)
        .await?;
    Ok(ApiJson(credential_summary(&state, credential)))
}

/// Which users a credential export covers.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CredentialExportFilter {
    /// Only this user's passkeys (absent: every user's).
    #[param(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub external_user_id: Option<String>,
}

#[utoipa::path(get, path = "/api/management/v1/credentials/export", tag = "credentials", params(CredentialExportFilter), responses((status = 200, description = "The credential export, format `biometric-passkey.credentials` version 1 (docs/credential-export.md): a header line, one line per passkey, an `end` line", content_type = "application/x-ndjson"), (status = 400, description = "`invalid_external_user_id`", body = proto::ErrorBody), (status = 403, body = proto::ErrorBody), (status = 404, description = "`user_not_found`", body = proto::ErrorBody), (status = 503, description = "`server_busy`: as many exports as this replica runs at once are running", body = proto::ErrorBody)))]
/// Every passkey, or one user's, with its COSE public key and signature
/// counter, as JSON lines (`application/x-ndjson`) in the credential export
/// format, so a relying party of your own can take them over. Needs
/// `management.credentials.export`. Streamed a page of users at a time and
/// shares the replica's places for exports with the audit export. Complete
/// only with its `end` line: a failure after the first page cuts the body
/// short (the chunked encoding is not terminated). Recorded when it ends,
/// incomplete too, as `operator.read` `credential_export` `via` `api`.
pub async fn credential_export(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<CredentialExportFilter>, ApiError>,
) -> Result<Response, ApiError> {
    operator.require(Scope::CredentialsExport)?;
    let ApiQuery(filter) = filter?;
    let users = match filter.external_user_id.as_deref() {
        None => ExportUsers::All,
        Some(raw) => ExportUsers::One(http_common::external_user_id(raw)?),
    };
    let place = export_place(&state)?;
    let mut export = state
        .management
        .start_credential_export(users, state.cose_key_of)
        .await?;
    // The header and the first page are read before answering: a database
    // that is down is a clean 503, not a cut body.
    let mut first = Vec::new();
    for _ in 0..2 {
        if let Some(chunk) = export.next_chunk().await? {
            first.extend(chunk);
        }
    }
    let export = CredentialExport {
        record: ExportRecord::new(&state, &operator, place),
        export,
        first: Some(first),
    };
    Ok(ndjson(futures_util::stream::try_unfold(
        export,
        CredentialExport::next_chunk,
    )))
}

/// A credential export in progress, and its place under the cap.
struct CredentialExport {
    record: ExportRecord,
    export: Export,
    first: Option<Vec<u8>>,
}

impl CredentialExport {
    /// The next lines; `None` once the end line is sent (and on the record).
    async fn next_chunk(mut self) -> Result<Option<(Vec<u8>, Self)>, std::io::Error> {
        if let Some(first) = self.first.take() {
            return Ok(Some((first, self)));
        }
        match self.export.next_chunk().await {
            Ok(Some(chunk)) => Ok(Some((chunk, self))),
            Ok(None) => {
                let read = self.export.on_record(Via::Api, true);
                self.record.record(read).await?;
                Ok(None)
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

impl Drop for CredentialExport {
    /// An export cut short (by a failure, or a client that stopped reading)
    /// is recorded too, as incomplete, with what was sent so far.
    fn drop(&mut self) {
        let export = &self.export;
        self.record.record_interrupted(
            || export.on_record(Via::Api, false),
            "an interrupted credential export could not be audited",
        );
    }
}
