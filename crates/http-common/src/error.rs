//! `ApiError`: every failure a handler returns, rendered as the contract's JSON
//! body with a stable code. Server-side failures are logged here, with the
//! request's correlation id, and answered with an opaque message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{DomainError, ErrorKind, StoreError};
use proto::{ErrorBody, ErrorCode, ErrorDetail};

use crate::correlation::CorrelationId;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// What went wrong server-side; logged, never sent.
    internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            internal: None,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }

    /// A dependency is down; the client should retry later.
    pub fn unavailable(internal: impl Into<String>) -> Self {
        Self {
            internal: Some(internal.into()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "a dependency is temporarily unavailable; retry later",
            )
        }
    }

    /// An unexpected failure; `internal` goes to the log only.
    pub fn internal(internal: impl Into<String>) -> Self {
        Self {
            internal: Some(internal.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; quote the correlation id to the operator",
            )
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        let status = match err.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status.is_server_error() && err.kind == ErrorKind::Internal {
            "internal error; quote the correlation id to the operator".to_owned()
        } else {
            err.message
        };
        Self {
            status,
            code: err.code,
            message,
            internal: err.internal,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        DomainError::from(err).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal
            && self.status.is_server_error()
        {
            tracing::error!(code = self.code.as_str(), error = %internal, "request failed");
        }
        let correlation_id = CorrelationId::current()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                correlation_id,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// `404 route_not_found`: the JSON answer for a path no route serves.
pub async fn route_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RouteNotFound,
        "no such route",
    )
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_stable_statuses_and_codes() {
        let cases = [
            (
                StoreError::NotFound,
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
            ),
            (
                StoreError::Conflict(domain::Conflict::ExternalIdTaken),
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
            ),
            (
                StoreError::Unavailable("down".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
            ),
            (
                StoreError::Corrupt("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
            ),
            (
                StoreError::Other("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
            ),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status, api.code), (status, code));
        }
    }

    #[test]
    fn server_errors_do_not_leak_their_cause() {
        let api = ApiError::from(StoreError::Other("password=hunter2".into()));
        assert!(!api.message.contains("hunter2"));
        let response = api.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let response = ApiError::unavailable("db").into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }
}
