//! Throwaway PostgreSQL databases for tests, on the cluster `scripts/pg` runs.

use std::env;
use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The environment variable naming the test cluster's admin URL, exported by `scripts/pg`.
pub const ADMIN_URL_VAR: &str = "BIOMETRIC_PASSKEY_TEST_PG_URL";

/// Where a freshly created, empty database can be reached.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl TestDatabase {
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user, self.password, self.host, self.port, self.database
        )
    }
}

/// The admin URL of the test cluster; panics with instructions when unset.
pub fn admin_url() -> String {
    env::var(ADMIN_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "PostgreSQL is required by this test and {ADMIN_URL_VAR} is not set.\n\
             Run the whole suite with `scripts/test`, or start the test cluster with \
             `scripts/pg start` and load its settings with `source target/pg/env`."
        )
    })
}

/// Creates a new, empty database on the test cluster.
pub async fn fresh_database() -> TestDatabase {
    let admin = admin_url();
    let url = url::Url::parse(&admin).expect("the admin URL is a URL");
    let options = PgConnectOptions::from_str(&admin).expect("the admin URL is a PostgreSQL URL");
    let mut conn = PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach the test PostgreSQL cluster at {}:{} ({e}).\n\
             Start it with `scripts/pg start` (or run `scripts/test`).",
                url.host_str().unwrap_or("?"),
                url.port().unwrap_or(5432)
            )
        });
    let database = format!("t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE on the test cluster");
    conn.close().await.ok();
    TestDatabase {
        host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
        port: url.port().unwrap_or(5432),
        user: url.username().to_owned(),
        password: url.password().unwrap_or_default().to_owned(),
        database,
    }
}
