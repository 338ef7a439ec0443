//! The long-lived processes: the Core API, the management runtime and `dev`,
//! each served until SIGTERM (then drained), and the migration job.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use domain::Repository;
use domain::audit::trail::AuditTrail;
use domain::retention::Housekeeping;
use domain::service::FlowService;
use http_common::Draining;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{failed, refuse, warn_unknown};
use crate::app::{self, Application, Shutdown};
use crate::config::{
    CommonConfig, CoreConfig, DatabaseConfig, Env, ManagementConfig, MigrateConfig,
};
use crate::dev::{self, DevOptions};
use crate::metrics::Metrics;
use crate::traces::{self, Traces, TracesConfig};
use crate::{audit, telemetry};

fn listen_addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// The trace export the configuration asks for; the process stops (exit 1)
/// when it cannot be started.
#[allow(clippy::print_stderr)] // Logging is not set up yet.
fn start_traces(config: TracesConfig, runtime: &str) -> Result<Option<Traces>, ExitCode> {
    Traces::start(config, runtime).map_err(|e| {
        eprintln!("{runtime}: traces cannot be exported: {e:#}");
        ExitCode::FAILURE
    })
}

/// The exit code of a runtime that served `result`, once its last traces
/// are sent.
async fn stopped(traces: Option<Traces>, result: anyhow::Result<()>) -> ExitCode {
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    result.map_or_else(|e| failed(&e), |()| ExitCode::SUCCESS)
}

/// A runtime's metrics, counting failed trace exports too.
fn runtime_metrics(common: &CommonConfig, traces: Option<&Traces>) -> anyhow::Result<Metrics> {
    let metrics = Metrics::for_port(common.metrics_port)?;
    if let Some(traces) = traces {
        metrics.watch_trace_exports(traces.failures());
    }
    Ok(metrics)
}

/// The store, its pool watched by `metrics`.
async fn open_store(
    database: &DatabaseConfig,
    metrics: &Metrics,
) -> anyhow::Result<Arc<dyn Repository>> {
    let (repo, pool) = app::open_store(database).await?;
    metrics.watch_pool(pool);
    Ok(repo)
}

/// The API's listener and the metrics listener, on the runtime's own bind
/// address; no metrics listener when `BIOMETRIC_PASSKEY_METRICS_PORT=0`.
async fn bind(common: &CommonConfig) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
    let listener = TcpListener::bind(listen_addr(common.port))
        .await
        .with_context(|| format!("while binding port {} (PORT)", common.port))?;
    let metrics = match common.metrics_port {
        None => None,
        Some(port) => Some(
            TcpListener::bind(listen_addr(port))
                .await
                .with_context(|| {
                    format!("while binding port {port} (BIOMETRIC_PASSKEY_METRICS_PORT)")
                })?,
        ),
    };
    Ok((listener, metrics))
}

fn serve_metrics(
    metrics: &Metrics,
    listener: Option<TcpListener>,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Application>> {
    let Some(listener) = listener else {
        tracing::info!("metrics are not served (BIOMETRIC_PASSKEY_METRICS_PORT=0)");
        return Ok(None);
    };
    let server = metrics.serve(listener, shutdown.signalled())?;
    tracing::info!(addr = %server.addr(), "metrics serving at /metrics");
    Ok(Some(server))
}

async fn stop_metrics(server: Option<Application>) {
    if let Some(server) = server {
        let _ = server.stopped().await;
    }
}

/// Serves `router` until SIGTERM; then the runtime reads not ready for the
/// shutdown drain, and `shutdown` stops everything else.
fn serve_until_terminated(
    listener: TcpListener,
    router: Router,
    common: &CommonConfig,
    draining: Draining,
    shutdown: Shutdown,
) -> std::io::Result<Application> {
    let drain = common.shutdown_drain;
    Application::serve(listener, router, &common.http, async move {
        app::termination_signal().await;
        app::drain(&draining, drain).await;
        shutdown.trigger();
    })
}

pub async fn core(env: &Env) -> ExitCode {
    let config = match CoreConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("core", &problems),
    };
    let traces = match start_traces(config.common.traces, "core") {
        Ok(traces) => traces,
        Err(code) => return code,
    };
    let _logs = telemetry::init_traced(config.common.log_level, traces.as_ref());
    warn_unknown(env);
    let result = serve_core(&config, traces.as_ref()).await;
    stopped(traces, result).await
}

async fn serve_core(config: &CoreConfig, traces: Option<&Traces>) -> anyhow::Result<()> {
    let metrics = runtime_metrics(&config.common, traces)?;
    let mut provider = app::identity_provider(&config.idv)?;
    provider.idv = metrics.measure_provider(provider.idv);
    let repo = open_store(&config.common.database, &metrics).await?;
    let (listener, metrics_listener) = bind(&config.common).await?;
    let parts = app::CoreParts {
        repo: metrics.measure_repository(repo),
        clock: Arc::new(app::SystemClock),
        provider,
        key: config.data_key.clone(),
        policy: config.policy.clone(),
        api_keys: app::api_keys(config),
        relying_party: app::relying_party(&config.possession)?,
        version_detail: config.common.version_detail,
        limits: config.common.http,
        long_poll_max_waiters: config.long_poll_max_waiters,
        refusals: config.refusals.clone(),
    };
    log_api_auth(&parts.api_keys);
    let trail = audit::trail(
        parts.repo.clone(),
        parts.clock.clone(),
        &config.data_key,
        &config.audit,
    );
    let housekeeping = Housekeeping::new(parts.repo.clone(), parts.clock.clone(), config.retention);
    let core = app::core_app(parts, "core");
    let shutdown = Shutdown::default();
    let background = Background::spawn(
        config,
        trail,
        housekeeping,
        &core.flows,
        &metrics,
        &shutdown,
    );
    let metrics_server = serve_metrics(&metrics, metrics_listener, &shutdown)?;
    let router = traces::trace_requests(metrics.measure_http(core.router, "core"));
    let server = serve_until_terminated(listener, router, &config.common, core.draining, shutdown)?;
    tracing::info!(
        addr = %server.addr(),
        idv_mode = ?config.idv.mode,
        key_id = config.data_key.id().as_str(),
        "Core API serving"
    );
    let served = server.stopped().await;
    stop_metrics(metrics_server).await;
    background.stopped().await;
    served
}

/// Says who may call the Core API: the keys' fingerprints (never the keys:
/// they name the actor of audit events), or a warning that no key is needed.
fn log_api_auth(api_keys: &core_api::auth::ApiKeys) {
    if api_keys.is_enabled() {
        let ids: Vec<&str> = api_keys.ids().iter().map(|id| id.as_str()).collect();
        tracing::info!(
            api_keys = ids.join(" "),
            "the Core API requires an API key; audit events name the key by these fingerprints"
        );
    } else {
        tracing::warn!(
            "BIOMETRIC_PASSKEY_CORE_API_AUTH=none: the Core API accepts calls without a key; \
             only the network protects it"
        );
    }
}

/// The Core API's work besides requests: housekeeping, the reconciler, and
/// the audit trail's maintenance where it is enabled.
struct Background {
    housekeeper: JoinHandle<()>,
    reconciler: JoinHandle<()>,
    maintainer: Option<JoinHandle<()>>,
}

impl Background {
    /// Each task runs until `shutdown` is triggered.
    fn spawn(
        config: &CoreConfig,
        trail: AuditTrail,
        housekeeping: Housekeeping,
        flows: &Arc<FlowService>,
        metrics: &Metrics,
        shutdown: &Shutdown,
    ) -> Self {
        let housekeeper = tokio::spawn(app::housekeeping_loop(housekeeping, shutdown.signalled()));
        let reconciler = tokio::spawn(app::reconcile_loop(
            flows.clone(),
            metrics.clone(),
            shutdown.signalled(),
        ));
        let maintainer = config.audit.partition_maintenance_enabled.then(|| {
            tokio::spawn(audit::maintenance_loop(
                trail,
                metrics.clone(),
                shutdown.signalled(),
            ))
        });
        if maintainer.is_none() {
            tracing::warn!(
                "audit partition maintenance is disabled here: make sure another Core API \
                 replica runs it, or partitions, retention and seals stop"
            );
        }
        Self {
            housekeeper,
            reconciler,
            maintainer,
        }
    }

    async fn stopped(self) {
        let _ = self.reconciler.await;
        let _ = self.housekeeper.await;
        if let Some(maintainer) = self.maintainer {
            let _ = maintainer.await;
        }
    }
}

pub async fn management(env: &Env) -> ExitCode {
    let config = match ManagementConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("management", &problems),
    };
    let traces = match start_traces(config.common.traces, "management") {
        Ok(traces) => traces,
        Err(code) => return code,
    };
    let _logs = telemetry::init_traced(config.common.log_level, traces.as_ref());
    warn_unknown(env);
    let result = serve_management(&config, traces.as_ref()).await;
    stopped(traces, result).await
}

async fn serve_management(
    config: &ManagementConfig,
    traces: Option<&Traces>,
) -> anyhow::Result<()> {
    let metrics = runtime_metrics(&config.common, traces)?;
    let repo = open_store(&config.common.database, &metrics).await?;
    let (listener, metrics_listener) = bind(&config.common).await?;
    let draining = Draining::default();
    let router = app::management_app(
        config,
        metrics.measure_repository(repo),
        "management",
        Arc::new(app::SystemClock),
        draining.clone(),
    )?;
    let router = traces::trace_requests(metrics.measure_http(router, "management"));
    let shutdown = Shutdown::default();
    let metrics_server = serve_metrics(&metrics, metrics_listener, &shutdown)?;
    let server = serve_until_terminated(listener, router, &config.common, draining, shutdown)?;
    tracing::info!(addr = %server.addr(), "management runtime serving");
    let served = server.stopped().await;
    stop_metrics(metrics_server).await;
    served
}

pub async fn migrate(env: &Env) -> ExitCode {
    let config = match MigrateConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("migrate", &problems),
    };
    let _logs = telemetry::init(config.log_level);
    warn_unknown(env);
    let result: anyhow::Result<()> = async {
        match &config.database {
            DatabaseConfig::Postgres(settings) => {
                let store = store_postgres::PgStore::connect_lazy(settings);
                let report = store.migrate().await.context("while applying PostgreSQL migrations")?;
                tracing::info!(applied = ?report.applied, schema_version = ?report.latest, "migrations complete");
                store.close().await;
            }
            DatabaseConfig::Sqlite(settings) => {
                let store = store_sqlite::SqliteStore::open(settings).await?;
                let applied = store.migrate().await.context("while applying SQLite migrations")?;
                tracing::info!(applied = ?applied, "migrations complete");
                store.close().await;
            }
        }
        Ok(())
    }
    .await;
    result.map_or_else(|e| failed(&e), |()| ExitCode::SUCCESS)
}

pub async fn dev(options: DevOptions) -> ExitCode {
    let _logs = telemetry::init(options.log_level);
    let shutdown = Shutdown::default();
    let servers = match dev::start(&options, &shutdown).await {
        Ok(servers) => servers,
        Err(e) => return failed(&e),
    };
    #[allow(clippy::print_stdout)]
    // The banner is for the person at the terminal, not the log pipeline.
    {
        println!();
        println!(
            "biometric-passkey dev: FOR EVALUATION ONLY — embedded SQLite, synthetic IDV, a local key, loopback only"
        );
        println!("  Core API:           http://{}", servers.core.addr());
        println!("  Management runtime: http://{}", servers.management.addr());
        match &servers.metrics {
            Some(metrics) => println!("  Metrics (both):     http://{}/metrics", metrics.addr()),
            None => println!("  Metrics:            not served (--metrics-port 0)"),
        }
        println!("  Data folder:        {}", options.data_dir.display());
        println!("  Stop with Ctrl-C.");
        println!();
    }
    app::termination_signal().await;
    shutdown.trigger();
    let metrics = async {
        match servers.metrics {
            Some(metrics) => metrics.stopped().await,
            None => Ok(()),
        }
    };
    let (core, management, metrics) = tokio::join!(
        servers.core.stopped(),
        servers.management.stopped(),
        metrics
    );
    match core.and(management).and(metrics) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}
