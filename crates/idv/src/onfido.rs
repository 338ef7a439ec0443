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
//!
//! The client's parts: [`client`] sends the calls (timeouts, retries,
//! errors that carry no URL), [`failure`] classifies a failed attempt,
//! [`runs`] creates, finds and reads workflow runs, [`applicants`] creates
//! and deletes applicants; [`webhook`] reads the provider's deliveries.

use std::time::Duration;

use async_trait::async_trait;
use domain::idv::{ApplicantState, IdentityProvider, IdvError, RunStatus, StartRun, StartedRun};
use domain::user::Pseudonym;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

mod applicants;
mod client;
mod failure;
mod runs;
pub mod webhook;

pub use runs::run_status;

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
        self.create_run(request).await
    }

    async fn find_run(&self, request: StartRun<'_>) -> Result<Option<StartedRun>, IdvError> {
        match self.look_up_run(&request).await {
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
        self.read_applicant(applicant_id).await
    }

    async fn delete_applicant(&self, applicant_id: &str) -> Result<(), IdvError> {
        self.remove_applicant(applicant_id).await
    }

    async fn forget_user(
        &self,
        customer_user_id: &Pseudonym,
        applicant_id: Option<&str>,
    ) -> Result<(), IdvError> {
        self.forget(customer_user_id, applicant_id).await
    }
}

#[cfg(test)]
mod tests;
