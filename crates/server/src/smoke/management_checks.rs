//! The management runtime's checks: its runtime configuration, the OIDC
//! issuer that configuration names, and the token its API requires.

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use super::Check;
use super::client::Target;

const RUNTIME_CONFIG_FIELDS: &[(&str, &str)] = &[
    ("oidc", "authority"),
    ("oidc", "clientId"),
    ("oidc", "audience"),
    ("oidc", "scopeClaim"),
];

pub(super) async fn management(client: &Client, base: &str) -> Vec<Check> {
    let target = Target {
        client: client.clone(),
        core: base.to_owned(),
        key: None,
    };
    let mut checks = Vec::new();
    let config = target
        .call(
            Method::GET,
            &format!("{base}/runtime-config.json"),
            None,
            None,
        )
        .await;
    let authority = match config {
        Ok(a) if a.status == StatusCode::OK => match runtime_config_authority(&a.body) {
            Ok(authority) => {
                checks.push(Check::pass(
                    "management.runtime_config",
                    format!("/runtime-config.json complete; issuer {authority}"),
                ));
                Some(authority)
            }
            Err(missing) => {
                checks.push(Check::fail(
                    "management.runtime_config",
                    format!("/runtime-config.json lacks {missing}"),
                ));
                None
            }
        },
        Ok(a) => {
            checks.push(Check::fail(
                "management.runtime_config",
                format!("GET /runtime-config.json: {}", a.describe()),
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail("management.runtime_config", e));
            None
        }
    };
    match authority {
        Some(authority) => checks.extend(issuer(&target, &authority).await),
        None => {
            checks.push(Check::fail(
                "management.issuer_discovery",
                "not checked: no issuer from /runtime-config.json",
            ));
            checks.push(Check::fail(
                "management.issuer_jwks",
                "not checked: no issuer from /runtime-config.json",
            ));
        }
    }
    const NAME: &str = "management.requires_token";
    let me = target
        .call(
            Method::GET,
            &format!("{base}/api/management/v1/me"),
            None,
            None,
        )
        .await;
    checks.push(match me {
        Ok(a) if a.status == StatusCode::UNAUTHORIZED && a.code() == "unauthorized" => Check::pass(
            NAME,
            "GET /api/management/v1/me without a token: 401 unauthorized",
        ),
        Ok(a) => Check::fail(
            NAME,
            format!(
                "GET /api/management/v1/me without a token: {} (expected 401)",
                a.describe()
            ),
        ),
        Err(e) => Check::fail(NAME, e),
    });
    checks
}

/// The issuer, when every fixed field of `/runtime-config.json` is there;
/// else the first one missing.
fn runtime_config_authority(body: &Value) -> Result<String, String> {
    for (object, field) in RUNTIME_CONFIG_FIELDS {
        if body[object][field].as_str().is_none_or(str::is_empty) {
            return Err(format!("{object}.{field}"));
        }
    }
    if body["oidc"]["scopes"]
        .as_array()
        .is_none_or(|scopes| scopes.is_empty())
    {
        return Err("oidc.scopes".to_owned());
    }
    if !body["oidc"]["scopePrefix"].is_string() {
        return Err("oidc.scopePrefix".to_owned());
    }
    if !body["apiBaseUrl"].is_string() {
        return Err("apiBaseUrl".to_owned());
    }
    Ok(body["oidc"]["authority"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn issuer(target: &Target, authority: &str) -> Vec<Check> {
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        authority.trim_end_matches('/')
    );
    let discovery = match target.call(Method::GET, &discovery_url, None, None).await {
        Ok(a) if a.status == StatusCode::OK => {
            let issuer = a.body["issuer"].as_str().unwrap_or_default();
            if issuer.trim_end_matches('/') != authority.trim_end_matches('/') {
                Err(format!(
                    "{discovery_url} names issuer {issuer:?}, not the dashboard's {authority:?}"
                ))
            } else {
                match a.body["jwks_uri"].as_str() {
                    Some(jwks) => Ok(jwks.to_owned()),
                    None => Err(format!("{discovery_url} has no jwks_uri")),
                }
            }
        }
        Ok(a) => Err(format!("GET {discovery_url}: {}", a.describe())),
        Err(e) => Err(e),
    };
    let jwks_uri = match discovery {
        Ok(jwks) => jwks,
        Err(e) => {
            return vec![
                Check::fail("management.issuer_discovery", e),
                Check::fail(
                    "management.issuer_jwks",
                    "not checked: no discovery document",
                ),
            ];
        }
    };
    let discovered = Check::pass(
        "management.issuer_discovery",
        format!("{discovery_url}: reachable"),
    );
    let jwks = match target.call(Method::GET, &jwks_uri, None, None).await {
        Ok(a) if a.status == StatusCode::OK => match a.body["keys"].as_array() {
            Some(keys) if !keys.is_empty() => Check::pass(
                "management.issuer_jwks",
                format!("{jwks_uri}: {} key(s)", keys.len()),
            ),
            _ => Check::fail(
                "management.issuer_jwks",
                format!("{jwks_uri}: no keys: operators' tokens cannot be verified"),
            ),
        },
        Ok(a) => Check::fail(
            "management.issuer_jwks",
            format!("GET {jwks_uri}: {}", a.describe()),
        ),
        Err(e) => Check::fail("management.issuer_jwks", e),
    };
    vec![discovered, jwks]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_incomplete_runtime_config_names_the_missing_field() {
        let complete = json!({"oidc": {"authority": "https://id.example.com/", "clientId": "ui",
            "audience": "api", "scopes": ["openid"], "scopeClaim": "scope", "scopePrefix": ""},
            "apiBaseUrl": ""});
        assert_eq!(
            runtime_config_authority(&complete).unwrap(),
            "https://id.example.com/"
        );
        let mut missing = complete.clone();
        missing["oidc"]["scopes"] = json!([]);
        assert_eq!(
            runtime_config_authority(&missing).unwrap_err(),
            "oidc.scopes"
        );
        let mut missing = complete;
        missing["oidc"].as_object_mut().unwrap().remove("clientId");
        assert_eq!(
            runtime_config_authority(&missing).unwrap_err(),
            "oidc.clientId"
        );
    }
}
