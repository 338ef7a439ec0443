//! `biometric-passkey smoke`: checks a deployed installation from outside,
//! over HTTP, as an operator would after each rollout. It creates no user and
//! starts no IDV run, unless asked for the journey, which runs only against a
//! Core API whose provider is `synthetic`.
//!
//! Every check is one [`Check`]: a name, a verdict and one line of detail.
//! The detail never carries the API key.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// How long one request may take before its check fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command checks, and against what.
pub struct SmokeOptions {
    /// The Core API's base URL, e.g. `https://core.example.com`.
    pub core_url: String,
    /// The management runtime's base URL; its checks are skipped without it.
    pub management_url: Option<String>,
    /// The Core API key the checks present.
    pub api_key: Option<SecretString>,
    /// Also run a registration and a step-up for a throwaway user, then
    /// delete the user (only against the synthetic provider).
    pub journey: bool,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not applicable to this installation (said why); not a failure.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Pass,
            detail: detail.into(),
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Fail,
            detail: detail.into(),
        }
    }
    fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Skip,
            detail: detail.into(),
        }
    }
}

/// The whole report; `ok` when no check failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// One line per check: verdict, name, detail.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let verdict = match check.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            out.push_str(&format!("{verdict} {:<32} {}\n", check.name, check.detail));
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count();
        if failed == 0 {
            out.push_str("smoke: all checks passed\n");
        } else {
            out.push_str(&format!("smoke: {failed} check(s) failed\n"));
        }
        out
    }
}

/// The first key of a `BIOMETRIC_PASSKEY_CORE_API_KEYS` value (keys separated
/// by commas or white space, as the Core API reads them).
pub fn first_key(keys: &str) -> Option<SecretString> {
    keys.split([',', ' ', '\n', '\t'])
        .find(|k| !k.is_empty())
        .map(|k| SecretString::from(k.to_owned()))
}

/// An answer: its status and its body as JSON (`Null` when it is not JSON).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// `HTTP 404 user_not_found`, for a detail line.
    fn describe(&self) -> String {
        match self.code() {
            "" => format!("HTTP {}", self.status.as_u16()),
            code => format!("HTTP {} {code}", self.status.as_u16()),
        }
    }
}

struct Target {
    client: Client,
    core: String,
    key: Option<SecretString>,
}

/// Which provider the Core API runs, as far as can be told from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Synthetic,
    Onfido,
    Unknown,
}

impl Target {
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Answer, String> {
        let mut request = self.client.request(method, url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| describe_error(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| describe_error(&e))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// A Core API call with the configured key.
    async fn core(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.core);
        let key = self.key.as_ref().map(|k| k.expose_secret());
        self.call(method, &url, body.as_ref(), key).await
    }
}

/// Names what went wrong with a request without echoing anything it carried.
fn describe_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_decode() || err.is_body() {
        "the answer could not be read"
    } else {
        "request failed"
    };
    match err.url() {
        Some(url) => format!("{kind}: {}", without_query(url)),
        None => kind.to_owned(),
    }
}

fn without_query(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

fn trim_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// Runs every check, in order, and reports.
pub async fn run(options: SmokeOptions) -> Report {
    let client = match Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            return Report {
                ok: false,
                checks: vec![Check::fail(
                    "client",
                    format!("cannot build an HTTP client: {e}"),
                )],
            };
        }
    };
    let target = Target {
        client,
        core: trim_base(&options.core_url),
        key: options.api_key,
    };
    let mut checks = Vec::new();
    checks.push(health(&target).await);
    checks.push(ready(&target).await);
    let (version, runtime) = version(&target).await;
    checks.push(version);
    let provider = provider(&target, runtime.as_deref()).await;
    checks.push(key_accepted(&target).await);
    checks.push(wrong_key_refused(&target).await);
    checks.push(unknown_user_refused(&target).await);
    checks.push(webhook(&target, provider).await);
    match &options.management_url {
        Some(url) => checks.extend(management(&target.client, &trim_base(url)).await),
        None => checks.push(Check::skip(
            "management",
            "no --management-url given: the management runtime is not checked",
        )),
    }
    if options.journey {
        checks.push(journey(&target, provider).await);
    }
    Report {
        ok: checks.iter().all(|c| c.verdict != Verdict::Fail),
        checks,
    }
}

async fn health(target: &Target) -> Check {
    const NAME: &str = "core.health";
    match target.core(Method::GET, "/api/health", None).await {
        Ok(a) if a.status == StatusCode::OK && a.body["status"] == "ok" => {
            Check::pass(NAME, "GET /api/health: ok")
        }
        Ok(a) => Check::fail(NAME, format!("GET /api/health: {}", a.describe())),
        Err(e) => Check::fail(NAME, e),
    }
}

async fn ready(target: &Target) -> Check {
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
async fn version(target: &Target) -> (Check, Option<String>) {
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
async fn provider(target: &Target, runtime: Option<&str>) -> Provider {
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

/// A user id no one has: the checks that need one are refused as unknown.
fn throwaway_user() -> String {
    format!("smoke-{}", uuid::Uuid::new_v4().simple())
}

async fn key_accepted(target: &Target) -> Check {
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

async fn wrong_key_refused(target: &Target) -> Check {
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

async fn unknown_user_refused(target: &Target) -> Check {
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
async fn webhook(target: &Target, provider: Provider) -> Check {
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

const RUNTIME_CONFIG_FIELDS: &[(&str, &str)] = &[
    ("oidc", "authority"),
    ("oidc", "clientId"),
    ("oidc", "audience"),
    ("oidc", "scopeClaim"),
];

async fn management(client: &Client, base: &str) -> Vec<Check> {
    let target = Target {
        client: client.clone(),
        core: base.to_owned(),
        key: None,
    };
    let mut checks = Vec::new();
    let config = target
        .call(
            Method::GET,
            &format!("{base}/runtime-config.json"),
            None,
            None,
        )
        .await;
    let authority = match config {
        Ok(a) if a.status == StatusCode::OK => match runtime_config_authority(&a.body) {
            Ok(authority) => {
                checks.push(Check::pass(
                    "management.runtime_config",
                    format!("/runtime-config.json complete; issuer {authority}"),
                ));
                Some(authority)
            }
            Err(missing) => {
                checks.push(Check::fail(
                    "management.runtime_config",
                    format!("/runtime-config.json lacks {missing}"),
                ));
                None
            }
        },
        Ok(a) => {
            checks.push(Check::fail(
                "management.runtime_config",
                format!("GET /runtime-config.json: {}", a.describe()),
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail("management.runtime_config", e));
            None
        }
    };
    match authority {
        Some(authority) => checks.extend(issuer(&target, &authority).await),
        None => {
            checks.push(Check::fail(
                "management.issuer_discovery",
                "not checked: no issuer from /runtime-config.json",
            ));
            checks.push(Check::fail(
                "management.issuer_jwks",
                "not checked: no issuer from /runtime-config.json",
            ));
        }
    }
    const NAME: &str = "management.requires_token";
    let me = target
        .call(
            Method::GET,
            &format!("{base}/api/management/v1/me"),
            None,
            None,
        )
        .await;
    checks.push(match me {
        Ok(a) if a.status == StatusCode::UNAUTHORIZED && a.code() == "unauthorized" => Check::pass(
            NAME,
            "GET /api/management/v1/me without a token: 401 unauthorized",
        ),
        Ok(a) => Check::fail(
            NAME,
            format!(
                "GET /api/management/v1/me without a token: {} (expected 401)",
                a.describe()
            ),
        ),
        Err(e) => Check::fail(NAME, e),
    });
    checks
}

/// The issuer, when every fixed field of `/runtime-config.json` is there;
/// else the first one missing.
fn runtime_config_authority(body: &Value) -> Result<String, String> {
    for (object, field) in RUNTIME_CONFIG_FIELDS {
        if body[object][field].as_str().is_none_or(str::is_empty) {
            return Err(format!("{object}.{field}"));
        }
    }
    if body["oidc"]["scopes"]
        .as_array()
        .is_none_or(|scopes| scopes.is_empty())
    {
        return Err("oidc.scopes".to_owned());
    }
    if !body["oidc"]["scopePrefix"].is_string() {
        return Err("oidc.scopePrefix".to_owned());
    }
    if !body["apiBaseUrl"].is_string() {
        return Err("apiBaseUrl".to_owned());
    }
    Ok(body["oidc"]["authority"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn issuer(target: &Target, authority: &str) -> Vec<Check> {
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        authority.trim_end_matches('/')
    );
    let discovery = match target.call(Method::GET, &discovery_url, None, None).await {
        Ok(a) if a.status == StatusCode::OK => {
            let issuer = a.body["issuer"].as_str().unwrap_or_default();
            if issuer.trim_end_matches('/') != authority.trim_end_matches('/') {
                Err(format!(
                    "{discovery_url} names issuer {issuer:?}, not the dashboard's {authority:?}"
                ))
            } else {
                match a.body["jwks_uri"].as_str() {
                    Some(jwks) => Ok(jwks.to_owned()),
                    None => Err(format!("{discovery_url} has no jwks_uri")),
                }
            }
        }
        Ok(a) => Err(format!("GET {discovery_url}: {}", a.describe())),
        Err(e) => Err(e),
    };
    let jwks_uri = match discovery {
        Ok(jwks) => jwks,
        Err(e) => {
            return vec![
                Check::fail("management.issuer_discovery", e),
                Check::fail(
                    "management.issuer_jwks",
                    "not checked: no discovery document",
                ),
            ];
        }
    };
    let discovered = Check::pass(
        "management.issuer_discovery",
        format!("{discovery_url}: reachable"),
    );
    let jwks = match target.call(Method::GET, &jwks_uri, None, None).await {
        Ok(a) if a.status == StatusCode::OK => match a.body["keys"].as_array() {
            Some(keys) if !keys.is_empty() => Check::pass(
                "management.issuer_jwks",
                format!("{jwks_uri}: {} key(s)", keys.len()),
            ),
            _ => Check::fail(
                "management.issuer_jwks",
                format!("{jwks_uri}: no keys: operators' tokens cannot be verified"),
            ),
        },
        Ok(a) => Check::fail(
            "management.issuer_jwks",
            format!("GET {jwks_uri}: {}", a.describe()),
        ),
        Err(e) => Check::fail("management.issuer_jwks", e),
    };
    vec![discovered, jwks]
}

/// A registration and a step-up for a throwaway user, then its deletion,
/// through the Core API; the synthetic provider plays the capture.
async fn journey(target: &Target, provider: Provider) -> Check {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_is_taken_as_the_runtime_splits_them() {
        let key = first_key(" ,key-one, key-two").unwrap();
        assert_eq!(key.expose_secret(), "key-one");
        assert!(first_key(", ").is_none());
    }

    #[test]
    fn an_incomplete_runtime_config_names_the_missing_field() {
        let complete = json!({"oidc": {"authority": "https://id.example.com/", "clientId": "ui",
            "audience": "api", "scopes": ["openid"], "scopeClaim": "scope", "scopePrefix": ""},
            "apiBaseUrl": ""});
        assert_eq!(
            runtime_config_authority(&complete).unwrap(),
            "https://id.example.com/"
        );
        let mut missing = complete.clone();
        missing["oidc"]["scopes"] = json!([]);
        assert_eq!(
            runtime_config_authority(&missing).unwrap_err(),
            "oidc.scopes"
        );
        let mut missing = complete;
        missing["oidc"].as_object_mut().unwrap().remove("clientId");
        assert_eq!(
            runtime_config_authority(&missing).unwrap_err(),
            "oidc.clientId"
        );
    }
}
