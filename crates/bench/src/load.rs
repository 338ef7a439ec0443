//! The load: virtual users running complete flows over HTTP, closed-loop (as
//! fast as the service answers) or started at a fixed rate (latency measured
//! from each flow's scheduled start, so a slow service cannot hide its queue).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

/// The four flows of the Core API, and step-up again with the IDV result
/// arriving as a signed provider webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Scenario {
    Registration,
    SignIn,
    StepUp,
    Recovery,
    StepUpWebhook,
}

impl Scenario {
    pub(crate) const ALL: [Self; 5] = [
        Self::Registration,
        Self::SignIn,
        Self::StepUp,
        Self::Recovery,
        Self::StepUpWebhook,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::SignIn => "sign_in",
            Self::StepUp => "step_up",
            Self::Recovery => "recovery",
            Self::StepUpWebhook => "step_up_webhook",
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

/// Latencies in microseconds, per step and per whole flow, and errors.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) steps: BTreeMap<Step, Histogram<u64>>,
    pub(crate) flows: Option<Histogram<u64>>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Recorder {
    fn step(&mut self, step: Step, micros: u64) {
        self.steps
            .entry(step)
            .or_insert_with(new_histogram)
            .saturating_record(micros.max(1));
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
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// A user of the service with a passkey, driven by one task at a time.
#[derive(Debug, Clone)]
pub(crate) struct VirtualUser {
    pub(crate) external_id: String,
    pub(crate) credential: String,
    pub(crate) sign_count: u64,
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
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// How IDV results reach a target in webhook mode: signed deliveries, and the
/// provider double to settle the run at first (the product re-reads it there).
#[derive(Clone)]
pub(crate) struct Webhooks {
    pub(crate) double: Option<Arc<testkit::onfido_double::OnfidoDouble>>,
    pub(crate) secret: String,
}

/// A service under load.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) base: String,
    client: reqwest::Client,
    webhooks: Option<Webhooks>,
}

impl Target {
    pub(crate) fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(30))
                .build()?,
            webhooks: None,
        })
    }

    /// The same service, with IDV results delivered as signed webhooks.
    pub(crate) fn with_webhooks(&self, webhooks: Webhooks) -> Self {
        Self {
            webhooks: Some(webhooks),
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
        let response = request.send().await.context(step)?;
        let status = response.status();
        let bytes = response.bytes().await?;
        rec.step(step, started.elapsed().as_micros() as u64);
        if !status.is_success() {
            bail!("{step}: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn create(&self, rec: &mut Recorder, body: Value) -> anyhow::Result<(String, String)> {
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
        Ok((id, run))
    }

    async fn finish(&self, rec: &mut Recorder, id: &str) -> anyhow::Result<()> {
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

    async fn outcome(&self, rec: &mut Recorder, run: &str) -> anyhow::Result<()> {
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
        rec.step(WEBHOOK, started.elapsed().as_micros() as u64);
        if !status.is_success() {
            bail!("{WEBHOOK}: HTTP {status}: {text}");
        }
        Ok(())
    }

    async fn register_credential(
        &self,
        rec: &mut Recorder,
        id: &str,
        credential: &str,
    ) -> anyhow::Result<()> {
        self.call(
            rec,
            POSSESSION,
            reqwest::Method::POST,
            &format!("/api/core/v1/flows/{id}/possession"),
            Some(json!({ "credential": {
                "id": credential, "sign_count": 0, "transports": ["internal"], "platform": "android"
            }})),
        )
        .await
        .map(drop)
    }

    async fn assert(
        &self,
        rec: &mut Recorder,
        id: &str,
        vu: &mut VirtualUser,
    ) -> anyhow::Result<()> {
        vu.sign_count += 1;
        self.call(
            rec,
            POSSESSION,
            reqwest::Method::POST,
            &format!("/api/core/v1/flows/{id}/possession"),
            Some(json!({ "assertion": { "credential_id": vu.credential, "sign_count": vu.sign_count } })),
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
        let credential = b64(&unique("passkey"));
        let (id, run) = self
            .create(
                rec,
                json!({ "type": "registration", "external_user_id": external_id }),
            )
            .await?;
        self.call(
            rec,
            STORE_REFERENCE,
            reqwest::Method::PUT,
            &format!("/api/core/v1/flows/{id}/biometric-reference"),
            Some(json!({ "token": "ZW5jcnlwdGVkLWJpb21ldHJpYy10b2tlbg" })),
        )
        .await?;
        self.register_credential(rec, &id, &credential).await?;
        self.outcome(rec, &run).await?;
        self.finish(rec, &id).await?;
        Ok(VirtualUser {
            external_id,
            credential,
            sign_count: 0,
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
        match scenario {
            Scenario::Registration => self.register(rec).await.map(drop),
            Scenario::SignIn => {
                let (id, _) = self
                    .create(
                        rec,
                        json!({ "type": "sign_in", "external_user_id": vu.external_id }),
                    )
                    .await?;
                self.assert(rec, &id, vu).await?;
                self.finish(rec, &id).await
            }
            Scenario::StepUp | Scenario::StepUpWebhook => {
                let (id, run) = self
                    .create(
                        rec,
                        json!({ "type": "step_up", "external_user_id": vu.external_id,
                                "transaction_context": { "payee": "ACME Ltd", "amount": "2500.00 EUR" } }),
                    )
                    .await?;
                self.release(rec, &id).await?;
                self.assert(rec, &id, vu).await?;
                self.outcome(rec, &run).await?;
                self.finish(rec, &id).await
            }
            Scenario::Recovery => {
                let (id, run) = self
                    .create(
                        rec,
                        json!({ "type": "recovery", "external_user_id": vu.external_id }),
                    )
                    .await?;
                let credential = b64(&unique("passkey"));
                self.register_credential(rec, &id, &credential).await?;
                self.outcome(rec, &run).await?;
                self.finish(rec, &id).await?;
                vu.credential = credential;
                vu.sign_count = 0;
                Ok(())
            }
        }
    }
}

/// Registers `n` users, `concurrency` at a time.
pub(crate) async fn enrol(
    target: &Target,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<VirtualUser>> {
    let (tx, mut rx) = mpsc::channel(n.max(1));
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
    let mut users = Vec::new();
    while let Some(vu) = rx.recv().await {
        users.push(vu);
    }
    for task in tasks {
        task.await??;
    }
    users.truncate(n);
    Ok(users)
}

fn note_error(rec: &mut Recorder, e: anyhow::Error) {
    rec.errors += 1;
    if rec.first_error.is_none() {
        rec.first_error = Some(format!("{e:#}"));
    }
}

/// Each user runs `scenario` back to back for `duration`.
pub(crate) async fn closed_loop(
    target: &Target,
    scenario: Scenario,
    users: Vec<VirtualUser>,
    duration: Duration,
) -> (Recorder, Vec<VirtualUser>) {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for mut vu in users {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < deadline {
                let started = Instant::now();
                let outcome = target.run(scenario, &mut rec, &mut vu).await;
                rec.outcome(outcome, started);
            }
            (rec, vu)
        }));
    }
    let mut users = Vec::new();
    let mut recs = Vec::new();
    for task in tasks {
        match task.await {
            Ok((rec, vu)) => {
                recs.push(rec);
                users.push(vu);
            }
            Err(_) => recs.push(Recorder {
                errors: 1,
                ..Recorder::default()
            }),
        }
    }
    (merge(recs), users)
}

/// Flows started at `rate` per second for `duration`, each by a free user;
/// a flow's latency counts from its scheduled start.
pub(crate) async fn fixed_rate(
    target: &Target,
    scenario: Scenario,
    users: Vec<VirtualUser>,
    rate: f64,
    duration: Duration,
) -> (Recorder, Vec<VirtualUser>) {
    let (free_tx, free_rx) = mpsc::unbounded_channel::<VirtualUser>();
    let free_rx = Arc::new(Mutex::new(free_rx));
    for vu in users {
        let _ = free_tx.send(vu);
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let start = Instant::now();
    let total = (duration.as_secs_f64() * rate).floor() as u64;
    let mut tasks = Vec::new();
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (target, free_rx, free_tx) = (target.clone(), free_rx.clone(), free_tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let vu = free_rx.lock().await.recv().await;
            let Some(mut vu) = vu else { return rec };
            let outcome = target.run(scenario, &mut rec, &mut vu).await;
            rec.outcome(outcome, scheduled);
            let _ = free_tx.send(vu);
            rec
        }));
    }
    let recs = join(tasks).await;
    drop(free_tx);
    let mut users = Vec::new();
    while let Ok(vu) = free_rx.lock().await.try_recv() {
        users.push(vu);
    }
    (merge(recs), users)
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
/// user, their runs settled at the provider. Returns the run ids.
pub(crate) async fn awaiting_runs(
    target: &Target,
    users: &[VirtualUser],
    per_user: usize,
) -> anyhow::Result<Vec<String>> {
    let webhooks = target.webhooks.clone().context("a webhook target")?;
    let mut tasks = Vec::new();
    for vu in users {
        let (target, webhooks, user) = (target.clone(), webhooks.clone(), vu.external_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let mut runs = Vec::new();
            for _ in 0..per_user {
                let (_, run) = target
                    .create(
                        &mut rec,
                        json!({ "type": "step_up", "external_user_id": user }),
                    )
                    .await?;
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
    #[test]
    fn ids_are_base64url_without_padding() {
        assert_eq!(
            super::b64("walkthrough-passkey"),
            "d2Fsa3Rocm91Z2gtcGFzc2tleQ"
        );
        assert_eq!(super::b64("ab"), "YWI");
    }
}
