//! A stand-in for the customer's OIDC provider's JWKS endpoint: keys made per
//! run, rotation, outages; and token minting for tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

/// An ES256 signing key with its public JWK.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    public_sec1: Vec<u8>,
    jwk: Value,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let der = secret.to_pkcs8_der().unwrap();
        let point = secret.public_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        });
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            public_sec1: point.as_bytes().to_vec(),
            jwk,
        }
    }

    /// A token signed with this key, naming `kid` (normally its own).
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        encode(&header, claims, &self.encoding).unwrap()
    }

    /// A token with this `typ` header.
    pub fn sign_typed(&self, typ: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        encode(&header, claims, &self.encoding).unwrap()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// The public key's bytes: what an algorithm-confusion attacker would use as an HMAC secret.
    pub fn public_key_bytes(&self) -> &[u8] {
        &self.public_sec1
    }
}

/// The JWKS endpoint, on `127.0.0.1:<random port>`.
pub struct JwksDouble {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    available: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
    /// Milliseconds each answer is held back.
    delay_ms: Arc<AtomicUsize>,
}

impl JwksDouble {
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let published = Arc::new(Mutex::new(
            keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
        ));
        let available = Arc::new(AtomicBool::new(true));
        let fetches = Arc::new(AtomicUsize::new(0));
        let delay_ms = Arc::new(AtomicUsize::new(0));
        let (p, a, f, d) = (
            published.clone(),
            available.clone(),
            fetches.clone(),
            delay_ms.clone(),
        );
        let app = axum::Router::new().route(
            "/jwks",
            get(move || {
                let (p, a, f, d) = (p.clone(), a.clone(), f.clone(), d.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let delay = d.load(Ordering::SeqCst) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    if !a.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    let keys = p.lock().unwrap().clone();
                    Json(json!({ "keys": keys })).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            keys: published,
            available,
            fetches,
            delay_ms,
        }
    }

    /// Holds each answer back this long (a slow provider).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// Publishes exactly these keys from now on (rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
