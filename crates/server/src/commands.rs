//! One function per subcommand. Each returns the process exit code.

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{self, Application, Shutdown};
use crate::config::{
    AuditToolConfig, CoreConfig, DatabaseConfig, Env, ManagementConfig, MigrateConfig, Problems,
};
use crate::dev::{self, DevOptions};
use crate::metrics::Metrics;
use crate::traces::{self, Traces};
use crate::{audit, healthcheck, telemetry};

/// Exit code for a refused configuration.
pub const EXIT_CONFIG: u8 = 2;

/// Which runtime's configuration to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Core,
    Management,
    Migrate,
}

/// Prints refused settings, one line each, to stderr.
fn refuse(runtime: &str, problems: &Problems) -> ExitCode {
    eprintln!("biometric-passkey {runtime}: refusing to start; fix these settings:");
    for problem in &problems.0 {
        eprintln!("  {problem}");
    }
    ExitCode::from(EXIT_CONFIG)
}

fn warn_unknown(env: &Env) {
    for name in env.unknown_prefixed() {
        tracing::warn!(
            variable = name,
            "unknown BIOMETRIC_PASSKEY_ variable ignored; check its spelling"
        );
    }
}

fn failed(err: &anyhow::Error) -> ExitCode {
    tracing::error!(error = format!("{err:#}"), "stopped on an error");
    ExitCode::FAILURE
}

fn listen_addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// The metrics listener, on the runtime's own bind address; none when
/// `BIOMETRIC_PASSKEY_METRICS_PORT=0`.
async fn bind_metrics(port: Option<u16>) -> anyhow::Result<Option<TcpListener>> {
    let Some(port) = port else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen_addr(port))
        .await
        .with_context(|| format!("while binding port {port} (BIOMETRIC_PASSKEY_METRICS_PORT)"))?;
    Ok(Some(listener))
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

pub async fn core(env: &Env) -> ExitCode {
    let config = match CoreConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("core", &problems),
    };
    let traces = match Traces::start(config.common.traces, "core") {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("core: traces cannot be exported: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let _logs = telemetry::init_traced(config.common.log_level, traces.as_ref());
    warn_unknown(env);
    let result = async {
        let metrics = Metrics::for_port(config.common.metrics_port)?;
        if let Some(traces) = &traces {
            metrics.watch_trace_exports(traces.failures());
        }
        let mut provider = app::identity_provider(&config.idv)?;
        provider.idv = metrics.measure_provider(provider.idv);
        let (repo, pool) = app::open_store(&config.common.database).await?;
        metrics.watch_pool(pool);
        let listener = TcpListener::bind(listen_addr(config.common.port))
            .await
            .with_context(|| format!("while binding port {} (PORT)", config.common.port))?;
        let metrics_listener = bind_metrics(config.common.metrics_port).await?;
        let parts = app::CoreParts {
            repo: metrics.measure_repository(repo),
            clock: Arc::new(app::SystemClock),
            provider,
            key: config.data_key.clone(),
            policy: config.policy.clone(),
            api_keys: app::api_keys(&config),
            relying_party: app::relying_party(&config.possession)?,
            version_detail: config.common.version_detail,
            limits: config.common.http,
            long_poll_max_waiters: config.long_poll_max_waiters,
            refusals: config.refusals.clone(),
        };
        if parts.api_keys.is_enabled() {
            // Fingerprints, never the keys: they name the actor of audit events.
            let ids: Vec<&str> = parts.api_keys.ids().iter().map(|id| id.as_str()).collect();
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
        let trail = audit::trail(
            parts.repo.clone(),
            parts.clock.clone(),
            &config.data_key,
            &config.audit,
        );
        let housekeeping = domain::retention::Housekeeping::new(
            parts.repo.clone(),
            parts.clock.clone(),
            config.retention,
        );
        let core = app::core_app(parts, "core");
        let shutdown = Shutdown::default();
        let housekeeper = tokio::spawn(app::housekeeping_loop(housekeeping, shutdown.signalled()));
        let reconciler = tokio::spawn(app::reconcile_loop(
            core.flows.clone(),
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
        let metrics_server = serve_metrics(&metrics, metrics_listener, &shutdown)?;
        let router = traces::trace_requests(metrics.measure_http(core.router, "core"));
        let (draining, drain) = (core.draining, config.common.shutdown_drain);
        let server = Application::serve(listener, router, &config.common.http, async move {
            app::termination_signal().await;
            app::drain(&draining, drain).await;
            shutdown.trigger();
        })?;
        tracing::info!(
            addr = %server.addr(),
            idv_mode = ?config.idv.mode,
            key_id = config.data_key.id().as_str(),
            "Core API serving"
        );
        let served = server.stopped().await;
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.stopped().await;
        }
        let _ = reconciler.await;
        let _ = housekeeper.await;
        if let Some(maintainer) = maintainer {
            let _ = maintainer.await;
        }
        served
    }
    .await;
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    result.map_or_else(|e| failed(&e), |()| ExitCode::SUCCESS)
}

pub async fn management(env: &Env) -> ExitCode {
    let config = match ManagementConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("management", &problems),
    };
    let traces = match Traces::start(config.common.traces, "management") {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("management: traces cannot be exported: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let _logs = telemetry::init_traced(config.common.log_level, traces.as_ref());
    warn_unknown(env);
    let result = async {
        let metrics = Metrics::for_port(config.common.metrics_port)?;
        if let Some(traces) = &traces {
            metrics.watch_trace_exports(traces.failures());
        }
        let (repo, pool) = app::open_store(&config.common.database).await?;
        metrics.watch_pool(pool);
        let listener = TcpListener::bind(listen_addr(config.common.port))
            .await
            .with_context(|| format!("while binding port {} (PORT)", config.common.port))?;
        let metrics_listener = bind_metrics(config.common.metrics_port).await?;
        let draining = http_common::Draining::default();
        let router = app::management_app(
            &config,
            metrics.measure_repository(repo),
            "management",
            Arc::new(app::SystemClock),
            draining.clone(),
        )?;
        let router = traces::trace_requests(metrics.measure_http(router, "management"));
        let shutdown = Shutdown::default();
        let metrics_server = serve_metrics(&metrics, metrics_listener, &shutdown)?;
        let drain = config.common.shutdown_drain;
        let server = Application::serve(listener, router, &config.common.http, async move {
            app::termination_signal().await;
            app::drain(&draining, drain).await;
            shutdown.trigger();
        })?;
        tracing::info!(addr = %server.addr(), "management runtime serving");
        let served = server.stopped().await;
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.stopped().await;
        }
        served
    }
    .await;
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    result.map_or_else(|e| failed(&e), |()| ExitCode::SUCCESS)
}

/// Exit code of `audit verify` when it found something.
pub const EXIT_FINDINGS: u8 = 3;

async fn audit_trail(env: &Env) -> Result<domain::audit::trail::AuditTrail, ExitCode> {
    let config = AuditToolConfig::from_env(env).map_err(|problems| refuse("audit", &problems))?;
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let repo = app::open_repository(&config.database)
        .await
        .map_err(|e| failed(&e))?;
    Ok(audit::trail(
        repo,
        Arc::new(app::SystemClock),
        &config.data_key,
        &config.audit,
    ))
}

#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn audit_maintain(env: &Env) -> ExitCode {
    let trail = match audit_trail(env).await {
        Ok(trail) => trail,
        Err(code) => return code,
    };
    match audit::maintain_once(&trail).await {
        Ok(report) if !report.leader => {
            println!("another maintainer is running; nothing done");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!(
                "partitions created: {}; months dropped: {}; kept without archive: {}; \
                 kept with changed rows: {}; events sealed: {}{}",
                list(&report.created),
                list(&report.dropped),
                list(&report.kept_unarchived),
                list(&report.kept_changed),
                report.sealed_events,
                if report.sealing_deferred {
                    format!("; {}", audit::SEALING_DEFERRED)
                } else {
                    String::new()
                }
            );
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::FAILURE,
    }
}

fn list(months: &[domain::audit::month::Month]) -> String {
    if months.is_empty() {
        return "none".to_owned();
    }
    months
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn audit_verify(
    env: &Env,
    month: Option<domain::audit::month::Month>,
    json: bool,
) -> ExitCode {
    let trail = match audit_trail(env).await {
        Ok(trail) => trail,
        Err(code) => return code,
    };
    let report = match trail.verify(month).await {
        Ok(report) => report,
        Err(e) => return failed(&anyhow::Error::new(e).context("while verifying the audit trail")),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "seals: {} (covering positions up to {})",
            report.seals, report.sealed_upto
        );
        for m in &report.months {
            println!(
                "{}  events {:>8}  sealed {:>8}  pending {:>6}{}",
                m.month,
                m.events,
                m.sealed,
                m.pending,
                if m.archived { "  archived" } else { "" }
            );
        }
        if report.findings.is_empty() {
            println!("no findings: every sealed event is present, unaltered and in place");
        }
        for finding in &report.findings {
            println!(
                "FINDING {}",
                serde_json::to_string(finding).unwrap_or_default()
            );
        }
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    }
}

#[allow(clippy::print_stdout)] // The report is the command's output.
/// Where `audit archive` puts a month.
pub enum ArchiveTarget {
    /// A file in this directory; the manifest is recorded.
    Directory(std::path::PathBuf),
    /// Standard output; nothing is recorded.
    Stdout,
    /// Nowhere: the month is archived again to check this SHA-256, and its
    /// manifest recorded when it matches.
    Confirm(String),
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // The report is the command's output.
pub async fn audit_archive(
    env: &Env,
    month: domain::audit::month::Month,
    target: ArchiveTarget,
    archived_by: &str,
) -> ExitCode {
    let trail = match audit_trail(env).await {
        Ok(trail) => trail,
        Err(code) => return code,
    };
    let output = match target {
        ArchiveTarget::Directory(dir) => dir,
        ArchiveTarget::Stdout => {
            let stdout = std::io::stdout().lock();
            return match audit::archive_to(&trail, month, stdout).await {
                Ok(m) => {
                    eprintln!(
                        "archived {month}: {} events, sha256 {}. No manifest is recorded yet: check \
                         the received file (`sha256sum`), then run `biometric-passkey audit archive \
                         --month {month} --confirm-sha256 {}` to record it (which lets retention \
                         drop the month).",
                        m.row_count, m.sha256, m.sha256
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => failed(&e.context(format!("while archiving {month}"))),
            };
        }
        ArchiveTarget::Confirm(sha256) => {
            return match audit::confirm(&trail, month, &sha256, archived_by).await {
                Ok(Some((m, recorded))) => {
                    println!(
                        "{month}: {} events, sha256 {}; manifest {}",
                        m.row_count,
                        m.sha256,
                        match recorded {
                            domain::audit::trail::ArchiveRecorded::New => "recorded",
                            domain::audit::trail::ArchiveRecorded::AlreadyRecorded => {
                                "already recorded"
                            }
                            domain::audit::trail::ArchiveRecorded::Differs(_) => {
                                "NOT recorded: an earlier manifest of other contents stands"
                            }
                        }
                    );
                    if matches!(recorded, domain::audit::trail::ArchiveRecorded::Differs(_)) {
                        ExitCode::from(EXIT_FINDINGS)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Ok(None) => {
                    eprintln!(
                        "{month} does not archive to sha256 {sha256} now: the file received is \
                         not this month's archive as stored (or the trail changed; run \
                         `biometric-passkey audit verify`). Nothing recorded."
                    );
                    ExitCode::from(EXIT_FINDINGS)
                }
                Err(e) => failed(&e.context(format!("while checking the archive of {month}"))),
            };
        }
    };
    let archived = match audit::archive(&trail, month, &output, archived_by).await {
        Ok(archived) => archived,
        Err(e) => return failed(&e.context(format!("while archiving {month}"))),
    };
    let m = &archived.manifest;
    match archived.recorded {
        domain::audit::trail::ArchiveRecorded::New => {
            println!(
                "archived {month}: {} events to {} (sha256 {}); manifest recorded",
                m.row_count,
                archived.path.display(),
                m.sha256
            );
            ExitCode::SUCCESS
        }
        domain::audit::trail::ArchiveRecorded::AlreadyRecorded => {
            println!(
                "{month} was archived before with the same {} events (sha256 {}); nothing changed",
                m.row_count, m.sha256
            );
            ExitCode::SUCCESS
        }
        domain::audit::trail::ArchiveRecorded::Differs(earlier) => {
            eprintln!(
                "{month} was archived on {} with {} events (sha256 {}); it now has {} events \
                 (sha256 {}). The trail of that month changed: run `biometric-passkey audit verify`. \
                 The new export is kept apart at {}; the earlier manifest stands.",
                earlier.archived_at,
                earlier.row_count,
                earlier.sha256,
                m.row_count,
                m.sha256,
                archived.path.display()
            );
            ExitCode::from(EXIT_FINDINGS)
        }
    }
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

/// What `keys` makes.
pub enum KeysRequest {
    DataEncryption { id: Option<String> },
    CoreApi,
}

/// Prints a new secret on standard output (exit 0), or why not (exit 2).
#[allow(clippy::print_stdout, clippy::print_stderr)] // The secret is the command's output.
pub fn keys(request: KeysRequest) -> ExitCode {
    use domain::Clock;
    let out = match request {
        KeysRequest::DataEncryption { id } => {
            match crate::keys::data_encryption_key(id.as_deref(), app::SystemClock.now()) {
                Ok(lines) => zeroize::Zeroizing::new(lines),
                Err(reason) => {
                    eprintln!("biometric-passkey keys generate: {reason}");
                    return ExitCode::from(2);
                }
            }
        }
        KeysRequest::CoreApi => crate::keys::core_api_key(),
    };
    print!("{}", out.as_str());
    ExitCode::SUCCESS
}

/// `keys status`: see [`crate::keys::status_report`].
#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn keys_status(env: &Env) -> ExitCode {
    let config = match AuditToolConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("keys", &problems),
    };
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let counts = match app::open_repository(&config.database).await {
        Ok(repo) => repo.sealed_values().await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    let counts = match counts {
        Ok(counts) => counts,
        Err(e) => return failed(&e),
    };
    let configured: Vec<&str> = std::iter::once(config.data_key.id())
        .chain(config.data_key.earlier_ids())
        .map(|id| id.as_str())
        .collect();
    let (report, all_configured) = crate::keys::status_report(&counts, &configured);
    print!("{report}");
    if all_configured {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

/// `keys reseal`: everything sealed under an earlier data-encryption key is
/// sealed again under the current one, then the audit trail's seals are
/// re-keyed. 0 when nothing is left under an earlier key; 3 when values
/// under a key that is not configured remain (named); 1 on any other failure.
#[allow(clippy::print_stdout, clippy::print_stderr)] // Progress and report are the output.
pub async fn keys_reseal(env: &Env, batch: u32) -> ExitCode {
    let config = match AuditToolConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("keys", &problems),
    };
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let repo = match app::open_repository(&config.database).await {
        Ok(repo) => repo,
        Err(e) => return failed(&e),
    };
    let key = &config.data_key;
    let total = match repo.sealed_values().await {
        Ok(counts) => crate::keys::left_to_reseal(&counts, key),
        Err(e) => return failed(&anyhow::Error::new(e)),
    };
    println!(
        "re-sealing {total} values under key {}, in batches of {batch}",
        key.id().as_str()
    );
    let mut progress = crate::keys::ResealProgress::new(total, std::io::stderr().is_terminal());
    let outcome = crate::keys::reseal(repo.as_ref(), key, batch, &mut |column, n| {
        if let Some(line) = progress.advance(column, n) {
            eprintln!("{line}");
        }
    })
    .await;
    progress.finish();
    let resealed = match outcome {
        Ok(resealed) => resealed,
        Err(e) => {
            return failed(&anyhow::Error::new(e).context(
                "while re-sealing; what is done stays done: run `keys reseal` again to go on",
            ));
        }
    };
    println!(
        "re-sealed {} values in {} passes ({} changed by requests meanwhile, left to them)",
        resealed.resealed, resealed.passes, resealed.changed_meanwhile
    );
    let trail = audit::trail(repo.clone(), Arc::new(app::SystemClock), key, &config.audit);
    let rekeyed = match trail.rekey().await {
        Ok(Some(rekeyed)) => rekeyed,
        Ok(None) => {
            eprintln!(
                "biometric-passkey keys reseal: the audit trail's maintenance is running \
                 elsewhere; run `keys reseal` again to re-key its seals"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => return failed(&anyhow::Error::new(e).context("while re-keying the audit trail")),
    };
    if !rekeyed.refused.is_empty() {
        for finding in &rekeyed.refused {
            eprintln!(
                "FINDING {}",
                serde_json::to_string(finding).unwrap_or_default()
            );
        }
        eprintln!(
            "biometric-passkey keys reseal: the audit trail does not verify, so its seals were \
             not re-keyed; see `biometric-passkey audit verify`"
        );
        return ExitCode::FAILURE;
    }
    println!(
        "audit trail: {} seals signed again under key {} ({} event tags made again, {} kept \
         for months no longer stored)",
        rekeyed.seals,
        key.id().as_str(),
        rekeyed.retagged,
        rekeyed.kept_tags
    );
    if !resealed.unreadable.is_empty() {
        for (reason, n) in &resealed.unreadable {
            eprintln!("left as they are: {n} values {reason}");
        }
        return ExitCode::from(3);
    }
    if !resealed.settled {
        eprintln!(
            "biometric-passkey keys reseal: requests kept writing values under an earlier key; \
             check the runtimes all run with the new current key, then run `keys reseal` again"
        );
        return ExitCode::FAILURE;
    }
    println!("done: check with `biometric-passkey keys status`");
    ExitCode::SUCCESS
}

pub fn check_config(env: &Env, runtime: Runtime) -> ExitCode {
    let (name, outcome) = match runtime {
        Runtime::Core => ("core", CoreConfig::from_env(env).map(drop)),
        Runtime::Management => ("management", ManagementConfig::from_env(env).map(drop)),
        Runtime::Migrate => ("migrate", MigrateConfig::from_env(env).map(drop)),
    };
    match outcome {
        Ok(()) => {
            for unknown in env.unknown_prefixed() {
                eprintln!(
                    "warning: {unknown} is not a setting of biometric-passkey; check its spelling"
                );
            }
            eprintln!("biometric-passkey {name}: configuration is valid");
            ExitCode::SUCCESS
        }
        Err(problems) => refuse(name, &problems),
    }
}

pub async fn healthcheck(port: u16, path: &str) -> ExitCode {
    match healthcheck::probe(port, path, Duration::from_secs(3)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// `smoke`: see [`crate::smoke`]. 0 when no check failed, 1 otherwise.
#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn smoke(options: crate::smoke::SmokeOptions, json: bool) -> ExitCode {
    let report = crate::smoke::run(options).await;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).unwrap_or_else(|_| "{}".to_owned())
        );
    } else {
        print!("{}", report.lines());
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `credentials export`: see [`crate::credentials`]. 0 when the export is
/// complete; 2 for a refused configuration or user id; 1 otherwise (what was
/// written is then not a complete export: it has no end line).
#[allow(clippy::print_stderr)]
pub async fn credentials_export(env: &Env, user: Option<&str>, exported_by: &str) -> ExitCode {
    let config = match AuditToolConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("credentials", &problems),
    };
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let users = match user {
        None => crate::credentials::Users::All,
        Some(raw) => match domain::ExternalUserId::parse(raw) {
            Ok(id) => crate::credentials::Users::One(id),
            Err(e) => {
                eprintln!("biometric-passkey credentials export: --user: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let repo = match app::open_repository(&config.database).await {
        Ok(repo) => repo,
        Err(e) => return failed(&e),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    match crate::credentials::export(
        repo,
        Arc::new(app::SystemClock),
        users,
        exported_by,
        &mut out,
    )
    .await
    {
        Ok(exported) => {
            eprintln!(
                "exported {} credentials of {} users",
                exported.credentials, exported.users
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e.context("while exporting credentials")),
    }
}
