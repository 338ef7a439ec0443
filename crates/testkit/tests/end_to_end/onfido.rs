//! `onfido` mode end to end, against the provider's HTTP test double: every
//! flow type, provider outages and rate limits, and the webhook's defences.

use core_api::refusals::{DEFAULT_WEBHOOK_REFUSALS, RefusalLimits};
use domain::{AuditEventType, AuditQuery};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::core_client::expect_error;
use testkit::onfido_double::{
    DeliveryOutcome, Fault, OnfidoDouble, OnfidoDoubleConfig, Route, WebhookFault, sign,
};
use testkit::{
    OnfidoOptions, Store, TestApp, on_both_stores, spawn_core_onfido, spawn_core_onfido_rotating,
    spawn_core_onfido_with,
};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

mod outages;
mod webhooks;

const WEBHOOK_PATH: &str = "/api/public/v1/providers/onfido/webhooks";

on_both_stores!(
    registration_step_up_and_recovery_run_against_the_provider,
    the_provider_never_sees_the_customers_identifier,
    a_user_past_the_run_limit_is_refused_before_the_provider_is_asked,
    an_applicant_gone_at_the_provider_is_replaced_on_the_next_step_up,
    a_run_approved_at_creation_verifies_its_flow,
    deleting_a_user_forgets_them_at_the_provider,
);

struct Setup {
    double: OnfidoDouble,
    app: TestApp,
    config: OnfidoDoubleConfig,
}

async fn setup(store: Store) -> Setup {
    setup_with(store, OnfidoDoubleConfig::default()).await
}

async fn setup_with(store: Store, config: OnfidoDoubleConfig) -> Setup {
    let double = OnfidoDouble::start(config.clone()).await;
    let app = spawn_core_onfido(
        store,
        &double.base_url(),
        &config.api_token,
        &config.webhook_token,
    )
    .await;
    double.set_webhook_url(app.url(WEBHOOK_PATH));
    Setup {
        double,
        app,
        config,
    }
}

fn id(flow: &Value) -> &str {
    flow["id"].as_str().unwrap()
}

fn run_id(flow: &Value) -> &str {
    flow["identity"]["workflow_run_id"].as_str().unwrap()
}

async fn complete(s: &Setup, flow: &Value, status: &str) -> Vec<DeliveryOutcome> {
    s.double.complete_run(run_id(flow), status).await
}

async fn registered(s: &Setup, user: &str, credential: &str) -> Value {
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": user }))
        .await;
    s.app
        .store_reference(&flow, b"encrypted-biometric-token")
        .await;
    let (status, body) = s.app.register_credential(&flow, credential).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        complete(s, &flow, "approved").await,
        vec![DeliveryOutcome::Status(200)]
    );
    let done = s.app.flow(id(&flow)).await;
    assert_eq!(done["state"], "completed", "{done}");
    done
}

async fn registration_step_up_and_recovery_run_against_the_provider(store: Store) {
    let s = setup(store).await;
    let registration = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "alice" }))
        .await;
    assert_eq!(registration["identity"]["provider"], "onfido");
    let run = s.double.run(run_id(&registration)).unwrap();
    assert_eq!(
        registration["identity"]["sdk_token"], run["sdk_token"],
        "the run's own SDK token"
    );
    assert_eq!(run["status"], "awaiting_input");
    assert_eq!(run["workflow_id"], "0c6b0e4a-1111-4b5b-9a1e-000000000001");
    s.app.store_reference(&registration, b"ebt").await;
    s.app
        .register_credential(&registration, "alice-phone")
        .await;
    assert_eq!(
        complete(&s, &registration, "approved").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert_eq!(s.app.flow(id(&registration)).await["state"], "completed");

    let step_up = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "alice" }))
        .await;
    assert_eq!(
        s.double.run(run_id(&step_up)).unwrap()["workflow_id"],
        "0c6b0e4a-1111-4b5b-9a1e-000000000002"
    );
    s.app.assert_with(&step_up, "alice-phone", 1).await;
    complete(&s, &step_up, "approved").await;
    assert_eq!(s.app.flow(id(&step_up)).await["state"], "completed");

    let declined = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "alice" }))
        .await;
    complete(&s, &declined, "declined").await;
    let failed = s.app.flow(id(&declined)).await;
    assert_eq!(
        (failed["state"].as_str(), failed["failure_reason"].as_str()),
        (Some("failed"), Some("idv_declined"))
    );

    let recovery = s
        .app
        .created(json!({ "type": "recovery", "external_user_id": "alice" }))
        .await;
    assert_eq!(
        s.double.run(run_id(&recovery)).unwrap()["workflow_id"],
        "0c6b0e4a-1111-4b5b-9a1e-000000000003"
    );
    s.app
        .register_credential(&recovery, "alice-new-phone")
        .await;
    complete(&s, &recovery, "approved").await;
    assert_eq!(s.app.flow(id(&recovery)).await["state"], "completed");

    assert_eq!(
        s.double.applicants_created(),
        1,
        "one applicant per user, reused"
    );
    assert_eq!(s.double.runs_created(), 4);
}

async fn the_provider_never_sees_the_customers_identifier(store: Store) {
    let s = setup(store).await;
    registered(&s, "customer-4711", "c4711-phone").await;
    let requests = s.double.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.authorized),
        "every call carries the API token"
    );
    let sent = format!("{requests:?}");
    assert!(
        !sent.contains("customer-4711"),
        "the provider saw the customer's identifier"
    );
    let run = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/workflow_runs"))
        .unwrap();
    assert!(
        run.body["customer_user_id"]
            .as_str()
            .unwrap()
            .starts_with("cu_")
    );
    assert!(run.body["tags"][0].as_str().unwrap().starts_with("flow:"));
}

/// Runs may be billed: a user past the day's limit never reaches the provider.
async fn a_user_past_the_run_limit_is_refused_before_the_provider_is_asked(store: Store) {
    let s = setup(store).await;
    let limits = domain::service::FlowPolicy::default();
    let mut started = 0;
    // Open flows are limited too: let each batch expire (its runs still count).
    while started < limits.max_idv_runs_per_user_per_day {
        for _ in 0..limits
            .max_open_flows_per_user
            .min(limits.max_idv_runs_per_user_per_day - started)
        {
            s.app
                .created(json!({ "type": "registration", "external_user_id": "rita" }))
                .await;
            started += 1;
        }
        s.app.clock.advance(time::Duration::minutes(20));
    }
    assert_eq!(s.double.runs_created(), started as usize);
    let (status, body) = s.app.create_flow("registration", "rita").await;
    expect_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "idv_run_limit_reached",
    );
    assert_eq!(
        s.double.runs_created(),
        started as usize,
        "no run was created"
    );
}

/// A `workflow_run.completed` event as the provider sends it (compact JSON).
fn completed_body(run_id: &str, status: &str, at: OffsetDateTime) -> Vec<u8> {
    let at = at.format(&Rfc3339).unwrap();
    serde_json::to_vec(&json!({ "payload": {
        "resource_type": "workflow_run",
        "action": "workflow_run.completed",
        "object": { "id": run_id, "status": status, "completed_at_iso8601": at,
                    "href": format!("https://api.eu.onfido.com/v3.6/workflow_runs/{run_id}") },
    }}))
    .unwrap()
}

/// Applicants can be deleted at the provider, or scheduled for deletion: the
/// user's next flow gets a new applicant instead of failing for good, and the
/// user's deletion still removes the applicant they have.
async fn an_applicant_gone_at_the_provider_is_replaced_on_the_next_step_up(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    registered(&s, "kate", "kate-phone").await;
    let first = s.double.applicant_ids().pop().unwrap();
    s.double.delete_applicant(&first);

    let step_up = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "kate" }))
        .await;
    assert_eq!(s.double.applicants_created(), 2);
    let applicant_of = |flow: &Value| {
        s.double.run(run_id(flow)).unwrap()["applicant_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let second = applicant_of(&step_up);
    assert_ne!(second, first);
    s.app.assert_with(&step_up, "kate-phone", 1).await;
    complete(&s, &step_up, "approved").await;
    assert_eq!(s.app.flow(id(&step_up)).await["state"], "completed");

    // Scheduled for deletion: replaced too, and deleted at once.
    s.double.schedule_applicant_deletion(&second);
    let again = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "kate" }))
        .await;
    let third = applicant_of(&again);
    assert_ne!(third, second);
    assert_eq!(s.double.applicants_created(), 3);
    let deleted = |applicant: &str| {
        s.double
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with(&format!("/applicants/{applicant}")))
    };
    assert!(deleted(&second));
    // The next flow uses the new applicant as it is.
    let next = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "kate" }))
        .await;
    assert_eq!(applicant_of(&next), third);
    assert_eq!(s.double.applicants_created(), 3);

    let (status, _) = s
        .app
        .send(s.app.client.delete(s.app.url("/api/core/v1/users/kate")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        flows.process_provider_cleanups(10).await.unwrap().forgotten,
        1
    );
    assert!(deleted(&third));
}

/// The official clients' tests expect a run approved at creation to carry an
/// SDK token too; its flow is verified from the start.
async fn a_run_approved_at_creation_verifies_its_flow(store: Store) {
    let s = setup_with(
        store,
        OnfidoDoubleConfig {
            non_interactive_workflow_id: Some("0c6b0e4a-1111-4b5b-9a1e-000000000002".into()),
            ..OnfidoDoubleConfig::default()
        },
    )
    .await;
    registered(&s, "liam", "liam-phone").await;
    let step_up = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "liam" }))
        .await;
    assert!(s.double.run(run_id(&step_up)).unwrap()["sdk_token"].is_string());
    assert_eq!(step_up["identity"]["status"], "verified", "{step_up}");
    s.app.assert_with(&step_up, "liam-phone", 1).await;
    assert_eq!(s.app.flow(id(&step_up)).await["state"], "completed");
}

async fn deleting_a_user_forgets_them_at_the_provider(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    registered(&s, "gina", "gina-phone").await;
    // The provider is down when the user is deleted: the deletion still happens at once.
    s.double
        .set_route_fault(Route::BiometricTokens, Fault::ServerError, 100);
    let (status, _) = s
        .app
        .send(s.app.client.delete(s.app.url("/api/core/v1/users/gina")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.app.get_json("/api/core/v1/users/gina").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let down = flows.process_provider_cleanups(10).await.unwrap();
    assert_eq!(
        (down.forgotten, down.retrying.len()),
        (0, 1),
        "the provider is down"
    );
    let queued = s.app.repo.pending_provider_cleanups(10).await.unwrap();
    assert_eq!(
        (queued.len(), queued[0].attempts),
        (1, 1),
        "kept for a later pass"
    );

    s.double
        .set_route_fault(Route::BiometricTokens, Fault::ServerError, 0);
    s.app
        .clock
        .advance(domain::service::provider_cleanup_backoff(1));
    assert_eq!(
        flows.process_provider_cleanups(10).await.unwrap().forgotten,
        1
    );
    assert!(
        s.app
            .repo
            .pending_provider_cleanups(10)
            .await
            .unwrap()
            .is_empty()
    );
    let requests = s.double.requests();
    let pseudonym = queued[0].customer_user_id.as_str();
    assert!(requests.iter().any(
        |r| r.method == "DELETE" && r.path.ends_with(&format!("/biometric_tokens/{pseudonym}"))
    ));
    assert!(
        requests
            .iter()
            .any(|r| r.method == "DELETE" && r.path.contains("/applicants/"))
    );
}
