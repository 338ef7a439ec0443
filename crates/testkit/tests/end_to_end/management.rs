//! The Management API's routes over real HTTP, next to a Core API on the same
//! database: each allowed with its scope, refused without it, and every
//! change audited with the operator's `sub`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::core_client::expect_error;
use testkit::jwks_double::{JwksDouble, SigningKey};
use testkit::{
    Store, T0, TestApp, management_config, on_both_stores, spawn_core, spawn_management_for,
};

on_both_stores!(
    operator_reads_and_refusals_are_on_the_record,
    a_large_export_streams_every_page_and_is_on_the_record,
    credential_lifecycle_actions_are_scoped_and_audited,
    flows_show_their_timeline,
    the_audit_trail_can_be_searched_and_exported,
    users_are_searched_with_cursor_pagination,
    operators_delete_users_and_the_provider_cleanup_is_queued,
    flows_are_listed_by_user_type_and_state,
    an_untouched_flow_past_its_expiry_reads_expired,
    the_overview_counts_real_flows_and_refusals,
    the_overview_needs_audit_read_and_a_bounded_period,
    passkeys_are_named_from_the_operators_authenticator_metadata,
);

const ISSUER: &str = "http://127.0.0.1:9/issuer";
const ALL: &str = "management.users.read management.credentials.read management.credentials.suspend \
    management.credentials.activate management.credentials.revoke management.flows.read management.audit.read";

struct Setup {
    core: TestApp,
    management: TestApp,
    key: SigningKey,
    _jwks: JwksDouble,
}

async fn setup(store: Store) -> Setup {
    let core = spawn_core(store).await;
    let key = SigningKey::generate("k1");
    let jwks = JwksDouble::start(&[&key]).await;
    let mut config = management_config();
    config.auth.issuer = ISSUER.into();
    config.auth.jwks_url = jwks.url.clone();
    let management = spawn_management_for(&core, config).await;
    Setup {
        core,
        management,
        key,
        _jwks: jwks,
    }
}

impl Setup {
    fn token(&self, scopes: &str) -> String {
        let now = T0.unix_timestamp();
        self.key.sign(&json!({
            "iss": ISSUER, "aud": "biometric-passkey-management-api", "sub": "support-agent-9",
            "iat": now, "exp": now + 3600, "scope": scopes,
        }))
    }

    async fn get(&self, scopes: &str, path: &str) -> (StatusCode, Value) {
        let token = self.token(scopes);
        self.management
            .send(
                self.management
                    .client
                    .get(self.management.url(path))
                    .bearer_auth(token),
            )
            .await
    }

    /// A GET the Management API must refuse as a client mistake with `code`.
    async fn get_refused(&self, scopes: &str, path: &str, code: &str) {
        let (status, body) = self.get(scopes, path).await;
        expect_error(status, &body, StatusCode::BAD_REQUEST, code);
    }

    async fn post(&self, scopes: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let token = self.token(scopes);
        self.management
            .send(
                self.management
                    .client
                    .post(self.management.url(path))
                    .bearer_auth(token)
                    .json(&body),
            )
            .await
    }
}

async fn credential_lifecycle_actions_are_scoped_and_audited(store: Store) {
    let s = setup(store).await;
    s.core.enrolled("alice", "alice-phone").await;
    let id = reads_need_their_own_scope(&s).await;
    let reason = json!({ "reason": "reported stolen" });
    each_action_needs_its_own_scope(&s, &id, &reason).await;
    a_suspended_credential_is_activated_again(&s, &id, &reason).await;
    a_revoked_credential_stays_revoked(&s, &id, reason).await;
    credential_actions_are_audited_with_the_operator(&s).await;
}

fn credential_action(id: &str, action: &str) -> String {
    format!("/api/management/v1/credentials/{id}/{action}")
}

/// The user and the credential read with their scopes, and not with
/// another's; the user's view holds no reference material. Gives the id of
/// alice's credential.
async fn reads_need_their_own_scope(s: &Setup) -> String {
    let (status, user) = s
        .get("management.users.read", "/api/management/v1/users/alice")
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["has_biometric_reference"], true);
    assert!(
        !user.to_string().contains("encrypted-biometric-token"),
        "no reference material"
    );
    let (status, _) = s
        .get("management.flows.read", "/api/management/v1/users/alice")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let id = user["credentials"][0]["id"].as_str().unwrap().to_owned();

    let (status, credential) = s
        .get(
            "management.credentials.read",
            &format!("/api/management/v1/credentials/{id}"),
        )
        .await;
    assert_eq!(
        (status, credential["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    let (status, _) = s
        .get(
            "management.users.read",
            &format!("/api/management/v1/credentials/{id}"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    id
}

async fn each_action_needs_its_own_scope(s: &Setup, id: &str, reason: &Value) {
    for (action, scope) in [
        ("suspend", "management.credentials.suspend"),
        ("activate", "management.credentials.activate"),
        ("revoke", "management.credentials.revoke"),
    ] {
        let (status, body) = s
            .post(
                ALL.replace(scope, "").as_str(),
                &credential_action(id, action),
                reason.clone(),
            )
            .await;
        expect_error(status, &body, StatusCode::FORBIDDEN, "missing_scope");
        assert!(body["error"]["message"].as_str().unwrap().contains(scope));
    }
}

/// Suspended once (not twice), the credential no longer starts a step-up;
/// activated, it is active again.
async fn a_suspended_credential_is_activated_again(s: &Setup, id: &str, reason: &Value) {
    let (status, suspended) = s
        .post(
            "management.credentials.suspend",
            &credential_action(id, "suspend"),
            reason.clone(),
        )
        .await;
    assert_eq!(
        (status, suspended["status"].as_str()),
        (StatusCode::OK, Some("suspended"))
    );
    let (status, body) = s
        .post(
            "management.credentials.suspend",
            &credential_action(id, "suspend"),
            reason.clone(),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "credential_transition_not_allowed",
    );
    // The Core API now refuses to start a step-up: the user's only credential is suspended.
    let (status, body) = s.core.create_flow("step_up", "alice").await;
    expect_error(status, &body, StatusCode::CONFLICT, "no_active_credential");

    let (status, active) = s
        .post(
            "management.credentials.activate",
            &credential_action(id, "activate"),
            reason.clone(),
        )
        .await;
    assert_eq!(
        (status, active["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
}

/// Revoked with its reason, the credential cannot be activated; a blank
/// reason and a malformed id are client mistakes.
async fn a_revoked_credential_stays_revoked(s: &Setup, id: &str, reason: Value) {
    let (status, revoked) = s
        .post(
            "management.credentials.revoke",
            &credential_action(id, "revoke"),
            json!({ "reason": "device replaced" }),
        )
        .await;
    assert_eq!(
        (status, revoked["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    assert_eq!(revoked["status_reason"], "device replaced");
    let (status, body) = s
        .post(
            "management.credentials.activate",
            &credential_action(id, "activate"),
            reason.clone(),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "credential_transition_not_allowed",
    );
    let (status, body) = s
        .post(
            "management.credentials.revoke",
            &credential_action(id, "revoke"),
            json!({ "reason": " " }),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_body",
    );
    let (status, body) = s
        .post(
            "management.credentials.revoke",
            "/api/management/v1/credentials/not-a-uuid/revoke",
            reason,
        )
        .await;
    expect_error(status, &body, StatusCode::BAD_REQUEST, "invalid_parameter");
}

async fn credential_actions_are_audited_with_the_operator(s: &Setup) {
    let actions: Vec<(String, Option<String>, Option<String>)> = s
        .core
        .audit_trail()
        .await
        .into_iter()
        .rev()
        .filter(|e| {
            e.actor.kind() == "operator" && e.event_type.as_str().starts_with("credential.")
        })
        .map(|e| {
            (
                e.event_type.as_str().to_owned(),
                e.actor.id().map(str::to_owned),
                e.reason,
            )
        })
        .collect();
    let by_agent = |t: &str, r: &str| {
        (
            t.to_owned(),
            Some("support-agent-9".to_owned()),
            Some(r.to_owned()),
        )
    };
    assert_eq!(
        actions,
        [
            by_agent("credential.suspended", "reported stolen"),
            by_agent("credential.activated", "reported stolen"),
            by_agent("credential.revoked", "device replaced"),
        ]
    );
}

async fn flows_show_their_timeline(store: Store) {
    let s = setup(store).await;
    let done = s.core.enrolled("bea", "bea-phone").await;
    let path = format!("/api/management/v1/flows/{}", done["id"].as_str().unwrap());
    let (status, _) = s.get("management.users.read", &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, detail) = s.get("management.flows.read", &path).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["flow"]["state"], "completed");
    assert_eq!(detail["external_user_id"], "bea");
    let timeline: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(timeline.first(), Some(&"flow.created"));
    assert_eq!(timeline.last(), Some(&"flow.completed"));
    let (status, body) = s
        .get(
            "management.flows.read",
            "/api/management/v1/flows/0190c7a4-0000-7000-8000-000000000000",
        )
        .await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "flow_not_found");
}

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

async fn users_are_searched_with_cursor_pagination(store: Store) {
    let s = setup(store).await;
    for user in ["acme-1", "acme-2", "acme-3", "other"] {
        s.core
            .created(json!({ "type": "registration", "external_user_id": user }))
            .await;
    }
    let (status, _) = s
        .get("management.audit.read", "/api/management/v1/users")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page) = s
        .get(
            "management.users.read",
            "/api/management/v1/users?prefix=acme&limit=2",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["external_user_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), ["acme-1", "acme-2"]);
    let next = page["next_after"].as_str().unwrap();
    let (_, rest) = s
        .get(
            "management.users.read",
            &format!("/api/management/v1/users?prefix=acme&limit=2&after={next}"),
        )
        .await;
    assert_eq!(ids(&rest), ["acme-3"]);
    assert!(rest["next_after"].is_null());
    let (_, by_date) = s
        .get(
            "management.users.read",
            "/api/management/v1/users?created_from=2026-01-01T00:00:00Z&limit=3",
        )
        .await;
    assert_eq!(by_date["users"].as_array().unwrap().len(), 3);
    let cursor = by_date["next_after"].as_str().unwrap().to_owned();
    assert!(
        cursor.starts_with("t:"),
        "creation order for date-only searches"
    );
    let path = format!(
        "/api/management/v1/users?created_from=2026-01-01T00:00:00Z&limit=3&after={cursor}"
    );
    let (status, rest) = s.get("management.users.read", &path).await;
    assert_eq!(
        (status, rest["users"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    s.get_refused(
        "management.users.read",
        "/api/management/v1/users?credential_status=lost",
        "invalid_parameter",
    )
    .await;
    let (status, none) = s
        .get(
            "management.users.read",
            "/api/management/v1/users?credential_status=suspended",
        )
        .await;
    assert_eq!(
        (status, none["users"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    s.get_refused(
        "management.users.read",
        "/api/management/v1/users?after=garbage",
        "invalid_parameter",
    )
    .await;
    s.get_refused(
        "management.users.read",
        "/api/management/v1/users?prefix=a%20b",
        "invalid_external_user_id",
    )
    .await;
    s.get_refused(
        "management.users.read",
        "/api/management/v1/users?surprise=1",
        "invalid_parameter",
    )
    .await;
}

async fn operators_delete_users_and_the_provider_cleanup_is_queued(store: Store) {
    let s = setup(store).await;
    s.core.enrolled("erin", "erin-phone").await;
    let delete = |scopes: &str| {
        let token = s.token(scopes);
        let management = &s.management;
        async move {
            management
                .send(
                    management
                        .client
                        .delete(management.url("/api/management/v1/users/erin"))
                        .bearer_auth(token),
                )
                .await
        }
    };
    let (status, body) = delete("management.users.read").await;
    expect_error(status, &body, StatusCode::FORBIDDEN, "missing_scope");
    let (status, _) = delete("management.users.delete").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = delete("management.users.delete").await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "user_not_found");
    let (status, _) = s.core.get_json("/api/core/v1/users/erin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let trail = s.core.audit_trail().await;
    let deleted = &trail[0];
    assert_eq!(deleted.event_type.as_str(), "user.deleted");
    assert_eq!(deleted.actor.id(), Some("support-agent-9"));
    let queued = s.core.repo.pending_provider_cleanups(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        Some(&queued[0].customer_user_id),
        deleted.subject.user_pseudonym.as_ref()
    );
    // Operators see the queue, with each item's attempts and whether it is dead.
    let cleanups = "/api/management/v1/provider-cleanups";
    let (status, body) = s.get("management.flows.read", cleanups).await;
    expect_error(status, &body, StatusCode::FORBIDDEN, "missing_scope");
    let (status, body) = s.get("management.users.read", cleanups).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], queued[0].user_id.0.to_string());
    assert_eq!(items[0]["attempts"], 0);
    assert_eq!(items[0]["dead"], false);
    assert!(
        !body.to_string().contains("erin"),
        "no customer identifier: {body}"
    );
    let read = operator_events(&s.core).await.pop().unwrap();
    assert_eq!(
        (
            read.event_type.as_str(),
            &read.details["read"],
            &read.details["rows"]
        ),
        ("operator.read", &json!("provider_cleanups"), &json!(1)),
        "the read is on the record"
    );
    // The Core API's pass has the (synthetic) provider forget the user.
    assert_eq!(
        s.core
            .flows
            .clone()
            .unwrap()
            .process_provider_cleanups(10)
            .await
            .unwrap()
            .forgotten,
        1
    );
    assert!(
        s.core
            .repo
            .pending_provider_cleanups(10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn flows_are_listed_by_user_type_and_state(store: Store) {
    let s = setup(store).await;
    s.core.enrolled("finn", "finn-phone").await;
    s.core.clock.advance(time::Duration::minutes(1));
    let step_up = s
        .core
        .created(json!({ "type": "step_up", "external_user_id": "finn" }))
        .await;
    s.core.outcome(&step_up, "declined").await;
    let (status, _) = s
        .get(
            "management.users.read",
            "/api/management/v1/flows?external_user_id=finn",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, all) = s
        .get(
            "management.flows.read",
            "/api/management/v1/flows?external_user_id=finn",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let types: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["step_up", "registration"], "newest first");
    let (_, failed) = s
        .get(
            "management.flows.read",
            "/api/management/v1/flows?external_user_id=finn&state=failed",
        )
        .await;
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["failure_reason"], "idv_declined");
    let (status, body) = s
        .get(
            "management.flows.read",
            "/api/management/v1/flows?external_user_id=nobody",
        )
        .await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "user_not_found");
    for filter in ["state=finished", "type=login"] {
        let (status, body) = s
            .get(
                "management.flows.read",
                &format!("/api/management/v1/flows?external_user_id=finn&{filter}"),
            )
            .await;
        expect_error(status, &body, StatusCode::BAD_REQUEST, "invalid_parameter");
    }
}

/// Expiry is settled lazily by the Core API, on the next call that touches a
/// flow; operators see a flow nobody touched after its expiry as expired
/// all the same, in the list, its filter and the flow's own page.
async fn an_untouched_flow_past_its_expiry_reads_expired(store: Store) {
    let s = setup(store).await;
    s.core.enrolled("gail", "gail-phone").await;
    s.core.clock.advance(time::Duration::minutes(1));
    let sign_in = s
        .core
        .created(json!({ "type": "sign_in", "external_user_id": "gail" }))
        .await;
    let id = sign_in["id"].as_str().unwrap().to_owned();
    let list = "/api/management/v1/flows?external_user_id=gail";
    let (_, open) = s.get("management.flows.read", list).await;
    let former = open[0]["state"].as_str().unwrap().to_owned();
    assert_ne!(former, "expired", "{open}");
    let by_former = format!("{list}&state={former}");
    let (_, listed) = s.get("management.flows.read", &by_former).await;
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    let (_, expired) = s
        .get("management.flows.read", &format!("{list}&state=expired"))
        .await;
    assert_eq!(expired, json!([]));
    // Past the flow's 15 minutes, within the operator's token's hour.
    s.core.clock.advance(time::Duration::minutes(20));
    let (status, flows) = s.get("management.flows.read", list).await;
    assert_eq!(status, StatusCode::OK, "{flows}");
    assert_eq!(flows[0]["id"], id.as_str());
    assert_eq!(flows[0]["state"], "expired");
    let (_, expired) = s
        .get("management.flows.read", &format!("{list}&state=expired"))
        .await;
    assert_eq!(expired.as_array().unwrap().len(), 1, "{expired}");
    assert_eq!(expired[0]["id"], id.as_str());
    assert_eq!(expired[0]["state"], "expired");
    let (_, listed) = s.get("management.flows.read", &by_former).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != id.as_str()),
        "an expired flow is not listed as {former}: {listed}"
    );
    let (_, sign_ins) = s
        .get(
            "management.flows.read",
            &format!("{list}&type=sign_in&state=expired&limit=1"),
        )
        .await;
    assert_eq!(sign_ins[0]["id"], id.as_str(), "{sign_ins}");
    let (_, detail) = s
        .get(
            "management.flows.read",
            &format!("/api/management/v1/flows/{id}"),
        )
        .await;
    assert_eq!(detail["flow"]["state"], "expired", "{detail}");
    let (_, user) = s
        .get("management.users.read", "/api/management/v1/users/gail")
        .await;
    let listed = user["recent_flows"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|f| f["id"] == id.as_str() && f["state"] == "expired"),
        "{user}"
    );
}

/// The trail's `operator.*` events, oldest first.
async fn operator_events(app: &TestApp) -> Vec<domain::NewAuditEvent> {
    let mut events: Vec<_> = app
        .audit_trail()
        .await
        .into_iter()
        .filter(|e| e.event_type.as_str().starts_with("operator."))
        .collect();
    events.reverse();
    events
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

/// The overview's counts, keyed for comparison: flows as
/// `(bucket_start, type, state) → count`, events as
/// `(bucket_start, type, outcome, reason) → count`.
type FlowCounts = std::collections::BTreeMap<(String, String, String), u64>;
type EventCounts = std::collections::BTreeMap<(String, String, String, String), u64>;

fn overview_counts(body: &Value) -> (FlowCounts, EventCounts) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let flows = body["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                (
                    text(&c["bucket_start"]),
                    text(&c["type"]),
                    text(&c["state"]),
                ),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let events = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                (
                    text(&c["bucket_start"]),
                    text(&c["type"]),
                    text(&c["outcome"]),
                    text(&c["reason"]),
                ),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    (flows, events)
}

async fn the_overview_counts_real_flows_and_refusals(store: Store) {
    let s = setup(store).await;
    flows_and_refusals_to_count(&s).await;
    let from = (T0 - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let to = (T0 + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let hours = counted_by_hour(&s, &from, &to).await;
    counted_by_day(&s, &from, &to, &hours).await;
    each_overview_read_is_on_the_record(&s, &hours).await;
}

/// Two registrations, an identity proof declined, a counter regression
/// refused, and an operator's suspension.
async fn flows_and_refusals_to_count(s: &Setup) {
    s.core.enrolled("ana", "ana-phone").await;
    s.core.enrolled("ben", "ben-phone").await;
    // An identity proof declined.
    let declined = s
        .core
        .created(json!({ "type": "step_up", "external_user_id": "ana" }))
        .await;
    s.core.outcome(&declined, "declined").await;
    // A passkey reporting a counter that did not grow is refused.
    let first = s
        .core
        .created(json!({ "type": "sign_in", "external_user_id": "ana" }))
        .await;
    assert_eq!(
        s.core.assert_with(&first, "ana-phone", 5).await.0,
        StatusCode::OK
    );
    let second = s
        .core
        .created(json!({ "type": "sign_in", "external_user_id": "ana" }))
        .await;
    let (status, body) = s.core.assert_with(&second, "ana-phone", 4).await;
    expect_error(status, &body, StatusCode::CONFLICT, "counter_regression");
    // The fraud team suspends ben's passkey.
    let (_, ben) = s
        .get("management.users.read", "/api/management/v1/users/ben")
        .await;
    let credential = ben["credentials"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .post(
            "management.credentials.suspend",
            &format!("/api/management/v1/credentials/{credential}/suspend"),
            json!({ "reason": "reported stolen" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// By hour: each flow type and state, each event with its outcome and
/// reason, and no operator's words.
async fn counted_by_hour(s: &Setup, from: &str, to: &str) -> Value {
    let (status, hours) = s
        .get(
            "management.audit.read",
            &format!("/api/management/v1/overview?from={from}&to={to}&bucket=hour"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hours}");
    assert_eq!(hours["bucket"], "hour");
    let (flows, events) = overview_counts(&hours);
    let hour = "2026-06-01T09:00:00Z".to_owned();
    let flow = |t: &str, st: &str| (hour.clone(), t.to_owned(), st.to_owned());
    assert_eq!(
        flows,
        [
            (flow("registration", "completed"), 2),
            (flow("sign_in", "completed"), 1),
            (flow("sign_in", "verified"), 1),
            (flow("step_up", "failed"), 1),
        ]
        .into_iter()
        .collect()
    );
    let event = |t: &str, outcome: &str, reason: &str| {
        events
            .get(&(
                hour.clone(),
                t.to_owned(),
                outcome.to_owned(),
                reason.to_owned(),
            ))
            .copied()
    };
    assert_eq!(event("flow.failed", "failure", "idv_declined"), Some(1));
    assert_eq!(
        event(
            "credential.counter_regression",
            "rejected",
            "counter_regression"
        ),
        Some(1)
    );
    assert_eq!(
        event("credential.suspended", "success", ""),
        Some(1),
        "{events:?}"
    );
    assert!(
        !hours.to_string().contains("reported stolen"),
        "an operator's words are not counted"
    );
    hours
}

/// By day: the same counts in one bucket starting at midnight UTC.
async fn counted_by_day(s: &Setup, from: &str, to: &str, hours: &Value) {
    let (status, days) = s
        .get(
            "management.audit.read",
            &format!("/api/management/v1/overview?from={from}&to={to}&bucket=day"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{days}");
    let (flows, events) = overview_counts(hours);
    let (day_flows, day_events) = overview_counts(&days);
    assert!(day_flows.keys().all(|k| k.0 == "2026-06-01T00:00:00Z"));
    assert_eq!(day_flows.values().sum::<u64>(), flows.values().sum::<u64>());
    assert_eq!(
        day_events.values().sum::<u64>(),
        events.values().sum::<u64>()
    );
}

async fn each_overview_read_is_on_the_record(s: &Setup, hours: &Value) {
    let reads: Vec<_> = operator_events(&s.core)
        .await
        .into_iter()
        .filter(|e| e.details["read"] == "overview")
        .collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0].actor.id(), Some("support-agent-9"));
    assert_eq!(reads[0].details["filters"]["bucket"], "hour");
    assert_eq!(
        reads[0].details["rows"],
        hours["flows"].as_array().unwrap().len() + hours["events"].as_array().unwrap().len()
    );
}

async fn the_overview_needs_audit_read_and_a_bounded_period(store: Store) {
    let s = setup(store).await;
    let ok = "/api/management/v1/overview?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z";
    let (status, body) = s
        .get(ALL.replace("management.audit.read", "").as_str(), ok)
        .await;
    expect_error(status, &body, StatusCode::FORBIDDEN, "missing_scope");
    let (status, body) = s.get("management.audit.read", ok).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bucket"], "hour", "hours unless asked otherwise");
    assert_eq!(body["flows"], json!([]));

    let overview = |query: &str| format!("/api/management/v1/overview?{query}");
    for (query, code) in [
        // A month of 31 days is the longest period.
        (
            "from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:01Z&bucket=day",
            "overview_period_too_long",
        ),
        (
            "from=2026-06-02T00:00:00Z&to=2026-06-01T00:00:00Z",
            "invalid_parameter",
        ),
        (
            "from=2026-06-01T00:00:00Z&to=2026-06-01T00:00:00Z",
            "invalid_parameter",
        ),
        (
            "from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&bucket=week",
            "invalid_parameter",
        ),
        ("from=2026-06-01T00:00:00Z", "invalid_parameter"),
        (
            "from=yesterday&to=2026-06-02T00:00:00Z",
            "invalid_parameter",
        ),
    ] {
        s.get_refused("management.audit.read", &overview(query), code)
            .await;
    }
    let (status, _) = s
        .get(
            "management.audit.read",
            &overview("from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z&bucket=hour"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "31 days of hours");
}

/// The AAGUID the test client registers with.
const TEST_AAGUID: &str = "08987058-cadc-4b81-b6e1-30de50dcbe96";

async fn passkeys_are_named_from_the_operators_authenticator_metadata(store: Store) {
    let core = spawn_core(store).await;
    core.enrolled("nora", "nora-phone").await;
    let key = SigningKey::generate("k1");
    let jwks = JwksDouble::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("aaguids.json");
    std::fs::write(
        &list,
        json!({
            TEST_AAGUID: { "name": "Windows Hello", "icon_light": "data:image/svg+xml;base64,AA==" },
            "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": { "name": "iCloud Keychain" },
        })
        .to_string(),
    )
    .unwrap();
    let mut config = management_config();
    config.auth.issuer = ISSUER.into();
    config.auth.jwks_url = jwks.url.clone();
    config.metadata_file = Some(list);
    let s = Setup {
        management: spawn_management_for(&core, config.clone()).await,
        core,
        key,
        _jwks: jwks,
    };

    let (status, user) = s
        .get("management.users.read", "/api/management/v1/users/nora")
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let credential = &user["credentials"][0];
    assert_eq!(credential["aaguid"], TEST_AAGUID);
    assert_eq!(credential["authenticator"], "Windows Hello");
    let id = credential["id"].as_str().unwrap();
    let (status, detail) = s
        .get(
            "management.credentials.read",
            &format!("/api/management/v1/credentials/{id}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["authenticator"], "Windows Hello");

    // Without metadata, or for an AAGUID the metadata does not name: null.
    config.metadata_file = None;
    let plain = spawn_management_for(&s.core, config.clone()).await;
    let (status, detail) = plain
        .send(
            plain
                .client
                .get(plain.url(&format!("/api/management/v1/credentials/{id}")))
                .bearer_auth(s.token("management.credentials.read")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["authenticator"], Value::Null);
    assert!(detail.as_object().unwrap().contains_key("authenticator"));

    // A BLOB that does not chain to the FIDO Alliance root: the runtime does
    // not start, and says which setting and why.
    let blob = dir.path().join("blob.jwt");
    std::fs::write(&blob, self_signed_blob()).unwrap();
    config.metadata_file = Some(blob);
    let Err(err) = server::app::management_router_with_clock(
        &config,
        s.core.repo.clone(),
        "management",
        s.core.clock.clone(),
    ) else {
        panic!("a BLOB outside the FIDO chain is refused");
    };
    let message = err.to_string();
    assert!(
        message.contains("BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE")
            && message.contains("does not verify to the FIDO Alliance root certificate"),
        "{message}"
    );
}

/// A well-formed BLOB signed by a self-signed certificate's key.
fn self_signed_blob() -> String {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mds.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![
        base64::engine::general_purpose::STANDARD.encode(cert.der()),
    ]);
    let claims = json!({ "no": 1, "nextUpdate": "2999-01-01", "entries": [] });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
    )
    .unwrap()
}
