//! Wire types of the management runtime.

use serde::{Deserialize, Serialize};

/// `/runtime-config.json`: the dashboard's browser-safe configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub oidc: OidcRuntimeConfig,
    /// Empty: the Management API is called on the same origin.
    pub api_base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcRuntimeConfig {
    pub authority: String,
    pub client_id: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub scope_claim: String,
    pub scope_prefix: String,
}

/// `GET /api/management/v1/me`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OperatorResponse {
    /// The token's subject, recorded on the audit events of the operator's actions.
    pub sub: String,
    /// The canonical `management.*` scopes the operator holds.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CredentialSummary {
    pub id: uuid::Uuid,
    pub status: String,
    pub status_reason: Option<String>,
    pub aaguid: Option<uuid::Uuid>,
    /// The kind of authenticator that holds the passkey ("iCloud Keychain",
    /// "Google Password Manager", a security key's model), as the operator's
    /// authenticator metadata names its AAGUID; null when it names none or no
    /// metadata is configured.
    pub authenticator: Option<String>,
    pub platform: Option<String>,
    pub device_label: Option<String>,
    /// The passkey can be backed up (synced) to other devices (`BE`).
    pub backup_eligible: bool,
    /// It is backed up (`BS`), as last reported.
    pub backup_state: bool,
    /// Registered in `builtin` mode: what the built-in relying party verified.
    pub verified_registration: Option<VerifiedRegistrationFacts>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<time::OffsetDateTime>,
}

/// What the built-in relying party verified when a passkey was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifiedRegistrationFacts {
    pub user_verified: bool,
    /// The attestation statement's format: `none`, `packed`, `tpm`, …
    pub attestation_format: String,
    /// The attestation chained to a configured root for an allowed AAGUID.
    pub attestation_verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowSummary {
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub flow_type: String,
    pub state: String,
    pub failure_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// `GET /api/management/v1/users/{external_user_id}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserDetail {
    pub external_user_id: String,
    /// The user's internal id: what audit events name (`user_id`) and filter by.
    pub user_id: uuid::Uuid,
    /// What the IDV provider and the audit trail know the user by.
    pub pseudonym: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    pub has_biometric_reference: bool,
    pub credentials: Vec<CredentialSummary>,
    pub recent_flows: Vec<FlowSummary>,
}

/// `POST /api/management/v1/credentials/{id}/{suspend|activate|revoke}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialActionRequest {
    /// Why; recorded on the audit event (1–500 characters).
    pub reason: String,
}

/// One audit event as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEventResponse {
    /// Position in the trail; pass the last one as `before` for the next page.
    pub seq: i64,
    pub id: uuid::Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: time::OffsetDateTime,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `integration`, `operator`, `provider` or `system`.
    pub actor: String,
    /// The operator's `sub`, for operator actions.
    pub actor_id: Option<String>,
    pub user_id: Option<uuid::Uuid>,
    pub user_pseudonym: Option<String>,
    pub credential_id: Option<uuid::Uuid>,
    pub flow_id: Option<uuid::Uuid>,
    pub outcome: String,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
    pub details: serde_json::Value,
}

/// A page of audit events, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEventResponse>,
    /// `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// `GET /api/management/v1/flows/{id}`: a flow and its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowDetail {
    pub flow: FlowSummary,
    pub external_user_id: String,
    pub identity_status: String,
    pub possession_verified: bool,
    pub credential_id: Option<uuid::Uuid>,
    pub cross_platform: bool,
    /// A step-up's transaction context as a keyed digest (HMAC-SHA256 under
    /// a key derived from the data-encryption key `transaction_context_key_id`):
    /// it matches the flow's audit events, and confirms no guess of a payment.
    pub transaction_context_hmac: Option<String>,
    pub transaction_context_key_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
    /// The flow's audit events, oldest first.
    pub timeline: Vec<AuditEventResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserListItem {
    pub external_user_id: String,
    pub pseudonym: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// `GET /api/management/v1/users`: a page in identifier order, or in creation
/// order for searches by creation time alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<UserListItem>,
    /// An opaque cursor: pass it as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// A deleted user the IDV provider has not yet been made to forget. The
/// Core API retries with backoff; after its configured number of attempts it
/// gives up and the item is `dead` (an operator's matter: ask the provider
/// to delete the data, then delete the item from the database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderCleanupItem {
    /// Our id of the deleted user (not the customer's identifier).
    pub user_id: uuid::Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: time::OffsetDateTime,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<time::OffsetDateTime>,
    /// When the next attempt is due; none when dead, or not yet tried.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<time::OffsetDateTime>,
    /// No more attempts are made.
    pub dead: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dead_at: Option<time::OffsetDateTime>,
}

/// `GET /api/management/v1/provider-cleanups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderCleanupList {
    pub items: Vec<ProviderCleanupItem>,
}

/// `GET /api/management/v1/overview`: a period's counts per bucket, for the
/// dashboard's overview. Buckets with nothing to count are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Overview {
    /// The period's start, as asked (inclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub from: time::OffsetDateTime,
    /// The period's end, as asked (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub to: time::OffsetDateTime,
    /// `hour` or `day`: buckets start on UTC hours or days, so the first and
    /// last may be partly outside the period.
    pub bucket: String,
    /// Flows created in the period, by bucket of creation, type and current
    /// state (a flow past its expiry counts as `expired`). Flows removed by
    /// `BIOMETRIC_PASSKEY_FLOW_RETENTION` are no longer counted.
    pub flows: Vec<OverviewFlowCount>,
    /// Audit events of the overview's types that occurred in the period, by
    /// bucket, type, outcome and reason: `flow.in_review`, `flow.failed`,
    /// `flow.request_rejected`, `credential.counter_regression`,
    /// `credential.backup_eligibility_changed`, `credential.suspended`,
    /// `credential.activated`, `credential.revoked`.
    pub events: Vec<OverviewEventCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverviewFlowCount {
    #[serde(with = "time::serde::rfc3339")]
    pub bucket_start: time::OffsetDateTime,
    /// `registration`, `sign_in`, `step_up` or `recovery`.
    #[serde(rename = "type")]
    pub flow_type: String,
    /// The flow's state now: `completed`, `failed`, `expired`, `cancelled`,
    /// or one of a flow still open.
    pub state: String,
    #[schema(minimum = 1)]
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverviewEventCount {
    #[serde(with = "time::serde::rfc3339")]
    pub bucket_start: time::OffsetDateTime,
    /// The audit event type (see `docs/audit.md`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// `success`, `failure` or `rejected`.
    pub outcome: String,
    /// The event's reason: a failed flow's (`idv_declined`, …), a refused
    /// request's error code (`counter_regression`, `webauthn_origin_not_allowed`, …),
    /// `recovery` for a credential revoked by a recovery flow. Credential
    /// actions an operator took are counted without their reason (their own
    /// words, read in the audit trail).
    pub reason: Option<String>,
    #[schema(minimum = 1)]
    pub count: u64,
}
