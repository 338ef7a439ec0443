//! Retention, provider clean-ups and refusal limits.

use domain::retention::RetentionPolicy;

use super::*;

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
