//! The load: virtual users running complete flows over HTTP, closed-loop (as
//! fast as the service answers) or started at a fixed rate (latency measured
//! from each flow's scheduled start, so a slow service cannot hide its queue).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_core_06::proto::{
    AttestationConveyancePreference, CreationChallengeResponse, RequestChallengeResponse,
};

/// The four flows of the Core API with possession reported by the caller
/// (`external` mode), step-up again with the IDV result arriving as a signed
/// provider webhook, and the four flows again with each user's software
/// authenticator answering the service's WebAuthn options (`builtin` mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Scenario {
    Registration,
    SignIn,
    StepUp,
    Recovery,
    StepUpWebhook,
    RegistrationBuiltin,
    SignInBuiltin,
    StepUpBuiltin,
    RecoveryBuiltin,
    /// `POST /flows` alone, as fast as it is answered (the flows stay open).
    CreateRegistration,
    CreateSignIn,
    CreateStepUp,
    CreateRecovery,
    /// The fixed yardstick's request: one transaction of an UPDATE and an INSERT.
    Yardstick,
    /// The same work as one statement.
    YardstickOneStatement,
}

impl Scenario {
    pub(crate) const ALL: [Self; 15] = [
        Self::Yardstick,
        Self::YardstickOneStatement,
        Self::Registration,
        Self::SignIn,
        Self::StepUp,
        Self::Recovery,
        Self::StepUpWebhook,
        Self::RegistrationBuiltin,
        Self::SignInBuiltin,
        Self::StepUpBuiltin,
        Self::RecoveryBuiltin,
        Self::CreateRegistration,
        Self::CreateSignIn,
        Self::CreateStepUp,
        Self::CreateRecovery,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::SignIn => "sign_in",
            Self::StepUp => "step_up",
            Self::Recovery => "recovery",
            Self::StepUpWebhook => "step_up_webhook",
            Self::RegistrationBuiltin => "registration_builtin",
            Self::SignInBuiltin => "sign_in_builtin",
            Self::StepUpBuiltin => "step_up_builtin",
            Self::RecoveryBuiltin => "recovery_builtin",
            Self::CreateRegistration => "create_registration",
            Self::CreateSignIn => "create_sign_in",
            Self::CreateStepUp => "create_step_up",
            Self::CreateRecovery => "create_recovery",
            Self::Yardstick => "yardstick",
            Self::YardstickOneStatement => "yardstick_one_statement",
        }
    }

    /// The fixed yardstick's requests, not the product's.
    pub(crate) fn yardstick(self) -> bool {
        matches!(self, Self::Yardstick | Self::YardstickOneStatement)
    }

    /// `POST /flows` alone: the flow it creates.
    pub(crate) fn creates_only(self) -> Option<Self> {
        match self {
            Self::CreateRegistration => Some(Self::Registration),
            Self::CreateSignIn => Some(Self::SignIn),
            Self::CreateStepUp => Some(Self::StepUp),
            Self::CreateRecovery => Some(Self::Recovery),
            _ => None,
        }
    }

    /// Runs against a service in `builtin` possession mode.
    pub(crate) fn builtin(self) -> bool {
        matches!(
            self,
            Self::RegistrationBuiltin
                | Self::SignInBuiltin
                | Self::StepUpBuiltin
                | Self::RecoveryBuiltin
        )
    }

    /// The calls it makes: a builtin scenario makes its flow's calls.
    fn flow(self) -> Self {
        match self {
            Self::RegistrationBuiltin => Self::Registration,
            Self::SignInBuiltin => Self::SignIn,
            Self::StepUpBuiltin => Self::StepUp,
            Self::RecoveryBuiltin => Self::Recovery,
            other => other,
        }
    }
}

/// One call of a flow, named by its route.
pub(crate) type Step = &'static str;
pub(crate) const CREATE: Step = "POST /flows";
pub(crate) const STORE_REFERENCE: Step = "PUT /flows/{id}/biometric-reference";
pub(crate) const RELEASE_REFERENCE: Step = "POST /flows/{id}/biometric-reference/release";
pub(crate) const POSSESSION: Step = "POST /flows/{id}/possession";
pub(crate) const OUTCOME: Step = "POST /synthetic/runs/{run}/outcome";
pub(crate) const READ: Step = "GET /flows/{id}";
pub(crate) const WEBHOOK: Step = "POST /providers/onfido/webhooks";
pub(crate) const YARDSTICK: Step = "POST /yardstick/{key} (BEGIN, UPDATE, INSERT, COMMIT)";
pub(crate) const YARDSTICK_ONE_STATEMENT: Step =
    "POST /yardstick/{key}/one-statement (one data-modifying CTE)";
/// The provider double's control call that completes a run (not the product's).
pub(crate) const COMPLETE_AT_PROVIDER: Step = "provider double: run completed";

/// Latencies in microseconds, per step and per whole flow, and errors.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) steps: BTreeMap<Step, Histogram<u64>>,
    pub(crate) flows: Option<Histogram<u64>>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Recorder {
    fn step(&mut self, step: Step, started: Instant) {
        self.steps
            .entry(step)
            .or_insert_with(new_histogram)
            .saturating_record((started.elapsed().as_micros() as u64).max(1));
    }

    fn flow(&mut self, micros: u64) {
        self.flows
            .get_or_insert_with(new_histogram)
            .saturating_record(micros.max(1));
    }

    /// One flow (or delivery) finished: its latency since `since`, or its error.
    fn outcome(&mut self, outcome: anyhow::Result<()>, since: Instant) {
        match outcome {
            Ok(()) => self.flow(since.elapsed().as_micros() as u64),
            Err(e) => note_error(self, e),
        }
    }

    pub(crate) fn flows_done(&self) -> u64 {
        self.flows.as_ref().map_or(0, Histogram::len)
    }

    /// One line for the progress log: flows per second over `elapsed`, and
    /// the whole flow's median and 99th percentile.
    pub(crate) fn summary(&self, elapsed: Duration) -> String {
        let q = |q: f64| {
            self.flows
                .as_ref()
                .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        format!(
            "{:.0} flows/s, flow p50 {:.2} ms, p99 {:.2} ms, {} errors",
            self.flows_done() as f64 / elapsed.as_secs_f64().max(1e-9),
            q(0.5),
            q(0.99),
            self.errors
        )
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// A user of the service with a passkey, driven by one task at a time.
pub(crate) struct VirtualUser {
    pub(crate) external_id: String,
    /// The passkey's WebAuthn id, and (`external` mode) the counter the
    /// caller reports.
    pub(crate) credential: String,
    pub(crate) sign_count: u64,
    /// `builtin` mode: the user's phone, a software authenticator that holds
    /// the passkey's private key, verifies its user and signs each challenge.
    phone: Option<Box<SoftPasskey>>,
}

/// One concurrent caller: it runs one flow at a time, for each of its users
/// in turn. Real users run a few flows a day; a user running flows back to
/// back for the whole benchmark would grow a history (IDV runs of the last
/// day, for the per-user limits) that no real user has.
pub(crate) struct Client {
    users: Vec<VirtualUser>,
    next: usize,
}

impl Client {
    /// The user whose turn it is.
    fn take_turn(&mut self) -> &mut VirtualUser {
        let i = self.next % self.users.len();
        self.next = self.next.wrapping_add(1);
        &mut self.users[i]
    }
}

/// How a service takes proof of possession.
#[derive(Clone)]
pub(crate) enum Possession {
    /// Facts the caller's relying party verified.
    External,
    /// WebAuthn responses to the service's options, made at `origin`.
    Builtin { origin: Url },
}

/// A flow just created: its id, its IDV run, and (`builtin` mode) the
/// WebAuthn options to answer.
struct Created {
    id: String,
    run: String,
    options: Value,
}

/// The authenticator's registration response to `options`, made at `origin`.
pub(crate) fn registration_response(
    phone: &mut SoftPasskey,
    origin: &Url,
    options: &Value,
) -> anyhow::Result<Value> {
    let options: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).context("creation options")?;
    let asks_attestation = options
        .public_key
        .attestation
        .as_ref()
        .is_some_and(|a| !matches!(a, AttestationConveyancePreference::None));
    let response = phone
        .do_registration(origin.clone(), options)
        .map_err(|e| anyhow::anyhow!("software authenticator: {e:?}"))?;
    let mut response = serde_json::to_value(response)?;
    if !asks_attestation {
        strip_attestation(&mut response)?;
    }
    Ok(response)
}

/// Replaces the attestation statement of a registration `response` with
/// `none`: what the passkeys of phones (iCloud Keychain, Google Password
/// Manager) send when the relying party asks for no attestation, so what the
/// service sees from the mobile apps it serves. The software authenticator
/// always signs a `packed` self-attestation instead, which the service would
/// verify at the cost of one P-256 verification per registration (`bench
/// webauthn` measures that verification).
fn strip_attestation(response: &mut Value) -> anyhow::Result<()> {
    use serde_cbor_2::Value as Cbor;
    let field = &mut response["response"]["attestationObject"];
    let encoded = field.as_str().context("attestationObject")?;
    let mut object: BTreeMap<Cbor, Cbor> =
        serde_cbor_2::from_slice(&URL_SAFE_NO_PAD.decode(encoded)?)?;
    let auth_data = object
        .remove(&Cbor::Text("authData".into()))
        .context("authData")?;
    let none = BTreeMap::from([
        (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
        (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
        (Cbor::Text("authData".into()), auth_data),
    ]);
    *field = Value::String(URL_SAFE_NO_PAD.encode(serde_cbor_2::to_vec(&Cbor::Map(none))?));
    Ok(())
}

/// The authenticator's assertion for `options`, made at `origin`.
pub(crate) fn assertion_response(
    phone: &mut SoftPasskey,
    origin: &Url,
    options: &Value,
) -> anyhow::Result<Value> {
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).context("request options")?;
    let response = phone
        .do_authentication(origin.clone(), options)
        .map_err(|e| anyhow::anyhow!("software authenticator: {e:?}"))?;
    Ok(serde_json::to_value(response)?)
}

fn webauthn_body(response: Value) -> Value {
    json!({ "webauthn": { "response": response, "platform": "android", "device_label": "Bench phone" } })
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// How IDV results reach a target in webhook mode: signed deliveries, and the
/// provider double to settle the run at first (the product re-reads it there).
#[derive(Clone)]
pub(crate) struct Webhooks {
    pub(crate) double: Option<Arc<testkit::onfido_double::OnfidoDouble>>,
    pub(crate) secret: String,
}

/// The API key the load generator presents, as a customer's backend does;
/// the product requires it, the baseline ignores it.
pub(crate) const API_KEY: &str = "bench-core-api-key-0123456789abcdefghijklmn";

/// A service under load.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) base: String,
    client: reqwest::Client,
    webhooks: Option<Webhooks>,
    possession: Possession,
    /// Every call's outcome, for the fault suite's check of what was acknowledged.
    journal: Option<Arc<crate::faults::Journal>>,
    /// The provider double's control URL: runs are completed there, the
    /// double delivers the webhook (retrying as the provider does), and a
    /// flow is read until it has moved.
    control: Option<String>,
    /// The double answers a completion at once and delivers its webhook
    /// afterwards, rather than once every delivery attempt is over.
    background_delivery: bool,
    /// How long a user takes at the provider (the capture) before the run
    /// is completed at the double.
    capture: Duration,
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

    async fn call(
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

    async fn create(&self, rec: &mut Recorder, body: Value) -> anyhow::Result<Created> {
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

    async fn finish(&self, rec: &mut Recorder, id: &str) -> anyhow::Result<()> {
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
    async fn settled(&self, rec: &mut Recorder, id: &str) -> anyhow::Result<()> {
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

    /// Completes `run` at the provider double, which delivers the webhook.
    async fn complete_at_double(&self, control: &str, run: &str) -> anyhow::Result<()> {
        let sent = crate::faults::Journal::now();
        let answer = async {
            let response = self
                .client
                .post(format!("{control}/workflow_runs/{run}/complete"))
                .json(&if self.background_delivery {
                    json!({ "status": "approved", "deliver": "background" })
                } else {
                    json!({ "status": "approved" })
                })
                .send()
                .await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        }
        .await;
        if let Some(journal) = &self.journal {
            journal.call(
                COMPLETE_AT_PROVIDER,
                run,
                sent,
                answer.as_ref().ok().map(|(s, b)| (*s, b.as_ref())),
            );
        }
        let (status, bytes) = answer.context(COMPLETE_AT_PROVIDER)?;
        if !status.is_success() {
            bail!(
                "{COMPLETE_AT_PROVIDER}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(())
    }

    async fn outcome(&self, rec: &mut Recorder, run: &str) -> anyhow::Result<()> {
        if let Some(control) = &self.control {
            tokio::time::sleep(self.capture).await;
            return self.complete_at_double(control, run).await;
        }
        if let Some(webhooks) = &self.webhooks {
            return self.deliver(rec, webhooks, run).await;
        }
        self.call(
            rec,
            OUTCOME,
            reqwest::Method::POST,
            &format!("/api/core/v1/synthetic/runs/{run}/outcome"),
            Some(json!({ "outcome": "approved" })),
        )
        .await
        .map(drop)
    }

    async fn deliver(
        &self,
        rec: &mut Recorder,
        webhooks: &Webhooks,
        run: &str,
    ) -> anyhow::Result<()> {
        self.settle(webhooks, run).await;
        self.post_webhook(rec, webhooks, run).await
    }

    /// Settles the run at the provider double (which has no webhook URL, so it
    /// delivers nothing): the product re-reads the run there.
    async fn settle(&self, webhooks: &Webhooks, run: &str) {
        if let Some(double) = &webhooks.double {
            double.complete_run(run, "approved").await;
        }
    }

    async fn post_webhook(
        &self,
        rec: &mut Recorder,
        webhooks: &Webhooks,
        run: &str,
    ) -> anyhow::Result<()> {
        #[allow(clippy::disallowed_methods)] // The provider stamps its events with real time.
        let completed = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?;
        let body = serde_json::to_vec(&json!({ "payload": {
            "resource_type": "workflow_run",
            "action": "workflow_run.completed",
            "object": {
                "id": run, "status": "approved", "completed_at_iso8601": completed,
                "href": format!("https://api.eu.onfido.com/v3.6/workflow_runs/{run}"),
            },
        }}))?;
        let signature = testkit::onfido_double::sign(&webhooks.secret, &body);
        let started = Instant::now();
        let response = self
            .client
            .post(format!(
                "{}/api/public/v1/providers/onfido/webhooks",
                self.base
            ))
            .header("content-type", "application/json")
            .header("x-sha2-signature", signature)
            .body(body)
            .send()
            .await
            .context(WEBHOOK)?;
        let status = response.status();
        let text = response.text().await?;
        rec.step(WEBHOOK, started);
        if !status.is_success() {
            bail!("{WEBHOOK}: HTTP {status}: {text}");
        }
        Ok(())
    }

    /// A new passkey for `flow`: a fresh credential id reported as verified
    /// (`external`), or a new phone's answer to the options (`builtin`).
    /// Returns its WebAuthn id and the phone.
    async fn register_credential(
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

    async fn assert(
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

    async fn release(&self, rec: &mut Recorder, id: &str) -> anyhow::Result<()> {
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

    /// A new user with a passkey and a biometric reference.
    pub(crate) async fn register(&self, rec: &mut Recorder) -> anyhow::Result<VirtualUser> {
        let external_id = unique("bench-user");
        let flow = self
            .create(
                rec,
                json!({ "type": "registration", "external_user_id": external_id }),
            )
            .await?;
        self.call(
            rec,
            STORE_REFERENCE,
            reqwest::Method::PUT,
            &format!("/api/core/v1/flows/{}/biometric-reference", flow.id),
            Some(json!({ "token": "ZW5jcnlwdGVkLWJpb21ldHJpYy10b2tlbg" })),
        )
        .await?;
        let (credential, phone) = self.register_credential(rec, &flow).await?;
        self.outcome(rec, &flow.run).await?;
        self.finish(rec, &flow.id).await?;
        Ok(VirtualUser {
            external_id,
            credential,
            sign_count: 0,
            phone,
        })
    }

    /// One complete flow of `scenario` for `vu` (registration enrols a new user
    /// and leaves `vu` as it is).
    pub(crate) async fn run(
        &self,
        scenario: Scenario,
        rec: &mut Recorder,
        vu: &mut VirtualUser,
    ) -> anyhow::Result<()> {
        if let Some(flow) = scenario.creates_only() {
            return self.create(rec, creation(flow, vu)).await.map(drop);
        }
        if scenario.yardstick() {
            let (step, path) = match scenario {
                Scenario::Yardstick => (YARDSTICK, format!("/yardstick/{}", vu.external_id)),
                _ => (
                    YARDSTICK_ONE_STATEMENT,
                    format!("/yardstick/{}/one-statement", vu.external_id),
                ),
            };
            let body = json!({ "kind": "flow.created", "detail": {
                "correlation_id": unique("bench-correlation"), "actor": "api_key:bench",
                "flow_type": "sign_in", "reason": "requested by the customer's backend",
            }});
            return self
                .call(rec, step, reqwest::Method::POST, &path, Some(body))
                .await
                .map(drop);
        }
        match scenario.flow() {
            Scenario::Registration => self.register(rec).await.map(drop),
            Scenario::SignIn => {
                let flow = self
                    .create(
                        rec,
                        json!({ "type": "sign_in", "external_user_id": vu.external_id }),
                    )
                    .await?;
                self.assert(rec, &flow, vu).await?;
                self.finish(rec, &flow.id).await
            }
            Scenario::StepUp | Scenario::StepUpWebhook => {
                let flow = self
                    .create(
                        rec,
                        json!({ "type": "step_up", "external_user_id": vu.external_id,
                                "transaction_context": { "payee": "ACME Ltd", "amount": "2500.00 EUR" } }),
                    )
                    .await?;
                self.release(rec, &flow.id).await?;
                self.assert(rec, &flow, vu).await?;
                self.outcome(rec, &flow.run).await?;
                self.finish(rec, &flow.id).await
            }
            _ => {
                // Recovery: a new phone's passkey replaces the old one.
                let flow = self
                    .create(
                        rec,
                        json!({ "type": "recovery", "external_user_id": vu.external_id }),
                    )
                    .await?;
                let (credential, phone) = self.register_credential(rec, &flow).await?;
                self.outcome(rec, &flow.run).await?;
                self.finish(rec, &flow.id).await?;
                vu.credential = credential;
                vu.sign_count = 0;
                vu.phone = phone;
                Ok(())
            }
        }
    }
}

/// The body of `POST /flows` that starts `flow` for `vu` (registration: for
/// a new user), as the complete flows send it.
fn creation(flow: Scenario, vu: &VirtualUser) -> Value {
    match flow {
        Scenario::Registration => {
            json!({ "type": "registration", "external_user_id": unique("bench-user") })
        }
        Scenario::SignIn => json!({ "type": "sign_in", "external_user_id": vu.external_id }),
        Scenario::StepUp => json!({ "type": "step_up", "external_user_id": vu.external_id,
            "transaction_context": { "payee": "ACME Ltd", "amount": "2500.00 EUR" } }),
        _ => json!({ "type": "recovery", "external_user_id": vu.external_id }),
    }
}

/// The yardstick's clients: `users_per_client` accounts each, numbered from
/// 0 as `yardstick::prepare` creates them.
pub(crate) fn yardstick_clients(clients: usize, users_per_client: usize) -> Vec<Client> {
    (0..clients.max(1))
        .map(|c| Client {
            users: (0..users_per_client.max(1))
                .map(|u| VirtualUser {
                    external_id: (c * users_per_client.max(1) + u).to_string(),
                    credential: String::new(),
                    sign_count: 0,
                    phone: None,
                })
                .collect(),
            next: 0,
        })
        .collect()
}

/// Registers `clients × users_per_client` users, `concurrency` at a time,
/// and deals them out to `clients` clients.
pub(crate) async fn enrol(
    target: &Target,
    clients: usize,
    users_per_client: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Client>> {
    let (clients, per_client) = (clients.max(1), users_per_client.max(1));
    let n = clients * per_client;
    let (tx, mut rx) = mpsc::channel(n);
    let mut tasks = Vec::new();
    let per_task = n.div_ceil(concurrency.max(1));
    for _ in 0..concurrency.max(1) {
        let (target, tx) = (target.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            for _ in 0..per_task {
                let vu = target.register(&mut rec).await?;
                if tx.send(vu).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    let mut hands: Vec<Vec<VirtualUser>> = (0..clients).map(|_| Vec::new()).collect();
    let mut dealt = 0;
    while let Some(vu) = rx.recv().await {
        if dealt < n {
            hands[dealt % clients].push(vu);
            dealt += 1;
        }
    }
    for task in tasks {
        task.await??;
    }
    Ok(hands
        .into_iter()
        .map(|users| Client { users, next: 0 })
        .collect())
}

fn note_error(rec: &mut Recorder, e: anyhow::Error) {
    rec.errors += 1;
    if rec.first_error.is_none() {
        rec.first_error = Some(format!("{e:#}"));
    }
}

/// Each client runs `scenario` back to back for `duration`, its users in turn.
pub(crate) async fn closed_loop(
    target: &Target,
    scenario: Scenario,
    clients: Vec<Client>,
    duration: Duration,
) -> (Recorder, Vec<Client>) {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for mut client in clients {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < deadline {
                let started = Instant::now();
                let outcome = target.run(scenario, &mut rec, client.take_turn()).await;
                rec.outcome(outcome, started);
            }
            (rec, client)
        }));
    }
    let mut clients = Vec::new();
    let mut recs = Vec::new();
    for task in tasks {
        match task.await {
            Ok((rec, client)) => {
                recs.push(rec);
                clients.push(client);
            }
            Err(_) => recs.push(Recorder {
                errors: 1,
                ..Recorder::default()
            }),
        }
    }
    (merge(recs), clients)
}

/// Flows started at `rate` per second for `duration`, each by a free
/// client (for its next user); a flow's latency counts from its scheduled
/// start. Each client carries its own recorder from flow to flow, so that
/// the generator allocates no histograms per flow (which would cost it CPU
/// the services need).
pub(crate) async fn fixed_rate(
    target: &Target,
    scenario: Scenario,
    clients: Vec<Client>,
    rate: f64,
    duration: Duration,
) -> (Recorder, Vec<Client>) {
    let (free_tx, free_rx) = mpsc::unbounded_channel::<(Client, Recorder)>();
    let free_rx = Arc::new(Mutex::new(free_rx));
    let start = Instant::now();
    for client in clients {
        let _ = free_tx.send((client, Recorder::default()));
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let total = (duration.as_secs_f64() * rate).floor() as u64;
    let mut tasks = Vec::new();
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (target, free_rx, free_tx) = (target.clone(), free_rx.clone(), free_tx.clone());
        tasks.push(tokio::spawn(async move {
            let free = free_rx.lock().await.recv().await;
            let Some((mut client, mut rec)) = free else {
                return;
            };
            let outcome = target.run(scenario, &mut rec, client.take_turn()).await;
            rec.outcome(outcome, scheduled);
            let _ = free_tx.send((client, rec));
        }));
    }
    let mut panicked = Recorder::default();
    for task in tasks {
        if task.await.is_err() {
            note_error(&mut panicked, anyhow::anyhow!("a flow's task panicked"));
        }
    }
    drop(free_tx);
    let mut clients = Vec::new();
    let mut recs = vec![panicked];
    while let Ok((client, rec)) = free_rx.lock().await.try_recv() {
        clients.push(client);
        recs.push(rec);
    }
    (merge(recs), clients)
}

/// Each task's recorder; a task that panicked counts as one error.
async fn join(tasks: Vec<tokio::task::JoinHandle<Recorder>>) -> Vec<Recorder> {
    let mut recs = Vec::new();
    for task in tasks {
        recs.push(task.await.unwrap_or(Recorder {
            errors: 1,
            ..Recorder::default()
        }));
    }
    recs
}

pub(crate) fn merge(recs: Vec<Recorder>) -> Recorder {
    let mut all = Recorder::default();
    for rec in recs {
        for (step, h) in rec.steps {
            let _ = all.steps.entry(step).or_insert_with(new_histogram).add(h);
        }
        if let Some(h) = rec.flows {
            let _ = all.flows.get_or_insert_with(new_histogram).add(h);
        }
        all.errors += rec.errors;
        if all.first_error.is_none() {
            all.first_error = rec.first_error;
        }
    }
    all
}

/// Flows waiting for their identity result: `per_user` step-up flows of each
/// user, made by each client for its users, their runs settled at the
/// provider. Returns the run ids.
pub(crate) async fn awaiting_runs(
    target: &Target,
    clients: &[Client],
    per_user: usize,
) -> anyhow::Result<Vec<String>> {
    let webhooks = target.webhooks.clone().context("a webhook target")?;
    let mut tasks = Vec::new();
    for client in clients {
        let users: Vec<String> = client
            .users
            .iter()
            .map(|vu| vu.external_id.clone())
            .collect();
        let (target, webhooks) = (target.clone(), webhooks.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let mut runs = Vec::new();
            for user in users.iter().cycle().take(per_user * users.len()) {
                let run = target
                    .create(
                        &mut rec,
                        json!({ "type": "step_up", "external_user_id": user }),
                    )
                    .await?
                    .run;
                target.settle(&webhooks, &run).await;
                runs.push(run);
            }
            anyhow::Ok(runs)
        }));
    }
    let mut runs = Vec::new();
    for task in tasks {
        runs.extend(task.await??);
    }
    Ok(runs)
}

/// Delivers one signed webhook per run, `clients` at a time, as fast as they
/// are answered.
pub(crate) async fn deliver_all(target: &Target, runs: Vec<String>, clients: usize) -> Recorder {
    let Some(webhooks) = target.webhooks.clone() else {
        return Recorder {
            errors: 1,
            first_error: Some("not a webhook target".into()),
            ..Recorder::default()
        };
    };
    let queue = Arc::new(Mutex::new(runs));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (target, webhooks, queue) = (target.clone(), webhooks.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let run = queue.lock().await.pop();
                let Some(run) = run else { break };
                let started = Instant::now();
                let outcome = target.post_webhook(&mut rec, &webhooks, &run).await;
                rec.outcome(outcome, started);
            }
            rec
        }));
    }
    merge(join(tasks).await)
}

#[cfg(test)]
mod tests {
    use domain::possession::PasskeyUser;
    use url::Url;
    use uuid::Uuid;
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;

    use crate::webauthn::{ORIGIN, relying_party};

    /// A phone's registration at the relying party of `bench webauthn`, and
    /// how the relying party judged it.
    fn registered_format(options_attestation: Option<&str>) -> String {
        let origin = Url::parse(ORIGIN).unwrap();
        let rp = relying_party().unwrap();
        let user = PasskeyUser {
            handle: Uuid::from_u128(7),
            name: "customer-7",
            display_name: "customer-7",
        };
        let mut start = rp.start_registration(user, &[]).unwrap();
        match options_attestation {
            Some(a) => start.options["attestation"] = a.into(),
            None => _ = start.options.as_object_mut().unwrap().remove("attestation"),
        }
        let mut phone = SoftPasskey::new(true);
        let response = super::registration_response(&mut phone, &origin, &start.options).unwrap();
        rp.verify_registration(&start.state, &response)
            .unwrap()
            .attestation_format
    }

    #[test]
    fn a_phone_answers_a_request_for_no_attestation_with_none() {
        assert_eq!(registered_format(Some("none")), "none");
        assert_eq!(registered_format(None), "none");
    }

    #[test]
    fn a_phone_asked_for_attestation_keeps_its_statement() {
        assert_eq!(registered_format(Some("direct")), "packed");
    }

    #[test]
    fn ids_are_base64url_without_padding() {
        assert_eq!(
            super::b64("walkthrough-passkey"),
            "d2Fsa3Rocm91Z2gtcGFzc2tleQ"
        );
        assert_eq!(super::b64("ab"), "YWI");
    }

    #[test]
    fn a_client_takes_its_users_in_turn() {
        let user = |id: &str| super::VirtualUser {
            external_id: id.into(),
            credential: String::new(),
            sign_count: 0,
            phone: None,
        };
        let mut client = super::Client {
            users: vec![user("a"), user("b"), user("c")],
            next: 0,
        };
        let turns: Vec<String> = (0..7)
            .map(|_| client.take_turn().external_id.clone())
            .collect();
        assert_eq!(turns, ["a", "b", "c", "a", "b", "c", "a"]);
    }
}
