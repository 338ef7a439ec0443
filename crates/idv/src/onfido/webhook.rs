//! The provider's webhook deliveries, read behind
//! `domain::idv::WebhookVerifier`.
//!
//! 1. Verify `X-SHA2-Signature`: exactly 64 lower-case hex digits, the
//!    HMAC-SHA256 of the raw body keyed with the webhook secret, checked in
//!    constant time — before the body is parsed. While the secret is
//!    rotated, the previous secret is accepted too: both are always checked,
//!    and the event says which one matched.
//! 2. Parse the event: without `payload.action` or `payload.object.id` it is
//!    malformed.
//! 3. Branch on the event type. Events the backend does not act on (a webhook
//!    registered without an `events` list receives every type) are ignored,
//!    whatever their timestamps.
//! 4. For `workflow_run.completed`, judge the age from the signed body's own
//!    timestamps (`object.completed_at_iso8601`, else
//!    `object.started_at_iso8601`, else `resource.updated_at`): older than
//!    the configured maximum, more than a minute ahead, or without any of
//!    them, it is not acted on.

use domain::idv::{DeliveryHeaders, DeliveryRefusal, ProviderEvent, WebhookVerifier};
use domain::service::SignedWith;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// The header carrying a delivery's signature.
pub const SIGNATURE_HEADER: &str = "X-SHA2-Signature";
/// How far in the future a delivery's timestamp may be (clock skew).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(1);
/// The event the backend acts on.
pub const RUN_COMPLETED: &str = "workflow_run.completed";

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
    pub fn verify(&self, body: &[u8], signature: &str) -> Result<SignedWith, DeliveryRefusal> {
        if signature.is_empty() {
            return Err(DeliveryRefusal::SignatureMissing);
        }
        if signature.len() != 64
            || !signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DeliveryRefusal::SignatureMalformed);
        }
        let expected = hex::decode(signature).map_err(|_| DeliveryRefusal::SignatureMalformed)?;
        let current = signed_by(&self.secret, body, &expected);
        let previous = self
            .previous_secret
            .as_ref()
            .is_some_and(|secret| signed_by(secret, body, &expected));
        match (current, previous) {
            (true, _) => Ok(SignedWith::Current),
            (false, true) => Ok(SignedWith::Previous),
            (false, false) => Err(DeliveryRefusal::SignatureInvalid),
        }
    }
}

impl WebhookVerifier for OnfidoWebhook {
    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn read(
        &self,
        headers: &dyn DeliveryHeaders,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<ProviderEvent, DeliveryRefusal> {
        let signature = match headers.get(SIGNATURE_HEADER) {
            None => "",
            Some(value) => std::str::from_utf8(value)
                .ok()
                .filter(|v| v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
                .ok_or(DeliveryRefusal::SignatureMalformed)?,
        };
        let signed_with = self.verify(body, signature)?;
        let event: Value = serde_json::from_slice(body).map_err(|_| DeliveryRefusal::Malformed)?;
        let payload = &event["payload"];
        let action = payload["action"]
            .as_str()
            .ok_or(DeliveryRefusal::Malformed)?;
        let object_id = payload["object"]["id"]
            .as_str()
            .ok_or(DeliveryRefusal::Malformed)?;
        if action != RUN_COMPLETED {
            return Ok(ProviderEvent::ignored(action));
        }
        let at = event_time(payload).ok_or(DeliveryRefusal::Stale)?;
        if now - at > self.max_age {
            return Err(DeliveryRefusal::Stale);
        }
        if at - now > MAX_FUTURE_SKEW {
            return Err(DeliveryRefusal::FromTheFuture);
        }
        Ok(ProviderEvent::RunCompleted {
            run_id: object_id.to_owned(),
            claimed_status: payload["object"]["status"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            signed_with,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers as sent, by name.
    struct Headers(Vec<(&'static str, Vec<u8>)>);

    impl DeliveryHeaders for Headers {
        fn get(&self, name: &str) -> Option<&[u8]> {
            self.0
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
        }
    }

    #[test]
    fn a_signature_header_that_is_not_text_is_malformed() {
        let webhook = OnfidoWebhook::new("token", Duration::minutes(15));
        let headers = Headers(vec![("x-sha2-signature", b"\xffabc".to_vec())]);
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            webhook.read(&headers, b"{}", now),
            Err(DeliveryRefusal::SignatureMalformed)
        );
        assert_eq!(
            webhook.read(&Headers(vec![]), b"{}", now),
            Err(DeliveryRefusal::SignatureMissing)
        );
    }

    fn signed(body: &str) -> Headers {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"token").unwrap();
        mac.update(body.as_bytes());
        Headers(vec![(
            "x-sha2-signature",
            hex::encode(mac.finalize().into_bytes()).into_bytes(),
        )])
    }

    #[test]
    fn events_not_acted_on_are_ignored_whatever_their_age_and_stale_completions_acknowledged() {
        let webhook = OnfidoWebhook::new("token", Duration::minutes(15));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        for body in [
            r#"{"payload":{"resource_type":"audit_log","action":"audit_log.created","object":{"id":"a1"}}}"#,
            r#"{"payload":{"resource_type":"workflow_task","action":"workflow_task.started","object":{"id":"profile_1eb92","started_at_iso8601":"2001-01-01T00:00:00Z"}}}"#,
        ] {
            let event = webhook.read(&signed(body), body.as_bytes(), now).unwrap();
            assert!(matches!(event, ProviderEvent::Ignored { .. }), "{body}");
        }
        let stale = r#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed","object":{"id":"r1","status":"approved","completed_at_iso8601":"2001-01-01T00:00:00Z"}}}"#;
        let refusal = webhook
            .read(&signed(stale), stale.as_bytes(), now)
            .unwrap_err();
        assert_eq!(refusal, DeliveryRefusal::Stale);
        assert!(refusal.acknowledged());
        let no_time = r#"{"payload":{"action":"workflow_run.completed","object":{"id":"r1"}}}"#;
        assert_eq!(
            webhook.read(&signed(no_time), no_time.as_bytes(), now),
            Err(DeliveryRefusal::Stale)
        );
    }

    #[test]
    fn a_fresh_completion_names_its_run_and_announced_status() {
        let webhook = OnfidoWebhook::new("token", Duration::minutes(15));
        let now = OffsetDateTime::parse("2024-04-04T09:25:00Z", &Rfc3339).unwrap();
        let body = r#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed","object":{"id":"r1","status":"approved","completed_at_iso8601":"2024-04-04T09:21:21Z"}}}"#;
        assert_eq!(
            webhook.read(&signed(body), body.as_bytes(), now),
            Ok(ProviderEvent::RunCompleted {
                run_id: "r1".to_owned(),
                claimed_status: Some("approved".to_owned()),
                signed_with: SignedWith::Current,
            })
        );
        let before = OffsetDateTime::parse("2024-04-04T09:19:00Z", &Rfc3339).unwrap();
        assert_eq!(
            webhook.read(&signed(body), body.as_bytes(), before),
            Err(DeliveryRefusal::FromTheFuture)
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
                Err(DeliveryRefusal::SignatureInvalid)
            );
            assert_eq!(
                webhook.verify(body.as_bytes(), &signature.to_uppercase()),
                Err(DeliveryRefusal::SignatureMalformed)
            );
            assert_eq!(
                webhook.verify(body.as_bytes(), &signature[..63]),
                Err(DeliveryRefusal::SignatureMalformed)
            );
            assert_eq!(
                webhook.verify(body.as_bytes(), ""),
                Err(DeliveryRefusal::SignatureMissing)
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
            Err(DeliveryRefusal::SignatureInvalid)
        );
        let neither = OnfidoWebhook::new("the-new-secret", max_age).with_previous_secret("older");
        assert_eq!(
            neither.verify(body.as_bytes(), signature),
            Err(DeliveryRefusal::SignatureInvalid)
        );
    }
}
