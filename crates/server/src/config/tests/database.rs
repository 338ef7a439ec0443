//! `BIOMETRIC_PASSKEY_STORE` and the `DB_*` variables; the migration job.

use std::time::Duration;

use store_postgres::PoolerMode;

use super::*;

#[test]
fn db_host_may_carry_a_port_and_db_port_overrides_it() {
    let config = CoreConfig::from_env(&core_env(&[("DB_HOST", "db:6432")])).unwrap();
    assert_eq!(
        (pg(&config.common).host.as_str(), pg(&config.common).port),
        ("db", 6432)
    );

    let env = core_env(&[("DB_HOST", "db:6432"), ("DB_PORT", "7432")]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert_eq!(
        (pg(&config.common).host.as_str(), pg(&config.common).port),
        ("db", 7432)
    );

    let config = CoreConfig::from_env(&core_env(&[("DB_HOST", "[::1]:5433")])).unwrap();
    assert_eq!(
        (pg(&config.common).host.as_str(), pg(&config.common).port),
        ("::1", 5433)
    );

    let config = CoreConfig::from_env(&core_env(&[("DB_HOST", "fd00::5")])).unwrap();
    assert_eq!(
        (pg(&config.common).host.as_str(), pg(&config.common).port),
        ("fd00::5", 5432)
    );

    let problems = CoreConfig::from_env(&core_env(&[("DB_HOST", "db:abc")])).unwrap_err();
    assert_eq!(variables(&problems), vec!["DB_HOST"]);
}

#[test]
fn pool_settings_are_validated() {
    let env = core_env(&[("DB_MAX_OPEN_CONNS", "4"), ("DB_MAX_IDLE_CONNS", "5")]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(variables(&problems), vec!["DB_MAX_IDLE_CONNS"]);

    // 0 ("no limit" in the reference runtime) is refused, saying what to set.
    let env = core_env(&[("DB_MAX_OPEN_CONNS", "0")]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(variables(&problems), vec!["DB_MAX_OPEN_CONNS"]);
    let message = problems.to_string();
    assert!(
        message.contains("needs a bound") && message.contains("max_connections"),
        "{message}"
    );

    let env = core_env(&[
        ("DB_CONN_MAX_LIFETIME", "1h30m"),
        ("DB_CONN_MAX_IDLE_TIME", "90s"),
    ]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert_eq!(
        pg(&config.common).conn_max_lifetime,
        Duration::from_secs(5400)
    );
    assert_eq!(
        pg(&config.common).conn_max_idle_time,
        Duration::from_secs(90)
    );
}

#[test]
fn migrate_needs_only_the_database() {
    let env = Env::from_pairs([("DB_HOST", "db"), ("DB_USER", "u"), ("DB_NAME", "n")]);
    assert!(MigrateConfig::from_env(&env).is_ok());
    let problems = MigrateConfig::from_env(&Env::default()).unwrap_err();
    assert_eq!(variables(&problems), vec!["DB_HOST", "DB_USER", "DB_NAME"]);
}

#[test]
fn transaction_pooling_is_for_the_runtimes_not_for_migrations() {
    let config = CoreConfig::from_env(&core_env(&[("DB_POOLER_MODE", "transaction")])).unwrap();
    assert_eq!(pg(&config.common).pooler_mode, PoolerMode::Transaction);
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(pg(&config.common).pooler_mode, PoolerMode::Session);
    let problems = CoreConfig::from_env(&core_env(&[("DB_POOLER_MODE", "statement")])).unwrap_err();
    assert_eq!(variables(&problems), vec!["DB_POOLER_MODE"]);

    let direct = [("DB_HOST", "db"), ("DB_USER", "u"), ("DB_NAME", "n")];
    let env = Env::from_pairs(direct.into_iter().chain([("DB_POOLER_MODE", "session")]));
    assert!(MigrateConfig::from_env(&env).is_ok());
    let env = Env::from_pairs(
        direct
            .into_iter()
            .chain([("DB_POOLER_MODE", "transaction")]),
    );
    let problems = MigrateConfig::from_env(&env).unwrap_err();
    assert_eq!(variables(&problems), vec!["DB_POOLER_MODE"]);
    assert!(problems.0[0].message.contains("session"));
}

#[test]
fn sqlite_needs_no_db_variables() {
    let env = Env::from_pairs([
        ("BIOMETRIC_PASSKEY_STORE", "sqlite"),
        ("BIOMETRIC_PASSKEY_SQLITE_PATH", "/var/lib/bp/db.sqlite3"),
    ]);
    let config = MigrateConfig::from_env(&env).unwrap();
    assert!(matches!(config.database, DatabaseConfig::Sqlite(s) if s.path.ends_with("db.sqlite3")));
    let problems =
        MigrateConfig::from_env(&Env::from_pairs([("BIOMETRIC_PASSKEY_STORE", "mysql")]))
            .unwrap_err();
    assert_eq!(variables(&problems), vec!["BIOMETRIC_PASSKEY_STORE"]);
}
