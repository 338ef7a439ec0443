//! `BIOMETRIC_PASSKEY_POSSESSION_MODE` and the built-in relying party's
//! `BIOMETRIC_PASSKEY_WEBAUTHN_*` settings.

use std::net::IpAddr;
use std::time::Duration;

use domain::possession::{BackupPolicy, CounterPolicy};
use relying_party::{Attestation, Settings};
use url::Url;
use uuid::Uuid;

use super::Reader;

/// Who verifies WebAuthn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PossessionConfig {
    /// The customer's relying party; the Core API takes the verified facts.
    External,
    /// The backend itself, with these settings.
    Builtin(Settings),
}

/// The policies the domain applies to verified facts, in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PossessionPolicies {
    pub counter: CounterPolicy,
    pub backup: BackupPolicy,
    pub challenge_ttl: Duration,
}

const MODE: &str = "BIOMETRIC_PASSKEY_POSSESSION_MODE";
const RP_ID: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_RP_ID";
const RP_NAME: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_RP_NAME";
const ORIGINS: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_ORIGINS";
const USER_VERIFICATION: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_USER_VERIFICATION";
const ATTESTATION: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_ATTESTATION";
const ROOTS_FILE: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_ATTESTATION_ROOTS_FILE";
const METADATA_FILE: &str = super::METADATA_FILE;
const AAGUIDS: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_ALLOWED_AAGUIDS";
const CHALLENGE_TTL: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_CHALLENGE_TTL";
const COUNTER: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_COUNTER_POLICY";
const BACKUP: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_BACKUP_ELIGIBLE_POLICY";

/// How long a browser or app is told it has for the ceremony.
const AUTHENTICATOR_TIMEOUT: Duration = Duration::from_secs(120);

fn list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split([',', ' ', '\n', '\t']).filter(|s| !s.is_empty())
}

fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// An allowed origin: `https://host[:port]` (http only for loopback), or an
/// Android app's `android:apk-key-hash:<base64url SHA-256 of its signing key>`.
fn parse_origin(raw: &str) -> Result<Url, String> {
    if let Some(hash) = raw.strip_prefix("android:apk-key-hash:") {
        let valid = !hash.is_empty()
            && hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!(
                "{raw:?}: the key hash must be unpadded base64url (the SHA-256 of the app's signing certificate)"
            ));
        }
        return Url::parse(raw).map_err(|e| format!("{raw:?}: {e}"));
    }
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not an origin ({e})"))?;
    let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url.host()));
    if !secure {
        return Err(format!(
            "{raw:?} must be https:// (http:// only for loopback in development) or android:apk-key-hash:…"
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} is an origin: scheme, host and port only"));
    }
    Ok(url)
}

/// The RP ID must be the origins' host or a registrable suffix of it.
fn covers(rp_id: &str, origin: &Url) -> bool {
    match origin.host_str() {
        Some(host) => host == rp_id || host.ends_with(&format!(".{rp_id}")),
        // App origins carry no host; the app's asset links bind it to the RP ID.
        None => origin.scheme() == "android",
    }
}

impl PossessionConfig {
    pub(super) fn read(r: &mut Reader<'_>) -> Option<Self> {
        match r.optional(MODE).unwrap_or("external") {
            "external" => Some(Self::External),
            "builtin" => read_builtin(r).map(Self::Builtin),
            other => {
                r.problem(
                    MODE,
                    format!("unknown mode {other:?}; use external (your relying party verifies WebAuthn) or builtin"),
                );
                None
            }
        }
    }
}

fn read_builtin(r: &mut Reader<'_>) -> Option<Settings> {
    let rp_id = r
        .required(RP_ID, "the WebAuthn relying party id, e.g. bank.example")
        .map(str::to_owned);
    if let Some(id) = &rp_id
        && (id.contains("://") || id.contains('/') || id.contains(':') || id.is_empty())
    {
        r.problem(
            RP_ID,
            "must be a bare domain such as bank.example (no scheme, port or path)",
        );
    }
    let rp_name = r
        .optional(RP_NAME)
        .map(str::to_owned)
        .or_else(|| rp_id.clone())
        .unwrap_or_default();
    let mut origins = Vec::new();
    if let Some(raw) = r.required(ORIGINS, "the web and app origins passkeys are used from") {
        for item in list(raw) {
            match parse_origin(item) {
                Ok(url) => origins.push(url),
                Err(message) => r.problem(ORIGINS, message),
            }
        }
        if origins.is_empty() {
            r.problem(ORIGINS, "lists no origin");
        }
        if let Some(id) = &rp_id {
            for origin in &origins {
                if !covers(id, origin) {
                    r.problem(
                        ORIGINS,
                        format!(
                            "{origin} is not on the relying party id {id} or one of its subdomains"
                        ),
                    );
                }
            }
        }
    }
    let user_verification = match r.optional(USER_VERIFICATION).unwrap_or("required") {
        "required" => true,
        "preferred" => false,
        other => {
            r.problem(
                USER_VERIFICATION,
                format!("{other:?}: use required (biometric or PIN on every use) or preferred"),
            );
            true
        }
    };
    let attestation = match r.optional(ATTESTATION).unwrap_or("none") {
        "none" => {
            for variable in [ROOTS_FILE, AAGUIDS] {
                if r.optional(variable).is_some() {
                    r.problem(
                        variable,
                        format!("is only used with {ATTESTATION}=required"),
                    );
                }
            }
            Attestation::None
        }
        "required" => read_attestation(r)?,
        other => {
            r.problem(ATTESTATION, format!("{other:?}: use none or required"));
            return None;
        }
    };
    let settings = Settings {
        rp_id: rp_id?,
        rp_name,
        origins,
        user_verification,
        attestation,
        timeout: AUTHENTICATOR_TIMEOUT,
    };
    // The relying party's own checks (roots parse, …), reported as configuration.
    if let Err(e) = relying_party::WebauthnRp::new(&settings) {
        use relying_party::SettingsError as E;
        let variable = match e {
            E::NoRootFor(_) | E::NoAaguids => AAGUIDS,
            E::BadMetadataRoot(_) => METADATA_FILE,
            E::NoRoots if r.optional(ROOTS_FILE).is_none() => METADATA_FILE,
            _ => ROOTS_FILE,
        };
        r.problem(variable, e.to_string());
        return None;
    }
    Some(settings)
}

/// `ATTESTATION=required`: the roots file's roots for the allowed AAGUIDs,
/// and, when the metadata file is a FIDO Metadata Service BLOB, the roots it
/// gives per AAGUID and its compromise reports. With a BLOB, the roots file
/// and the AAGUIDs are optional (the AAGUIDs then restrict the BLOB's).
fn read_attestation(r: &mut Reader<'_>) -> Option<Attestation> {
    let metadata = read_metadata(r, domain::Clock::now(&crate::app::SystemClock));
    // A BLOB, or a file that failed to be one (already reported).
    let from_blob = !matches!(metadata, Ok(None));
    let roots = match r.optional(ROOTS_FILE) {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let roots = pem_certificates(&text);
                if roots.is_empty() {
                    r.problem(ROOTS_FILE, format!("{path} holds no PEM certificate"));
                }
                roots
            }
            Err(e) => {
                r.problem(ROOTS_FILE, format!("cannot read {path}: {e}"));
                Vec::new()
            }
        },
        None if from_blob => Vec::new(),
        None => {
            r.required(
                ROOTS_FILE,
                "a PEM file of the attestation roots you trust (or set BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE to the FIDO Metadata Service BLOB)",
            );
            Vec::new()
        }
    };
    let mut aaguids = Vec::new();
    let raw = if from_blob && r.optional(ROOTS_FILE).is_none() {
        r.optional(AAGUIDS)
    } else {
        r.required(
            AAGUIDS,
            "the AAGUIDs of the authenticator models you accept (the roots file's roots are trusted for these)",
        )
    };
    if let Some(raw) = raw {
        for item in list(raw) {
            match Uuid::parse_str(item) {
                Ok(id) => aaguids.push(id),
                Err(_) => r.problem(AAGUIDS, format!("{item:?} is not an AAGUID (a UUID)")),
            }
        }
    }
    let metadata = metadata.ok()?;
    if metadata.is_none() && (roots.is_empty() || aaguids.is_empty()) {
        return None;
    }
    Some(Attestation::Required {
        roots,
        aaguids,
        metadata,
    })
}

/// The metadata file's attestation facts, when it is a BLOB verified to the
/// FIDO Alliance root and current at `now`; `Ok(None)` without a file or for
/// a name list; `Err` (a problem reported) when it cannot be used.
fn read_metadata(
    r: &mut Reader<'_>,
    now: time::OffsetDateTime,
) -> Result<Option<relying_party::metadata::TrustedMetadata>, ()> {
    let Some(path) = r.optional(METADATA_FILE) else {
        return Ok(None);
    };
    let contents = match std::fs::read(path) {
        Ok(contents) => contents,
        Err(e) => {
            r.problem(METADATA_FILE, format!("cannot read {path}: {e}"));
            return Err(());
        }
    };
    match relying_party::metadata::load(&contents, relying_party::metadata::FIDO_MDS_ROOT, now) {
        Ok(metadata) => Ok(metadata.trust),
        Err(e) => {
            r.problem(
                METADATA_FILE,
                format!("{path}: {e}; with {ATTESTATION}=required the Core API does not start without the authenticator metadata it names"),
            );
            Err(())
        }
    }
}

/// The PEM certificate blocks of a bundle, each with its armour.
fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

impl PossessionPolicies {
    pub(super) fn read(r: &mut Reader<'_>, defaults: &domain::service::FlowPolicy) -> Self {
        let counter = match r
            .optional(COUNTER)
            .unwrap_or(defaults.counter_policy.as_str())
        {
            "enforce" => CounterPolicy::Enforce,
            "warn" => CounterPolicy::Warn,
            other => {
                r.problem(COUNTER, format!("{other:?}: use enforce or warn"));
                defaults.counter_policy
            }
        };
        let backup = match r
            .optional(BACKUP)
            .unwrap_or(defaults.backup_policy.as_str())
        {
            "reject" => BackupPolicy::Reject,
            "warn" => BackupPolicy::Warn,
            "allow" => BackupPolicy::Allow,
            other => {
                r.problem(BACKUP, format!("{other:?}: use reject, warn or allow"));
                defaults.backup_policy
            }
        };
        let default_ttl = Duration::from_secs(defaults.ceremony_ttl.whole_seconds().unsigned_abs());
        let challenge_ttl = r.duration(CHALLENGE_TTL, default_ttl);
        if challenge_ttl < Duration::from_secs(10) {
            r.problem(CHALLENGE_TTL, "must be at least 10s");
        }
        Self {
            counter,
            backup,
            challenge_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_secure() {
        assert!(parse_origin("https://bank.example").is_ok());
        assert!(parse_origin("https://login.bank.example:8443").is_ok());
        assert!(parse_origin("http://localhost:5173").is_ok());
        assert!(parse_origin("http://bank.example").is_err());
        assert!(parse_origin("https://bank.example/login").is_err());
        assert!(parse_origin("android:apk-key-hash:abc_DEF-123").is_ok());
        assert!(parse_origin("android:apk-key-hash:abc=").is_err());
        assert!(parse_origin("android:apk-key-hash:").is_err());
    }

    #[test]
    fn the_rp_id_must_cover_web_origins() {
        let id = "bank.example";
        assert!(covers(id, &parse_origin("https://bank.example").unwrap()));
        assert!(covers(
            id,
            &parse_origin("https://login.bank.example").unwrap()
        ));
        assert!(!covers(
            id,
            &parse_origin("https://evilbank.example").unwrap()
        ));
        assert!(covers(
            id,
            &parse_origin("android:apk-key-hash:abc").unwrap()
        ));
    }

    #[test]
    fn a_bundle_splits_into_certificates() {
        let one = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let bundle = format!("# roots\n{one}\n\n{one}\ntrailing");
        assert_eq!(pem_certificates(&bundle).len(), 2);
        assert!(pem_certificates("nothing").is_empty());
    }
}
