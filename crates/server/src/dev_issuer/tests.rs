use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use domain::clock::ManualClock;
use domain::sealing::{DataKey, KeyId};
use time::macros::datetime;

use super::request::{Params, s256};
use super::*;
use crate::config::LogLevel;
use crate::dev::{self, DevOptions};

const VERIFIER: &str = "dev-issuer-unit-test-verifier-0123456789abcdef";

fn config(port: u16) -> ManagementConfig {
    let options = DevOptions {
        data_dir: PathBuf::from("unused"),
        core_port: 1,
        management_port: port,
        metrics_port: 0,
        log_level: LogLevel::Error,
        possession: crate::config::PossessionConfig::External,
        metadata_file: None,
    };
    let (key, _) = DataKey::generate(KeyId::parse("test").unwrap());
    dev::configs(&options, key).1
}

fn issuer_at(addr: &str, clock: Arc<dyn Clock>) -> anyhow::Result<DevIssuer> {
    let addr: SocketAddr = addr.parse().unwrap();
    DevIssuer::new(addr, &config(addr.port()), clock)
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(datetime!(2026-03-01 12:00 UTC)))
}

#[test]
fn refuses_an_address_that_is_not_loopback() {
    for addr in ["0.0.0.0:3001", "192.0.2.10:3001", "[::]:3001"] {
        let error = issuer_at(addr, clock()).err().unwrap().to_string();
        assert!(error.contains("loopback"), "{addr}: {error}");
    }
    assert!(issuer_at("127.0.0.1:3001", clock()).is_ok());
}

#[test]
fn refuses_a_configured_issuer_other_than_itself() {
    let addr: SocketAddr = "127.0.0.1:3001".parse().unwrap();
    let error = DevIssuer::new(addr, &config(4000), clock())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("http://127.0.0.1:3001/"), "{error}");
}

fn submitted(extra: &[(&str, &str)]) -> Params {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("response_type", "code")
        .append_pair("client_id", "biometric-passkey-dev")
        .append_pair("redirect_uri", "http://127.0.0.1:3001/auth/callback")
        .append_pair(
            "requested_scope",
            "openid profile management.users.read management.audit.read",
        )
        .append_pair("code_challenge", &s256(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "s1");
    for (name, value) in extra {
        form.append_pair(name, value);
    }
    Params::parse(form.finish().as_bytes())
}

fn code_of(location: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

fn redemption(code: &str) -> Params {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", "http://127.0.0.1:3001/auth/callback")
        .append_pair("client_id", "biometric-passkey-dev")
        .append_pair("code_verifier", VERIFIER);
    Params::parse(form.finish().as_bytes())
}

#[test]
fn grants_the_ticked_management_scopes_and_the_others_as_requested() {
    let dev = issuer_at("127.0.0.1:3001", clock()).unwrap();
    let location = grant(
        &dev.state,
        &submitted(&[("sub", " ada "), ("scope", "management.audit.read")]),
    )
    .unwrap();
    assert!(location.starts_with("http://127.0.0.1:3001/auth/callback?code="));
    assert!(location.ends_with("&state=s1"));
    let tokens = redeem(&dev.state, &redemption(&code_of(&location))).unwrap();
    assert_eq!(tokens["scope"], "openid profile management.audit.read");
}

#[test]
fn refuses_a_scope_that_was_not_requested_or_is_not_management() {
    let dev = issuer_at("127.0.0.1:3001", clock()).unwrap();
    for scope in ["management.users.delete", "openid"] {
        let problem =
            grant(&dev.state, &submitted(&[("sub", "ada"), ("scope", scope)])).unwrap_err();
        assert!(problem.contains(scope), "{problem}");
    }
    let problem = grant(&dev.state, &submitted(&[("sub", "  ")])).unwrap_err();
    assert!(problem.contains("operator name"), "{problem}");
}

#[test]
fn an_expired_code_is_refused_and_gone() {
    let clock = clock();
    let dev = issuer_at("127.0.0.1:3001", clock.clone()).unwrap();
    let location = grant(&dev.state, &submitted(&[("sub", "ada")])).unwrap();
    clock.advance(CODE_LIFETIME);
    let code = code_of(&location);
    let error = redeem(&dev.state, &redemption(&code)).unwrap_err();
    assert_eq!(
        (error.error, error.description),
        ("invalid_grant", "the code has expired")
    );
    clock.set(datetime!(2026-03-01 12:00 UTC));
    let error = redeem(&dev.state, &redemption(&code)).unwrap_err();
    assert_eq!(error.error, "invalid_grant");
}

#[test]
fn the_token_endpoint_names_malformed_requests() {
    let dev = issuer_at("127.0.0.1:3001", clock()).unwrap();
    let error = redeem(&dev.state, &Params::parse(b"grant_type=client_credentials")).unwrap_err();
    assert_eq!(error.error, "unsupported_grant_type");
    let error = redeem(&dev.state, &Params::parse(b"code=x")).unwrap_err();
    assert_eq!(error.error, "invalid_request");
    let error = redeem(
        &dev.state,
        &Params::parse(b"grant_type=authorization_code&code=a&code=b"),
    )
    .unwrap_err();
    assert_eq!(error.error, "invalid_request");
}

#[test]
fn the_sign_in_page_escapes_what_it_echoes() {
    let dev = issuer_at("127.0.0.1:3001", clock()).unwrap();
    let params = Params::parse(
        b"response_type=code&client_id=biometric-passkey-dev\
          &redirect_uri=http%3A%2F%2F127.0.0.1%3A3001%2Fauth%2Fcallback\
          &scope=openid+management.users.read&code_challenge_method=S256\
          &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
          &state=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    );
    let request =
        AuthorizationRequest::from_params(&params, "scope", &dev.state.expected()).unwrap();
    let html = page::sign_in(&request, |s| dev.state.is_management(s));
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
    assert!(html.contains("id=\"scope-management.users.read\""));
    assert!(!html.contains("style"));

    let problem = page::problem("<b>bad</b>");
    assert!(problem.contains("&lt;b&gt;bad&lt;/b&gt;"));
}
