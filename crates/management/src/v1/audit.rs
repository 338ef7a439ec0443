//! The audit trail: its search, newest first, and its streamed export.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use domain::UserId;
use domain::audit::{AuditEvent, AuditEventType, AuditQuery, Subject};
use domain::operations::OperatorRead;
use http_common::{ApiError, ApiJson, ApiQuery};
use proto::management::{AuditEventResponse, AuditPage};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::exports::{ExportRecord, export_place, ndjson};
use super::{listed_param, page_limit, record_read, time_param};
use crate::ManagementState;
use crate::auth::{Operator, RequireScope, Scope};

/// The most events one export streams.
pub const MAX_EXPORT: usize = 100_000;
/// Events read per page of an export.
const EXPORT_PAGE: u32 = 1_000;

/// The wire form of an event: in the audit API, its export and archives.
pub fn event_response(e: AuditEvent) -> AuditEventResponse {
    let ev = e.event;
    AuditEventResponse {
        seq: e.seq,
        id: ev.id,
        occurred_at: ev.occurred_at,
        event_type: ev.event_type.as_str().to_owned(),
        actor: ev.actor.kind().to_owned(),
        actor_id: ev.actor.id().map(str::to_owned),
        user_id: ev.subject.user_id.map(|u| u.0),
        user_pseudonym: ev.subject.user_pseudonym.map(|p| p.as_str().to_owned()),
        credential_id: ev.subject.credential_id,
        flow_id: ev.subject.flow_id,
        outcome: ev.outcome.as_str().to_owned(),
        reason: ev.reason,
        correlation_id: ev.correlation_id,
        details: ev.details,
    }
}

/// Filters of an audit search. Times are RFC 3339.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    pub flow_id: Option<Uuid>,
    pub credential_id: Option<Uuid>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    #[param(format = DateTime)]
    pub from: Option<String>,
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// The previous page's `next_before`.
    pub before: Option<i64>,
    /// At most this many (taken as 1–200; default 50).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub limit: Option<u32>,
}

impl AuditFilter {
    /// The filters as the audit trail records them.
    fn on_record(&self) -> serde_json::Value {
        json!({
            "user_id": self.user_id,
            "flow_id": self.flow_id,
            "credential_id": self.credential_id,
            "type": self.event_type,
            "from": self.from,
            "until": self.until,
            "before": self.before,
        })
    }

    /// The query for pages of `limit` events.
    fn query(&self, limit: u32) -> Result<AuditQuery, ApiError> {
        let event_type = listed_param::<AuditEventType>(self.event_type.as_deref(), |t| {
            format!("unknown event type {t:?}")
        })?;
        Ok(AuditQuery {
            user_id: self.user_id.map(UserId),
            flow_id: self.flow_id,
            credential_id: self.credential_id,
            event_type,
            occurred_from: time_param(self.from.as_deref(), "from")?,
            occurred_before: time_param(self.until.as_deref(), "until")?,
            before_seq: self.before,
            limit,
        })
    }
}

#[utoipa::path(get, path = "/api/management/v1/audit", tag = "audit", params(AuditFilter), responses((status = 200, body = AuditPage), (status = 400, body = proto::ErrorBody), (status = 403, body = proto::ErrorBody)))]
/// Search the audit trail, newest first.
pub async fn audit(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<AuditFilter>, ApiError>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    operator.require(Scope::AuditRead)?;
    let ApiQuery(filter) = filter?;
    let query = filter.query(page_limit(filter.limit))?;
    let page = state.management.audit_events(&query).await?;
    record_read(
        &state,
        &operator,
        "audit",
        Subject::default(),
        json!({ "filters": filter.on_record(), "rows": page.items.len() }),
    )
    .await?;
    Ok(ApiJson(AuditPage {
        events: page.items.into_iter().map(event_response).collect(),
        next_before: page.next,
    }))
}

#[utoipa::path(get, path = "/api/management/v1/audit/export", tag = "audit", params(AuditFilter), responses((status = 200, description = "JSON lines, one AuditEventResponse each", content_type = "application/x-ndjson"), (status = 403, body = proto::ErrorBody), (status = 503, description = "`server_busy`: as many exports as this replica runs at once are running", body = proto::ErrorBody)))]
/// The matching events as JSON lines (`application/x-ndjson`), newest first,
/// at most 100 000 per call: continue from the last `seq` with `before`.
/// Streamed a page at a time; a replica runs at most two exports at once
/// (`503 server_busy` beyond). A failure after the first page cuts the body short (the
/// chunked encoding is not terminated), so a truncated export is never taken
/// for a whole one.
pub async fn audit_export(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<AuditFilter>, ApiError>,
) -> Result<Response, ApiError> {
    operator.require(Scope::AuditRead)?;
    let ApiQuery(filter) = filter?;
    let query = filter.query(EXPORT_PAGE)?;
    let place = export_place(&state)?;
    // The first page is read before answering: a database that is down is a
    // clean 503, not a cut body.
    let first = state.management.audit_events(&query).await?;
    let export = AuditExport {
        record: ExportRecord::new(&state, &operator, place),
        filters: filter.on_record(),
        query,
        first: Some(first),
        rows: 0,
        done: false,
    };
    Ok(ndjson(futures_util::stream::try_unfold(
        export,
        AuditExport::next_chunk,
    )))
}

/// An audit export in progress: where it is, and its place under the cap.
struct AuditExport {
    record: ExportRecord,
    filters: serde_json::Value,
    query: AuditQuery,
    first: Option<domain::Page<AuditEvent, i64>>,
    rows: usize,
    done: bool,
}

impl AuditExport {
    /// The next page as JSON lines; `None` once the export is complete (and
    /// on the record).
    async fn next_chunk(mut self) -> Result<Option<(Vec<u8>, Self)>, std::io::Error> {
        if self.done {
            let read = export_read(&self.filters, self.rows, true);
            self.record.record(read).await?;
            return Ok(None);
        }
        let page = match self.first.take() {
            Some(page) => page,
            None => self
                .record
                .management
                .audit_events(&self.query)
                .await
                .map_err(|e| std::io::Error::other(e.message))?,
        };
        let mut chunk = Vec::new();
        for event in page.items {
            serde_json::to_writer(&mut chunk, &event_response(event))?;
            chunk.push(b'\n');
            self.rows += 1;
        }
        match page.next {
            Some(next) if self.rows < MAX_EXPORT => self.query.before_seq = Some(next),
            _ => self.done = true,
        }
        Ok(Some((chunk, self)))
    }
}

/// An export as the audit trail records it, with the rows it sent.
fn export_read(filters: &serde_json::Value, rows: usize, complete: bool) -> OperatorRead {
    OperatorRead {
        what: "audit_export",
        subject: Subject::default(),
        details: json!({ "filters": filters, "rows": rows, "complete": complete }),
    }
}

impl Drop for AuditExport {
    /// An export the client stopped reading is recorded too, with the rows
    /// sent so far.
    fn drop(&mut self) {
        let (filters, rows) = (&self.filters, self.rows);
        self.record.record_interrupted(
            || export_read(filters, rows, false),
            "an interrupted audit export could not be audited",
        );
    }
}
