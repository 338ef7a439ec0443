//! The JSON error body and the stable error codes every runtime answers with.

use serde::{Deserialize, Serialize};

/// A stable, documented error code. The string form is the contract; the enum
/// is how the code base names it. See `docs/errors.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No route matches the request path.
    RouteNotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The request body is not valid JSON or does not match the expected shape.
    InvalidRequestBody,
    /// The request declares a content type other than `application/json`.
    UnsupportedMediaType,
    /// The request body exceeds the route's size limit.
    PayloadTooLarge,
    /// A path or query parameter is malformed.
    InvalidParameter,
    /// The addressed resource does not exist.
    NotFound,
    /// The request conflicts with the resource's current state.
    Conflict,
    /// A dependency (database, provider) is unavailable; retry after `Retry-After`.
    ServiceUnavailable,
    /// The server is not ready to serve traffic (readiness probe).
    NotReady,
    /// An unexpected server-side failure; details are in the server log under
    /// the same correlation id.
    #[serde(rename = "internal_error")]
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: &'static [Self] = &[
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::InvalidRequestBody,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::InvalidParameter,
        Self::NotFound,
        Self::Conflict,
        Self::ServiceUnavailable,
        Self::NotReady,
        Self::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidRequestBody => "invalid_request_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidParameter => "invalid_parameter",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::ServiceUnavailable => "service_unavailable",
            Self::NotReady => "not_ready",
            Self::Internal => "internal_error",
        }
    }
}

/// `{ "error": { "code", "message", "correlation_id" } }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    pub correlation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_as_str() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}

#[cfg(test)]
mod documentation {
    use super::ErrorCode;

    #[test]
    fn every_code_is_documented() {
        let reference = include_str!("../../../docs/errors.md");
        for &code in ErrorCode::ALL {
            assert!(
                reference.contains(&format!("| `{}` |", code.as_str())),
                "{code:?} undocumented"
            );
        }
    }
}
