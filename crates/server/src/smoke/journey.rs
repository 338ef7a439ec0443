//! `--journey`: a registration and a step-up for a throwaway user, through
//! the Core API, against the synthetic provider only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use super::Check;
use super::client::Target;
use super::core_checks::{Provider, throwaway_user};

/// A registration and a step-up for a throwaway user, then its deletion,
/// through the Core API; the synthetic provider plays the capture.
pub(super) async fn journey(target: &Target, provider: Provider) -> Check {
    const NAME: &str = "core.journey";
    if provider != Provider::Synthetic {
        return Check::fail(
            NAME,
            "refused: the journey runs only against the synthetic provider (non-production); \
             this Core API runs another or could not be told",
        );
    }
    let user = throwaway_user();
    let outcome = registration_and_step_up(target, &user).await;
    let deleted = target
        .core(Method::DELETE, &format!("/api/core/v1/users/{user}"), None)
        .await;
    let deleted = match deleted {
        Ok(a) if a.status.is_success() => Ok(()),
        Ok(a) => Err(format!("deleting {user}: {}", a.describe())),
        Err(e) => Err(format!("deleting {user}: {e}")),
    };
    match (outcome, deleted) {
        (Ok(digest), Ok(())) => Check::pass(
            NAME,
            format!(
                "registration and step-up of {user} completed (transaction {digest}); user deleted"
            ),
        ),
        (Err(e), Ok(())) => Check::fail(NAME, format!("{e}; user {user} deleted")),
        (Ok(_), Err(e)) => Check::fail(NAME, e),
        (Err(e), Err(d)) => Check::fail(NAME, format!("{e}; {d}")),
    }
}

/// Fails with the step and the answer that broke it.
async fn expect(
    target: &Target,
    step: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    match target.core(method, path, body).await {
        Ok(a) if a.status.is_success() => Ok(a.body),
        Ok(a) => Err(format!("{step}: {}", a.describe())),
        Err(e) => Err(format!("{step}: {e}")),
    }
}

async fn registration_and_step_up(target: &Target, user: &str) -> Result<String, String> {
    let flow = expect(
        target,
        "registration",
        Method::POST,
        "/api/core/v1/flows",
        Some(json!({"type": "registration", "external_user_id": user})),
    )
    .await?;
    let (flow_id, run_id) = flow_and_run(&flow, "registration")?;
    if flow["possession"]["webauthn_options"].is_object() {
        return Err(
            "registration: the Core API verifies passkeys itself (builtin possession mode); \
             the journey reports a passkey, which needs external mode"
                .to_owned(),
        );
    }
    let reference = URL_SAFE_NO_PAD.encode(format!("smoke-reference-{user}"));
    expect(
        target,
        "storing the biometric reference",
        Method::PUT,
        &format!("/api/core/v1/flows/{flow_id}/biometric-reference"),
        Some(json!({"token": reference})),
    )
    .await?;
    let credential_id = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    expect(
        target,
        "reporting the passkey",
        Method::POST,
        &format!("/api/core/v1/flows/{flow_id}/possession"),
        Some(json!({"credential": {"id": credential_id, "sign_count": 0, "transports": ["internal"], "device_label": "smoke check"}})),
    )
    .await?;
    approve(target, &run_id).await?;
    completed(target, "registration", &flow_id).await?;

    let flow = expect(
        target,
        "step-up",
        Method::POST,
        "/api/core/v1/flows",
        Some(json!({
            "type": "step_up",
            "external_user_id": user,
            "transaction_context": {"payee": "smoke check", "amount": "0.00 EUR"},
        })),
    )
    .await?;
    let (flow_id, run_id) = flow_and_run(&flow, "step-up")?;
    expect(
        target,
        "releasing the reference",
        Method::POST,
        &format!("/api/core/v1/flows/{flow_id}/biometric-reference/release"),
        None,
    )
    .await?;
    expect(
        target,
        "the step-up's assertion",
        Method::POST,
        &format!("/api/core/v1/flows/{flow_id}/possession"),
        Some(json!({"assertion": {"credential_id": credential_id, "sign_count": 1}})),
    )
    .await?;
    approve(target, &run_id).await?;
    let done = completed(target, "step-up", &flow_id).await?;
    Ok(done["result"]["transaction_context_sha256"]
        .as_str()
        .unwrap_or("without a digest")
        .to_owned())
}

fn flow_and_run(flow: &Value, step: &str) -> Result<(String, String), String> {
    match (
        flow["id"].as_str(),
        flow["identity"]["workflow_run_id"].as_str(),
    ) {
        (Some(id), Some(run)) => Ok((id.to_owned(), run.to_owned())),
        _ => Err(format!("{step}: the flow has no id or IDV run")),
    }
}

async fn approve(target: &Target, run_id: &str) -> Result<(), String> {
    expect(
        target,
        "the synthetic capture's outcome",
        Method::POST,
        &format!("/api/core/v1/synthetic/runs/{run_id}/outcome"),
        Some(json!({"outcome": "approved"})),
    )
    .await
    .map(drop)
}

async fn completed(target: &Target, step: &str, flow_id: &str) -> Result<Value, String> {
    let flow = expect(
        target,
        step,
        Method::GET,
        &format!("/api/core/v1/flows/{flow_id}"),
        None,
    )
    .await?;
    match flow["state"].as_str() {
        Some("completed") => Ok(flow),
        state => Err(format!(
            "{step}: the flow ended {}",
            state.unwrap_or("in no state")
        )),
    }
}
