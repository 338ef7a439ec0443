//! Ports, HTTP limits and long-polls.

use std::time::Duration;

use http_common::HttpLimits;

use super::*;

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
