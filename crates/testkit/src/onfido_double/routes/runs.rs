//! `/workflow_runs`: created (validated as documented), listed with their
//! filters, read (with the read lag in force), and their tasks.

use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::tokens::sdk_token_for;
use crate::onfido_double::RUNS_PER_PAGE;
use crate::onfido_double::deliveries::DeliveryPlan;
use crate::onfido_double::handle::Shared;
use crate::onfido_double::responses::{
    error_response, field_error, json_response, run_not_found, task_not_found, validation_error,
};
use crate::onfido_double::state::{DoubleState, Run, TERMINAL_STATUSES, finish};
use crate::onfido_double::{new_id, now};

/// `POST /workflow_runs`. A run of the non-interactive workflow is approved
/// at once, and the deliveries announcing it are returned (assumption 4).
pub(super) fn create(
    shared: &Shared,
    state: &mut DoubleState,
    body: &Value,
) -> (Response, Option<DeliveryPlan>) {
    let empty = Map::new();
    let object = body.as_object().unwrap_or(&empty);
    let request = match RunRequest::read(state, object) {
        Ok(request) => request,
        Err(fields) => return (validation_error(fields), None),
    };
    let now = now();
    let id = new_id();
    let non_interactive = state
        .config
        .non_interactive_workflow_id
        .as_deref()
        .is_some_and(|w| w.eq_ignore_ascii_case(&request.workflow_id));
    let seq = state.next_seq;
    state.next_seq += 1;
    let mut run = Run {
        // Documented: every created run carries its SDK token, even one
        // approved at creation (the official clients' tests expect it).
        sdk_token: Some(sdk_token_for(&id, now)),
        link: link(&id, object.get("link")),
        id: id.clone(),
        workflow_id: request.workflow_id,
        workflow_version_id: 1,
        applicant_id: request.applicant_id,
        status: "awaiting_input".into(),
        output: Value::Null,
        reasons: Value::Null,
        error: None,
        customer_user_id: request.customer_user_id,
        tags: request.tags,
        created_at: now,
        updated_at: now,
        seq,
        tasks: Vec::new(),
        lag: None,
    };
    let mut plan = None;
    if non_interactive {
        finish(&mut run, "approved", now);
        state.enroll(&run, now);
        plan = Some(shared.plan(state, &run, now));
    }
    let response = json_response(StatusCode::CREATED, run.to_json());
    state.runs.insert(id, run);
    state.runs_created += 1;
    (response, plan)
}

/// What a valid `POST /workflow_runs` asks for.
struct RunRequest {
    workflow_id: String,
    applicant_id: String,
    customer_user_id: Option<String>,
    tags: Vec<String>,
}

impl RunRequest {
    /// The request, or every field refused with its messages.
    fn read(state: &DoubleState, object: &Map<String, Value>) -> Result<Self, Map<String, Value>> {
        let mut fields = Map::new();
        let workflow_id = uuid_field(object, &mut fields, "workflow_id");
        let applicant_id = uuid_field(object, &mut fields, "applicant_id");
        if let Some(id) = &applicant_id
            && state.usable_applicant(id).is_none()
        {
            // Assumption 2: how a run for a deleted applicant is refused.
            field_error(&mut fields, "applicant_id", "Applicant not found");
        }
        let customer_user_id = customer_user_id(object, &mut fields);
        let tags = tags(object, &mut fields);
        for name in ["custom_data", "link"] {
            if object
                .get(name)
                .is_some_and(|v| !v.is_null() && !v.is_object())
            {
                field_error(&mut fields, name, "must be an object");
            }
        }
        match (workflow_id, applicant_id) {
            (Some(workflow_id), Some(applicant_id)) if fields.is_empty() => Ok(Self {
                workflow_id,
                applicant_id,
                customer_user_id,
                tags,
            }),
            _ => Err(fields),
        }
    }
}

/// A required UUID, lower-cased.
fn uuid_field(
    object: &Map<String, Value>,
    fields: &mut Map<String, Value>,
    name: &str,
) -> Option<String> {
    match object.get(name) {
        None | Some(Value::Null) => {
            field_error(fields, name, "can't be blank");
            None
        }
        Some(Value::String(s)) if is_uuid(s) => Some(s.to_ascii_lowercase()),
        Some(_) => {
            field_error(fields, name, "must be a valid UUID");
            None
        }
    }
}

/// An optional string of at most 256 characters.
fn customer_user_id(
    object: &Map<String, Value>,
    fields: &mut Map<String, Value>,
) -> Option<String> {
    match object.get("customer_user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 256 => Some(s.clone()),
        Some(Value::String(_)) => {
            field_error(
                fields,
                "customer_user_id",
                "is too long (maximum is 256 characters)",
            );
            None
        }
        Some(_) => {
            field_error(fields, "customer_user_id", "must be a string");
            None
        }
    }
}

/// At most 30 tags of 1 to 128 characters.
fn tags(object: &Map<String, Value>, fields: &mut Map<String, Value>) -> Vec<String> {
    let mut tags = Vec::new();
    match object.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            if list.len() > 30 {
                field_error(fields, "tags", "must have at most 30 items");
            }
            for tag in list {
                match tag.as_str() {
                    Some(t) if (1..=128).contains(&t.chars().count()) => tags.push(t.to_owned()),
                    Some(_) => {
                        field_error(fields, "tags", "each tag must have 1 to 128 characters")
                    }
                    None => field_error(fields, "tags", "each tag must be a string"),
                }
            }
        }
        Some(_) => field_error(fields, "tags", "must be an array"),
    }
    tags
}

/// The run's `link`: the defaults, overridden by what the request gave.
fn link(id: &str, given: Option<&Value>) -> Value {
    let mut link = json!({
        "url": format!("https://eu.onfido.app/l/{id}"),
        "completed_redirect_url": null,
        "expired_redirect_url": null,
        "expires_at": null,
        "language": null,
    });
    if let (Some(given), Some(target)) = (given.and_then(Value::as_object), link.as_object_mut()) {
        for (key, value) in given {
            target.insert(key.clone(), value.clone());
        }
    }
    link
}

/// `GET /workflow_runs`: a bare array, a page of [`RUNS_PER_PAGE`], the
/// total in `x-total-count` (assumptions 3 and 9).
pub(super) fn list(state: &DoubleState, uri: &Uri) -> Response {
    let Ok(Query(params)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid query string",
            json!({}),
        );
    };
    let query = match ListQuery::read(&params) {
        Ok(query) => query,
        Err(fields) => return validation_error(fields),
    };
    let runs = query.runs(state);
    let total = runs.len();
    let items: Vec<Value> = runs
        .into_iter()
        .skip((query.page - 1) * RUNS_PER_PAGE)
        .take(RUNS_PER_PAGE)
        .map(Run::to_json)
        .collect();
    let mut response = json_response(StatusCode::OK, Value::Array(items));
    // Assumption 9.
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total as u64));
    response
}

/// The filters, order and page of a `GET /workflow_runs`.
struct ListQuery {
    statuses: Option<Vec<String>>,
    tags: Vec<String>,
    applicant_id: Option<String>,
    created_gt: Option<Bound>,
    created_lt: Option<Bound>,
    ascending: bool,
    page: usize,
}

impl ListQuery {
    /// The query, or every parameter refused with its messages.
    fn read(params: &[(String, String)]) -> Result<Self, Map<String, Value>> {
        let mut fields = Map::new();
        let mut query = Self {
            statuses: None,
            tags: Vec::new(),
            applicant_id: None,
            created_gt: None,
            created_lt: None,
            ascending: false,
            page: 1,
        };
        let split = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        for (key, value) in params {
            match key.as_str() {
                "status" => query
                    .statuses
                    .get_or_insert_with(Vec::new)
                    .extend(split(value)),
                "tags" | "tags[]" => query.tags.extend(split(value)),
                "applicant_id" => query.applicant_id = Some(value.clone()),
                "created_at_gt" | "created_at_lt" => match parse_bound(value) {
                    Some(bound) if key == "created_at_gt" => query.created_gt = Some(bound),
                    Some(bound) => query.created_lt = Some(bound),
                    None => field_error(&mut fields, key, "must be an ISO-8601 date"),
                },
                "sort" => match value.as_str() {
                    "asc" => query.ascending = true,
                    "desc" => query.ascending = false,
                    _ => field_error(&mut fields, "sort", "must be one of: asc, desc"),
                },
                "page" => match value.parse::<usize>() {
                    Ok(p) if p >= 1 => query.page = p,
                    _ => field_error(&mut fields, "page", "must be an integer from 1"),
                },
                _ => {}
            }
        }
        if fields.is_empty() {
            Ok(query)
        } else {
            Err(fields)
        }
    }

    /// The runs it selects, in its order: newest created first by default;
    /// with a loose tags filter, most recently completed first, then the
    /// open runs (assumption 3).
    fn runs<'a>(&self, state: &'a DoubleState) -> Vec<&'a Run> {
        let loose = state.config.loose_tags_filter;
        let mut runs: Vec<&Run> = state
            .runs
            .values()
            .filter(|r| {
                self.applicant_id
                    .as_ref()
                    .is_none_or(|a| &r.applicant_id == a)
            })
            .filter(|r| self.statuses.as_ref().is_none_or(|s| s.contains(&r.status)))
            .filter(|r| loose || self.tags.iter().all(|t| r.tags.contains(t)))
            .filter(|r| {
                self.created_gt
                    .as_ref()
                    .is_none_or(|b| b.before(r.created_at))
            })
            .filter(|r| {
                self.created_lt
                    .as_ref()
                    .is_none_or(|b| b.after(r.created_at))
            })
            .collect();
        if loose {
            runs.sort_by_key(|r| {
                let done = TERMINAL_STATUSES.contains(&r.status.as_str());
                (
                    !done,
                    std::cmp::Reverse(r.updated_at),
                    std::cmp::Reverse(r.seq),
                )
            });
            if self.ascending {
                runs.reverse();
            }
        } else {
            runs.sort_by_key(|r| (r.created_at, r.seq));
            if !self.ascending {
                runs.reverse();
            }
        }
        runs
    }
}

/// A `created_at_gt/lt` value: a calendar date, or an instant.
enum Bound {
    Date(time::Date),
    Instant(OffsetDateTime),
}

impl Bound {
    /// The bound lies before `t` (for `_gt`).
    fn before(&self, t: OffsetDateTime) -> bool {
        match self {
            Self::Date(d) => t.date() > *d,
            Self::Instant(i) => t > *i,
        }
    }

    /// The bound lies after `t` (for `_lt`).
    fn after(&self, t: OffsetDateTime) -> bool {
        match self {
            Self::Date(d) => t.date() < *d,
            Self::Instant(i) => t < *i,
        }
    }
}

fn parse_bound(value: &str) -> Option<Bound> {
    if let Ok(date) = time::Date::parse(value, format_description!("[year]-[month]-[day]")) {
        return Some(Bound::Date(date));
    }
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(Bound::Instant)
}

/// `GET /workflow_runs/{id}`: the run as it was before its completion while
/// the read lag lasts (assumption 10).
pub(super) fn read(state: &mut DoubleState, id: &str) -> Response {
    let Some(run) = state.runs.get_mut(id) else {
        return run_not_found(id);
    };
    let lagged = match &mut run.lag {
        Some((before, remaining)) if *remaining > 0 => {
            *remaining -= 1;
            Some(before.clone())
        }
        _ => None,
    };
    json_response(StatusCode::OK, lagged.unwrap_or_else(|| run.to_json()))
}

/// `GET /workflow_runs/{id}/tasks`
pub(super) fn list_tasks(state: &DoubleState, id: &str) -> Response {
    match state.runs.get(id) {
        Some(run) => json_response(
            StatusCode::OK,
            Value::Array(run.tasks.iter().map(|t| t.list_json(&run.id)).collect()),
        ),
        None => run_not_found(id),
    }
}

/// `GET /workflow_runs/{id}/tasks/{task_id}`
pub(super) fn read_task(state: &DoubleState, id: &str, task_id: &str) -> Response {
    match state.runs.get(id) {
        Some(run) => match run.tasks.iter().find(|t| t.id == task_id) {
            Some(task) => json_response(StatusCode::OK, task.full_json(&run.id)),
            None => task_not_found(task_id),
        },
        None => run_not_found(id),
    }
}

/// `POST /workflow_runs/{id}/tasks/{task_id}/complete`
pub(super) fn complete_task(state: &DoubleState, id: &str, task_id: &str) -> Response {
    match state.runs.get(id) {
        Some(run) if run.tasks.iter().any(|t| t.id == task_id) => StatusCode::OK.into_response(),
        Some(_) => task_not_found(task_id),
        None => run_not_found(id),
    }
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}
