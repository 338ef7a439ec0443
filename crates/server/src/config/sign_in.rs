//! The operators' sign-in: the OIDC provider the management runtime verifies
//! tokens against, and the client the dashboard signs in as.

use std::time::Duration;

use management::{ManagementAuth, ManagementUi};

use super::Reader;
use super::reader::require_https;

const ISSUER: &str = "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER";
const JWKS_URL: &str = "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL";
const UI_SCOPES: &str = "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES";

/// `BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_*`: whose tokens the Management API
/// takes, and where their scopes are.
pub(super) fn read_auth(r: &mut Reader<'_>) -> Option<ManagementAuth> {
    let issuer = r.required(
        ISSUER,
        "set it to your OIDC provider's issuer URL (https://…)",
    );
    let issuer = issuer.and_then(|raw| require_https(r, ISSUER, raw).map(|_| raw));
    let audience = r.required(
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE",
        "set it to the audience your OIDC provider puts in Management API tokens",
    );
    let jwks = r.required(
        JWKS_URL,
        "set it to your OIDC provider's JWKS URL (https://…)",
    );
    let jwks = jwks.and_then(|raw| require_https(r, JWKS_URL, raw).map(|_| raw));
    let scope_claim = r
        .optional("BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_CLAIM")
        .unwrap_or("scope");
    let scope_prefix = r
        .optional("BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_PREFIX")
        .unwrap_or("");
    let clock_skew = r.duration(
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_CLOCK_SKEW",
        Duration::from_secs(30),
    );
    Some(ManagementAuth {
        issuer: issuer?.to_owned(),
        audience: audience?.to_owned(),
        jwks_url: jwks?.to_owned(),
        scope_claim: scope_claim.to_owned(),
        scope_prefix: scope_prefix.to_owned(),
        clock_skew,
    })
}

/// `BIOMETRIC_PASSKEY_MANAGEMENT_UI_*`: the dashboard's public client and
/// the scopes it asks for.
pub(super) fn read_ui(r: &mut Reader<'_>) -> Option<ManagementUi> {
    let client_id = r.required(
        "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID",
        "set it to the public OIDC client id registered for the dashboard",
    );
    let scopes: Vec<String> = match r.env.get_raw(UI_SCOPES) {
        Some(raw) => raw.split_whitespace().map(str::to_owned).collect(),
        None => management::runtime_config::DEFAULT_UI_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    if scopes.is_empty() {
        // Set but empty: never widened to the defaults.
        r.problem(
            UI_SCOPES,
            "is set but lists no scope; unset it for the default list, or list the scopes \
             the dashboard asks for (space-separated, `openid` among them)",
        );
    }
    Some(ManagementUi {
        client_id: client_id?.to_owned(),
        scopes,
    })
}
