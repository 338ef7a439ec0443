//! `biometric-passkey keys`: new secrets in the formats the configuration
//! takes, from the operating system's random source, so that nobody has to
//! assemble them with shell tools. Printed once, as environment lines for a
//! secret store; nothing is written anywhere else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::sealing::{DataKey, KeyId};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A new data-encryption key and its id: the two lines of the environment
/// that configure it. The id defaults to `key-<UTC date>`, so that the key a
/// value is sealed under tells when it was made.
pub fn data_encryption_key(id: Option<&str>, today: OffsetDateTime) -> Result<String, String> {
    let id = match id {
        Some(raw) => KeyId::parse(raw).map_err(|e| format!("--id: {e}"))?,
        None => KeyId::parse(&format!("key-{}", today.date()))
            .map_err(|e| format!("the default key id: {e}"))?,
    };
    let (_, encoded) = DataKey::generate(id.clone());
    Ok(format!(
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID={}\nBIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY={}\n",
        id.as_str(),
        encoded.as_str()
    ))
}

/// A new Core API key (32 random bytes, unpadded base64url) and, as a
/// comment, the fingerprint audit events will name it by.
pub fn core_api_key() -> Zeroizing<String> {
    let key = Zeroizing::new(URL_SAFE_NO_PAD.encode(domain::ids::random_bytes::<32>()));
    let fingerprint = core_api::auth::KeyId::of_key(&key);
    Zeroizing::new(format!(
        "# fingerprint {fingerprint}: add it to BIOMETRIC_PASSKEY_CORE_API_KEYS (comma-separated)\n{}\n",
        key.as_str()
    ))
}

/// `keys status`: how many values each key id seals, per column, and
/// whether any names a key that is not configured (then `false`: those
/// values cannot be opened, or those seals verified, until it is).
pub fn status_report(
    counts: &[domain::store::SealedValues],
    configured: &[&str],
) -> (String, bool) {
    let mut out = format!("{:<24} {:<40} {:>10}\n", "key id", "column", "values");
    let mut all_configured = true;
    for c in counts {
        let known = configured.contains(&c.key_id.as_str());
        all_configured &= known;
        out.push_str(&format!(
            "{:<24} {:<40} {:>10}{}\n",
            c.key_id,
            c.column,
            c.values,
            if known { "" } else { "  NOT CONFIGURED" }
        ));
    }
    for id in configured {
        let total: u64 = counts
            .iter()
            .filter(|c| c.key_id == *id)
            .map(|c| c.values)
            .sum();
        out.push_str(&format!("{id}: {total} values in all\n"));
    }
    (out, all_configured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_values_under_keys_that_are_not_configured() {
        let count = |column: &str, key_id: &str, values| domain::store::SealedValues {
            column: column.to_owned(),
            key_id: key_id.to_owned(),
            values,
        };
        let counts = [
            count("flows.sdk_token_sealed", "key-2025", 3),
            count("flows.sdk_token_sealed", "key-2026", 5),
            count("audit_seals.key_id", "key-2026", 2),
        ];
        let (report, ok) = status_report(&counts, &["key-2026", "key-2025"]);
        assert!(ok, "{report}");
        assert!(report.contains("key-2025: 3 values in all"));
        assert!(report.contains("key-2026: 7 values in all"));
        let (report, ok) = status_report(&counts, &["key-2026"]);
        assert!(!ok);
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("key-2025") && l.ends_with("NOT CONFIGURED")),
            "{report}"
        );
    }

    #[test]
    fn a_data_encryption_key_is_configured_by_its_two_lines() {
        let today = time::macros::datetime!(2026-12-06 10:00 UTC);
        let out = data_encryption_key(None, today).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID=key-2026-12-06"
        );
        let key = lines[1]
            .strip_prefix("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY=")
            .unwrap();
        assert!(DataKey::from_base64url(KeyId::parse("x").unwrap(), key).is_ok());
        assert_ne!(out, data_encryption_key(None, today).unwrap(), "random");
        assert!(
            data_encryption_key(Some("2027.q1"), today)
                .unwrap()
                .starts_with("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID=2027.q1\n")
        );
        assert!(data_encryption_key(Some("no spaces"), today).is_err());
    }

    #[test]
    fn a_core_api_key_comes_with_its_fingerprint() {
        let out = core_api_key();
        let mut lines = out.lines();
        let comment = lines.next().unwrap();
        let key = lines.next().unwrap();
        assert_eq!(key.len(), 43);
        assert!(comment.contains(core_api::auth::KeyId::of_key(key).as_str()));
    }
}
