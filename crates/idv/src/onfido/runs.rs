//! Workflow runs: their creation (with the look-up after an ambiguous
//! failure, adopting only a run provably the flow's), reads and statuses.

use domain::flow::IdentityOutcome;
use domain::idv::{IdvError, RunStatus, StartRun, StartedRun, Workflow};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::failure::Failure;
use super::{OnfidoProvider, Workflows};

/// How many pages of runs a look-up after an ambiguous creation reads at most.
/// With a tag filter that matches exactly, the first page holds the run or
/// nothing; the bound only matters if the filter is ignored.
const LOOKUP_PAGES: u32 = 5;

/// What a read of a run needs from the provider's answer.
#[derive(Deserialize)]
struct RunRead {
    status: Option<String>,
}

fn workflow_id(workflows: &Workflows, workflow: Workflow) -> &str {
    match workflow {
        Workflow::Registration => &workflows.registration,
        Workflow::StepUp => &workflows.step_up,
        Workflow::RecoveryVerify => &workflows.recovery_verify,
    }
}

/// The flow's tag on its run, to find the run again after an ambiguous failure.
pub(super) fn flow_tag(request: &StartRun<'_>) -> String {
    format!("flow:{}", request.flow_id)
}

/// Whether a listed `run` is the one `request` asked for: it carries the
/// flow's tag, and the applicant, the configured workflow and the user's
/// pseudonym as `customer_user_id` it was created with. Anything else (another
/// flow's run of the same user, say) is not adopted.
pub(super) fn is_run_of(run: &Value, request: &StartRun<'_>, workflows: &Workflows) -> bool {
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

impl OnfidoProvider {
    /// After an ambiguous failure of a creation: the run the provider may
    /// have made for `request`, if a listed run is provably it (see
    /// [`is_run_of`]); `Ok(None)` when the provider lists none.
    pub(super) async fn look_up_run(
        &self,
        request: &StartRun<'_>,
    ) -> Result<Option<Value>, Failure> {
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

    pub(super) async fn read_run_until(
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

    pub(super) fn started(run: &Value) -> Result<StartedRun, IdvError> {
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

    /// Creates the flow's run; after an ambiguous failure, looks for it
    /// before retrying or giving up (see the module's documentation).
    pub(super) async fn create_run(&self, request: StartRun<'_>) -> Result<StartedRun, IdvError> {
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
                && let Ok(Some(run)) = self.look_up_run(&request).await
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
}
