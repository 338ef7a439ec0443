//! The data-encryption keys and the Core API's keys.

use super::*;

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
