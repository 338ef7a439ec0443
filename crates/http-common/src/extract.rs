//! axum's path, query and body extractors with `ApiError` rejections.
//!
//! axum's own extractors answer a malformed request with a `text/plain`
//! body; these wrap them so that every refusal, the framework's included,
//! is the contract's JSON error body with a stable code:
//!
//! - [`ApiPath`]: a path parameter that does not decode (`%FF`, a number
//!   that is not one) is `400 invalid_parameter`;
//! - [`ApiQuery`]: a query string that does not fit the parameters (an
//!   unknown name, a value out of its type's range) is `400 invalid_parameter`;
//! - [`ApiBody`]: the raw body, `413 payload_too_large` past the route's limit.
//!
//! A handler that must answer another refusal first (the Management API
//! checks the operator's scope before it reads the query) takes
//! `Result<ApiQuery<T>, ApiError>` and returns the error when it is ready to.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use proto::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::extract::Path` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_error(rejection)),
        }
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => {
            ApiError::bad_request(ErrorCode::InvalidParameter, e.body_text())
        }
        // A route whose template lacks the handler's parameters: our mistake.
        other => ApiError::internal(other.body_text()),
    }
}

/// `axum::extract::Query` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidParameter, rejection.body_text())
}

/// The raw request body (`axum::body::Bytes`) whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Default)]
pub struct ApiBody(pub Bytes);

impl<S> FromRequest<S> for ApiBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(body_error)
    }
}

/// A body that could not be read: over the route's limit, or cut short.
pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the body exceeds this route's size limit",
        )
    } else {
        ApiError::bad_request(
            ErrorCode::InvalidRequestBody,
            "the body could not be read in full",
        )
    }
}
