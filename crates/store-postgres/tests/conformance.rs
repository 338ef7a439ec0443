//! The repository conformance suite on a fresh PostgreSQL database per test,
//! plus the behaviours only PostgreSQL has.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use std::sync::Arc;
use std::time::Duration;

use domain::{Repository, StoreError};
use store_conformance::postgres::{TestDatabase, fresh_database};
use store_conformance::{Fixture, Tamper};
use store_postgres::{PgSettings, PgStore, SslMode};

fn settings(db: &TestDatabase) -> PgSettings {
    PgSettings {
        host: db.host.clone(),
        port: db.port,
        user: db.user.clone(),
        password: Some(db.password.clone().into()),
        database: db.database.clone(),
        ssl_mode: SslMode::Disable,
        max_open_conns: 4,
        max_idle_conns: 4,
        conn_max_lifetime: Duration::from_secs(300),
        conn_max_idle_time: Duration::from_secs(60),
    }
}

async fn fresh() -> Fixture {
    let db = fresh_database().await;
    let store = PgStore::connect_lazy(&settings(&db));
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    let tamper: Tamper = Arc::new(move |sql: String| {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        })
    });
    Fixture::new(Arc::new(store), tamper, db)
}

store_conformance::conformance_suite!(fresh);

#[tokio::test]
async fn migrate_twice_applies_nothing_the_second_time() {
    let db = fresh_database().await;
    let store = PgStore::connect_lazy(&settings(&db));
    let first = store.migrate().await.unwrap();
    assert!(!first.applied.is_empty());
    let second = store.migrate().await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(first.latest, second.latest);
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let db = TestDatabase {
        host: "127.0.0.1".into(),
        port: 1,
        user: "nobody".into(),
        password: "x".into(),
        database: "none".into(),
    };
    let store = PgStore::connect_lazy(&settings(&db));
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
