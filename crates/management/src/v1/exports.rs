//! What the two streamed exports (the audit trail's and the credentials')
//! share: their places under the replica's cap, the JSON-lines answer, and
//! their record in the audit trail, made once when they end, cut short too.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::management::ManagementService;
use domain::operations::OperatorRead;
use domain::service::RequestContext;
use futures_util::TryStream;
use http_common::ApiError;
use proto::ErrorCode;
use tokio::sync::OwnedSemaphorePermit;

use super::operator_context;
use crate::ManagementState;
use crate::auth::Operator;

/// Exports (audit and credential together) streamed at once per replica;
/// one more is answered `503 server_busy`.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;

/// A place under [`MAX_CONCURRENT_EXPORTS`], or the `503` saying there is none.
pub(super) fn export_place(state: &ManagementState) -> Result<OwnedSemaphorePermit, ApiError> {
    state.exports.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy,
            format!(
                "this replica runs at most {MAX_CONCURRENT_EXPORTS} exports at once; retry later"
            ),
        )
    })
}

/// The answer streaming `chunks` as JSON lines (`application/x-ndjson`). A
/// chunk that fails cuts the body short: the chunked encoding is not
/// terminated, so a truncated export is never taken for a whole one.
pub(super) fn ndjson<S>(chunks: S) -> Response
where
    S: TryStream + Send + 'static,
    S::Ok: Into<Bytes>,
    S::Error: Into<axum::BoxError>,
{
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// An export's place under the cap and its record: the operator's audit
/// context, and whether the export is on the record yet.
pub(super) struct ExportRecord {
    pub(super) management: Arc<ManagementService>,
    ctx: RequestContext,
    recorded: bool,
    _place: OwnedSemaphorePermit,
}

impl ExportRecord {
    pub(super) fn new(
        state: &ManagementState,
        operator: &Operator,
        place: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            management: state.management.clone(),
            ctx: operator_context(operator),
            recorded: false,
            _place: place,
        }
    }

    /// Puts the export on the record (once it has ended).
    pub(super) async fn record(&mut self, read: OperatorRead) -> Result<(), std::io::Error> {
        self.recorded = true;
        self.management
            .record_read(&self.ctx, read)
            .await
            .map_err(|e| std::io::Error::other(e.message))
    }

    /// For an export dropped before it was recorded (a failure, or a client
    /// that stopped reading): `read()` is put on the record in the
    /// background, and `failure` logged if it cannot be.
    pub(super) fn record_interrupted(
        &mut self,
        read: impl FnOnce() -> OperatorRead,
        failure: &'static str,
    ) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let management = self.management.clone();
        let ctx = self.ctx.clone();
        let read = read();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = management.record_read(&ctx, read).await {
                    tracing::error!(error = %e.message, "{failure}");
                }
            });
        }
    }
}
