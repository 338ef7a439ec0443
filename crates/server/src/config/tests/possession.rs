//! Attestation from the authenticator metadata file.

use super::*;

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
