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

mod audit;
mod credentials;
mod overview;

on_both_stores!(
    flows_show_their_timeline,
    users_are_searched_with_cursor_pagination,
    operators_delete_users_and_the_provider_cleanup_is_queued,
    flows_are_listed_by_user_type_and_state,
    an_untouched_flow_past_its_expiry_reads_expired,
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
