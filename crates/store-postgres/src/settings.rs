//! Connection settings, as the operator gives them in `DB_*`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// `DB_SSLMODE`, with libpq's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static str = "disable, allow, prefer, require, verify-ca, verify-full";
}

impl FromStr for SslMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return Err(()),
        })
    }
}

impl From<SslMode> for PgSslMode {
    fn from(mode: SslMode) -> Self {
        match mode {
            SslMode::Disable => Self::Disable,
            SslMode::Allow => Self::Allow,
            SslMode::Prefer => Self::Prefer,
            SslMode::Require => Self::Require,
            SslMode::VerifyCa => Self::VerifyCa,
            SslMode::VerifyFull => Self::VerifyFull,
        }
    }
}

/// `DB_POOLER_MODE`: what one connection to `DB_HOST` holds on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolerMode {
    /// One PostgreSQL session for as long as the connection is open:
    /// PostgreSQL itself, or a pooler in session mode.
    #[default]
    Session,
    /// A PostgreSQL session only for the length of one transaction: a pooler
    /// in transaction mode (PgBouncer's `pool_mode = transaction`). Every
    /// statement then runs in an explicit transaction that starts by
    /// deallocating the statements the session holds, no prepared statement
    /// is used beyond its transaction, and no lock or setting outlives one.
    Transaction,
}

impl PoolerMode {
    pub const NAMES: &'static str = "session, transaction";
}

impl FromStr for PoolerMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            _ => Err(()),
        }
    }
}

/// Everything needed to reach PostgreSQL. `Debug` never prints the password.
#[derive(Clone)]
pub struct PgSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<SecretString>,
    pub database: String,
    pub ssl_mode: SslMode,
    /// Upper bound of pooled connections.
    pub max_open_conns: u32,
    /// At most this many connections wait idle in the pool; one returned
    /// beyond it is closed. Validated against `max_open_conns`; zero keeps none.
    pub max_idle_conns: u32,
    pub conn_max_lifetime: Duration,
    pub conn_max_idle_time: Duration,
    pub pooler_mode: PoolerMode,
}

impl PgSettings {
    /// `DB_CONN_MAX_LIFETIME`'s default.
    pub const DEFAULT_CONN_MAX_LIFETIME: Duration = Duration::from_secs(300);
    /// `DB_CONN_MAX_IDLE_TIME`'s default.
    pub const DEFAULT_CONN_MAX_IDLE_TIME: Duration = Duration::from_secs(60);
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("database", &self.database)
            .field("ssl_mode", &self.ssl_mode)
            .field("max_open_conns", &self.max_open_conns)
            .field("max_idle_conns", &self.max_idle_conns)
            .field("conn_max_lifetime", &self.conn_max_lifetime)
            .field("conn_max_idle_time", &self.conn_max_idle_time)
            .field("pooler_mode", &self.pooler_mode)
            .finish()
    }
}

/// The request pool's `application_name` in `pg_stat_activity`.
pub(crate) const APPLICATION_NAME: &str = "biometric-passkey";

impl PgSettings {
    pub fn connect_options(&self) -> PgConnectOptions {
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .database(&self.database)
            .ssl_mode(self.ssl_mode.into())
            .application_name(APPLICATION_NAME);
        if let Some(password) = &self.password {
            options = options.password(password.expose_secret());
        }
        if self.pooler_mode == PoolerMode::Transaction {
            // A statement prepared under a name stays on the server session
            // it was prepared on, which the next transaction may not get:
            // no statement is cached, each is prepared in its transaction again
            // (`pool::POOLED_BEGIN`).
            // `extra_float_digits` is a startup parameter PgBouncer refuses
            // unless told to ignore it; no statement here reads floats as text.
            options = options.statement_cache_capacity(0).extra_float_digits(None);
        }
        options
    }
}
