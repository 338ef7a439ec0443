//! Background clean-ups: the provider forgetting deleted users (a queue
//! retried with a growing wait), and references staged by flows that ended.

use time::Duration;

use super::{FlowService, applicant_binding};
use crate::error::DomainResult;
use crate::idv::IdvError;
use crate::user::UserId;

/// The wait before the next attempt of a provider clean-up that failed
/// `attempts` times: a minute, doubling each time, at most six hours.
pub fn provider_cleanup_backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    Duration::minutes(1)
        .saturating_mul(1_i32 << doublings)
        .min(Duration::hours(6))
}

/// Why a clean-up attempt failed, in words fit for a log line: the kind of
/// failure, never a transport error's text (which may carry the provider's
/// URL, and in it an applicant id).
fn cleanup_failure(e: &IdvError) -> String {
    match e {
        IdvError::Unavailable(_) | IdvError::Unsettled(_) => {
            "the identity-verification provider is unavailable".to_owned()
        }
        IdvError::Refused(detail) => {
            format!("the identity-verification provider refused the request: {detail}")
        }
        IdvError::UnknownRun => e.to_string(),
    }
}

/// What one pass over the provider clean-up queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderCleanupReport {
    /// Users the provider forgot.
    pub forgotten: u32,
    /// Attempts that failed and will be retried, with why.
    pub retrying: Vec<FailedCleanup>,
    /// Attempts that failed for the last time: the clean-up is now dead.
    pub dead: Vec<FailedCleanup>,
}

/// A failed provider clean-up attempt: our id of the deleted user (never the
/// customer's identifier or the provider's applicant id) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCleanup {
    pub user_id: UserId,
    pub attempts: u32,
    pub reason: String,
}
impl FlowService {
    /// Removes the biometric references staged by flows that ended, or are
    /// past their expiry, without completing (a flow nobody touches again is
    /// never expired explicitly); how many.
    pub async fn discard_stale_staged_references(&self) -> DomainResult<u64> {
        Ok(self
            .repo
            .discard_stale_staged_references(self.clock.now())
            .await?)
    }

    /// The provider clean-up queue counted by state.
    pub async fn provider_cleanup_counts(
        &self,
    ) -> DomainResult<crate::store::ProviderCleanupCounts> {
        Ok(self.repo.provider_cleanup_counts().await?)
    }

    /// Has the provider forget deleted users (biometric tokens, applicant), at
    /// most `limit` of those due, earliest first. A failed attempt (the
    /// provider refusing or unreachable, or a stored applicant id that cannot
    /// be opened) does not stop the pass: the item is tried again after a
    /// growing wait ([`provider_cleanup_backoff`]) and, after
    /// [`FlowPolicy::provider_cleanup_max_attempts`] attempts, marked dead.
    ///
    /// [`FlowPolicy::provider_cleanup_max_attempts`]: super::FlowPolicy::provider_cleanup_max_attempts
    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "provider.cleanups",
        skip_all
    )]
    pub async fn process_provider_cleanups(
        &self,
        limit: u32,
    ) -> DomainResult<ProviderCleanupReport> {
        let mut report = ProviderCleanupReport::default();
        let now = self.clock.now();
        for cleanup in self.repo.due_provider_cleanups(now, limit).await? {
            let attempt = match &cleanup.applicant_sealed {
                Some(sealed) => self
                    .open_string(sealed, applicant_binding(&cleanup.user_id))
                    .map(Some)
                    .map_err(|e| format!("the stored applicant id cannot be opened: {e}")),
                None => Ok(None),
            };
            let outcome = match attempt {
                Ok(applicant) => self
                    .idv
                    .forget_user(
                        &cleanup.customer_user_id,
                        applicant.as_ref().map(|a| a.as_str()),
                    )
                    .await
                    .map_err(|e| cleanup_failure(&e)),
                Err(reason) => Err(reason),
            };
            match outcome {
                Ok(()) => {
                    self.repo.finish_provider_cleanup(cleanup.user_id).await?;
                    report.forgotten += 1;
                }
                Err(reason) => {
                    let attempts = cleanup.attempts.saturating_add(1);
                    let retry_at = (attempts < self.policy.provider_cleanup_max_attempts)
                        .then(|| now + provider_cleanup_backoff(attempts));
                    self.repo
                        .fail_provider_cleanup(cleanup.user_id, now, retry_at)
                        .await?;
                    let failed = FailedCleanup {
                        user_id: cleanup.user_id,
                        attempts,
                        reason,
                    };
                    if retry_at.is_some() {
                        report.retrying.push(failed);
                    } else {
                        report.dead.push(failed);
                    }
                }
            }
        }
        Ok(report)
    }
}
#[cfg(test)]
mod tests {
    use time::Duration;

    use super::provider_cleanup_backoff;

    #[test]
    fn provider_cleanup_backoff_doubles_from_a_minute_up_to_six_hours() {
        let waits: Vec<Duration> = (1..=12).map(provider_cleanup_backoff).collect();
        assert_eq!(waits[0], Duration::minutes(1));
        assert_eq!(waits[1], Duration::minutes(2));
        assert_eq!(waits[8], Duration::minutes(256));
        assert_eq!(waits[9], Duration::hours(6));
        assert_eq!(provider_cleanup_backoff(u32::MAX), Duration::hours(6));
        assert_eq!(provider_cleanup_backoff(0), Duration::minutes(1));
    }
}
