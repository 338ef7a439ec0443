//! The IDV provider: its mode, the workflows each flow runs, and Onfido's
//! region, API token and webhook secrets.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::Reader;
use super::reader::require_https;

/// `BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdvMode {
    Onfido,
    Synthetic,
}

/// The IDV provider's settings, as the Core API needs them.
#[derive(Debug, Clone)]
pub struct IdvConfig {
    pub mode: IdvMode,
    pub registration_workflow_id: String,
    pub step_up_workflow_id: String,
    pub recovery_verify_workflow_id: String,
    pub onfido: OnfidoConfig,
}

#[derive(Debug, Clone)]
pub struct OnfidoConfig {
    pub region: String,
    /// The regional URL, or the override, without a trailing slash.
    pub base_url: Url,
    /// Present whenever the mode is `onfido`.
    pub api_token: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    /// The secret being rotated out; deliveries signed with it are accepted
    /// until it is removed.
    pub webhook_previous_secret: Option<SecretString>,
    pub webhook_max_age: Duration,
}

const BASE_URL: &str = "BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL";
const API_TOKEN: &str = "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN";
const WEBHOOK_SECRET: &str = "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET";
const PREVIOUS_WEBHOOK_SECRET: &str = "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET";
const WEBHOOK_MAX_AGE: &str = "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_MAX_AGE";

/// A required workflow id; in `onfido` mode a UUID, as the provider's
/// workflow ids are (anything else makes every run creation fail with 422).
fn workflow_id<'a>(
    r: &mut Reader<'a>,
    mode: Option<IdvMode>,
    variable: &'static str,
    hint: &str,
) -> Option<&'a str> {
    let value = r.required(variable, hint)?;
    if mode == Some(IdvMode::Onfido) && !is_hyphenated_uuid(value) {
        r.problem(
            variable,
            format!(
                "must be the workflow's UUID as the provider's dashboard shows it \
                 (8-4-4-4-12 hex digits, e.g. 0c6b0e4a-1111-4b5b-9a1e-000000000001), got {value:?}"
            ),
        );
        return None;
    }
    Some(value)
}

/// `8-4-4-4-12` hex digits: how the provider writes a workflow's id.
fn is_hyphenated_uuid(value: &str) -> bool {
    value.len() == 36
        && value.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The provider's API for a region: `https://api.{region}.onfido.com/v3.6`.
pub fn regional_base_url(region: &str) -> Url {
    #[allow(clippy::expect_used)]
    // Regions are validated to [a-z]{2}; the URL is always well-formed.
    Url::parse(&format!("https://api.{region}.onfido.com/v3.6"))
        .expect("a well-formed regional URL")
}

impl IdvConfig {
    pub(super) fn read(r: &mut Reader<'_>) -> Option<Self> {
        let mode = read_mode(r);
        let hint = "set it to the IDV workflow id configured for this deployment";
        let registration = workflow_id(
            r,
            mode,
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            hint,
        );
        let step_up = workflow_id(r, mode, "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID", hint);
        let recovery = workflow_id(
            r,
            mode,
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            hint,
        );
        let onfido = OnfidoConfig::read(r, mode);
        Some(Self {
            mode: mode?,
            registration_workflow_id: registration?.to_owned(),
            step_up_workflow_id: step_up?.to_owned(),
            recovery_verify_workflow_id: recovery?.to_owned(),
            onfido: onfido?,
        })
    }
}

/// `onfido` by default; `None` when the value is refused.
fn read_mode(r: &mut Reader<'_>) -> Option<IdvMode> {
    r.parsed(
        "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE",
        Some(IdvMode::Onfido),
        |raw| match raw {
            "onfido" => Ok(Some(IdvMode::Onfido)),
            "synthetic" => Ok(Some(IdvMode::Synthetic)),
            other => Err(format!(
                "unknown mode {other:?}; use onfido (production) or synthetic (non-production)"
            )),
        },
    )
}

impl OnfidoConfig {
    /// Read in every mode; the secrets are required in `onfido` mode only.
    fn read(r: &mut Reader<'_>, mode: Option<IdvMode>) -> Option<Self> {
        let region = r
            .parsed(
                "BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION",
                Some("eu"),
                |raw| match raw {
                    "eu" => Ok(Some("eu")),
                    "us" => Ok(Some("us")),
                    "ca" => Ok(Some("ca")),
                    other => Err(format!("unknown region {other:?}; use eu, us or ca")),
                },
            )
            .unwrap_or("eu");
        let base_url = read_base_url(r, region);
        let onfido = mode == Some(IdvMode::Onfido);
        let onfido_hint = "it is required when BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE=onfido (the default); \
                           load it from your secret manager, or use synthetic mode outside production";
        let required = onfido.then_some(onfido_hint);
        let api_token = r.secret(API_TOKEN, required);
        let webhook_secret = r.secret(WEBHOOK_SECRET, required);
        let webhook_previous_secret = r.secret(PREVIOUS_WEBHOOK_SECRET, None);
        if let (Some(previous), Some(current)) = (&webhook_previous_secret, &webhook_secret)
            && onfido
            && previous.expose_secret() == current.expose_secret()
        {
            r.problem(
                PREVIOUS_WEBHOOK_SECRET,
                "equals BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET; during a rotation it holds \
                 the secret being replaced, otherwise leave it unset",
            );
        }
        let webhook_max_age = r.duration(WEBHOOK_MAX_AGE, Duration::from_secs(900));
        if webhook_max_age.is_zero() {
            r.problem(
                WEBHOOK_MAX_AGE,
                "must be greater than zero; use a tight window such as 15m",
            );
        }
        Some(Self {
            region: region.to_owned(),
            base_url: base_url?,
            api_token,
            webhook_secret,
            webhook_previous_secret,
            webhook_max_age,
        })
    }
}

/// The override (https unless loopback, as the `idv` client takes it), or
/// the region's URL.
fn read_base_url(r: &mut Reader<'_>, region: &str) -> Option<Url> {
    let Some(raw) = r.optional(BASE_URL) else {
        return Some(regional_base_url(region));
    };
    let url = require_https(r, BASE_URL, raw.trim_end_matches('/'))?;
    match idv::check_onfido_base_url(&url) {
        Ok(()) => Some(url),
        Err(problem) => {
            r.problem(BASE_URL, problem);
            None
        }
    }
}
