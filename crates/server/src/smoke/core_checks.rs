//! The Core API's checks: health, readiness and version, its keys, a
//! refused flow for an unknown user, and the webhook's signature check.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::Check;
use super::client::Target;

/// Which provider the Core API runs, as far as can be told from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provider {
    Synthetic,
    Onfido,
    Unknown,
}

/// A user id no one has: the checks that need one are refused as unknown.
pub(super) fn throwaway_user() -> String {
    format!("smoke-{}", uuid::Uuid::new_v4().simple())
}

pub(super) async fn health(target: &Target) -> Check {
    const NAME: &str = "core.health";
    match target.core(Method::GET, "/api/health", None).await {
        Ok(a) if a.status == StatusCode::OK && a.body["status"] == "ok" => {
            Check::pass(NAME, "GET /api/health: ok")
        }
        Ok(a) => Check::fail(NAME, format!("GET /api/health: {}", a.describe())),
        Err(e) => Check::fail(NAME, e),
    }
}

pub(super) async fn ready(target: &Target) -> Check {
    const NAME: &str = "core.ready";
    match target.core(Method::GET, "/api/ready", None).await {
        Ok(a) if a.status == StatusCode::OK && a.body["status"] == "ready" => {
            Check::pass(NAME, "GET /api/ready: the database answers")
        }
        Ok(a) => Check::fail(
            NAME,
            format!(
                "GET /api/ready: {} (is the database reachable?)",
                a.describe()
            ),
        ),
        Err(e) => Check::fail(NAME, e),
    }
}

/// The version check, and the runtime the answer names.
pub(super) async fn version(target: &Target) -> (Check, Option<String>) {
    const NAME: &str = "core.version";
    match target.core(Method::GET, "/api/version", None).await {
        Ok(a) if a.status == StatusCode::OK => {
            let version = a.body["version"].as_str().unwrap_or_default();
            let runtime = a.body["runtime"].as_str().unwrap_or_default();
            match runtime {
                "core" | "dev" if !version.is_empty() => (
                    Check::pass(NAME, format!("version {version}, runtime {runtime}")),
                    Some(runtime.to_owned()),
                ),
                _ => (
                    Check::fail(
                        NAME,
                        format!(
                            "GET /api/version names runtime {runtime:?}, version {version:?}: \
                             is --core-url the Core API?"
                        ),
                    ),
                    None,
                ),
            }
        }
        Ok(a) => (
            Check::fail(NAME, format!("GET /api/version: {}", a.describe())),
            None,
        ),
        Err(e) => (Check::fail(NAME, e), None),
    }
}

/// `dev` always runs the synthetic provider; a `core` runtime mounts the
/// synthetic outcome route only in `synthetic` mode. An unknown route is
/// answered `404 route_not_found` before any key is asked for, so the probe
/// needs no key and changes nothing (its body is refused as incomplete).
pub(super) async fn provider(target: &Target, runtime: Option<&str>) -> Provider {
    match runtime {
        Some("dev") => return Provider::Synthetic,
        Some(_) => {}
        None => return Provider::Unknown,
    }
    let probe = target
        .core(
            Method::POST,
            "/api/core/v1/synthetic/runs/smoke-probe/outcome",
            Some(json!({})),
        )
        .await;
    match probe {
        Ok(a) if a.status == StatusCode::NOT_FOUND && a.code() == "route_not_found" => {
            Provider::Onfido
        }
        Ok(a) if a.status.is_client_error() => Provider::Synthetic,
        _ => Provider::Unknown,
    }
}

pub(super) async fn key_accepted(target: &Target) -> Check {
    const NAME: &str = "core.api_key_accepted";
    let path = format!("/api/core/v1/users/{}", throwaway_user());
    match target.core(Method::GET, &path, None).await {
        Ok(a) if a.status == StatusCode::NOT_FOUND && a.code() == "user_not_found" => {
            if target.key.is_some() {
                Check::pass(NAME, "GET /api/core/v1/users/{id} with the key: accepted")
            } else {
                Check::pass(
                    NAME,
                    "GET /api/core/v1/users/{id} without a key: accepted (the Core API takes \
                     calls without a key)",
                )
            }
        }
        Ok(a) if a.status == StatusCode::UNAUTHORIZED => Check::fail(
            NAME,
            if target.key.is_some() {
                "the key is refused (401 unauthorized): it is not one of the Core API's \
                 BIOMETRIC_PASSKEY_CORE_API_KEYS"
            } else {
                "the Core API requires a key: pass --api-key or set BIOMETRIC_PASSKEY_CORE_API_KEYS"
            },
        ),
        Ok(a) => Check::fail(
            NAME,
            format!("GET /api/core/v1/users/{{id}}: {}", a.describe()),
        ),
        Err(e) => Check::fail(NAME, e),
    }
}

pub(super) async fn wrong_key_refused(target: &Target) -> Check {
    const NAME: &str = "core.wrong_key_refused";
    let url = format!("{}/api/core/v1/users/{}", target.core, throwaway_user());
    let wrong = format!("smoke-wrong-key-{}", uuid::Uuid::new_v4().simple());
    match target.call(Method::GET, &url, None, Some(&wrong)).await {
        Ok(a) if a.status == StatusCode::UNAUTHORIZED && a.code() == "unauthorized" => {
            Check::pass(NAME, "a key that is not configured: 401 unauthorized")
        }
        Ok(a) if a.status == StatusCode::NOT_FOUND && a.code() == "user_not_found" => Check::skip(
            NAME,
            "the Core API takes calls without a key (dev, or BIOMETRIC_PASSKEY_CORE_API_AUTH=none): \
             only the network protects it",
        ),
        Ok(a) => Check::fail(
            NAME,
            format!(
                "a key that is not configured: {} (expected 401)",
                a.describe()
            ),
        ),
        Err(e) => Check::fail(NAME, e),
    }
}

pub(super) async fn unknown_user_refused(target: &Target) -> Check {
    const NAME: &str = "core.unknown_user_refused";
    let body = json!({"type": "sign_in", "external_user_id": throwaway_user()});
    match target
        .core(Method::POST, "/api/core/v1/flows", Some(body))
        .await
    {
        Ok(a) if a.status == StatusCode::NOT_FOUND && a.code() == "user_not_found" => Check::pass(
            NAME,
            "a sign-in flow for an unknown user: 404 user_not_found",
        ),
        Ok(a) => Check::fail(
            NAME,
            format!(
                "a sign-in flow for an unknown user: {} (expected 404 user_not_found)",
                a.describe()
            ),
        ),
        Err(e) => Check::fail(NAME, e),
    }
}

/// One unsigned delivery: refused by signature. One refusal stays far below
/// the per-address refusal limit.
pub(super) async fn webhook(target: &Target, provider: Provider) -> Check {
    const NAME: &str = "core.webhook_refuses_unsigned";
    const PATH: &str = "/api/public/v1/providers/onfido/webhooks";
    let url = format!("{}{PATH}", target.core);
    let body =
        json!({"payload": {"resource_type": "workflow_run", "action": "workflow_run.completed"}});
    match target.call(Method::POST, &url, Some(&body), None).await {
        Ok(a)
            if a.status == StatusCode::UNAUTHORIZED && a.code() == "webhook_signature_invalid" =>
        {
            Check::pass(NAME, "an unsigned delivery: 401 webhook_signature_invalid")
        }
        Ok(a) if a.status == StatusCode::NOT_FOUND && provider == Provider::Synthetic => {
            Check::skip(
                NAME,
                "the synthetic provider receives no webhooks (the route is served in onfido mode)",
            )
        }
        Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => Check::fail(
            NAME,
            "429: this address is refused for too many refused deliveries; retry after a minute",
        ),
        Ok(a) => Check::fail(
            NAME,
            format!(
                "an unsigned delivery: {} (expected 401 webhook_signature_invalid)",
                a.describe()
            ),
        ),
        Err(e) => Check::fail(NAME, e),
    }
}
