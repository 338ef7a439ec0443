//! What the database holds after a scenario, judged against what the
//! journal says was acknowledged: lost writes, impossible flows, flows left
//! uncompleted and runs no flow holds.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::journal::Entry;
use crate::load;
use crate::services::connect;

/// After a provider outage, the failed flows whose run the provider may
/// hold are looked up by the reconciler (every 30 s, once
/// `BIOMETRIC_PASSKEY_IDV_RECONCILE_AFTER` has passed): the check waits
/// this long at most for every look-up to be done.
pub(super) const LOOKUPS_DONE_WITHIN: Duration = Duration::from_secs(90);

/// A flow as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlowRow {
    pub(crate) flow_type: String,
    pub(crate) state: String,
    pub(crate) identity_status: String,
    pub(crate) idv_run: Option<String>,
    pub(crate) possession_done: bool,
    pub(crate) credential: Option<String>,
}

/// What the database holds, as far as the check needs it.
#[derive(Debug, Default)]
pub(crate) struct Database {
    pub(crate) flows: HashMap<String, FlowRow>,
    /// Credentials by the flow that created them.
    pub(crate) credentials_by_flow: HashSet<String>,
    pub(crate) credentials: HashSet<String>,
    /// (event type, flow id) of every audit event about a flow.
    pub(crate) flow_events: HashSet<(String, String)>,
}

/// How far a flow has come; a terminal failure is as far as completion.
fn rank(state: &str) -> u8 {
    match state {
        "pending" => 0,
        "awaiting_verification" => 1,
        "verified" | "in_review" => 2,
        _ => 3,
    }
}

const FAILED_ENDS: [&str; 3] = ["failed", "expired", "cancelled"];

/// The writes of 2xx answers that the database does not hold, and the flows
/// in a state no sequence of calls leads to.
pub(crate) fn judge(entries: &[Entry], db: &Database) -> (Vec<String>, Vec<String>) {
    let mut lost = Vec::new();
    let runs: HashMap<&str, &str> = db
        .flows
        .iter()
        .filter_map(|(id, f)| f.idv_run.as_deref().map(|run| (run, id.as_str())))
        .collect();
    for entry in entries.iter().filter(|e| e.ok()) {
        let what = format!("{} {} ({})", entry.step, entry.path, entry.status);
        if let (Some(id), Some(state)) = (&entry.flow, &entry.state) {
            let Some(row) = db.flows.get(id) else {
                lost.push(format!("{what}: flow {id} is not in the database"));
                continue;
            };
            let kept = if state == "completed" || FAILED_ENDS.contains(&state.as_str()) {
                row.state == *state
            } else {
                rank(&row.state) >= rank(state)
            };
            if !kept {
                lost.push(format!(
                    "{what}: flow {id} was answered {state}, the database has {}",
                    row.state
                ));
            }
            if entry.step == load::CREATE
                && !db
                    .flow_events
                    .contains(&("flow.created".to_owned(), id.clone()))
            {
                lost.push(format!("{what}: no flow.created audit event for {id}"));
            }
            if state == "completed" {
                if !db
                    .flow_events
                    .contains(&("flow.completed".to_owned(), id.clone()))
                {
                    lost.push(format!("{what}: no flow.completed audit event for {id}"));
                }
                if matches!(row.flow_type.as_str(), "registration" | "recovery")
                    && !db.credentials_by_flow.contains(id)
                {
                    lost.push(format!("{what}: no credential created by flow {id}"));
                }
            }
        }
        if entry.step == load::POSSESSION
            && let Some(id) = entry.id_after("/flows/")
            && !db.flows.get(id).is_some_and(|f| f.possession_done)
        {
            lost.push(format!("{what}: possession of flow {id} is not recorded"));
        }
        if entry.step == load::OUTCOME
            && let Some(run) = entry.id_after("/runs/")
        {
            let settled = runs
                .get(run)
                .and_then(|id| db.flows.get(*id))
                .is_some_and(|f| {
                    f.identity_status == "verified" || FAILED_ENDS.contains(&f.state.as_str())
                });
            if !settled {
                lost.push(format!("{what}: the outcome of run {run} is not recorded"));
            }
        }
    }
    let mut impossible = Vec::new();
    for (id, f) in &db.flows {
        if f.state != "completed" {
            continue;
        }
        let mut wrong = Vec::new();
        if !f.possession_done {
            wrong.push("without possession");
        }
        if !matches!(f.identity_status.as_str(), "not_required" | "verified") {
            wrong.push("without a verified identity");
        }
        if matches!(f.flow_type.as_str(), "registration" | "recovery")
            && !f
                .credential
                .as_ref()
                .is_some_and(|c| db.credentials.contains(c))
        {
            wrong.push("without its credential");
        }
        if !wrong.is_empty() {
            impossible.push(format!(
                "{} flow {id} completed {}",
                f.flow_type,
                wrong.join(", ")
            ));
        }
    }
    impossible.sort();
    (lost, impossible)
}

/// The flows whose run the provider completed (the double's control
/// answered 2xx) that the database does not hold completed: a result the
/// product never applied, by webhook or reconciler.
pub(crate) fn stuck(entries: &[Entry], db: &Database) -> Vec<String> {
    let runs: HashMap<&str, (&str, &FlowRow)> = db
        .flows
        .iter()
        .filter_map(|(id, f)| f.idv_run.as_deref().map(|run| (run, (id.as_str(), f))))
        .collect();
    let mut stuck = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| e.step == load::COMPLETE_AT_PROVIDER && e.ok())
    {
        match runs.get(entry.path.as_str()) {
            Some((_, f)) if f.state == "completed" => {}
            Some((id, f)) => stuck.push(format!(
                "{} flow {id}: its run {} was approved, the flow is {}",
                f.flow_type, entry.path, f.state
            )),
            None => stuck.push(format!("run {} was approved; no flow holds it", entry.path)),
        }
    }
    stuck.sort();
    stuck
}

/// How many runs were completed at the provider during `fault`, and when
/// the last of their flows was first read completed, in seconds after the
/// fault's end (0 when all were before it).
pub(crate) fn waited(entries: &[Entry], db: &Database, (start, end): (u64, u64)) -> (usize, f64) {
    let flow_of: HashMap<&str, &str> = db
        .flows
        .iter()
        .filter_map(|(id, f)| f.idv_run.as_deref().map(|run| (run, id.as_str())))
        .collect();
    let mut completed: HashMap<&str, u64> = HashMap::new();
    for entry in entries
        .iter()
        .filter(|e| e.step == load::READ && e.state.as_deref() == Some("completed"))
    {
        if let Some(id) = entry.id_after("/flows/") {
            let first = completed.entry(id).or_insert(entry.done);
            *first = (*first).min(entry.done);
        }
    }
    let mut runs = 0;
    let mut last = 0.0_f64;
    for entry in entries.iter().filter(|e| {
        e.step == load::COMPLETE_AT_PROVIDER && e.ok() && (start..=end).contains(&e.sent)
    }) {
        runs += 1;
        if let Some(done) = flow_of
            .get(entry.path.as_str())
            .and_then(|id| completed.get(id))
        {
            last = last.max(done.saturating_sub(end) as f64 / 1000.0);
        }
    }
    (runs, last)
}

/// The runs of `double_runs` (`id`, `created_at`) created at or after
/// `since` (ms since the epoch) that no flow in the database holds.
pub(crate) fn orphaned(double_runs: &[Value], since: u64, db: &Database) -> Vec<String> {
    let known: HashSet<&str> = db
        .flows
        .values()
        .filter_map(|f| f.idv_run.as_deref())
        .collect();
    let since = (since / 1000) as i64;
    let mut orphaned: Vec<String> = double_runs
        .iter()
        .filter(|run| {
            run["created_at"]
                .as_str()
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .is_some_and(|t| t.unix_timestamp() >= since)
        })
        .filter_map(|run| run["id"].as_str())
        .filter(|id| !known.contains(id))
        .map(|id| format!("run {id} was created at the provider; no flow holds it"))
        .collect();
    orphaned.sort();
    orphaned
}

/// id, type, state, identity status, run, possession done, credential.
type FlowColumns = (
    String,
    String,
    String,
    String,
    Option<String>,
    bool,
    Option<String>,
);

pub(super) async fn read_database(database: &str) -> anyhow::Result<Database> {
    let mut conn = connect(database).await?;
    let mut db = Database::default();
    let flows: Vec<FlowColumns> = sqlx::query_as(
        "SELECT id::text, flow_type, state, identity_status, idv_run_id, possession_done, \
                    credential_id::text FROM flows",
    )
    .fetch_all(&mut conn)
    .await?;
    for (id, flow_type, state, identity_status, idv_run, possession_done, credential) in flows {
        db.flows.insert(
            id,
            FlowRow {
                flow_type,
                state,
                identity_status,
                idv_run,
                possession_done,
                credential,
            },
        );
    }
    let credentials: Vec<(String, String)> =
        sqlx::query_as("SELECT id::text, created_by_flow::text FROM credentials")
            .fetch_all(&mut conn)
            .await?;
    for (id, flow) in credentials {
        db.credentials.insert(id);
        db.credentials_by_flow.insert(flow);
    }
    db.flow_events = sqlx::query_as(
        "SELECT event_type, flow_id::text FROM audit_events WHERE flow_id IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await?
    .into_iter()
    .collect();
    Ok(db)
}

/// Waits until no flow waits for the look-up of a run its creation may have
/// made (or [`LOOKUPS_DONE_WITHIN`] has passed); how many still wait.
pub(super) async fn wait_for_run_lookups(database: &str) -> anyhow::Result<i64> {
    let mut conn = connect(database).await?;
    let started = Instant::now();
    loop {
        let (waiting,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM flows WHERE run_lookup_pending")
                .fetch_one(&mut conn)
                .await?;
        if waiting == 0 || started.elapsed() >= LOOKUPS_DONE_WITHIN {
            return Ok(waiting);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
