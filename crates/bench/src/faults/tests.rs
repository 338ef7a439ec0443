use std::collections::BTreeMap;

use super::check::{CUT_OFF, count};
use super::database::{Database, FlowRow, judge, orphaned, stuck, waited};
use super::journal::Entry;
use crate::load::{self, Step};

fn entry(step: Step, path: &str, status: u16) -> Entry {
    Entry {
        sent: 1_000,
        done: 1_100,
        step: step.to_owned(),
        path: path.to_owned(),
        status,
        code: None,
        flow: None,
        state: None,
    }
}

fn flow(state: &str, possession_done: bool) -> FlowRow {
    FlowRow {
        flow_type: "sign_in".to_owned(),
        state: state.to_owned(),
        identity_status: "not_required".to_owned(),
        idv_run: None,
        possession_done,
        credential: None,
    }
}

#[test]
fn an_acknowledged_state_must_be_held_or_passed() {
    let mut created = entry(load::CREATE, "/api/core/v1/flows", 201);
    created.flow = Some("f1".into());
    created.state = Some("pending".into());
    let mut db = Database::default();
    let (lost, _) = judge(std::slice::from_ref(&created), &db);
    assert_eq!(lost.len(), 1, "{lost:?}");
    db.flows.insert("f1".into(), flow("completed", true));
    db.flow_events.insert(("flow.created".into(), "f1".into()));
    db.flow_events
        .insert(("flow.completed".into(), "f1".into()));
    let (lost, impossible) = judge(&[created], &db);
    assert!(lost.is_empty(), "{lost:?}");
    assert!(impossible.is_empty(), "{impossible:?}");
}

#[test]
fn acknowledged_possession_must_be_recorded() {
    let answered = entry(load::POSSESSION, "/api/core/v1/flows/f2/possession", 200);
    let mut db = Database::default();
    db.flows.insert("f2".into(), flow("pending", false));
    assert_eq!(judge(std::slice::from_ref(&answered), &db).0.len(), 1);
    db.flows.insert("f2".into(), flow("pending", true));
    assert!(judge(&[answered], &db).0.is_empty());
}

#[test]
fn a_failed_call_is_no_promise() {
    let refused = entry(load::POSSESSION, "/api/core/v1/flows/f3/possession", 503);
    assert!(judge(&[refused], &Database::default()).0.is_empty());
}

#[test]
fn calls_in_flight_at_a_kill_are_counted_apart() {
    let mut cut = entry(load::READ, "/api/core/v1/flows/f6", 502);
    cut.sent = 900;
    let mut later = entry(load::READ, "/api/core/v1/flows/f6", 502);
    later.sent = 2_200;
    let figures = count(&[cut, later], Some((1_000, 3_000)), true);
    assert_eq!(
        figures.errors,
        BTreeMap::from([
            (CUT_OFF.to_owned(), 1),
            ("502 without a code".to_owned(), 1)
        ])
    );
    assert_eq!(figures.breaches(false).len(), 1);
}

#[test]
fn a_flow_whose_run_was_approved_must_complete() {
    let approved = entry(load::COMPLETE_AT_PROVIDER, "run-7", 200);
    let mut db = Database::default();
    assert_eq!(stuck(std::slice::from_ref(&approved), &db).len(), 1);
    let mut waiting = flow("awaiting_verification", true);
    waiting.idv_run = Some("run-7".into());
    db.flows.insert("f7".into(), waiting.clone());
    assert_eq!(stuck(std::slice::from_ref(&approved), &db).len(), 1);
    db.flows.insert(
        "f7".into(),
        FlowRow {
            state: "completed".into(),
            ..waiting
        },
    );
    assert!(stuck(std::slice::from_ref(&approved), &db).is_empty());
    let refused = entry(load::COMPLETE_AT_PROVIDER, "run-8", 0);
    assert!(stuck(&[refused], &Database::default()).is_empty());
}

#[test]
fn flows_waiting_on_the_provider_are_timed_from_the_fault_end() {
    let mut approved = entry(load::COMPLETE_AT_PROVIDER, "run-11", 200);
    approved.sent = 1_500;
    let mut before = entry(load::COMPLETE_AT_PROVIDER, "run-12", 200);
    before.sent = 500;
    let mut read = entry(load::READ, "/api/core/v1/flows/f11", 200);
    read.state = Some("completed".into());
    read.done = 4_200;
    let mut db = Database::default();
    let mut row = flow("completed", true);
    row.idv_run = Some("run-11".into());
    db.flows.insert("f11".into(), row);
    let (runs, last) = waited(&[approved, before, read], &db, (1_000, 3_000));
    assert_eq!(runs, 1);
    assert!((last - 1.2).abs() < 1e-9, "{last}");
}

#[test]
fn a_run_of_the_scenario_no_flow_holds_is_orphaned() {
    let runs = [
        serde_json::json!({"id": "run-9", "created_at": "2026-12-07T02:00:10Z"}),
        serde_json::json!({"id": "run-10", "created_at": "2026-12-07T02:00:10Z"}),
        serde_json::json!({"id": "earlier", "created_at": "2026-12-07T01:00:00Z"}),
    ];
    let since = 1_796_608_805_000; // 2026-12-07T02:00:05Z
    let mut db = Database::default();
    let mut held = flow("failed", false);
    held.idv_run = Some("run-9".into());
    db.flows.insert("f9".into(), held);
    assert_eq!(
        orphaned(&runs, since, &db),
        ["run run-10 was created at the provider; no flow holds it"]
    );
}

#[test]
fn a_completion_without_possession_is_impossible() {
    let mut db = Database::default();
    db.flows.insert("f4".into(), flow("completed", false));
    assert_eq!(judge(&[], &db).1.len(), 1);
}

#[test]
fn failures_are_counted_by_code_and_timed_from_the_fault_end() {
    let mut unavailable = entry(load::CREATE, "/api/core/v1/flows", 503);
    unavailable.code = Some("service_unavailable".into());
    unavailable.done = 4_000;
    let mut refused = entry(load::READ, "/api/core/v1/flows/f5", 0);
    refused.done = 2_500;
    let ok = entry(load::READ, "/api/core/v1/flows/f5", 200);
    let figures = count(&[unavailable, refused, ok], Some((1_000, 3_000)), false);
    assert_eq!(figures.calls, 3);
    assert_eq!(
        figures.errors,
        BTreeMap::from([
            ("503 service_unavailable".to_owned(), 1),
            ("no_answer".to_owned(), 1)
        ])
    );
    assert!((figures.slowest_failure - 3.0).abs() < 1e-9);
    assert!((figures.recovered_after - 1.0).abs() < 1e-9);
    assert_eq!(
        figures.breaches(false),
        ["calls failed with no_answer, not 503 and a code"]
    );
}
