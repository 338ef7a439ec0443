//! A failed attempt, classified: whether it may be retried, whether it may
//! have been processed, and the error it becomes (never the provider's message).

use domain::idv::IdvError;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;

/// The provider's error envelope: `{"error": {"type", "message", "fields"}}`.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope {
    pub(super) error: EnvelopeError,
}

#[derive(Debug, Deserialize)]
pub(super) struct EnvelopeError {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
}

/// One failed attempt.
#[derive(Debug)]
pub(super) enum Failure {
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
    pub(super) fn retryable(&self, safe: bool) -> bool {
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
    pub(super) fn may_have_processed(&self) -> bool {
        match self {
            Self::NotSent(_) => false,
            Self::Ambiguous(_) => true,
            Self::Status { status, .. } => status.is_server_error(),
        }
    }

    pub(super) fn into_error(self) -> IdvError {
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
