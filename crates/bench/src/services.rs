//! The processes a run measures: the product (one process per mode, and
//! again with its metrics off), the mirror baseline and the fixed yardstick,
//! each on a fresh database of the test cluster, started, checked healthy and
//! killed when dropped; and what is done to the cluster between phases.

use std::net::{Ipv4Addr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;
use store_postgres::{PgSettings, PgStore, SslMode};
use testkit::onfido_double::{OnfidoDouble, OnfidoDoubleConfig};

use crate::load::{self, Target};
use crate::report::ProcessStats;
use crate::run::Shape;
use crate::{baseline, rows, yardstick};

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
/// The relying party of the `builtin` services, and the origin the simulated
/// phones' app answers from.
const RP_ID: &str = "bench.example";
const ORIGIN: &str = "https://bench.example";
/// Users run flows back to back, so the per-user limits must not bind.
pub(crate) const MAX_OPEN_FLOWS: u32 = 100_000;
pub(crate) const MAX_IDV_RUNS: u32 = 1_000_000;
/// The fixed yardstick's connection pool.
const YARDSTICK_POOL: u32 = 8;

pub(crate) fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set; run through scripts/bench"))
}

pub(crate) fn settings(database: &str, pool: u32) -> anyhow::Result<PgSettings> {
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

pub(crate) async fn connect(database: &str) -> anyhow::Result<sqlx::PgConnection> {
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
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) database: &'static str,
    child: tokio::process::Child,
    pub(crate) target: Target,
}

impl Service {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub(crate) fn stats(&self) -> ProcessStats {
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

/// The product's binary and the settings added to every process of it.
pub(crate) struct Product {
    pub(crate) binary: PathBuf,
    pub(crate) env: Vec<(String, String)>,
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

/// The fixed yardstick, on a database of its own with an account for each of
/// the `accounts` simulated users.
async fn start_yardstick(accounts: usize) -> anyhow::Result<Service> {
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
            &YARDSTICK_POOL.to_string(),
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

/// Every process of a run.
pub(crate) struct Fleet {
    /// `external` possession mode, the synthetic provider.
    pub(crate) product: Service,
    pub(crate) baseline: Service,
    /// `onfido` mode against the provider double: results by signed webhook.
    pub(crate) product_onfido: Service,
    pub(crate) baseline_onfido: Service,
    /// `builtin` possession mode.
    pub(crate) product_builtin: Service,
    pub(crate) baseline_builtin: Service,
    pub(crate) yardstick: Service,
    /// `--metrics-cost`: the three products again with their metrics off,
    /// on the same databases (`external`, `onfido` and `builtin` mode).
    pub(crate) metrics_off: Option<[Service; 3]>,
}

impl Fleet {
    /// Starts every process of a run of `shape`, the products in `onfido`
    /// mode against `double`.
    pub(crate) async fn start(
        product: &Product,
        shape: Shape,
        double: &OnfidoDouble,
    ) -> anyhow::Result<Self> {
        let pool = shape.pool;
        let product_synthetic =
            start_product(product, pool, Mode::Synthetic, Metrics::Served).await?;
        let baseline = start_baseline(pool, Mode::Synthetic).await?;
        let product_onfido =
            start_product(product, pool, Mode::Onfido(double), Metrics::Served).await?;
        let product_builtin = start_product(product, pool, Mode::Builtin, Metrics::Served).await?;
        let baseline_builtin = start_baseline(pool, Mode::Builtin).await?;
        let baseline_onfido = start_baseline(pool, Mode::Onfido(double)).await?;
        let yardstick = start_yardstick(shape.clients * shape.users_per_client).await?;
        let metrics_off = if shape.metrics_cost {
            Some([
                start_product(product, pool, Mode::Synthetic, Metrics::Off).await?,
                start_product(product, pool, Mode::Onfido(double), Metrics::Off).await?,
                start_product(product, pool, Mode::Builtin, Metrics::Off).await?,
            ])
        } else {
            None
        };
        Ok(Self {
            product: product_synthetic,
            baseline,
            product_onfido,
            baseline_onfido,
            product_builtin,
            baseline_builtin,
            yardstick,
            metrics_off,
        })
    }

    /// Every process, in the order they started.
    pub(crate) fn all(&self) -> Vec<&Service> {
        let mut all = vec![
            &self.product,
            &self.baseline,
            &self.product_onfido,
            &self.product_builtin,
            &self.baseline_builtin,
            &self.baseline_onfido,
            &self.yardstick,
        ];
        all.extend(self.metrics_off.iter().flatten());
        all
    }

    /// Before a phase: every service's dead rows vacuumed and all writes
    /// checkpointed and on disk, so that neither autovacuum, a checkpoint nor the
    /// kernel's writeback carries one phase's work (of either service) into the
    /// next. A throughput phase's warm-up comes after this, not before: the pause
    /// and the analyse would leave plans to make again and idle connections to
    /// ping in the measured phase's first second.
    pub(crate) async fn quiesce(&self) -> anyhow::Result<()> {
        let mut databases: Vec<&str> = self.all().iter().map(|s| s.database).collect();
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

    /// The mean row sizes of each product's database against its
    /// baseline's.
    pub(crate) async fn rows(&self) -> anyhow::Result<Vec<(&'static str, Vec<rows::Compared>)>> {
        let mut compared = Vec::new();
        for (product, baseline) in [
            (&self.product, &self.baseline),
            (&self.product_onfido, &self.baseline_onfido),
            (&self.product_builtin, &self.baseline_builtin),
        ] {
            let product_sizes = rows::measure(&mut connect(product.database).await?).await?;
            let baseline_sizes = rows::measure(&mut connect(baseline.database).await?).await?;
            compared.push((product.name, rows::compare(&product_sizes, &baseline_sizes)));
        }
        Ok(compared)
    }
}
