//! `bench run`: the rounds. Every flow at maximum throughput (closed loop),
//! then at half of the product's maximum rate (fixed arrivals), round by round
//! with the services in alternating order; then webhook ingestion alone; then
//! the report on stdout, and the run fails when a flow failed or the
//! baseline's rows are not the product's size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use testkit::onfido_double::{OnfidoDouble, OnfidoDoubleConfig};

use crate::load::{self, Client, Recorder, Scenario, Target, Webhooks};
use crate::report::{self, Phase, Report};
use crate::rows;
use crate::services::{Fleet, Product, Service};

/// Unmeasured load before each measured phase (a fifth of the phase at most).
const WARM_UP: Duration = Duration::from_secs(2);

/// The load of a run: how long, how often, how many at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) duration: Duration,
    pub(crate) rounds: u32,
    pub(crate) clients: usize,
    pub(crate) users_per_client: usize,
    pub(crate) pool: u32,
    pub(crate) metrics_cost: bool,
}

#[allow(clippy::print_stdout)] // The report is the command's output.
pub(crate) async fn run(
    product: Product,
    shape: Shape,
    json: Option<PathBuf>,
    only: Option<&str>,
) -> anyhow::Result<()> {
    let scenarios = scenarios(only)?;
    let double = Arc::new(OnfidoDouble::start(OnfidoDoubleConfig::default()).await);
    let fleet = Fleet::start(&product, shape, &double).await?;
    let run = Run::new(&fleet, shape, scenarios, &double);
    let mut users = Users::enrol(&run).await?;
    let mut report = Report::new(shape);
    run.phases(&mut users, &mut report).await?;
    if only.is_none_or(|o| o == "webhook") {
        run.webhook_ingestion(&users, &mut report).await?;
    }
    for service in fleet.all() {
        report.peak_rss(service.name, service.stats().peak_rss_kb);
    }
    let rows = fleet.rows().await?;
    print!("{}{}", report.markdown(), rows::markdown(&rows));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.json())?)?;
    }
    verdict(&report, &rows)
}

/// The scenarios `--only` leaves: the yardstick always, and `POST /flows`
/// alone with its flow.
fn scenarios(only: Option<&str>) -> anyhow::Result<Vec<Scenario>> {
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| {
            s.yardstick()
                || only.is_none_or(|o| {
                    o == s.name() || s.creates_only().is_some_and(|flow| o == flow.name())
                })
        })
        .collect();
    if scenarios.iter().all(|s| s.yardstick()) && only.is_some_and(|o| o != "webhook") {
        bail!(
            "--only takes registration, sign_in, step_up, recovery, step_up_webhook, \
             the four flows with _builtin, create_ and a flow of the first four, or webhook"
        );
    }
    Ok(scenarios)
}

/// Fails when a flow or delivery failed, or when a kind of row the baseline
/// wrote is not the product's size.
fn verdict(report: &Report, rows: &[(&'static str, Vec<rows::Compared>)]) -> anyhow::Result<()> {
    if report.errors() > 0 {
        bail!(
            "{} flows failed; first: {}",
            report.errors(),
            report.first_error().unwrap_or_default()
        );
    }
    let strays: Vec<_> = rows
        .iter()
        .flat_map(|(pair, compared)| compared.iter().map(move |c| (pair, c)))
        .filter(|(_, c)| !c.within_tolerance())
        .map(|(pair, c)| format!("{pair}: {} {} ({:.2})", c.table, c.kind, c.ratio()))
        .collect();
    if !strays.is_empty() {
        bail!(
            "the baseline's rows are not the product's size: {}",
            strays.join("; ")
        );
    }
    Ok(())
}

/// The users of a run, in pools: each service serves users it enrolled
/// itself, and a flow that changes its users in a way others do not gets a
/// pool of its own. A product with its metrics off serves the users of the
/// product it shares its database with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// Every flow but recovery, `external` mode.
    Product,
    Baseline,
    /// Step-up with its result by signed webhook (`onfido` mode).
    WebhookProduct,
    WebhookBaseline,
    /// Recovery, which leaves a revoked passkey behind each time (the other
    /// flows' users keep one).
    RecoveryProduct,
    RecoveryBaseline,
    /// The same in `builtin` mode, each user with a software authenticator.
    BuiltinProduct,
    BuiltinBaseline,
    BuiltinRecoveryProduct,
    BuiltinRecoveryBaseline,
    /// The yardstick's accounts.
    Yardstick,
    /// `POST /flows` alone (whose flows stay open).
    CreateProduct,
    CreateBaseline,
}

/// Every pool's clients, in the order of [`Pool`].
struct Users(Vec<Vec<Client>>);

impl Users {
    /// Enrols the users of every pool at its service.
    async fn enrol(run: &Run<'_>) -> anyhow::Result<Self> {
        let Shape {
            clients,
            users_per_client,
            ..
        } = run.shape;
        let fleet = run.fleet;
        let mut pools = Vec::new();
        for target in [
            &fleet.product.target,
            &fleet.baseline.target,
            &run.webhook_product,
            &run.webhook_baseline,
            &fleet.product.target,
            &fleet.baseline.target,
            &fleet.product_builtin.target,
            &fleet.baseline_builtin.target,
            &fleet.product_builtin.target,
            &fleet.baseline_builtin.target,
        ] {
            pools.push(load::enrol(target, clients, users_per_client, clients.min(16)).await?);
        }
        pools.push(load::yardstick_clients(clients, users_per_client));
        let creating = run.scenarios.iter().any(|s| s.creates_only().is_some());
        for target in [&fleet.product.target, &fleet.baseline.target] {
            pools.push(if creating {
                load::enrol(target, clients, users_per_client, clients.min(16)).await?
            } else {
                Vec::new()
            });
        }
        Ok(Self(pools))
    }

    fn get(&self, pool: Pool) -> &[Client] {
        &self.0[pool as usize]
    }

    /// A pool's clients, handed to the load until [`Users::put`] brings them back.
    fn take(&mut self, pool: Pool) -> Vec<Client> {
        std::mem::take(&mut self.0[pool as usize])
    }

    fn put(&mut self, pool: Pool, clients: Vec<Client>) {
        self.0[pool as usize] = clients;
    }
}

/// One service measured in a round: its name in the report, its process,
/// the target the load drives, and the users it serves.
struct Measured<'a> {
    name: &'static str,
    service: &'a Service,
    target: Target,
    pool: Pool,
}

/// What a run measures: its processes, the scenarios, and the targets that
/// deliver results by webhook.
struct Run<'a> {
    fleet: &'a Fleet,
    shape: Shape,
    scenarios: Vec<Scenario>,
    /// The `onfido`-mode product and baseline, results delivered as signed
    /// webhooks (the product re-reads the run at the provider double).
    webhook_product: Target,
    webhook_baseline: Target,
    webhook_product_off: Option<Target>,
}

impl<'a> Run<'a> {
    fn new(
        fleet: &'a Fleet,
        shape: Shape,
        scenarios: Vec<Scenario>,
        double: &Arc<OnfidoDouble>,
    ) -> Self {
        let secret = OnfidoDoubleConfig::default().webhook_token;
        let webhooks = |service: &Service, double: Option<Arc<OnfidoDouble>>| {
            service.target.with_webhooks(Webhooks {
                double,
                secret: secret.clone(),
            })
        };
        Self {
            fleet,
            shape,
            scenarios,
            webhook_product: webhooks(&fleet.product_onfido, Some(double.clone())),
            webhook_baseline: webhooks(&fleet.baseline_onfido, None),
            webhook_product_off: fleet
                .metrics_off
                .as_ref()
                .map(|off| webhooks(&off[1], Some(double.clone()))),
        }
    }

    /// The services measured in a round of `scenario` in `phase`: the
    /// product and its baseline (the yardstick alone for its scenarios), and
    /// at maximum throughput, for every complete flow, the product with its
    /// metrics off.
    fn measured(&self, scenario: Scenario, phase: Phase) -> Vec<Measured<'a>> {
        let fleet = self.fleet;
        if scenario.yardstick() {
            return vec![Measured {
                name: "yardstick",
                service: &fleet.yardstick,
                target: fleet.yardstick.target.clone(),
                pool: Pool::Yardstick,
            }];
        }
        let off = |i: usize| fleet.metrics_off.as_ref().map(|off| &off[i]);
        let (product, baseline, off, product_users, baseline_users) = match scenario {
            Scenario::RecoveryBuiltin => (
                &fleet.product_builtin,
                &fleet.baseline_builtin,
                off(2),
                Pool::BuiltinRecoveryProduct,
                Pool::BuiltinRecoveryBaseline,
            ),
            s if s.builtin() => (
                &fleet.product_builtin,
                &fleet.baseline_builtin,
                off(2),
                Pool::BuiltinProduct,
                Pool::BuiltinBaseline,
            ),
            Scenario::StepUpWebhook => (
                &fleet.product_onfido,
                &fleet.baseline_onfido,
                off(1),
                Pool::WebhookProduct,
                Pool::WebhookBaseline,
            ),
            Scenario::Recovery => (
                &fleet.product,
                &fleet.baseline,
                off(0),
                Pool::RecoveryProduct,
                Pool::RecoveryBaseline,
            ),
            s if s.creates_only().is_some() => (
                &fleet.product,
                &fleet.baseline,
                off(0),
                Pool::CreateProduct,
                Pool::CreateBaseline,
            ),
            _ => (
                &fleet.product,
                &fleet.baseline,
                off(0),
                Pool::Product,
                Pool::Baseline,
            ),
        };
        let (product_target, baseline_target, off_target) = if scenario == Scenario::StepUpWebhook {
            (
                self.webhook_product.clone(),
                self.webhook_baseline.clone(),
                self.webhook_product_off.clone(),
            )
        } else {
            (product.target.clone(), baseline.target.clone(), None)
        };
        let mut measured = vec![
            Measured {
                name: "product",
                service: product,
                target: product_target,
                pool: product_users,
            },
            Measured {
                name: "baseline",
                service: baseline,
                target: baseline_target,
                pool: baseline_users,
            },
        ];
        // The metrics' cost: every complete flow at maximum throughput.
        if phase == Phase::Max
            && scenario.creates_only().is_none()
            && let Some(service) = off
        {
            measured.push(Measured {
                name: report::METRICS_OFF,
                service,
                target: off_target.unwrap_or_else(|| service.target.clone()),
                pool: product_users,
            });
        }
        measured
    }

    /// Maximum throughput first: every client runs flows back to back. Then
    /// the latency at half the product's (the yardstick's: its own) maximum
    /// rate, arrivals on a fixed schedule. Round by round, every flow in
    /// turn, so the yardstick's rounds alternate with the flows'.
    async fn phases(&self, users: &mut Users, report: &mut Report) -> anyhow::Result<()> {
        for phase in [Phase::Max, Phase::Half] {
            for round in 0..self.shape.rounds {
                for &scenario in &self.scenarios {
                    if phase == Phase::Half && scenario.creates_only().is_some() {
                        continue;
                    }
                    let paced_by = if scenario.yardstick() {
                        "yardstick"
                    } else {
                        "product"
                    };
                    let half_rate = report.flow_rate(Phase::Max, scenario, paced_by) / 2.0;
                    for measured in in_turn(self.measured(scenario, phase), round) {
                        self.round(phase, scenario, half_rate, measured, users, report)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// One service's round of `scenario` in `phase`: the cluster quiesced,
    /// the same load unmeasured, then the measured load.
    async fn round(
        &self,
        phase: Phase,
        scenario: Scenario,
        half_rate: f64,
        measured: Measured<'_>,
        users: &mut Users,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let Measured {
            name,
            service,
            target,
            pool,
        } = measured;
        let drive =
            |clients, duration| drive(&target, scenario, phase, half_rate, clients, duration);
        self.fleet.quiesce().await?;
        // The same load, unmeasured, so that the phase starts in the steady
        // state: connections open and caches warm.
        let warm_up = (self.shape.duration / 5).min(WARM_UP);
        let (warm, clients) = drive(users.take(pool), warm_up).await;
        if let Some(error) = warm.first_error {
            bail!(
                "{} {name} failed while warming up: {error}",
                scenario.name()
            );
        }
        let before = service.stats();
        let started = Instant::now();
        let (rec, back) = drive(clients, self.shape.duration).await;
        let elapsed = started.elapsed();
        users.put(pool, back);
        if phase == Phase::Max {
            let rate = rec.flows_done() as f64 / elapsed.as_secs_f64();
            report.add_max_round(scenario, name, rate);
        }
        eprintln!(
            "bench: {} {} {name}: {}",
            phase.name(),
            scenario.name(),
            rec.summary(elapsed)
        );
        report.add(
            (phase, scenario, name),
            rec,
            elapsed,
            before,
            service.stats(),
        );
        Ok(())
    }

    /// Webhook ingestion alone: flows waiting for their result, then one
    /// signed delivery each, as fast as they are answered.
    async fn webhook_ingestion(&self, users: &Users, report: &mut Report) -> anyhow::Result<()> {
        let Shape {
            duration,
            rounds,
            clients,
            users_per_client,
            ..
        } = self.shape;
        // Deliveries per round: a few seconds' worth at the rates seen here
        // (each needs a step-up flow prepared first).
        let webhooks_total = (duration.as_secs() as usize * 600).max(clients);
        let per_user = (webhooks_total / (clients * users_per_client)).max(1);
        for round in 0..rounds {
            let pair = self.measured(Scenario::StepUpWebhook, Phase::Half);
            for measured in in_turn(pair, round) {
                let runs =
                    load::awaiting_runs(&measured.target, users.get(measured.pool), per_user)
                        .await?;
                self.fleet.quiesce().await?;
                let before = measured.service.stats();
                let started = Instant::now();
                let rec = load::deliver_all(&measured.target, runs, clients).await;
                report.add_webhooks(
                    measured.name,
                    rec,
                    started.elapsed(),
                    before,
                    measured.service.stats(),
                );
            }
        }
        Ok(())
    }
}

/// `clients` running `scenario` against `target` for `duration`: back to
/// back at maximum throughput, started at `half_rate` in the half-rate phase.
async fn drive(
    target: &Target,
    scenario: Scenario,
    phase: Phase,
    half_rate: f64,
    clients: Vec<Client>,
    duration: Duration,
) -> (Recorder, Vec<Client>) {
    match phase {
        Phase::Max => load::closed_loop(target, scenario, clients, duration).await,
        Phase::Half => load::fixed_rate(target, scenario, clients, half_rate, duration).await,
    }
}

/// The services of a round in the order of `round`: product first, then
/// baseline first, and so on, so that whatever the first of two phases leaves
/// behind (or the machine's drift) weighs on both services alike.
fn in_turn<T>(mut services: Vec<T>, round: u32) -> Vec<T> {
    if round % 2 == 1 {
        services.reverse();
    }
    services
}
