//! A thin JSON client of the Core API for end-to-end tests: each call returns
//! the status and the parsed body, so tests assert on exactly what a customer
//! backend would see.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::TestApp;

/// A WebAuthn credential id for tests: unpadded base64url of `seed`.
pub fn webauthn_id(seed: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seed.as_bytes())
}

/// Asserts an error answer: its status and its stable code.
#[track_caller]
pub fn expect_error(status: StatusCode, body: &Value, expected_status: StatusCode, code: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (expected_status, Some(code)),
        "{body}"
    );
}

impl TestApp {
    /// The whole audit trail, newest first.
    pub async fn audit_trail(&self) -> Vec<domain::NewAuditEvent> {
        let page = self
            .repo
            .audit_events(&domain::AuditQuery {
                limit: 1000,
                ..domain::AuditQuery::default()
            })
            .await
            .unwrap();
        page.items.into_iter().map(|e| e.event).collect()
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn create_flow(&self, flow_type: &str, user: &str) -> (StatusCode, Value) {
        self.post(
            "/api/core/v1/flows",
            json!({ "type": flow_type, "external_user_id": user }),
        )
        .await
    }

    /// Creates a flow and asserts it was created.
    pub async fn created(&self, body: Value) -> Value {
        let (status, flow) = self.post("/api/core/v1/flows", body).await;
        assert_eq!(status, StatusCode::CREATED, "{flow}");
        flow
    }

    pub async fn flow(&self, id: &str) -> Value {
        let (status, flow) = self.get_json(&format!("/api/core/v1/flows/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{flow}");
        flow
    }

    /// Gives the flow's synthetic IDV run an outcome.
    pub async fn outcome(&self, flow: &Value, outcome: &str) -> (StatusCode, Value) {
        let run = flow["identity"]["workflow_run_id"].as_str().unwrap();
        self.post(
            &format!("/api/core/v1/synthetic/runs/{run}/outcome"),
            json!({ "outcome": outcome }),
        )
        .await
    }

    pub async fn register_credential(
        &self,
        flow: &Value,
        credential_seed: &str,
    ) -> (StatusCode, Value) {
        let id = flow["id"].as_str().unwrap();
        self.post(
            &format!("/api/core/v1/flows/{id}/possession"),
            json!({ "credential": {
                "id": webauthn_id(credential_seed),
                "aaguid": "08987058-cadc-4b81-b6e1-30de50dcbe96",
                "sign_count": 0,
                "transports": ["internal", "hybrid"],
                "platform": "ios",
                "device_label": "Test phone",
            }}),
        )
        .await
    }

    pub async fn assert_with(
        &self,
        flow: &Value,
        credential_seed: &str,
        sign_count: u32,
    ) -> (StatusCode, Value) {
        let id = flow["id"].as_str().unwrap();
        self.post(
            &format!("/api/core/v1/flows/{id}/possession"),
            json!({ "assertion": { "credential_id": webauthn_id(credential_seed), "sign_count": sign_count }}),
        )
        .await
    }

    pub async fn store_reference(&self, flow: &Value, token: &[u8]) -> (StatusCode, Value) {
        use base64::Engine;
        let id = flow["id"].as_str().unwrap();
        let token = base64::engine::general_purpose::STANDARD.encode(token);
        self.send(
            self.client
                .put(self.url(&format!("/api/core/v1/flows/{id}/biometric-reference")))
                .json(&json!({ "token": token })),
        )
        .await
    }

    /// Registers `user` with one credential and a biometric reference, end to end.
    pub async fn enrolled(&self, user: &str, credential_seed: &str) -> Value {
        let flow = self
            .created(json!({ "type": "registration", "external_user_id": user }))
            .await;
        let (status, _) = self
            .store_reference(&flow, b"encrypted-biometric-token")
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = self.register_credential(&flow, credential_seed).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self.outcome(&flow, "approved").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let done = self.flow(flow["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "completed", "{done}");
        done
    }

    /// The audit event types of a flow, oldest first.
    pub async fn audit_types(&self, flow_id: &str) -> Vec<String> {
        let mut types: Vec<String> = self
            .audit_trail()
            .await
            .into_iter()
            .filter(|e| e.subject.flow_id.map(|f| f.to_string()).as_deref() == Some(flow_id))
            .map(|e| e.event_type.as_str().to_owned())
            .collect();
        types.reverse();
        types
    }
}
