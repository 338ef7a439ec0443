//! Test support for end-to-end tests: each runtime served on loopback over
//! real HTTP, on a fresh SQLite file or a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test-support code: a failed setup is a failed test.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use domain::Repository;
use management::{ManagementAuth, ManagementUi};
use server::app::{self, Application, Shutdown};
use server::config::{AuditConfig, CommonConfig, DatabaseConfig, LogLevel, ManagementConfig};
use store_conformance::postgres::fresh_database;
use store_postgres::{PgSettings, PgStore, SslMode};
use store_sqlite::{SqliteSettings, SqliteStore};
use tokio::net::TcpListener;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// Both stores, for tests that must hold on each.
pub const STORES: [Store; 2] = [Store::Sqlite, Store::Postgres];

/// A fresh, migrated repository, and what must outlive it.
pub async fn fresh_repository(store: Store) -> (Arc<dyn Repository>, Box<dyn Any + Send + Sync>) {
    match store {
        Store::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let repo = SqliteStore::open(&SqliteSettings::new(dir.path().join("test.sqlite3")))
                .await
                .unwrap();
            repo.migrate().await.unwrap();
            (Arc::new(repo), Box::new(dir))
        }
        Store::Postgres => {
            let db = fresh_database().await;
            let settings = PgSettings {
                host: db.host.clone(),
                port: db.port,
                user: db.user.clone(),
                password: Some(db.password.clone().into()),
                database: db.database.clone(),
                ssl_mode: SslMode::Disable,
                max_open_conns: 8,
                max_idle_conns: 8,
                conn_max_lifetime: Duration::from_secs(300),
                conn_max_idle_time: Duration::from_secs(60),
            };
            let repo = PgStore::connect_lazy(&settings);
            repo.migrate().await.unwrap();
            (Arc::new(repo), Box::new(db))
        }
    }
}

/// A runtime serving on `127.0.0.1:<random port>`; stops when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub repo: Arc<dyn Repository>,
    shutdown: Shutdown,
    _keep: Box<dyn Any + Send + Sync>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn serve(
    router: axum::Router,
    repo: Arc<dyn Repository>,
    keep: Box<dyn Any + Send + Sync>,
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::default();
    let server = Application::serve(listener, router, shutdown.signalled()).unwrap();
    TestApp {
        addr: server.addr(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        repo,
        shutdown,
        _keep: keep,
    }
}

/// The Core API on a fresh store.
pub async fn spawn_core(store: Store) -> TestApp {
    let (repo, keep) = fresh_repository(store).await;
    serve(app::core_router(repo.clone(), "core"), repo, keep).await
}

/// The management configuration tests use: a loopback issuer, every scope.
pub fn management_config() -> ManagementConfig {
    ManagementConfig {
        common: CommonConfig {
            port: 0,
            log_level: LogLevel::Info,
            database: DatabaseConfig::Sqlite(SqliteSettings::new("unused")),
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
    }
}

/// The management runtime on a fresh store.
pub async fn spawn_management(store: Store) -> TestApp {
    let (repo, keep) = fresh_repository(store).await;
    let router = app::management_router(&management_config(), repo.clone(), "management");
    serve(router, repo, keep).await
}
