//! `POST /api/public/v1/providers/onfido/webhooks`: the IDV provider's deliveries.
//!
//! 1. Verify `X-SHA2-Signature`: exactly 64 lower-case hex digits, the
//!    HMAC-SHA256 of the raw body keyed with the webhook secret, checked in
//!    constant time — before the body is parsed, and without logging it.
//!    While the secret is rotated, the previous secret is accepted too: both
//!    are always checked, and the audit records which one matched.
//!    A failure is answered 401.
//! 2. Parse the event: without `payload.action` or `payload.object.id` it is
//!    answered 400.
//! 3. Branch on the event type. Events the backend does not act on (a webhook
//!    registered without an `events` list receives every type) are
//!    acknowledged 200 at once, whatever their timestamps: refusing them
//!    would only make the provider deliver them again and again.
//! 4. For `workflow_run.completed`, judge the age from the signed body's own
//!    timestamps (`object.completed_at_iso8601`, else
//!    `object.started_at_iso8601`, else `resource.updated_at`): older than
//!    the configured maximum, more than a minute ahead, or without any of
//!    them, it is not acted on but acknowledged 200 (a refusal would only
//!    bring the same stale body back); the reconciler picks the run's result
//!    up by polling.
//! 5. Otherwise hand the run to the flow service, which de-duplicates on (run,
//!    announced status), re-reads the run from the provider within
//!    [`domain::idv::WEBHOOK_READ_BUDGET`] (the provider counts a delivery
//!    not answered within 10 seconds as failed), and moves its flow. What
//!    cannot be read in time is answered 503 with nothing recorded.
//!
//! Deliveries that are not acted on change nothing and are counted, per
//! reason and minute, in the audit trail (`webhook.rejected`,
//! `webhook.ignored`): a flood of them adds a row per reason and minute, not
//! one per delivery.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use domain::audit::Actor;
use domain::service::{EventOutcome, FlowService, RequestContext, SignedWith};
use domain::tally::TallyKind;
use hmac::{Hmac, Mac};
use http_common::{ApiBody, ApiError, ApiJson, CorrelationId};
use proto::core::ProviderEventResponse;
use proto::{ErrorBody, ErrorCode};
use serde_json::Value;
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub const SIGNATURE_HEADER: &str = "x-sha2-signature";
/// The largest delivery read; the provider's events are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;
/// How far in the future a delivery's timestamp may be (clock skew).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(1);

/// The webhook's settings (`BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_*`).
pub struct OnfidoWebhook {
    secret: Zeroizing<Vec<u8>>,
    previous_secret: Option<Zeroizing<Vec<u8>>>,
    max_age: Duration,
}

impl OnfidoWebhook {
    pub fn new(secret: &str, max_age: Duration) -> Self {
        Self {
            secret: Zeroizing::new(secret.as_bytes().to_vec()),
            previous_secret: None,
            max_age,
        }
    }

    /// Also accepts deliveries signed with `previous_secret`, the one being
    /// rotated out.
    #[must_use]
    pub fn with_previous_secret(mut self, previous_secret: &str) -> Self {
        self.previous_secret = Some(Zeroizing::new(previous_secret.as_bytes().to_vec()));
        self
    }

    /// Whether `signature` is the lower-case hex HMAC-SHA256 of `body` keyed
    /// with the current or (when configured) the previous secret, and which.
    /// Both are always computed and compared in constant time, so the time
    /// taken does not tell which matched.
    pub fn verify(&self, body: &[u8], signature: &str) -> Result<SignedWith, Rejection> {
        if signature.is_empty() {
            return Err(Rejection::SignatureMissing);
        }
        if signature.len() != 64
            || !signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Rejection::SignatureMalformed);
        }
        let expected = hex::decode(signature).map_err(|_| Rejection::SignatureMalformed)?;
        let current = signed_by(&self.secret, body, &expected);
        let previous = self
            .previous_secret
            .as_ref()
            .is_some_and(|secret| signed_by(secret, body, &expected));
        match (current, previous) {
            (true, _) => Ok(SignedWith::Current),
            (false, true) => Ok(SignedWith::Previous),
            (false, false) => Err(Rejection::SignatureInvalid),
        }
    }
}

/// Whether `expected` is the HMAC-SHA256 of `body` under `secret`, compared
/// in constant time.
fn signed_by(secret: &[u8], body: &[u8], expected: &[u8]) -> bool {
    // HMAC takes a key of any length; a failure here is no match.
    Hmac::<Sha256>::new_from_slice(secret).is_ok_and(|mut mac| {
        mac.update(body);
        mac.verify_slice(expected).is_ok()
    })
}

/// Why a delivery was not acted on; the `reason` of its audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    SignatureMissing,
    SignatureMalformed,
    SignatureInvalid,
    Malformed,
    Stale,
    FromTheFuture,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Self::SignatureMissing => "signature_missing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureInvalid => "signature_invalid",
            Self::Malformed => "malformed",
            Self::Stale => "stale",
            Self::FromTheFuture => "future_timestamp",
        }
    }

    /// Whether the delivery is still acknowledged 2xx: it is authentic and
    /// well-formed, only too old (or too new) to act on.
    pub fn acknowledged(self) -> bool {
        matches!(self, Self::Stale | Self::FromTheFuture)
    }

    fn to_error(self) -> ApiError {
        match self {
            Self::SignatureMissing | Self::SignatureMalformed | Self::SignatureInvalid => {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::WebhookSignatureInvalid,
                    "the X-SHA2-Signature header is missing or does not match the body",
                )
            }
            Self::Malformed => ApiError::bad_request(
                ErrorCode::WebhookMalformed,
                "the delivery is not a provider event",
            ),
            Self::Stale | Self::FromTheFuture => ApiError::bad_request(
                ErrorCode::WebhookStale,
                "the event's timestamp is outside the accepted window",
            ),
        }
    }
}

/// The event's time, from the signed body.
fn event_time(payload: &Value) -> Option<OffsetDateTime> {
    [
        &payload["object"]["completed_at_iso8601"],
        &payload["object"]["started_at_iso8601"],
        &payload["resource"]["updated_at"],
    ]
    .into_iter()
    .filter_map(Value::as_str)
    .find_map(|raw| OffsetDateTime::parse(raw, &Rfc3339).ok())
}

/// A verified, fresh delivery.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery {
    pub signed_with: SignedWith,
    pub resource_type: String,
    pub action: String,
    pub object_id: String,
    pub status: String,
}

/// The event the backend acts on.
pub const RUN_COMPLETED: &str = "workflow_run.completed";

/// What to do with an authentic, well-formed delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A fresh `workflow_run.completed`.
    Act(Delivery),
    /// An event type the backend does not act on, by its `action`.
    Ignore(String),
}

/// Checks a delivery: signature, shape, event type, and for the event acted
/// on, its age.
pub fn check(
    webhook: &OnfidoWebhook,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Verdict, Rejection> {
    let signature = match headers.get(SIGNATURE_HEADER) {
        None => "",
        Some(value) => value.to_str().map_err(|_| Rejection::SignatureMalformed)?,
    };
    let signed_with = webhook.verify(body, signature)?;
    let event: Value = serde_json::from_slice(body).map_err(|_| Rejection::Malformed)?;
    let payload = &event["payload"];
    let action = payload["action"].as_str().ok_or(Rejection::Malformed)?;
    let object_id = payload["object"]["id"]
        .as_str()
        .ok_or(Rejection::Malformed)?;
    if action != RUN_COMPLETED {
        return Ok(Verdict::Ignore(action.to_owned()));
    }
    let at = event_time(payload).ok_or(Rejection::Stale)?;
    if now - at > webhook.max_age {
        return Err(Rejection::Stale);
    }
    if at - now > MAX_FUTURE_SKEW {
        return Err(Rejection::FromTheFuture);
    }
    Ok(Verdict::Act(Delivery {
        signed_with,
        resource_type: payload["resource_type"].as_str().unwrap_or("").to_owned(),
        action: action.to_owned(),
        object_id: object_id.to_owned(),
        status: payload["object"]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    }))
}

/// An event type as an audit reason: the provider's names are short
/// lower-case words with dots and underscores; anything else is counted as
/// `other`.
fn ignored_reason(action: &str) -> &str {
    let plain = !action.is_empty()
        && action.len() <= 64
        && action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
    if plain { action } else { "other" }
}

/// What the route needs.
#[derive(Clone)]
pub struct WebhookState {
    pub webhook: Arc<OnfidoWebhook>,
    pub flows: Arc<FlowService>,
    pub clock: Arc<dyn domain::Clock>,
}

/// The provider's event deliveries (`onfido` mode only; elsewhere the route
/// is not mounted and answers `404 route_not_found`). Needs no API key: the
/// provider signs each delivery. Only `workflow_run.completed` is acted on;
/// other event types, and completions too old or too far ahead, are
/// acknowledged without effect so that the provider does not deliver them again.
#[utoipa::path(
    post,
    path = "/api/public/v1/providers/onfido/webhooks",
    operation_id = "receive_onfido_webhook",
    tag = "provider webhooks",
    params((
        "X-SHA2-Signature" = String,
        Header,
        min_length = 64,
        max_length = 64,
        pattern = "^[0-9a-f]{64}$",
        description = "HMAC-SHA256 of the raw body, keyed with the webhook secret, as 64 lower-case hex digits; missing or not matching: `401 webhook_signature_invalid`"
    )),
    request_body(content = proto::core::OnfidoWebhookEvent, content_type = "application/json", description = "The provider's event, as signed, at most 256 KiB"),
    responses(
        (status = 200, description = "Acknowledged; `result`: `applied`, `no_change`, `duplicate`, `unknown_run`, `ignored` (an event type not acted on) or `stale` (a completion too old, or too far ahead, to act on)", body = ProviderEventResponse),
        (status = 400, description = "`webhook_malformed`: signed, but not a provider event (no `payload.action` or `payload.object.id`)", body = ErrorBody),
        (status = 401, description = "`webhook_signature_invalid`", body = ErrorBody),
        (status = 404, description = "`route_not_found`: this deployment does not use the `onfido` provider", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 256 KiB", body = ErrorBody),
        (status = 429, description = "`too_many_refused_requests`: this source address had too many deliveries refused within the minute; nothing was checked. Retry after `Retry-After`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the run could not be read from the provider in time; nothing was recorded and the provider delivers again", body = ErrorBody),
    ),
)]
pub async fn receive(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<ApiJson<ProviderEventResponse>, ApiError> {
    let ctx = RequestContext {
        actor: Actor::Provider,
        correlation_id: CorrelationId::current().map(|id| id.as_str().to_owned()),
    };
    let delivery = match check(&state.webhook, &headers, &body, state.clock.now()) {
        Ok(Verdict::Act(delivery)) => delivery,
        Ok(Verdict::Ignore(action)) => {
            note(&state, TallyKind::Ignored, ignored_reason(&action)).await;
            return Ok(answer("ignored"));
        }
        Err(rejection) => {
            tracing::debug!(reason = rejection.reason(), "webhook delivery not acted on");
            note(&state, TallyKind::Rejected, rejection.reason()).await;
            return if rejection.acknowledged() {
                Ok(answer("stale"))
            } else {
                Err(rejection.to_error())
            };
        }
    };
    let claimed = Some(delivery.status.as_str()).filter(|s| !s.is_empty());
    let result = match state
        .flows
        .ingest_run_event(
            &ctx,
            &delivery.object_id,
            claimed,
            Some(delivery.signed_with),
        )
        .await?
    {
        EventOutcome::Applied => "applied",
        EventOutcome::NoChange => "no_change",
        EventOutcome::Duplicate => "duplicate",
        EventOutcome::UnknownRun => "unknown_run",
    };
    Ok(answer(result))
}

fn answer(result: &str) -> ApiJson<ProviderEventResponse> {
    ApiJson(ProviderEventResponse {
        result: result.to_owned(),
    })
}

/// Counts a delivery not acted on; a failure to write the counts is logged,
/// and does not change the answer.
async fn note(state: &WebhookState, kind: TallyKind, reason: &str) {
    if let Err(e) = state
        .flows
        .note_refusal(kind, reason, &Actor::Provider)
        .await
    {
        tracing::warn!(error = %e, "counts of webhook deliveries not acted on were not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_header_that_is_not_text_is_malformed() {
        let webhook = OnfidoWebhook::new("token", Duration::minutes(15));
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            axum::http::HeaderValue::from_bytes(b"\xffabc").unwrap(),
        );
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            check(&webhook, &headers, b"{}", now),
            Err(Rejection::SignatureMalformed)
        );
        assert_eq!(
            check(&webhook, &HeaderMap::new(), b"{}", now),
            Err(Rejection::SignatureMissing)
        );
    }

    fn signed(body: &str) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"token").unwrap();
        mac.update(body.as_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            hex::encode(mac.finalize().into_bytes()).parse().unwrap(),
        );
        headers
    }

    #[test]
    fn events_not_acted_on_are_ignored_whatever_their_age_and_stale_completions_acknowledged() {
        let webhook = OnfidoWebhook::new("token", Duration::minutes(15));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        for body in [
            r#"{"payload":{"resource_type":"audit_log","action":"audit_log.created","object":{"id":"a1"}}}"#,
            r#"{"payload":{"resource_type":"workflow_task","action":"workflow_task.started","object":{"id":"profile_1eb92","started_at_iso8601":"2001-01-01T00:00:00Z"}}}"#,
        ] {
            let verdict = check(&webhook, &signed(body), body.as_bytes(), now).unwrap();
            assert!(matches!(verdict, Verdict::Ignore(_)), "{body}");
        }
        let stale = r#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed","object":{"id":"r1","status":"approved","completed_at_iso8601":"2001-01-01T00:00:00Z"}}}"#;
        let rejection = check(&webhook, &signed(stale), stale.as_bytes(), now).unwrap_err();
        assert_eq!(rejection, Rejection::Stale);
        assert!(rejection.acknowledged());
        let no_time = r#"{"payload":{"action":"workflow_run.completed","object":{"id":"r1"}}}"#;
        assert_eq!(
            check(&webhook, &signed(no_time), no_time.as_bytes(), now),
            Err(Rejection::Stale)
        );
        assert!(!Rejection::SignatureInvalid.acknowledged());
        assert!(!Rejection::Malformed.acknowledged());
    }

    #[test]
    fn ignored_event_types_become_bounded_reasons() {
        assert_eq!(
            ignored_reason("workflow_task.started"),
            "workflow_task.started"
        );
        assert_eq!(ignored_reason("Check Completed!"), "other");
        assert_eq!(ignored_reason(&"a".repeat(65)), "other");
        assert_eq!(ignored_reason(""), "other");
    }

    /// The provider's published vectors (see the provider spec, §6.4).
    #[test]
    fn published_signature_vectors_verify() {
        let vectors: [(&str, &str, &str); 2] = [
            (
                "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh",
                r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"f2302f45-227d-413d-ad61-09ec077a086a","status":"complete","completed_at_iso8601":"2024-04-04T09:21:21Z","href":"https://api.onfido.com/v3.6/checks/f2302f45-227d-413d-ad61-09ec077a086a"}}}"#,
                "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7",
            ),
            (
                "_ABC123abc123ABC123abc123ABC123_",
                r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"check-123","status":"complete","completed_at_iso8601":"2020-01-01T00:00:00Z","href":"https://api.onfido.com/v3/checks/check-123"}}}"#,
                "a0082d7481f9f0a2907583dbe1f344d6d4c0d9989df2fd804f98479f60cd760e",
            ),
        ];
        for (token, body, signature) in vectors {
            let webhook = OnfidoWebhook::new(token, Duration::minutes(15));
            assert_eq!(
                webhook.verify(body.as_bytes(), signature),
                Ok(SignedWith::Current)
            );
            let mut wrong = signature.to_owned();
            let last = if wrong.ends_with('0') { '1' } else { '0' };
            wrong.pop();
            wrong.push(last);
            assert_eq!(
                webhook.verify(body.as_bytes(), &wrong),
                Err(Rejection::SignatureInvalid)
            );
            assert_eq!(
                webhook.verify(body.as_bytes(), &signature.to_uppercase()),
                Err(Rejection::SignatureMalformed)
            );
            assert_eq!(
                webhook.verify(body.as_bytes(), &signature[..63]),
                Err(Rejection::SignatureMalformed)
            );
            assert_eq!(
                webhook.verify(body.as_bytes(), ""),
                Err(Rejection::SignatureMissing)
            );
        }
    }

    #[test]
    fn the_previous_secret_verifies_only_while_configured() {
        let (token, body, signature) = (
            "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh",
            r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"f2302f45-227d-413d-ad61-09ec077a086a","status":"complete","completed_at_iso8601":"2024-04-04T09:21:21Z","href":"https://api.onfido.com/v3.6/checks/f2302f45-227d-413d-ad61-09ec077a086a"}}}"#,
            "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7",
        );
        let max_age = Duration::minutes(15);
        let rotating = OnfidoWebhook::new("the-new-secret", max_age).with_previous_secret(token);
        assert_eq!(
            rotating.verify(body.as_bytes(), signature),
            Ok(SignedWith::Previous)
        );
        let rotated_back =
            OnfidoWebhook::new(token, max_age).with_previous_secret("the-new-secret");
        assert_eq!(
            rotated_back.verify(body.as_bytes(), signature),
            Ok(SignedWith::Current)
        );
        assert_eq!(
            OnfidoWebhook::new("the-new-secret", max_age).verify(body.as_bytes(), signature),
            Err(Rejection::SignatureInvalid)
        );
        let neither = OnfidoWebhook::new("the-new-secret", max_age).with_previous_secret("older");
        assert_eq!(
            neither.verify(body.as_bytes(), signature),
            Err(Rejection::SignatureInvalid)
        );
    }
}
