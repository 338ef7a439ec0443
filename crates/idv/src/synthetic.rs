//! `synthetic` mode: an identity provider with no network, for development,
//! demos and tests. Runs start `awaiting_input` like the real provider's, and
//! stay open until an outcome is chosen through [`SyntheticControl`]; the Core
//! API then processes the change through the same event path as a real
//! provider's webhook (de-duplicate, re-read the run, transition).
//!
//! Runs live in this process's memory: run one Core API replica in this mode.
//! What it keeps is bounded, so a long-running staging environment does not
//! grow: the newest [`SyntheticProvider::MAX_FINISHED`] runs with an outcome
//! and the newest [`SyntheticProvider::MAX_OPEN`] runs without one. An older
//! run is forgotten, and reading it answers as for an unknown run (its flow
//! has long been completed, or has expired, by then).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::flow::IdentityOutcome;
use domain::idv::{
    ApplicantState, IdentityProvider, IdvError, RunStatus, StartRun, StartedRun, SyntheticControl,
};
use domain::user::Pseudonym;
use zeroize::Zeroizing;

#[derive(Debug, Clone)]
struct Run {
    status: RunStatus,
    customer_user_id: String,
    /// Its place in [`Runs::open`] or [`Runs::finished`].
    order: u64,
}

/// The runs kept, and the order in which they were started (open runs) or
/// given their outcome (finished runs), oldest first.
#[derive(Debug, Default)]
struct Runs {
    by_id: HashMap<String, Run>,
    open: BTreeMap<u64, String>,
    finished: BTreeMap<u64, String>,
    next: u64,
}

impl Runs {
    fn next_order(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn start(&mut self, run_id: String, customer_user_id: String, max_open: usize) {
        let order = self.next_order();
        self.open.insert(order, run_id.clone());
        self.by_id.insert(
            run_id,
            Run {
                status: RunStatus::Open,
                customer_user_id,
                order,
            },
        );
        Self::evict(&mut self.open, &mut self.by_id, max_open);
    }

    fn finish(
        &mut self,
        run_id: &str,
        outcome: IdentityOutcome,
        max_finished: usize,
    ) -> Result<(), IdvError> {
        let order = self.next_order();
        let run = self.by_id.get_mut(run_id).ok_or(IdvError::UnknownRun)?;
        match run.status {
            RunStatus::Open => self.open.remove(&run.order),
            _ => self.finished.remove(&run.order),
        };
        run.status = RunStatus::Done(outcome);
        run.order = order;
        self.finished.insert(order, run_id.to_owned());
        Self::evict(&mut self.finished, &mut self.by_id, max_finished);
        Ok(())
    }

    fn forget(&mut self, customer_user_id: &str) {
        let (open, finished) = (&mut self.open, &mut self.finished);
        self.by_id.retain(|_, run| {
            let keep = run.customer_user_id != customer_user_id;
            if !keep {
                match run.status {
                    RunStatus::Open => open.remove(&run.order),
                    _ => finished.remove(&run.order),
                };
            }
            keep
        });
    }

    /// Forgets the oldest runs of `order` beyond `max`.
    fn evict(order: &mut BTreeMap<u64, String>, by_id: &mut HashMap<String, Run>, max: usize) {
        while order.len() > max {
            if let Some((_, run_id)) = order.pop_first() {
                by_id.remove(&run_id);
            }
        }
    }
}

/// The synthetic provider. `Default` starts available with no runs.
#[derive(Debug)]
pub struct SyntheticProvider {
    runs: Mutex<Runs>,
    max_open: usize,
    max_finished: usize,
    /// Simulates a provider outage for tests: every call fails as unavailable.
    down: AtomicBool,
}

impl Default for SyntheticProvider {
    fn default() -> Self {
        Self::with_limits(Self::MAX_OPEN, Self::MAX_FINISHED)
    }
}

impl SyntheticProvider {
    /// Runs without an outcome kept at most (the oldest goes first).
    pub const MAX_OPEN: usize = 10_000;
    /// Runs with an outcome kept at most (the one given its outcome longest
    /// ago goes first).
    pub const MAX_FINISHED: usize = 10_000;

    pub fn new() -> Self {
        Self::default()
    }

    /// A provider keeping at most `max_open` open and `max_finished`
    /// finished runs.
    pub fn with_limits(max_open: usize, max_finished: usize) -> Self {
        Self {
            runs: Mutex::default(),
            max_open,
            max_finished,
            down: AtomicBool::new(false),
        }
    }

    /// How many runs it keeps now.
    pub fn runs_kept(&self) -> usize {
        self.runs().by_id.len()
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

    fn runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        // A poisoned lock only means a panicking test thread; the map is still usable.
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many runs were started for `customer_user_id` (tests).
    pub fn runs_for(&self, customer_user_id: &Pseudonym) -> usize {
        self.runs()
            .by_id
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

    async fn create_applicant(
        &self,
        _customer_user_id: &Pseudonym,
        _deadline: std::time::Instant,
    ) -> Result<String, IdvError> {
        self.check_up()?;
        Ok(format!("synthetic-applicant-{}", uuid::Uuid::new_v4()))
    }

    async fn start_run(&self, request: StartRun<'_>) -> Result<StartedRun, IdvError> {
        self.check_up()?;
        let run_id = uuid::Uuid::new_v4().to_string();
        self.runs().start(
            run_id.clone(),
            request.customer_user_id.as_str().to_owned(),
            self.max_open,
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
            .by_id
            .get(run_id)
            .map(|r| r.status.clone())
            .ok_or(IdvError::UnknownRun)
    }

    async fn read_run_within(
        &self,
        run_id: &str,
        _budget: std::time::Duration,
    ) -> Result<RunStatus, IdvError> {
        self.read_run(run_id).await
    }

    /// Runs are created in memory: a creation is never ambiguous, so there
    /// is never a run to find.
    async fn find_run(&self, _request: StartRun<'_>) -> Result<Option<StartedRun>, IdvError> {
        Ok(None)
    }

    async fn applicant_state(&self, _applicant_id: &str) -> Result<ApplicantState, IdvError> {
        self.check_up()?;
        Ok(ApplicantState::Active)
    }

    /// Applicants are names only: nothing to delete.
    async fn delete_applicant(&self, _applicant_id: &str) -> Result<(), IdvError> {
        self.check_up()
    }

    async fn forget_user(
        &self,
        customer_user_id: &Pseudonym,
        _applicant_id: Option<&str>,
    ) -> Result<(), IdvError> {
        self.check_up()?;
        self.runs().forget(customer_user_id.as_str());
        Ok(())
    }
}

impl SyntheticControl for SyntheticProvider {
    fn set_outcome(&self, run_id: &str, outcome: IdentityOutcome) -> Result<(), IdvError> {
        self.runs().finish(run_id, outcome, self.max_finished)
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
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(1),
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

    #[tokio::test]
    async fn what_it_keeps_stays_bounded_however_many_runs_it_serves() {
        let provider = SyntheticProvider::with_limits(50, 20);
        let user = Pseudonym::generate();
        let mut finished = Vec::new();
        for i in 0..10_000 {
            let run = provider.start_run(start(&user)).await.unwrap().run_id;
            // Most runs get an outcome, as complete flows do; one in ten is
            // abandoned and stays open.
            if i % 10 != 0 {
                provider
                    .set_outcome(&run, IdentityOutcome::Approved)
                    .unwrap();
                finished.push(run);
            }
            assert!(provider.runs_kept() <= 70, "{} kept", provider.runs_kept());
        }
        assert_eq!(provider.runs().finished.len(), 20);
        assert!(provider.runs().open.len() <= 50);
        // The newest outcomes are still read; the oldest are forgotten.
        for run in &finished[finished.len() - 20..] {
            assert_eq!(
                provider.read_run(run).await.unwrap(),
                RunStatus::Done(IdentityOutcome::Approved)
            );
        }
        assert_eq!(
            provider.read_run(&finished[0]).await,
            Err(IdvError::UnknownRun)
        );
        // A run just started is kept, however many are open.
        let newest = provider.start_run(start(&user)).await.unwrap().run_id;
        assert_eq!(provider.read_run(&newest).await.unwrap(), RunStatus::Open);
        // Forgetting the user leaves nothing behind in the orderings either.
        provider.forget_user(&user, None).await.unwrap();
        assert_eq!(provider.runs_kept(), 0);
        let runs = provider.runs();
        assert!(runs.open.is_empty() && runs.finished.is_empty());
    }

    #[tokio::test]
    async fn a_run_given_a_new_outcome_is_kept_once() {
        let provider = SyntheticProvider::with_limits(5, 5);
        let user = Pseudonym::generate();
        let run = provider.start_run(start(&user)).await.unwrap().run_id;
        provider
            .set_outcome(&run, IdentityOutcome::Declined)
            .unwrap();
        provider
            .set_outcome(&run, IdentityOutcome::Approved)
            .unwrap();
        assert_eq!(provider.runs_kept(), 1);
        assert_eq!(provider.runs().finished.len(), 1);
        assert_eq!(
            provider.read_run(&run).await.unwrap(),
            RunStatus::Done(IdentityOutcome::Approved)
        );
    }
}
