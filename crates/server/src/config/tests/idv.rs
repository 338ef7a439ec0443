//! The IDV provider: mode, workflows, Onfido's URL and webhook secrets.

use secrecy::ExposeSecret;

use super::*;

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
