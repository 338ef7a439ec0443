//! Webhook deliveries: a run's completion becomes a plan of signed
//! `workflow_run.completed` deliveries, shaped by the webhook fault in force,
//! built under the lock and sent without it, each retried as configured.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;

use super::config::{DeliveryOutcome, RETRY_PAUSE, WebhookFault};
use super::events::{run_completed_body, task_event_body, write_reformatted};
use super::handle::Shared;
use super::state::{DoubleState, Run};
use super::{now, ts};

/// The provider answers within this or the delivery failed (spec §6.1).
pub(super) const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The token `WebhookFault::OtherToken` signs with.
pub(super) const OTHER_WEBHOOK_TOKEN: &str = "other_webhook_token_fedcba9876543210";
/// The status `WebhookFault::UnknownFieldsAndStatus` announces.
const UNKNOWN_STATUS: &str = "paused";

/// Lower-case hex HMAC-SHA256 of `body` keyed with `token`: the `X-SHA2-Signature`.
pub fn sign(token: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What to send after a completion; built under the lock, sent without it.
pub(super) struct DeliveryPlan {
    url: Option<String>,
    retries: u32,
    deliveries: Vec<(Vec<u8>, Option<String>)>,
}

impl Shared {
    /// Completes the run (see [`DoubleState::complete`]) and plans the
    /// deliveries announcing it: the run as it now is, and the plan.
    pub(super) fn complete(
        &self,
        run_id: &str,
        status: &str,
    ) -> Result<(Value, DeliveryPlan), (StatusCode, String)> {
        let now = now();
        let mut state = self.state();
        let run = state.complete(run_id, status, now)?;
        let plan = self.plan(&state, &run, now);
        Ok((run.to_json(), plan))
    }

    /// The deliveries of a run's completion under the webhook fault in force.
    pub(super) fn plan(&self, state: &DoubleState, run: &Run, now: OffsetDateTime) -> DeliveryPlan {
        let token = &state.config.webhook_token;
        let base = self.base_url();
        let href = Some(format!("{base}/workflow_runs/{}", run.id));
        let completed_at = ts(now);
        let body = run_completed_body(run, &completed_at, href.clone());
        let signed = |body: Vec<u8>| {
            let signature = sign(token, &body);
            (body, Some(signature))
        };
        let with_signature = |signature: Option<String>| (body.clone(), signature);
        let right = sign(token, &body);
        let deliveries = match &state.webhook_fault {
            WebhookFault::None => vec![signed(body.clone())],
            WebhookFault::Duplicate => vec![signed(body.clone()), signed(body.clone())],
            WebhookFault::TaskCompletedAfterRun => {
                let mut deliveries = vec![signed(body.clone())];
                if let Some(task) = run.tasks.last() {
                    let task_href = format!("{base}/workflow_runs/{}/tasks/{}", run.id, task.id);
                    deliveries.push(signed(task_event_body(
                        "workflow_task.completed",
                        "completed",
                        task,
                        &run.id,
                        Some(&completed_at),
                        &task_href,
                    )));
                }
                deliveries
            }
            WebhookFault::BadSignature => {
                let mut bad = right.clone();
                let last = bad.pop().unwrap_or('0');
                bad.push(if last == '0' { '1' } else { '0' });
                vec![with_signature(Some(bad))]
            }
            WebhookFault::UppercaseSignature => vec![with_signature(Some(right.to_uppercase()))],
            WebhookFault::TruncatedSignature => {
                vec![with_signature(Some(right[..right.len() - 1].to_owned()))]
            }
            WebhookFault::MissingSignature => vec![with_signature(None)],
            WebhookFault::OtherToken => {
                vec![with_signature(Some(sign(OTHER_WEBHOOK_TOKEN, &body)))]
            }
            WebhookFault::ReformattedBody => {
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut text = String::new();
                write_reformatted(&value, 0, &mut text);
                text.push('\n');
                vec![signed(text.into_bytes())]
            }
            WebhookFault::UnknownFieldsAndStatus => {
                let mut odd = run.clone();
                odd.status = UNKNOWN_STATUS.into();
                let mut value: Value =
                    serde_json::from_slice(&run_completed_body(&odd, &completed_at, href))
                        .unwrap_or(Value::Null);
                let novelty = json!({"introduced_in": "v3.7", "flag": true});
                value["x_new_field"] = novelty.clone();
                value["payload"]["x_new_field"] = novelty.clone();
                value["payload"]["object"]["x_new_field"] = novelty.clone();
                value["payload"]["resource"]["x_new_field"] = novelty;
                vec![signed(serde_json::to_vec(&value).unwrap_or_default())]
            }
            WebhookFault::NoHref => vec![signed(run_completed_body(run, &completed_at, None))],
            WebhookFault::StaleCompletedAt(age) => {
                let then = now - *age;
                let mut old = run.clone();
                old.updated_at = then;
                vec![signed(run_completed_body(&old, &ts(then), href))]
            }
            WebhookFault::NoDelivery => Vec::new(),
        };
        DeliveryPlan {
            url: state.config.webhook_url.clone(),
            retries: state.config.webhook_retries,
            deliveries,
        }
    }

    pub(super) async fn deliver(&self, plan: DeliveryPlan) -> Vec<DeliveryOutcome> {
        let Some(url) = plan.url else {
            return Vec::new();
        };
        let mut outcomes = Vec::new();
        for (body, signature) in &plan.deliveries {
            for attempt in 0..=plan.retries {
                let outcome = deliver_once(&self.http, &url, body, signature.as_deref()).await;
                outcomes.push(outcome);
                if outcome.is_success() {
                    break;
                }
                if attempt < plan.retries {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        outcomes
    }

    /// Sends the plan's deliveries from a task of their own.
    pub(super) fn deliver_in_background(self: &Arc<Self>, plan: DeliveryPlan) {
        let shared = self.clone();
        tokio::spawn(async move {
            shared.deliver(plan).await;
        });
    }
}

/// One attempt: the status answered, or none.
pub(super) async fn deliver_once(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> DeliveryOutcome {
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-SHA2-Signature", signature);
    }
    match request.send().await {
        Ok(response) => DeliveryOutcome::Status(response.status().as_u16()),
        Err(_) => DeliveryOutcome::NoAnswer,
    }
}
