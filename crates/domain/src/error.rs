//! The domain's errors: a kind (what HTTP status family it is) and a stable
//! public code from `proto`. Transport crates map the kind once.

use proto::ErrorCode;

use crate::store::{Conflict, Limit, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    NotFound,
    Conflict,
    PayloadTooLarge,
    Unprocessable,
    TooManyRequests,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct DomainError {
    pub kind: ErrorKind,
    pub code: ErrorCode,
    pub message: String,
    /// Server-side detail for the log; never sent to the client.
    pub internal: Option<String>,
}

impl DomainError {
    pub fn new(kind: ErrorKind, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            internal: None,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            internal: Some(detail.into()),
            ..Self::new(ErrorKind::Internal, ErrorCode::Internal, "internal error")
        }
    }

    pub fn unavailable(
        code: ErrorCode,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            internal: Some(detail.into()),
            ..Self::new(ErrorKind::Unavailable, code, message)
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::not_found(ErrorCode::NotFound, "not found"),
            StoreError::Conflict(Conflict::FlowVersion | Conflict::CredentialState) => {
                Self::conflict(
                    ErrorCode::FlowChanged,
                    "a concurrent request changed the flow first; read it again",
                )
            }
            StoreError::Conflict(Conflict::WebAuthnIdTaken) => Self::conflict(
                ErrorCode::CredentialAlreadyRegistered,
                "a credential with this WebAuthn id is registered already",
            ),
            StoreError::Conflict(_) => Self::conflict(
                ErrorCode::Conflict,
                "the request conflicts with the current state",
            ),
            StoreError::LimitReached(Limit::IdvRuns) => Self::new(
                ErrorKind::TooManyRequests,
                ErrorCode::IdvRunLimitReached,
                "too many identity verifications for this user in the last 24 hours",
            ),
            StoreError::LimitReached(Limit::OpenFlows) => Self::new(
                ErrorKind::TooManyRequests,
                ErrorCode::TooManyOpenFlows,
                "the user has too many flows in progress; finish or cancel one",
            ),
            StoreError::Unavailable(detail) => Self::unavailable(
                ErrorCode::ServiceUnavailable,
                "the database is temporarily unavailable; retry later",
                detail,
            ),
            StoreError::Corrupt(_) | StoreError::Other(_) => Self::internal(err.to_string()),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
