//! The audit trail searched and exported, and operators' reads and refusals
//! on the record.

use super::*;

on_both_stores!(
    the_audit_trail_can_be_searched_and_exported,
    operator_reads_and_refusals_are_on_the_record,
    a_large_export_streams_every_page_and_is_on_the_record,
);

async fn the_audit_trail_can_be_searched_and_exported(store: Store) {
    let s = setup(store).await;
    s.core.enrolled("cleo", "cleo-phone").await;
    s.core.enrolled("dora", "dora-phone").await;
    let (status, _) = s
        .get("management.users.read", "/api/management/v1/audit")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Each search is put on the record after it is read: the pages see the
    // trail as it was before them.
    let total = s.core.audit_trail().await.len();

    let mut seen = 0;
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/management/v1/audit?limit=5&before={b}"),
            None => "/api/management/v1/audit?limit=5".to_owned(),
        };
        let (status, page) = s.get("management.audit.read", &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen += page["events"].as_array().unwrap().len();
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, total);

    let (status, page) = s
        .get(
            "management.audit.read",
            "/api/management/v1/audit?type=credential.registered",
        )
        .await;
    assert_eq!(
        (status, page["events"].as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
    s.get_refused(
        "management.audit.read",
        "/api/management/v1/audit?type=nonsense",
        "invalid_parameter",
    )
    .await;
    s.get_refused(
        "management.audit.read",
        "/api/management/v1/audit?from=yesterday",
        "invalid_parameter",
    )
    .await;

    let total = s.core.audit_trail().await.len();
    let token = s.token("management.audit.read");
    let response = s
        .management
        .client
        .get(s.management.url("/api/management/v1/audit/export"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), total);
    assert!(
        lines
            .iter()
            .all(|e| e["seq"].is_i64() && e["type"].is_string())
    );
}

async fn operator_reads_and_refusals_are_on_the_record(store: Store) {
    let s = setup(store).await;
    let enrolled = s.core.enrolled("cleo", "cleo-phone").await;
    let flow_id = enrolled["id"].as_str().unwrap();
    let reads = [
        "/api/management/v1/users/cleo",
        "/api/management/v1/users?prefix=cl",
        "/api/management/v1/flows?external_user_id=cleo",
        &format!("/api/management/v1/flows/{flow_id}"),
        "/api/management/v1/audit?type=flow.completed",
    ];
    for path in reads {
        let (status, body) = s.get(ALL, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let events = operator_events(&s.core).await;
    let read: Vec<(&str, &Value)> = events
        .iter()
        .map(|e| (e.details["read"].as_str().unwrap(), &e.details))
        .collect();
    assert_eq!(
        read.iter().map(|(what, _)| *what).collect::<Vec<_>>(),
        ["user", "users", "flows", "flow", "audit"]
    );
    for e in &events {
        assert_eq!(e.event_type.as_str(), "operator.read");
        assert_eq!(e.actor.id(), Some("support-agent-9"));
    }
    assert!(
        events[0].subject.user_pseudonym.is_some(),
        "the user, by pseudonym"
    );
    assert_eq!(read[1].1["filters"]["prefix_length"], 2);
    assert_eq!(read[1].1["rows"], 1);
    assert_eq!(read[2].1["rows"], 1);
    assert_eq!(
        events[3].subject.flow_id.map(|f| f.to_string()).as_deref(),
        Some(flow_id)
    );
    assert_eq!(read[4].1["filters"]["type"], "flow.completed");
    assert_eq!(read[4].1["rows"], 1);
    let trail =
        serde_json::to_string(&events.iter().map(|e| &e.details).collect::<Vec<_>>()).unwrap();
    assert!(
        !trail.contains("cleo"),
        "no customer identifier on the record: {trail}"
    );

    // A call the operator's scopes do not allow is refused and recorded.
    let (status, _) = s
        .get("management.flows.read", "/api/management/v1/users/cleo")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let refused = operator_events(&s.core).await.pop().unwrap();
    assert_eq!(refused.event_type.as_str(), "operator.refused");
    assert_eq!(refused.reason.as_deref(), Some("missing_scope"));
    assert_eq!(
        refused.details,
        json!({ "method": "GET", "route": "/api/management/v1/users/{external_user_id}" })
    );
}

async fn a_large_export_streams_every_page_and_is_on_the_record(store: Store) {
    let s = setup(store).await;
    // More events than three pages of the export hold.
    let template = domain::NewAuditEvent::new(
        domain::AuditEventType::FlowExpired,
        domain::Actor::System,
        domain::Subject::default(),
        T0,
    );
    for _ in 0..3_100 {
        let event = domain::NewAuditEvent {
            id: uuid::Uuid::now_v7(),
            ..template.clone()
        };
        s.core.repo.append_audit(&event).await.unwrap();
    }
    let token = s.token("management.audit.read");
    let response = s
        .management
        .client
        .get(
            s.management
                .url("/api/management/v1/audit/export?type=flow.expired"),
        )
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    let seqs: Vec<i64> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs.len(), 3_100);
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    let recorded = operator_events(&s.core).await.pop().unwrap();
    assert_eq!(recorded.details["read"], "audit_export");
    assert_eq!(recorded.details["rows"], 3_100);
    assert_eq!(recorded.details["complete"], true);
    assert_eq!(recorded.details["filters"]["type"], "flow.expired");
}
