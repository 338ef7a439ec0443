//! The double's memory: applicants, runs and their tasks, biometric tokens,
//! the recorded requests and the faults in force, all under one lock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::config::{
    Fault, OnfidoDoubleConfig, RECORDED_REQUESTS, RecordedRequest, Route, WebhookFault,
};
use super::{new_id, ts};

/// The statuses a run ends in.
pub(super) const TERMINAL_STATUSES: [&str; 5] =
    ["approved", "declined", "review", "abandoned", "error"];
/// The statuses of a run still open.
const OPEN_STATUSES: [&str; 3] = ["awaiting_input", "processing", "awaiting_client_input"];

/// A run's `error`: `{"type", "message"}`.
#[derive(Debug, Clone)]
pub(super) struct RunError {
    pub(super) kind: String,
    pub(super) message: String,
}

impl Serialize for RunError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("RunError", 2)?;
        s.serialize_field("type", &self.kind)?;
        s.serialize_field("message", &self.message)?;
        s.end()
    }
}

/// One task of a run (`/workflow_runs/{id}/tasks`).
#[derive(Debug, Clone)]
pub(super) struct Task {
    pub(super) id: String,
    pub(super) task_def_id: String,
    pub(super) task_def_version: Option<String>,
    pub(super) created_at: OffsetDateTime,
    pub(super) updated_at: OffsetDateTime,
    pub(super) input: Value,
    pub(super) output: Value,
}

/// A workflow run as the provider holds it.
#[derive(Debug, Clone)]
pub(super) struct Run {
    pub(super) id: String,
    pub(super) workflow_id: String,
    pub(super) workflow_version_id: i64,
    pub(super) applicant_id: String,
    pub(super) status: String,
    pub(super) output: Value,
    pub(super) reasons: Value,
    pub(super) error: Option<RunError>,
    pub(super) sdk_token: Option<String>,
    pub(super) customer_user_id: Option<String>,
    pub(super) tags: Vec<String>,
    pub(super) link: Value,
    pub(super) created_at: OffsetDateTime,
    pub(super) updated_at: OffsetDateTime,
    /// Creation order, for runs created in the same second.
    pub(super) seq: u64,
    pub(super) tasks: Vec<Task>,
    /// What `GET` still shows after a completion, and for how many more reads.
    pub(super) lag: Option<(Value, usize)>,
}

impl Run {
    pub(super) fn dashboard_url(&self) -> String {
        format!("https://dashboard.onfido.com/results/{}", self.id)
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "workflow_id": self.workflow_id,
            "workflow_version_id": self.workflow_version_id,
            "applicant_id": self.applicant_id,
            "status": self.status,
            "dashboard_url": self.dashboard_url(),
            "output": self.output,
            "reasons": self.reasons,
            "error": self.error,
            "sdk_token": self.sdk_token,
            "customer_user_id": self.customer_user_id,
            "tags": self.tags,
            "link": self.link,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
        })
    }
}

impl Task {
    pub(super) fn list_json(&self, run_id: &str) -> Value {
        json!({
            "id": self.id,
            "workflow_run_id": run_id,
            "task_def_id": self.task_def_id,
            "task_def_version": self.task_def_version,
            "created_at": ts(self.created_at),
            "updated_at": ts(self.updated_at),
        })
    }

    pub(super) fn full_json(&self, run_id: &str) -> Value {
        let mut value = self.list_json(run_id);
        value["input"] = self.input.clone();
        value["output"] = self.output.clone();
        value
    }
}

/// An applicant as the API shows it, and whether it was deleted.
#[derive(Debug, Clone)]
pub(super) struct Applicant {
    pub(super) json: Value,
    pub(super) deleted: bool,
}

/// A user's biometric token, made by an approved run (assumption 5).
#[derive(Debug, Clone)]
pub(super) struct BiometricToken {
    pub(super) uuid: String,
    pub(super) user_id: String,
    pub(super) inserted_at: String,
    pub(super) status: String,
    pub(super) visible_at: Instant,
    pub(super) deleted: bool,
}

impl BiometricToken {
    pub(super) fn visible(&self, now: Instant) -> bool {
        !self.deleted && now >= self.visible_at
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "data": {"inserted_at": self.inserted_at, "media_type": "motion", "status": self.status},
        })
    }
}

/// Everything the double holds, behind one lock.
pub(super) struct DoubleState {
    pub(super) config: OnfidoDoubleConfig,
    pub(super) applicants: HashMap<String, Applicant>,
    pub(super) runs: HashMap<String, Run>,
    pub(super) next_seq: u64,
    pub(super) tokens: Vec<BiometricToken>,
    pub(super) requests: VecDeque<RecordedRequest>,
    pub(super) route_faults: HashMap<Route, (Fault, usize)>,
    pub(super) webhook_fault: WebhookFault,
    pub(super) read_lag: usize,
    window: VecDeque<Instant>,
    pub(super) applicants_created: usize,
    pub(super) runs_created: usize,
}

impl DoubleState {
    pub(super) fn new(config: OnfidoDoubleConfig) -> Self {
        Self {
            config,
            applicants: HashMap::new(),
            runs: HashMap::new(),
            next_seq: 0,
            tokens: Vec::new(),
            requests: VecDeque::new(),
            route_faults: HashMap::new(),
            webhook_fault: WebhookFault::None,
            read_lag: 0,
            window: VecDeque::new(),
            applicants_created: 0,
            runs_created: 0,
        }
    }

    /// Counts the request in the rolling minute, or says how long until it would fit.
    pub(super) fn admit(&mut self, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.config.rate_limit_per_minute else {
            return Ok(());
        };
        let minute = Duration::from_secs(60);
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= minute)
        {
            self.window.pop_front();
        }
        if self.window.len() >= limit as usize {
            let oldest = self.window.front().copied().unwrap_or(now);
            let wait = minute.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.window.push_back(now);
        Ok(())
    }

    pub(super) fn live_applicant(&self, id: &str) -> Option<&Applicant> {
        self.applicants.get(id).filter(|a| !a.deleted)
    }

    /// An applicant runs can be created for: not deleted, no deletion
    /// scheduled (assumption 2).
    pub(super) fn usable_applicant(&self, id: &str) -> Option<&Applicant> {
        self.live_applicant(id)
            .filter(|a| a.json["delete_at"].is_null())
    }

    /// An approved run enrolls the user when they hold no token; later approvals authenticate.
    pub(super) fn enroll(&mut self, run: &Run, now: OffsetDateTime) {
        let Some(user) = &run.customer_user_id else {
            return;
        };
        if self.tokens.iter().any(|t| &t.user_id == user && !t.deleted) {
            return;
        }
        self.tokens.push(BiometricToken {
            uuid: new_id(),
            user_id: user.clone(),
            inserted_at: ts(now),
            status: "approved".into(),
            visible_at: Instant::now() + self.config.biometric_token_delay,
            deleted: false,
        });
    }

    /// Keeps the request, dropping the oldest past [`RECORDED_REQUESTS`].
    pub(super) fn record(&mut self, request: RecordedRequest) {
        if self.requests.len() == RECORDED_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }

    /// Moves an open run via `processing` to `status`, fills its outcome,
    /// adds its `face_motion` task, starts the read lag in force and enrolls
    /// the user of an approved run. The run as it now is; a refusal is the
    /// control plane's answer.
    pub(super) fn complete(
        &mut self,
        run_id: &str,
        status: &str,
        now: OffsetDateTime,
    ) -> Result<Run, (StatusCode, String)> {
        if !TERMINAL_STATUSES.contains(&status) {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("status must be one of {}", TERMINAL_STATUSES.join(", ")),
            ));
        }
        let lag = self.read_lag;
        let run = self
            .runs
            .get_mut(run_id)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no run {run_id}")))?;
        if !OPEN_STATUSES.contains(&run.status.as_str()) {
            return Err((
                StatusCode::CONFLICT,
                format!("run {run_id} is already {}", run.status),
            ));
        }
        let before = run.to_json();
        // Via `processing`: the capture is being analysed…
        run.status = "processing".into();
        run.updated_at = now;
        // …then the outcome.
        finish(run, status, now);
        let task_id = format!("face_motion_{}", &new_id()[..5]);
        run.tasks.push(Task {
            id: task_id,
            task_def_id: "face_motion".into(),
            task_def_version: None,
            created_at: run.created_at,
            updated_at: now,
            input: json!({}),
            output: run.output.clone(),
        });
        run.lag = (lag > 0).then_some((before, lag));
        let run = run.clone();
        if status == "approved" {
            self.enroll(&run, now);
        }
        Ok(run)
    }
}

/// Fills a run's outcome (it was `processing`).
pub(super) fn finish(run: &mut Run, status: &str, now: OffsetDateTime) {
    run.status = status.into();
    run.updated_at = now;
    run.error = None;
    match status {
        "approved" => {
            run.output = json!({"face_match": "clear"});
            run.reasons = json!([]);
        }
        "declined" => {
            run.output = json!({"face_match": "consider"});
            run.reasons = json!(["face_comparison_failed"]);
        }
        "review" => {
            run.output = json!({"face_match": "consider"});
            run.reasons = json!(["manual_review_required"]);
        }
        "abandoned" => {
            run.output = Value::Null;
            run.reasons = json!([]);
        }
        _ => {
            run.output = Value::Null;
            run.reasons = json!([]);
            run.error = Some(RunError {
                kind: "workflow_error".into(),
                message: "The workflow run could not be completed.".into(),
            });
        }
    }
}
