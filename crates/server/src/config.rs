//! The operator configuration contract: environment variables, their defaults
//! and their rules, as the deployment guide gives them.
//!
//! Raw environment ([`Env`]) in, typed configuration out. Each runtime reads
//! only what it needs, collects every problem, and refuses to start with one
//! line per problem naming the variable and the fix. Messages never contain a
//! secret's value.
//!
//! `runtimes` says what each runtime reads; the other files are the groups
//! of settings: `common` (ports, HTTP limits, shutdown drain), `telemetry`
//! (log level, traces), `database`, `keys` (data-encryption and API keys),
//! `idv` (the provider), `policy` (flow rules, retention, refusal limits),
//! `possession` (WebAuthn), `sign_in` (the operators' OIDC sign-in). `reader`
//! collects the problems and holds the value rules they share.

mod common;
mod database;
pub mod duration;
pub mod env;
mod idv;
mod keys;
mod policy;
pub mod possession;
mod reader;
mod runtimes;
mod sign_in;
mod telemetry;

use std::fmt;

pub use self::common::{CommonConfig, DEFAULT_SHUTDOWN_DRAIN};
pub use self::database::{DatabaseConfig, UNLIMITED_POOL_SIZE};
pub use self::duration::parse_go_duration;
pub use self::env::Env;
pub use self::idv::{IdvConfig, IdvMode, OnfidoConfig, regional_base_url};
pub use self::keys::{CoreApiAuth, MIN_API_KEY_LEN};
pub use self::policy::MAX_TRANSACTION_CONTEXT_LIMIT;
pub use self::possession::{PossessionConfig, PossessionPolicies};
use self::reader::Reader;
pub use self::runtimes::{
    AuditConfig, AuditToolConfig, CoreConfig, METADATA_FILE, ManagementConfig, MigrateConfig,
};
pub use self::telemetry::LogLevel;

/// One refused setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Every refused setting of one runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod tests;
