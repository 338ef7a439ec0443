//! Authentication, the recorded requests, applicants, paths and methods, SDK tokens.

use super::*;

#[tokio::test]
async fn every_call_needs_exactly_the_configured_token() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    for auth in [
        None,
        Some("Token token=api_sandbox.wrong"),
        Some("Bearer api_sandbox.test-token"),
        Some("Token token=api_sandbox.test-tokenX"),
        Some("Token api_sandbox.test-token"),
        Some("token token=api_sandbox.test-token"),
    ] {
        let answer = api.call_with(Method::GET, "/ping", None, auth).await;
        assert_envelope(&answer, 401, "authorization_error");
        assert!(answer.body["error"]["fields"].is_object());
    }
    let answer = api.call(Method::GET, "/ping", None).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(answer.body.is_string());

    let requests = api.double.requests();
    assert_eq!(requests.len(), 7);
    assert_eq!(requests.iter().filter(|r| r.authorized).count(), 1);
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.path == "/v3.6/ping")
    );
    let recorded = format!("{requests:?}");
    assert!(
        !recorded.contains("test-token"),
        "the token must never be kept"
    );
    assert!(
        requests[6]
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "<masked>")
    );
}

#[tokio::test]
async fn only_the_latest_requests_are_kept() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    for page in 1..=RECORDED_REQUESTS + 1 {
        let answer = api
            .call(Method::GET, &format!("/workflow_runs?page={page}"), None)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let requests = api.double.requests();
    assert_eq!(requests.len(), RECORDED_REQUESTS);
    assert_eq!(requests[0].query, "page=2", "the first request was dropped");
    assert_eq!(
        requests[RECORDED_REQUESTS - 1].query,
        format!("page={}", RECORDED_REQUESTS + 1)
    );
}

#[tokio::test]
async fn applicants_are_created_validated_read_and_deleted() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let body = json!({
        "first_name": "Jane", "last_name": "Doe",
        "consents": [{"name": "privacy_notices_read", "granted": true}],
    });
    let created = api.call(Method::POST, "/applicants", Some(body)).await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(lower_uuid_v4(&id));
    assert!(utc_timestamp(&created.body["created_at"]));
    assert_eq!(created.body["href"], format!("/v3.6/applicants/{id}"));
    assert_eq!(created.body["sandbox"], true);
    assert!(created.body.get("delete_at").is_some());

    let missing = api
        .call(
            Method::POST,
            "/applicants",
            Some(json!({"last_name": "Doe"})),
        )
        .await;
    assert_envelope(&missing, 422, "validation_error");
    assert!(missing.body["error"]["fields"]["first_name"]["messages"][0].is_string());
    assert!(missing.body["error"]["fields"].get("last_name").is_none());
    for bad in ["!", "#", "$", "%", "*", "=", "<", ">", ";", "{", "}", "\""] {
        let body = json!({"first_name": "Jane", "last_name": format!("Do{bad}e")});
        let answer = api.call(Method::POST, "/applicants", Some(body)).await;
        assert_envelope(&answer, 422, "validation_error");
        assert!(answer.body["error"]["fields"]["last_name"]["messages"].is_array());
    }
    let body = json!({"first_name": "J", "last_name": "D", "email": "nope"});
    let bad_email = api.call(Method::POST, "/applicants", Some(body)).await;
    assert_eq!(
        bad_email.body["error"]["fields"]["email"]["messages"][0],
        "invalid format"
    );
    let not_json = api
        .http
        .post(format!("{}/applicants", api.double.base_url()))
        .header("Authorization", format!("Token token={TOKEN}"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(api.double.applicants_created(), 1);

    let read = api
        .call(Method::GET, &format!("/applicants/{id}"), None)
        .await;
    assert_eq!(read.body["id"], id);
    let deleted = api
        .call(Method::DELETE, &format!("/applicants/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_null());
    let read = api
        .call(Method::GET, &format!("/applicants/{id}"), None)
        .await;
    assert_envelope(&read, 404, "resource_not_found");
    let again = api
        .call(Method::DELETE, &format!("/applicants/{id}"), None)
        .await;
    assert_envelope(&again, 404, "resource_not_found");
    let unknown = api
        .call(Method::GET, &format!("/applicants/{}", new_id()), None)
        .await;
    assert_envelope(&unknown, 404, "resource_not_found");
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Applicant")
    );
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_sdk_tokens() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    for path in ["/nothing", "/applicants/x/y/z", "/workflow_runs/a/b"] {
        assert_envelope(
            &api.call(Method::GET, path, None).await,
            404,
            "resource_not_found",
        );
    }
    let root = api.double.base_url().replace("/v3.6", "");
    let outside = api
        .http
        .get(format!("{root}/v3.5/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);
    let wrong = api.call(Method::PATCH, "/workflow_runs", None).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.headers["allow"], "GET, POST");
    assert_eq!(
        api.call(Method::DELETE, "/workflow_runs/x", None)
            .await
            .status,
        405
    );
    assert_eq!(api.call(Method::POST, "/ping", None).await.status, 405);

    let applicant = api.applicant().await;
    let body = json!({"applicant_id": applicant});
    let token = api.call(Method::POST, "/sdk_token", Some(body)).await;
    assert_eq!(token.status, 200, "not 201");
    assert!(sdk_token_shaped(token.body["token"].as_str().unwrap()));
    let missing = api
        .call(
            Method::POST,
            "/sdk_token",
            Some(json!({"referrer": "*://*/*"})),
        )
        .await;
    assert_envelope(&missing, 422, "validation_error");
    assert!(missing.body["error"]["fields"]["applicant_id"].is_object());
}

#[tokio::test]
async fn an_applicant_scheduled_for_deletion_reads_with_delete_at_and_takes_no_runs() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let applicant = api.applicant().await;
    api.double.schedule_applicant_deletion(&applicant);
    let read = api
        .call(Method::GET, &format!("/applicants/{applicant}"), None)
        .await;
    assert_eq!(read.status, 200);
    assert!(utc_timestamp(&read.body["delete_at"]));
    let body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});
    let answer = api.call(Method::POST, "/workflow_runs", Some(body)).await;
    assert_envelope(&answer, 422, "validation_error");
    api.double.delete_applicant(&applicant);
    let read = api
        .call(Method::GET, &format!("/applicants/{applicant}"), None)
        .await;
    assert_envelope(&read, 404, "resource_not_found");
}
