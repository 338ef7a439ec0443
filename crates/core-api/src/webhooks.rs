//! `POST /api/public/v1/providers/onfido/webhooks`: the IDV provider's deliveries.
//!
//! 1. Verify `X-SHA2-Signature`: exactly 64 lower-case hex digits, the
//!    HMAC-SHA256 of the raw body keyed with the webhook secret, checked in
//!    constant time — before the body is parsed, and without logging it.
//!    While the secret is rotated, the previous secret is accepted too: both
//!    are always checked, and the audit records which one matched.
//! 2. Judge the delivery's age from the signed body's own timestamps
//!    (`object.completed_at_iso8601`, else `object.started_at_iso8601`, else
//!    `resource.updated_at`): older than the configured maximum, more than a
//!    minute in the future, or without any of them, it is refused as stale.
//! 3. For `workflow_run.completed`, hand the run to the flow service, which
//!    de-duplicates on (run, announced status) — so the same event re-sent
//!    with other whitespace counts once — re-reads the run from the provider,
//!    and moves its flow. Other events are acknowledged and ignored.
//!
//! Every refusal changes nothing and is audited as `webhook.rejected`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use domain::audit::Actor;
use domain::service::{EventOutcome, FlowService, RequestContext, SignedWith};
use hmac::{Hmac, Mac};
use http_common::{ApiError, ApiJson, CorrelationId};
use proto::ErrorCode;
use proto::core::ProviderEventResponse;
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

/// Why a delivery was refused; the `reason` of its audit event.
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

/// Checks a delivery: signature, shape, age.
pub fn check(
    webhook: &OnfidoWebhook,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Delivery, Rejection> {
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
    let at = event_time(payload).ok_or(Rejection::Stale)?;
    if now - at > webhook.max_age {
        return Err(Rejection::Stale);
    }
    if at - now > MAX_FUTURE_SKEW {
        return Err(Rejection::FromTheFuture);
    }
    Ok(Delivery {
        signed_with,
        resource_type: payload["resource_type"].as_str().unwrap_or("").to_owned(),
        action: action.to_owned(),
        object_id: object_id.to_owned(),
        status: payload["object"]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    })
}

/// What the route needs.
#[derive(Clone)]
pub struct WebhookState {
    pub webhook: Arc<OnfidoWebhook>,
    pub flows: Arc<FlowService>,
    pub clock: Arc<dyn domain::Clock>,
}

pub async fn receive(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ApiJson<ProviderEventResponse>, ApiError> {
    let ctx = RequestContext {
        actor: Actor::Provider,
        correlation_id: CorrelationId::current().map(|id| id.as_str().to_owned()),
    };
    let delivery = match check(&state.webhook, &headers, &body, state.clock.now()) {
        Ok(delivery) => delivery,
        Err(rejection) => {
            tracing::warn!(reason = rejection.reason(), "webhook delivery rejected");
            state
                .flows
                .audit_webhook_rejection(&ctx, "onfido", rejection.reason())
                .await?;
            return Err(rejection.to_error());
        }
    };
    let result = if delivery.action == "workflow_run.completed" {
        let claimed = Some(delivery.status.as_str()).filter(|s| !s.is_empty());
        match state
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
        }
    } else {
        "ignored"
    };
    Ok(ApiJson(ProviderEventResponse {
        result: result.to_owned(),
    }))
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
