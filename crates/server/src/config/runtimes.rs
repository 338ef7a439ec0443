//! What each runtime and command reads, assembled from the groups of
//! settings: the Core API, the management runtime, the `audit`, `keys` and
//! `credentials` commands, and the migration job.

use domain::retention::RetentionPolicy;
use domain::sealing::DataKey;
use domain::service::FlowPolicy;
use management::{ManagementAuth, ManagementUi};
use store_postgres::PoolerMode;

use super::keys::{read_api_auth, read_data_key};
use super::policy::{read_policy, read_refusal_limits, read_retention};
use super::reader::parse_count;
use super::{
    CommonConfig, CoreApiAuth, DatabaseConfig, Env, IdvConfig, LogLevel, PossessionConfig,
    Problems, Reader, sign_in,
};

/// `BIOMETRIC_PASSKEY_AUDIT_PARTITION_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditConfig {
    pub partition_maintenance_enabled: bool,
    /// 0 keeps every month forever.
    pub retention_months: u32,
}

impl AuditConfig {
    fn read(r: &mut Reader<'_>, maintenance_default: bool) -> Self {
        Self {
            partition_maintenance_enabled: r.bool(
                "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
                maintenance_default,
            ),
            retention_months: r.parsed(
                "BIOMETRIC_PASSKEY_AUDIT_PARTITION_RETENTION_MONTHS",
                0,
                parse_count,
            ),
        }
    }
}

/// The Core API runtime.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub common: CommonConfig,
    pub data_key: DataKey,
    pub idv: IdvConfig,
    pub audit: AuditConfig,
    pub policy: FlowPolicy,
    /// Who may call `/api/core/v1`.
    pub api_auth: CoreApiAuth,
    /// Who verifies WebAuthn.
    pub possession: PossessionConfig,
    /// How long rows are kept past their purpose.
    pub retention: RetentionPolicy,
    /// `BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS`: long-polls waiting at once.
    pub long_poll_max_waiters: u32,
    /// `BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE`,
    /// `BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE` and
    /// `BIOMETRIC_PASSKEY_TRUSTED_PROXIES`.
    pub refusals: core_api::refusals::RefusalLimits,
}

impl CoreConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r);
        let data_key = read_data_key(&mut r);
        let idv = IdvConfig::read(&mut r);
        let audit = AuditConfig::read(&mut r, true);
        let policy = read_policy(&mut r);
        let api_auth = read_api_auth(&mut r);
        let possession = PossessionConfig::read(&mut r);
        let retention = read_retention(&mut r);
        let long_poll_max_waiters = r.parsed(
            "BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS",
            core_api::watch::DEFAULT_MAX_WAITERS,
            parse_count,
        );
        let refusals = read_refusal_limits(&mut r);
        let config = match (common, data_key, idv, api_auth, possession) {
            (Some(common), Some(data_key), Some(idv), Some(api_auth), Some(possession)) => {
                Some(Self {
                    common,
                    data_key,
                    idv,
                    audit,
                    policy,
                    api_auth,
                    possession,
                    retention,
                    long_poll_max_waiters,
                    refusals,
                })
            }
            _ => None,
        };
        r.finish(config)
    }
}

/// The management runtime.
#[derive(Debug, Clone)]
pub struct ManagementConfig {
    pub common: CommonConfig,
    pub auth: ManagementAuth,
    pub ui: ManagementUi,
    pub audit: AuditConfig,
    /// `BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE`: the authenticator metadata
    /// (a FIDO Metadata Service BLOB or an AAGUID-to-name list), read and
    /// verified when the runtime is built.
    pub metadata_file: Option<std::path::PathBuf>,
}

/// The authenticator metadata file the management runtime names passkeys from.
pub const METADATA_FILE: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE";

impl ManagementConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r);
        let auth = sign_in::read_auth(&mut r);
        let ui = sign_in::read_ui(&mut r);
        let audit = AuditConfig::read(&mut r, false);
        if audit.partition_maintenance_enabled {
            r.problem(
                "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
                "must be false for the management runtime: partition maintenance runs in the Core API only; unset it or set it to false",
            );
        }
        let metadata_file = r.optional(METADATA_FILE).map(std::path::PathBuf::from);
        if let Some(path) = &metadata_file
            && let Err(e) = std::fs::File::open(path)
        {
            r.problem(
                METADATA_FILE,
                format!("cannot read {}: {e}", path.display()),
            );
        }
        let config = match (common, auth, ui) {
            (Some(common), Some(auth), Some(ui)) => Some(Self {
                common,
                auth,
                ui,
                audit,
                metadata_file,
            }),
            _ => None,
        };
        r.finish(config)
    }
}

/// The `audit` commands (maintain, verify, archive): the database, and the
/// data-encryption key the audit key is derived from.
#[derive(Debug, Clone)]
pub struct AuditToolConfig {
    pub log_level: LogLevel,
    pub database: DatabaseConfig,
    pub data_key: DataKey,
    pub audit: AuditConfig,
}

impl AuditToolConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let log_level = LogLevel::read(&mut r);
        let database = DatabaseConfig::read(&mut r);
        let data_key = read_data_key(&mut r);
        let audit = AuditConfig::read(&mut r, true);
        let config = match (database, data_key) {
            (Some(database), Some(data_key)) => Some(Self {
                log_level,
                database,
                data_key,
                audit,
            }),
            _ => None,
        };
        r.finish(config)
    }
}

/// The migration job.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    pub log_level: LogLevel,
    pub database: DatabaseConfig,
}

impl MigrateConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let log_level = LogLevel::read(&mut r);
        let database = DatabaseConfig::read(&mut r);
        if let Some(DatabaseConfig::Postgres(settings)) = &database
            && settings.pooler_mode == PoolerMode::Transaction
        {
            r.problem(
                "DB_POOLER_MODE",
                "is transaction, but migrations need a session of their own (they hold a lock \
                 across statements and transactions); point this job's DB_HOST at PostgreSQL \
                 itself or at a pooler's session-mode port, and leave DB_POOLER_MODE unset",
            );
        }
        let config = database.map(|database| Self {
            log_level,
            database,
        });
        r.finish(config)
    }
}
