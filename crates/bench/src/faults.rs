//! The fault suite's load and its check (`scripts/faults`): complete flows of
//! every type at a steady rate through the load balancer, every call written
//! to a journal; then, after a fault, one line of figures read from that
//! journal and from the database: calls, errors by code, the slowest failure,
//! seconds to recover after the fault ended, and lost writes (a call answered
//! 2xx whose effect the database does not hold).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::load::{self, Recorder, Scenario, Step, Target, VirtualUser};

/// One call as the load balancer answered it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Milliseconds since the Unix epoch when it was sent and answered (or
    /// failed), comparable with `date +%s%3N` in the script.
    pub(crate) sent: u64,
    pub(crate) done: u64,
    pub(crate) step: String,
    pub(crate) path: String,
    /// 0 when no HTTP answer came (connection refused or reset).
    pub(crate) status: u16,
    /// The error body's code, for an answer that is not 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    /// The flow a 2xx answer described, and its state there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<String>,
}

impl Entry {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// How a failure is counted: its error code, else its status, else
    /// `no_answer`.
    fn failure(&self) -> String {
        match (&self.code, self.status) {
            (Some(code), status) => format!("{status} {code}"),
            (None, 0) => "no_answer".to_owned(),
            (None, status) => format!("{status} without a code"),
        }
    }

    /// The path's segment after `/flows/` or `/runs/`.
    fn id_after(&self, marker: &str) -> Option<&str> {
        let (_, rest) = self.path.split_once(marker)?;
        rest.split('/').next().filter(|id| !id.is_empty())
    }
}

/// The load generator's record of every call, one JSON line each.
pub(crate) struct Journal(Mutex<std::io::BufWriter<std::fs::File>>);

impl Journal {
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("while creating {}", path.display()))?;
        Ok(Self(Mutex::new(std::io::BufWriter::new(file))))
    }

    /// Wall-clock milliseconds: the script marks a fault's start and end on
    /// the same clock.
    pub(crate) fn now() -> u64 {
        #[allow(clippy::disallowed_methods)] // Wall time, to meet the script's marks.
        let now = std::time::SystemTime::now();
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Writes one call: `answer` is its status and body, `None` when none came.
    pub(crate) fn call(
        &self,
        step: Step,
        path: &str,
        sent: u64,
        answer: Option<(reqwest::StatusCode, &[u8])>,
    ) {
        let mut entry = Entry {
            sent,
            done: Self::now(),
            step: step.to_owned(),
            path: path.to_owned(),
            status: 0,
            code: None,
            flow: None,
            state: None,
        };
        if let Some((status, body)) = answer {
            entry.status = status.as_u16();
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if status.is_success() {
                if let (Some(id), Some(state)) = (body["id"].as_str(), body["state"].as_str()) {
                    entry.flow = Some(id.to_owned());
                    entry.state = Some(state.to_owned());
                }
            } else {
                entry.code = body["error"]["code"].as_str().map(str::to_owned);
            }
        }
        if let (Ok(line), Ok(mut out)) = (serde_json::to_string(&entry), self.0.lock()) {
            let _ = writeln!(out, "{line}");
        }
    }

    pub(crate) fn flush(&self) -> anyhow::Result<()> {
        if let Ok(mut out) = self.0.lock() {
            out.flush()?;
        }
        Ok(())
    }
}

/// The steady load of `scripts/faults`.
pub(crate) struct LoadOptions {
    pub(crate) base: String,
    /// Complete flows started per second, the four types in turn.
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
    /// Users enrolled first, for sign-in, step-up and recovery.
    pub(crate) users: usize,
    /// Flows in flight at most; a flow due when that many are is skipped.
    pub(crate) max_in_flight: usize,
    pub(crate) journal: PathBuf,
    /// The provider double's control URL (`onfido` mode); none for the
    /// synthetic provider.
    pub(crate) control: Option<String>,
    /// The double answers a run's completion at once and delivers its
    /// webhook afterwards (as the provider answers its SDK first).
    pub(crate) background_delivery: bool,
    /// How long each user of the steady load takes at the provider before
    /// their run is completed (users are enrolled without it).
    pub(crate) capture: Duration,
}

const TYPES: [Scenario; 4] = [
    Scenario::Registration,
    Scenario::SignIn,
    Scenario::StepUp,
    Scenario::Recovery,
];

/// The line the load prints once its users are enrolled (`scripts/faults`
/// waits for it).
const STEADY_LOAD_STARTED: &str = "faults: load: steady load started";

#[allow(clippy::print_stdout)] // The command's output.
pub(crate) async fn load(options: LoadOptions) -> anyhow::Result<()> {
    let journal = Arc::new(Journal::create(&options.journal)?);
    let mut target = Target::new(&options.base)?.with_journal(journal.clone());
    if let Some(control) = options.control {
        target = target.with_control(control);
    }
    if options.background_delivery {
        target = target.with_background_delivery();
    }
    // Users, enrolled before the load (their registrations are journalled
    // and checked like the others).
    let mut users = Vec::new();
    let enrol_by = Instant::now() + Duration::from_secs(60);
    while users.len() < options.users {
        match target.register(&mut Recorder::default()).await {
            Ok(user) => users.push(user),
            Err(e) if Instant::now() > enrol_by => return Err(e.context("while enrolling users")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    // The script injects its fault once the steady load runs.
    println!("{STEADY_LOAD_STARTED} ({} users enrolled)", users.len());
    let target = target.with_capture(options.capture);
    let pool: Arc<Mutex<Vec<VirtualUser>>> = Arc::new(Mutex::new(users));
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let (flows, failed, skipped) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(0.1));
    let total = (options.duration.as_secs_f64() * options.rate).floor() as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until((start + interval.mul_f64(i as f64)).into()).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let scenario = TYPES[(i % TYPES.len() as u64) as usize];
        let user = if scenario == Scenario::Registration {
            None
        } else {
            match pool.lock().ok().and_then(|mut users| users.pop()) {
                Some(user) => Some(user),
                None => {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        };
        let (target, pool, flows, failed) =
            (target.clone(), pool.clone(), flows.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let mut rec = Recorder::default();
            flows.fetch_add(1, Ordering::Relaxed);
            let Some(mut user) = user else {
                // A registration enrols a new user; it joins the others.
                match target.register(&mut rec).await {
                    Ok(user) => {
                        if let Ok(mut users) = pool.lock() {
                            users.insert(0, user);
                        }
                    }
                    Err(_) => _ = failed.fetch_add(1, Ordering::Relaxed),
                }
                return;
            };
            let outcome = target.run(scenario, &mut rec, &mut user).await;
            // A recovery that failed part-way leaves the user's passkey
            // unknown: that user runs no more flows.
            if outcome.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            if (outcome.is_ok() || scenario != Scenario::Recovery)
                && let Ok(mut users) = pool.lock()
            {
                users.insert(0, user);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    journal.flush()?;
    println!(
        "faults: load: {} flows started ({} failed), {} skipped, in {:.0} s",
        flows.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        skipped.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Serves the provider double for the Core API replicas (`onfido` mode),
/// delivering webhooks to `webhook_url` and retrying a failed delivery for
/// about a minute, as the provider does; writes to `info`, one a line, its
/// API's base URL (behind a front listener an outage can close), its
/// control's URL and its outage switch's URL (see [`outage_switch`]), and
/// serves until killed.
pub(crate) async fn double(webhook_url: String, info: &Path) -> anyhow::Result<()> {
    let double = Arc::new(
        testkit::onfido_double::OnfidoDouble::start(testkit::onfido_double::OnfidoDoubleConfig {
            webhook_url: Some(webhook_url),
            webhook_retries: 600,
            ..Default::default()
        })
        .await,
    );
    let backend: std::net::SocketAddr = url::Url::parse(&double.base_url())?
        .socket_addrs(|| None)?
        .into_iter()
        .next()
        .context("the double's address")?;
    let front = reusable_listener("127.0.0.1:0".parse()?)?;
    let front_addr = front.local_addr()?;
    let (open, opened) = tokio::sync::watch::channel(true);
    tokio::spawn(serve_front(front, backend, opened));
    let switch = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let switch_url = format!("http://{}", switch.local_addr()?);
    let app = outage_switch(double.clone(), Arc::new(open));
    tokio::spawn(async move {
        let _ = axum::serve(switch, app).await;
    });
    std::fs::write(
        info,
        format!(
            "http://{front_addr}/v3.6\n{}\n{switch_url}\n",
            double.control_url()
        ),
    )?;
    std::future::pending::<()>().await;
    Ok(())
}

/// How the provider double answers during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outage {
    /// Answers normally.
    None,
    /// Its API's port refuses connections (open ones are cut).
    Refused,
    /// Every API call is answered 500 with the provider's error envelope,
    /// and nothing is processed.
    Failing,
    /// Every API call is processed and answered after [`SLOW_ANSWER`],
    /// beyond the product's per-call timeout (10 s).
    Slow,
}

/// How late the double answers while [`Outage::Slow`].
pub(crate) const SLOW_ANSWER: Duration = Duration::from_secs(11);

impl Outage {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "refused" => Some(Self::Refused),
            "failing" => Some(Self::Failing),
            "slow" => Some(Self::Slow),
            _ => None,
        }
    }

    fn fault(self) -> Option<testkit::onfido_double::Fault> {
        match self {
            Self::Failing => Some(testkit::onfido_double::Fault::ServerError),
            Self::Slow => Some(testkit::onfido_double::Fault::Delay(SLOW_ANSWER)),
            Self::None | Self::Refused => None,
        }
    }
}

/// Every API route of the double an outage affects.
const ROUTES: [testkit::onfido_double::Route; 6] = [
    testkit::onfido_double::Route::CreateApplicant,
    testkit::onfido_double::Route::DeleteApplicant,
    testkit::onfido_double::Route::CreateRun,
    testkit::onfido_double::Route::ReadRun,
    testkit::onfido_double::Route::ListRuns,
    testkit::onfido_double::Route::BiometricTokens,
];

/// Puts the double into `outage`: its front open or closed, and every route
/// faulted or not.
fn set_outage(
    double: &testkit::onfido_double::OnfidoDouble,
    open: &tokio::sync::watch::Sender<bool>,
    outage: Outage,
) {
    for route in ROUTES {
        match outage.fault() {
            Some(fault) => double.set_route_fault(route, fault, usize::MAX),
            None => double.set_route_fault(route, testkit::onfido_double::Fault::ServerError, 0),
        }
    }
    let _ = open.send(outage != Outage::Refused);
}

/// The double's outage switch: `POST /outage/{none|refused|failing|slow}`,
/// and `GET /runs`, every run the double holds (`id`, `created_at`).
fn outage_switch(
    double: Arc<testkit::onfido_double::OnfidoDouble>,
    open: Arc<tokio::sync::watch::Sender<bool>>,
) -> axum::Router {
    use axum::extract::Path as UrlPath;
    use axum::http::StatusCode;
    let switched = double.clone();
    axum::Router::new()
        .route(
            "/outage/{mode}",
            axum::routing::post(move |UrlPath(mode): UrlPath<String>| async move {
                match Outage::parse(&mode) {
                    Some(outage) => {
                        set_outage(&switched, &open, outage);
                        StatusCode::NO_CONTENT
                    }
                    None => StatusCode::NOT_FOUND,
                }
            }),
        )
        .route(
            "/runs",
            axum::routing::get(move || async move {
                let runs: Vec<Value> = double
                    .run_ids()
                    .into_iter()
                    .filter_map(|id| double.run(&id))
                    .map(
                        |run| serde_json::json!({"id": run["id"], "created_at": run["created_at"]}),
                    )
                    .collect();
                axum::Json(runs)
            }),
        )
}

/// A listener on `addr` that may be bound again as soon as it is closed.
fn reusable_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Forwards connections on `listener` to `backend` while `open` says so;
/// when it turns false the port is closed (connections to it are refused)
/// and open connections are cut, and when it turns true again the same port
/// is bound again.
async fn serve_front(
    listener: tokio::net::TcpListener,
    backend: std::net::SocketAddr,
    mut open: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(current) => current,
            None => {
                while !*open.borrow_and_update() {
                    if open.changed().await.is_err() {
                        return;
                    }
                }
                match reusable_listener(addr) {
                    Ok(bound) => bound,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
        };
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = current.accept() => {
                    if let Ok((mut inbound, _)) = accepted {
                        connections.spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                                let _ = inbound.set_nodelay(true);
                                let _ = outbound.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                }
                changed = open.changed() => {
                    if changed.is_err() || !*open.borrow_and_update() {
                        break;
                    }
                }
                Some(_) = connections.join_next() => {}
            }
        }
        drop(current);
        connections.shutdown().await;
    }
}

/// What `bench faults check` is given.
pub(crate) struct CheckOptions {
    pub(crate) scenario: String,
    pub(crate) journal: PathBuf,
    pub(crate) database: String,
    /// When the fault began and ended (ms since the epoch); none for a
    /// run without a fault.
    pub(crate) fault: Option<(u64, u64)>,
    /// No call may fail at all (a rolling deploy).
    pub(crate) strict: bool,
    /// A replica was killed at the fault's start: the calls it was serving
    /// then have no answer (or HAProxy's 502), and are counted apart.
    pub(crate) killed: bool,
    /// The fault was the provider's outage: a call that needs the provider
    /// may take up to [`PROVIDER_FAIL_SECONDS`] to fail, recovery is timed
    /// by the calls sent after the fault, and every run the double created
    /// during the scenario must be known to a flow (none orphaned).
    pub(crate) provider_outage: Option<ProviderOutage>,
}

/// The provider outage's check: where the double lists its runs.
pub(crate) struct ProviderOutage {
    pub(crate) runs_url: String,
}

/// The kill follows the script's mark by this at most.
const KILL_LANDS_WITHIN_MS: u64 = 1_000;

/// How the calls a killed replica was serving are counted.
const CUT_OFF: &str = "cut off by the kill";

/// The figures of one scenario.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Figures {
    pub(crate) calls: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    /// The longest a failed call took, in seconds.
    pub(crate) slowest_failure: f64,
    /// From the fault's end to the last failed call's answer, in seconds.
    pub(crate) recovered_after: f64,
    pub(crate) lost: Vec<String>,
    pub(crate) impossible: Vec<String>,
    /// Flows whose run the provider completed that never completed.
    pub(crate) stuck: Vec<String>,
    /// Runs the provider created that no flow knows of (when looked for).
    pub(crate) orphaned: Option<Vec<String>>,
    /// The longest a failed call may take, when not [`FAIL_FAST_SECONDS`].
    pub(crate) fail_within: Option<f64>,
}

impl Figures {
    pub(crate) fn line(&self, scenario: &str) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(code, n)| format!("{n} × {code}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "faults: {scenario}: {} calls, errors: {errors}; slowest failure {:.1} s; \
             recovered {:.1} s after the fault; lost writes {}; impossible flows {}; \
             stuck flows {}{}",
            self.calls,
            self.slowest_failure,
            self.recovered_after,
            self.lost.len(),
            self.impossible.len(),
            self.stuck.len(),
            self.orphaned
                .as_ref()
                .map(|o| format!("; orphaned runs {}", o.len()))
                .unwrap_or_default()
        )
    }

    /// What the product must meet, as sentences; empty when it does.
    pub(crate) fn breaches(&self, strict: bool) -> Vec<String> {
        let mut breaches = Vec::new();
        let failures: usize = self.errors.values().sum();
        if strict && failures > 0 {
            breaches.push(format!("{failures} failed calls where none may fail"));
        }
        for code in self.errors.keys() {
            if !code.starts_with("503 ") && code != CUT_OFF {
                breaches.push(format!("calls failed with {code}, not 503 and a code"));
            }
        }
        let fail_within = self.fail_within.unwrap_or(FAIL_FAST_SECONDS);
        if self.slowest_failure > fail_within {
            breaches.push(format!(
                "a call took {:.1} s to fail (at most {fail_within} s)",
                self.slowest_failure
            ));
        }
        if self.recovered_after > RECOVER_SECONDS {
            breaches.push(format!(
                "calls failed {:.1} s after the fault ended (at most {RECOVER_SECONDS} s)",
                self.recovered_after
            ));
        }
        breaches.extend(self.lost.iter().map(|l| format!("lost write: {l}")));
        breaches.extend(
            self.impossible
                .iter()
                .map(|l| format!("impossible flow: {l}")),
        );
        breaches.extend(self.stuck.iter().map(|l| format!("stuck flow: {l}")));
        breaches.extend(
            self.orphaned
                .iter()
                .flatten()
                .map(|l| format!("orphaned run: {l}")),
        );
        breaches
    }
}

/// A call fails within this during a fault (the pool's bounded wait for a
/// connection, with the load balancer's and the call's own time on top).
const FAIL_FAST_SECONDS: f64 = 5.5;
/// Errors stop within this after the fault ends.
const RECOVER_SECONDS: f64 = 5.0;
/// During a provider outage a call that needs the provider fails within
/// this: the flow's creation waits on the provider for 4 s at most
/// (`domain::idv::RUN_CREATION_BUDGET`), with the call's own time on top.
const PROVIDER_FAIL_SECONDS: f64 = 5.5;
/// After a provider outage, the failed flows whose run the provider may
/// hold are looked up by the reconciler (every 30 s, once
/// `BIOMETRIC_PASSKEY_IDV_RECONCILE_AFTER` has passed): the check waits
/// this long at most for every look-up to be done.
const LOOKUPS_DONE_WITHIN: Duration = Duration::from_secs(90);

pub(crate) fn read_journal(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let mut entries = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            entries.push(serde_json::from_str(&line).context("a journal line")?);
        }
    }
    Ok(entries)
}

/// A flow as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlowRow {
    pub(crate) flow_type: String,
    pub(crate) state: String,
    pub(crate) identity_status: String,
    pub(crate) idv_run: Option<String>,
    pub(crate) possession_done: bool,
    pub(crate) credential: Option<String>,
}

/// What the database holds, as far as the check needs it.
#[derive(Debug, Default)]
pub(crate) struct Database {
    pub(crate) flows: HashMap<String, FlowRow>,
    /// Credentials by the flow that created them.
    pub(crate) credentials_by_flow: HashSet<String>,
    pub(crate) credentials: HashSet<String>,
    /// (event type, flow id) of every audit event about a flow.
    pub(crate) flow_events: HashSet<(String, String)>,
}

/// How far a flow has come; a terminal failure is as far as completion.
fn rank(state: &str) -> u8 {
    match state {
        "pending" => 0,
        "awaiting_verification" => 1,
        "verified" | "in_review" => 2,
        _ => 3,
    }
}

const FAILED_ENDS: [&str; 3] = ["failed", "expired", "cancelled"];

/// The writes of 2xx answers that the database does not hold, and the flows
/// in a state no sequence of calls leads to.
pub(crate) fn judge(entries: &[Entry], db: &Database) -> (Vec<String>, Vec<String>) {
    let mut lost = Vec::new();
    let runs: HashMap<&str, &str> = db
        .flows
        .iter()
        .filter_map(|(id, f)| f.idv_run.as_deref().map(|run| (run, id.as_str())))
        .collect();
    for entry in entries.iter().filter(|e| e.ok()) {
        let what = format!("{} {} ({})", entry.step, entry.path, entry.status);
        if let (Some(id), Some(state)) = (&entry.flow, &entry.state) {
            let Some(row) = db.flows.get(id) else {
                lost.push(format!("{what}: flow {id} is not in the database"));
                continue;
            };
            let kept = if state == "completed" || FAILED_ENDS.contains(&state.as_str()) {
                row.state == *state
            } else {
                rank(&row.state) >= rank(state)
            };
            if !kept {
                lost.push(format!(
                    "{what}: flow {id} was answered {state}, the database has {}",
                    row.state
                ));
            }
            if entry.step == load::CREATE
                && !db
                    .flow_events
                    .contains(&("flow.created".to_owned(), id.clone()))
            {
                lost.push(format!("{what}: no flow.created audit event for {id}"));
            }
            if state == "completed" {
                if !db
                    .flow_events
                    .contains(&("flow.completed".to_owned(), id.clone()))
                {
                    lost.push(format!("{what}: no flow.completed audit event for {id}"));
                }
                if matches!(row.flow_type.as_str(), "registration" | "recovery")
                    && !db.credentials_by_flow.contains(id)
                {
                    lost.push(format!("{what}: no credential created by flow {id}"));
                }
            }
        }
        if entry.step == load::POSSESSION
            && let Some(id) = entry.id_after("/flows/")
            && !db.flows.get(id).is_some_and(|f| f.possession_done)
        {
            lost.push(format!("{what}: possession of flow {id} is not recorded"));
        }
        if entry.step == load::OUTCOME
            && let Some(run) = entry.id_after("/runs/")
        {
            let settled = runs
                .get(run)
                .and_then(|id| db.flows.get(*id))
                .is_some_and(|f| {
                    f.identity_status == "verified" || FAILED_ENDS.contains(&f.state.as_str())
                });
            if !settled {
                lost.push(format!("{what}: the outcome of run {run} is not recorded"));
            }
        }
    }
    let mut impossible = Vec::new();
    for (id, f) in &db.flows {
        if f.state != "completed" {
            continue;
        }
        let mut wrong = Vec::new();
        if !f.possession_done {
            wrong.push("without possession");
        }
        if !matches!(f.identity_status.as_str(), "not_required" | "verified") {
            wrong.push("without a verified identity");
        }
        if matches!(f.flow_type.as_str(), "registration" | "recovery")
            && !f
                .credential
                .as_ref()
                .is_some_and(|c| db.credentials.contains(c))
        {
            wrong.push("without its credential");
        }
        if !wrong.is_empty() {
            impossible.push(format!(
                "{} flow {id} completed {}",
                f.flow_type,
                wrong.join(", ")
            ));
        }
    }
    impossible.sort();
    (lost, impossible)
}

/// Calls, errors by code, the slowest failure and the recovery after `fault`.
pub(crate) fn count(entries: &[Entry], fault: Option<(u64, u64)>, killed: bool) -> Figures {
    let product = || {
        entries
            .iter()
            .filter(|e| e.step != load::COMPLETE_AT_PROVIDER)
    };
    let mut figures = Figures {
        calls: product().count(),
        ..Figures::default()
    };
    for entry in product().filter(|e| !e.ok()) {
        let cut_off = killed
            && matches!(entry.status, 0 | 502)
            && fault.is_some_and(|(start, _)| entry.sent <= start + KILL_LANDS_WITHIN_MS);
        let tally = if cut_off {
            CUT_OFF.to_owned()
        } else {
            entry.failure()
        };
        *figures.errors.entry(tally).or_default() += 1;
        let took = entry.done.saturating_sub(entry.sent) as f64 / 1000.0;
        figures.slowest_failure = figures.slowest_failure.max(took);
        if let Some((_, end)) = fault {
            let after = entry.done.saturating_sub(end) as f64 / 1000.0;
            figures.recovered_after = figures.recovered_after.max(after);
        }
    }
    figures
}

/// The flows whose run the provider completed (the double's control
/// answered 2xx) that the database does not hold completed: a result the
/// product never applied, by webhook or reconciler.
pub(crate) fn stuck(entries: &[Entry], db: &Database) -> Vec<String> {
    let runs: HashMap<&str, (&str, &FlowRow)> = db
        .flows
        .iter()
        .filter_map(|(id, f)| f.idv_run.as_deref().map(|run| (run, (id.as_str(), f))))
        .collect();
    let mut stuck = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| e.step == load::COMPLETE_AT_PROVIDER && e.ok())
    {
        match runs.get(entry.path.as_str()) {
            Some((_, f)) if f.state == "completed" => {}
            Some((id, f)) => stuck.push(format!(
                "{} flow {id}: its run {} was approved, the flow is {}",
                f.flow_type, entry.path, f.state
            )),
            None => stuck.push(format!("run {} was approved; no flow holds it", entry.path)),
        }
    }
    stuck.sort();
    stuck
}

/// How many runs were completed at the provider during `fault`, and when
/// the last of their flows was first read completed, in seconds after the
/// fault's end (0 when all were before it).
pub(crate) fn waited(entries: &[Entry], db: &Database, (start, end): (u64, u64)) -> (usize, f64) {
    let flow_of: HashMap<&str, &str> = db
        .flows
        .iter()
        .filter_map(|(id, f)| f.idv_run.as_deref().map(|run| (run, id.as_str())))
        .collect();
    let mut completed: HashMap<&str, u64> = HashMap::new();
    for entry in entries
        .iter()
        .filter(|e| e.step == load::READ && e.state.as_deref() == Some("completed"))
    {
        if let Some(id) = entry.id_after("/flows/") {
            let first = completed.entry(id).or_insert(entry.done);
            *first = (*first).min(entry.done);
        }
    }
    let mut runs = 0;
    let mut last = 0.0_f64;
    for entry in entries.iter().filter(|e| {
        e.step == load::COMPLETE_AT_PROVIDER && e.ok() && (start..=end).contains(&e.sent)
    }) {
        runs += 1;
        if let Some(done) = flow_of
            .get(entry.path.as_str())
            .and_then(|id| completed.get(id))
        {
            last = last.max(done.saturating_sub(end) as f64 / 1000.0);
        }
    }
    (runs, last)
}

/// The runs of `double_runs` (`id`, `created_at`) created at or after
/// `since` (ms since the epoch) that no flow in the database holds.
pub(crate) fn orphaned(double_runs: &[Value], since: u64, db: &Database) -> Vec<String> {
    let known: HashSet<&str> = db
        .flows
        .values()
        .filter_map(|f| f.idv_run.as_deref())
        .collect();
    let since = (since / 1000) as i64;
    let mut orphaned: Vec<String> = double_runs
        .iter()
        .filter(|run| {
            run["created_at"]
                .as_str()
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .is_some_and(|t| t.unix_timestamp() >= since)
        })
        .filter_map(|run| run["id"].as_str())
        .filter(|id| !known.contains(id))
        .map(|id| format!("run {id} was created at the provider; no flow holds it"))
        .collect();
    orphaned.sort();
    orphaned
}

/// id, type, state, identity status, run, possession done, credential.
type FlowColumns = (
    String,
    String,
    String,
    String,
    Option<String>,
    bool,
    Option<String>,
);

async fn read_database(database: &str) -> anyhow::Result<Database> {
    let mut conn = crate::connect(database).await?;
    let mut db = Database::default();
    let flows: Vec<FlowColumns> = sqlx::query_as(
        "SELECT id::text, flow_type, state, identity_status, idv_run_id, possession_done, \
                    credential_id::text FROM flows",
    )
    .fetch_all(&mut conn)
    .await?;
    for (id, flow_type, state, identity_status, idv_run, possession_done, credential) in flows {
        db.flows.insert(
            id,
            FlowRow {
                flow_type,
                state,
                identity_status,
                idv_run,
                possession_done,
                credential,
            },
        );
    }
    let credentials: Vec<(String, String)> =
        sqlx::query_as("SELECT id::text, created_by_flow::text FROM credentials")
            .fetch_all(&mut conn)
            .await?;
    for (id, flow) in credentials {
        db.credentials.insert(id);
        db.credentials_by_flow.insert(flow);
    }
    db.flow_events = sqlx::query_as(
        "SELECT event_type, flow_id::text FROM audit_events WHERE flow_id IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await?
    .into_iter()
    .collect();
    Ok(db)
}

/// Waits until no flow waits for the look-up of a run its creation may have
/// made (or [`LOOKUPS_DONE_WITHIN`] has passed); how many still wait.
async fn wait_for_run_lookups(database: &str) -> anyhow::Result<i64> {
    let mut conn = crate::connect(database).await?;
    let started = Instant::now();
    loop {
        let (waiting,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM flows WHERE run_lookup_pending")
                .fetch_one(&mut conn)
                .await?;
        if waiting == 0 || started.elapsed() >= LOOKUPS_DONE_WITHIN {
            return Ok(waiting);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints the scenario's line; fails when the product did not meet the suite.
#[allow(clippy::print_stdout)] // The command's output.
pub(crate) async fn check(options: CheckOptions) -> anyhow::Result<()> {
    let entries = read_journal(&options.journal)?;
    let mut figures = count(&entries, options.fault, options.killed);
    if options.provider_outage.is_some() {
        let waiting = wait_for_run_lookups(&options.database).await?;
        if waiting > 0 {
            anyhow::bail!(
                "{}: {waiting} failed flows still wait for the look-up of their run {} s \
                 after the load",
                options.scenario,
                LOOKUPS_DONE_WITHIN.as_secs()
            );
        }
    }
    let db = read_database(&options.database).await?;
    (figures.lost, figures.impossible) = judge(&entries, &db);
    figures.stuck = stuck(&entries, &db);
    if let Some(outage) = &options.provider_outage {
        figures.fail_within = Some(PROVIDER_FAIL_SECONDS);
        // Calls in flight when the provider came back may still fail (an
        // answer it was late with); recovery is when calls stop failing.
        if let Some((_, end)) = options.fault {
            figures.recovered_after = entries
                .iter()
                .filter(|e| e.step != load::COMPLETE_AT_PROVIDER && !e.ok())
                .map(|e| e.sent.saturating_sub(end) as f64 / 1000.0)
                .fold(0.0, f64::max);
        }
        let runs: Vec<Value> = reqwest::get(&outage.runs_url)
            .await?
            .error_for_status()?
            .json()
            .await?;
        let since = entries.iter().map(|e| e.sent).min().unwrap_or(0);
        figures.orphaned = Some(orphaned(&runs, since, &db));
        if let Some(fault) = options.fault {
            let (runs, last) = waited(&entries, &db, fault);
            println!(
                "faults: {}: {runs} runs completed at the provider during the fault; \
                 the last of their flows read completed {last:.1} s after it",
                options.scenario
            );
        }
    }
    println!("{}", figures.line(&options.scenario));
    let breaches = figures.breaches(options.strict);
    if breaches.is_empty() {
        return Ok(());
    }
    for breach in breaches.iter().take(20) {
        println!("faults: {}: {breach}", options.scenario);
    }
    anyhow::bail!(
        "{}: {} breaches of what the product must meet",
        options.scenario,
        breaches.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: Step, path: &str, status: u16) -> Entry {
        Entry {
            sent: 1_000,
            done: 1_100,
            step: step.to_owned(),
            path: path.to_owned(),
            status,
            code: None,
            flow: None,
            state: None,
        }
    }

    fn flow(state: &str, possession_done: bool) -> FlowRow {
        FlowRow {
            flow_type: "sign_in".to_owned(),
            state: state.to_owned(),
            identity_status: "not_required".to_owned(),
            idv_run: None,
            possession_done,
            credential: None,
        }
    }

    #[test]
    fn an_acknowledged_state_must_be_held_or_passed() {
        let mut created = entry(load::CREATE, "/api/core/v1/flows", 201);
        created.flow = Some("f1".into());
        created.state = Some("pending".into());
        let mut db = Database::default();
        let (lost, _) = judge(std::slice::from_ref(&created), &db);
        assert_eq!(lost.len(), 1, "{lost:?}");
        db.flows.insert("f1".into(), flow("completed", true));
        db.flow_events.insert(("flow.created".into(), "f1".into()));
        db.flow_events
            .insert(("flow.completed".into(), "f1".into()));
        let (lost, impossible) = judge(&[created], &db);
        assert!(lost.is_empty(), "{lost:?}");
        assert!(impossible.is_empty(), "{impossible:?}");
    }

    #[test]
    fn acknowledged_possession_must_be_recorded() {
        let answered = entry(load::POSSESSION, "/api/core/v1/flows/f2/possession", 200);
        let mut db = Database::default();
        db.flows.insert("f2".into(), flow("pending", false));
        assert_eq!(judge(std::slice::from_ref(&answered), &db).0.len(), 1);
        db.flows.insert("f2".into(), flow("pending", true));
        assert!(judge(&[answered], &db).0.is_empty());
    }

    #[test]
    fn a_failed_call_is_no_promise() {
        let refused = entry(load::POSSESSION, "/api/core/v1/flows/f3/possession", 503);
        assert!(judge(&[refused], &Database::default()).0.is_empty());
    }

    #[test]
    fn calls_in_flight_at_a_kill_are_counted_apart() {
        let mut cut = entry(load::READ, "/api/core/v1/flows/f6", 502);
        cut.sent = 900;
        let mut later = entry(load::READ, "/api/core/v1/flows/f6", 502);
        later.sent = 2_200;
        let figures = count(&[cut, later], Some((1_000, 3_000)), true);
        assert_eq!(
            figures.errors,
            BTreeMap::from([
                (CUT_OFF.to_owned(), 1),
                ("502 without a code".to_owned(), 1)
            ])
        );
        assert_eq!(figures.breaches(false).len(), 1);
    }

    #[test]
    fn a_flow_whose_run_was_approved_must_complete() {
        let approved = entry(load::COMPLETE_AT_PROVIDER, "run-7", 200);
        let mut db = Database::default();
        assert_eq!(stuck(std::slice::from_ref(&approved), &db).len(), 1);
        let mut waiting = flow("awaiting_verification", true);
        waiting.idv_run = Some("run-7".into());
        db.flows.insert("f7".into(), waiting.clone());
        assert_eq!(stuck(std::slice::from_ref(&approved), &db).len(), 1);
        db.flows.insert(
            "f7".into(),
            FlowRow {
                state: "completed".into(),
                ..waiting
            },
        );
        assert!(stuck(std::slice::from_ref(&approved), &db).is_empty());
        let refused = entry(load::COMPLETE_AT_PROVIDER, "run-8", 0);
        assert!(stuck(&[refused], &Database::default()).is_empty());
    }

    #[test]
    fn flows_waiting_on_the_provider_are_timed_from_the_fault_end() {
        let mut approved = entry(load::COMPLETE_AT_PROVIDER, "run-11", 200);
        approved.sent = 1_500;
        let mut before = entry(load::COMPLETE_AT_PROVIDER, "run-12", 200);
        before.sent = 500;
        let mut read = entry(load::READ, "/api/core/v1/flows/f11", 200);
        read.state = Some("completed".into());
        read.done = 4_200;
        let mut db = Database::default();
        let mut row = flow("completed", true);
        row.idv_run = Some("run-11".into());
        db.flows.insert("f11".into(), row);
        let (runs, last) = waited(&[approved, before, read], &db, (1_000, 3_000));
        assert_eq!(runs, 1);
        assert!((last - 1.2).abs() < 1e-9, "{last}");
    }

    #[test]
    fn a_run_of_the_scenario_no_flow_holds_is_orphaned() {
        let runs = [
            serde_json::json!({"id": "run-9", "created_at": "2026-12-07T02:00:10Z"}),
            serde_json::json!({"id": "run-10", "created_at": "2026-12-07T02:00:10Z"}),
            serde_json::json!({"id": "earlier", "created_at": "2026-12-07T01:00:00Z"}),
        ];
        let since = 1_796_608_805_000; // 2026-12-07T02:00:05Z
        let mut db = Database::default();
        let mut held = flow("failed", false);
        held.idv_run = Some("run-9".into());
        db.flows.insert("f9".into(), held);
        assert_eq!(
            orphaned(&runs, since, &db),
            ["run run-10 was created at the provider; no flow holds it"]
        );
    }

    #[test]
    fn a_completion_without_possession_is_impossible() {
        let mut db = Database::default();
        db.flows.insert("f4".into(), flow("completed", false));
        assert_eq!(judge(&[], &db).1.len(), 1);
    }

    #[test]
    fn failures_are_counted_by_code_and_timed_from_the_fault_end() {
        let mut unavailable = entry(load::CREATE, "/api/core/v1/flows", 503);
        unavailable.code = Some("service_unavailable".into());
        unavailable.done = 4_000;
        let mut refused = entry(load::READ, "/api/core/v1/flows/f5", 0);
        refused.done = 2_500;
        let ok = entry(load::READ, "/api/core/v1/flows/f5", 200);
        let figures = count(&[unavailable, refused, ok], Some((1_000, 3_000)), false);
        assert_eq!(figures.calls, 3);
        assert_eq!(
            figures.errors,
            BTreeMap::from([
                ("503 service_unavailable".to_owned(), 1),
                ("no_answer".to_owned(), 1)
            ])
        );
        assert!((figures.slowest_failure - 3.0).abs() < 1e-9);
        assert!((figures.recovered_after - 1.0).abs() < 1e-9);
        assert_eq!(
            figures.breaches(false),
            ["calls failed with no_answer, not 503 and a code"]
        );
    }
}
