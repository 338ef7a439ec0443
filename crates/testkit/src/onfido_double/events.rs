//! Webhook bodies, field order as the provider sends them (spec §6.3).

use serde::Serialize;
use serde_json::Value;

use super::state::{Run, RunError, Task};
use super::ts;

#[derive(Serialize)]
struct Event<O, R> {
    payload: EventPayload<O, R>,
}

#[derive(Serialize)]
struct EventPayload<O, R> {
    resource_type: &'static str,
    action: &'static str,
    object: O,
    resource: R,
}

#[derive(Serialize)]
struct RunObject<'a> {
    id: &'a str,
    status: &'a str,
    completed_at_iso8601: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    href: Option<String>,
}

#[derive(Serialize)]
struct RunResource<'a> {
    id: &'a str,
    applicant_id: &'a str,
    workflow_id: &'a str,
    workflow_version_id: i64,
    status: &'a str,
    customer_user_id: Option<&'a str>,
    dashboard_url: String,
    output: &'a Value,
    reasons: &'a Value,
    tags: &'a [String],
    error: Option<&'a RunError>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
struct TaskObject<'a> {
    id: &'a str,
    task_spec_id: &'a str,
    task_def_id: &'a str,
    workflow_run_id: &'a str,
    status: &'a str,
    started_at_iso8601: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at_iso8601: Option<&'a str>,
    href: &'a str,
}

#[derive(Serialize)]
struct TaskResource<'a> {
    created_at: String,
    id: &'a str,
    workflow_run_id: &'a str,
    updated_at: String,
    input: &'a Value,
    task_def_version: Option<&'a str>,
    task_def_id: &'a str,
    output: &'a Value,
}

/// `workflow_run.completed` as one line of compact JSON.
pub(super) fn run_completed_body(run: &Run, completed_at: &str, href: Option<String>) -> Vec<u8> {
    let event = Event {
        payload: EventPayload {
            resource_type: "workflow_run",
            action: "workflow_run.completed",
            object: RunObject {
                id: &run.id,
                status: &run.status,
                completed_at_iso8601: completed_at,
                href,
            },
            resource: RunResource {
                id: &run.id,
                applicant_id: &run.applicant_id,
                workflow_id: &run.workflow_id,
                workflow_version_id: run.workflow_version_id,
                status: &run.status,
                customer_user_id: run.customer_user_id.as_deref(),
                dashboard_url: run.dashboard_url(),
                output: &run.output,
                reasons: &run.reasons,
                tags: &run.tags,
                error: run.error.as_ref(),
                created_at: ts(run.created_at),
                updated_at: ts(run.updated_at),
            },
        },
    };
    serde_json::to_vec(&event).unwrap_or_default()
}

/// A `workflow_task.*` event as one line of compact JSON.
pub(super) fn task_event_body(
    action: &'static str,
    status: &str,
    task: &Task,
    run_id: &str,
    completed_at: Option<&str>,
    href: &str,
) -> Vec<u8> {
    let event = Event {
        payload: EventPayload {
            resource_type: "workflow_task",
            action,
            object: TaskObject {
                id: &task.id,
                task_spec_id: &task.id,
                task_def_id: &task.task_def_id,
                workflow_run_id: run_id,
                status,
                started_at_iso8601: ts(task.created_at),
                completed_at_iso8601: completed_at,
                href,
            },
            resource: TaskResource {
                created_at: ts(task.created_at),
                id: &task.id,
                workflow_run_id: run_id,
                updated_at: ts(task.updated_at),
                input: &task.input,
                task_def_version: task.task_def_version.as_deref(),
                task_def_id: &task.task_def_id,
                output: &task.output,
            },
        },
    };
    serde_json::to_vec(&event).unwrap_or_default()
}

/// The same JSON with other whitespace (indented, ` : `) and keys in reverse order.
pub(super) fn write_reformatted(value: &Value, depth: usize, out: &mut String) {
    let pad = |out: &mut String, depth: usize| out.push_str(&"   ".repeat(depth));
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            let entries: Vec<_> = map.iter().rev().collect();
            for (i, (key, item)) in entries.iter().enumerate() {
                pad(out, depth + 1);
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push_str(" : ");
                write_reformatted(item, depth + 1, out);
                if i + 1 < entries.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, depth + 1);
                write_reformatted(item, depth + 1, out);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(out, depth);
            out.push(']');
        }
        Value::Object(_) => out.push_str("{ }"),
        Value::Array(_) => out.push_str("[ ]"),
        other => out.push_str(&other.to_string()),
    }
}
