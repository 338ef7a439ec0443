//! Calls to the IDV provider by operation and outcome, with their latency: a
//! decorator around whichever [`IdentityProvider`] the runtime was given.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use domain::idv::{ApplicantState, IdentityProvider, IdvError, RunStatus, StartRun, StartedRun};
use domain::user::Pseudonym;
use tracing::Instrument;

use super::Metrics;

/// `inner`, measured.
pub struct MeteredProvider {
    inner: Arc<dyn IdentityProvider>,
    metrics: Metrics,
}

impl Metrics {
    /// Measures every call the runtime makes to `provider`.
    pub fn measure_provider(
        &self,
        provider: Arc<dyn IdentityProvider>,
    ) -> Arc<dyn IdentityProvider> {
        if !self.is_on() && !crate::traces::enabled() {
            return provider;
        }
        Arc::new(MeteredProvider {
            inner: provider,
            metrics: self.clone(),
        })
    }
}

impl MeteredProvider {
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, IdvError>>,
    ) -> Result<T, IdvError> {
        let started = Instant::now();
        let span = crate::traces::provider_span(self.inner.name(), operation);
        let result = call.instrument(span.clone()).await;
        let elapsed = started.elapsed().as_secs_f64();
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(IdvError::Unavailable(_)) => "unavailable",
            Err(IdvError::Refused(_)) => "refused",
            Err(IdvError::UnknownRun) => "unknown_run",
            Err(IdvError::Unsettled(_)) => "unsettled",
        };
        let provider = self.inner.name();
        self.metrics.record(|| {
            metrics::counter!(
                "biometric_passkey_idv_requests_total",
                "provider" => provider,
                "operation" => operation,
                "outcome" => outcome,
            )
            .increment(1);
            metrics::histogram!(
                "biometric_passkey_idv_request_duration_seconds",
                "provider" => provider,
                "operation" => operation,
            )
            .record(elapsed);
        });
        result
    }
}

#[async_trait]
impl IdentityProvider for MeteredProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn create_applicant(
        &self,
        customer_user_id: &Pseudonym,
        deadline: std::time::Instant,
    ) -> Result<String, IdvError> {
        self.call(
            "create_applicant",
            self.inner.create_applicant(customer_user_id, deadline),
        )
        .await
    }

    async fn start_run(&self, request: StartRun<'_>) -> Result<StartedRun, IdvError> {
        self.call("start_run", self.inner.start_run(request)).await
    }

    async fn find_run(&self, request: StartRun<'_>) -> Result<Option<StartedRun>, IdvError> {
        self.call("find_run", self.inner.find_run(request)).await
    }

    async fn read_run(&self, run_id: &str) -> Result<RunStatus, IdvError> {
        self.call("read_run", self.inner.read_run(run_id)).await
    }

    async fn read_run_within(
        &self,
        run_id: &str,
        budget: std::time::Duration,
    ) -> Result<RunStatus, IdvError> {
        self.call("read_run", self.inner.read_run_within(run_id, budget))
            .await
    }

    async fn applicant_state(&self, applicant_id: &str) -> Result<ApplicantState, IdvError> {
        self.call("applicant_state", self.inner.applicant_state(applicant_id))
            .await
    }

    async fn delete_applicant(&self, applicant_id: &str) -> Result<(), IdvError> {
        self.call(
            "delete_applicant",
            self.inner.delete_applicant(applicant_id),
        )
        .await
    }

    async fn forget_user(
        &self,
        customer_user_id: &Pseudonym,
        applicant_id: Option<&str>,
    ) -> Result<(), IdvError> {
        self.call(
            "forget_user",
            self.inner.forget_user(customer_user_id, applicant_id),
        )
        .await
    }
}
