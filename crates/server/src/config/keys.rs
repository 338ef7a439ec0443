//! The secrets that are keys: the data-encryption key with the earlier keys
//! it still opens with, and the Core API's keys (or the operator's word that
//! the network alone protects it).

use domain::sealing::{DataKey, KeyId};
use secrecy::{ExposeSecret, SecretString};

use super::Reader;

/// `BIOMETRIC_PASSKEY_CORE_API_AUTH` with `BIOMETRIC_PASSKEY_CORE_API_KEYS`.
#[derive(Debug, Clone)]
pub enum CoreApiAuth {
    /// `api_key` (the default): every call needs one of these keys (never empty).
    ApiKeys(Vec<SecretString>),
    /// `none`: calls are not authenticated; only the network protects the API.
    None,
}

impl CoreApiAuth {
    /// The accepted keys; none when calls are not authenticated.
    pub fn keys(&self) -> &[SecretString] {
        match self {
            Self::ApiKeys(keys) => keys,
            Self::None => &[],
        }
    }
}

pub(super) fn read_data_key(r: &mut Reader<'_>) -> Option<DataKey> {
    let key_id = r.parsed(
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID",
        KeyId::parse("default").ok(),
        |raw| {
            KeyId::parse(raw).map(Some).map_err(|e| {
                format!("{e}; use 64 characters or fewer from A-Z, a-z, 0-9, '.', '_', ':' or '-'")
            })
        },
    );
    let encoded = r.secret(
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
        Some("set it to 32 random bytes encoded as unpadded base64url (`biometric-passkey keys generate` prints one with its id)"),
    )?;
    let earlier = read_earlier_keys(r);
    let key = match DataKey::from_base64url(key_id.clone()?, encoded.expose_secret()) {
        Ok(key) => key,
        Err(e) => {
            r.problem(
                "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
                format!("{e}; it must be unpadded base64url of exactly 32 random bytes"),
            );
            return None;
        }
    };
    match key.with_earlier(&earlier?) {
        Ok(key) => Some(key),
        Err(e) => {
            r.problem(
                EARLIER_KEYS,
                format!("{e}; every key, current or earlier, needs an id of its own"),
            );
            None
        }
    }
}

const EARLIER_KEYS: &str = "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS";

/// Earlier data-encryption keys, which open what they sealed and never seal:
/// `id:key` pairs separated by commas. `None` when any is refused.
fn read_earlier_keys(r: &mut Reader<'_>) -> Option<Vec<DataKey>> {
    let Some(raw) = r.secret(EARLIER_KEYS, None) else {
        return Some(Vec::new());
    };
    let raw = raw.expose_secret();
    let mut keys = Vec::new();
    let mut refused = false;
    for (n, entry) in raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let parsed = entry
            .split_once(':')
            .ok_or_else(|| "is not `id:key`".to_owned())
            .and_then(|(id, key)| {
                let id = KeyId::parse(id).map_err(|e| format!("its id: {e}"))?;
                DataKey::from_base64url(id, key).map_err(|e| {
                    format!("its key: {e}; it must be unpadded base64url of exactly 32 bytes")
                })
            });
        match parsed {
            Ok(key) => keys.push(key),
            Err(reason) => {
                // Which entry, never its value.
                r.problem(EARLIER_KEYS, format!("entry #{} {reason}", n + 1));
                refused = true;
            }
        }
    }
    (!refused).then_some(keys)
}

/// The shortest API key accepted: 32 characters (about 190 bits from base64url).
pub const MIN_API_KEY_LEN: usize = 32;

const API_KEYS: &str = "BIOMETRIC_PASSKEY_CORE_API_KEYS";
const API_AUTH: &str = "BIOMETRIC_PASSKEY_CORE_API_AUTH";
const GENERATE_KEY: &str = "`biometric-passkey keys api-key`";

/// The Core API fails closed: without keys it starts only when the operator
/// says, with `BIOMETRIC_PASSKEY_CORE_API_AUTH=none`, that the network alone
/// protects it. Keys together with `none` are refused as contradictory.
pub(super) fn read_api_auth(r: &mut Reader<'_>) -> Option<CoreApiAuth> {
    let keys = read_api_keys(r);
    let require_key = match r.optional(API_AUTH) {
        None | Some("api_key") => true,
        Some("none") => false,
        Some(other) => {
            r.problem(
                API_AUTH,
                format!(
                    "unknown mode {other:?}; use api_key (the default: calls need a key from \
                     {API_KEYS}) or none (only the network protects the Core API)"
                ),
            );
            return None;
        }
    };
    match (require_key, keys) {
        (true, Some(keys)) if !keys.is_empty() => Some(CoreApiAuth::ApiKeys(keys)),
        (true, Some(_)) => None,
        (true, None) => {
            r.problem(
                API_KEYS,
                format!(
                    "is required: the Core API accepts only calls with an API key; set it to one or \
                     more keys (generate each with {GENERATE_KEY}), or set {API_AUTH}=none if only \
                     the network can reach the Core API"
                ),
            );
            None
        }
        (false, None) => Some(CoreApiAuth::None),
        (false, Some(_)) => {
            r.problem(
                API_AUTH,
                format!(
                    "is none, yet {API_KEYS} is set; unset {API_KEYS} to take calls without a key, \
                     or unset {API_AUTH} to require one of the keys"
                ),
            );
            None
        }
    }
}

/// The keys when the variable is set (an empty list is a problem).
fn read_api_keys(r: &mut Reader<'_>) -> Option<Vec<SecretString>> {
    let raw = r.optional(API_KEYS)?;
    let keys: Vec<&str> = raw
        .split([',', ' ', '\n', '\t'])
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        r.problem(
            API_KEYS,
            format!(
                "holds no key, only separators; set it to one or more keys separated by commas \
                 or spaces (generate each with {GENERATE_KEY})"
            ),
        );
    }
    for (i, key) in keys.iter().enumerate() {
        if key.len() < MIN_API_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            r.problem(
                API_KEYS,
                format!(
                    "key #{} is not at least {MIN_API_KEY_LEN} visible ASCII characters; generate keys with \
                     {GENERATE_KEY}",
                    i + 1
                ),
            );
        }
    }
    Some(
        keys.into_iter()
            .map(|k| SecretString::from(k.to_owned()))
            .collect(),
    )
}
