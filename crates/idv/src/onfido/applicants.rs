//! Applicants: one per user, created with placeholder names (the capture
//! carries the real identity), and deleted with what the provider holds
//! about a deleted user.

use domain::idv::{ApplicantState, IdvError};
use domain::user::Pseudonym;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::OnfidoProvider;
use super::failure::Failure;

impl OnfidoProvider {
    pub(super) async fn new_applicant(&self, deadline: Instant) -> Result<String, IdvError> {
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

    pub(super) async fn read_applicant(
        &self,
        applicant_id: &str,
    ) -> Result<ApplicantState, IdvError> {
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

    pub(super) async fn remove_applicant(&self, applicant_id: &str) -> Result<(), IdvError> {
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

    /// Deletes what the provider holds about a deleted user: their
    /// biometric token and, when they have one, their applicant.
    pub(super) async fn forget(
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
