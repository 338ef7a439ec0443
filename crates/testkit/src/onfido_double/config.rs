//! What tests choose: the double's configuration, the routes and faults
//! they can switch on, and what the double records and reports.

use std::time::Duration;

/// Pause between delivery attempts (the provider's schedule is unverified; tests want speed).
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Page size of `GET /workflow_runs` (assumption: the provider documents `page`, not its size).
pub const RUNS_PER_PAGE: usize = 20;

/// How the double behaves; `Default` suits most tests.
#[derive(Debug, Clone)]
pub struct OnfidoDoubleConfig {
    /// Required as `Authorization: Token token=<api_token>`, else 401.
    pub api_token: String,
    /// Signs deliveries: `X-SHA2-Signature` = lower-case hex HMAC-SHA256(token, bytes sent).
    pub webhook_token: String,
    /// Where deliveries go; settable later with [`OnfidoDouble::set_webhook_url`](super::OnfidoDouble::set_webhook_url).
    pub webhook_url: Option<String>,
    /// Runs of this workflow are `approved` straight from create.
    pub non_interactive_workflow_id: Option<String>,
    /// Biometric tokens appear under `/biometric_tokens/{customer_user_id}` this long after an approved run.
    pub biometric_token_delay: Duration,
    /// After this many requests in a rolling minute: 429 `rate_limit` with `Retry-After`.
    pub rate_limit_per_minute: Option<u32>,
    /// Extra attempts after a failed delivery (non-2xx or no answer within 10 s).
    pub webhook_retries: u32,
    /// `GET /workflow_runs` ignores its `tags` filter and lists the most
    /// recently completed runs first (assumption 3).
    pub loose_tags_filter: bool,
}

impl Default for OnfidoDoubleConfig {
    fn default() -> Self {
        Self {
            api_token: "api_sandbox.test-token".into(),
            webhook_token: "test_webhook_token_0123456789abcdef".into(),
            webhook_url: None,
            non_interactive_workflow_id: None,
            biometric_token_delay: Duration::ZERO,
            rate_limit_per_minute: None,
            webhook_retries: 0,
            loose_tags_filter: false,
        }
    }
}

/// The API routes whose behaviour can be faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /applicants`
    CreateApplicant,
    /// `DELETE /applicants/{id}`
    DeleteApplicant,
    /// `POST /workflow_runs`
    CreateRun,
    /// `GET /workflow_runs/{id}`
    ReadRun,
    /// `GET /workflow_runs`
    ListRuns,
    /// Anything under `/biometric_tokens/`
    BiometricTokens,
}

/// How a faulted call misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 with the §8 envelope; nothing processed.
    ServerError,
    /// 502 `text/html` (clients fall back to type `unknown`); nothing processed.
    NonJsonBadGateway,
    /// Processed, then answered this late.
    Delay(Duration),
    /// Processed, then the connection is closed without an answer.
    DropConnection,
    /// 429 `rate_limit`, with `Retry-After` when given; nothing processed.
    RateLimited { retry_after: Option<u32> },
    /// Processed, then answered 503 with the §8 envelope (a gateway that gave
    /// up waiting on the provider).
    UnavailableAfterProcessing,
}

/// How deliveries misbehave, until set back to `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WebhookFault {
    #[default]
    None,
    /// The same bytes and signature delivered twice.
    Duplicate,
    /// `workflow_run.completed`, then a `workflow_task.completed` of the same run.
    TaskCompletedAfterRun,
    /// 64 lower-case hex characters, but not the signature (last digit changed).
    BadSignature,
    /// The right signature in upper case.
    UppercaseSignature,
    /// The right signature less its last character.
    TruncatedSignature,
    /// No `X-SHA2-Signature` header.
    MissingSignature,
    /// Signed with another webhook token.
    OtherToken,
    /// Other whitespace and key order, correctly signed over the bytes sent (must be accepted).
    ReformattedBody,
    /// Unknown fields at every level and an unknown `status` (`"paused"`), correctly signed.
    UnknownFieldsAndStatus,
    /// No `object.href`, correctly signed.
    NoHref,
    /// `completed_at_iso8601` (and `resource.updated_at`) this far in the past, correctly signed.
    StaleCompletedAt(time::Duration),
    /// Nothing is sent.
    NoDelivery,
}

/// What one delivery attempt got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Status(u16),
    /// Refused, reset, or no answer within 10 s.
    NoAnswer,
}

impl DeliveryOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Status(code) if (200..300).contains(code))
    }
}

/// How many of the latest API requests [`OnfidoDouble::requests`](super::OnfidoDouble::requests) keeps.
pub const RECORDED_REQUESTS: usize = 1_000;

/// One API request as received. The `Authorization` value is never kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The full path, e.g. `/v3.6/workflow_runs`.
    pub path: String,
    /// The raw query string, without `?` (empty when none).
    pub query: String,
    /// The JSON body; `null` when empty, a string when not JSON.
    pub body: serde_json::Value,
    /// Whether `Authorization` was exactly `Token token=<api_token>`.
    pub authorized: bool,
    /// Every header, lower-case names, `Authorization` masked.
    pub headers: Vec<(String, String)>,
}
