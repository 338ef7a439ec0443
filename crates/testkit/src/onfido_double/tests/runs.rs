//! Workflow runs: their shape, validation, list, completion and read lag, and the biometric tokens an approval enrolls.

use super::*;

#[tokio::test]
async fn a_fresh_run_has_the_documented_shape() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let applicant = api.applicant().await;
    let body =
        json!({"workflow_id": WORKFLOW, "applicant_id": applicant, "customer_user_id": "cu_1"});
    let run = api.call(Method::POST, "/workflow_runs", Some(body)).await;
    assert_eq!(run.status, 201);
    let body = &run.body;
    let id = body["id"].as_str().unwrap();
    assert!(lower_uuid_v4(id));
    assert_eq!(body["workflow_id"], WORKFLOW);
    assert_eq!(body["applicant_id"], applicant.as_str());
    assert_eq!(body["customer_user_id"], "cu_1");
    assert_eq!(body["status"], "awaiting_input");
    assert!(body["output"].is_null() && body["reasons"].is_null() && body["error"].is_null());
    assert_eq!(body["tags"], json!([]));
    assert!(body["workflow_version_id"].is_i64());
    assert!(
        sdk_token_shaped(body["sdk_token"].as_str().unwrap()),
        "{}",
        body["sdk_token"]
    );
    assert_eq!(
        body["dashboard_url"],
        format!("https://dashboard.onfido.com/results/{id}")
    );
    assert!(utc_timestamp(&body["created_at"]) && utc_timestamp(&body["updated_at"]));
    assert!(body["link"].is_object());

    let read = api
        .call(Method::GET, &format!("/workflow_runs/{id}"), None)
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, run.body);
    assert_eq!(api.double.run(id).unwrap(), run.body);
    let unknown = api
        .call(Method::GET, &format!("/workflow_runs/{}", new_id()), None)
        .await;
    assert_envelope(&unknown, 404, "resource_not_found");
    assert_eq!(api.double.runs_created(), 1);

    let tagged = api.run(&applicant, None, &["flow:1", "b"]).await;
    assert_eq!(tagged["tags"], json!(["flow:1", "b"]));
    assert!(tagged["customer_user_id"].is_null());
}

#[tokio::test]
async fn run_creation_is_validated() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let applicant = api.applicant().await;
    let long_tag = "t".repeat(129);
    let many_tags: Vec<String> = (0..31).map(|i| format!("t{i}")).collect();
    let with = |extra: Value| {
        let mut body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (json!({"applicant_id": applicant}), "workflow_id"),
        (
            with(json!({"workflow_id": "biometric-passkey-registration"})),
            "workflow_id",
        ),
        (json!({"workflow_id": WORKFLOW}), "applicant_id"),
        (with(json!({"applicant_id": new_id()})), "applicant_id"),
        (
            with(json!({"customer_user_id": "u".repeat(257)})),
            "customer_user_id",
        ),
        (with(json!({"tags": many_tags})), "tags"),
        (with(json!({"tags": [""]})), "tags"),
        (with(json!({"tags": [long_tag]})), "tags"),
        (with(json!({"custom_data": "x"})), "custom_data"),
    ];
    for (body, field) in cases {
        let answer = api
            .call(Method::POST, "/workflow_runs", Some(body.clone()))
            .await;
        assert_envelope(&answer, 422, "validation_error");
        let messages = &answer.body["error"]["fields"][field]["messages"];
        assert!(messages.is_array(), "{body} → {}", answer.body);
    }
    assert_eq!(api.double.runs_created(), 0);
    let edge = with(json!({
        "customer_user_id": "u".repeat(256),
        "tags": (0..30).map(|i| format!("{i:0>128}")).collect::<Vec<_>>(),
    }));
    assert_eq!(
        api.call(Method::POST, "/workflow_runs", Some(edge))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn the_list_is_a_bare_array_honouring_its_filters() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let (a, b) = (api.applicant().await, api.applicant().await);
    let r1 = api.run(&a, None, &["flow:1", "x"]).await["id"].clone();
    let r2 = api.run(&a, None, &["flow:2", "x"]).await["id"].clone();
    let r3 = api.run(&b, None, &["flow:1"]).await["id"].clone();
    let ids = |answer: &Answer| -> Vec<Value> {
        assert_eq!(answer.status, 200, "{}", answer.body);
        let list = answer.body.as_array().expect("a bare array");
        list.iter().map(|r| r["id"].clone()).collect()
    };
    let shared_api = &api;
    let list = |query: String| async move {
        shared_api
            .call(Method::GET, &format!("/workflow_runs{query}"), None)
            .await
    };
    let all = list(String::new()).await;
    assert_eq!(
        ids(&all),
        vec![r3.clone(), r2.clone(), r1.clone()],
        "newest first by default"
    );
    assert_eq!(all.headers["x-total-count"], "3");
    let asc = list("?sort=asc".into()).await;
    assert_eq!(ids(&asc), vec![r1.clone(), r2.clone(), r3.clone()]);
    let by_applicant = list(format!("?applicant_id={a}")).await;
    assert_eq!(ids(&by_applicant), vec![r2.clone(), r1.clone()]);
    let tagged = list(format!("?applicant_id={a}&tags=flow:1")).await;
    assert_eq!(ids(&tagged), vec![r1.clone()]);
    let all_tags = list("?tags=flow%3A1,x".into()).await;
    assert_eq!(ids(&all_tags), vec![r1.clone()], "every tag must match");
    let none = list("?tags=flow:1,flow:2".into()).await;
    assert!(ids(&none).is_empty());

    api.double
        .complete_run(r2.as_str().unwrap(), "declined")
        .await;
    let declined = list("?status=declined".into()).await;
    assert_eq!(ids(&declined), vec![r2.clone()]);
    let open = list("?status=awaiting_input,approved&sort=asc".into()).await;
    assert_eq!(ids(&open), vec![r1.clone(), r3.clone()]);
    let tomorrow = (now() + time::Duration::days(1)).date();
    let later = list(format!("?created_at_gt={tomorrow}")).await;
    assert!(ids(&later).is_empty());
    let earlier = list(format!("?created_at_lt={tomorrow}")).await;
    assert_eq!(ids(&earlier).len(), 3);
    let bad = list("?sort=sideways".into()).await;
    assert_envelope(&bad, 422, "validation_error");
}

#[tokio::test]
async fn completion_fills_the_outcome_and_reads_may_lag() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let applicant = api.applicant().await;
    for (status, output, error) in [
        ("approved", true, false),
        ("declined", true, false),
        ("review", true, false),
        ("abandoned", false, false),
        ("error", false, true),
    ] {
        let run = api.run(&applicant, None, &[]).await;
        let id = run["id"].as_str().unwrap();
        api.double.complete_run(id, status).await;
        let read = api
            .call(Method::GET, &format!("/workflow_runs/{id}"), None)
            .await
            .body;
        assert_eq!(read["status"], status);
        assert_eq!(read["output"].is_object(), output, "{read}");
        assert!(read["reasons"].is_array());
        assert_eq!(read["error"].is_object(), error, "{read}");
        if error {
            assert!(read["error"]["type"].is_string() && read["error"]["message"].is_string());
        }
    }

    api.double.set_read_lag(2);
    let run = api.run(&applicant, None, &[]).await;
    let id = run["id"].as_str().unwrap();
    let path = format!("/workflow_runs/{id}");
    api.double.complete_run(id, "approved").await;
    assert_eq!(api.double.run(id).unwrap()["status"], "approved");
    for _ in 0..2 {
        let read = api.call(Method::GET, &path, None).await;
        assert_eq!(
            read.body["status"], "awaiting_input",
            "still the old status"
        );
    }
    assert_eq!(
        api.call(Method::GET, &path, None).await.body["status"],
        "approved"
    );
    let tasks = api
        .call(Method::GET, &format!("{path}/tasks"), None)
        .await
        .body;
    let task_id = tasks[0]["id"].as_str().unwrap();
    assert!(
        task_id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    );
    let task = api
        .call(Method::GET, &format!("{path}/tasks/{task_id}"), None)
        .await
        .body;
    assert!(task.get("input").is_some() && task.get("output").is_some());
}

#[tokio::test]
async fn a_loose_tags_filter_lists_every_run_most_recently_completed_first() {
    let api = Api::start(OnfidoDoubleConfig {
        loose_tags_filter: true,
        ..OnfidoDoubleConfig::default()
    })
    .await;
    let applicant = api.applicant().await;
    let earlier = api.run(&applicant, Some("cu_x"), &["flow:a"]).await;
    api.double
        .complete_run(earlier["id"].as_str().unwrap(), "approved")
        .await;
    let later = api.run(&applicant, Some("cu_x"), &["flow:b"]).await;
    let listed = api
        .call(
            Method::GET,
            &format!("/workflow_runs?applicant_id={applicant}&tags=flow:b"),
            None,
        )
        .await;
    let ids: Vec<&Value> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, vec![&earlier["id"], &later["id"]]);
}

#[tokio::test]
async fn biometric_tokens_appear_after_the_delay_and_go_once() {
    let api = Api::start(OnfidoDoubleConfig {
        biometric_token_delay: Duration::from_millis(500),
        ..OnfidoDoubleConfig::default()
    })
    .await;
    let applicant = api.applicant().await;
    let run = api.run(&applicant, Some("cu_alice"), &[]).await;
    let outcomes = api
        .double
        .complete_run(run["id"].as_str().unwrap(), "approved")
        .await;
    assert!(outcomes.is_empty(), "no webhook URL, no delivery");
    let list = api
        .call(Method::GET, "/biometric_tokens/cu_alice", None)
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body,
        json!({"biometric_tokens": []}),
        "eventually consistent: not yet"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let list = api
        .call(Method::GET, "/biometric_tokens/cu_alice", None)
        .await;
    let tokens = list.body["biometric_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    let uuid = tokens[0]["uuid"].as_str().unwrap().to_owned();
    assert!(lower_uuid_v4(&uuid));
    assert_eq!(tokens[0]["data"]["status"], "approved");
    assert!(
        tokens[0]["data"]["inserted_at"].is_string() && tokens[0]["data"]["media_type"].is_string()
    );

    let one = format!("/biometric_tokens/cu_alice/{uuid}");
    let read = api.call(Method::GET, &one, None).await;
    assert_eq!(read.body["biometric_token"]["uuid"], uuid.as_str());
    let put = api
        .call(Method::PUT, &one, Some(json!({"status": "declined"})))
        .await;
    assert_eq!(put.body["biometric_token"]["data"]["status"], "declined");
    let put = api
        .call(Method::PUT, &one, Some(json!({"status": "maybe"})))
        .await;
    assert_envelope(&put, 422, "validation_error");
    let gone = json!({"error": {"type": "resource_not_found", "message": "Not found"}});
    let other_user = api
        .call(
            Method::GET,
            &format!("/biometric_tokens/cu_bob/{uuid}"),
            None,
        )
        .await;
    assert_eq!((other_user.status, &other_user.body), (404, &gone));
    let deleted = api.call(Method::DELETE, &one, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.body,
        json!({"biometric_token": {"deleted_items": {"count": 1}}})
    );
    let again = api.call(Method::DELETE, &one, None).await;
    assert_eq!((again.status, &again.body), (404, &gone));
    let all = api
        .call(Method::DELETE, "/biometric_tokens/cu_alice", None)
        .await;
    assert_eq!(
        (all.status, &all.body),
        (404, &gone),
        "nothing left to delete"
    );
}

#[tokio::test]
async fn biometric_tokens_go_all_at_once_and_a_declined_run_enrolls_nobody() {
    let api = Api::start(OnfidoDoubleConfig {
        biometric_token_delay: Duration::from_millis(500),
        ..OnfidoDoubleConfig::default()
    })
    .await;
    let applicant = api.applicant().await;
    let gone = json!({"error": {"type": "resource_not_found", "message": "Not found"}});

    // An enrollment, deleted all at once, then again.
    let run = api.run(&applicant, Some("cu_alice"), &[]).await;
    api.double
        .complete_run(run["id"].as_str().unwrap(), "approved")
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let all = api
        .call(Method::DELETE, "/biometric_tokens/cu_alice", None)
        .await;
    assert_eq!(all.status, 200);
    assert_eq!(
        all.body,
        json!({"biometric_tokens": {"deleted_items": {"count": 1}}})
    );
    let again = api
        .call(Method::DELETE, "/biometric_tokens/cu_alice", None)
        .await;
    assert_eq!((again.status, &again.body), (404, &gone));

    // A declined run enrolls nobody.
    let run = api.run(&applicant, Some("cu_carol"), &[]).await;
    api.double
        .complete_run(run["id"].as_str().unwrap(), "declined")
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let list = api
        .call(Method::GET, "/biometric_tokens/cu_carol", None)
        .await;
    assert_eq!(list.body, json!({"biometric_tokens": []}));
}
