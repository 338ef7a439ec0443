//! Where the data lives: `BIOMETRIC_PASSKEY_STORE`, and PostgreSQL's `DB_*`
//! variables (connection, TLS, pool, pooler) or SQLite's file.

use std::path::PathBuf;

use store_postgres::{PgSettings, PoolerMode, SslMode};
use store_sqlite::SqliteSettings;

use super::Reader;
use super::reader::{parse_count, parse_port};

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    Postgres(PgSettings),
    Sqlite(SqliteSettings),
}

/// A pool size to suggest when `DB_MAX_OPEN_CONNS=0` ("no limit" in the
/// reference runtime) is refused: sqlx's pool needs a bound.
pub const UNLIMITED_POOL_SIZE: u32 = 100;

impl DatabaseConfig {
    pub(super) fn read(r: &mut Reader<'_>) -> Option<Self> {
        let store = r.optional("BIOMETRIC_PASSKEY_STORE").unwrap_or("postgres");
        match store {
            "postgres" => read_postgres(r).map(Self::Postgres),
            "sqlite" => {
                let path = r
                    .optional("BIOMETRIC_PASSKEY_SQLITE_PATH")
                    .unwrap_or("biometric-passkey.sqlite3");
                Some(Self::Sqlite(SqliteSettings::new(PathBuf::from(path))))
            }
            other => {
                r.problem(
                    "BIOMETRIC_PASSKEY_STORE",
                    format!(
                        "unknown store {other:?}; use postgres (production) or sqlite (single node)"
                    ),
                );
                None
            }
        }
    }
}

fn read_postgres(r: &mut Reader<'_>) -> Option<PgSettings> {
    let host_raw = r.required(
        "DB_HOST",
        "set it to the PostgreSQL host name, optionally with :port",
    );
    let user = r.required("DB_USER", "set it to the PostgreSQL user");
    let database = r.required("DB_NAME", "set it to the PostgreSQL database name");
    let password = r.secret("DB_PASSWORD", None);
    let (host, host_port) = host_raw.map(split_host_port).unwrap_or_default();
    let host_port = match host_port {
        Some(Ok(port)) => Some(port),
        Some(Err(())) => {
            r.problem(
                "DB_HOST",
                "the port after ':' is not a number from 1 to 65535; fix it or set DB_PORT",
            );
            None
        }
        None => None,
    };
    let port = r.parsed("DB_PORT", host_port.unwrap_or(5432), parse_port);
    let ssl_mode = r.parsed("DB_SSLMODE", SslMode::Disable, |raw| {
        raw.parse()
            .map_err(|()| format!("unknown mode {raw:?}; use one of {}", SslMode::NAMES))
    });
    let max_open = r.parsed("DB_MAX_OPEN_CONNS", 4, |raw| match parse_count(raw)? {
        0 => Err(format!(
            "0 (no limit) is not supported: the pool needs a bound; set the most connections \
             one replica may open, e.g. {UNLIMITED_POOL_SIZE} or PostgreSQL's max_connections \
             divided among the replicas"
        )),
        n => Ok(n),
    });
    let max_idle = r.parsed("DB_MAX_IDLE_CONNS", 4, parse_count);
    if max_open > 0 && max_idle > max_open {
        r.problem(
            "DB_MAX_IDLE_CONNS",
            format!("is {max_idle}, more than DB_MAX_OPEN_CONNS ({max_open}); lower it to at most {max_open}"),
        );
    }
    let lifetime = r.duration(
        "DB_CONN_MAX_LIFETIME",
        PgSettings::DEFAULT_CONN_MAX_LIFETIME,
    );
    let idle_time = r.duration(
        "DB_CONN_MAX_IDLE_TIME",
        PgSettings::DEFAULT_CONN_MAX_IDLE_TIME,
    );
    let pooler_mode = r.parsed("DB_POOLER_MODE", PoolerMode::Session, |raw| {
        raw.parse().map_err(|()| {
            format!(
                "unknown mode {raw:?}; use session (PostgreSQL itself, or a pooler in session \
                 mode) or transaction (a pooler in transaction mode, such as PgBouncer's \
                 pool_mode = transaction)"
            )
        })
    });
    host_raw?;
    Some(PgSettings {
        host: host.to_owned(),
        port,
        user: user?.to_owned(),
        password,
        database: database?.to_owned(),
        ssl_mode,
        max_open_conns: max_open,
        max_idle_conns: max_idle,
        conn_max_lifetime: lifetime,
        conn_max_idle_time: idle_time,
        pooler_mode,
    })
}

/// `db.example.com:5433` → host and port; `[::1]:5433` → `::1` and port; a bare
/// IPv6 address or a host without a port is returned whole.
fn split_host_port(raw: &str) -> (&str, Option<Result<u16, ()>>) {
    if let Some(rest) = raw.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (
            host,
            after.strip_prefix(':').map(|p| parse_port(p).map_err(drop)),
        );
    }
    match raw.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(parse_port(port).map_err(drop))),
        _ => (raw, None),
    }
}
