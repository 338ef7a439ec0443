//! `onfido` mode: the Onfido / Entrust Identity Verification API v3.6.
//!
//! What the backend needs and nothing more: applicants (one per user, created
//! with placeholder names and reused; the capture carries the real identity),
//! Studio workflow runs keyed by the user's pseudonym and tagged with our flow
//! id, the run's authoritative status, and forgetting a deleted user.
//!
//! Every call has a timeout. Reads and deletes are retried with backoff,
//! honouring `Retry-After`; creations are retried only when the request surely
//! was not processed (connection refused, 429), or after a 503 once a look-up
//! found no run. After an ambiguous failure (timeout, 5xx) we look for the run
//! before giving up, since the provider has no idempotency keys and runs cost
//! money. A listed run is adopted only when it is provably the flow's: its
//! tags hold the flow's tag, and its applicant, workflow and
//! `customer_user_id` are the ones we asked for. Nothing official pins down
//! how the list's `tags` filter matches, and the user's applicant carries all
//! their runs, so an unchecked first item could be an earlier approved run.
//! Provider messages are never passed on to our callers, and tokens and bodies
//! are never logged.

use std::time::Duration;

use async_trait::async_trait;
use domain::flow::IdentityOutcome;
use domain::idv::{
    ApplicantState, IdentityProvider, IdvError, RunStatus, StartRun, StartedRun, Workflow,
};
use domain::user::Pseudonym;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use zeroize::Zeroizing;

/// How many pages of runs a look-up after an ambiguous creation reads at most.
/// With a tag filter that matches exactly, the first page holds the run or
/// nothing; the bound only matters if the filter is ignored.
const LOOKUP_PAGES: u32 = 5;

/// The workflow ids configured for this deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflows {
    pub registration: String,
    pub step_up: String,
    pub recovery_verify: String,
}

/// Whether `base` can carry the API's paths: a host, and neither a query nor
/// a fragment, which would end up in the middle of every request's URL. The
/// configuration check and the provider both ask this.
pub fn check_onfido_base_url(base: &Url) -> Result<(), &'static str> {
    if !base.has_host() {
        Err("needs a host")
    } else if base.query().is_some() || base.fragment().is_some() {
        Err("must be the API's base URL (scheme, host, optional path), without a query or fragment")
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct OnfidoSettings {
    /// `https://api.{region}.onfido.com/v3.6`, or the override.
    pub base_url: Url,
    pub api_token: SecretString,
    pub workflows: Workflows,
    /// Per attempt; well under the provider's own 30 s and a customer request's budget.
    pub timeout: Duration,
    /// Per attempt of a creation (an applicant, a run), which a flow's
    /// creation waits on: short enough to leave time, within
    /// [`domain::idv::RUN_CREATION_BUDGET`], for the look-up that follows an
    /// ambiguous failure.
    pub create_timeout: Duration,
    /// Extra attempts for safe calls.
    pub retries: u32,
    /// The longest `Retry-After` we wait inside a request before answering 503.
    pub max_retry_wait: Duration,
    /// Adds the caller's trace context (`traceparent`) to each request's
    /// headers, when the runtime exports traces.
    pub propagate: Option<fn(&mut HeaderMap)>,
}

impl OnfidoSettings {
    pub fn new(base_url: Url, api_token: SecretString, workflows: Workflows) -> Self {
        Self {
            base_url,
            api_token,
            workflows,
            timeout: Duration::from_secs(10),
            create_timeout: Duration::from_secs(3),
            retries: 2,
            max_retry_wait: Duration::from_secs(5),
            propagate: None,
        }
    }
}

pub struct OnfidoProvider {
    http: reqwest::Client,
    settings: OnfidoSettings,
    /// `Token token=…`, built once and marked sensitive (never printed).
    authorization: HeaderValue,
}

/// What a read of a run needs from the provider's answer.
#[derive(Deserialize)]
struct RunRead {
    status: Option<String>,
}

/// The provider's error envelope: `{"error": {"type", "message", "fields"}}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    error: EnvelopeError,
}

#[derive(Debug, Deserialize)]
struct EnvelopeError {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// One failed attempt.
#[derive(Debug)]
enum Failure {
    /// Nothing reached the provider (connection refused, DNS): safe to retry anything.
    NotSent(String),
    /// The request may have been processed (timeout, reset after sending).
    Ambiguous(String),
    /// The provider answered with an error status.
    Status {
        status: StatusCode,
        kind: String,
        retry_after: Option<Duration>,
    },
}

impl Failure {
    fn retryable(&self, safe: bool) -> bool {
        match self {
            Self::NotSent(_) => true,
            Self::Ambiguous(_) => safe,
            Self::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::SERVICE_UNAVAILABLE
                    || (safe && status.is_server_error())
            }
        }
    }

    /// Whether a creation that failed like this may nevertheless have happened.
    fn may_have_processed(&self) -> bool {
        match self {
            Self::NotSent(_) => false,
            Self::Ambiguous(_) => true,
            Self::Status { status, .. } => status.is_server_error(),
        }
    }

    fn into_error(self) -> IdvError {
        match self {
            Self::NotSent(m) | Self::Ambiguous(m) => IdvError::Unavailable(m),
            Self::Status { status, kind, .. } if status == StatusCode::NOT_FOUND => {
                IdvError::Refused(format!("404 {kind}"))
            }
            Self::Status { status, kind, .. }
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
            {
                IdvError::Unavailable(format!("{} {kind}", status.as_u16()))
            }
            Self::Status { status, kind, .. } => {
                IdvError::Refused(format!("{} {kind}", status.as_u16()))
            }
        }
    }
}

fn workflow_id(workflows: &Workflows, workflow: Workflow) -> &str {
    match workflow {
        Workflow::Registration => &workflows.registration,
        Workflow::StepUp => &workflows.step_up,
        Workflow::RecoveryVerify => &workflows.recovery_verify,
    }
}

/// The flow's tag on its run, to find the run again after an ambiguous failure.
fn flow_tag(request: &StartRun<'_>) -> String {
    format!("flow:{}", request.flow_id)
}

/// Whether a listed `run` is the one `request` asked for: it carries the
/// flow's tag, and the applicant, the configured workflow and the user's
/// pseudonym as `customer_user_id` it was created with. Anything else (another
/// flow's run of the same user, say) is not adopted.
fn is_run_of(run: &Value, request: &StartRun<'_>, workflows: &Workflows) -> bool {
    let tag = flow_tag(request);
    let tagged = run["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag.as_str())));
    let same = |field: &str, expected: &str| {
        run[field]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case(expected))
    };
    tagged
        && same("applicant_id", request.applicant_id)
        && same("workflow_id", workflow_id(workflows, request.workflow))
        && run["customer_user_id"].as_str() == Some(request.customer_user_id.as_str())
}

/// The resource a path names, for log lines: its first segment, without the
/// ids and the query that follow (applicant ids and pseudonyms are never logged).
fn resource_of(path: &str) -> &str {
    path.trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
}

/// Maps a run's `status` (unknown values stay open: the provider adds values).
pub fn run_status(status: &str) -> RunStatus {
    match status {
        "approved" => RunStatus::Done(IdentityOutcome::Approved),
        "declined" => RunStatus::Done(IdentityOutcome::Declined),
        "review" => RunStatus::Done(IdentityOutcome::Review),
        "abandoned" => RunStatus::Done(IdentityOutcome::Abandoned),
        "error" => RunStatus::Done(IdentityOutcome::Error),
        "awaiting_input" | "processing" | "awaiting_client_input" => RunStatus::Open,
        other => RunStatus::Unknown(other.to_owned()),
    }
}

fn parse_retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl OnfidoProvider {
    pub fn new(settings: OnfidoSettings) -> Result<Self, IdvError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("biometric-passkey/", env!("CARGO_PKG_VERSION")))
            // The API answers where it is asked; a redirect is refused, not
            // followed (it would send the call, and its body, somewhere else).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IdvError::Refused(format!("cannot build the HTTP client: {e}")))?;
        if let Err(problem) = check_onfido_base_url(&settings.base_url) {
            return Err(IdvError::Refused(format!(
                "the provider's base URL {problem}"
            )));
        }
        let mut authorization = HeaderValue::from_str(&format!(
            "Token token={}",
            settings.api_token.expose_secret()
        ))
        .map_err(|_| IdvError::Refused("the API token is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        Ok(Self {
            http,
            settings,
            authorization,
        })
    }

    /// The base URL with `path` (which may carry a query) appended: only the
    /// path and query are parsed, not the whole URL again.
    fn url(&self, path: &str) -> Url {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let base = &self.settings.base_url;
        let mut url = base.clone();
        url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
        url.set_query(query);
        url
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        if let Some(propagate) = self.settings.propagate {
            propagate(&mut headers);
        }
        self.http
            .request(method, self.url(path))
            .headers(headers)
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// One attempt: the body on success, a classified failure otherwise.
    async fn attempt(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        let mut request = self.request(method, path);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        // Errors name no URL: paths carry applicant ids and pseudonyms, and
        // these messages reach the log.
        let response = request.send().await.map_err(|e| {
            let e = e.without_url();
            if e.is_connect() {
                Failure::NotSent(format!("connecting to the provider: {e}"))
            } else {
                Failure::Ambiguous(format!("calling the provider: {e}"))
            }
        })?;
        let status = response.status();
        let retry_after = parse_retry_after(&response);
        let bytes = response.bytes().await.map_err(|e| {
            Failure::Ambiguous(format!(
                "reading the provider's answer: {}",
                e.without_url()
            ))
        })?;
        if status.is_success() {
            return Ok((status, bytes.to_vec()));
        }
        // Older clients fall back to `unknown` when the body is not the envelope.
        let kind = serde_json::from_slice::<Envelope>(&bytes)
            .ok()
            .and_then(|e| e.error.kind)
            .unwrap_or_else(|| "unknown".to_owned());
        Err(Failure::Status {
            status,
            kind,
            retry_after,
        })
    }

    /// Attempts with backoff while the failure is retryable for this kind of call.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        self.call_until(method, path, body, safe, None).await
    }

    /// [`Self::call`], all attempts and waits over by `deadline` when given.
    async fn call_until(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
        deadline: Option<Instant>,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        let mut attempt = 0;
        loop {
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Failure::Ambiguous(
                            "no time left to call the provider".into(),
                        ));
                    }
                    Some(left.min(self.settings.timeout))
                }
            };
            match self.attempt(method.clone(), path, body, timeout).await {
                Ok(ok) => return Ok(ok),
                Err(failure) if attempt < self.settings.retries && failure.retryable(safe) => {
                    let wait = self.retry_wait(&failure, attempt);
                    if wait > self.settings.max_retry_wait
                        || deadline.is_some_and(|d| Instant::now() + wait >= d)
                    {
                        return Err(failure);
                    }
                    tracing::warn!(
                        resource = resource_of(path),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying the IDV provider"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    /// How long to wait before the next attempt after `failure`.
    fn retry_wait(&self, failure: &Failure, attempt: u32) -> Duration {
        match failure {
            Failure::Status {
                retry_after: Some(after),
                ..
            } => *after,
            _ => Duration::from_millis(200 * 2u64.pow(attempt)),
        }
    }

    /// [`Self::call`], with the answer read as `T` (a `Value` to keep it all).
    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
    ) -> Result<T, Failure> {
        self.json_until(method, path, body, safe, None).await
    }

    /// [`Self::json`], all attempts over by `deadline` when given.
    async fn json_until<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
        deadline: Option<Instant>,
    ) -> Result<T, Failure> {
        let (_, bytes) = self.call_until(method, path, body, safe, deadline).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Ambiguous(format!("the provider's answer cannot be read: {e}")))
    }

    async fn new_applicant(&self, deadline: Instant) -> Result<String, IdvError> {
        let body = json!({
            "first_name": "Biometric",
            "last_name": "Passkey",
            "consents": [{ "name": "privacy_notices_read", "granted": true }],
        });
        let deadline = deadline.min(Instant::now() + self.settings.create_timeout);
        let created: Value = self
            .json_until(
                Method::POST,
                "/applicants",
                Some(&body),
                false,
                Some(deadline),
            )
            .await
            .map_err(Failure::into_error)?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| IdvError::Unavailable("the provider's applicant has no id".into()))
    }

    /// After an ambiguous failure of a creation: the run the provider may
    /// have made for `request`, if a listed run is provably it (see
    /// [`is_run_of`]); `Ok(None)` when the provider lists none.
    async fn find_run(&self, request: &StartRun<'_>) -> Result<Option<Value>, Failure> {
        let tag = flow_tag(request);
        for page in 1..=LOOKUP_PAGES {
            let path = format!(
                "/workflow_runs?applicant_id={}&tags={tag}&page={page}",
                request.applicant_id
            );
            let found: Value = self
                .json_until(
                    Method::GET,
                    &path,
                    None,
                    true,
                    Some(Instant::from_std(request.deadline)),
                )
                .await?;
            let Some(runs) = found.as_array() else {
                return Err(Failure::Ambiguous(
                    "the provider's list of runs is not a list".into(),
                ));
            };
            if let Some(run) = runs
                .iter()
                .find(|run| is_run_of(run, request, &self.settings.workflows))
            {
                return Ok(Some(run.clone()));
            }
            if runs.is_empty() {
                break;
            }
            tracing::warn!(
                page,
                listed = runs.len(),
                "runs listed for a flow's tag are not the flow's; none adopted"
            );
        }
        Ok(None)
    }

    async fn read_run_until(
        &self,
        run_id: &str,
        deadline: Option<Instant>,
    ) -> Result<RunStatus, IdvError> {
        let path = format!("/workflow_runs/{run_id}");
        let read = match self
            .call_until(Method::GET, &path, None, true, deadline)
            .await
        {
            Ok((_, bytes)) => serde_json::from_slice::<RunRead>(&bytes).map_err(|e| {
                IdvError::Unavailable(format!("the provider's answer cannot be read: {e}"))
            }),
            Err(Failure::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                Err(IdvError::UnknownRun)
            }
            Err(failure) => Err(failure.into_error()),
        };
        read.map(|run| run_status(run.status.as_deref().unwrap_or("")))
    }

    fn started(run: &Value) -> Result<StartedRun, IdvError> {
        let run_id = run["id"]
            .as_str()
            .ok_or_else(|| IdvError::Unavailable("the provider's run has no id".into()))?
            .to_owned();
        Ok(StartedRun {
            run_id,
            sdk_token: run["sdk_token"]
                .as_str()
                .map(|t| Zeroizing::new(t.to_owned())),
            status: run_status(run["status"].as_str().unwrap_or("awaiting_input")),
        })
    }
}

#[async_trait]
impl IdentityProvider for OnfidoProvider {
    fn name(&self) -> &'static str {
        "onfido"
    }

    async fn create_applicant(
        &self,
        _customer_user_id: &Pseudonym,
        deadline: std::time::Instant,
    ) -> Result<String, IdvError> {
        self.new_applicant(Instant::from_std(deadline)).await
    }

    async fn start_run(&self, request: StartRun<'_>) -> Result<StartedRun, IdvError> {
        let body = json!({
            "workflow_id": workflow_id(&self.settings.workflows, request.workflow),
            "applicant_id": request.applicant_id,
            "customer_user_id": request.customer_user_id.as_str(),
            "tags": [flow_tag(&request)],
        });
        let deadline = Instant::from_std(request.deadline);
        // Whether an attempt so far may have created the run.
        let mut maybe_made = false;
        let mut attempt = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = if left.is_zero() {
                Failure::NotSent("no time left to call the provider".into())
            } else {
                let timeout = left.min(self.settings.create_timeout);
                match self
                    .attempt(Method::POST, "/workflow_runs", Some(&body), Some(timeout))
                    .await
                {
                    Ok((_, bytes)) => match serde_json::from_slice::<Value>(&bytes) {
                        Ok(run) => return Self::started(&run),
                        Err(e) => {
                            Failure::Ambiguous(format!("the provider's answer cannot be read: {e}"))
                        }
                    },
                    Err(failure) => failure,
                }
            };
            // A timeout or a server error (a 503 from a gateway included) may
            // still have created the run: look before retrying or reporting a
            // failure. A 4xx (or a refused connection) surely did not.
            maybe_made |= failure.may_have_processed();
            if failure.may_have_processed()
                && let Ok(Some(run)) = self.find_run(&request).await
            {
                return Self::started(&run);
            }
            // A 503 is retried (after the look-up above found nothing), as
            // are failures that surely processed nothing.
            let retry = attempt < self.settings.retries && failure.retryable(false);
            let wait = self.retry_wait(&failure, attempt);
            if !retry || wait > self.settings.max_retry_wait || Instant::now() + wait >= deadline {
                // The provider may have made the run although no look-up
                // found it (it may still be working on the request): it is
                // looked up again later.
                return Err(match failure.into_error() {
                    IdvError::Unavailable(m) | IdvError::Refused(m) if maybe_made => {
                        IdvError::Unsettled(m)
                    }
                    other => other,
                });
            }
            tracing::warn!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying a run creation"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn find_run(&self, request: StartRun<'_>) -> Result<Option<StartedRun>, IdvError> {
        match self.find_run(&request).await {
            Ok(Some(run)) => Self::started(&run).map(Some),
            Ok(None) => Ok(None),
            Err(failure) => Err(failure.into_error()),
        }
    }

    async fn read_run(&self, run_id: &str) -> Result<RunStatus, IdvError> {
        self.read_run_until(run_id, None).await
    }

    async fn read_run_within(&self, run_id: &str, budget: Duration) -> Result<RunStatus, IdvError> {
        self.read_run_until(run_id, Some(Instant::now() + budget))
            .await
    }

    async fn applicant_state(&self, applicant_id: &str) -> Result<ApplicantState, IdvError> {
        let path = format!("/applicants/{applicant_id}");
        match self.json::<Value>(Method::GET, &path, None, true).await {
            // `delete_at`: the provider will delete it (a deletion is scheduled).
            Ok(applicant) if applicant["delete_at"].is_null() => Ok(ApplicantState::Active),
            Ok(_) => Ok(ApplicantState::Gone),
            Err(Failure::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                Ok(ApplicantState::Gone)
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    async fn delete_applicant(&self, applicant_id: &str) -> Result<(), IdvError> {
        match self
            .call(
                Method::DELETE,
                &format!("/applicants/{applicant_id}"),
                None,
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(Failure::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(()),
            Err(failure) => Err(failure.into_error()),
        }
    }

    async fn forget_user(
        &self,
        customer_user_id: &Pseudonym,
        applicant_id: Option<&str>,
    ) -> Result<(), IdvError> {
        // Both deletions are safe to repeat; "not found" means already done.
        let gone = |result: Result<(StatusCode, Vec<u8>), Failure>| match result {
            Ok(_) => Ok(()),
            Err(Failure::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(()),
            Err(failure) => Err(failure.into_error()),
        };
        gone(
            self.call(
                Method::DELETE,
                &format!("/biometric_tokens/{}", customer_user_id.as_str()),
                None,
                true,
            )
            .await,
        )?;
        if let Some(applicant) = applicant_id {
            gone(
                self.call(
                    Method::DELETE,
                    &format!("/applicants/{applicant}"),
                    None,
                    true,
                )
                .await,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes_and_unknown_ones_stay_open() {
        assert_eq!(
            run_status("approved"),
            RunStatus::Done(IdentityOutcome::Approved)
        );
        assert_eq!(
            run_status("review"),
            RunStatus::Done(IdentityOutcome::Review)
        );
        assert_eq!(run_status("awaiting_client_input"), RunStatus::Open);
        assert_eq!(run_status("paused"), RunStatus::Unknown("paused".into()));
    }

    fn provider(base_url: &str) -> Result<OnfidoProvider, IdvError> {
        let workflows = Workflows {
            registration: "r".into(),
            step_up: "s".into(),
            recovery_verify: "v".into(),
        };
        OnfidoProvider::new(OnfidoSettings::new(
            Url::parse(base_url).unwrap(),
            SecretString::from("api_token"),
            workflows,
        ))
    }

    /// A provider answering with a redirect is refused once; the client
    /// neither follows it nor retries.
    #[tokio::test]
    async fn a_redirect_is_refused_not_followed() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 8192];
                    // Each read is one small bodiless GET.
                    while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let answer = format!(
                            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{addr}/v3.6/elsewhere\r\ncontent-length: 0\r\n\r\n"
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let provider = provider(&format!("http://{addr}/v3.6")).unwrap();
        let err = provider.read_run("run-1").await.unwrap_err();
        assert!(
            matches!(&err, IdvError::Refused(m) if m.starts_with("307")),
            "{err:?}"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn paths_and_queries_go_under_the_base_url() {
        let regional = provider("https://api.eu.onfido.com/v3.6/").unwrap();
        assert_eq!(
            regional.url("/workflow_runs/abc").as_str(),
            "https://api.eu.onfido.com/v3.6/workflow_runs/abc"
        );
        assert_eq!(
            regional
                .url("/workflow_runs?applicant_id=a&tags=t")
                .as_str(),
            "https://api.eu.onfido.com/v3.6/workflow_runs?applicant_id=a&tags=t"
        );
        let double = provider("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            double.url("/applicants").as_str(),
            "http://127.0.0.1:8080/applicants"
        );
    }

    #[test]
    fn a_base_url_without_a_host_or_with_a_query_or_fragment_is_refused_at_start() {
        for bad in ["https://x/v3.6?a=b", "https://x/v3.6#f", "mailto:x@y"] {
            assert!(provider(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_api_token_that_cannot_be_a_header_is_refused_at_start() {
        let workflows = Workflows {
            registration: "r".into(),
            step_up: "s".into(),
            recovery_verify: "v".into(),
        };
        let refused = OnfidoProvider::new(OnfidoSettings::new(
            Url::parse("https://api.eu.onfido.com/v3.6").unwrap(),
            SecretString::from("api\ntoken"),
            workflows,
        ));
        let Err(IdvError::Refused(message)) = refused else {
            panic!("a token with a line break was accepted");
        };
        assert!(
            !message.contains("api\ntoken"),
            "the message must not carry the token"
        );
    }

    #[test]
    fn the_authorization_header_is_sensitive() {
        let provider = provider("https://api.eu.onfido.com/v3.6").unwrap();
        assert!(provider.authorization.is_sensitive());
        assert_eq!(provider.authorization, "Token token=api_token");
    }

    #[test]
    fn only_safe_or_unprocessed_calls_are_retried() {
        let status = |code: u16| Failure::Status {
            status: StatusCode::from_u16(code).unwrap(),
            kind: "x".into(),
            retry_after: None,
        };
        assert!(Failure::NotSent("refused".into()).retryable(false));
        assert!(!Failure::Ambiguous("timeout".into()).retryable(false));
        assert!(Failure::Ambiguous("timeout".into()).retryable(true));
        assert!(status(429).retryable(false));
        assert!(status(503).retryable(false));
        assert!(!status(500).retryable(false));
        assert!(status(500).retryable(true));
        assert!(!status(422).retryable(true));
    }

    #[test]
    fn only_timeouts_and_server_errors_may_have_created_a_run() {
        let status = |code: u16| Failure::Status {
            status: StatusCode::from_u16(code).unwrap(),
            kind: "x".into(),
            retry_after: None,
        };
        assert!(Failure::Ambiguous("timeout".into()).may_have_processed());
        assert!(status(500).may_have_processed());
        assert!(!status(422).may_have_processed());
        assert!(!status(429).may_have_processed());
        assert!(!Failure::NotSent("refused".into()).may_have_processed());
    }

    #[test]
    fn a_listed_run_is_adopted_only_when_it_is_provably_the_flows() {
        let workflows = Workflows {
            registration: "0c6b0e4a-1111-4b5b-9a1e-000000000001".into(),
            step_up: "0C6B0E4A-1111-4B5B-9A1E-000000000002".into(),
            recovery_verify: "0c6b0e4a-1111-4b5b-9a1e-000000000003".into(),
        };
        let pseudonym = Pseudonym::generate();
        let flow_id = domain::flow::FlowId(uuid::Uuid::nil());
        let request = StartRun {
            workflow: Workflow::StepUp,
            customer_user_id: &pseudonym,
            applicant_id: "9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d",
            flow_id,
            deadline: std::time::Instant::now(),
        };
        let good = json!({
            "id": "3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c",
            "applicant_id": "9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d",
            "workflow_id": "0c6b0e4a-1111-4b5b-9a1e-000000000002",
            "customer_user_id": pseudonym.as_str(),
            "tags": ["other", flow_tag(&request)],
            "status": "awaiting_input",
        });
        assert!(is_run_of(&good, &request, &workflows));
        let changed = |field: &str, value: Value| {
            let mut run = good.clone();
            run[field] = value;
            run
        };
        for (field, value) in [
            ("tags", json!([format!("flow:{}", uuid::Uuid::max())])),
            ("tags", json!([])),
            ("tags", Value::Null),
            (
                "applicant_id",
                json!("11111111-0e6f-4a53-8c1d-5f7e3a2b4c6d"),
            ),
            ("workflow_id", json!("0c6b0e4a-1111-4b5b-9a1e-000000000001")),
            ("customer_user_id", json!("cu_someone_else")),
            ("customer_user_id", Value::Null),
        ] {
            assert!(
                !is_run_of(&changed(field, value.clone()), &request, &workflows),
                "{field} = {value}"
            );
        }
    }

    #[tokio::test]
    async fn errors_carry_no_url_with_its_ids() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let provider = provider(&format!("http://{addr}/v3.6")).unwrap();
        let err = provider
            .delete_applicant("9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d")
            .await
            .unwrap_err();
        assert!(matches!(err, IdvError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("9b2d7c41"), "{err}");
    }

    #[test]
    fn log_lines_name_the_resource_without_ids() {
        assert_eq!(resource_of("/applicants/9b2d7c41"), "applicants");
        assert_eq!(
            resource_of("/workflow_runs?applicant_id=a&tags=flow:x"),
            "workflow_runs"
        );
        assert_eq!(resource_of("/biometric_tokens/cu_abc"), "biometric_tokens");
    }

    #[test]
    fn errors_never_carry_the_providers_message() {
        let err = Failure::Status {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "validation_error".into(),
            retry_after: None,
        }
        .into_error();
        assert_eq!(err, IdvError::Refused("422 validation_error".into()));
    }
}
