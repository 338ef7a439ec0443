//! The published vectors: signatures, and the emitter's bodies byte for byte.

use time::macros::datetime;

use super::*;

/// Spec §6.4, from `onfido/onfido-python` `tests/test_studio_webhook_event_verification.py`.
const STUDIO: &str = r#"{"payload":{"resource_type":"workflow_task","action":"workflow_task.started","object":{"id":"profile_1eb92","task_spec_id":"profile_1eb92","task_def_id":"profile_data","workflow_run_id":"bc77c6e5-753a-4580-96a6-aaed3e5a8d19","status":"started","started_at_iso8601":"2024-07-10T12:49:09Z","href":"https://api.eu.onfido.com/v3.6/workflow_runs/bc77c6e5-753a-4580-96a6-aaed3e5a8d19/tasks/profile_1eb92"},"resource":{"created_at":"2024-07-10T12:49:09Z","id":"profile_1eb92","workflow_run_id":"bc77c6e5-753a-4580-96a6-aaed3e5a8d19","updated_at":"2024-07-10T12:49:09Z","input":{},"task_def_version":null,"task_def_id":"profile_data","output":null}}}"#;

fn flip_last(signature: &str) -> String {
    let mut flipped = signature.to_owned();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'f' { 'e' } else { 'f' });
    flipped
}

#[test]
fn sign_matches_the_published_vectors() {
    let vectors = [
        (
            "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh",
            r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"f2302f45-227d-413d-ad61-09ec077a086a","status":"complete","completed_at_iso8601":"2024-04-04T09:21:21Z","href":"https://api.onfido.com/v3.6/checks/f2302f45-227d-413d-ad61-09ec077a086a"}}}"#,
            "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7",
            266,
        ),
        (
            "_ABC123abc123ABC123abc123ABC123_",
            r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"check-123","status":"complete","completed_at_iso8601":"2020-01-01T00:00:00Z","href":"https://api.onfido.com/v3/checks/check-123"}}}"#,
            "a0082d7481f9f0a2907583dbe1f344d6d4c0d9989df2fd804f98479f60cd760e",
            210,
        ),
        (
            "YKOC6mkBxi6yK2zlUIrLMvsJMFEZObP5",
            STUDIO,
            "c95a5b785484f6fa1bc25f381b5595d66bf85cb442eefb06aa007802ee6a4dfa",
            STUDIO.len(),
        ),
        (WEBHOOK_TOKEN, ILLUSTRATIVE, ILLUSTRATIVE_SIGNATURE, 786),
    ];
    for (token, body, expected, len) in vectors {
        assert_eq!(body.len(), len, "vector body length");
        let signature = sign(token, body.as_bytes());
        assert_eq!(signature, expected);
        assert_ne!(
            signature,
            flip_last(expected),
            "a changed last digit must not match"
        );
        assert_ne!(flip_last(&signature), expected);
    }
}

fn illustrative_run() -> Run {
    Run {
        id: "3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c".into(),
        workflow_id: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d".into(),
        workflow_version_id: 3,
        applicant_id: "9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d".into(),
        status: "approved".into(),
        output: json!({"face_match": "clear"}),
        reasons: json!([]),
        error: None,
        sdk_token: None,
        customer_user_id: Some("cu_7Jd2kQx9Lm4pVt8R".into()),
        tags: vec!["flow:0b6f2c1e".into()],
        link: Value::Null,
        created_at: datetime!(2026-11-23 10:14:02 UTC),
        updated_at: datetime!(2026-11-23 10:15:30 UTC),
        seq: 0,
        tasks: Vec::new(),
        lag: None,
    }
}

#[test]
fn the_emitter_reproduces_the_illustrative_delivery_byte_for_byte() {
    let run = illustrative_run();
    let href = format!("https://api.eu.onfido.com/v3.6/workflow_runs/{}", run.id);
    let body = run_completed_body(&run, "2026-11-23T10:15:30Z", Some(href));
    assert_eq!(String::from_utf8(body.clone()).unwrap(), ILLUSTRATIVE);
    assert_eq!(sign(WEBHOOK_TOKEN, &body), ILLUSTRATIVE_SIGNATURE);
}

#[test]
fn the_emitter_reproduces_the_studio_task_vector_byte_for_byte() {
    let at = datetime!(2024-07-10 12:49:09 UTC);
    let task = Task {
        id: "profile_1eb92".into(),
        task_def_id: "profile_data".into(),
        task_def_version: None,
        created_at: at,
        updated_at: at,
        input: json!({}),
        output: Value::Null,
    };
    let run_id = "bc77c6e5-753a-4580-96a6-aaed3e5a8d19";
    let href = format!("https://api.eu.onfido.com/v3.6/workflow_runs/{run_id}/tasks/profile_1eb92");
    let body = task_event_body(
        "workflow_task.started",
        "started",
        &task,
        run_id,
        None,
        &href,
    );
    assert_eq!(String::from_utf8(body).unwrap(), STUDIO);
}

#[test]
fn the_token_shape_check_is_the_sdk_regex() {
    assert!(sdk_token_shaped("abc.def"));
    assert!(sdk_token_shaped("a-b_c=.d.e+f/g=.h"));
    assert!(!sdk_token_shaped("abc"));
    assert!(!sdk_token_shaped("a..b"));
    assert!(!sdk_token_shaped(".a.b"));
    assert!(!sdk_token_shaped("a.b c"));
    assert!(!sdk_token_shaped("a+b.c"));
}
