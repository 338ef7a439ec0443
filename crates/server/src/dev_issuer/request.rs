//! Form and query parameters, and the authorization request they carry,
//! validated against what the dashboard is allowed to ask for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The longest operator name the sign-in page accepts.
pub(super) const MAX_OPERATOR_NAME: usize = 200;

/// Decoded `application/x-www-form-urlencoded` pairs, in order.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn parse(raw: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(raw).into_owned().collect())
    }

    /// Every value given for `name`.
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, if given (an empty value counts as absent);
    /// a parameter given twice is refused (RFC 6749 §3.1).
    pub(super) fn optional(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self
            .0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("the parameter {name} is given more than once"));
        }
        Ok(first.filter(|value| !value.is_empty()))
    }

    /// The value of `name`, which must be given once and not be empty.
    pub(super) fn required(&self, name: &str) -> Result<&str, String> {
        self.optional(name)?
            .ok_or_else(|| format!("the parameter {name} is missing"))
    }
}

/// What a valid authorization request must match.
pub(super) struct Expected<'a> {
    pub(super) client_id: &'a str,
    pub(super) redirect_uri: String,
    /// The scopes that may be requested.
    pub(super) scopes: &'a [String],
}

/// A validated authorization request (`response_type=code`, PKCE S256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AuthorizationRequest {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    /// The requested scopes, without repeats, in the order given.
    pub(super) scopes: Vec<String>,
    pub(super) state: Option<String>,
    pub(super) code_challenge: String,
    pub(super) nonce: Option<String>,
}

impl AuthorizationRequest {
    /// Validates the request carried by `params`, its space-delimited scopes
    /// in the parameter `scope_field`. The error names the problem.
    pub(super) fn from_params(
        params: &Params,
        scope_field: &str,
        expected: &Expected<'_>,
    ) -> Result<Self, String> {
        let response_type = params.required("response_type")?;
        if response_type != "code" {
            return Err(format!(
                "response_type must be code (the authorization code flow), not {response_type}"
            ));
        }
        let client_id = params.required("client_id")?;
        if client_id != expected.client_id {
            return Err(format!(
                "unknown client_id {client_id}; the dashboard's is {}",
                expected.client_id
            ));
        }
        let redirect_uri = params.required("redirect_uri")?;
        if redirect_uri != expected.redirect_uri {
            return Err(format!(
                "redirect_uri must be exactly {}, not {redirect_uri}",
                expected.redirect_uri
            ));
        }
        let method = params.required("code_challenge_method")?;
        if method != "S256" {
            return Err(format!("code_challenge_method must be S256, not {method}"));
        }
        let code_challenge = params.required("code_challenge")?;
        if !is_code_challenge(code_challenge) {
            return Err(
                "code_challenge must be the unpadded base64url SHA-256 of the verifier (43 characters)"
                    .to_owned(),
            );
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in params.required(scope_field)?.split_whitespace() {
            if !expected.scopes.iter().any(|s| s == scope) {
                return Err(format!("the scope {scope} is not offered here"));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err("the scope must include openid".to_owned());
        }
        Ok(Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: params.optional("state")?.map(str::to_owned),
            code_challenge: code_challenge.to_owned(),
            nonce: params.optional("nonce")?.map(str::to_owned),
        })
    }
}

/// The operator name typed on the sign-in page, which becomes the tokens' `sub`.
pub(super) fn operator_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("the operator name is empty".to_owned());
    }
    if name.chars().count() > MAX_OPERATOR_NAME {
        return Err(format!(
            "the operator name is longer than {MAX_OPERATOR_NAME} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the operator name contains control characters".to_owned());
    }
    Ok(name.to_owned())
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `s` can be an S256 code challenge: 32 bytes, unpadded base64url.
pub(super) fn is_code_challenge(s: &str) -> bool {
    s.len() == 43 && is_base64url(s)
}

/// Whether `s` is a well-formed PKCE code verifier (RFC 7636 §4.1).
pub(super) fn is_code_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(verifier))`: the S256 challenge of a verifier.
pub(super) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}
