//! Partition maintenance, walked across month boundaries with a manual clock.

use std::sync::Arc;

use domain::audit::month::Month;
use domain::{ManualClock, Repository};
use sqlx::PgPool;
use store_conformance::audit_trail::{append, manifest, month_events, trail};
use store_conformance::postgres::fresh_database;
use store_postgres::{
    AUDIT_MAINTENANCE_APPLICATION_NAME, AUDIT_MAINTENANCE_LOCK, PgSettings, PgStore,
};
use time::macros::datetime;

use super::settings;

async fn store() -> (Arc<dyn Repository>, PgPool, impl Sized) {
    store_with(|settings| settings).await
}

/// A store on a fresh database, its settings edited by `edit`.
async fn store_with(
    edit: impl FnOnce(PgSettings) -> PgSettings,
) -> (Arc<dyn Repository>, PgPool, impl Sized) {
    let db = fresh_database().await;
    let store = PgStore::connect_lazy(&edit(settings(&db)));
    store.migrate().await.unwrap();
    let pool = store.pool().sqlx().clone();
    (Arc::new(store), pool, db)
}

async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The partition each event (by reason) sits in.
async fn placement(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT reason, tableoid::regclass::text FROM audit_events ORDER BY occurred_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn month(s: &str) -> Month {
    s.parse().unwrap()
}

/// A vacuum or an analyze holds the audit table in a mode that conflicts
/// with the sealer's `SHARE` lock for as long as it runs. The sealer does
/// not wait it out (every writer would queue behind it): it defers to the
/// next run, without failing the run, and seals everything then.
#[tokio::test]
async fn sealing_defers_while_the_audit_table_is_held() {
    let (repo, pool, _db) = store().await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);
    trail.maintain().await.unwrap();
    append(&*repo, datetime!(2026-11-20 09:00 UTC), "while held").await;

    // What autovacuum and ANALYZE take.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE audit_events IN SHARE UPDATE EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let report = trail.maintain().await.unwrap();
    assert!(report.leader && report.sealing_deferred, "{report:?}");
    assert_eq!(report.sealed_events, 0);
    assert_eq!(report.awaiting_sealing, 1, "the event past the last seal");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "gave up after a few short waits: {:?}",
        started.elapsed()
    );
    // Writers were never shut out for long: an event goes in meanwhile.
    append(&*repo, datetime!(2026-11-20 09:00 UTC), "meanwhile").await;
    holder.rollback().await.unwrap();

    let report = trail.maintain().await.unwrap();
    assert!(!report.sealing_deferred);
    assert_eq!(report.sealed_events, 2);
    assert_eq!(report.awaiting_sealing, 0);
    assert!(trail.verify(None).await.unwrap().is_clean());
}

#[tokio::test]
async fn partitions_are_made_ahead_and_events_land_in_their_month() {
    let (repo, pool, _db) = store().await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);

    // Before any maintenance an event still lands: in the default partition.
    append(
        &*repo,
        datetime!(2026-11-20 09:00 UTC),
        "before maintenance",
    )
    .await;
    assert_eq!(
        placement(&pool).await,
        [("before maintenance".into(), "audit_events_default".into())]
    );

    let report = trail.maintain().await.unwrap();
    assert_eq!(
        report.created,
        [month("2026-11"), month("2026-12"), month("2027-01")]
    );
    assert_eq!(report.partitions_ahead, Some(2), "December and January");
    assert_eq!(
        partitions(&pool).await,
        [
            "audit_events_default",
            "audit_events_y2026m11",
            "audit_events_y2026m12",
            "audit_events_y2027m01"
        ]
    );
    assert_eq!(
        placement(&pool).await,
        [("before maintenance".into(), "audit_events_y2026m11".into())],
        "moved out of the default partition when its month was made"
    );

    append(
        &*repo,
        datetime!(2026-12-31 23:59:59.999999 UTC),
        "last of december",
    )
    .await;
    append(&*repo, datetime!(2027-01-01 00:00 UTC), "first of january").await;
    append(&*repo, datetime!(2027-03-01 00:00 UTC), "beyond the window").await;

    // Across the year boundary: February and March are made, and the March
    // event waiting in the default partition moves in.
    clock.set(datetime!(2027-01-02 00:00 UTC));
    let report = trail.maintain().await.unwrap();
    assert_eq!(report.created, [month("2027-02"), month("2027-03")]);
    assert_eq!(
        placement(&pool).await,
        [
            ("before maintenance".into(), "audit_events_y2026m11".into()),
            ("last of december".into(), "audit_events_y2026m12".into()),
            ("first of january".into(), "audit_events_y2027m01".into()),
            ("beyond the window".into(), "audit_events_y2027m03".into()),
        ]
    );
    let again = trail.maintain().await.unwrap();
    assert!(again.created.is_empty(), "nothing to do twice");
    let verified = trail.verify(None).await.unwrap();
    assert!(verified.is_clean(), "{:?}", verified.findings);
}

#[tokio::test]
async fn retention_drops_the_partition_of_an_archived_month() {
    let (repo, pool, _db) = store().await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-05 00:00 UTC)));
    let trail = trail(&repo, &clock, 2);
    trail.maintain().await.unwrap();
    append(&*repo, datetime!(2026-01-05 00:00 UTC), "january").await;
    append(&*repo, datetime!(2026-02-05 00:00 UTC), "february").await;

    clock.set(datetime!(2026-05-01 00:00 UTC));
    repo.record_audit_archive(&manifest(month("2026-01"), 1, 'f'))
        .await
        .unwrap();
    let report = trail.maintain().await.unwrap();
    assert_eq!(report.dropped, [month("2026-01")]);
    assert_eq!(report.kept_unarchived, [month("2026-02")]);
    let names = partitions(&pool).await;
    assert!(
        !names.contains(&"audit_events_y2026m01".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"audit_events_y2026m02".to_owned()),
        "{names:?}"
    );
    assert!(month_events(&*repo, month("2026-01")).await.is_empty());
    assert!(
        names.contains(&"audit_events_y2026m07".to_owned()),
        "made ahead: {names:?}"
    );
}

/// Backends of the maintainer's sessions, by their `application_name` (the
/// pool's connections, such as the one that ran the migrations and its
/// advisory unlock, have another).
async fn maintainer_backends(pool: &PgPool) -> Vec<i32> {
    // A closed connection's backend leaves `pg_stat_activity` a moment
    // after the client hangs up: wait for it, briefly, before counting.
    let mut backends = Vec::new();
    for _ in 0..50 {
        backends = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = $1 ORDER BY pid",
        )
        .bind(AUDIT_MAINTENANCE_APPLICATION_NAME)
        .fetch_all(pool)
        .await
        .unwrap();
        if backends.len() <= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    backends
}

/// A replica keeps its maintenance connection from one run to the next
/// rather than opening one per run, and opens a new one when the kept one
/// is gone (a database restart).
#[tokio::test]
async fn the_maintainer_keeps_its_connection_between_runs() {
    let (repo, pool, _db) = store().await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);

    append(&*repo, datetime!(2026-11-20 09:00 UTC), "first").await;
    assert_eq!(trail.maintain().await.unwrap().sealed_events, 1);
    let kept = maintainer_backends(&pool).await;
    assert_eq!(kept.len(), 1, "one session kept after the run: {kept:?}");

    append(&*repo, datetime!(2026-11-20 09:01 UTC), "second").await;
    assert_eq!(trail.maintain().await.unwrap().sealed_events, 1);
    assert_eq!(maintainer_backends(&pool).await, kept, "the same session");

    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(kept[0])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(terminated);
    append(&*repo, datetime!(2026-11-20 09:02 UTC), "third").await;
    let report = trail.maintain().await.unwrap();
    assert!(report.leader);
    assert_eq!(report.sealed_events, 1);
    let replaced = maintainer_backends(&pool).await;
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_ne!(replaced, kept, "a new session after the old one ended");
}

/// `DB_CONN_MAX_LIFETIME` applies to the kept connection as to the pool's.
#[tokio::test]
async fn the_maintainer_replaces_its_connection_after_its_lifetime() {
    let lifetime = std::time::Duration::from_millis(500);
    let (repo, pool, _db) = store_with(|settings| PgSettings {
        conn_max_lifetime: lifetime,
        ..settings
    })
    .await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);

    trail.maintain().await.unwrap();
    let first = maintainer_backends(&pool).await;
    assert_eq!(first.len(), 1, "{first:?}");
    trail.maintain().await.unwrap();
    assert_eq!(
        maintainer_backends(&pool).await,
        first,
        "kept within its lifetime"
    );

    tokio::time::sleep(lifetime).await;
    append(&*repo, datetime!(2026-11-20 09:00 UTC), "after").await;
    assert_eq!(trail.maintain().await.unwrap().sealed_events, 1);
    let second = maintainer_backends(&pool).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "replaced once older than its lifetime");
}

#[tokio::test]
async fn a_second_maintainer_does_nothing_while_the_first_holds_the_lock() {
    let (repo, pool, _db) = store().await;
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    append(&*repo, datetime!(2026-11-20 09:00 UTC), "waiting").await;

    // Another replica holds the maintenance lock on its own session.
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(AUDIT_MAINTENANCE_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    let report = trail(&repo, &clock, 0).maintain().await.unwrap();
    assert!(!report.leader);
    assert!(report.created.is_empty() && report.sealed_events == 0);
    assert_eq!(partitions(&pool).await, ["audit_events_default"]);

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(AUDIT_MAINTENANCE_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    let report = trail(&repo, &clock, 0).maintain().await.unwrap();
    assert!(report.leader);
    assert_eq!(report.sealed_events, 1);
}
