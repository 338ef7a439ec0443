//! The repository conformance suite on a fresh PostgreSQL database per test,
//! plus the behaviours only PostgreSQL has.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use std::sync::Arc;
use std::time::Duration;

use domain::{Limit, Repository, StoreError};
use store_conformance::postgres::{TestDatabase, fresh_database};
use store_conformance::{Fixture, Tamper};
use store_postgres::{PgSettings, PgStore, SslMode};

mod audit_partitions;

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
        pooler_mode: store_postgres::PoolerMode::Session,
    }
}

/// Waits up to ten seconds for `done` to hold (the pool returns connections
/// on tasks of its own).
async fn settled(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn fresh() -> Fixture {
    let db = fresh_database().await;
    let store = PgStore::connect_lazy(&settings(&db));
    store.migrate().await.unwrap();
    fixture(store, db)
}

/// The suite's fixture over `store`: tampering goes through its own pool.
fn fixture(store: PgStore, db: TestDatabase) -> Fixture {
    let pool = store.pool().sqlx().clone();
    let tamper: Tamper = Arc::new(move |sql: String| {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        })
    });
    Fixture::new(Arc::new(store), tamper, db)
}

store_conformance::conformance_suite!(fresh);

/// The whole suite again with `DB_POOLER_MODE=transaction`: every statement
/// in a transaction of its own, statements prepared unnamed, the audit
/// maintenance's lease a transaction-scoped lock. (`scripts/faults` runs
/// this mode through PgBouncer itself.)
mod transaction_pooling {
    use super::*;

    pub(super) fn pooled(db: &TestDatabase) -> PgSettings {
        PgSettings {
            pooler_mode: store_postgres::PoolerMode::Transaction,
            ..settings(db)
        }
    }

    async fn fresh() -> Fixture {
        let db = fresh_database().await;
        // Migrations run on a session of their own, as `migrate` requires.
        let migrator = PgStore::connect_lazy(&settings(&db));
        migrator.migrate().await.unwrap();
        migrator.close().await;
        fixture(PgStore::connect_lazy(&pooled(&db)), db)
    }

    store_conformance::conformance_suite!(fresh);
}

/// Under transaction pooling nothing is left on a server session between
/// transactions: no named prepared statement, and no advisory lock once the
/// audit maintainer has let go; while it leads, no one else does.
#[tokio::test]
async fn transaction_pooling_leaves_nothing_on_a_session() {
    let db = fresh_database().await;
    let migrator = PgStore::connect_lazy(&settings(&db));
    migrator.migrate().await.unwrap();
    migrator.close().await;
    let one = |db: &TestDatabase| PgSettings {
        max_open_conns: 1,
        max_idle_conns: 1,
        ..transaction_pooling::pooled(db)
    };
    let store = PgStore::connect_lazy(&one(&db));
    let other = PgStore::connect_lazy(&one(&db));
    store.ping().await.unwrap();
    store.audit_months().await.unwrap();
    let lease = store.lead_audit_maintenance().await.unwrap();
    let mut lease = lease.expect("the only maintainer leads");
    lease.seal_head().await.unwrap();
    lease.count_after(0).await.unwrap();
    assert!(other.lead_audit_maintenance().await.unwrap().is_none());
    lease.release().await.unwrap();

    // The pool's one session: what a statement run on it sees.
    let named: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_statements")
        .fetch_one(store.pool())
        .await
        .unwrap();
    // Only the statement asking, prepared in its own transaction.
    assert!(named <= 1, "{named} statements left on the session");
    let locks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(locks, 0, "an advisory lock outlived the lease");
    // The other replica leads once it is released.
    let lease = other.lead_audit_maintenance().await.unwrap();
    lease
        .expect("led after the release")
        .release()
        .await
        .unwrap();
    store.close().await;
    other.close().await;
}

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

/// A seal's entries (per-event tags, which do not compress) are stored out of
/// line without a compression attempt: pglz trying each one showed as a burst
/// of the database's CPU at every sealing step.
#[tokio::test]
async fn seal_entries_are_stored_without_compression() {
    let db = fresh_database().await;
    let store = PgStore::connect_lazy(&settings(&db));
    store.migrate().await.unwrap();
    let storage: String = sqlx::query_scalar(
        "SELECT attstorage::text FROM pg_attribute \
         WHERE attrelid = 'audit_seals'::regclass AND attname = 'entries'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(storage, "e", "EXTERNAL: out of line, never compressed");
}

/// Recoveries of one user completing at once take the user's lock before
/// their flow rows, so they queue rather than deadlock (each cancels the
/// other's flow), and never leave two new passkeys active: twenty rounds, each
/// for a new user, so that both interleavings come up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_recoveries_neither_deadlock_nor_leave_two_new_passkeys() {
    let fixture = fresh().await;
    for round in 0..20 {
        store_conformance::completions::recoveries_completing_at_once(
            fixture.repo.clone(),
            &format!("recovering-{round}"),
        )
        .await;
    }
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

/// Connections the server dropped while they sat in the pool (a failover,
/// a restart, an idle-session timeout) are found out before use: the next
/// request after a pause gets a working connection, not an error.
#[tokio::test]
async fn connections_dropped_while_idle_are_replaced_before_use() {
    use sqlx::Connection;

    let db = fresh_database().await;
    let store = PgStore::connect_lazy(&settings(&db));
    store.migrate().await.unwrap();
    // Fill the pool: four connections held at once, then returned.
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(store.pool().acquire().await.unwrap());
    }
    drop(conns);
    // Each goes back to the pool on a task of its own, after a round trip.
    settled(|| store.pool().sqlx().num_idle() >= 4).await;
    assert_eq!(store.pool().sqlx().num_idle(), 4);

    let mut admin = sqlx::PgConnection::connect(&store_conformance::postgres::admin_url())
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&db.database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed.len(), 4, "{killed:?}");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..8 {
        store.ping().await.unwrap();
    }
}

/// `DB_MAX_IDLE_CONNS`: once the pool keeps that many idle connections, a
/// connection returned to it is closed, and its PostgreSQL session ends.
#[tokio::test]
async fn connections_returned_beyond_the_idle_cap_are_closed() {
    use sqlx::Connection;

    let db = fresh_database().await;
    let mut admin = sqlx::PgConnection::connect(&store_conformance::postgres::admin_url())
        .await
        .unwrap();
    for cap in [0, 2] {
        let store = PgStore::connect_lazy(&PgSettings {
            max_idle_conns: cap,
            ..settings(&db)
        });
        let pool = store.pool().sqlx();
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(pool.acquire().await.unwrap());
        }
        assert_eq!(pool.size(), 4);
        // Returned one at a time, each settled (kept idle, or closed) before the next.
        while let Some(conn) = conns.pop() {
            drop(conn);
            settled(|| pool.size() as usize == pool.num_idle() + conns.len()).await;
        }
        assert_eq!(
            (pool.num_idle(), pool.size()),
            (cap as usize, cap),
            "cap {cap}"
        );
        // A closed connection's backend ends a moment after its Terminate.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut open;
        loop {
            open = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&db.database)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if open == i64::from(cap) || std::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(open, i64::from(cap), "sessions left open with cap {cap}");
        store.close().await;
    }
}

/// Connections opened together are not replaced together: once they have
/// lived four-fifths of `DB_CONN_MAX_LIFETIME` they retire one at a time as
/// they are returned, and all of them before the lifetime ends.
#[tokio::test]
async fn connections_opened_together_are_replaced_one_at_a_time() {
    use std::collections::HashSet;
    use std::time::Instant;

    let db = fresh_database().await;
    // Four connections, two seconds: early retirement from 1.6 s, one per 100 ms.
    let lifetime = Duration::from_secs(2);
    let store = PgStore::connect_lazy(&PgSettings {
        conn_max_lifetime: lifetime,
        ..settings(&db)
    });
    // The backend of each of four connections held at once, then returned.
    let backends = || async {
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(store.pool().acquire().await.unwrap());
        }
        let mut pids = HashSet::new();
        for conn in &mut conns {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            pids.insert(pid);
        }
        pids
    };

    // A connection's age counts from its opening, somewhere between these two.
    let opening = Instant::now();
    let first = backends().await;
    let opened = Instant::now();
    assert_eq!(first.len(), 4);
    let mut remaining = first.len();
    // For each replacement, the check before the one that saw it and that
    // check itself: the connection retired as it was returned between them.
    let mut replaced_between = Vec::new();
    let mut previous_check = opened;
    while remaining > 0 && opening.elapsed() < lifetime + Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let check = Instant::now();
        let still = backends().await.intersection(&first).count();
        assert!(
            remaining - still <= 1,
            "{} connections replaced at once after {:?}",
            remaining - still,
            opening.elapsed()
        );
        if still < remaining {
            replaced_between.push((previous_check, check));
        }
        remaining = still;
        previous_check = check;
    }
    let since_opening: Vec<_> = replaced_between
        .iter()
        .map(|(after, before)| (*after - opening, *before - opening))
        .collect();
    assert_eq!(remaining, 0, "replaced between {since_opening:?}");
    // None before four-fifths of its age, the last before the lifetime ends.
    let (_, first_seen) = replaced_between[0];
    assert!(
        first_seen - opening >= lifetime.mul_f64(0.8),
        "{since_opening:?}"
    );
    let (last_retired_after, _) = replaced_between[3];
    assert!(last_retired_after - opened < lifetime, "{since_opening:?}");
}

/// One replica purges at a time: while another session holds the purge's
/// lock, a purge deletes nothing and says so.
#[tokio::test]
async fn a_purge_skips_while_another_replica_purges() {
    let db = fresh_database().await;
    let store = PgStore::connect_lazy(&settings(&db));
    store.migrate().await.unwrap();
    let purge = domain::Purge::IdempotencyRecords {
        before: time::macros::datetime!(2026-06-01 00:00 UTC),
    };
    let mut other = store.pool().acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(store_postgres::PURGE_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(store.purge(purge, 10).await.unwrap(), None);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(store_postgres::PURGE_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(store.purge(purge, 10).await.unwrap(), Some(0));
}

/// The per-user limits are counted after the user's lock is granted: a flow
/// another transaction opens while holding the lock counts against a
/// creation that waited for it, though the waiting statement began before
/// that flow was committed.
#[tokio::test]
async fn a_flow_committed_while_a_creation_waits_for_the_users_lock_counts_against_the_limit() {
    use domain::flow::{Flow, FlowId, FlowState, FlowType};
    use domain::{
        Actor, AuditEventType, Change, ExternalUserId, FlowLimits, FlowWrite, NewAuditEvent,
        Subject, User,
    };
    use sqlx::Connection;
    use time::macros::datetime;

    let db = fresh_database().await;
    let store = Arc::new(PgStore::connect_lazy(&settings(&db)));
    store.migrate().await.unwrap();
    let t0 = datetime!(2026-04-01 08:00:00 UTC);
    let user = User::new(ExternalUserId::parse("alice").unwrap(), t0);
    let created = NewAuditEvent::new(
        AuditEventType::UserCreated,
        Actor::Integration(None),
        Subject::of_user(&user),
        t0,
    );
    store.create_user(&user, &created).await.unwrap();
    let limits = FlowLimits {
        max_open_flows: 1,
        max_idv_runs_per_day: 100,
        now: t0,
    };
    let flow = || Flow {
        state: FlowState::Verified,
        ..Flow::new(
            FlowId(uuid::Uuid::new_v4()),
            user.id,
            FlowType::SignIn,
            t0,
            t0 + time::Duration::minutes(15),
        )
    };
    let insert = |f: Flow| Change {
        flow: Some(FlowWrite::Insert { flow: f, limits }),
        ..Change::default()
    };
    // An ended flow, which another transaction reopens under the user's lock.
    let ended = Flow {
        state: FlowState::Cancelled,
        ..flow()
    };
    store.apply(&insert(ended.clone())).await.unwrap();
    let mut other = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user.id.0)
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("UPDATE flows SET state = 'verified' WHERE id = $1")
        .bind(ended.id.0)
        .execute(&mut other)
        .await
        .unwrap();

    let waiting = {
        let store = store.clone();
        let change = insert(flow());
        tokio::spawn(async move { store.apply(&change).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the creation waits for the user's lock"
    );
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    match waiting.await.unwrap() {
        Err(StoreError::LimitReached(Limit::OpenFlows)) => {}
        other => panic!("expected the open-flow limit, got {other:?}"),
    }
    assert_eq!(store.flows_of(user.id, 10).await.unwrap().len(), 1);
}
