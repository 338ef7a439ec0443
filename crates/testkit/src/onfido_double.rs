//! A test double of the Onfido / Entrust Identity Verification API v3.6,
//! served over real HTTP on `127.0.0.1:<random port>`, per section 10 of the
//! provider spec (`idv-onfido.md`).
//!
//! Point `BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL` at [`OnfidoDouble::base_url`]:
//! the backend must not be able to tell it from the real service.
//!
//! **Documented** behaviour (the official API definition
//! `onfido/onfido-openapi-spec` and the official clients' tests) is imitated
//! as documented: routes, status codes (201 for creations, 200 for
//! `/sdk_token`, 204 for an applicant's deletion), the §8 error envelope, the
//! run's fields and statuses, the list as a bare array with its filters, a
//! non-null `sdk_token` on every created run (the official clients' tests
//! expect one even for a run approved at creation), `delete_at` on
//! applicants, biometric tokens' 404 body, and the webhook signature.
//!
//! **Assumptions**: where the official material is silent, this double
//! chooses, and every such choice is listed here (the code carrying each is
//! marked "Assumption"):
//!
//! 1. the 401 envelope's `type` (`authorization_error`), the 405 answer, a
//!    body that is not JSON (400 `bad_request`), and the 429 envelope and its
//!    `Retry-After` (see [`rate_limited`]);
//! 2. a deleted applicant reads as 404 and deleting it again is 404; an
//!    applicant scheduled for deletion reads as 200 with `delete_at` set; a
//!    run cannot be created for either (422 `validation_error` on
//!    `applicant_id`);
//! 3. the list of runs pages by [`RUNS_PER_PAGE`]; `created_at_gt/lt` take a
//!    date (compared with the run's calendar day) or a full date-time; the
//!    `tags` filter keeps runs carrying every given tag, and the default
//!    order is newest created first, unless
//!    [`OnfidoDoubleConfig::loose_tags_filter`] says otherwise (the filter
//!    ignored, most recently completed runs first: the reading a client must
//!    survive, since no official test pins either down);
//! 4. a run approved straight from create emits `workflow_run.completed` in
//!    the background;
//! 5. an approved run with a `customer_user_id` makes a biometric token when
//!    the user has none left (enrollment); later approvals reuse it
//!    (authentication); `media_type` is `"motion"`;
//! 6. `DropConnection`, `Delay` and `UnavailableAfterProcessing` faults
//!    *process* the request and then fail to answer, answer late, or answer
//!    503 (a gateway timing out in front of the provider): the ambiguous cases
//!    a client must survive without duplicates. `ServerError`,
//!    `NonJsonBadGateway` and `RateLimited` process nothing;
//! 7. deliveries are retried [`OnfidoDoubleConfig::webhook_retries`] times,
//!    [`RETRY_PAUSE`] apart (the provider's schedule is unpublished);
//! 8. what a run holds once finished: `output` is `{"face_match": …}` (real
//!    keys depend on the workflow version), `reasons` are made-up codes, a run
//!    in `error` has `error.type` `workflow_error`; a completion passes through
//!    `processing` and adds one `face_motion` task; `workflow_version_id` is 1;
//! 9. the list answers an `x-total-count` header, and an unparsable query is
//!    400 `bad_request`;
//! 10. `GET` of a run may lag behind its completion for a set number of reads
//!     ([`OnfidoDouble::set_read_lag`]), standing for eventual consistency the
//!     provider does not document for runs.
//!
//! Besides the API, a control plane outside `/v3.6` lets tests finish runs
//! (`POST /__control/workflow_runs/{id}/complete`, answered once the
//! deliveries are over, or at once with `"deliver": "background"`), and a
//! webhook emitter delivers signed `workflow_run.completed` events with
//! switchable faults.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Query, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The provider answers within this or the delivery failed (spec §6.1).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between delivery attempts (the provider's schedule is unverified; tests want speed).
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Page size of `GET /workflow_runs` (assumption: the provider documents `page`, not its size).
pub const RUNS_PER_PAGE: usize = 20;
/// The token `WebhookFault::OtherToken` signs with.
const OTHER_WEBHOOK_TOKEN: &str = "other_webhook_token_fedcba9876543210";
/// The status `WebhookFault::UnknownFieldsAndStatus` announces.
const UNKNOWN_STATUS: &str = "paused";
/// Characters applicant names may not contain (spec §3.1).
const FORBIDDEN_NAME_CHARS: &[char] = &['!', '#', '$', '%', '*', '=', '<', '>', ';', '{', '}', '"'];
const TERMINAL_STATUSES: [&str; 5] = ["approved", "declined", "review", "abandoned", "error"];
const OPEN_STATUSES: [&str; 3] = ["awaiting_input", "processing", "awaiting_client_input"];
const VALIDATION_MESSAGE: &str = "There was a validation error on this request";
const MAX_BODY: usize = 1 << 20;
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// How the double behaves; `Default` suits most tests.
#[derive(Debug, Clone)]
pub struct OnfidoDoubleConfig {
    /// Required as `Authorization: Token token=<api_token>`, else 401.
    pub api_token: String,
    /// Signs deliveries: `X-SHA2-Signature` = lower-case hex HMAC-SHA256(token, bytes sent).
    pub webhook_token: String,
    /// Where deliveries go; settable later with [`OnfidoDouble::set_webhook_url`].
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

/// How many of the latest API requests [`OnfidoDouble::requests`] keeps.
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

/// Lower-case hex HMAC-SHA256 of `body` keyed with `token`: the `X-SHA2-Signature`.
pub fn sign(token: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The running double; stops accepting connections when dropped.
pub struct OnfidoDouble {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OnfidoDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OnfidoDouble {
    pub async fn start(config: OnfidoDoubleConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            root: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .no_proxy()
                .build()
                .expect("webhook HTTP client"),
            state: Mutex::new(DoubleState::new(config)),
        });
        let app = axum::Router::new()
            .fallback(dispatch)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<ConnHandle>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(KillableListener { inner: listener }, app).await;
        });
        Self { shared, server }
    }

    /// `http://127.0.0.1:<port>/v3.6`, what `BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL` is set to.
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    /// `http://127.0.0.1:<port>/__control`; `POST {control_url}/workflow_runs/{id}/complete {"status": …}`.
    pub fn control_url(&self) -> String {
        format!("{}/__control", self.shared.root)
    }

    pub fn set_webhook_url(&self, url: impl Into<String>) {
        self.shared.state().config.webhook_url = Some(url.into());
    }

    /// Moves an open run via `processing` to `status` (approved|declined|review|abandoned|error),
    /// fills `output`/`reasons`/`error`, and delivers `workflow_run.completed` to the webhook URL
    /// under the webhook fault in force. One outcome per attempt (none without a URL).
    ///
    /// Panics on an unknown run, a run already finished, or another status.
    pub async fn complete_run(&self, run_id: &str, status: &str) -> Vec<DeliveryOutcome> {
        let plan = self
            .shared
            .complete(run_id, status)
            .unwrap_or_else(|(code, message)| {
                panic!("complete_run({run_id}, {status}): {code} {message}")
            })
            .1;
        self.shared.deliver(plan).await
    }

    /// Delivers `body` once with the given `X-SHA2-Signature` (None: no header). Panics without a webhook URL.
    pub async fn deliver_raw(&self, body: &[u8], signature: Option<&str>) -> DeliveryOutcome {
        let url = self
            .shared
            .state()
            .config
            .webhook_url
            .clone()
            .expect("deliver_raw needs a webhook URL");
        deliver_once(&self.shared.http, &url, body, signature).await
    }

    /// The next `times` calls to `route` misbehave (replacing any fault set before).
    pub fn set_route_fault(&self, route: Route, fault: Fault, times: usize) {
        let mut state = self.shared.state();
        if times == 0 {
            state.route_faults.remove(&route);
        } else {
            state.route_faults.insert(route, (fault, times));
        }
    }

    /// Applies to every delivery from now until set back to `WebhookFault::None`.
    pub fn set_webhook_fault(&self, fault: WebhookFault) {
        self.shared.state().webhook_fault = fault;
    }

    /// After each later completion, `GET /workflow_runs/{id}` answers the run as it was before
    /// for this many reads.
    pub fn set_read_lag(&self, reads: usize) {
        self.shared.state().read_lag = reads;
    }

    /// The API requests received, in order (control-plane calls excluded):
    /// the last [`RECORDED_REQUESTS`] of them, so that a long load run does
    /// not grow the double without bound.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.iter().cloned().collect()
    }

    /// Deletes the applicant at once, as the provider's retention or another
    /// integration might; later reads answer 404.
    pub fn delete_applicant(&self, applicant_id: &str) {
        if let Some(applicant) = self.shared.state().applicants.get_mut(applicant_id) {
            applicant.deleted = true;
        }
    }

    /// Schedules the applicant's deletion: reads show `delete_at`, and runs
    /// can no longer be created for it.
    pub fn schedule_applicant_deletion(&self, applicant_id: &str) {
        if let Some(applicant) = self.shared.state().applicants.get_mut(applicant_id) {
            applicant.json["delete_at"] = json!(ts(now() + time::Duration::days(7)));
        }
    }

    /// The ids of every applicant created so far (deleted ones included), in no order.
    pub fn applicant_ids(&self) -> Vec<String> {
        self.shared.state().applicants.keys().cloned().collect()
    }

    pub fn applicants_created(&self) -> usize {
        self.shared.state().applicants_created
    }

    pub fn runs_created(&self) -> usize {
        self.shared.state().runs_created
    }

    /// The ids of every run created so far, in no order.
    pub fn run_ids(&self) -> Vec<String> {
        self.shared.state().runs.keys().cloned().collect()
    }

    /// The run as it now is (no read lag), as `GET /workflow_runs/{id}` would show it.
    pub fn run(&self, run_id: &str) -> Option<serde_json::Value> {
        self.shared.state().runs.get(run_id).map(Run::to_json)
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RunError {
    kind: String,
    message: String,
}

impl Serialize for RunError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("RunError", 2)?;
        s.serialize_field("type", &self.kind)?;
        s.serialize_field("message", &self.message)?;
        s.end()
    }
}

#[derive(Debug, Clone)]
struct Task {
    id: String,
    task_def_id: String,
    task_def_version: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    input: Value,
    output: Value,
}

#[derive(Debug, Clone)]
struct Run {
    id: String,
    workflow_id: String,
    workflow_version_id: i64,
    applicant_id: String,
    status: String,
    output: Value,
    reasons: Value,
    error: Option<RunError>,
    sdk_token: Option<String>,
    customer_user_id: Option<String>,
    tags: Vec<String>,
    link: Value,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    seq: u64,
    tasks: Vec<Task>,
    /// What `GET` still shows after a completion, and for how many more reads.
    lag: Option<(Value, usize)>,
}

impl Run {
    fn dashboard_url(&self) -> String {
        format!("https://dashboard.onfido.com/results/{}", self.id)
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "workflow_id": self.workflow_id,
            "workflow_version_id": self.workflow_version_id,
            "applicant_id": self.applicant_id,
            "status": self.status,
            "dashboard_url": self.dashboard_url(),
            "output": self.output,
            "reasons": self.reasons,
            "error": self.error,
            "sdk_token": self.sdk_token,
            "customer_user_id": self.customer_user_id,
            "tags": self.tags,
            "link": self.link,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
        })
    }
}

impl Task {
    fn list_json(&self, run_id: &str) -> Value {
        json!({
            "id": self.id,
            "workflow_run_id": run_id,
            "task_def_id": self.task_def_id,
            "task_def_version": self.task_def_version,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
        })
    }

    fn full_json(&self, run_id: &str) -> Value {
        let mut value = self.list_json(run_id);
        value["input"] = self.input.clone();
        value["output"] = self.output.clone();
        value
    }
}

#[derive(Debug, Clone)]
struct Applicant {
    json: Value,
    deleted: bool,
}

#[derive(Debug, Clone)]
struct BiometricToken {
    uuid: String,
    user_id: String,
    inserted_at: String,
    status: String,
    visible_at: Instant,
    deleted: bool,
}

impl BiometricToken {
    fn visible(&self, now: Instant) -> bool {
        !self.deleted && now >= self.visible_at
    }

    fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "data": {"inserted_at": self.inserted_at, "media_type": "motion", "status": self.status},
        })
    }
}

struct DoubleState {
    config: OnfidoDoubleConfig,
    applicants: HashMap<String, Applicant>,
    runs: HashMap<String, Run>,
    next_seq: u64,
    tokens: Vec<BiometricToken>,
    requests: VecDeque<RecordedRequest>,
    route_faults: HashMap<Route, (Fault, usize)>,
    webhook_fault: WebhookFault,
    read_lag: usize,
    window: VecDeque<Instant>,
    applicants_created: usize,
    runs_created: usize,
}

impl DoubleState {
    fn new(config: OnfidoDoubleConfig) -> Self {
        Self {
            config,
            applicants: HashMap::new(),
            runs: HashMap::new(),
            next_seq: 0,
            tokens: Vec::new(),
            requests: VecDeque::new(),
            route_faults: HashMap::new(),
            webhook_fault: WebhookFault::None,
            read_lag: 0,
            window: VecDeque::new(),
            applicants_created: 0,
            runs_created: 0,
        }
    }

    /// Counts the request in the rolling minute, or says how long until it would fit.
    fn admit(&mut self, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.config.rate_limit_per_minute else {
            return Ok(());
        };
        let minute = Duration::from_secs(60);
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            self.window.pop_front();
        }
        if self.window.len() >= limit as usize {
            let oldest = self.window.front().copied().unwrap_or(now);
            let wait = minute.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.window.push_back(now);
        Ok(())
    }

    fn take_fault(&mut self, route: Route) -> Option<Fault> {
        let (fault, remaining) = self.route_faults.get_mut(&route)?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            self.route_faults.remove(&route);
        }
        Some(fault)
    }

    fn live_applicant(&self, id: &str) -> Option<&Applicant> {
        self.applicants.get(id).filter(|a| !a.deleted)
    }

    /// An applicant runs can be created for: not deleted, no deletion
    /// scheduled (assumption 2).
    fn usable_applicant(&self, id: &str) -> Option<&Applicant> {
        self.live_applicant(id)
            .filter(|a| a.json["delete_at"].is_null())
    }

    /// An approved run enrolls the user when they hold no token; later approvals authenticate.
    fn enroll(&mut self, run: &Run, now: OffsetDateTime) {
        let Some(user) = &run.customer_user_id else {
            return;
        };
        if self.tokens.iter().any(|t| &t.user_id == user && !t.deleted) {
            return;
        }
        self.tokens.push(BiometricToken {
            uuid: new_id(),
            user_id: user.clone(),
            inserted_at: ts(now),
            status: "approved".into(),
            visible_at: Instant::now() + self.config.biometric_token_delay,
            deleted: false,
        });
    }
}

/// What to send after a completion; built under the lock, sent without it.
struct DeliveryPlan {
    url: Option<String>,
    retries: u32,
    deliveries: Vec<(Vec<u8>, Option<String>)>,
}

struct Shared {
    /// `http://127.0.0.1:<port>`
    root: String,
    http: reqwest::Client,
    state: Mutex<DoubleState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, DoubleState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn base_url(&self) -> String {
        format!("{}/v3.6", self.root)
    }

    fn complete(
        &self,
        run_id: &str,
        status: &str,
    ) -> Result<(Value, DeliveryPlan), (StatusCode, String)> {
        if !TERMINAL_STATUSES.contains(&status) {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("status must be one of {}", TERMINAL_STATUSES.join(", ")),
            ));
        }
        let now = now();
        let mut state = self.state();
        let lag = state.read_lag;
        let run = state
            .runs
            .get_mut(run_id)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no run {run_id}")))?;
        if !OPEN_STATUSES.contains(&run.status.as_str()) {
            return Err((
                StatusCode::CONFLICT,
                format!("run {run_id} is already {}", run.status),
            ));
        }
        let before = run.to_json();
        // Via `processing`: the capture is being analysed…
        run.status = "processing".into();
        run.updated_at = now;
        // …then the outcome.
        finish(run, status, now);
        let task_id = format!("face_motion_{}", &new_id()[..5]);
        run.tasks.push(Task {
            id: task_id,
            task_def_id: "face_motion".into(),
            task_def_version: None,
            created_at: run.created_at,
            updated_at: now,
            input: json!({}),
            output: run.output.clone(),
        });
        run.lag = (lag > 0).then_some((before, lag));
        let run = run.clone();
        if status == "approved" {
            state.enroll(&run, now);
        }
        let plan = self.plan(&state, &run, now);
        Ok((run.to_json(), plan))
    }

    /// The deliveries of a run's completion under the webhook fault in force.
    fn plan(&self, state: &DoubleState, run: &Run, now: OffsetDateTime) -> DeliveryPlan {
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

    async fn deliver(&self, plan: DeliveryPlan) -> Vec<DeliveryOutcome> {
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
}

/// Fills a run's outcome (it was `processing`).
fn finish(run: &mut Run, status: &str, now: OffsetDateTime) {
    run.status = status.into();
    run.updated_at = now;
    run.error = None;
    match status {
        "approved" => {
            run.output = json!({"face_match": "clear"});
            run.reasons = json!([]);
        }
        "declined" => {
            run.output = json!({"face_match": "consider"});
            run.reasons = json!(["face_comparison_failed"]);
        }
        "review" => {
            run.output = json!({"face_match": "consider"});
            run.reasons = json!(["manual_review_required"]);
        }
        "abandoned" => {
            run.output = Value::Null;
            run.reasons = json!([]);
        }
        _ => {
            run.output = Value::Null;
            run.reasons = json!([]);
            run.error = Some(RunError {
                kind: "workflow_error".into(),
                message: "The workflow run could not be completed.".into(),
            });
        }
    }
}

async fn deliver_once(
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

// ---------------------------------------------------------------------------
// Webhook bodies (field order as the provider sends them, spec §6.3)
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Event<O, R> {
    payload: EventPayload<O, R>,
}

#[derive(Serialize)]
struct EventPayload<O, R> {
    resource_type: &'static str,
    action: &'static str,
    object: O,
    resource: R,
}

#[derive(Serialize)]
struct RunObject<'a> {
    id: &'a str,
    status: &'a str,
    completed_at_iso8601: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    href: Option<String>,
}

#[derive(Serialize)]
struct RunResource<'a> {
    id: &'a str,
    applicant_id: &'a str,
    workflow_id: &'a str,
    workflow_version_id: i64,
    status: &'a str,
    customer_user_id: Option<&'a str>,
    dashboard_url: String,
    output: &'a Value,
    reasons: &'a Value,
    tags: &'a [String],
    error: Option<&'a RunError>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
struct TaskObject<'a> {
    id: &'a str,
    task_spec_id: &'a str,
    task_def_id: &'a str,
    workflow_run_id: &'a str,
    status: &'a str,
    started_at_iso8601: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at_iso8601: Option<&'a str>,
    href: &'a str,
}

#[derive(Serialize)]
struct TaskResource<'a> {
    created_at: String,
    id: &'a str,
    workflow_run_id: &'a str,
    updated_at: String,
    input: &'a Value,
    task_def_version: Option<&'a str>,
    task_def_id: &'a str,
    output: &'a Value,
}

/// `workflow_run.completed` as one line of compact JSON.
fn run_completed_body(run: &Run, completed_at: &str, href: Option<String>) -> Vec<u8> {
    let event = Event {
        payload: EventPayload {
            resource_type: "workflow_run",
            action: "workflow_run.completed",
            object: RunObject {
                id: &run.id,
                status: &run.status,
                completed_at_iso8601: completed_at,
                href,
            },
            resource: RunResource {
                id: &run.id,
                applicant_id: &run.applicant_id,
                workflow_id: &run.workflow_id,
                workflow_version_id: run.workflow_version_id,
                status: &run.status,
                customer_user_id: run.customer_user_id.as_deref(),
                dashboard_url: run.dashboard_url(),
                output: &run.output,
                reasons: &run.reasons,
                tags: &run.tags,
                error: run.error.as_ref(),
                created_at: ts(run.created_at),
                updated_at: ts(run.updated_at),
            },
        },
    };
    serde_json::to_vec(&event).unwrap_or_default()
}

/// A `workflow_task.*` event as one line of compact JSON.
fn task_event_body(
    action: &'static str,
    status: &str,
    task: &Task,
    run_id: &str,
    completed_at: Option<&str>,
    href: &str,
) -> Vec<u8> {
    let event = Event {
        payload: EventPayload {
            resource_type: "workflow_task",
            action,
            object: TaskObject {
                id: &task.id,
                task_spec_id: &task.id,
                task_def_id: &task.task_def_id,
                workflow_run_id: run_id,
                status,
                started_at_iso8601: ts(task.created_at),
                completed_at_iso8601: completed_at,
                href,
            },
            resource: TaskResource {
                created_at: ts(task.created_at),
                id: &task.id,
                workflow_run_id: run_id,
                updated_at: ts(task.updated_at),
                input: &task.input,
                task_def_version: task.task_def_version.as_deref(),
                task_def_id: &task.task_def_id,
                output: &task.output,
            },
        },
    };
    serde_json::to_vec(&event).unwrap_or_default()
}

/// The same JSON with other whitespace (indented, ` : `) and keys in reverse order.
fn write_reformatted(value: &Value, depth: usize, out: &mut String) {
    let pad = |out: &mut String, depth: usize| out.push_str(&"   ".repeat(depth));
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            let entries: Vec<_> = map.iter().rev().collect();
            for (i, (key, item)) in entries.iter().enumerate() {
                pad(out, depth + 1);
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push_str(" : ");
                write_reformatted(item, depth + 1, out);
                if i + 1 < entries.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, depth + 1);
                write_reformatted(item, depth + 1, out);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, depth);
            out.push(']');
        }
        Value::Object(_) => out.push_str("{ }"),
        Value::Array(_) => out.push_str("[ ]"),
        other => out.push_str(&other.to_string()),
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// A listener whose connections a handler can cut (`Fault::DropConnection`).
struct KillableListener {
    inner: TcpListener,
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        KillableStream {
                            inner: stream,
                            killed: Arc::new(AtomicBool::new(false)),
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Once killed, every read and write fails, so the server drops the
/// connection without writing a byte of its answer.
struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by fault",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The handle a handler uses to cut its own connection.
#[derive(Clone)]
struct ConnHandle(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, KillableListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        Self(stream.io().killed.clone())
    }
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// The §8 envelope: `{"error": {"type", "message", "fields"}}`.
fn error_response(status: StatusCode, kind: &str, message: &str, fields: Value) -> Response {
    json_response(
        status,
        json!({"error": {"type": kind, "message": message, "fields": fields}}),
    )
}

fn validation_error(fields: Map<String, Value>) -> Response {
    error_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
        VALIDATION_MESSAGE,
        Value::Object(fields),
    )
}

fn not_found(message: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        message,
        json!({}),
    )
}

/// Biometric tokens' exact 404 (spec §5.1): no `fields`.
fn token_not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {"type": "resource_not_found", "message": "Not found"}}),
    )
}

/// The 429 answer. Assumption (spec §9: body and headers unverified): the §8
/// envelope with `type: "rate_limit"`, and `Retry-After` in seconds when known.
fn rate_limited(retry_after: Option<u64>) -> Response {
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit",
        "Rate limit exceeded, please try again later",
        json!({}),
    );
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Assumption (spec §10): the 401 envelope's type.
fn unauthorized() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "authorization_error",
        "Please provide a valid API token",
        json!({}),
    )
}

fn field_error(fields: &mut Map<String, Value>, field: &str, message: impl Into<String>) {
    let entry = fields
        .entry(field.to_owned())
        .or_insert_with(|| json!({"messages": []}));
    if let Some(messages) = entry["messages"].as_array_mut() {
        messages.push(Value::String(message.into()));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Ping,
    ListApplicants,
    CreateApplicant,
    ReadApplicant(String),
    DeleteApplicant(String),
    CreateRun,
    ListRuns,
    ReadRun(String),
    ListTasks(String),
    ReadTask(String, String),
    CompleteTask(String, String),
    SdkToken,
    ListTokens(String),
    DeleteTokens(String),
    ReadToken(String, String),
    PutToken(String, String),
    DeleteToken(String, String),
}

impl Endpoint {
    fn route(&self) -> Option<Route> {
        match self {
            Self::CreateApplicant => Some(Route::CreateApplicant),
            Self::DeleteApplicant(_) => Some(Route::DeleteApplicant),
            Self::CreateRun => Some(Route::CreateRun),
            Self::ReadRun(_) => Some(Route::ReadRun),
            Self::ListRuns => Some(Route::ListRuns),
            Self::ListTokens(_)
            | Self::DeleteTokens(_)
            | Self::ReadToken(..)
            | Self::PutToken(..)
            | Self::DeleteToken(..) => Some(Route::BiometricTokens),
            _ => None,
        }
    }
}

enum Unresolved {
    NotFound,
    MethodNotAllowed(&'static str),
}

/// Maps a request under `/v3.6` to its endpoint.
fn resolve(method: &Method, segments: &[String]) -> Result<Endpoint, Unresolved> {
    use Unresolved::{MethodNotAllowed, NotFound};
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = method.as_str();
    let owned = |v: &str| v.to_owned();
    match s.as_slice() {
        ["ping"] => match m {
            "GET" => Ok(Endpoint::Ping),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["applicants"] => match m {
            "GET" => Ok(Endpoint::ListApplicants),
            "POST" => Ok(Endpoint::CreateApplicant),
            _ => Err(MethodNotAllowed("GET, POST")),
        },
        ["applicants", id] => match m {
            "GET" => Ok(Endpoint::ReadApplicant(owned(id))),
            "DELETE" => Ok(Endpoint::DeleteApplicant(owned(id))),
            _ => Err(MethodNotAllowed("GET, DELETE")),
        },
        ["workflow_runs"] => match m {
            "GET" => Ok(Endpoint::ListRuns),
            "POST" => Ok(Endpoint::CreateRun),
            _ => Err(MethodNotAllowed("GET, POST")),
        },
        ["workflow_runs", id] => match m {
            "GET" => Ok(Endpoint::ReadRun(owned(id))),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["workflow_runs", id, "tasks"] => match m {
            "GET" => Ok(Endpoint::ListTasks(owned(id))),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["workflow_runs", id, "tasks", task] => match m {
            "GET" => Ok(Endpoint::ReadTask(owned(id), owned(task))),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["workflow_runs", id, "tasks", task, "complete"] => match m {
            "POST" => Ok(Endpoint::CompleteTask(owned(id), owned(task))),
            _ => Err(MethodNotAllowed("POST")),
        },
        ["sdk_token"] => match m {
            "POST" => Ok(Endpoint::SdkToken),
            _ => Err(MethodNotAllowed("POST")),
        },
        ["biometric_tokens", user] => match m {
            "GET" => Ok(Endpoint::ListTokens(owned(user))),
            "DELETE" => Ok(Endpoint::DeleteTokens(owned(user))),
            _ => Err(MethodNotAllowed("GET, DELETE")),
        },
        ["biometric_tokens", user, uuid] => match m {
            "GET" => Ok(Endpoint::ReadToken(owned(user), owned(uuid))),
            "PUT" => Ok(Endpoint::PutToken(owned(user), owned(uuid))),
            "DELETE" => Ok(Endpoint::DeleteToken(owned(user), owned(uuid))),
            _ => Err(MethodNotAllowed("GET, PUT, DELETE")),
        },
        _ => Err(NotFound),
    }
}

/// Every request arrives here: control plane, or the API.
async fn dispatch(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    if let Some(rest) = path.strip_prefix("/__control/") {
        return control(&shared, &parts.method, rest, &bytes).await;
    }
    let (response, plan, fault) = api(
        &shared,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &path,
        &bytes,
    );
    if let Some(plan) = plan {
        let background = shared.clone();
        tokio::spawn(async move {
            background.deliver(plan).await;
        });
    }
    match fault {
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            response
        }
        Some(Fault::DropConnection) => {
            conn.0.store(true, Ordering::SeqCst);
            response
        }
        _ => response,
    }
}

/// The API, synchronously under the lock. Returns the answer, deliveries to
/// send in the background, and the fault still to apply (delay or drop).
fn api(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    path: &str,
    bytes: &[u8],
) -> (Response, Option<DeliveryPlan>, Option<Fault>) {
    let mut state = shared.state();
    let expected = format!("Token token={}", state.config.api_token);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    let body = if bytes.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|_| ())
    };
    if state.requests.len() == RECORDED_REQUESTS {
        state.requests.pop_front();
    }
    state.requests.push_back(RecordedRequest {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        body: body
            .clone()
            .unwrap_or_else(|()| Value::String(String::from_utf8_lossy(bytes).into_owned())),
        authorized,
        headers: headers
            .iter()
            .map(|(name, value)| {
                let shown = if *name == header::AUTHORIZATION {
                    "<masked>".to_owned()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_owned(), shown)
            })
            .collect(),
    });
    if let Err(wait) = state.admit(Instant::now()) {
        return (rate_limited(Some(wait)), None, None);
    }
    let Some(rest) = path
        .strip_prefix("/v3.6")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return (not_found("Not found"), None, None);
    };
    if !authorized {
        return (unauthorized(), None, None);
    }
    let trimmed = rest.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<String> = trimmed.split('/').map(percent_decode).collect();
    if segments.iter().any(String::is_empty) {
        return (not_found("Not found"), None, None);
    }
    let endpoint = match resolve(method, &segments) {
        Ok(endpoint) => endpoint,
        Err(Unresolved::NotFound) => return (not_found("Not found"), None, None),
        Err(Unresolved::MethodNotAllowed(allow)) => {
            // Assumption: the envelope's type for a wrong method.
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                json!({}),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return (response, None, None);
        }
    };
    let fault = endpoint.route().and_then(|route| state.take_fault(route));
    match &fault {
        Some(Fault::ServerError) => {
            let response = error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "Something went wrong",
                json!({}),
            );
            return (response, None, None);
        }
        Some(Fault::NonJsonBadGateway) => {
            let response = (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response();
            return (response, None, None);
        }
        Some(Fault::RateLimited { retry_after }) => {
            return (rate_limited(retry_after.map(u64::from)), None, None);
        }
        _ => {}
    }
    let Ok(body) = body else {
        // Assumption: how a body that is not JSON is refused.
        let response = error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid JSON in request body",
            json!({}),
        );
        return (response, None, fault);
    };
    let (response, plan) = handle(shared, &mut state, endpoint, uri, &body);
    if fault == Some(Fault::UnavailableAfterProcessing) {
        let response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The service is temporarily unavailable",
            json!({}),
        );
        return (response, plan, None);
    }
    (response, plan, fault)
}

fn handle(
    shared: &Shared,
    state: &mut DoubleState,
    endpoint: Endpoint,
    uri: &Uri,
    body: &Value,
) -> (Response, Option<DeliveryPlan>) {
    let plain = |response: Response| (response, None);
    match endpoint {
        Endpoint::Ping => {
            plain((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "OK").into_response())
        }
        Endpoint::ListApplicants => {
            let mut list: Vec<&Value> = state
                .applicants
                .values()
                .filter(|a| !a.deleted)
                .map(|a| &a.json)
                .collect();
            list.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
            plain(json_response(StatusCode::OK, json!({"applicants": list})))
        }
        Endpoint::CreateApplicant => plain(create_applicant(state, body)),
        Endpoint::ReadApplicant(id) => plain(match state.live_applicant(&id) {
            Some(applicant) => json_response(StatusCode::OK, applicant.json.clone()),
            None => applicant_not_found(&id),
        }),
        Endpoint::DeleteApplicant(id) => {
            plain(match state.applicants.get_mut(&id).filter(|a| !a.deleted) {
                Some(applicant) => {
                    applicant.deleted = true;
                    StatusCode::NO_CONTENT.into_response()
                }
                None => applicant_not_found(&id),
            })
        }
        Endpoint::CreateRun => create_run(shared, state, body),
        Endpoint::ListRuns => plain(list_runs(state, uri)),
        Endpoint::ReadRun(id) => plain(match state.runs.get_mut(&id) {
            Some(run) => {
                let lagged = match &mut run.lag {
                    Some((before, remaining)) if *remaining > 0 => {
                        *remaining -= 1;
                        Some(before.clone())
                    }
                    _ => None,
                };
                json_response(StatusCode::OK, lagged.unwrap_or_else(|| run.to_json()))
            }
            None => run_not_found(&id),
        }),
        Endpoint::ListTasks(id) => plain(match state.runs.get(&id) {
            Some(run) => json_response(
                StatusCode::OK,
                Value::Array(run.tasks.iter().map(|t| t.list_json(&run.id)).collect()),
            ),
            None => run_not_found(&id),
        }),
        Endpoint::ReadTask(id, task_id) => plain(match state.runs.get(&id) {
            Some(run) => match run.tasks.iter().find(|t| t.id == task_id) {
                Some(task) => json_response(StatusCode::OK, task.full_json(&run.id)),
                None => not_found(&format!(
                    "Could not find the following resource: Task with id={task_id}"
                )),
            },
            None => run_not_found(&id),
        }),
        Endpoint::CompleteTask(id, task_id) => plain(match state.runs.get(&id) {
            Some(run) if run.tasks.iter().any(|t| t.id == task_id) => {
                StatusCode::OK.into_response()
            }
            Some(_) => not_found(&format!(
                "Could not find the following resource: Task with id={task_id}"
            )),
            None => run_not_found(&id),
        }),
        Endpoint::SdkToken => plain(sdk_token(state, body)),
        Endpoint::ListTokens(user) => {
            let now = Instant::now();
            let list: Vec<Value> = state
                .tokens
                .iter()
                .filter(|t| t.user_id == user && t.visible(now))
                .map(BiometricToken::to_json)
                .collect();
            plain(json_response(
                StatusCode::OK,
                json!({"biometric_tokens": list}),
            ))
        }
        Endpoint::DeleteTokens(user) => {
            let now = Instant::now();
            let mut count = 0;
            for token in state
                .tokens
                .iter_mut()
                .filter(|t| t.user_id == user && t.visible(now))
            {
                token.deleted = true;
                count += 1;
            }
            plain(if count == 0 {
                token_not_found()
            } else {
                json_response(
                    StatusCode::OK,
                    json!({"biometric_tokens": {"deleted_items": {"count": count}}}),
                )
            })
        }
        Endpoint::ReadToken(user, uuid) => plain(match find_token(state, &user, &uuid) {
            Some(token) => {
                json_response(StatusCode::OK, json!({"biometric_token": token.to_json()}))
            }
            None => token_not_found(),
        }),
        Endpoint::PutToken(user, uuid) => {
            let status = body["status"].as_str().map(str::to_owned);
            plain(match find_token(state, &user, &uuid) {
                None => token_not_found(),
                Some(token) => match status.as_deref() {
                    Some(s @ ("approved" | "declined")) => {
                        token.status = s.to_owned();
                        json_response(StatusCode::OK, json!({"biometric_token": token.to_json()}))
                    }
                    _ => {
                        let mut fields = Map::new();
                        field_error(&mut fields, "status", "must be one of: approved, declined");
                        validation_error(fields)
                    }
                },
            })
        }
        Endpoint::DeleteToken(user, uuid) => plain(match find_token(state, &user, &uuid) {
            Some(token) => {
                token.deleted = true;
                json_response(
                    StatusCode::OK,
                    json!({"biometric_token": {"deleted_items": {"count": 1}}}),
                )
            }
            None => token_not_found(),
        }),
    }
}

fn find_token<'a>(
    state: &'a mut DoubleState,
    user: &str,
    uuid: &str,
) -> Option<&'a mut BiometricToken> {
    let now = Instant::now();
    state
        .tokens
        .iter_mut()
        .find(|t| t.user_id == user && t.uuid == uuid && t.visible(now))
}

fn applicant_not_found(id: &str) -> Response {
    not_found(&format!(
        "Could not find the following resource: Applicant with id={id}"
    ))
}

fn run_not_found(id: &str) -> Response {
    not_found(&format!(
        "Could not find the following resource: WorkflowRun with id={id}"
    ))
}

fn create_applicant(state: &mut DoubleState, body: &Value) -> Response {
    let mut fields = Map::new();
    let Some(object) = body.as_object() else {
        field_error(&mut fields, "first_name", "can't be blank");
        field_error(&mut fields, "last_name", "can't be blank");
        return validation_error(fields);
    };
    for name in ["first_name", "last_name"] {
        match object.get(name) {
            None | Some(Value::Null) => field_error(&mut fields, name, "can't be blank"),
            Some(Value::String(s)) if s.trim().is_empty() => {
                field_error(&mut fields, name, "can't be blank")
            }
            Some(Value::String(s)) if s.contains(FORBIDDEN_NAME_CHARS) => field_error(
                &mut fields,
                name,
                "must not contain any of the following characters: ! # $ % * = < > ; { } \"",
            ),
            Some(Value::String(_)) => {}
            Some(_) => field_error(&mut fields, name, "must be a string"),
        }
    }
    if let Some(email) = object.get("email").filter(|v| !v.is_null())
        && !email.as_str().is_some_and(|e| e.contains('@'))
    {
        field_error(&mut fields, "email", "invalid format");
    }
    if let Some(consents) = object.get("consents").filter(|v| !v.is_null()) {
        let names = [
            "privacy_notices_read",
            "ssn_verification",
            "phone_number_verification",
        ];
        let valid = consents.as_array().is_some_and(|list| {
            list.iter().all(|c| {
                c["name"].as_str().is_some_and(|n| names.contains(&n)) && c["granted"].is_boolean()
            })
        });
        if !valid {
            field_error(&mut fields, "consents", "invalid format");
        }
    }
    if !fields.is_empty() {
        return validation_error(fields);
    }
    let id = new_id();
    let field = |name: &str| object.get(name).cloned().unwrap_or(Value::Null);
    let applicant = json!({
        "id": id,
        "created_at": ts(now()),
        "delete_at": null,
        "href": format!("/v3.6/applicants/{id}"),
        "sandbox": state.config.api_token.starts_with("api_sandbox"),
        "first_name": field("first_name"),
        "last_name": field("last_name"),
        "email": field("email"),
        "dob": field("dob"),
        "id_numbers": object.get("id_numbers").cloned().unwrap_or(json!([])),
        "phone_number": field("phone_number"),
        "address": field("address"),
        "location": field("location"),
    });
    state.applicants.insert(
        id,
        Applicant {
            json: applicant.clone(),
            deleted: false,
        },
    );
    state.applicants_created += 1;
    json_response(StatusCode::CREATED, applicant)
}

fn create_run(
    shared: &Shared,
    state: &mut DoubleState,
    body: &Value,
) -> (Response, Option<DeliveryPlan>) {
    let mut fields = Map::new();
    let empty = Map::new();
    let object = body.as_object().unwrap_or(&empty);
    let uuid_field = |fields: &mut Map<String, Value>, name: &str| -> Option<String> {
        match object.get(name) {
            None | Some(Value::Null) => {
                field_error(fields, name, "can't be blank");
                None
            }
            Some(Value::String(s)) if is_uuid(s) => Some(s.to_ascii_lowercase()),
            Some(_) => {
                field_error(fields, name, "must be a valid UUID");
                None
            }
        }
    };
    let workflow_id = uuid_field(&mut fields, "workflow_id");
    let applicant_id = uuid_field(&mut fields, "applicant_id");
    if let Some(id) = &applicant_id
        && state.usable_applicant(id).is_none()
    {
        // Assumption 2: how a run for a deleted applicant is refused.
        field_error(&mut fields, "applicant_id", "Applicant not found");
    }
    let customer_user_id = match object.get("customer_user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 256 => Some(s.clone()),
        Some(Value::String(_)) => {
            field_error(
                &mut fields,
                "customer_user_id",
                "is too long (maximum is 256 characters)",
            );
            None
        }
        Some(_) => {
            field_error(&mut fields, "customer_user_id", "must be a string");
            None
        }
    };
    let mut tags = Vec::new();
    match object.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            if list.len() > 30 {
                field_error(&mut fields, "tags", "must have at most 30 items");
            }
            for tag in list {
                match tag.as_str() {
                    Some(t) if (1..=128).contains(&t.chars().count()) => tags.push(t.to_owned()),
                    Some(_) => field_error(
                        &mut fields,
                        "tags",
                        "each tag must have 1 to 128 characters",
                    ),
                    None => field_error(&mut fields, "tags", "each tag must be a string"),
                }
            }
        }
        Some(_) => field_error(&mut fields, "tags", "must be an array"),
    }
    for name in ["custom_data", "link"] {
        if object
            .get(name)
            .is_some_and(|v| !v.is_null() && !v.is_object())
        {
            field_error(&mut fields, name, "must be an object");
        }
    }
    let (Some(workflow_id), Some(applicant_id)) = (workflow_id, applicant_id) else {
        return (validation_error(fields), None);
    };
    if !fields.is_empty() {
        return (validation_error(fields), None);
    }
    let now = now();
    let id = new_id();
    let mut link = json!({
        "url": format!("https://eu.onfido.app/l/{id}"),
        "completed_redirect_url": null,
        "expired_redirect_url": null,
        "expires_at": null,
        "language": null,
    });
    if let (Some(given), Some(target)) = (
        object.get("link").and_then(Value::as_object),
        link.as_object_mut(),
    ) {
        for (key, value) in given {
            target.insert(key.clone(), value.clone());
        }
    }
    let non_interactive = state
        .config
        .non_interactive_workflow_id
        .as_deref()
        .is_some_and(|w| w.eq_ignore_ascii_case(&workflow_id));
    let seq = state.next_seq;
    state.next_seq += 1;
    let mut run = Run {
        // Documented: every created run carries its SDK token, even one
        // approved at creation (the official clients' tests expect it).
        sdk_token: Some(sdk_token_for(&id, now)),
        id: id.clone(),
        workflow_id,
        workflow_version_id: 1,
        applicant_id,
        status: "awaiting_input".into(),
        output: Value::Null,
        reasons: Value::Null,
        error: None,
        customer_user_id,
        tags,
        link,
        created_at: now,
        updated_at: now,
        seq,
        tasks: Vec::new(),
        lag: None,
    };
    let mut plan = None;
    if non_interactive {
        finish(&mut run, "approved", now);
        state.enroll(&run, now);
        plan = Some(shared.plan(state, &run, now));
    }
    let response = json_response(StatusCode::CREATED, run.to_json());
    state.runs.insert(id, run);
    state.runs_created += 1;
    (response, plan)
}

fn list_runs(state: &DoubleState, uri: &Uri) -> Response {
    let Ok(Query(params)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid query string",
            json!({}),
        );
    };
    let mut fields = Map::new();
    let mut statuses: Option<Vec<String>> = None;
    let mut tags: Vec<String> = Vec::new();
    let mut applicant_id = None;
    let mut created_gt = None;
    let mut created_lt = None;
    let mut ascending = false;
    let mut page = 1usize;
    let split = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for (key, value) in &params {
        match key.as_str() {
            "status" => statuses.get_or_insert_with(Vec::new).extend(split(value)),
            "tags" | "tags[]" => tags.extend(split(value)),
            "applicant_id" => applicant_id = Some(value.clone()),
            "created_at_gt" | "created_at_lt" => match parse_bound(value) {
                Some(bound) if key == "created_at_gt" => created_gt = Some(bound),
                Some(bound) => created_lt = Some(bound),
                None => field_error(&mut fields, key, "must be an ISO-8601 date"),
            },
            "sort" => match value.as_str() {
                "asc" => ascending = true,
                "desc" => ascending = false,
                _ => field_error(&mut fields, "sort", "must be one of: asc, desc"),
            },
            "page" => match value.parse::<usize>() {
                Ok(p) if p >= 1 => page = p,
                _ => field_error(&mut fields, "page", "must be an integer from 1"),
            },
            _ => {}
        }
    }
    if !fields.is_empty() {
        return validation_error(fields);
    }
    let mut runs: Vec<&Run> = state
        .runs
        .values()
        .filter(|r| applicant_id.as_ref().is_none_or(|a| &r.applicant_id == a))
        .filter(|r| statuses.as_ref().is_none_or(|s| s.contains(&r.status)))
        .filter(|r| state.config.loose_tags_filter || tags.iter().all(|t| r.tags.contains(t)))
        .filter(|r| {
            created_gt
                .as_ref()
                .is_none_or(|b: &Bound| b.before(r.created_at))
        })
        .filter(|r| {
            created_lt
                .as_ref()
                .is_none_or(|b: &Bound| b.after(r.created_at))
        })
        .collect();
    if state.config.loose_tags_filter {
        // Most recently completed first, then the open runs (assumption 3).
        runs.sort_by_key(|r| {
            let done = TERMINAL_STATUSES.contains(&r.status.as_str());
            (
                !done,
                std::cmp::Reverse(r.updated_at),
                std::cmp::Reverse(r.seq),
            )
        });
        if ascending {
            runs.reverse();
        }
    } else {
        runs.sort_by_key(|r| (r.created_at, r.seq));
    }
    if !ascending && !state.config.loose_tags_filter {
        runs.reverse();
    }
    let total = runs.len();
    let items: Vec<Value> = runs
        .into_iter()
        .skip((page - 1) * RUNS_PER_PAGE)
        .take(RUNS_PER_PAGE)
        .map(Run::to_json)
        .collect();
    let mut response = json_response(StatusCode::OK, Value::Array(items));
    // Assumption 9.
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total as u64));
    response
}

/// A `created_at_gt/lt` value: a calendar date, or an instant.
enum Bound {
    Date(time::Date),
    Instant(OffsetDateTime),
}

impl Bound {
    /// The bound lies before `t` (for `_gt`).
    fn before(&self, t: OffsetDateTime) -> bool {
        match self {
            Self::Date(d) => t.date() > *d,
            Self::Instant(i) => t > *i,
        }
    }

    /// The bound lies after `t` (for `_lt`).
    fn after(&self, t: OffsetDateTime) -> bool {
        match self {
            Self::Date(d) => t.date() < *d,
            Self::Instant(i) => t < *i,
        }
    }
}

fn parse_bound(value: &str) -> Option<Bound> {
    if let Ok(date) = time::Date::parse(value, format_description!("[year]-[month]-[day]")) {
        return Some(Bound::Date(date));
    }
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(Bound::Instant)
}

fn sdk_token(state: &DoubleState, body: &Value) -> Response {
    let mut fields = Map::new();
    match body["applicant_id"].as_str() {
        None => field_error(&mut fields, "applicant_id", "can't be blank"),
        Some(id) if state.live_applicant(id).is_none() => {
            field_error(&mut fields, "applicant_id", "Applicant not found")
        }
        Some(_) => {}
    }
    if !fields.is_empty() {
        return validation_error(fields);
    }
    let applicant = body["applicant_id"].as_str().unwrap_or_default();
    json_response(
        StatusCode::OK,
        json!({"token": jwt_shaped(json!({
            "exp": (now() + time::Duration::minutes(90)).unix_timestamp(),
            "payload": {"app": new_id(), "applicant_id": applicant, "is_sandbox": true},
            "uuid": new_id(),
        }))}),
    )
}

/// A run's SDK token: JWT-shaped, valid five weeks.
pub fn sdk_token_for(run_id: &str, now: OffsetDateTime) -> String {
    jwt_shaped(json!({
        "exp": (now + time::Duration::weeks(5)).unix_timestamp(),
        "payload": {"app": new_id(), "workflow_run_id": run_id, "is_sandbox": true},
        "uuid": new_id(),
    }))
}

/// `header.payload.signature` in base64url; the signature is random.
fn jwt_shaped(claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES512","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature: Vec<u8> = (0..4)
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect();
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `POST /__control/workflow_runs/{id}/complete {"status": "…"}`: answers
/// once every delivery attempt is over, with their outcomes; with
/// `"deliver": "background"` it answers at once (no outcomes) and delivers
/// afterwards, as the provider answers its SDK before the webhook goes out.
async fn control(shared: &Arc<Shared>, method: &Method, rest: &str, bytes: &[u8]) -> Response {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let ["workflow_runs", run_id, "complete"] = segments.as_slice() else {
        return not_found("Not found");
    };
    if method != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            json!({}),
        );
    }
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let status = body["status"].as_str().unwrap_or_default();
    match shared.complete(run_id, status) {
        Ok((run, plan)) if body["deliver"] == "background" => {
            let background = shared.clone();
            tokio::spawn(async move {
                background.deliver(plan).await;
            });
            json_response(StatusCode::OK, json!({"run": run, "deliveries": []}))
        }
        Ok((run, plan)) => {
            let outcomes = shared.deliver(plan).await;
            let deliveries: Vec<Value> = outcomes
                .iter()
                .map(|o| match o {
                    DeliveryOutcome::Status(code) => json!(code),
                    DeliveryOutcome::NoAnswer => json!("no_answer"),
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({"run": run, "deliveries": deliveries}),
            )
        }
        Err((code, message)) => error_response(code, "control_error", &message, json!({})),
    }
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// The double is test support: it reads the system clock (the domain never does).
#[allow(clippy::disallowed_methods)]
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// UTC, seconds, `Z`: `2026-11-23T10:15:30Z`.
fn ts(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default()
}

/// A lower-case UUIDv4.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn percent_decode(segment: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::sync::atomic::AtomicU16;

    use axum::body::Bytes;
    use time::macros::datetime;

    use super::*;

    const TOKEN: &str = "api_sandbox.test-token";
    const WEBHOOK_TOKEN: &str = "test_webhook_token_0123456789abcdef";
    const WORKFLOW: &str = "0c6b0e4a-1111-4b5b-9a1e-000000000001";

    /// Spec §6.3: the illustrative `workflow_run.completed` body, 786 bytes.
    const ILLUSTRATIVE: &str = r#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed","object":{"id":"3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c","status":"approved","completed_at_iso8601":"2026-11-23T10:15:30Z","href":"https://api.eu.onfido.com/v3.6/workflow_runs/3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c"},"resource":{"id":"3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c","applicant_id":"9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d","workflow_id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","workflow_version_id":3,"status":"approved","customer_user_id":"cu_7Jd2kQx9Lm4pVt8R","dashboard_url":"https://dashboard.onfido.com/results/3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c","output":{"face_match":"clear"},"reasons":[],"tags":["flow:0b6f2c1e"],"error":null,"created_at":"2026-11-23T10:14:02Z","updated_at":"2026-11-23T10:15:30Z"}}}"#;
    const ILLUSTRATIVE_SIGNATURE: &str =
        "5f7bcd9a16b82bd26ae865aba254854e2cc3b3b69feb780d089e279bd5c16da1";

    /// Spec §6.4, from `onfido/onfido-python` `tests/test_studio_webhook_event_verification.py`.
    const STUDIO: &str = r#"{"payload":{"resource_type":"workflow_task","action":"workflow_task.started","object":{"id":"profile_1eb92","task_spec_id":"profile_1eb92","task_def_id":"profile_data","workflow_run_id":"bc77c6e5-753a-4580-96a6-aaed3e5a8d19","status":"started","started_at_iso8601":"2024-07-10T12:49:09Z","href":"https://api.eu.onfido.com/v3.6/workflow_runs/bc77c6e5-753a-4580-96a6-aaed3e5a8d19/tasks/profile_1eb92"},"resource":{"created_at":"2024-07-10T12:49:09Z","id":"profile_1eb92","workflow_run_id":"bc77c6e5-753a-4580-96a6-aaed3e5a8d19","updated_at":"2024-07-10T12:49:09Z","input":{},"task_def_version":null,"task_def_id":"profile_data","output":null}}}"#;

    fn flip_last(signature: &str) -> String {
        let mut flipped = signature.to_owned();
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'f' { 'e' } else { 'f' });
        flipped
    }

    #[test]
    fn sign_matches_the_published_vectors() {
        let vectors = [
            (
                "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh",
                r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"f2302f45-227d-413d-ad61-09ec077a086a","status":"complete","completed_at_iso8601":"2024-04-04T09:21:21Z","href":"https://api.onfido.com/v3.6/checks/f2302f45-227d-413d-ad61-09ec077a086a"}}}"#,
                "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7",
                266,
            ),
            (
                "_ABC123abc123ABC123abc123ABC123_",
                r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"check-123","status":"complete","completed_at_iso8601":"2020-01-01T00:00:00Z","href":"https://api.onfido.com/v3/checks/check-123"}}}"#,
                "a0082d7481f9f0a2907583dbe1f344d6d4c0d9989df2fd804f98479f60cd760e",
                210,
            ),
            (
                "YKOC6mkBxi6yK2zlUIrLMvsJMFEZObP5",
                STUDIO,
                "c95a5b785484f6fa1bc25f381b5595d66bf85cb442eefb06aa007802ee6a4dfa",
                STUDIO.len(),
            ),
            (WEBHOOK_TOKEN, ILLUSTRATIVE, ILLUSTRATIVE_SIGNATURE, 786),
        ];
        for (token, body, expected, len) in vectors {
            assert_eq!(body.len(), len, "vector body length");
            let signature = sign(token, body.as_bytes());
            assert_eq!(signature, expected);
            assert_ne!(
                signature,
                flip_last(expected),
                "a changed last digit must not match"
            );
            assert_ne!(flip_last(&signature), expected);
        }
    }

    fn illustrative_run() -> Run {
        Run {
            id: "3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c".into(),
            workflow_id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d".into(),
            workflow_version_id: 3,
            applicant_id: "9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d".into(),
            status: "approved".into(),
            output: json!({"face_match": "clear"}),
            reasons: json!([]),
            error: None,
            sdk_token: None,
            customer_user_id: Some("cu_7Jd2kQx9Lm4pVt8R".into()),
            tags: vec!["flow:0b6f2c1e".into()],
            link: Value::Null,
            created_at: datetime!(2026-11-23 10:14:02 UTC),
            updated_at: datetime!(2026-11-23 10:15:30 UTC),
            seq: 0,
            tasks: Vec::new(),
            lag: None,
        }
    }

    #[test]
    fn the_emitter_reproduces_the_illustrative_delivery_byte_for_byte() {
        let run = illustrative_run();
        let href = format!("https://api.eu.onfido.com/v3.6/workflow_runs/{}", run.id);
        let body = run_completed_body(&run, "2026-11-23T10:15:30Z", Some(href));
        assert_eq!(String::from_utf8(body.clone()).unwrap(), ILLUSTRATIVE);
        assert_eq!(sign(WEBHOOK_TOKEN, &body), ILLUSTRATIVE_SIGNATURE);
    }

    #[test]
    fn the_emitter_reproduces_the_studio_task_vector_byte_for_byte() {
        let at = datetime!(2024-07-10 12:49:09 UTC);
        let task = Task {
            id: "profile_1eb92".into(),
            task_def_id: "profile_data".into(),
            task_def_version: None,
            created_at: at,
            updated_at: at,
            input: json!({}),
            output: Value::Null,
        };
        let run_id = "bc77c6e5-753a-4580-96a6-aaed3e5a8d19";
        let href =
            format!("https://api.eu.onfido.com/v3.6/workflow_runs/{run_id}/tasks/profile_1eb92");
        let body = task_event_body(
            "workflow_task.started",
            "started",
            &task,
            run_id,
            None,
            &href,
        );
        assert_eq!(String::from_utf8(body).unwrap(), STUDIO);
    }

    // --- helpers over real HTTP -------------------------------------------

    /// `^[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*$`, by hand.
    fn sdk_token_shaped(token: &str) -> bool {
        let head = |c: char| c.is_ascii_alphanumeric() || "-_=".contains(c);
        let tail = |c: char| c.is_ascii_alphanumeric() || "-_.+/=".contains(c);
        let Some((first, rest)) = token.split_once('.') else {
            return false;
        };
        let second = rest.find(|c: char| !head(c)).unwrap_or(rest.len());
        if first.is_empty() || !first.chars().all(head) || second == 0 {
            return false;
        }
        let after = &rest[second..];
        after.strip_prefix('.').unwrap_or(after).chars().all(tail)
    }

    #[test]
    fn the_token_shape_check_is_the_sdk_regex() {
        assert!(sdk_token_shaped("abc.def"));
        assert!(sdk_token_shaped("a-b_c=.d.e+f/g=.h"));
        assert!(!sdk_token_shaped("abc"));
        assert!(!sdk_token_shaped("a..b"));
        assert!(!sdk_token_shaped(".a.b"));
        assert!(!sdk_token_shaped("a.b c"));
        assert!(!sdk_token_shaped("a+b.c"));
    }

    fn lower_uuid_v4(s: &str) -> bool {
        s.len() == 36
            && s == s.to_lowercase()
            && uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
    }

    fn utc_timestamp(value: &Value) -> bool {
        value
            .as_str()
            .is_some_and(|s| s.len() == 20 && time::PrimitiveDateTime::parse(s, TIMESTAMP).is_ok())
    }

    fn parse_ts(value: &Value) -> OffsetDateTime {
        time::PrimitiveDateTime::parse(value.as_str().unwrap(), TIMESTAMP)
            .unwrap()
            .assume_utc()
    }

    struct Answer {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: Value,
    }

    struct Api {
        double: OnfidoDouble,
        http: reqwest::Client,
    }

    impl Api {
        async fn start(config: OnfidoDoubleConfig) -> Self {
            Self {
                double: OnfidoDouble::start(config).await,
                http: reqwest::Client::builder().no_proxy().build().unwrap(),
            }
        }

        async fn call_with(
            &self,
            method: Method,
            path: &str,
            body: Option<Value>,
            auth: Option<&str>,
        ) -> Answer {
            let url = format!("{}{path}", self.double.base_url());
            let mut request = self.http.request(method, url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            let body = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            Answer {
                status,
                headers,
                body,
            }
        }

        async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
            self.call_with(method, path, body, Some(&format!("Token token={TOKEN}")))
                .await
        }

        async fn applicant(&self) -> String {
            let body = json!({
                "first_name": "Biometric", "last_name": "Passkey",
                "consents": [{"name": "privacy_notices_read", "granted": true}],
            });
            let answer = self.call(Method::POST, "/applicants", Some(body)).await;
            assert_eq!(answer.status, 201, "{}", answer.body);
            answer.body["id"].as_str().unwrap().to_owned()
        }

        async fn run(&self, applicant: &str, user: Option<&str>, tags: &[&str]) -> Value {
            let mut body =
                json!({"workflow_id": WORKFLOW, "applicant_id": applicant, "tags": tags});
            if let Some(user) = user {
                body["customer_user_id"] = json!(user);
            }
            let answer = self.call(Method::POST, "/workflow_runs", Some(body)).await;
            assert_eq!(answer.status, 201, "{}", answer.body);
            answer.body
        }
    }

    fn assert_envelope(answer: &Answer, status: u16, kind: &str) {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.body["error"]["type"], kind, "{}", answer.body);
        assert!(
            answer.body["error"]["message"].is_string(),
            "{}",
            answer.body
        );
    }

    // --- the API ----------------------------------------------------------

    #[tokio::test]
    async fn every_call_needs_exactly_the_configured_token() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        for auth in [
            None,
            Some("Token token=api_sandbox.wrong"),
            Some("Bearer api_sandbox.test-token"),
            Some("Token token=api_sandbox.test-tokenX"),
            Some("Token api_sandbox.test-token"),
            Some("token token=api_sandbox.test-token"),
        ] {
            let answer = api.call_with(Method::GET, "/ping", None, auth).await;
            assert_envelope(&answer, 401, "authorization_error");
            assert!(answer.body["error"]["fields"].is_object());
        }
        let answer = api.call(Method::GET, "/ping", None).await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(answer.body.is_string());

        let requests = api.double.requests();
        assert_eq!(requests.len(), 7);
        assert_eq!(requests.iter().filter(|r| r.authorized).count(), 1);
        assert!(
            requests
                .iter()
                .all(|r| r.method == "GET" && r.path == "/v3.6/ping")
        );
        let recorded = format!("{requests:?}");
        assert!(
            !recorded.contains("test-token"),
            "the token must never be kept"
        );
        assert!(
            requests[6]
                .headers
                .iter()
                .any(|(n, v)| n == "authorization" && v == "<masked>")
        );
    }

    #[tokio::test]
    async fn only_the_latest_requests_are_kept() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        for page in 1..=RECORDED_REQUESTS + 1 {
            let answer = api
                .call(Method::GET, &format!("/workflow_runs?page={page}"), None)
                .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
        let requests = api.double.requests();
        assert_eq!(requests.len(), RECORDED_REQUESTS);
        assert_eq!(requests[0].query, "page=2", "the first request was dropped");
        assert_eq!(
            requests[RECORDED_REQUESTS - 1].query,
            format!("page={}", RECORDED_REQUESTS + 1)
        );
    }

    #[tokio::test]
    async fn applicants_are_created_validated_read_and_deleted() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let body = json!({
            "first_name": "Jane", "last_name": "Doe",
            "consents": [{"name": "privacy_notices_read", "granted": true}],
        });
        let created = api.call(Method::POST, "/applicants", Some(body)).await;
        assert_eq!(created.status, 201);
        let id = created.body["id"].as_str().unwrap().to_owned();
        assert!(lower_uuid_v4(&id));
        assert!(utc_timestamp(&created.body["created_at"]));
        assert_eq!(created.body["href"], format!("/v3.6/applicants/{id}"));
        assert_eq!(created.body["sandbox"], true);
        assert!(created.body.get("delete_at").is_some());

        let missing = api
            .call(
                Method::POST,
                "/applicants",
                Some(json!({"last_name": "Doe"})),
            )
            .await;
        assert_envelope(&missing, 422, "validation_error");
        assert!(missing.body["error"]["fields"]["first_name"]["messages"][0].is_string());
        assert!(missing.body["error"]["fields"].get("last_name").is_none());
        for bad in ["!", "#", "$", "%", "*", "=", "<", ">", ";", "{", "}", "\""] {
            let body = json!({"first_name": "Jane", "last_name": format!("Do{bad}e")});
            let answer = api.call(Method::POST, "/applicants", Some(body)).await;
            assert_envelope(&answer, 422, "validation_error");
            assert!(answer.body["error"]["fields"]["last_name"]["messages"].is_array());
        }
        let body = json!({"first_name": "J", "last_name": "D", "email": "nope"});
        let bad_email = api.call(Method::POST, "/applicants", Some(body)).await;
        assert_eq!(
            bad_email.body["error"]["fields"]["email"]["messages"][0],
            "invalid format"
        );
        let not_json = api
            .http
            .post(format!("{}/applicants", api.double.base_url()))
            .header("Authorization", format!("Token token={TOKEN}"))
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(not_json.status(), 400);
        assert_eq!(api.double.applicants_created(), 1);

        let read = api
            .call(Method::GET, &format!("/applicants/{id}"), None)
            .await;
        assert_eq!(read.body["id"], id);
        let deleted = api
            .call(Method::DELETE, &format!("/applicants/{id}"), None)
            .await;
        assert_eq!(deleted.status, 204);
        assert!(deleted.body.is_null());
        let read = api
            .call(Method::GET, &format!("/applicants/{id}"), None)
            .await;
        assert_envelope(&read, 404, "resource_not_found");
        let again = api
            .call(Method::DELETE, &format!("/applicants/{id}"), None)
            .await;
        assert_envelope(&again, 404, "resource_not_found");
        let unknown = api
            .call(Method::GET, &format!("/applicants/{}", new_id()), None)
            .await;
        assert_envelope(&unknown, 404, "resource_not_found");
        assert!(
            unknown.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Applicant")
        );
    }

    #[tokio::test]
    async fn a_fresh_run_has_the_documented_shape() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let applicant = api.applicant().await;
        let body =
            json!({"workflow_id": WORKFLOW, "applicant_id": applicant, "customer_user_id": "cu_1"});
        let run = api.call(Method::POST, "/workflow_runs", Some(body)).await;
        assert_eq!(run.status, 201);
        let body = &run.body;
        let id = body["id"].as_str().unwrap();
        assert!(lower_uuid_v4(id));
        assert_eq!(body["workflow_id"], WORKFLOW);
        assert_eq!(body["applicant_id"], applicant.as_str());
        assert_eq!(body["customer_user_id"], "cu_1");
        assert_eq!(body["status"], "awaiting_input");
        assert!(body["output"].is_null() && body["reasons"].is_null() && body["error"].is_null());
        assert_eq!(body["tags"], json!([]));
        assert!(body["workflow_version_id"].is_i64());
        assert!(
            sdk_token_shaped(body["sdk_token"].as_str().unwrap()),
            "{}",
            body["sdk_token"]
        );
        assert_eq!(
            body["dashboard_url"],
            format!("https://dashboard.onfido.com/results/{id}")
        );
        assert!(utc_timestamp(&body["created_at"]) && utc_timestamp(&body["updated_at"]));
        assert!(body["link"].is_object());

        let read = api
            .call(Method::GET, &format!("/workflow_runs/{id}"), None)
            .await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body, run.body);
        assert_eq!(api.double.run(id).unwrap(), run.body);
        let unknown = api
            .call(Method::GET, &format!("/workflow_runs/{}", new_id()), None)
            .await;
        assert_envelope(&unknown, 404, "resource_not_found");
        assert_eq!(api.double.runs_created(), 1);

        let tagged = api.run(&applicant, None, &["flow:1", "b"]).await;
        assert_eq!(tagged["tags"], json!(["flow:1", "b"]));
        assert!(tagged["customer_user_id"].is_null());
    }

    #[tokio::test]
    async fn run_creation_is_validated() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let applicant = api.applicant().await;
        let long_tag = "t".repeat(129);
        let many_tags: Vec<String> = (0..31).map(|i| format!("t{i}")).collect();
        let with = |extra: Value| {
            let mut body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        let cases = [
            (json!({"applicant_id": applicant}), "workflow_id"),
            (
                with(json!({"workflow_id": "biometric-passkey-registration"})),
                "workflow_id",
            ),
            (json!({"workflow_id": WORKFLOW}), "applicant_id"),
            (with(json!({"applicant_id": new_id()})), "applicant_id"),
            (
                with(json!({"customer_user_id": "u".repeat(257)})),
                "customer_user_id",
            ),
            (with(json!({"tags": many_tags})), "tags"),
            (with(json!({"tags": [""]})), "tags"),
            (with(json!({"tags": [long_tag]})), "tags"),
            (with(json!({"custom_data": "x"})), "custom_data"),
        ];
        for (body, field) in cases {
            let answer = api
                .call(Method::POST, "/workflow_runs", Some(body.clone()))
                .await;
            assert_envelope(&answer, 422, "validation_error");
            let messages = &answer.body["error"]["fields"][field]["messages"];
            assert!(messages.is_array(), "{body} → {}", answer.body);
        }
        assert_eq!(api.double.runs_created(), 0);
        let edge = with(json!({
            "customer_user_id": "u".repeat(256),
            "tags": (0..30).map(|i| format!("{i:0>128}")).collect::<Vec<_>>(),
        }));
        assert_eq!(
            api.call(Method::POST, "/workflow_runs", Some(edge))
                .await
                .status,
            201
        );
    }

    #[tokio::test]
    async fn the_list_is_a_bare_array_honouring_its_filters() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let (a, b) = (api.applicant().await, api.applicant().await);
        let r1 = api.run(&a, None, &["flow:1", "x"]).await["id"].clone();
        let r2 = api.run(&a, None, &["flow:2", "x"]).await["id"].clone();
        let r3 = api.run(&b, None, &["flow:1"]).await["id"].clone();
        let ids = |answer: &Answer| -> Vec<Value> {
            assert_eq!(answer.status, 200, "{}", answer.body);
            let list = answer.body.as_array().expect("a bare array");
            list.iter().map(|r| r["id"].clone()).collect()
        };
        let shared_api = &api;
        let list = |query: String| async move {
            shared_api
                .call(Method::GET, &format!("/workflow_runs{query}"), None)
                .await
        };
        let all = list(String::new()).await;
        assert_eq!(
            ids(&all),
            vec![r3.clone(), r2.clone(), r1.clone()],
            "newest first by default"
        );
        assert_eq!(all.headers["x-total-count"], "3");
        let asc = list("?sort=asc".into()).await;
        assert_eq!(ids(&asc), vec![r1.clone(), r2.clone(), r3.clone()]);
        let by_applicant = list(format!("?applicant_id={a}")).await;
        assert_eq!(ids(&by_applicant), vec![r2.clone(), r1.clone()]);
        let tagged = list(format!("?applicant_id={a}&tags=flow:1")).await;
        assert_eq!(ids(&tagged), vec![r1.clone()]);
        let all_tags = list("?tags=flow%3A1,x".into()).await;
        assert_eq!(ids(&all_tags), vec![r1.clone()], "every tag must match");
        let none = list("?tags=flow:1,flow:2".into()).await;
        assert!(ids(&none).is_empty());

        api.double
            .complete_run(r2.as_str().unwrap(), "declined")
            .await;
        let declined = list("?status=declined".into()).await;
        assert_eq!(ids(&declined), vec![r2.clone()]);
        let open = list("?status=awaiting_input,approved&sort=asc".into()).await;
        assert_eq!(ids(&open), vec![r1.clone(), r3.clone()]);
        let tomorrow = (now() + time::Duration::days(1)).date();
        let later = list(format!("?created_at_gt={tomorrow}")).await;
        assert!(ids(&later).is_empty());
        let earlier = list(format!("?created_at_lt={tomorrow}")).await;
        assert_eq!(ids(&earlier).len(), 3);
        let bad = list("?sort=sideways".into()).await;
        assert_envelope(&bad, 422, "validation_error");
    }

    #[tokio::test]
    async fn unknown_paths_wrong_methods_and_sdk_tokens() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        for path in ["/nothing", "/applicants/x/y/z", "/workflow_runs/a/b"] {
            assert_envelope(
                &api.call(Method::GET, path, None).await,
                404,
                "resource_not_found",
            );
        }
        let root = api.double.base_url().replace("/v3.6", "");
        let outside = api
            .http
            .get(format!("{root}/v3.5/ping"))
            .send()
            .await
            .unwrap();
        assert_eq!(outside.status(), 404);
        let wrong = api.call(Method::PATCH, "/workflow_runs", None).await;
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.headers["allow"], "GET, POST");
        assert_eq!(
            api.call(Method::DELETE, "/workflow_runs/x", None)
                .await
                .status,
            405
        );
        assert_eq!(api.call(Method::POST, "/ping", None).await.status, 405);

        let applicant = api.applicant().await;
        let body = json!({"applicant_id": applicant});
        let token = api.call(Method::POST, "/sdk_token", Some(body)).await;
        assert_eq!(token.status, 200, "not 201");
        assert!(sdk_token_shaped(token.body["token"].as_str().unwrap()));
        let missing = api
            .call(
                Method::POST,
                "/sdk_token",
                Some(json!({"referrer": "*://*/*"})),
            )
            .await;
        assert_envelope(&missing, 422, "validation_error");
        assert!(missing.body["error"]["fields"]["applicant_id"].is_object());
    }

    #[tokio::test]
    async fn route_faults_hit_exactly_the_next_calls() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let applicant = api.applicant().await;
        let body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});

        api.double
            .set_route_fault(Route::CreateRun, Fault::ServerError, 2);
        for _ in 0..2 {
            let answer = api
                .call(Method::POST, "/workflow_runs", Some(body.clone()))
                .await;
            assert_envelope(&answer, 500, "internal_server_error");
        }
        assert_eq!(api.double.runs_created(), 0, "a 500 processes nothing");
        let created = api
            .call(Method::POST, "/workflow_runs", Some(body.clone()))
            .await;
        assert_eq!(created.status, 201);
        assert_eq!(api.double.runs_created(), 1);

        api.double
            .set_route_fault(Route::ListRuns, Fault::NonJsonBadGateway, 1);
        let gateway = api.call(Method::GET, "/workflow_runs", None).await;
        assert_eq!(gateway.status, 502);
        assert!(
            gateway.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(gateway.body.is_string(), "not JSON");
        assert_eq!(
            api.call(Method::GET, "/workflow_runs", None).await.status,
            200
        );

        // A delay past the client's timeout: the run exists although the client saw nothing.
        api.double.set_route_fault(
            Route::CreateRun,
            Fault::Delay(Duration::from_millis(800)),
            1,
        );
        let impatient = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let err = impatient
            .post(format!("{}/workflow_runs", api.double.base_url()))
            .header("Authorization", format!("Token token={TOKEN}"))
            .json(&body)
            .send()
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(api.double.runs_created(), 2);

        // A dropped connection: no answer at all, though the request was processed.
        api.double
            .set_route_fault(Route::CreateApplicant, Fault::DropConnection, 1);
        let err = api
            .http
            .post(format!("{}/applicants", api.double.base_url()))
            .header("Authorization", format!("Token token={TOKEN}"))
            .json(&json!({"first_name": "A", "last_name": "B"}))
            .send()
            .await
            .unwrap_err();
        assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
        assert_eq!(api.double.applicants_created(), 2);
        api.applicant().await;
        assert_eq!(api.double.applicants_created(), 3);

        api.double
            .set_route_fault(Route::BiometricTokens, Fault::ServerError, 1);
        assert_eq!(
            api.call(Method::GET, "/biometric_tokens/u", None)
                .await
                .status,
            500
        );
        assert_eq!(
            api.call(Method::GET, "/biometric_tokens/u", None)
                .await
                .status,
            200
        );
    }

    #[tokio::test]
    async fn rate_limits_answer_429_with_and_without_retry_after() {
        let api = Api::start(OnfidoDoubleConfig {
            rate_limit_per_minute: Some(3),
            ..OnfidoDoubleConfig::default()
        })
        .await;
        for _ in 0..3 {
            assert_eq!(api.call(Method::GET, "/ping", None).await.status, 200);
        }
        let limited = api.call(Method::GET, "/ping", None).await;
        assert_envelope(&limited, 429, "rate_limit");
        let wait: u64 = limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");

        let api = Api::start(OnfidoDoubleConfig::default()).await;
        api.double
            .set_route_fault(Route::ReadRun, Fault::RateLimited { retry_after: None }, 1);
        let path = format!("/workflow_runs/{}", new_id());
        let bare = api.call(Method::GET, &path, None).await;
        assert_envelope(&bare, 429, "rate_limit");
        assert!(bare.headers.get("retry-after").is_none());
        api.double.set_route_fault(
            Route::ReadRun,
            Fault::RateLimited {
                retry_after: Some(7),
            },
            1,
        );
        let hinted = api.call(Method::GET, &path, None).await;
        assert_envelope(&hinted, 429, "rate_limit");
        assert_eq!(hinted.headers["retry-after"], "7");
        assert_eq!(api.call(Method::GET, &path, None).await.status, 404);
    }

    #[tokio::test]
    async fn biometric_tokens_appear_after_the_delay_and_go_once() {
        let api = Api::start(OnfidoDoubleConfig {
            biometric_token_delay: Duration::from_millis(500),
            ..OnfidoDoubleConfig::default()
        })
        .await;
        let applicant = api.applicant().await;
        let run = api.run(&applicant, Some("cu_alice"), &[]).await;
        let outcomes = api
            .double
            .complete_run(run["id"].as_str().unwrap(), "approved")
            .await;
        assert!(outcomes.is_empty(), "no webhook URL, no delivery");
        let list = api
            .call(Method::GET, "/biometric_tokens/cu_alice", None)
            .await;
        assert_eq!(list.status, 200);
        assert_eq!(
            list.body,
            json!({"biometric_tokens": []}),
            "eventually consistent: not yet"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        let list = api
            .call(Method::GET, "/biometric_tokens/cu_alice", None)
            .await;
        let tokens = list.body["biometric_tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 1);
        let uuid = tokens[0]["uuid"].as_str().unwrap().to_owned();
        assert!(lower_uuid_v4(&uuid));
        assert_eq!(tokens[0]["data"]["status"], "approved");
        assert!(
            tokens[0]["data"]["inserted_at"].is_string()
                && tokens[0]["data"]["media_type"].is_string()
        );

        let one = format!("/biometric_tokens/cu_alice/{uuid}");
        let read = api.call(Method::GET, &one, None).await;
        assert_eq!(read.body["biometric_token"]["uuid"], uuid.as_str());
        let put = api
            .call(Method::PUT, &one, Some(json!({"status": "declined"})))
            .await;
        assert_eq!(put.body["biometric_token"]["data"]["status"], "declined");
        let put = api
            .call(Method::PUT, &one, Some(json!({"status": "maybe"})))
            .await;
        assert_envelope(&put, 422, "validation_error");
        let gone = json!({"error": {"type": "resource_not_found", "message": "Not found"}});
        let other_user = api
            .call(
                Method::GET,
                &format!("/biometric_tokens/cu_bob/{uuid}"),
                None,
            )
            .await;
        assert_eq!((other_user.status, &other_user.body), (404, &gone));
        let deleted = api.call(Method::DELETE, &one, None).await;
        assert_eq!(deleted.status, 200);
        assert_eq!(
            deleted.body,
            json!({"biometric_token": {"deleted_items": {"count": 1}}})
        );
        let again = api.call(Method::DELETE, &one, None).await;
        assert_eq!((again.status, &again.body), (404, &gone));
        let all = api
            .call(Method::DELETE, "/biometric_tokens/cu_alice", None)
            .await;
        assert_eq!(
            (all.status, &all.body),
            (404, &gone),
            "nothing left to delete"
        );

        // A new enrollment, deleted all at once, then again.
        let run = api.run(&applicant, Some("cu_alice"), &[]).await;
        api.double
            .complete_run(run["id"].as_str().unwrap(), "approved")
            .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let all = api
            .call(Method::DELETE, "/biometric_tokens/cu_alice", None)
            .await;
        assert_eq!(all.status, 200);
        assert_eq!(
            all.body,
            json!({"biometric_tokens": {"deleted_items": {"count": 1}}})
        );
        let again = api
            .call(Method::DELETE, "/biometric_tokens/cu_alice", None)
            .await;
        assert_eq!((again.status, &again.body), (404, &gone));

        // A declined run enrolls nobody.
        let run = api.run(&applicant, Some("cu_carol"), &[]).await;
        api.double
            .complete_run(run["id"].as_str().unwrap(), "declined")
            .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let list = api
            .call(Method::GET, "/biometric_tokens/cu_carol", None)
            .await;
        assert_eq!(list.body, json!({"biometric_tokens": []}));
    }

    #[tokio::test]
    async fn completion_fills_the_outcome_and_reads_may_lag() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let applicant = api.applicant().await;
        for (status, output, error) in [
            ("approved", true, false),
            ("declined", true, false),
            ("review", true, false),
            ("abandoned", false, false),
            ("error", false, true),
        ] {
            let run = api.run(&applicant, None, &[]).await;
            let id = run["id"].as_str().unwrap();
            api.double.complete_run(id, status).await;
            let read = api
                .call(Method::GET, &format!("/workflow_runs/{id}"), None)
                .await
                .body;
            assert_eq!(read["status"], status);
            assert_eq!(read["output"].is_object(), output, "{read}");
            assert!(read["reasons"].is_array());
            assert_eq!(read["error"].is_object(), error, "{read}");
            if error {
                assert!(read["error"]["type"].is_string() && read["error"]["message"].is_string());
            }
        }

        api.double.set_read_lag(2);
        let run = api.run(&applicant, None, &[]).await;
        let id = run["id"].as_str().unwrap();
        let path = format!("/workflow_runs/{id}");
        api.double.complete_run(id, "approved").await;
        assert_eq!(api.double.run(id).unwrap()["status"], "approved");
        for _ in 0..2 {
            let read = api.call(Method::GET, &path, None).await;
            assert_eq!(
                read.body["status"], "awaiting_input",
                "still the old status"
            );
        }
        assert_eq!(
            api.call(Method::GET, &path, None).await.body["status"],
            "approved"
        );
        let tasks = api
            .call(Method::GET, &format!("{path}/tasks"), None)
            .await
            .body;
        let task_id = tasks[0]["id"].as_str().unwrap();
        assert!(
            task_id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        );
        let task = api
            .call(Method::GET, &format!("{path}/tasks/{task_id}"), None)
            .await
            .body;
        assert!(task.get("input").is_some() && task.get("output").is_some());
    }

    // --- webhooks ---------------------------------------------------------

    type Delivery = (HeaderMap, Vec<u8>);

    #[derive(Clone)]
    struct Receiver {
        got: Arc<Mutex<Vec<Delivery>>>,
        answer: Arc<AtomicU16>,
    }

    async fn receive(
        AxumState(receiver): AxumState<Receiver>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        receiver.got.lock().unwrap().push((headers, body.to_vec()));
        StatusCode::from_u16(receiver.answer.load(Ordering::SeqCst)).unwrap()
    }

    impl Receiver {
        async fn start(answer: u16) -> (Self, String) {
            let receiver = Self {
                got: Arc::default(),
                answer: Arc::new(AtomicU16::new(answer)),
            };
            let app = axum::Router::new()
                .fallback(receive)
                .with_state(receiver.clone());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (
                receiver,
                format!("http://{addr}/api/public/v1/providers/onfido/webhooks"),
            )
        }

        fn take(&self) -> Vec<Delivery> {
            std::mem::take(&mut *self.got.lock().unwrap())
        }
    }

    fn signature(headers: &HeaderMap) -> Option<String> {
        headers
            .get("x-sha2-signature")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    fn valid(headers: &HeaderMap, body: &[u8]) -> bool {
        signature(headers).is_some_and(|s| s == sign(WEBHOOK_TOKEN, body))
    }

    fn event(delivery: &Delivery) -> Value {
        serde_json::from_slice(&delivery.1).unwrap()
    }

    /// Completes a fresh run under `fault`: what arrived, and the run.
    async fn deliveries_under(
        api: &Api,
        receiver: &Receiver,
        fault: WebhookFault,
    ) -> (Vec<Delivery>, Value) {
        api.double.set_webhook_fault(fault);
        let applicant = api.applicant().await;
        let run = api.run(&applicant, Some("cu_w"), &["flow:w"]).await;
        let outcomes = api
            .double
            .complete_run(run["id"].as_str().unwrap(), "approved")
            .await;
        let got = receiver.take();
        assert_eq!(outcomes.len(), got.len());
        assert!(outcomes.iter().all(DeliveryOutcome::is_success));
        (got, run)
    }

    #[tokio::test]
    async fn deliveries_are_signed_compact_workflow_run_completed_events() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let (receiver, url) = Receiver::start(200).await;
        api.double.set_webhook_url(&url);
        let (got, run) = deliveries_under(&api, &receiver, WebhookFault::None).await;
        assert_eq!(got.len(), 1);
        let (headers, body) = &got[0];
        assert_eq!(headers["content-type"], "application/json");
        assert!(valid(headers, body));
        let spaced = body.windows(2).any(|w| w == b": " || w == b", ");
        assert!(!body.contains(&b'\n') && !spaced, "compact");
        let event = event(&got[0]);
        let payload = &event["payload"];
        assert_eq!(payload["resource_type"], "workflow_run");
        assert_eq!(payload["action"], "workflow_run.completed");
        assert_eq!(payload["object"]["id"], run["id"]);
        assert_eq!(payload["object"]["status"], "approved");
        let href = format!(
            "{}/workflow_runs/{}",
            api.double.base_url(),
            run["id"].as_str().unwrap()
        );
        assert_eq!(payload["object"]["href"], href);
        let completed = parse_ts(&payload["object"]["completed_at_iso8601"]);
        assert!((OffsetDateTime::now_utc() - completed).abs() < time::Duration::seconds(5));
        let resource = &payload["resource"];
        assert_eq!(resource["id"], run["id"]);
        assert_eq!(resource["status"], "approved");
        assert_eq!(resource["customer_user_id"], "cu_w");
        assert_eq!(resource["tags"], json!(["flow:w"]));
        assert!(
            resource.get("sdk_token").is_none(),
            "no bearer secret in a webhook"
        );
    }

    #[tokio::test]
    async fn each_webhook_fault_does_what_it_says() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let (receiver, url) = Receiver::start(200).await;
        api.double.set_webhook_url(&url);

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::Duplicate).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, got[1].1);
        assert_eq!(signature(&got[0].0), signature(&got[1].0));
        assert!(valid(&got[0].0, &got[0].1));

        let (got, run) =
            deliveries_under(&api, &receiver, WebhookFault::TaskCompletedAfterRun).await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|(h, b)| valid(h, b)));
        let (first, second) = (event(&got[0]), event(&got[1]));
        assert_eq!(first["payload"]["action"], "workflow_run.completed");
        assert_eq!(second["payload"]["action"], "workflow_task.completed");
        assert_eq!(second["payload"]["resource_type"], "workflow_task");
        assert_eq!(second["payload"]["object"]["workflow_run_id"], run["id"]);
        assert_eq!(second["payload"]["object"]["status"], "completed");
        assert!(second["payload"]["resource"]["task_def_id"].is_string());

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::BadSignature).await;
        let sig = signature(&got[0].0).unwrap();
        assert_eq!(sig.len(), 64);
        assert!(
            sig.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert!(!valid(&got[0].0, &got[0].1));

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::UppercaseSignature).await;
        let sig = signature(&got[0].0).unwrap();
        assert_eq!(sig, sign(WEBHOOK_TOKEN, &got[0].1).to_uppercase());
        assert_ne!(sig, sign(WEBHOOK_TOKEN, &got[0].1));

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::TruncatedSignature).await;
        let sig = signature(&got[0].0).unwrap();
        assert!(sig.len() < 64 && sign(WEBHOOK_TOKEN, &got[0].1).starts_with(&sig));

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::MissingSignature).await;
        assert_eq!(got.len(), 1);
        assert!(signature(&got[0].0).is_none());

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::OtherToken).await;
        assert!(!valid(&got[0].0, &got[0].1));
        assert_eq!(
            signature(&got[0].0).unwrap(),
            sign(OTHER_WEBHOOK_TOKEN, &got[0].1)
        );

        let (got, run) = deliveries_under(&api, &receiver, WebhookFault::ReformattedBody).await;
        let (headers, body) = &got[0];
        assert!(valid(headers, body), "correctly signed over the bytes sent");
        let reformatted = event(&got[0]);
        assert_ne!(
            body,
            &serde_json::to_vec(&reformatted).unwrap(),
            "other whitespace"
        );
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.find("\"resource\"").unwrap() < text.find("\"object\"").unwrap(),
            "other key order"
        );
        assert_eq!(reformatted["payload"]["action"], "workflow_run.completed");
        assert_eq!(reformatted["payload"]["object"]["id"], run["id"]);

        let (got, run) =
            deliveries_under(&api, &receiver, WebhookFault::UnknownFieldsAndStatus).await;
        assert!(valid(&got[0].0, &got[0].1));
        let odd = event(&got[0]);
        let known = [
            "awaiting_input",
            "processing",
            "awaiting_client_input",
            "approved",
            "declined",
            "review",
            "abandoned",
            "error",
        ];
        let announced = odd["payload"]["object"]["status"].as_str().unwrap();
        assert!(!known.contains(&announced), "{announced}");
        assert!(odd["payload"]["object"]["x_new_field"].is_object());
        assert!(odd["payload"]["resource"]["x_new_field"].is_object());
        let current = api.double.run(run["id"].as_str().unwrap()).unwrap();
        assert_eq!(current["status"], "approved", "the run itself is approved");

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::NoHref).await;
        assert!(valid(&got[0].0, &got[0].1));
        let plain = event(&got[0]);
        assert!(plain["payload"]["object"].get("href").is_none());
        assert!(plain["payload"]["object"]["id"].is_string());

        let stale = WebhookFault::StaleCompletedAt(time::Duration::hours(1));
        let (got, _) = deliveries_under(&api, &receiver, stale).await;
        assert!(valid(&got[0].0, &got[0].1));
        let old = event(&got[0]);
        let age =
            OffsetDateTime::now_utc() - parse_ts(&old["payload"]["object"]["completed_at_iso8601"]);
        assert!(
            age >= time::Duration::minutes(59) && age <= time::Duration::minutes(61),
            "{age}"
        );

        let (got, run) = deliveries_under(&api, &receiver, WebhookFault::NoDelivery).await;
        assert!(got.is_empty());
        assert_eq!(
            api.double.run(run["id"].as_str().unwrap()).unwrap()["status"],
            "approved"
        );

        let (got, _) = deliveries_under(&api, &receiver, WebhookFault::None).await;
        assert_eq!(got.len(), 1);
        assert!(valid(&got[0].0, &got[0].1));
    }

    #[tokio::test]
    async fn failed_deliveries_are_retried_and_no_answer_is_reported() {
        let api = Api::start(OnfidoDoubleConfig {
            webhook_retries: 2,
            ..OnfidoDoubleConfig::default()
        })
        .await;
        let (receiver, url) = Receiver::start(500).await;
        api.double.set_webhook_url(&url);
        let applicant = api.applicant().await;
        let run = api.run(&applicant, None, &[]).await;
        let outcomes = api
            .double
            .complete_run(run["id"].as_str().unwrap(), "review")
            .await;
        assert_eq!(outcomes, vec![DeliveryOutcome::Status(500); 3]);
        let got = receiver.take();
        assert_eq!(got.len(), 3);
        assert!(
            got.iter().all(|(h, b)| b == &got[0].1 && valid(h, b)),
            "the same delivery each time"
        );

        receiver.answer.store(204, Ordering::SeqCst);
        let run = api.run(&applicant, None, &[]).await;
        let outcomes = api
            .double
            .complete_run(run["id"].as_str().unwrap(), "approved")
            .await;
        assert_eq!(outcomes, vec![DeliveryOutcome::Status(204)]);

        // Nobody listening.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        api.double.set_webhook_url(dead);
        let run = api.run(&applicant, None, &[]).await;
        let outcomes = api
            .double
            .complete_run(run["id"].as_str().unwrap(), "approved")
            .await;
        assert_eq!(outcomes, vec![DeliveryOutcome::NoAnswer; 3]);
    }

    /// Completed through the control plane with `"deliver": "background"`,
    /// a run is answered before its delivery, which is still retried.
    #[tokio::test]
    async fn a_background_completion_answers_first_and_still_retries() {
        let api = Api::start(OnfidoDoubleConfig {
            webhook_retries: 2,
            ..OnfidoDoubleConfig::default()
        })
        .await;
        let (receiver, url) = Receiver::start(503).await;
        api.double.set_webhook_url(&url);
        let applicant = api.applicant().await;
        let run = api.run(&applicant, None, &[]).await;
        let id = run["id"].as_str().unwrap();
        let answer: Value = reqwest::Client::new()
            .post(format!(
                "{}/workflow_runs/{id}/complete",
                api.double.control_url()
            ))
            .json(&json!({"status": "approved", "deliver": "background"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["run"]["status"], "approved");
        assert_eq!(answer["deliveries"], json!([]));
        let mut got = 0;
        for _ in 0..100 {
            got = receiver.got.lock().unwrap().len();
            if got == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(got, 3, "the first attempt and two retries");
    }

    #[tokio::test]
    async fn raw_deliveries_carry_the_chosen_signature() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let (receiver, url) = Receiver::start(202).await;
        api.double.set_webhook_url(&url);
        let outcome = api.double.deliver_raw(b"{\"x\":1}", Some("abc")).await;
        assert_eq!(outcome, DeliveryOutcome::Status(202));
        let outcome = api.double.deliver_raw(ILLUSTRATIVE.as_bytes(), None).await;
        assert_eq!(outcome, DeliveryOutcome::Status(202));
        let got = receiver.take();
        assert_eq!(got[0].1, b"{\"x\":1}");
        assert_eq!(signature(&got[0].0).as_deref(), Some("abc"));
        assert_eq!(got[1].1, ILLUSTRATIVE.as_bytes());
        assert!(signature(&got[1].0).is_none());
        assert_eq!(got[1].0["content-type"], "application/json");
    }

    #[tokio::test]
    async fn the_control_plane_completes_runs_over_http() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let (receiver, url) = Receiver::start(200).await;
        api.double.set_webhook_url(&url);
        let applicant = api.applicant().await;
        let run = api.run(&applicant, None, &[]).await;
        let control = api.double.control_url();
        assert!(!control.contains("/v3.6"));
        let complete = format!(
            "{control}/workflow_runs/{}/complete",
            run["id"].as_str().unwrap()
        );
        let post = |url: String, status: &'static str| {
            let http = api.http.clone();
            async move {
                http.post(url)
                    .json(&json!({"status": status}))
                    .send()
                    .await
                    .unwrap()
            }
        };
        let answer = post(complete.clone(), "declined").await;
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["run"]["status"], "declined");
        assert_eq!(body["deliveries"], json!([200]));
        assert_eq!(receiver.take().len(), 1);
        assert_eq!(
            post(complete, "approved").await.status(),
            409,
            "a finished run never moves"
        );
        let other = api.run(&applicant, None, &[]).await;
        let bad = format!(
            "{control}/workflow_runs/{}/complete",
            other["id"].as_str().unwrap()
        );
        assert_eq!(post(bad, "done").await.status(), 422);
        let unknown = format!("{control}/workflow_runs/{}/complete", new_id());
        assert_eq!(post(unknown, "approved").await.status(), 404);
        assert!(
            api.double
                .requests()
                .iter()
                .all(|r| !r.path.starts_with("/__control"))
        );
    }

    #[tokio::test]
    async fn a_non_interactive_workflow_is_approved_from_create() {
        let workflow = "b79dcf69-41a0-412d-b803-d1a618730f72";
        let api = Api::start(OnfidoDoubleConfig {
            non_interactive_workflow_id: Some(workflow.into()),
            ..OnfidoDoubleConfig::default()
        })
        .await;
        let (receiver, url) = Receiver::start(200).await;
        api.double.set_webhook_url(&url);
        let applicant = api.applicant().await;
        let body = json!({"workflow_id": workflow, "applicant_id": applicant, "customer_user_id": "cu_dave"});
        let run = api.call(Method::POST, "/workflow_runs", Some(body)).await;
        assert_eq!(run.status, 201);
        assert_eq!(run.body["status"], "approved");
        assert!(run.body["output"].is_object());
        assert!(
            sdk_token_shaped(run.body["sdk_token"].as_str().unwrap()),
            "a run approved at creation still has its SDK token"
        );
        let tokens = api
            .call(Method::GET, "/biometric_tokens/cu_dave", None)
            .await;
        assert_eq!(tokens.body["biometric_tokens"].as_array().unwrap().len(), 1);
        let mut got = Vec::new();
        for _ in 0..50 {
            got = receiver.take();
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(got.len(), 1);
        assert!(valid(&got[0].0, &got[0].1));
        assert_eq!(event(&got[0])["payload"]["object"]["id"], run.body["id"]);
    }

    #[tokio::test]
    async fn a_loose_tags_filter_lists_every_run_most_recently_completed_first() {
        let api = Api::start(OnfidoDoubleConfig {
            loose_tags_filter: true,
            ..OnfidoDoubleConfig::default()
        })
        .await;
        let applicant = api.applicant().await;
        let earlier = api.run(&applicant, Some("cu_x"), &["flow:a"]).await;
        api.double
            .complete_run(earlier["id"].as_str().unwrap(), "approved")
            .await;
        let later = api.run(&applicant, Some("cu_x"), &["flow:b"]).await;
        let listed = api
            .call(
                Method::GET,
                &format!("/workflow_runs?applicant_id={applicant}&tags=flow:b"),
                None,
            )
            .await;
        let ids: Vec<&Value> = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["id"])
            .collect();
        assert_eq!(ids, vec![&earlier["id"], &later["id"]]);
    }

    #[tokio::test]
    async fn a_503_after_processing_created_the_run() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let applicant = api.applicant().await;
        api.double
            .set_route_fault(Route::CreateRun, Fault::UnavailableAfterProcessing, 1);
        let body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});
        let answer = api.call(Method::POST, "/workflow_runs", Some(body)).await;
        assert_envelope(&answer, 503, "service_unavailable");
        assert_eq!(api.double.runs_created(), 1);
    }

    #[tokio::test]
    async fn an_applicant_scheduled_for_deletion_reads_with_delete_at_and_takes_no_runs() {
        let api = Api::start(OnfidoDoubleConfig::default()).await;
        let applicant = api.applicant().await;
        api.double.schedule_applicant_deletion(&applicant);
        let read = api
            .call(Method::GET, &format!("/applicants/{applicant}"), None)
            .await;
        assert_eq!(read.status, 200);
        assert!(utc_timestamp(&read.body["delete_at"]));
        let body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});
        let answer = api.call(Method::POST, "/workflow_runs", Some(body)).await;
        assert_envelope(&answer, 422, "validation_error");
        api.double.delete_applicant(&applicant);
        let read = api
            .call(Method::GET, &format!("/applicants/{applicant}"), None)
            .await;
        assert_envelope(&read, 404, "resource_not_found");
    }
}
