//! The development sign-in, as the dashboard uses it: `dev` started for real,
//! the code flow with PKCE over HTTP, and the tokens accepted by the
//! Management API of the same runtime.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use server::app::Shutdown;
use server::config::LogLevel;
use server::dev::{self, DevOptions, DevServers};
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "biometric-passkey-dev";
const CSP: &str = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const REQUESTED: &str = "openid profile email management.users.read management.audit.read";

struct Dev {
    origin: String,
    http: Client,
    servers: DevServers,
    shutdown: Shutdown,
    _data: tempfile::TempDir,
}

impl Dev {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let options = DevOptions {
            data_dir: data.path().join("dev"),
            // Port 0: the system picks, and the sign-in names the port it got.
            core_port: 0,
            management_port: 0,
            metrics_port: 0,
            log_level: LogLevel::Error,
            possession: server::config::PossessionConfig::External,
            metadata_file: None,
        };
        let shutdown = Shutdown::default();
        let servers = dev::start(&options, &shutdown).await.unwrap();
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            origin: format!("http://{}", servers.management.addr()),
            http,
            servers,
            shutdown,
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    fn callback(&self) -> String {
        self.url("/auth/callback")
    }

    /// The authorization request the dashboard would make.
    fn authorize_query(&self, challenge: &str, state: &str) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", CLIENT_ID.into()),
            ("redirect_uri", self.callback()),
            ("scope", REQUESTED.into()),
            ("state", state.into()),
            ("code_challenge", challenge.into()),
            ("code_challenge_method", "S256".into()),
            ("nonce", "nonce-1".into()),
        ]
    }

    /// Opens the sign-in page, submits it as `sub` with only `granted` ticked,
    /// and returns the code and state sent back to the callback.
    async fn sign_in(&self, verifier: &str, sub: &str, granted: &[&str]) -> (String, String) {
        let page = self
            .http
            .get(self.url("/dev-oidc/authorize"))
            .query(&self.authorize_query(&challenge(verifier), "state-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[CONTENT_SECURITY_POLICY], CSP);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("<title>Development sign-in</title>"),
            "{html}"
        );
        assert!(html.contains("biometric-passkey dev"), "{html}");
        assert!(
            html.contains("id=\"sub\" name=\"sub\" value=\"dev-operator\""),
            "{html}"
        );
        for scope in ["management.users.read", "management.audit.read"] {
            assert!(html.contains(&format!("id=\"scope-{scope}\"")), "{html}");
        }
        assert!(html.contains(">Sign in</button>"), "{html}");
        assert!(
            !html.contains("<script") && !html.contains("style"),
            "{html}"
        );

        let mut form = hidden_fields(&html);
        form.push(("sub".into(), sub.into()));
        form.extend(
            granted
                .iter()
                .map(|s| ("scope".to_owned(), (*s).to_owned())),
        );
        let submitted = self
            .http
            .post(self.url("/dev-oidc/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(submitted.status(), StatusCode::SEE_OTHER);
        let location = url::Url::parse(submitted.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert_eq!(
            format!(
                "{}{}",
                location.origin().ascii_serialization(),
                location.path()
            ),
            self.callback()
        );
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(query["code"].len(), 43, "32 random bytes, base64url");
        (query["code"].clone(), query["state"].clone())
    }

    async fn redeem(&self, code: &str, verifier: &str) -> Response {
        let callback = self.callback();
        self.http
            .post(self.url("/dev-oidc/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", callback.as_str()),
                ("client_id", CLIENT_ID),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.servers.core.stopped().await.unwrap();
        self.servers.management.stopped().await.unwrap();
    }
}

fn verifier() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The hidden inputs of the sign-in form (its values need no unescaping here).
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.lines()
        .filter(|line| line.contains("type=\"hidden\""))
        .map(|line| {
            let attr = |name: &str| {
                let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + line[start..].find('"').unwrap();
                line[start..end].to_owned()
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_and_keys_describe_the_issuer_dev_configures() {
    let dev = Dev::start().await;
    let discovery: Value = dev
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let origin = &dev.origin;
    assert_eq!(discovery["issuer"], format!("{origin}/"));
    assert_eq!(
        discovery["authorization_endpoint"],
        format!("{origin}/dev-oidc/authorize")
    );
    assert_eq!(
        discovery["token_endpoint"],
        format!("{origin}/dev-oidc/token")
    );
    assert_eq!(
        discovery["jwks_uri"],
        format!("{origin}/.well-known/jwks.json")
    );
    assert_eq!(
        discovery["end_session_endpoint"],
        format!("{origin}/dev-oidc/logout")
    );
    for (field, expected) in [
        ("response_types_supported", serde_json::json!(["code"])),
        (
            "grant_types_supported",
            serde_json::json!(["authorization_code"]),
        ),
        ("subject_types_supported", serde_json::json!(["public"])),
        (
            "id_token_signing_alg_values_supported",
            serde_json::json!(["ES256"]),
        ),
        (
            "code_challenge_methods_supported",
            serde_json::json!(["S256"]),
        ),
        (
            "token_endpoint_auth_methods_supported",
            serde_json::json!(["none"]),
        ),
    ] {
        assert_eq!(discovery[field], expected, "{field}");
    }
    let scopes: Vec<&str> = discovery["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scopes, management::runtime_config::DEFAULT_UI_SCOPES);

    let runtime: Value = dev.get("/runtime-config.json").await.json().await.unwrap();
    assert_eq!(runtime["oidc"]["authority"], discovery["issuer"]);
    assert_eq!(runtime["oidc"]["clientId"], CLIENT_ID);

    let jwks: Value = dev
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    for (field, value) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(key[field], value, "{field}");
    }
    for field in ["x", "y"] {
        assert_eq!(key[field].as_str().unwrap().len(), 43, "{field}");
    }
    assert!(key["kid"].as_str().is_some_and(|kid| !kid.is_empty()));
    assert!(key.get("d").is_none(), "never the private key");
    dev.stop().await;
}

#[tokio::test]
async fn an_invalid_authorization_request_is_refused_without_a_redirect() {
    let dev = Dev::start().await;
    let challenge = challenge(&verifier());
    let mut query = dev.authorize_query(&challenge, "s");
    query[2].1 = "https://attacker.example/steal".into();
    let refused = dev
        .http
        .get(dev.url("/dev-oidc/authorize"))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.headers().get(LOCATION).is_none());
    assert_eq!(refused.headers()[CONTENT_SECURITY_POLICY], CSP);
    let html = refused.text().await.unwrap();
    assert!(html.contains("redirect_uri"), "{html}");
    assert!(!html.contains("<form"), "{html}");

    for (index, value) in [(0, "token"), (1, "someone-else"), (6, "plain")] {
        let mut query = dev.authorize_query(&challenge, "s");
        query[index].1 = value.into();
        let refused = dev
            .http
            .get(dev.url("/dev-oidc/authorize"))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{value}");
        assert!(refused.headers().get(LOCATION).is_none());
    }

    // The submitted form is validated again.
    let mut form = dev.authorize_query(&challenge, "s");
    form[2].1 = "https://attacker.example/steal".into();
    form[3] = ("requested_scope", REQUESTED.into());
    form.push(("sub", "mallory".into()));
    let refused = dev
        .http
        .post(dev.url("/dev-oidc/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.headers().get(LOCATION).is_none());
    dev.stop().await;
}

#[tokio::test]
async fn the_code_flow_signs_an_operator_in_with_the_scopes_granted() {
    let dev = Dev::start().await;

    // A wrong verifier fails, and burns the code.
    let verifier_1 = verifier();
    let (code, state) = dev
        .sign_in(&verifier_1, "ada", &["management.users.read"])
        .await;
    assert_eq!(state, "state-1");
    let wrong = dev.redeem(&code, &verifier()).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let retry = dev.redeem(&code, &verifier_1).await;
    assert_eq!(retry.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        retry.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // A fresh code with the right verifier is exchanged for tokens.
    let verifier_2 = verifier();
    let (code, _) = dev
        .sign_in(&verifier_2, "ada", &["management.users.read"])
        .await;
    let response = dev.redeem(&code, &verifier_2).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(
        tokens["scope"],
        "openid profile email management.users.read"
    );

    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["iss"], format!("{}/", dev.origin));
    assert_eq!(access["aud"], "biometric-passkey-management-api");
    assert_eq!(access["sub"], "ada");
    assert_eq!(
        access["scope"],
        "openid profile email management.users.read"
    );
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        3600
    );
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], CLIENT_ID);
    assert_eq!(id["sub"], "ada");
    assert_eq!(id["name"], "ada");
    assert_eq!(id["nonce"], "nonce-1");

    // The code is single use.
    let again = dev.redeem(&code, &verifier_2).await;
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // The Management API of the same runtime accepts the access token.
    let bearer = tokens["access_token"].as_str().unwrap();
    let me = dev
        .http
        .get(dev.url("/api/management/v1/me"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["sub"], "ada");
    assert_eq!(me["scopes"], serde_json::json!(["management.users.read"]));

    let audit = dev
        .http
        .get(dev.url("/api/management/v1/audit"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), StatusCode::FORBIDDEN);
    let audit: Value = audit.json().await.unwrap();
    assert_eq!(audit["error"]["code"], "missing_scope");
    dev.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_answers_in_rfc_6749_errors() {
    let dev = Dev::start().await;
    let unsupported = dev
        .http
        .post(dev.url("/dev-oidc/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        unsupported.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let incomplete = dev
        .http
        .post(dev.url("/dev-oidc/token"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    assert_eq!(incomplete.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        incomplete.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let unknown = dev.redeem("no-such-code", &verifier()).await;
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    dev.stop().await;
}

#[tokio::test]
async fn logout_returns_only_to_the_dashboard_sign_in_page() {
    let dev = Dev::start().await;
    let login = dev.url("/login");
    let back = dev
        .http
        .get(dev.url("/dev-oidc/logout"))
        .query(&[
            ("post_logout_redirect_uri", login.as_str()),
            ("state", "bye"),
            ("client_id", CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        back.headers()[LOCATION],
        format!("{login}?state=bye").as_str()
    );

    let elsewhere = dev
        .http
        .get(dev.url("/dev-oidc/logout"))
        .query(&[
            ("post_logout_redirect_uri", "https://attacker.example/"),
            ("state", "bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.headers()[LOCATION], login.as_str());
    dev.stop().await;
}
