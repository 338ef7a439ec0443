//! The stores' database pool: sqlx's pool behind one acquire that counts the
//! tasks waiting for a connection and times how long each waited.
//!
//! sqlx exposes the pool's size and idle connections but not its waiters, so
//! every connection or transaction the stores take goes through
//! [`MeteredPool::acquire`]: one atomic counter up and down around sqlx's own
//! acquire, and one call of the [`AcquireObserver`] with the time it took.
//! The pool is an sqlx [`Executor`] too, so a statement run on it directly
//! takes its connection the same way. The numbers are read by whoever runs
//! the store (the server's metrics); this crate knows no metrics library.
//!
//! Behind a pooler that lends a server session per transaction (PgBouncer's
//! transaction mode), a statement outside a transaction may have its parse
//! and its execution sent to different sessions. A pool built
//! [`MeteredPool::with_statements_in_transactions`] runs every statement run
//! on it in a transaction of its own.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Describe, Either, Error, Execute, Executor, Pool, Transaction};

/// Told how long each acquire waited, successful or not.
pub type AcquireObserver = Box<dyn Fn(Duration) + Send + Sync>;

/// sqlx's pool, with its acquires counted and timed. Cheap to clone; clones
/// share the pool and its counts.
pub struct MeteredPool<DB: Database> {
    pool: Pool<DB>,
    meter: Arc<Meter>,
    /// When statements run in transactions of their own: the statement
    /// that opens every transaction taken from the pool.
    in_transactions: Option<&'static str>,
}

#[derive(Default)]
struct Meter {
    waiting: AtomicU64,
    observer: OnceLock<AcquireObserver>,
}

impl<DB: Database> MeteredPool<DB> {
    pub fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            meter: Arc::default(),
            in_transactions: None,
        }
    }

    /// Has every statement run on the pool itself (not on a connection or
    /// transaction taken from it) run in a transaction of its own, and every
    /// transaction taken from it opened with `begin` (PostgreSQL behind a
    /// pooler: `BEGIN; DEALLOCATE ALL`, so that no statement another client
    /// prepared on the session it is lent is in the way).
    pub fn with_statements_in_transactions(mut self, begin: &'static str) -> Self {
        self.in_transactions = Some(begin);
        self
    }

    /// Whether statements run on the pool run in transactions of their own.
    pub fn statements_in_transactions(&self) -> bool {
        self.in_transactions.is_some()
    }

    /// The pool itself: its size and idle connections, its options, closing.
    pub fn sqlx(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Tasks waiting for a connection right now.
    pub fn waiters(&self) -> u64 {
        self.meter.waiting.load(Ordering::Relaxed)
    }

    /// The pool's connections and waiters, now.
    pub fn sample(&self) -> PoolSample {
        PoolSample {
            size: self.pool.size(),
            idle: self.pool.num_idle(),
            max: self.pool.options().get_max_connections(),
            waiters: self.waiters(),
        }
    }

    /// Has `observer` told the time of every acquire from now on. A pool has
    /// one observer; `false` (and `observer` dropped) when it has one already.
    pub fn observe(&self, observer: AcquireObserver) -> bool {
        self.meter.observer.set(observer).is_ok()
    }

    /// A connection from the pool: the one way the stores take one.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, Error> {
        let started = Instant::now();
        let waiting = Waiting::enter(&self.meter, started);
        let conn = self.pool.acquire().await;
        drop(waiting);
        conn
    }

    /// A transaction on a connection from [`MeteredPool::acquire`].
    pub async fn begin(&self) -> Result<Transaction<'static, DB>, Error> {
        Transaction::begin(
            self.acquire().await?,
            self.in_transactions.map(Cow::Borrowed),
        )
        .await
    }

    /// A transaction opened with `statement` (SQLite's `BEGIN IMMEDIATE`).
    pub async fn begin_with(
        &self,
        statement: impl Into<Cow<'static, str>>,
    ) -> Result<Transaction<'static, DB>, Error> {
        Transaction::begin(self.acquire().await?, Some(statement.into())).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A look at a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSample {
    /// Connections open.
    pub size: u32,
    /// Of those, idle.
    pub idle: usize,
    /// The pool's bound.
    pub max: u32,
    /// Tasks waiting for a connection.
    pub waiters: u64,
}

/// One task in [`MeteredPool::acquire`]; leaving (done, failed or cancelled)
/// counts it out and reports the time it spent.
struct Waiting<'m> {
    meter: &'m Meter,
    started: Instant,
}

impl<'m> Waiting<'m> {
    fn enter(meter: &'m Meter, started: Instant) -> Self {
        meter.waiting.fetch_add(1, Ordering::Relaxed);
        Self { meter, started }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.meter.waiting.fetch_sub(1, Ordering::Relaxed);
        if let Some(observer) = self.meter.observer.get() {
            observer(self.started.elapsed());
        }
    }
}

impl<DB: Database> Clone for MeteredPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            meter: self.meter.clone(),
            in_transactions: self.in_transactions,
        }
    }
}

impl<DB: Database> fmt::Debug for MeteredPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredPool")
            .field("pool", &self.pool)
            .field("waiters", &self.waiters())
            .field("in_transactions", &self.in_transactions)
            .finish()
    }
}

/// Statements run on the pool take their connection through
/// [`MeteredPool::acquire`], as sqlx's own pool does through its acquire.
/// A streamed statement's rows are read whole before they are handed on (the
/// stores read every result whole anyway), so no stream outlives its
/// connection; `execute` and `fetch_all`, the stores' usual calls, go to the
/// connection directly and read their results once.
impl<'p, DB: Database> Executor<'p> for &'_ MeteredPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        stream::once(async move {
            if pool.in_transactions.is_some() {
                let mut tx = pool.begin().await?;
                let results = tx.fetch_many(query).try_collect::<Vec<_>>().await?;
                tx.commit().await?;
                return Ok(results);
            }
            let mut conn = pool.acquire().await?;
            conn.fetch_many(query).try_collect::<Vec<_>>().await
        })
        .map_ok(|results| stream::iter(results.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<DB::QueryResult, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        Box::pin(async move {
            if pool.in_transactions.is_some() {
                let mut tx = pool.begin().await?;
                let done = tx.execute(query).await?;
                tx.commit().await?;
                return Ok(done);
            }
            pool.acquire().await?.execute(query).await
        })
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<DB::Row>, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        Box::pin(async move {
            if pool.in_transactions.is_some() {
                let mut tx = pool.begin().await?;
                let rows = tx.fetch_all(query).await?;
                tx.commit().await?;
                return Ok(rows);
            }
            pool.acquire().await?.fetch_all(query).await
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        Box::pin(async move {
            if pool.in_transactions.is_some() {
                let mut tx = pool.begin().await?;
                let row = tx.fetch_optional(query).await?;
                tx.commit().await?;
                return Ok(row);
            }
            pool.acquire().await?.fetch_optional(query).await
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use sqlx::Sqlite;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn one_connection_pool() -> MeteredPool<Sqlite> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect("sqlite::memory:")
            .await
            .unwrap();
        MeteredPool::new(pool)
    }

    #[tokio::test]
    async fn a_task_waiting_for_the_only_connection_is_counted_until_it_gets_it() {
        let pool = one_connection_pool().await;
        let held = pool.acquire().await.unwrap();
        assert_eq!(pool.waiters(), 0);

        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.map(drop) }
        });
        while pool.waiters() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.waiters(), 1);

        drop(held);
        waiter.await.unwrap().unwrap();
        assert_eq!(pool.waiters(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_is_counted_out() {
        let pool = one_connection_pool().await;
        let _held = pool.acquire().await.unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), pool.begin()).await;
        assert!(gave_up.is_err());
        assert_eq!(pool.waiters(), 0);
    }

    #[tokio::test]
    async fn every_acquire_and_statement_is_timed_once() {
        let pool = one_connection_pool().await;
        let times = Arc::new(Mutex::new(Vec::new()));
        assert!(pool.observe(Box::new({
            let times = times.clone();
            move |waited| times.lock().unwrap().push(waited)
        })));
        assert!(!pool.observe(Box::new(|_| {})));

        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        let rows: Vec<i64> = sqlx::query_scalar("SELECT 1 UNION ALL SELECT 2")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows, [1, 2]);
        let one: Option<i64> = sqlx::query_scalar("SELECT 3")
            .fetch_optional(&pool)
            .await
            .unwrap();
        assert_eq!(one, Some(3));

        assert_eq!(times.lock().unwrap().len(), 3);
    }
}
