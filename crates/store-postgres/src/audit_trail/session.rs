//! The maintainer's connection, kept between runs, and the lock that makes
//! it the one maintainer.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use domain::StoreResult;
use domain::audit::trail::MaintenanceLease;
use sqlx::{Connection, Executor, PgConnection};

use super::MAINTENANCE_LOCK;
use super::lease::PgLease;
use crate::StorePool;
use crate::errors::map_err;

/// The maintainer's connection, parked between runs. Opening one per run would
/// cost PostgreSQL a backend start and an authentication every run, a burst
/// next to the requests' work; a replica that does not lead keeps its
/// connection too, to try again next run. Like the pool's connections, it is
/// replaced once older than `DB_CONN_MAX_LIFETIME`.
#[derive(Debug, Default)]
pub(crate) struct MaintenanceSession {
    parked: Mutex<Option<Parked>>,
}

#[derive(Debug)]
pub(super) struct Parked {
    pub(super) conn: PgConnection,
    opened: Instant,
}

impl MaintenanceSession {
    fn take(&self) -> Option<Parked> {
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(super) fn park(&self, parked: Parked) {
        *self.parked.lock().unwrap_or_else(PoisonError::into_inner) = Some(parked);
    }

    /// Closes the parked connection, if any (at shutdown).
    pub(crate) async fn close(&self) {
        if let Some(parked) = self.take() {
            let _ = parked.conn.close().await;
        }
    }
}

pub(crate) async fn lead(
    pool: &StorePool,
    session: &Arc<MaintenanceSession>,
) -> StoreResult<Option<Box<dyn MaintenanceLease>>> {
    let lifetime = pool.sqlx().options().get_max_lifetime();
    let pooled = pool.statements_in_transactions();
    let kept = match session.take() {
        None => None,
        Some(parked) if lifetime.is_some_and(|lifetime| parked.opened.elapsed() >= lifetime) => {
            tracing::debug!("audit maintenance connection reached its lifetime; opening a new one");
            let _ = parked.conn.close().await;
            None
        }
        Some(mut parked) => match try_lock(&mut parked.conn, pooled).await {
            Ok(leader) => Some((parked, leader)),
            // It went away (a database restart, a connection cut by the
            // network): a new one.
            Err(error) => {
                tracing::debug!(%error, "audit maintenance connection lost; opening a new one");
                None
            }
        },
    };
    let (parked, leader) = match kept {
        Some(kept) => kept,
        None => {
            let mut conn = connect(pool).await?;
            let opened = Instant::now();
            let leader = try_lock(&mut conn, pooled).await?;
            (Parked { conn, opened }, leader)
        }
    };
    if !leader {
        session.park(parked);
        return Ok(None);
    }
    Ok(Some(Box::new(PgLease {
        held: parked,
        session: Arc::clone(session),
        pool: pooled.then(|| pool.clone()),
    })))
}

/// The maintainer's `application_name`, so that `pg_stat_activity` tells its
/// connection from the request pool's (`settings::APPLICATION_NAME`).
pub const MAINTENANCE_APPLICATION_NAME: &str = "biometric-passkey-audit-maintenance";

/// A connection of its own rather than one taken from the pool: the pool keeps
/// its warm connections (a replacement would start with cold caches and
/// unprepared statements, in a request's path).
async fn connect(pool: &StorePool) -> StoreResult<PgConnection> {
    let options = (*pool.sqlx().connect_options())
        .clone()
        .application_name(MAINTENANCE_APPLICATION_NAME);
    let connect = PgConnection::connect_with(&options);
    tokio::time::timeout(crate::pool::ACQUIRE_TIMEOUT, connect)
        .await
        .map_err(|_| map_err(sqlx::Error::PoolTimedOut))?
        .map_err(map_err)
}

/// Takes the maintenance lock: on the session, or behind a pooler in
/// transaction mode, in a transaction left open while it is held (rolled
/// back at once when another maintainer holds it).
async fn try_lock(conn: &mut PgConnection, pooled: bool) -> StoreResult<bool> {
    if !pooled {
        return sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(conn)
            .await
            .map_err(map_err);
    }
    conn.execute(crate::pool::POOLED_BEGIN)
        .await
        .map_err(map_err)?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(MAINTENANCE_LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    if !locked {
        conn.execute("ROLLBACK").await.map_err(map_err)?;
    }
    Ok(locked)
}
