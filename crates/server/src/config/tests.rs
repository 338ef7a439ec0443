use std::time::Duration;

use super::*;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
const API_KEY: &str = "integration-key-0123456789abcdefghijkl";

fn core_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("DB_HOST", "db.internal"),
        ("DB_USER", "bp"),
        ("DB_NAME", "biometric_passkey"),
        ("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY),
        ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "synthetic"),
        (
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000001",
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000002",
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000003",
        ),
        ("BIOMETRIC_PASSKEY_CORE_API_KEYS", API_KEY),
    ];
    pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    pairs.extend_from_slice(extra);
    Env::from_pairs(pairs)
}

fn management_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("DB_HOST", "db.internal"),
        ("DB_USER", "bp"),
        ("DB_NAME", "biometric_passkey"),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "https://issuer.example.com/",
        ),
        ("BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE", "bp-api"),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "https://issuer.example.com/jwks.json",
        ),
        ("BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID", "bp-ui"),
    ];
    pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    pairs.extend_from_slice(extra);
    Env::from_pairs(pairs)
}

fn pg(config: &CommonConfig) -> &PgSettings {
    match &config.database {
        DatabaseConfig::Postgres(settings) => settings,
        DatabaseConfig::Sqlite(_) => panic!("expected PostgreSQL"),
    }
}

fn variables(problems: &Problems) -> Vec<&'static str> {
    problems.0.iter().map(|p| p.variable).collect()
}

#[test]
fn core_defaults_follow_the_deployment_guide() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(config.common.port, 3000);
    assert_eq!(config.common.log_level, LogLevel::Info);
    let db = pg(&config.common);
    assert_eq!((db.host.as_str(), db.port), ("db.internal", 5432));
    assert_eq!(db.ssl_mode, SslMode::Disable);
    assert_eq!((db.max_open_conns, db.max_idle_conns), (4, 4));
    assert_eq!(db.conn_max_lifetime, Duration::from_secs(300));
    assert_eq!(db.conn_max_idle_time, Duration::from_secs(60));
    assert!(db.password.is_none());
    assert_eq!(config.data_key.id().as_str(), "default");
    assert_eq!(config.idv.onfido.region, "eu");
    assert_eq!(
        config.idv.onfido.base_url.as_str(),
        "https://api.eu.onfido.com/v3.6"
    );
    assert_eq!(config.idv.onfido.webhook_max_age, Duration::from_secs(900));
    assert!(
        config.audit.partition_maintenance_enabled,
        "on by default for Core"
    );
    assert_eq!(config.audit.retention_months, 0);
}

#[test]
fn idv_mode_defaults_to_onfido_which_needs_its_secrets() {
    let env = core_env(&[("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "")]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec![
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN",
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET"
        ]
    );
    let env = core_env(&[
        ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "onfido"),
        (
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN",
            "api_sandbox.secret",
        ),
        ("BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET", "whsec"),
        ("BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION", "ca"),
    ]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert_eq!(config.idv.mode, IdvMode::Onfido);
    assert_eq!(
        config.idv.onfido.base_url.as_str(),
        "https://api.ca.onfido.com/v3.6"
    );
}

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
fn metrics_are_served_on_9464_unless_moved_or_turned_off() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(config.common.metrics_port, Some(9464));
    let config = ManagementConfig::from_env(&management_env(&[])).unwrap();
    assert_eq!(config.common.metrics_port, Some(9464));
    let config =
        CoreConfig::from_env(&core_env(&[("BIOMETRIC_PASSKEY_METRICS_PORT", "9100")])).unwrap();
    assert_eq!(config.common.metrics_port, Some(9100));
    let config =
        ManagementConfig::from_env(&management_env(&[("BIOMETRIC_PASSKEY_METRICS_PORT", "0")]))
            .unwrap();
    assert_eq!(config.common.metrics_port, None);
}

#[test]
fn a_metrics_port_that_is_not_a_port_or_is_the_api_port_is_refused() {
    for raw in ["65536", "-1", "metrics", "9464x"] {
        let problems = CoreConfig::from_env(&core_env(&[("BIOMETRIC_PASSKEY_METRICS_PORT", raw)]))
            .unwrap_err();
        assert_eq!(
            variables(&problems),
            ["BIOMETRIC_PASSKEY_METRICS_PORT"],
            "{raw}"
        );
        assert!(
            problems.0[0].message.contains("or 0 to serve no metrics"),
            "{}",
            problems.0[0]
        );
    }
    let problems = ManagementConfig::from_env(&management_env(&[
        ("PORT", "8080"),
        ("BIOMETRIC_PASSKEY_METRICS_PORT", "8080"),
    ]))
    .unwrap_err();
    assert_eq!(variables(&problems), ["BIOMETRIC_PASSKEY_METRICS_PORT"]);
    assert!(problems.0[0].message.contains("the API's port (PORT)"));
}

#[test]
fn onfido_mode_takes_only_uuid_workflow_ids() {
    let onfido = [
        ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "onfido"),
        ("BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN", "api_live_x"),
        (
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
            "webhook-token",
        ),
    ];
    let slugs = [
        ("BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID", "wf-reg"),
        ("BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID", "wf-step"),
        (
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            "wf-rec",
        ),
    ];
    let problems =
        CoreConfig::from_env(&core_env(&[onfido.as_slice(), &slugs].concat())).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec![
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
        ]
    );
    assert!(
        problems.0[1].message.contains("UUID"),
        "{}",
        problems.0[1].message
    );
    let mut uuids = onfido.to_vec();
    uuids.extend([
        (
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000001",
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
            "0C6B0E4A-1111-4B5B-9A1E-000000000002",
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000003",
        ),
    ]);
    CoreConfig::from_env(&core_env(&uuids)).unwrap();
    for bad in [
        "0c6b0e4a11114b5b9a1e000000000001",
        "{0c6b0e4a-1111-4b5b-9a1e-000000000001}",
        "0c6b0e4a-1111-4b5b-9a1e-00000000000g",
        "0c6b0e4a-1111-4b5b-9a1e-0000000000011",
    ] {
        let mut env = uuids.clone();
        env.push(("BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID", bad));
        let problems = CoreConfig::from_env(&core_env(&env)).unwrap_err();
        assert_eq!(
            variables(&problems),
            vec!["BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID"],
            "{bad}"
        );
    }
    // Synthetic mode runs no provider workflow: any id is taken.
    CoreConfig::from_env(&core_env(&slugs)).unwrap();
}

#[test]
fn every_problem_is_reported_at_once() {
    let env = Env::from_pairs([
        ("DB_SSLMODE", "sometimes"),
        ("BIOMETRIC_PASSKEY_LOG_LEVEL", "loud"),
    ]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    let vars = variables(&problems);
    for expected in [
        "DB_HOST",
        "DB_USER",
        "DB_NAME",
        "DB_SSLMODE",
        "BIOMETRIC_PASSKEY_LOG_LEVEL",
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN",
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
    ] {
        assert!(vars.contains(&expected), "{expected} missing from {vars:?}");
    }
}

#[test]
fn the_onfido_base_url_override_must_be_https_unless_loopback() {
    let env = core_env(&[(
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL",
        "http://127.0.0.1:47001/v3.6/",
    )]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert_eq!(
        config.idv.onfido.base_url.as_str(),
        "http://127.0.0.1:47001/v3.6"
    );

    let env = core_env(&[(
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL",
        "http://onfido.example.com/v3.6",
    )]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec!["BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL"]
    );
}

#[test]
fn the_onfido_base_url_override_refuses_a_query_or_fragment() {
    for raw in [
        "https://onfido.example.com/v3.6?region=eu",
        "https://onfido.example.com/v3.6#eu",
        "http://127.0.0.1:47001/v3.6?x=1",
    ] {
        let env = core_env(&[("BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL", raw)]);
        let problems = CoreConfig::from_env(&env).unwrap_err();
        assert_eq!(
            variables(&problems),
            vec!["BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL"],
            "{raw}"
        );
        assert!(
            problems.0[0]
                .message
                .contains("without a query or fragment"),
            "{raw}: {}",
            problems.0[0].message
        );
    }
}

#[test]
fn management_defaults_follow_the_deployment_guide() {
    let config = ManagementConfig::from_env(&management_env(&[])).unwrap();
    assert_eq!(config.auth.scope_claim, "scope");
    assert_eq!(config.auth.scope_prefix, "");
    assert_eq!(config.auth.clock_skew, Duration::from_secs(30));
    assert_eq!(config.ui.scopes.len(), 11);
    assert!(
        config
            .ui
            .scopes
            .iter()
            .any(|s| s == "management.credentials.revoke")
    );
    assert!(!config.audit.partition_maintenance_enabled);

    let env = management_env(&[(
        "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES",
        "openid  management.users.read",
    )]);
    let config = ManagementConfig::from_env(&env).unwrap();
    assert_eq!(config.ui.scopes, vec!["openid", "management.users.read"]);

    // Set but empty is refused, never widened to the default list.
    for empty in ["", "   "] {
        let env = management_env(&[("BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES", empty)]);
        let problems = ManagementConfig::from_env(&env).unwrap_err();
        assert_eq!(
            variables(&problems),
            vec!["BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES"],
            "{empty:?}"
        );
    }
}

#[test]
fn management_accepts_loopback_http_only() {
    let env = management_env(&[
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "http://localhost:8080/",
        ),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "http://127.0.0.1:8080/jwks",
        ),
    ]);
    assert!(ManagementConfig::from_env(&env).is_ok());
    let env = management_env(&[
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "http://issuer.example.com/",
        ),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "ftp://issuer.example.com/jwks",
        ),
    ]);
    let problems = ManagementConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec![
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL"
        ]
    );
}

#[test]
fn management_refuses_partition_maintenance() {
    let env = management_env(&[(
        "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
        "true",
    )]);
    let problems = ManagementConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec!["BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED"]
    );
    let env = management_env(&[(
        "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
        "false",
    )]);
    assert!(ManagementConfig::from_env(&env).is_ok());
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

#[test]
fn booleans_follow_go() {
    for (raw, expected) in [
        ("1", true),
        ("TRUE", true),
        ("t", true),
        ("0", false),
        ("False", false),
    ] {
        assert_eq!(parse_bool(raw), Ok(expected));
    }
    assert!(parse_bool("yes").is_err());
}

#[test]
fn unknown_prefixed_variables_are_listed() {
    let env = Env::from_pairs([
        ("BIOMETRIC_PASSKEY_LOG_LEVLE", "debug"),
        ("BIOMETRIC_PASSKEY_LOG_LEVEL", "debug"),
    ]);
    assert_eq!(env.unknown_prefixed(), vec!["BIOMETRIC_PASSKEY_LOG_LEVLE"]);
}

#[test]
fn every_variable_is_documented() {
    let reference = include_str!("../../../../docs/configuration.md");
    let mut names: Vec<&str> = env::KNOWN_VARIABLES.to_vec();
    names.extend([
        "PORT",
        "DB_HOST",
        "DB_PORT",
        "DB_USER",
        "DB_PASSWORD",
        "DB_NAME",
        "DB_SSLMODE",
        "DB_MAX_OPEN_CONNS",
        "DB_MAX_IDLE_CONNS",
        "DB_CONN_MAX_LIFETIME",
        "DB_CONN_MAX_IDLE_TIME",
    ]);
    for name in names {
        assert!(
            reference.contains(&format!("`{name}`")),
            "{name} is missing from docs/configuration.md"
        );
    }
}

fn keys_of(config: &CoreConfig) -> Vec<&str> {
    match &config.api_auth {
        CoreApiAuth::ApiKeys(keys) => keys
            .iter()
            .map(secrecy::ExposeSecret::expose_secret)
            .collect(),
        CoreApiAuth::None => panic!("expected API keys"),
    }
}

#[test]
fn api_keys_must_be_long_and_several_may_be_given_for_rotation() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(keys_of(&config), vec![API_KEY]);
    let good = "k".repeat(32);
    let env = core_env(&[(
        "BIOMETRIC_PASSKEY_CORE_API_KEYS",
        &format!("{good}, {good}x\n{good}y"),
    )]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert_eq!(
        keys_of(&config),
        vec![good.clone(), format!("{good}x"), format!("{good}y")]
    );
    let env = core_env(&[(
        "BIOMETRIC_PASSKEY_CORE_API_KEYS",
        &format!("{good},short-key"),
    )]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec!["BIOMETRIC_PASSKEY_CORE_API_KEYS"]
    );
    assert!(problems.to_string().contains("key #2"));
    assert!(
        !problems.to_string().contains("short-key") && !problems.to_string().contains(&good),
        "keys are never echoed"
    );
    let env = core_env(&[("BIOMETRIC_PASSKEY_CORE_API_KEYS", " , ")]);
    assert_eq!(
        variables(&CoreConfig::from_env(&env).unwrap_err()),
        vec!["BIOMETRIC_PASSKEY_CORE_API_KEYS"],
        "a list of separators holds no key"
    );
}

#[test]
fn the_core_api_refuses_to_start_without_keys_unless_told_the_network_protects_it() {
    for auth in ["", "api_key"] {
        let env = core_env(&[
            ("BIOMETRIC_PASSKEY_CORE_API_KEYS", ""),
            ("BIOMETRIC_PASSKEY_CORE_API_AUTH", auth),
        ]);
        let problems = CoreConfig::from_env(&env).unwrap_err();
        assert_eq!(
            variables(&problems),
            vec!["BIOMETRIC_PASSKEY_CORE_API_KEYS"]
        );
        let line = problems.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(
            line.contains("BIOMETRIC_PASSKEY_CORE_API_AUTH=none"),
            "the refusal names the opt-out: {line}"
        );
    }
    let env = core_env(&[
        ("BIOMETRIC_PASSKEY_CORE_API_KEYS", ""),
        ("BIOMETRIC_PASSKEY_CORE_API_AUTH", "none"),
    ]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert!(matches!(config.api_auth, CoreApiAuth::None));
    assert!(config.api_auth.keys().is_empty());
}

#[test]
fn keys_together_with_auth_none_or_an_unknown_mode_are_refused() {
    let env = core_env(&[("BIOMETRIC_PASSKEY_CORE_API_AUTH", "none")]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec!["BIOMETRIC_PASSKEY_CORE_API_AUTH"],
        "none with keys set is contradictory"
    );
    assert!(!problems.to_string().contains(API_KEY));
    for mode in ["None", "off", "apikey", "bearer"] {
        let env = core_env(&[("BIOMETRIC_PASSKEY_CORE_API_AUTH", mode)]);
        let problems = CoreConfig::from_env(&env).unwrap_err();
        assert_eq!(
            variables(&problems),
            vec!["BIOMETRIC_PASSKEY_CORE_API_AUTH"],
            "{mode}"
        );
        assert!(problems.to_string().contains("use api_key"));
    }
}

#[test]
fn earlier_data_encryption_keys_open_what_they_sealed() {
    const OLD: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    let earlier = |raw: &str| {
        CoreConfig::from_env(&core_env(&[
            ("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID", "key-2026"),
            ("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS", raw),
        ]))
    };
    let config = earlier(&format!("key-2025:{OLD}, key-2024:{KEY}")).unwrap();
    let ids: Vec<&str> = config.data_key.earlier_ids().map(|k| k.as_str()).collect();
    assert_eq!(ids, ["key-2025", "key-2024"]);
    assert_eq!(config.data_key.id().as_str(), "key-2026");

    for (raw, why) in [
        (OLD.to_owned(), "entry #1 is not `id:key`"),
        (format!("key-2025:{OLD},bad id:{KEY}"), "entry #2 its id"),
        ("key-2025:short".to_owned(), "entry #1 its key"),
        (format!("key-2026:{OLD}"), "configured twice"),
        (format!("key-2025:{OLD},key-2025:{KEY}"), "configured twice"),
    ] {
        let problems = earlier(&raw).unwrap_err();
        assert_eq!(
            variables(&problems),
            ["BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS"],
            "{raw}"
        );
        let text = problems.0[0].message.clone();
        assert!(text.contains(why), "{text}");
        assert!(
            !text.contains(OLD) && !text.contains(KEY),
            "no key in {text}"
        );
    }
}

fn onfido_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "onfido"),
        (
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN",
            "api_sandbox.secret",
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
            "whsec-new-0123456789",
        ),
    ];
    pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    pairs.extend_from_slice(extra);
    core_env(&pairs)
}

#[test]
fn a_previous_webhook_secret_is_optional_and_kept_for_a_rotation() {
    let config = CoreConfig::from_env(&onfido_env(&[])).unwrap();
    assert!(config.idv.onfido.webhook_previous_secret.is_none());
    let env = onfido_env(&[("BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET", "")]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert!(
        config.idv.onfido.webhook_previous_secret.is_none(),
        "an empty value is unset"
    );
    let env = onfido_env(&[(
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET",
        "whsec-old-0123456789",
    )]);
    let config = CoreConfig::from_env(&env).unwrap();
    assert_eq!(
        config
            .idv
            .onfido
            .webhook_previous_secret
            .as_ref()
            .map(ExposeSecret::expose_secret),
        Some("whsec-old-0123456789")
    );
    assert!(
        env.unknown_prefixed().is_empty(),
        "a known variable: {:?}",
        env.unknown_prefixed()
    );
    let provider = crate::app::identity_provider(&config.idv).unwrap();
    assert!(provider.provider_webhook.is_some());
}

#[test]
fn a_previous_webhook_secret_equal_to_the_current_one_is_refused_without_echoing_it() {
    let env = onfido_env(&[(
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET",
        "whsec-new-0123456789",
    )]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec!["BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET"]
    );
    let line = problems.to_string();
    assert!(line.contains("equals"), "{line}");
    assert!(
        !line.contains("whsec-new"),
        "secrets are never echoed: {line}"
    );
    let synthetic = onfido_env(&[
        ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "synthetic"),
        (
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET",
            "whsec-new-0123456789",
        ),
    ]);
    assert!(
        CoreConfig::from_env(&synthetic).is_ok(),
        "ignored in synthetic mode, like the current secret"
    );
}

#[test]
fn a_previous_webhook_secret_does_not_stand_in_for_the_current_one() {
    let env = onfido_env(&[
        ("BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET", ""),
        (
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET",
            "whsec-old-0123456789",
        ),
    ]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec!["BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET"]
    );
    assert!(!problems.to_string().contains("whsec-old"));
}

#[test]
fn retention_defaults_and_bounds() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(config.retention, RetentionPolicy::default());
    assert_eq!(
        config.retention.flows_after_expiry,
        time::Duration::days(30)
    );
    assert_eq!(config.retention.provider_events, time::Duration::days(7));

    let config = CoreConfig::from_env(&core_env(&[
        ("BIOMETRIC_PASSKEY_FLOW_RETENTION", "48h"),
        ("BIOMETRIC_PASSKEY_PROVIDER_EVENT_RETENTION", "2h"),
    ]))
    .unwrap();
    assert_eq!(
        config.retention.flows_after_expiry,
        time::Duration::hours(48)
    );
    assert_eq!(config.retention.provider_events, time::Duration::hours(2));

    let refused = CoreConfig::from_env(&core_env(&[
        ("BIOMETRIC_PASSKEY_FLOW_RETENTION", "23h"),
        ("BIOMETRIC_PASSKEY_PROVIDER_EVENT_RETENTION", "10m"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("BIOMETRIC_PASSKEY_FLOW_RETENTION: must be at least 24h"),
        "{refused}"
    );
    assert!(
        refused.contains("BIOMETRIC_PASSKEY_PROVIDER_EVENT_RETENTION: must be at least 1h"),
        "{refused}"
    );
}

#[test]
fn provider_cleanup_attempts_default_to_ten_and_need_one() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(config.policy.provider_cleanup_max_attempts, 10);
    let config = CoreConfig::from_env(&core_env(&[(
        "BIOMETRIC_PASSKEY_PROVIDER_CLEANUP_MAX_ATTEMPTS",
        "3",
    )]))
    .unwrap();
    assert_eq!(config.policy.provider_cleanup_max_attempts, 3);
    let refused = CoreConfig::from_env(&core_env(&[(
        "BIOMETRIC_PASSKEY_PROVIDER_CLEANUP_MAX_ATTEMPTS",
        "0",
    )]))
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("BIOMETRIC_PASSKEY_PROVIDER_CLEANUP_MAX_ATTEMPTS: must be at least 1"),
        "{refused}"
    );
}

#[test]
fn request_limits_have_defaults_and_refuse_values_that_would_not_work() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(config.common.http, HttpLimits::default());
    assert_eq!(
        config.long_poll_max_waiters,
        core_api::watch::DEFAULT_MAX_WAITERS
    );
    let config = CoreConfig::from_env(&core_env(&[
        ("BIOMETRIC_PASSKEY_HTTP_HEADER_READ_TIMEOUT", "3s"),
        ("BIOMETRIC_PASSKEY_HTTP_REQUEST_TIMEOUT", "2m"),
        ("BIOMETRIC_PASSKEY_HTTP_MAX_CONCURRENT_REQUESTS", "64"),
        ("BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS", "0"),
    ]))
    .unwrap();
    assert_eq!(
        config.common.http,
        HttpLimits {
            header_read_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(120),
            max_concurrent_requests: 64,
        }
    );
    assert_eq!(config.long_poll_max_waiters, 0);
    let refused = [
        ("BIOMETRIC_PASSKEY_HTTP_HEADER_READ_TIMEOUT", "0s"),
        ("BIOMETRIC_PASSKEY_HTTP_HEADER_READ_TIMEOUT", "soon"),
        ("BIOMETRIC_PASSKEY_HTTP_REQUEST_TIMEOUT", "10s"),
        ("BIOMETRIC_PASSKEY_HTTP_MAX_CONCURRENT_REQUESTS", "0"),
        ("BIOMETRIC_PASSKEY_HTTP_MAX_CONCURRENT_REQUESTS", "-1"),
        ("BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS", "many"),
    ];
    for (variable, value) in refused {
        let problems = CoreConfig::from_env(&core_env(&[(variable, value)])).unwrap_err();
        assert_eq!(variables(&problems), [variable], "{variable}={value}");
        let problems = ManagementConfig::from_env(&management_env(&[(variable, value)])).map(drop);
        if variable.starts_with("BIOMETRIC_PASSKEY_HTTP_") {
            assert_eq!(
                variables(&problems.unwrap_err()),
                [variable],
                "the management runtime too: {variable}={value}"
            );
        }
    }
}

#[test]
fn refusal_limits_and_trusted_proxies_are_read_and_validated() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(
        config.refusals,
        core_api::refusals::RefusalLimits::default()
    );
    assert_eq!(config.refusals.webhook_per_minute, 60);
    assert_eq!(config.refusals.handoff_per_minute, 10);
    assert!(config.refusals.trusted_proxies.is_empty());

    let env = core_env(&[
        ("BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE", "0"),
        ("BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE", "3"),
        (
            "BIOMETRIC_PASSKEY_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.0.2.7 fd00::/8",
        ),
    ]);
    assert!(
        env.unknown_prefixed().is_empty(),
        "known, so not warned about"
    );
    let config = CoreConfig::from_env(&env).unwrap();
    assert_eq!(config.refusals.webhook_per_minute, 0);
    assert_eq!(config.refusals.handoff_per_minute, 3);
    let proxies: Vec<String> = config
        .refusals
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);

    let refused = [
        ("BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE", "-1"),
        ("BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE", "ten"),
        ("BIOMETRIC_PASSKEY_TRUSTED_PROXIES", "10.0.0.0/8, ingress"),
        ("BIOMETRIC_PASSKEY_TRUSTED_PROXIES", "10.0.0.0/33"),
    ];
    for (variable, value) in refused {
        let problems = CoreConfig::from_env(&core_env(&[(variable, value)])).unwrap_err();
        assert_eq!(variables(&problems), [variable], "{variable}={value}");
    }
}

#[test]
fn traces_are_off_unless_an_otlp_endpoint_is_configured() {
    let enabled = |extra: &[(&str, &str)]| {
        CoreConfig::from_env(&core_env(extra))
            .unwrap()
            .common
            .traces
            .enabled
    };
    assert!(!enabled(&[]));
    assert!(enabled(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://collector:4318"
    )]));
    assert!(enabled(&[(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "https://collector.example/v1/traces"
    )]));
    assert!(
        enabled(&[("OTEL_TRACES_EXPORTER", "otlp")]),
        "the default endpoint"
    );
    assert!(!enabled(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]));
    assert!(!enabled(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_SDK_DISABLED", "true"),
    ]));
    assert!(enabled(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]));

    let refused = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "ftp://collector/v1/traces",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_TRACES_EXPORTER", "jaeger"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_SDK_DISABLED", "maybe"),
    ];
    for (variable, value) in refused {
        let problems = CoreConfig::from_env(&core_env(&[(variable, value)])).unwrap_err();
        assert_eq!(variables(&problems), [variable], "{variable}={value}");
        let problems = ManagementConfig::from_env(&management_env(&[(variable, value)]));
        assert_eq!(
            variables(&problems.unwrap_err()),
            [variable],
            "the management runtime too: {variable}={value}"
        );
    }
    let problems = CoreConfig::from_env(&core_env(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
    ]))
    .unwrap_err();
    assert_eq!(variables(&problems), ["OTEL_TRACES_SAMPLER_ARG"]);
}

/// The builtin-mode variables with attestation required, and `extra`.
fn attested_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs = vec![
        ("BIOMETRIC_PASSKEY_POSSESSION_MODE", "builtin"),
        ("BIOMETRIC_PASSKEY_WEBAUTHN_RP_ID", "bank.example"),
        ("BIOMETRIC_PASSKEY_WEBAUTHN_ORIGINS", "https://bank.example"),
        ("BIOMETRIC_PASSKEY_WEBAUTHN_ATTESTATION", "required"),
    ];
    pairs.extend_from_slice(extra);
    core_env(&pairs)
}

/// A BLOB-shaped JWT whose chain is the FIDO Alliance root itself and whose
/// signature is not one: it cannot verify.
fn unverifiable_blob() -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let root: String = relying_party::metadata::FIDO_MDS_ROOT
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "x5c": [root] });
    let payload = serde_json::json!({ "no": 1, "nextUpdate": "2999-01-01", "entries": [] });
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(b"not a signature"),
    )
}

#[test]
fn attestation_from_metadata_that_does_not_verify_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob.jwt");
    std::fs::write(&blob, unverifiable_blob()).unwrap();
    let blob = blob.display().to_string();
    let problems = CoreConfig::from_env(&attested_env(&[(METADATA_FILE, &blob)])).unwrap_err();
    assert_eq!(variables(&problems), vec![METADATA_FILE]);
    let message = &problems.0[0].message;
    assert!(
        message.contains("does not verify to the FIDO Alliance root certificate")
            && message.contains("does not start"),
        "{message}"
    );

    let missing = dir.path().join("absent.jwt").display().to_string();
    let problems = CoreConfig::from_env(&attested_env(&[(METADATA_FILE, &missing)])).unwrap_err();
    assert_eq!(variables(&problems), vec![METADATA_FILE]);
    assert!(problems.0[0].message.contains("cannot read"), "{problems}");

    // Without attestation the Core API does not read it (the management
    // runtime names authenticators from it).
    let env = core_env(&[
        ("BIOMETRIC_PASSKEY_POSSESSION_MODE", "builtin"),
        ("BIOMETRIC_PASSKEY_WEBAUTHN_RP_ID", "bank.example"),
        ("BIOMETRIC_PASSKEY_WEBAUTHN_ORIGINS", "https://bank.example"),
        (METADATA_FILE, &missing),
    ]);
    assert!(CoreConfig::from_env(&env).is_ok());
}

#[test]
fn a_name_list_gives_no_attestation_roots() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("aaguids.json");
    std::fs::write(
        &list,
        r#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": {"name": "iCloud Keychain"}}"#,
    )
    .unwrap();
    let list = list.display().to_string();
    let problems = CoreConfig::from_env(&attested_env(&[(METADATA_FILE, &list)])).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec![
            "BIOMETRIC_PASSKEY_WEBAUTHN_ATTESTATION_ROOTS_FILE",
            "BIOMETRIC_PASSKEY_WEBAUTHN_ALLOWED_AAGUIDS"
        ]
    );
    assert!(
        problems.0[0]
            .message
            .contains("BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE to the FIDO Metadata Service BLOB"),
        "{problems}"
    );
}
