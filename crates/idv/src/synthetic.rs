//! `synthetic` mode: an identity provider with no network, for development,
//! demos and tests. Runs start `awaiting_input` like the real provider's, and
//! stay open until an outcome is chosen through [`SyntheticControl`]; the Core
//! API then processes the change through the same event path as a real
//! provider's webhook (de-duplicate, re-read the run, transition).
//!
//! Runs live in this process's memory: run one Core API replica in this mode.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::flow::IdentityOutcome;
use domain::idv::{IdentityProvider, IdvError, RunStatus, StartRun, StartedRun, SyntheticControl};
use domain::user::Pseudonym;
use zeroize::Zeroizing;

#[derive(Debug, Clone)]
struct Run {
    status: RunStatus,
    customer_user_id: String,
}

/// The synthetic provider. `Default` starts available with no runs.
#[derive(Debug, Default)]
pub struct SyntheticProvider {
    runs: Mutex<HashMap<String, Run>>,
    /// Simulates a provider outage for tests: every call fails as unavailable.
    down: AtomicBool,
}

impl SyntheticProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail as the real provider does during an outage.
    pub fn set_unavailable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check_up(&self) -> Result<(), IdvError> {
        if self.down.load(Ordering::SeqCst) {
            Err(IdvError::Unavailable(
                "synthetic provider set unavailable".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Run>> {
        // A poisoned lock only means a panicking test thread; the map is still usable.
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many runs were started for `customer_user_id` (tests).
    pub fn runs_for(&self, customer_user_id: &Pseudonym) -> usize {
        self.runs()
            .values()
            .filter(|r| r.customer_user_id == customer_user_id.as_str())
            .count()
    }
}

/// A token shaped like the real provider's (three base64url segments), so
/// clients that check the shape accept it. It authorises nothing.
pub fn sdk_token(run_id: &str) -> Zeroizing<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"synthetic":true,"run":"{run_id}"}}"#));
    let nonce = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    Zeroizing::new(format!("{header}.{claims}.{nonce}"))
}

#[async_trait]
impl IdentityProvider for SyntheticProvider {
    fn name(&self) -> &'static str {
        "synthetic"
    }

    async fn create_applicant(&self, _customer_user_id: &Pseudonym) -> Result<String, IdvError> {
        self.check_up()?;
        Ok(format!("synthetic-applicant-{}", uuid::Uuid::new_v4()))
    }

    async fn start_run(&self, request: StartRun<'_>) -> Result<StartedRun, IdvError> {
        self.check_up()?;
        let run_id = uuid::Uuid::new_v4().to_string();
        self.runs().insert(
            run_id.clone(),
            Run {
                status: RunStatus::Open,
                customer_user_id: request.customer_user_id.as_str().to_owned(),
            },
        );
        Ok(StartedRun {
            sdk_token: Some(sdk_token(&run_id)),
            run_id,
            status: RunStatus::Open,
        })
    }

    async fn read_run(&self, run_id: &str) -> Result<RunStatus, IdvError> {
        self.check_up()?;
        self.runs()
            .get(run_id)
            .map(|r| r.status.clone())
            .ok_or(IdvError::UnknownRun)
    }

    async fn forget_user(
        &self,
        customer_user_id: &Pseudonym,
        _applicant_id: Option<&str>,
    ) -> Result<(), IdvError> {
        self.check_up()?;
        self.runs()
            .retain(|_, r| r.customer_user_id != customer_user_id.as_str());
        Ok(())
    }
}

impl SyntheticControl for SyntheticProvider {
    fn set_outcome(&self, run_id: &str, outcome: IdentityOutcome) -> Result<(), IdvError> {
        let mut runs = self.runs();
        let run = runs.get_mut(run_id).ok_or(IdvError::UnknownRun)?;
        run.status = RunStatus::Done(outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use domain::flow::FlowId;
    use domain::idv::Workflow;

    use super::*;

    fn start(pseudonym: &Pseudonym) -> StartRun<'_> {
        StartRun {
            workflow: Workflow::Registration,
            customer_user_id: pseudonym,
            applicant_id: "synthetic-applicant",
            flow_id: FlowId(uuid::Uuid::nil()),
        }
    }

    #[tokio::test]
    async fn runs_stay_open_until_an_outcome_is_chosen() {
        let provider = SyntheticProvider::new();
        let user = Pseudonym::generate();
        let run = provider.start_run(start(&user)).await.unwrap();
        assert_eq!(run.status, RunStatus::Open);
        assert_eq!(run.sdk_token.as_ref().unwrap().split('.').count(), 3);
        assert_eq!(
            provider.read_run(&run.run_id).await.unwrap(),
            RunStatus::Open
        );

        provider
            .set_outcome(&run.run_id, IdentityOutcome::Declined)
            .unwrap();
        assert_eq!(
            provider.read_run(&run.run_id).await.unwrap(),
            RunStatus::Done(IdentityOutcome::Declined)
        );
        assert_eq!(provider.read_run("nope").await, Err(IdvError::UnknownRun));
        assert_eq!(
            provider.set_outcome("nope", IdentityOutcome::Approved),
            Err(IdvError::UnknownRun)
        );
    }

    #[tokio::test]
    async fn an_outage_fails_every_call_and_forgetting_removes_runs() {
        let provider = SyntheticProvider::new();
        let user = Pseudonym::generate();
        provider.start_run(start(&user)).await.unwrap();
        assert_eq!(provider.runs_for(&user), 1);
        provider.set_unavailable(true);
        assert!(matches!(
            provider.start_run(start(&user)).await,
            Err(IdvError::Unavailable(_))
        ));
        provider.set_unavailable(false);
        provider.forget_user(&user, None).await.unwrap();
        assert_eq!(provider.runs_for(&user), 0);
    }
}
