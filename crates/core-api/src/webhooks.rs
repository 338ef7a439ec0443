//! The IDV provider's webhook deliveries.
//!
//! The provider's format is read behind [`WebhookVerifier`] (in `idv`): it
//! verifies the signature over the raw body in constant time before anything
//! is parsed, then reads the event and judges a completion's age from the
//! signed body. This route answers what it says:
//!
//! 1. A missing or failing signature is answered 401, a signed body that is
//!    not a provider event 400.
//! 2. Events the backend does not act on (a webhook registered without an
//!    `events` list receives every type) are acknowledged 200 at once,
//!    whatever their timestamps: refusing them would only make the provider
//!    deliver them again and again.
//! 3. A completion too old, too far ahead, or without a time to judge it by
//!    is not acted on but acknowledged 200 (a refusal would only bring the
//!    same stale body back); the reconciler picks the run's result up by
//!    polling.
//! 4. Otherwise the run goes to the flow service, which de-duplicates on
//!    (run, announced status), re-reads the run from the provider within
//!    [`domain::idv::WEBHOOK_READ_BUDGET`] (the provider counts a delivery
//!    not answered within 10 seconds as failed), and moves its flow. What
//!    cannot be read in time is answered 503 with nothing recorded.
//!
//! Deliveries that are not acted on change nothing and are counted, per
//! reason and minute, in the audit trail (`webhook.rejected`,
//! `webhook.ignored`): a flood of them adds a row per reason and minute, not
//! one per delivery. The body is never logged.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use domain::audit::Actor;
use domain::idv::{DeliveryHeaders, DeliveryRefusal, ProviderEvent, WebhookVerifier};
use domain::service::{EventOutcome, FlowService, RequestContext};
use domain::tally::TallyKind;
use http_common::{ApiBody, ApiError, ApiJson, CorrelationId};
use proto::core::{PROVIDER_WEBHOOK_PATH, ProviderEventResponse};
use proto::{ErrorBody, ErrorCode};

/// The largest delivery read; the provider's events are a few KiB.
pub const MAX_BODY: usize = 256 * 1024;

/// A delivery's headers, as the verifier reads them.
struct Headers<'a>(&'a HeaderMap);

impl DeliveryHeaders for Headers<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|value| value.as_bytes())
    }
}

/// The answer to a delivery not acted on and not acknowledged.
fn refusal_error(refusal: DeliveryRefusal, signature_header: &str) -> ApiError {
    if refusal.unsigned() {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::WebhookSignatureInvalid,
            format!("the {signature_header} header is missing or does not match the body"),
        );
    }
    match refusal {
        DeliveryRefusal::Stale | DeliveryRefusal::FromTheFuture => ApiError::bad_request(
            ErrorCode::WebhookStale,
            "the event's timestamp is outside the accepted window",
        ),
        _ => ApiError::bad_request(
            ErrorCode::WebhookMalformed,
            "the delivery is not a provider event",
        ),
    }
}

/// What the route needs.
#[derive(Clone)]
pub struct WebhookState {
    pub webhook: Arc<dyn WebhookVerifier>,
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
    path = PROVIDER_WEBHOOK_PATH,
    operation_id = proto::core::PROVIDER_WEBHOOK_OPERATION,
    tag = "provider webhooks",
    params(proto::core::ProviderWebhookSignature),
    request_body(content = proto::core::ProviderWebhookEvent, content_type = "application/json", description = "The provider's event, as signed, at most 256 KiB"),
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
    let headers = Headers(&headers);
    let (run_id, claimed_status, signed_with) =
        match state.webhook.read(&headers, &body, state.clock.now()) {
            Ok(ProviderEvent::RunCompleted {
                run_id,
                claimed_status,
                signed_with,
            }) => (run_id, claimed_status, signed_with),
            Ok(ProviderEvent::Ignored { reason }) => {
                note(&state, TallyKind::Ignored, &reason).await;
                return Ok(answer("ignored"));
            }
            Err(refusal) => {
                tracing::debug!(reason = refusal.reason(), "webhook delivery not acted on");
                note(&state, TallyKind::Rejected, refusal.reason()).await;
                return if refusal.acknowledged() {
                    Ok(answer("stale"))
                } else {
                    Err(refusal_error(refusal, state.webhook.signature_header()))
                };
            }
        };
    let result = match state
        .flows
        .ingest_run_event(&ctx, &run_id, claimed_status.as_deref(), Some(signed_with))
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
