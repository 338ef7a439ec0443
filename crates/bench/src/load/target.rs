//! A service under load: the client that calls it, and each call of a flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::phone::webauthn_body;
use super::{
    CREATE, POSSESSION, READ, RELEASE_REFERENCE, Recorder, Step, VirtualUser, Webhooks,
    assertion_response, registration_response,
};

/// How a service takes proof of possession.
#[derive(Clone)]
pub(super) enum Possession {
    /// Facts the caller's relying party verified.
    External,
    /// WebAuthn responses to the service's options, made at `origin`.
    Builtin { origin: Url },
}

/// A flow just created: its id, its IDV run, and (`builtin` mode) the
/// WebAuthn options to answer.
pub(super) struct Created {
    pub(super) id: String,
    pub(super) run: String,
    pub(super) options: Value,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A name no other of this process's calls used: users, passkeys,
/// correlation ids.
pub(super) fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// base64url without padding, as WebAuthn ids are written.
pub(super) fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// The API key the load generator presents, as a customer's backend does;
/// the product requires it, the baseline ignores it.
pub(crate) const API_KEY: &str = "bench-core-api-key-0123456789abcdefghijklmn";

/// A service under load.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) base: String,
    pub(super) client: reqwest::Client,
    pub(super) webhooks: Option<Webhooks>,
    pub(super) possession: Possession,
    /// Every call's outcome, for the fault suite's check of what was acknowledged.
    pub(super) journal: Option<Arc<crate::faults::Journal>>,
    /// The provider double's control URL: runs are completed there, the
    /// double delivers the webhook (retrying as the provider does), and a
    /// flow is read until it has moved.
    pub(super) control: Option<String>,
    /// The double answers a completion at once and delivers its webhook
    /// afterwards, rather than once every delivery attempt is over.
    pub(super) background_delivery: bool,
    /// How long a user takes at the provider (the capture) before the run
    /// is completed at the double.
    pub(super) capture: Duration,
}

impl Target {
    pub(crate) fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .default_headers(reqwest::header::HeaderMap::from_iter([(
                    reqwest::header::AUTHORIZATION,
                    reqwest::header::HeaderValue::try_from(format!("Bearer {API_KEY}"))?,
                )]))
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(30))
                .build()?,
            webhooks: None,
            possession: Possession::External,
            journal: None,
            control: None,
            background_delivery: false,
            capture: Duration::ZERO,
        })
    }

    /// The same kind of client for a service in `builtin` possession mode.
    pub(crate) fn builtin(base: &str, origin: Url) -> anyhow::Result<Self> {
        Ok(Self {
            possession: Possession::Builtin { origin },
            ..Self::new(base)?
        })
    }

    /// The same service, with IDV results delivered as signed webhooks.
    pub(crate) fn with_webhooks(&self, webhooks: Webhooks) -> Self {
        Self {
            webhooks: Some(webhooks),
            ..self.clone()
        }
    }

    /// The same service, each call written to `journal`.
    pub(crate) fn with_journal(&self, journal: Arc<crate::faults::Journal>) -> Self {
        Self {
            journal: Some(journal),
            ..self.clone()
        }
    }

    /// The same service in `onfido` mode, its runs completed at the provider
    /// double's `control` URL.
    pub(crate) fn with_control(&self, control: String) -> Self {
        Self {
            control: Some(control),
            ..self.clone()
        }
    }

    /// The same service, the double delivering webhooks in the background
    /// (the completion is answered before the webhook goes out).
    pub(crate) fn with_background_delivery(&self) -> Self {
        Self {
            background_delivery: true,
            ..self.clone()
        }
    }

    /// The same service, each user taking `capture` at the provider before
    /// their run is completed at the double.
    pub(crate) fn with_capture(&self, capture: Duration) -> Self {
        Self {
            capture,
            ..self.clone()
        }
    }

    pub(super) async fn call(
        &self,
        rec: &mut Recorder,
        step: Step,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let started = Instant::now();
        let sent = crate::faults::Journal::now();
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        }
        .await;
        if let Some(journal) = &self.journal {
            journal.call(
                step,
                path,
                sent,
                answer.as_ref().ok().map(|(s, b)| (*s, b.as_ref())),
            );
        }
        let (status, bytes) = answer.context(step)?;
        rec.step(step, started);
        if !status.is_success() {
            bail!("{step}: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub(super) async fn create(&self, rec: &mut Recorder, body: Value) -> anyhow::Result<Created> {
        let flow = self
            .call(
                rec,
                CREATE,
                reqwest::Method::POST,
                "/api/core/v1/flows",
                Some(body),
            )
            .await?;
        let id = flow["id"].as_str().context("flow id")?.to_owned();
        let run = flow["identity"]["workflow_run_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let options = flow["possession"]["webauthn_options"].clone();
        if matches!(self.possession, Possession::Builtin { .. }) && options.is_null() {
            bail!("{CREATE}: no WebAuthn options in builtin mode: {flow}");
        }
        Ok(Created { id, run, options })
    }

    pub(super) async fn finish(&self, rec: &mut Recorder, id: &str) -> anyhow::Result<()> {
        if self.control.is_some() {
            return self.settled(rec, id).await;
        }
        let flow = self
            .call(
                rec,
                READ,
                reqwest::Method::GET,
                &format!("/api/core/v1/flows/{id}"),
                None,
            )
            .await?;
        if flow["state"] != "completed" {
            bail!("flow {id} ended {}", flow["state"]);
        }
        Ok(())
    }

    /// Reads the flow until the provider's result has moved it (by webhook
    /// or the reconciler), for a minute at most.
    pub(super) async fn settled(&self, rec: &mut Recorder, id: &str) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let flow = self
                .call(
                    rec,
                    READ,
                    reqwest::Method::GET,
                    &format!("/api/core/v1/flows/{id}"),
                    None,
                )
                .await?;
            match flow["state"].as_str() {
                Some("completed") => return Ok(()),
                Some("awaiting_verification" | "pending") if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                _ => bail!("flow {id} ended {}", flow["state"]),
            }
        }
    }

    /// A new passkey for `flow`: a fresh credential id reported as verified
    /// (`external`), or a new phone's answer to the options (`builtin`).
    /// Returns its WebAuthn id and the phone.
    pub(super) async fn register_credential(
        &self,
        rec: &mut Recorder,
        flow: &Created,
    ) -> anyhow::Result<(String, Option<Box<SoftPasskey>>)> {
        let (credential, phone, body) = match &self.possession {
            Possession::External => {
                let credential = b64(&unique("passkey"));
                let body = json!({ "credential": {
                    "id": credential, "sign_count": 0, "transports": ["internal"], "platform": "android"
                }});
                (credential, None, body)
            }
            Possession::Builtin { origin } => {
                let mut phone = Box::new(SoftPasskey::new(true));
                let response = registration_response(&mut phone, origin, &flow.options)?;
                let credential = response["id"].as_str().context("credential id")?.to_owned();
                (credential, Some(phone), webauthn_body(response))
            }
        };
        self.call(
            rec,
            POSSESSION,
            reqwest::Method::POST,
            &format!("/api/core/v1/flows/{}/possession", flow.id),
            Some(body),
        )
        .await?;
        Ok((credential, phone))
    }

    pub(super) async fn assert(
        &self,
        rec: &mut Recorder,
        flow: &Created,
        vu: &mut VirtualUser,
    ) -> anyhow::Result<()> {
        vu.sign_count += 1;
        let body = match (&self.possession, vu.phone.as_mut()) {
            (Possession::External, _) => {
                json!({ "assertion": { "credential_id": vu.credential, "sign_count": vu.sign_count } })
            }
            (Possession::Builtin { origin }, Some(phone)) => {
                webauthn_body(assertion_response(phone, origin, &flow.options)?)
            }
            (Possession::Builtin { .. }, None) => bail!("a builtin-mode user without a phone"),
        };
        self.call(
            rec,
            POSSESSION,
            reqwest::Method::POST,
            &format!("/api/core/v1/flows/{}/possession", flow.id),
            Some(body),
        )
        .await
        .map(drop)
    }

    pub(super) async fn release(&self, rec: &mut Recorder, id: &str) -> anyhow::Result<()> {
        self.call(
            rec,
            RELEASE_REFERENCE,
            reqwest::Method::POST,
            &format!("/api/core/v1/flows/{id}/biometric-reference/release"),
            None,
        )
        .await
        .map(drop)
    }
}
