//! The repository conformance suite on a fresh SQLite file per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use std::sync::Arc;

use domain::Repository;
use store_conformance::{Fixture, Tamper};
use store_sqlite::{SqliteSettings, SqliteStore};

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteSettings::new(dir.path().join("test.sqlite3")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    let tamper: Tamper = Arc::new(move |sql: String| {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        })
    });
    Fixture::new(Arc::new(store), tamper, dir)
}

store_conformance::conformance_suite!(fresh);

#[tokio::test]
async fn migrate_twice_applies_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteSettings::new(dir.path().join("m.sqlite3")))
        .await
        .unwrap();
    assert!(!store.migrate().await.unwrap().is_empty());
    assert!(store.migrate().await.unwrap().is_empty());
    store.ping().await.unwrap();
}
