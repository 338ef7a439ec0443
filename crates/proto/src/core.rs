//! Wire types of the Core API (`/api/core/v1`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// What a flow is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowType {
    /// Enrollment: identity proof (document + live capture) and a new credential.
    Registration,
    /// Routine sign-in: an assertion from an active credential.
    SignIn,
    /// High-risk action: live capture against the reference plus an assertion.
    StepUp,
    /// New device: identity proof against the reference plus a new credential.
    Recovery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    Pending,
    AwaitingVerification,
    Verified,
    InReview,
    Completed,
    Failed,
    Expired,
    Cancelled,
}

/// `POST /api/core/v1/flows`. Only step-up takes `transaction_context` and
/// `cross_platform`; its schema says so with `oneOf` ([`CreateFlowRequest::schema`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateFlowRequest {
    #[serde(rename = "type")]
    pub flow_type: FlowType,
    /// 1–128 characters of `A-Z a-z 0-9 . _ ~ -`.
    pub external_user_id: String,
    /// Step-up only: an opaque JSON object (amount, payee…), at most 4 KiB as
    /// compact JSON by default. Stored encrypted, hashed into the result, echoed back.
    #[serde(default)]
    pub transaction_context: Option<Value>,
    /// Step-up only: the action started on another device; the response carries
    /// a single-use hand-off code for the enrolled phone to claim.
    #[serde(default)]
    pub cross_platform: bool,
}

impl utoipa::PartialSchema for CreateFlowRequest {
    /// Two objects: a step-up, which may carry a transaction context (a JSON
    /// object) and `cross_platform`; and the other types, which carry neither.
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{
            AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
        };
        let user = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("1–128 characters of `A-Z a-z 0-9 . _ ~ -`."))
                .min_length(Some(1))
                .max_length(Some(128))
                .pattern(Some("^[A-Za-z0-9._~-]{1,128}$"))
                .examples(["customer-42"])
        };
        let kinds = |types: &[&str]| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(types.iter().copied()))
        };
        let step_up = ObjectBuilder::new()
            .schema_type(Type::Object)
            .title(Some("step_up"))
            .property("type", kinds(&["step_up"]))
            .property("external_user_id", user())
            .property(
                "transaction_context",
                ObjectBuilder::new()
                    .schema_type(SchemaType::Array(vec![Type::Object, Type::Null]))
                    .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
                    .description(Some(
                        "An opaque JSON object (amount, payee…), at most 4 KiB as compact JSON \
                         by default. Stored encrypted, hashed into the result, echoed back.",
                    )),
            )
            .property(
                "cross_platform",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some(
                        "The action started on another device; the response carries a \
                     single-use hand-off code for the enrolled phone to claim.",
                    )),
            )
            .required("type")
            .required("external_user_id")
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        let others = ObjectBuilder::new()
            .schema_type(Type::Object)
            .title(Some("registration, sign_in, recovery"))
            .property("type", kinds(&["registration", "sign_in", "recovery"]))
            .property("external_user_id", user())
            .property(
                "transaction_context",
                ObjectBuilder::new().schema_type(Type::Null),
            )
            .property(
                "cross_platform",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([false])),
            )
            .required("type")
            .required("external_user_id")
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(RefOr::T(Schema::Object(step_up.build())))
                .item(RefOr::T(Schema::Object(others.build())))
                .build(),
        ))
    }
}

impl ToSchema for CreateFlowRequest {}

/// The identity proof of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IdentityProof {
    /// `not_required`, `pending`, `verified`, `in_review` or `failed`.
    pub status: String,
    /// `onfido` or `synthetic`.
    pub provider: String,
    pub workflow_run_id: Option<String>,
    /// The mobile SDK's token for the run: present while the flow awaits
    /// verification (and, for cross-platform flows, once the hand-off is claimed).
    /// A bearer secret: hand it only to the user's app.
    pub sdk_token: Option<String>,
}

/// The possession proof of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PossessionProofStatus {
    /// `pending` or `verified`.
    pub status: String,
    /// Our id of the credential created or used.
    pub credential_id: Option<Uuid>,
    /// `builtin` possession mode, only in the response that created the flow:
    /// the options for the authenticator — `PublicKeyCredentialCreationOptionsJSON`
    /// (registration, recovery) or `PublicKeyCredentialRequestOptionsJSON`
    /// (sign-in, step-up). Give them to `navigator.credentials.create/get`
    /// (after `PublicKeyCredential.parse…OptionsFromJSON`) or the platform's
    /// passkey API; the challenge is single-use and expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthn_options: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HandoffStatus {
    /// Only in the response that created the flow: show it (as a QR code) to the
    /// user's enrolled phone. Single use.
    pub code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub claimed: bool,
}

/// What a completed flow proves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlowResult {
    /// `possession` (sign-in) or `possession_and_biometric` (step-up, registration, recovery).
    pub assurance: String,
    pub credential_id: Option<Uuid>,
    /// SHA-256 (hex) of the transaction context as echoed (compact JSON, keys sorted).
    pub transaction_context_sha256: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlowResponse {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub flow_type: FlowType,
    pub state: FlowState,
    /// Grows with every change; long-poll with `after_version`.
    pub version: i64,
    pub external_user_id: String,
    pub identity: IdentityProof,
    pub possession: PossessionProofStatus,
    /// Registration and recovery: whether this flow stored a biometric reference.
    pub biometric_reference_stored: Option<bool>,
    /// Set when `state` is `failed`: `idv_declined`, `idv_abandoned`, `idv_error`, `idv_unavailable`.
    pub failure_reason: Option<String>,
    pub transaction_context: Option<Value>,
    pub transaction_context_sha256: Option<String>,
    pub cross_platform: bool,
    pub handoff: Option<HandoffStatus>,
    pub result: Option<FlowResult>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `GET /api/core/v1/flows/{flow_id}` query: long-polling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlowWaitQuery {
    /// Answer as soon as the flow's version exceeds this.
    pub after_version: Option<i64>,
    /// Wait up to this many seconds (0–30) for a change; default 0.
    #[param(minimum = 0, maximum = 30)]
    pub wait_seconds: Option<u32>,
}

/// A new credential, as the customer's relying party verified it (registration, recovery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredentialProof {
    /// The WebAuthn credential id, unpadded base64url of 1 to 1023 bytes.
    #[schema(
        min_length = 2,
        max_length = 1364,
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])$"
    )]
    pub id: String,
    /// COSE public key, unpadded base64url.
    #[serde(default)]
    #[schema(
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub public_key: Option<String>,
    #[serde(default)]
    pub aaguid: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::integer::u32")]
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295.0)]
    pub sign_count: u32,
    #[serde(default)]
    pub transports: Vec<String>,
    #[serde(default)]
    pub backup_eligible: bool,
    #[serde(default)]
    pub backup_state: bool,
    /// `ios`, `android`, `web`…
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub device_label: Option<String>,
}

/// An assertion, as the customer's relying party verified it (sign-in, step-up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionProof {
    /// The WebAuthn credential id, unpadded base64url of 1 to 1023 bytes.
    #[schema(
        min_length = 2,
        max_length = 1364,
        pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])$"
    )]
    pub credential_id: String,
    /// The authenticator's new signature counter.
    #[serde(deserialize_with = "crate::integer::u32")]
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295.0)]
    pub sign_count: u32,
    #[serde(default)]
    pub backup_eligible: Option<bool>,
    #[serde(default)]
    pub backup_state: Option<bool>,
}

/// `builtin` possession mode: the authenticator's response, verified by the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebAuthnProof {
    /// The response as `PublicKeyCredential.toJSON()` gives it
    /// (`RegistrationResponseJSON` or `AuthenticationResponseJSON`).
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    pub response: Value,
    /// Registration, recovery: `ios`, `android`, `web`…
    #[serde(default)]
    pub platform: Option<String>,
    /// Registration, recovery: a name for the device, shown to operators.
    #[serde(default)]
    pub device_label: Option<String>,
}

/// `POST /api/core/v1/flows/{flow_id}/possession`: exactly one of the three —
/// `credential` or `assertion` in `external` mode, `webauthn` in `builtin` mode
/// (the others absent or `null`). Its schema says so with `oneOf`
/// ([`PossessionRequest::schema`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PossessionRequest {
    #[serde(default)]
    pub credential: Option<NewCredentialProof>,
    #[serde(default)]
    pub assertion: Option<AssertionProof>,
    /// `builtin` mode.
    #[serde(default)]
    pub webauthn: Option<WebAuthnProof>,
}

impl PossessionRequest {
    const PROOFS: [(&'static str, &'static str); 3] = [
        ("credential", "NewCredentialProof"),
        ("assertion", "AssertionProof"),
        ("webauthn", "WebAuthnProof"),
    ];
}

impl utoipa::PartialSchema for PossessionRequest {
    /// One object per proof: its own property required, the other two absent
    /// or `null`, nothing else.
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type,
        };
        use utoipa::openapi::{Ref, RefOr};
        let mut one_of = OneOfBuilder::new().description(Some(
            "Exactly one of `credential` (registration, recovery) or `assertion` (sign-in, \
             step-up) in `external` possession mode, or `webauthn` in `builtin` mode; the \
             others absent or null.",
        ));
        for (name, schema) in Self::PROOFS {
            let mut object = ObjectBuilder::new()
                .schema_type(Type::Object)
                .title(Some(name))
                .property(name, Ref::from_schema_name(schema))
                .required(name)
                .additional_properties(Some(
                    AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
                ));
            for (other, _) in Self::PROOFS.iter().filter(|(other, _)| *other != name) {
                object = object.property(*other, ObjectBuilder::new().schema_type(Type::Null));
            }
            one_of = one_of.item(RefOr::T(Schema::Object(object.build())));
        }
        RefOr::T(Schema::OneOf(one_of.build()))
    }
}

impl ToSchema for PossessionRequest {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((
            NewCredentialProof::name().into(),
            NewCredentialProof::schema(),
        ));
        schemas.push((AssertionProof::name().into(), AssertionProof::schema()));
        schemas.push((WebAuthnProof::name().into(), WebAuthnProof::schema()));
    }
}

/// `PUT /api/core/v1/flows/{flow_id}/biometric-reference` and the release's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BiometricReferenceBody {
    /// The IDV SDK's encrypted biometric token (1 to 131072 bytes): URL-safe
    /// base64, unpadded or padded, or standard base64 with its padding. The
    /// pattern says which strings decode; a token that decodes to more than
    /// 131072 bytes is refused (`400 invalid_request_body`).
    #[schema(
        min_length = 2,
        pattern = r"^(?:(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])=*|(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=))$"
    )]
    pub token: String,
}

/// `POST /api/core/v1/handoffs/claim`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimHandoffRequest {
    pub code: String,
    /// The user signed in on the claiming device; must own the flow.
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,128}$", min_length = 1, max_length = 128)]
    pub external_user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CredentialResponse {
    pub id: Uuid,
    /// The WebAuthn credential id.
    pub webauthn_id: String,
    /// `active`, `suspended` or `revoked`.
    pub status: String,
    pub status_reason: Option<String>,
    pub aaguid: Option<Uuid>,
    pub sign_count: u32,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub platform: Option<String>,
    pub device_label: Option<String>,
    pub created_by_flow: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub external_user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub has_biometric_reference: bool,
    pub credentials: Vec<CredentialResponse>,
}

/// Synthetic mode only: the outcome to give a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticOutcome {
    Approved,
    Declined,
    Review,
    Abandoned,
    Error,
}

/// `POST /api/core/v1/synthetic/runs/{run_id}/outcome`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticOutcomeRequest {
    pub outcome: SyntheticOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderEventResponse {
    /// `applied`, `no_change`, `duplicate` or `unknown_run`; from the
    /// provider's webhook also `ignored` (an event type not acted on) or
    /// `stale` (a run's completion too old, or too far ahead, to act on).
    pub result: String,
}

/// The route the identity provider delivers its events to (`onfido` mode).
pub const PROVIDER_WEBHOOK_PATH: &str = "/api/public/v1/providers/onfido/webhooks";

/// The operation id of [`PROVIDER_WEBHOOK_PATH`] in the Core API's document.
pub const PROVIDER_WEBHOOK_OPERATION: &str = "receive_onfido_webhook";

/// The body of a delivery to [`PROVIDER_WEBHOOK_PATH`].
pub type ProviderWebhookEvent = OnfidoWebhookEvent;

/// The signature header of a delivery to [`PROVIDER_WEBHOOK_PATH`]
/// (documentation only: the route reads it from the raw request).
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ProviderWebhookSignature {
    /// HMAC-SHA256 of the raw body, keyed with the webhook secret, as 64 lower-case hex digits; missing or not matching: `401 webhook_signature_invalid`
    #[param(
        rename = "X-SHA2-Signature",
        min_length = 64,
        max_length = 64,
        pattern = "^[0-9a-f]{64}$"
    )]
    pub signature: String,
}

/// `POST /api/public/v1/providers/onfido/webhooks`: the provider's event, as
/// far as the backend reads it (documentation only: the route verifies the
/// signature over the raw bytes before it parses them). Other properties are
/// allowed and ignored.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
pub struct OnfidoWebhookEvent {
    pub payload: OnfidoWebhookPayload,
}

#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
pub struct OnfidoWebhookPayload {
    /// `workflow_run`, `check`, …
    #[schema(nullable = false)]
    pub resource_type: Option<String>,
    /// The event type; only `workflow_run.completed` is acted on.
    #[schema(example = "workflow_run.completed")]
    pub action: String,
    pub object: OnfidoWebhookObject,
}

#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
pub struct OnfidoWebhookObject {
    /// The run's id (for `workflow_run.*` events).
    pub id: String,
    /// The run's status as announced (`approved`, `declined`, …); the run is
    /// re-read from the provider before anything moves.
    #[schema(nullable = false)]
    pub status: Option<String>,
    /// The event time the age of a `workflow_run.completed` is judged by
    /// (else `started_at_iso8601`); an unparsable time counts as none.
    #[schema(nullable = false)]
    pub completed_at_iso8601: Option<String>,
    #[schema(nullable = false)]
    pub started_at_iso8601: Option<String>,
}
