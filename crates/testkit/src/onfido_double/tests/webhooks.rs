//! Webhook deliveries: their form, faults, retries, and the control plane.

use super::*;

#[tokio::test]
async fn deliveries_are_signed_compact_workflow_run_completed_events() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let (receiver, url) = Receiver::start(200).await;
    api.double.set_webhook_url(&url);
    let (got, run) = deliveries_under(&api, &receiver, WebhookFault::None).await;
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(headers["content-type"], "application/json");
    assert!(valid(headers, body));
    let spaced = body.windows(2).any(|w| w == b": " || w == b", ");
    assert!(!body.contains(&b'\n') && !spaced, "compact");
    let event = event(&got[0]);
    let payload = &event["payload"];
    assert_eq!(payload["resource_type"], "workflow_run");
    assert_eq!(payload["action"], "workflow_run.completed");
    assert_eq!(payload["object"]["id"], run["id"]);
    assert_eq!(payload["object"]["status"], "approved");
    let href = format!(
        "{}/workflow_runs/{}",
        api.double.base_url(),
        run["id"].as_str().unwrap()
    );
    assert_eq!(payload["object"]["href"], href);
    let completed = parse_ts(&payload["object"]["completed_at_iso8601"]);
    assert!((OffsetDateTime::now_utc() - completed).abs() < time::Duration::seconds(5));
    let resource = &payload["resource"];
    assert_eq!(resource["id"], run["id"]);
    assert_eq!(resource["status"], "approved");
    assert_eq!(resource["customer_user_id"], "cu_w");
    assert_eq!(resource["tags"], json!(["flow:w"]));
    assert!(
        resource.get("sdk_token").is_none(),
        "no bearer secret in a webhook"
    );
}

#[tokio::test]
async fn duplicates_and_task_events_are_delivered_as_told() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let (receiver, url) = Receiver::start(200).await;
    api.double.set_webhook_url(&url);

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::Duplicate).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, got[1].1);
    assert_eq!(signature(&got[0].0), signature(&got[1].0));
    assert!(valid(&got[0].0, &got[0].1));

    let (got, run) = deliveries_under(&api, &receiver, WebhookFault::TaskCompletedAfterRun).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(h, b)| valid(h, b)));
    let (first, second) = (event(&got[0]), event(&got[1]));
    assert_eq!(first["payload"]["action"], "workflow_run.completed");
    assert_eq!(second["payload"]["action"], "workflow_task.completed");
    assert_eq!(second["payload"]["resource_type"], "workflow_task");
    assert_eq!(second["payload"]["object"]["workflow_run_id"], run["id"]);
    assert_eq!(second["payload"]["object"]["status"], "completed");
    assert!(second["payload"]["resource"]["task_def_id"].is_string());
}

#[tokio::test]
async fn each_signature_fault_does_what_it_says() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let (receiver, url) = Receiver::start(200).await;
    api.double.set_webhook_url(&url);

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::BadSignature).await;
    let sig = signature(&got[0].0).unwrap();
    assert_eq!(sig.len(), 64);
    assert!(
        sig.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    );
    assert!(!valid(&got[0].0, &got[0].1));

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::UppercaseSignature).await;
    let sig = signature(&got[0].0).unwrap();
    assert_eq!(sig, sign(WEBHOOK_TOKEN, &got[0].1).to_uppercase());
    assert_ne!(sig, sign(WEBHOOK_TOKEN, &got[0].1));

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::TruncatedSignature).await;
    let sig = signature(&got[0].0).unwrap();
    assert!(sig.len() < 64 && sign(WEBHOOK_TOKEN, &got[0].1).starts_with(&sig));

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::MissingSignature).await;
    assert_eq!(got.len(), 1);
    assert!(signature(&got[0].0).is_none());

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::OtherToken).await;
    assert!(!valid(&got[0].0, &got[0].1));
    assert_eq!(
        signature(&got[0].0).unwrap(),
        sign(OTHER_WEBHOOK_TOKEN, &got[0].1)
    );
}

#[tokio::test]
async fn each_body_fault_does_what_it_says() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let (receiver, url) = Receiver::start(200).await;
    api.double.set_webhook_url(&url);

    let (got, run) = deliveries_under(&api, &receiver, WebhookFault::ReformattedBody).await;
    let (headers, body) = &got[0];
    assert!(valid(headers, body), "correctly signed over the bytes sent");
    let reformatted = event(&got[0]);
    assert_ne!(
        body,
        &serde_json::to_vec(&reformatted).unwrap(),
        "other whitespace"
    );
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(
        text.find("\"resource\"").unwrap() < text.find("\"object\"").unwrap(),
        "other key order"
    );
    assert_eq!(reformatted["payload"]["action"], "workflow_run.completed");
    assert_eq!(reformatted["payload"]["object"]["id"], run["id"]);

    let (got, run) = deliveries_under(&api, &receiver, WebhookFault::UnknownFieldsAndStatus).await;
    assert!(valid(&got[0].0, &got[0].1));
    let odd = event(&got[0]);
    let known = [
        "awaiting_input",
        "processing",
        "awaiting_client_input",
        "approved",
        "declined",
        "review",
        "abandoned",
        "error",
    ];
    let announced = odd["payload"]["object"]["status"].as_str().unwrap();
    assert!(!known.contains(&announced), "{announced}");
    assert!(odd["payload"]["object"]["x_new_field"].is_object());
    assert!(odd["payload"]["resource"]["x_new_field"].is_object());
    let current = api.double.run(run["id"].as_str().unwrap()).unwrap();
    assert_eq!(current["status"], "approved", "the run itself is approved");

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::NoHref).await;
    assert!(valid(&got[0].0, &got[0].1));
    let plain = event(&got[0]);
    assert!(plain["payload"]["object"].get("href").is_none());
    assert!(plain["payload"]["object"]["id"].is_string());

    let stale = WebhookFault::StaleCompletedAt(time::Duration::hours(1));
    let (got, _) = deliveries_under(&api, &receiver, stale).await;
    assert!(valid(&got[0].0, &got[0].1));
    let old = event(&got[0]);
    let age =
        OffsetDateTime::now_utc() - parse_ts(&old["payload"]["object"]["completed_at_iso8601"]);
    assert!(
        age >= time::Duration::minutes(59) && age <= time::Duration::minutes(61),
        "{age}"
    );

    let (got, run) = deliveries_under(&api, &receiver, WebhookFault::NoDelivery).await;
    assert!(got.is_empty());
    assert_eq!(
        api.double.run(run["id"].as_str().unwrap()).unwrap()["status"],
        "approved"
    );

    let (got, _) = deliveries_under(&api, &receiver, WebhookFault::None).await;
    assert_eq!(got.len(), 1);
    assert!(valid(&got[0].0, &got[0].1));
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_no_answer_is_reported() {
    let api = Api::start(OnfidoDoubleConfig {
        webhook_retries: 2,
        ..OnfidoDoubleConfig::default()
    })
    .await;
    let (receiver, url) = Receiver::start(500).await;
    api.double.set_webhook_url(&url);
    let applicant = api.applicant().await;
    let run = api.run(&applicant, None, &[]).await;
    let outcomes = api
        .double
        .complete_run(run["id"].as_str().unwrap(), "review")
        .await;
    assert_eq!(outcomes, vec![DeliveryOutcome::Status(500); 3]);
    let got = receiver.take();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|(h, b)| b == &got[0].1 && valid(h, b)),
        "the same delivery each time"
    );

    receiver.answer.store(204, Ordering::SeqCst);
    let run = api.run(&applicant, None, &[]).await;
    let outcomes = api
        .double
        .complete_run(run["id"].as_str().unwrap(), "approved")
        .await;
    assert_eq!(outcomes, vec![DeliveryOutcome::Status(204)]);

    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    api.double.set_webhook_url(dead);
    let run = api.run(&applicant, None, &[]).await;
    let outcomes = api
        .double
        .complete_run(run["id"].as_str().unwrap(), "approved")
        .await;
    assert_eq!(outcomes, vec![DeliveryOutcome::NoAnswer; 3]);
}

/// Completed through the control plane with `"deliver": "background"`,
/// a run is answered before its delivery, which is still retried.
#[tokio::test]
async fn a_background_completion_answers_first_and_still_retries() {
    let api = Api::start(OnfidoDoubleConfig {
        webhook_retries: 2,
        ..OnfidoDoubleConfig::default()
    })
    .await;
    let (receiver, url) = Receiver::start(503).await;
    api.double.set_webhook_url(&url);
    let applicant = api.applicant().await;
    let run = api.run(&applicant, None, &[]).await;
    let id = run["id"].as_str().unwrap();
    let answer: Value = reqwest::Client::new()
        .post(format!(
            "{}/workflow_runs/{id}/complete",
            api.double.control_url()
        ))
        .json(&json!({"status": "approved", "deliver": "background"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["run"]["status"], "approved");
    assert_eq!(answer["deliveries"], json!([]));
    let mut got = 0;
    for _ in 0..100 {
        got = receiver.got.lock().unwrap().len();
        if got == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, 3, "the first attempt and two retries");
}

#[tokio::test]
async fn raw_deliveries_carry_the_chosen_signature() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let (receiver, url) = Receiver::start(202).await;
    api.double.set_webhook_url(&url);
    let outcome = api.double.deliver_raw(b"{\"x\":1}", Some("abc")).await;
    assert_eq!(outcome, DeliveryOutcome::Status(202));
    let outcome = api.double.deliver_raw(ILLUSTRATIVE.as_bytes(), None).await;
    assert_eq!(outcome, DeliveryOutcome::Status(202));
    let got = receiver.take();
    assert_eq!(got[0].1, b"{\"x\":1}");
    assert_eq!(signature(&got[0].0).as_deref(), Some("abc"));
    assert_eq!(got[1].1, ILLUSTRATIVE.as_bytes());
    assert!(signature(&got[1].0).is_none());
    assert_eq!(got[1].0["content-type"], "application/json");
}

#[tokio::test]
async fn the_control_plane_completes_runs_over_http() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let (receiver, url) = Receiver::start(200).await;
    api.double.set_webhook_url(&url);
    let applicant = api.applicant().await;
    let run = api.run(&applicant, None, &[]).await;
    let control = api.double.control_url();
    assert!(!control.contains("/v3.6"));
    let complete = format!(
        "{control}/workflow_runs/{}/complete",
        run["id"].as_str().unwrap()
    );
    let post = |url: String, status: &'static str| {
        let http = api.http.clone();
        async move {
            http.post(url)
                .json(&json!({"status": status}))
                .send()
                .await
                .unwrap()
        }
    };
    let answer = post(complete.clone(), "declined").await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["run"]["status"], "declined");
    assert_eq!(body["deliveries"], json!([200]));
    assert_eq!(receiver.take().len(), 1);
    assert_eq!(
        post(complete, "approved").await.status(),
        409,
        "a finished run never moves"
    );
    let other = api.run(&applicant, None, &[]).await;
    let bad = format!(
        "{control}/workflow_runs/{}/complete",
        other["id"].as_str().unwrap()
    );
    assert_eq!(post(bad, "done").await.status(), 422);
    let unknown = format!("{control}/workflow_runs/{}/complete", new_id());
    assert_eq!(post(unknown, "approved").await.status(), 404);
    assert!(
        api.double
            .requests()
            .iter()
            .all(|r| !r.path.starts_with("/__control"))
    );
}

#[tokio::test]
async fn a_non_interactive_workflow_is_approved_from_create() {
    let workflow = "b79dcf69-41a0-412d-b803-d1a618730f72";
    let api = Api::start(OnfidoDoubleConfig {
        non_interactive_workflow_id: Some(workflow.into()),
        ..OnfidoDoubleConfig::default()
    })
    .await;
    let (receiver, url) = Receiver::start(200).await;
    api.double.set_webhook_url(&url);
    let applicant = api.applicant().await;
    let body =
        json!({"workflow_id": workflow, "applicant_id": applicant, "customer_user_id": "cu_dave"});
    let run = api.call(Method::POST, "/workflow_runs", Some(body)).await;
    assert_eq!(run.status, 201);
    assert_eq!(run.body["status"], "approved");
    assert!(run.body["output"].is_object());
    assert!(
        sdk_token_shaped(run.body["sdk_token"].as_str().unwrap()),
        "a run approved at creation still has its SDK token"
    );
    let tokens = api
        .call(Method::GET, "/biometric_tokens/cu_dave", None)
        .await;
    assert_eq!(tokens.body["biometric_tokens"].as_array().unwrap().len(), 1);
    let mut got = Vec::new();
    for _ in 0..50 {
        got = receiver.take();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got.len(), 1);
    assert!(valid(&got[0].0, &got[0].1));
    assert_eq!(event(&got[0])["payload"]["object"]["id"], run.body["id"]);
}
