//! `bench`: the Core API's benchmark harness. See docs/performance.md and
//! `scripts/bench`, which starts PostgreSQL and builds what this drives;
//! `bench webauthn` (`scripts/bench-webauthn`) measures assertion verification
//! by the built-in relying party.

mod baseline;
mod faults;
mod load;
mod overview;
mod report;
mod rows;
mod soak;
mod webauthn;
mod yardstick;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use load::{Scenario, Target, Webhooks};
use report::{Phase, ProcessStats, Report};
use sqlx::Connection;
use store_postgres::{PgSettings, PgStore, SslMode};
use testkit::onfido_double::{OnfidoDouble, OnfidoDoubleConfig};

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Benchmark the Core API against a baseline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the baseline service on loopback (database from DB_* variables).
    Baseline {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 25)]
        pool: u32,
        /// Take WebAuthn responses for this relying party id (`builtin` mode's calls).
        #[arg(long)]
        rp_id: Option<String>,
        /// Size rows as the product does with this IDV provider.
        #[arg(long, value_enum, default_value_t = baseline::Provider::Synthetic)]
        provider: baseline::Provider,
    },
    /// Serve the fixed yardstick on loopback (database from DB_* variables):
    /// one UPDATE and one INSERT per request.
    Yardstick {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 8)]
        pool: u32,
    },
    /// Run the benchmark: product and baseline, each on its own database.
    Run {
        /// The `biometric-passkey` binary to measure.
        #[arg(long)]
        product: PathBuf,
        /// Seconds per measured phase.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Concurrent clients in the max-throughput phases (and at most in
        /// flight in the half-rate phases).
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Users per client, taken in turn, so that each user runs a few
        /// flows a round as real users do, not hundreds.
        #[arg(long, default_value_t = 16)]
        users_per_client: usize,
        /// Alternating rounds (product, baseline, product, …) per flow.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
        /// Connection pool of both services (DB_MAX_OPEN_CONNS).
        #[arg(long, default_value_t = 16)]
        pool: u32,
        /// Write the figures as JSON here as well.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only this flow (registration, sign_in, step_up, recovery,
        /// step_up_webhook, the four again with `_builtin`, or webhook).
        #[arg(long)]
        only: Option<String>,
        /// A setting for every product process, as NAME=VALUE (repeatable),
        /// for experiments: e.g.
        /// `BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED=false`.
        #[arg(long = "product-env", value_name = "NAME=VALUE", value_parser = setting)]
        product_env: Vec<(String, String)>,
        /// Connection pool of the fixed yardstick.
        #[arg(long, default_value_t = 8)]
        yardstick_pool: u32,
        /// Also measure every flow's maximum throughput against a product
        /// with its metrics off (`BIOMETRIC_PASSKEY_METRICS_PORT=0`), in the
        /// same rounds.
        #[arg(long)]
        metrics_cost: bool,
    },
    /// The fault suite's load and check (`scripts/faults`).
    Faults {
        #[command(subcommand)]
        action: FaultsAction,
    },
    /// Time the overview's roll-up and counts over a month (November 2026)
    /// already in the database: PostgreSQL from DB_* variables, or SQLite.
    Overview {
        /// A SQLite database file instead of PostgreSQL.
        #[arg(long)]
        sqlite: Option<PathBuf>,
    },
    /// Measure WebAuthn assertion verification (the `builtin` possession
    /// mode) next to raw P-256 ECDSA verifies, on one thread.
    Webauthn {
        /// Seconds per case and round.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Alternating rounds (full, RustCrypto, ring, …).
        #[arg(long, default_value_t = 2)]
        rounds: u32,
        /// Ceremonies prepared for the full verification.
        #[arg(long, default_value_t = 2000)]
        pool: usize,
        /// Write the figures as JSON here as well.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum FaultsAction {
    /// Complete flows of every type at a steady rate, every call journalled.
    Load {
        /// The load balancer's (or a Core API's) base URL.
        #[arg(long)]
        base: String,
        /// Flows started per second, the four types in turn.
        #[arg(long, default_value_t = 8.0)]
        rate: f64,
        #[arg(long)]
        seconds: u64,
        /// Users enrolled before the load.
        #[arg(long, default_value_t = 40)]
        users: usize,
        /// Flows in flight at most (a flow due beyond that is skipped).
        #[arg(long, default_value_t = 64)]
        max_in_flight: usize,
        #[arg(long)]
        journal: PathBuf,
        /// The provider double's control URL (`onfido` mode).
        #[arg(long)]
        control: Option<String>,
        /// The double answers a run's completion at once and delivers its
        /// webhook afterwards.
        #[arg(long, requires = "control")]
        background_delivery: bool,
        /// Seconds each user of the steady load takes at the provider
        /// before their run is completed at the double.
        #[arg(long, default_value_t = 0.0, requires = "control")]
        capture_seconds: f64,
    },
    /// Complete flows at half of the maximum rate (measured first) for
    /// many minutes, the replicas' resident memory sampled; fails when it
    /// keeps rising after the warm-up.
    Soak {
        /// The load balancer's base URL.
        #[arg(long)]
        base: String,
        /// The provider double's control URL (`onfido` mode).
        #[arg(long)]
        control: Option<String>,
        /// A process whose memory is sampled (repeatable).
        #[arg(long = "pid", required = true)]
        pids: Vec<u32>,
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Memory before this is not judged (default: a third of the soak,
        /// 5 minutes at most).
        #[arg(long)]
        warm_up_minutes: Option<f64>,
        /// Seconds between samples.
        #[arg(long, default_value_t = 5.0)]
        every: f64,
        /// Seconds of the maximum-rate measurement first.
        #[arg(long, default_value_t = 20)]
        probe_seconds: u64,
        #[arg(long)]
        journal: PathBuf,
    },
    /// Serve the provider double for the replicas (`onfido` mode).
    Double {
        /// Where it delivers webhooks (the load balancer's webhook route).
        #[arg(long)]
        webhook_url: String,
        /// Its API's base URL and its control URL are written here.
        #[arg(long)]
        info: PathBuf,
    },
    /// One line of figures from the journal and the database (DB_* and
    /// `--database`); fails when the product did not meet the suite.
    Check {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        journal: PathBuf,
        #[arg(long)]
        database: String,
        /// When the fault began, ms since the epoch.
        #[arg(long, requires = "fault_end")]
        fault_start: Option<u64>,
        /// When the fault ended (the service was back), ms since the epoch.
        #[arg(long, requires = "fault_start")]
        fault_end: Option<u64>,
        /// No call may fail at all (a rolling deploy).
        #[arg(long)]
        strict: bool,
        /// A replica was killed at the fault's start: its calls in flight
        /// are counted apart.
        #[arg(long)]
        killed: bool,
        /// The fault was the provider's outage; the double lists its runs
        /// here (`bench faults double`'s outage switch, `/runs`).
        #[arg(long, value_name = "URL")]
        provider_outage_runs: Option<String>,
    },
}

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
/// The relying party of the `builtin` services, and the origin the simulated
/// phones' app answers from.
const RP_ID: &str = "bench.example";
const ORIGIN: &str = "https://bench.example";
/// Users run flows back to back, so the per-user limits must not bind.
const MAX_OPEN_FLOWS: u32 = 100_000;
const MAX_IDV_RUNS: u32 = 1_000_000;
/// Unmeasured load before each measured phase (a fifth of the phase at most).
const WARM_UP: Duration = Duration::from_secs(2);

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set; run through scripts/bench"))
}

fn settings(database: &str, pool: u32) -> anyhow::Result<PgSettings> {
    Ok(PgSettings {
        host: env("DB_HOST")?,
        port: env("DB_PORT")?.parse()?,
        user: env("DB_USER")?,
        password: Some(env("DB_PASSWORD")?.into()),
        database: database.to_owned(),
        ssl_mode: SslMode::Disable,
        max_open_conns: pool,
        max_idle_conns: pool,
        // The product's defaults, which it runs with here: both services
        // replace their connections alike.
        conn_max_lifetime: PgSettings::DEFAULT_CONN_MAX_LIFETIME,
        conn_max_idle_time: PgSettings::DEFAULT_CONN_MAX_IDLE_TIME,
        pooler_mode: store_postgres::PoolerMode::Session,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

async fn connect(database: &str) -> anyhow::Result<sqlx::PgConnection> {
    let url = format!(
        "postgres://{}:{}@{}:{}/{database}",
        env("DB_USER")?,
        env("DB_PASSWORD")?,
        env("DB_HOST")?,
        env("DB_PORT")?
    );
    Ok(sqlx::PgConnection::connect(&url).await?)
}

async fn fresh_database(name: &str) -> anyhow::Result<()> {
    let mut admin = connect("postgres").await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// A service process, killed when dropped.
struct Service {
    name: &'static str,
    database: &'static str,
    child: tokio::process::Child,
    target: Target,
}

/// Before a phase: every service's dead rows vacuumed and all writes
/// checkpointed and on disk, so that neither autovacuum, a checkpoint nor the
/// kernel's writeback carries one phase's work (of either service) into the
/// next. A throughput phase's warm-up comes after this, not before: the pause
/// and the analyse would leave plans to make again and idle connections to
/// ping in the measured phase's first second.
async fn quiesce(services: &[Service]) -> anyhow::Result<()> {
    let mut databases: Vec<&str> = services.iter().map(|s| s.database).collect();
    databases.sort_unstable();
    databases.dedup();
    for database in databases {
        let mut conn = connect(database).await?;
        sqlx::query("VACUUM (ANALYZE)").execute(&mut conn).await?;
    }
    let mut conn = connect("postgres").await?;
    sqlx::query("CHECKPOINT").execute(&mut conn).await?;
    // And the checkpoint's pages written back by the kernel now, rather than
    // by its flusher during the next phase.
    let synced = tokio::process::Command::new("sync").status().await?;
    if !synced.success() {
        bail!("sync failed: {synced}");
    }
    Ok(())
}

impl Service {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn stats(&self) -> ProcessStats {
        ProcessStats::read(self.pid())
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("{}/api/health", self.target.base))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} before answering", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not answer /api/health within 30 s", self.name)
    }
}

/// How a product process is configured.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Synthetic IDV provider, possession reported by the caller.
    Synthetic,
    /// `onfido` mode against the provider double.
    Onfido(&'a OnfidoDouble),
    /// Synthetic IDV provider, WebAuthn verified by the built-in relying party.
    Builtin,
}

impl Mode<'_> {
    fn database(self) -> &'static str {
        match self {
            Mode::Synthetic => "bench_product",
            Mode::Onfido(_) => "bench_product_onfido",
            Mode::Builtin => "bench_product_builtin",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Synthetic => "product",
            Mode::Onfido(_) => "product (onfido mode)",
            Mode::Builtin => "product (builtin mode)",
        }
    }

    fn env(self) -> Vec<(&'static str, String)> {
        let provider = |mode: &str| vec![("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", mode.to_owned())];
        match self {
            Mode::Synthetic => provider("synthetic"),
            Mode::Onfido(double) => {
                let config = OnfidoDoubleConfig::default();
                let mut env = provider("onfido");
                env.extend([
                    ("BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL", double.base_url()),
                    ("BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN", config.api_token),
                    (
                        "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
                        config.webhook_token,
                    ),
                ]);
                env
            }
            Mode::Builtin => {
                let mut env = provider("synthetic");
                env.extend([
                    ("BIOMETRIC_PASSKEY_POSSESSION_MODE", "builtin".to_owned()),
                    ("BIOMETRIC_PASSKEY_WEBAUTHN_RP_ID", RP_ID.to_owned()),
                    ("BIOMETRIC_PASSKEY_WEBAUTHN_ORIGINS", ORIGIN.to_owned()),
                ]);
                env
            }
        }
    }

    fn target(self, base: &str) -> anyhow::Result<Target> {
        match self {
            Mode::Builtin => Target::builtin(base, url::Url::parse(ORIGIN)?),
            _ => Target::new(base),
        }
    }
}

/// `NAME=VALUE`, as `--product-env` takes it.
fn setting(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {arg:?}")),
    }
}

/// The product's binary and the settings added to every process of it.
struct Product {
    binary: PathBuf,
    env: Vec<(String, String)>,
}

/// Whether a product process records and serves its metrics.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Metrics {
    /// On, as operators run it, each process on a port of its own; the
    /// process gets a fresh database.
    Served,
    /// Off (`BIOMETRIC_PASSKEY_METRICS_PORT=0`: nothing recorded, no
    /// listener), on the database of the process started with them on, whose
    /// users it serves in turn with it.
    Off,
}

impl Metrics {
    /// A product process's name in the report.
    fn name(self, mode: Mode<'_>) -> &'static str {
        match (self, mode) {
            (Metrics::Served, mode) => mode.name(),
            (Metrics::Off, Mode::Synthetic) => "product, metrics off",
            (Metrics::Off, Mode::Onfido(_)) => "product (onfido mode), metrics off",
            (Metrics::Off, Mode::Builtin) => "product (builtin mode), metrics off",
        }
    }
}

async fn start_product(
    product: &Product,
    pool: u32,
    mode: Mode<'_>,
    metrics: Metrics,
) -> anyhow::Result<Service> {
    let database = mode.database();
    if metrics == Metrics::Served {
        fresh_database(database).await?;
    }
    let base_env = [
        ("DB_HOST", env("DB_HOST")?),
        ("DB_PORT", env("DB_PORT")?),
        ("DB_USER", env("DB_USER")?),
        ("DB_PASSWORD", env("DB_PASSWORD")?),
        ("DB_NAME", database.to_owned()),
        ("DB_SSLMODE", "disable".to_owned()),
        ("DB_MAX_OPEN_CONNS", pool.to_string()),
        ("DB_MAX_IDLE_CONNS", pool.to_string()),
    ];
    let migrated = tokio::process::Command::new(&product.binary)
        .arg("migrate")
        .env_clear()
        .envs(base_env.iter().cloned())
        .output()
        .await
        .context("while running the product's migrate")?;
    if !migrated.status.success() {
        bail!(
            "migrate failed: {}",
            String::from_utf8_lossy(&migrated.stdout)
        );
    }
    let port = free_port()?;
    let metrics_port = match metrics {
        Metrics::Served => free_port()?,
        Metrics::Off => 0,
    };
    let child = tokio::process::Command::new(&product.binary)
        .arg("core")
        .env_clear()
        .envs(base_env.iter().cloned())
        .envs([
            ("PORT", port.to_string()),
            ("BIOMETRIC_PASSKEY_METRICS_PORT", metrics_port.to_string()),
            ("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY.into()),
            ("BIOMETRIC_PASSKEY_CORE_API_KEYS", load::API_KEY.into()),
            // Named here because the baseline sizes its rows by it.
            (
                "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID",
                baseline::KEY_ID.into(),
            ),
            (
                "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
                "0c6b0e4a-1111-4b5b-9a1e-000000000001".into(),
            ),
            (
                "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
                "0c6b0e4a-1111-4b5b-9a1e-000000000002".into(),
            ),
            (
                "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
                "0c6b0e4a-1111-4b5b-9a1e-000000000003".into(),
            ),
            (
                "BIOMETRIC_PASSKEY_FLOW_MAX_OPEN_PER_USER",
                MAX_OPEN_FLOWS.to_string(),
            ),
            (
                "BIOMETRIC_PASSKEY_IDV_MAX_RUNS_PER_USER_PER_DAY",
                MAX_IDV_RUNS.to_string(),
            ),
        ])
        .envs(mode.env())
        .envs(product.env.iter().cloned())
        // The product logs at its default level (info: a line per request);
        // the lines are formatted and written, here to /dev/null.
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("while starting the product")?;
    let mut service = Service {
        name: metrics.name(mode),
        database,
        child,
        target: mode.target(&format!("http://127.0.0.1:{port}"))?,
    };
    service.wait_healthy().await?;
    Ok(service)
}

/// The baseline of a product `mode`: taking external facts or (`builtin`)
/// WebAuthn responses, its rows sized as that mode's.
async fn start_baseline(pool: u32, mode: Mode<'_>) -> anyhow::Result<Service> {
    let (database, name) = match mode {
        Mode::Synthetic => ("bench_baseline", "baseline"),
        Mode::Onfido(_) => ("bench_baseline_onfido", "baseline (onfido mode)"),
        Mode::Builtin => ("bench_baseline_builtin", "baseline (builtin mode)"),
    };
    fresh_database(database).await?;
    // The same schema, applied by the product's own migrations.
    PgStore::connect_lazy(&settings(database, 2)?)
        .migrate()
        .await?;
    let port = free_port()?;
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command.args([
        "baseline",
        "--port",
        &port.to_string(),
        "--pool",
        &pool.to_string(),
    ]);
    match mode {
        Mode::Builtin => {
            command.args(["--rp-id", RP_ID]);
        }
        Mode::Onfido(_) => {
            command.args(["--provider", "onfido"]);
        }
        Mode::Synthetic => {}
    }
    let child = command
        .env("DB_NAME", database)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("while starting the baseline")?;
    let mut service = Service {
        name,
        database,
        child,
        target: mode.target(&format!("http://127.0.0.1:{port}"))?,
    };
    service.wait_healthy().await?;
    Ok(service)
}

async fn serve_baseline(
    port: u16,
    pool: u32,
    rp_id: Option<String>,
    provider: baseline::Provider,
) -> anyhow::Result<()> {
    let store = PgStore::connect_lazy(&settings(&env("DB_NAME")?, pool)?);
    let secret = OnfidoDoubleConfig::default().webhook_token;
    let app = baseline::router(
        store,
        MAX_OPEN_FLOWS,
        MAX_IDV_RUNS,
        &secret,
        rp_id,
        provider,
    )?;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The fixed yardstick, on a database of its own with an account for each of
/// the `accounts` simulated users.
async fn start_yardstick(pool: u32, accounts: usize) -> anyhow::Result<Service> {
    let database = "bench_yardstick";
    fresh_database(database).await?;
    yardstick::prepare(&mut connect(database).await?, accounts).await?;
    let port = free_port()?;
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "yardstick",
            "--port",
            &port.to_string(),
            "--pool",
            &pool.to_string(),
        ])
        .env("DB_NAME", database)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("while starting the yardstick")?;
    let mut service = Service {
        name: "yardstick",
        database,
        child,
        target: Target::new(&format!("http://127.0.0.1:{port}"))?,
    };
    service.wait_healthy().await?;
    Ok(service)
}

async fn serve_yardstick(port: u16, pool: u32) -> anyhow::Result<()> {
    let url = format!(
        "postgres://{}:{}@{}:{}/{}",
        env("DB_USER")?,
        env("DB_PASSWORD")?,
        env("DB_HOST")?,
        env("DB_PORT")?,
        env("DB_NAME")?
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool)
        .connect_lazy(&url)?;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    axum::serve(listener, yardstick::router(pool)).await?;
    Ok(())
}

/// The mean row sizes of each product's database against its baseline's.
async fn compare_rows(
    pairs: [(&Service, &Service); 3],
) -> anyhow::Result<Vec<(&'static str, Vec<rows::Compared>)>> {
    let mut compared = Vec::new();
    for (product, baseline) in pairs {
        let product_sizes = rows::measure(&mut connect(product.database).await?).await?;
        let baseline_sizes = rows::measure(&mut connect(baseline.database).await?).await?;
        compared.push((product.name, rows::compare(&product_sizes, &baseline_sizes)));
    }
    Ok(compared)
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

/// The load of a run: how long, how often, how many at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) duration: Duration,
    pub(crate) rounds: u32,
    pub(crate) clients: usize,
    pub(crate) users_per_client: usize,
    pub(crate) pool: u32,
    pub(crate) yardstick_pool: u32,
    pub(crate) metrics_cost: bool,
}

#[allow(clippy::print_stdout)] // The report is the command's output.
async fn run(
    product: Product,
    shape: Shape,
    json: Option<PathBuf>,
    only: Option<&str>,
) -> anyhow::Result<()> {
    let Shape {
        duration,
        rounds,
        clients,
        users_per_client,
        pool,
        yardstick_pool,
        metrics_cost,
    } = shape;
    // The yardstick always; `POST /flows` alone with its flow.
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
    // Deliveries per round of the ingestion phase: a few seconds' worth at
    // the rates seen here (each needs a step-up flow prepared first).
    let webhooks_total = (duration.as_secs() as usize * 600).max(clients);
    let double = std::sync::Arc::new(OnfidoDouble::start(OnfidoDoubleConfig::default()).await);
    let secret = OnfidoDoubleConfig::default().webhook_token;
    let mut services = vec![
        start_product(&product, pool, Mode::Synthetic, Metrics::Served).await?,
        start_baseline(pool, Mode::Synthetic).await?,
        start_product(&product, pool, Mode::Onfido(&double), Metrics::Served).await?,
        start_product(&product, pool, Mode::Builtin, Metrics::Served).await?,
        start_baseline(pool, Mode::Builtin).await?,
        start_baseline(pool, Mode::Onfido(&double)).await?,
        start_yardstick(yardstick_pool, clients * users_per_client).await?,
    ];
    // 7, 8, 9: the three products again with their metrics off, on the same
    // databases.
    if metrics_cost {
        services.push(start_product(&product, pool, Mode::Synthetic, Metrics::Off).await?);
        services.push(start_product(&product, pool, Mode::Onfido(&double), Metrics::Off).await?);
        services.push(start_product(&product, pool, Mode::Builtin, Metrics::Off).await?);
    }
    let services = services;
    let webhooks = |service: &Service, double: Option<std::sync::Arc<OnfidoDouble>>| {
        service.target.with_webhooks(Webhooks {
            double,
            secret: secret.clone(),
        })
    };
    let webhook_product = webhooks(&services[2], Some(double.clone()));
    let webhook_baseline = webhooks(&services[5], None);
    let webhook_product_off = services
        .get(8)
        .map(|service| webhooks(service, Some(double.clone())));
    // Per scenario and round, each service measured: (report name, service,
    // target, index of its users). A product with its metrics off serves the
    // users of the product it shares its database with.
    let variants =
        |scenario: Scenario, phase: Phase| -> Vec<(&'static str, &Service, Target, usize)> {
            if scenario.yardstick() {
                return vec![("yardstick", &services[6], services[6].target.clone(), 10)];
            }
            let (product, baseline, off, product_users, baseline_users) =
                if scenario == Scenario::RecoveryBuiltin {
                    (3, 4, 9, 8, 9)
                } else if scenario.builtin() {
                    (3, 4, 9, 6, 7)
                } else if scenario == Scenario::StepUpWebhook {
                    (2, 5, 8, 2, 3)
                } else if scenario == Scenario::Recovery {
                    (0, 1, 7, 4, 5)
                } else if scenario.creates_only().is_some() {
                    (0, 1, 7, 11, 12)
                } else {
                    (0, 1, 7, 0, 1)
                };
            let target = |i: usize| match (scenario, i) {
                (Scenario::StepUpWebhook, 2) => webhook_product.clone(),
                (Scenario::StepUpWebhook, 5) => webhook_baseline.clone(),
                (Scenario::StepUpWebhook, _) => webhook_product_off
                    .clone()
                    .unwrap_or_else(|| services[i].target.clone()),
                _ => services[i].target.clone(),
            };
            let mut measured = vec![
                (
                    "product",
                    &services[product],
                    target(product),
                    product_users,
                ),
                (
                    "baseline",
                    &services[baseline],
                    target(baseline),
                    baseline_users,
                ),
            ];
            // The metrics' cost: every complete flow at maximum throughput.
            if phase == Phase::Max
                && scenario.creates_only().is_none()
                && let Some(service) = services.get(off)
            {
                measured.push((report::METRICS_OFF, service, target(off), product_users));
            }
            measured
        };
    let mut report = Report::new(shape);
    // Users by pool: 0 product, 1 baseline, 2 product in onfido mode, 3 the
    // baseline's webhook flows, 4 and 5 recovery on product and baseline
    // (recovery leaves a revoked passkey behind each time; the other flows'
    // users keep one); 6 to 9 the same four in builtin mode, each user with
    // a software authenticator; 10 the yardstick's accounts; 11 and 12 the
    // product's and the baseline's users for `POST /flows` alone (whose
    // flows stay open).
    let mut users = Vec::new();
    for target in [
        &services[0].target,
        &services[1].target,
        &webhook_product,
        &webhook_baseline,
        &services[0].target,
        &services[1].target,
        &services[3].target,
        &services[4].target,
        &services[3].target,
        &services[4].target,
    ] {
        users.push(load::enrol(target, clients, users_per_client, clients.min(16)).await?);
    }
    users.push(load::yardstick_clients(clients, users_per_client));
    for target in [&services[0].target, &services[1].target] {
        let creating = scenarios.iter().any(|s| s.creates_only().is_some());
        users.push(if creating {
            load::enrol(target, clients, users_per_client, clients.min(16)).await?
        } else {
            Vec::new()
        });
    }
    // Maximum throughput first: every client runs flows back to back. Then
    // the latency at half the product's (the yardstick's: its own) maximum
    // rate, arrivals on a fixed schedule. Round by round, every flow in
    // turn, so the yardstick's rounds alternate with the flows'.
    let warm_up = (duration / 5).min(WARM_UP);
    for phase in [Phase::Max, Phase::Half] {
        for round in 0..rounds {
            for &scenario in &scenarios {
                if phase == Phase::Half && scenario.creates_only().is_some() {
                    continue;
                }
                let measured = in_turn(variants(scenario, phase), round);
                let paced_by = if scenario.yardstick() {
                    "yardstick"
                } else {
                    "product"
                };
                let half_rate = report.flow_rate(Phase::Max, scenario, paced_by) / 2.0;
                for (name, service, target, u) in measured {
                    let target = &target;
                    let drive = |vus, duration| async move {
                        match phase {
                            Phase::Max => load::closed_loop(target, scenario, vus, duration).await,
                            Phase::Half => {
                                load::fixed_rate(target, scenario, vus, half_rate, duration).await
                            }
                        }
                    };
                    quiesce(&services).await?;
                    // The same load, unmeasured, so that the phase starts in
                    // the steady state: connections open and caches warm.
                    let (warm, vus) = drive(std::mem::take(&mut users[u]), warm_up).await;
                    if let Some(error) = warm.first_error {
                        bail!(
                            "{} {name} failed while warming up: {error}",
                            scenario.name()
                        );
                    }
                    let before = service.stats();
                    let started = Instant::now();
                    let (rec, back) = drive(vus, duration).await;
                    let elapsed = started.elapsed();
                    users[u] = back;
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
                    report.add(phase, scenario, name, rec, elapsed, before, service.stats());
                }
            }
        }
    }
    // Webhook ingestion alone: flows waiting for their result, then one signed
    // delivery each, as fast as they are answered.
    if only.is_none_or(|o| o == "webhook") {
        let per_user = (webhooks_total / (clients * users_per_client)).max(1);
        for round in 0..rounds {
            let pair = variants(Scenario::StepUpWebhook, Phase::Half);
            for (name, service, target, u) in in_turn(pair, round) {
                let runs = load::awaiting_runs(&target, &users[u], per_user).await?;
                quiesce(&services).await?;
                let before = service.stats();
                let started = Instant::now();
                let rec = load::deliver_all(&target, runs, clients).await;
                report.add_webhooks(name, rec, started.elapsed(), before, service.stats());
            }
        }
    }
    for service in &services {
        report.peak_rss(service.name, service.stats().peak_rss_kb);
    }
    let rows = compare_rows([
        (&services[0], &services[1]),
        (&services[2], &services[5]),
        (&services[3], &services[4]),
    ])
    .await?;
    print!("{}{}", report.markdown(), rows::markdown(&rows));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.json())?)?;
    }
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Baseline {
            port,
            pool,
            rp_id,
            provider,
        } => serve_baseline(port, pool, rp_id, provider).await,
        Command::Yardstick { port, pool } => serve_yardstick(port, pool).await,
        Command::Run {
            product,
            duration,
            clients,
            users_per_client,
            rounds,
            pool,
            json,
            only,
            product_env,
            yardstick_pool,
            metrics_cost,
        } => {
            run(
                Product {
                    binary: product,
                    env: product_env,
                },
                Shape {
                    duration: Duration::from_secs(duration),
                    rounds: rounds.max(1),
                    clients: clients.max(1),
                    users_per_client: users_per_client.max(1),
                    pool,
                    yardstick_pool: yardstick_pool.max(1),
                    metrics_cost,
                },
                json,
                only.as_deref(),
            )
            .await
        }
        Command::Faults { action } => match action {
            FaultsAction::Load {
                base,
                rate,
                seconds,
                users,
                max_in_flight,
                journal,
                control,
                background_delivery,
                capture_seconds,
            } => {
                faults::load(faults::LoadOptions {
                    base,
                    rate,
                    duration: Duration::from_secs(seconds),
                    users,
                    max_in_flight,
                    journal,
                    control,
                    background_delivery,
                    capture: Duration::try_from_secs_f64(capture_seconds)
                        .context("--capture-seconds takes a number of seconds")?,
                })
                .await
            }
            FaultsAction::Double { webhook_url, info } => faults::double(webhook_url, &info).await,
            FaultsAction::Soak {
                base,
                control,
                pids,
                minutes,
                warm_up_minutes,
                every,
                probe_seconds,
                journal,
            } => {
                let minute = |m: f64| Duration::try_from_secs_f64(m * 60.0);
                soak::soak(soak::SoakOptions {
                    base,
                    control,
                    pids,
                    duration: minute(minutes).context("--minutes takes a positive number")?,
                    warm_up: minute(warm_up_minutes.unwrap_or((minutes / 3.0).min(5.0)))
                        .context("--warm-up-minutes takes a positive number")?,
                    every: Duration::try_from_secs_f64(every)
                        .context("--every takes a positive number")?,
                    probe: Duration::from_secs(probe_seconds.max(1)),
                    journal,
                })
                .await
            }
            FaultsAction::Check {
                scenario,
                journal,
                database,
                fault_start,
                fault_end,
                strict,
                killed,
                provider_outage_runs,
            } => {
                faults::check(faults::CheckOptions {
                    scenario,
                    journal,
                    database,
                    fault: fault_start.zip(fault_end),
                    strict,
                    killed,
                    provider_outage: provider_outage_runs
                        .map(|runs_url| faults::ProviderOutage { runs_url }),
                })
                .await
            }
        },
        Command::Overview { sqlite } => {
            let repo: std::sync::Arc<dyn domain::Repository> = match sqlite {
                Some(path) => std::sync::Arc::new(
                    store_sqlite::SqliteStore::open(&store_sqlite::SqliteSettings::new(path))
                        .await?,
                ),
                None => std::sync::Arc::new(PgStore::connect_lazy(&settings(&env("DB_NAME")?, 4)?)),
            };
            overview::main(repo).await
        }
        Command::Webauthn {
            seconds,
            rounds,
            pool,
            json,
        } => webauthn::main(
            webauthn::Options {
                duration: Duration::try_from_secs_f64(seconds)
                    .context("--seconds takes a positive number")?,
                rounds,
                pool,
            },
            json.as_deref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::setting;

    #[test]
    fn product_settings_are_name_equals_value() {
        assert_eq!(setting("A_B=c=d"), Ok(("A_B".into(), "c=d".into())));
        assert_eq!(setting("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(setting("=x").is_err());
        assert!(setting("NO_VALUE").is_err());
    }
}
