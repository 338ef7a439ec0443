//! The connection pool, sized and aged from the operator's `DB_*` settings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::PgSettings;

/// How long a request waits for a pooled connection, and the audit maintainer
/// for its own, before the store reports the database as unavailable.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a transaction opens behind a pooler in transaction mode. sqlx names
/// the statements it prepares (`sqlx_s_1`, …, counted per connection) even
/// with its statement cache off, and never closes an uncached one: on a server
/// session lent to one client after another, the next client's first name
/// would already be taken. Each transaction starts by deallocating whatever
/// the session holds; what it prepares itself lives until the next one's
/// start.
pub(crate) const POOLED_BEGIN: &str = "BEGIN; DEALLOCATE ALL";

/// A pooled connection idle for longer than this is pinged before use. The
/// pool pings every connection as it is returned, so one taken back sooner is
/// known to be alive; pinging it again would add a round trip to every
/// statement under load.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Builds the pool without connecting. A zero `DB_CONN_MAX_LIFETIME` or
/// `DB_CONN_MAX_IDLE_TIME` means no limit, as in Go's `database/sql`.
///
/// The [`IdleCap`] returned with it must live as long as the pool is used:
/// the pool's release hook reads it only through a weak handle, so that the
/// hook does not keep its own pool alive.
pub(crate) fn lazy(settings: &PgSettings) -> (PgPool, Arc<IdleCap>) {
    let lifetime = nonzero(settings.conn_max_lifetime);
    let retirement =
        lifetime.map(|lifetime| Arc::new(Retirement::new(lifetime, settings.max_open_conns)));
    let cap = Arc::new(IdleCap {
        max_idle: settings.max_idle_conns as usize,
        pool: OnceLock::new(),
    });
    let weak_cap = Arc::downgrade(&cap);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_open_conns)
        .min_connections(0)
        .max_lifetime(lifetime)
        .idle_timeout(nonzero(settings.conn_max_idle_time))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut PgConnection, meta| {
            Box::pin(async move {
                // `false` discards the connection; the pool takes or opens another.
                Ok(meta.idle_for < PING_IF_IDLE_FOR || conn.ping().await.is_ok())
            })
        })
        .after_release(move |_, meta| {
            // `false` closes the connection instead of keeping it.
            let keep = IdleCap::admits(&weak_cap)
                && retirement
                    .as_ref()
                    .is_none_or(|retirement| !retirement.retires(meta.age, Instant::now()));
            Box::pin(async move { Ok(keep) })
        })
        .connect_lazy_with(settings.connect_options());
    // Set once, here, before the pool has handed out any connection.
    let _ = cap.pool.set(pool.clone());
    (pool, cap)
}

/// `DB_MAX_IDLE_CONNS`: a connection returned while the pool already keeps
/// that many idle ones is closed instead of joining them. sqlx's pool has no
/// such limit of its own (it closes idle connections only by age, after
/// `DB_CONN_MAX_IDLE_TIME`), so its release hook applies this one.
///
/// Connections returned at the same instant are judged against the same idle
/// count, so the pool may hold one or two more for a moment; the next
/// releases and the idle timeout bring it back down.
#[derive(Debug)]
pub(crate) struct IdleCap {
    max_idle: usize,
    pool: OnceLock<PgPool>,
}

impl IdleCap {
    /// Whether a connection being returned may stay in the pool. Once the
    /// store that owned the cap is gone, a clone of the pool still in use
    /// keeps its connections (the idle timeout still closes them).
    fn admits(cap: &Weak<IdleCap>) -> bool {
        cap.upgrade().is_none_or(|cap| {
            cap.pool
                .get()
                .is_none_or(|pool| pool.num_idle() < cap.max_idle)
        })
    }
}

fn nonzero(limit: Duration) -> Option<Duration> {
    (!limit.is_zero()).then_some(limit)
}

/// Spreads the replacement of pooled connections over time.
///
/// The pool closes a connection once it is older than `DB_CONN_MAX_LIFETIME`,
/// with no jitter: connections opened together (at start, or when load rises)
/// would all be replaced together, and every replacement is a new PostgreSQL
/// session (authentication, a new backend process, cold caches, statements
/// prepared again) opened in some request's path. So a connection returned to
/// the pool may retire early, once it has lived four-fifths of its lifetime,
/// but only one connection per `spacing` does. The spacing lets a whole pool
/// retire within the last fifth; the lifetime stays a hard limit, enforced by
/// the pool itself for connections that sit idle.
#[derive(Debug)]
pub(crate) struct Retirement {
    early_from: Duration,
    spacing: Duration,
    anchor: Instant,
    /// When the last early retirement happened, in nanoseconds since `anchor`,
    /// plus one; zero before the first.
    last: AtomicU64,
}

impl Retirement {
    pub(crate) fn new(lifetime: Duration, pool_size: u32) -> Self {
        let early_from = lifetime.mul_f64(0.8);
        Self {
            early_from,
            spacing: (lifetime - early_from) / pool_size.max(1),
            anchor: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Whether a connection of this age, returned to the pool at `now`,
    /// retires now. Claims the retirement slot when it does.
    pub(crate) fn retires(&self, age: Duration, now: Instant) -> bool {
        if age < self.early_from {
            return false;
        }
        let now = nanos(now.saturating_duration_since(self.anchor)).saturating_add(1);
        let last = self.last.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < nanos(self.spacing) {
            return false;
        }
        // Another connection returned at the same moment may win the slot.
        self.last
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn young_connections_never_retire_early() {
        let retirement = Retirement::new(5 * MINUTE, 16);
        let now = Instant::now();
        assert!(!retirement.retires(Duration::ZERO, now));
        assert!(!retirement.retires(4 * MINUTE - Duration::from_millis(1), now));
    }

    #[test]
    fn connections_of_one_age_retire_one_per_spacing() {
        // 5 minutes, 16 connections: early from 4 minutes, one every 3.75 s.
        let retirement = Retirement::new(5 * MINUTE, 16);
        let start = Instant::now();
        let age = 4 * MINUTE;
        assert!(retirement.retires(age, start));
        assert!(!retirement.retires(age, start));
        assert!(!retirement.retires(age, start + Duration::from_millis(3_749)));
        assert!(retirement.retires(age, start + Duration::from_millis(3_750)));
        assert!(!retirement.retires(age, start + Duration::from_millis(3_751)));
    }

    #[test]
    fn a_full_pool_retires_before_its_lifetime_ends() {
        // Sixteen connections opened together, all returned to the pool every
        // 10 ms: each retires once, in turn, and the last before 5 minutes.
        let lifetime = 5 * MINUTE;
        let retirement = Retirement::new(lifetime, 16);
        let start = Instant::now();
        let mut retired_at = Vec::new();
        let mut alive: Vec<usize> = (0..16).collect();
        let mut age = Duration::ZERO;
        while age < lifetime && !alive.is_empty() {
            let now = start + age;
            alive.retain(|_| {
                let retires = retirement.retires(age, now);
                if retires {
                    retired_at.push(age);
                }
                !retires
            });
            age += Duration::from_millis(10);
        }
        assert!(alive.is_empty(), "{} never retired", alive.len());
        assert_eq!(retired_at.first(), Some(&(4 * MINUTE)));
        assert!(
            retired_at
                .windows(2)
                .all(|w| w[1] - w[0] >= Duration::from_millis(3_750))
        );
        assert!(retired_at.last().is_some_and(|last| *last < lifetime));
    }

    #[test]
    fn a_zero_limit_means_none() {
        assert_eq!(nonzero(Duration::ZERO), None);
        assert_eq!(nonzero(MINUTE), Some(MINUTE));
    }
}
