//! The management runtime served on a fresh store, or on a Core API's.

use std::sync::Arc;
use std::time::Duration;

use domain::ManualClock;
use http_common::HttpLimits;
use idv::SyntheticProvider;
use management::{ManagementAuth, ManagementUi};
use server::app;
use server::config::{AuditConfig, CommonConfig, DatabaseConfig, LogLevel, ManagementConfig};
use server::metrics::Metrics;
use store_sqlite::SqliteSettings;

use crate::{Parts, Store, T0, TestApp, fresh_repository, fresh_store, serve, serve_metered};

/// The management configuration tests use: a loopback issuer, every scope.
pub fn management_config() -> ManagementConfig {
    ManagementConfig {
        common: CommonConfig {
            port: 0,
            metrics_port: None,
            log_level: LogLevel::Info,
            database: DatabaseConfig::Sqlite(SqliteSettings::new("unused")),
            version_detail: false,
            http: HttpLimits::default(),
            traces: server::traces::TracesConfig::default(),
            shutdown_drain: std::time::Duration::ZERO,
        },
        auth: ManagementAuth {
            issuer: "http://127.0.0.1:9/".into(),
            audience: "biometric-passkey-management-api".into(),
            jwks_url: "http://127.0.0.1:9/jwks".into(),
            scope_claim: "scope".into(),
            scope_prefix: String::new(),
            clock_skew: Duration::from_secs(30),
        },
        ui: ManagementUi {
            client_id: "biometric-passkey-management-ui".into(),
            scopes: management::runtime_config::DEFAULT_UI_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        },
        audit: AuditConfig {
            partition_maintenance_enabled: false,
            retention_months: 0,
        },
        metadata_file: None,
    }
}

/// The management runtime on a fresh store, measured as the `management`
/// runtime measures itself: its metrics at [`TestApp::metrics`].
pub async fn spawn_management_metered(store: Store) -> TestApp {
    let metrics = Metrics::new().unwrap();
    let (repo, pool, keep) = fresh_store(store).await;
    metrics.watch_pool(pool);
    let router = app::management_router(
        &management_config(),
        metrics.measure_repository(repo.clone()),
        "management",
    )
    .unwrap();
    let parts = Parts {
        repo,
        clock: Arc::new(ManualClock::new(T0)),
        synthetic: Arc::new(SyntheticProvider::new()),
        flows: None,
        keep,
        limits: HttpLimits::default(),
    };
    serve_metered(router, parts, &metrics, "management").await
}

/// The management runtime on a fresh store.
pub async fn spawn_management(store: Store) -> TestApp {
    let (repo, keep) = fresh_repository(store).await;
    let router = app::management_router(&management_config(), repo.clone(), "management").unwrap();
    let parts = Parts {
        repo,
        clock: Arc::new(ManualClock::new(T0)),
        synthetic: Arc::new(SyntheticProvider::new()),
        flows: None,
        keep,
        limits: HttpLimits::default(),
    };
    serve(router, parts).await
}

/// The management runtime on a fresh store, authenticating operators with
/// `config`, its clock at [`T0`].
pub async fn spawn_management_with(store: Store, config: ManagementConfig) -> TestApp {
    let (repo, keep) = fresh_repository(store).await;
    let clock = Arc::new(ManualClock::new(T0));
    let router =
        app::management_router_with_clock(&config, repo.clone(), "management", clock.clone())
            .unwrap();
    let parts = Parts {
        repo,
        clock,
        synthetic: Arc::new(SyntheticProvider::new()),
        flows: None,
        keep,
        limits: HttpLimits::default(),
    };
    serve(router, parts).await
}

/// The management runtime over `core`'s database (which `core` keeps alive),
/// authenticating operators with `config`, on `core`'s clock.
pub async fn spawn_management_for(core: &TestApp, config: ManagementConfig) -> TestApp {
    let router = app::management_router_with_clock(
        &config,
        core.repo.clone(),
        "management",
        core.clock.clone(),
    )
    .unwrap();
    let parts = Parts {
        repo: core.repo.clone(),
        clock: core.clock.clone(),
        synthetic: core.synthetic.clone(),
        flows: None,
        keep: Box::new(()),
        limits: HttpLimits::default(),
    };
    serve(router, parts).await
}
