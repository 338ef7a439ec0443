//! The issuer's ES256 signing key, generated in memory at every start and
//! published as a JWK.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use super::codes::random_base64url;

/// A P-256 key pair: the private half signs, the public half is the JWK.
pub(super) struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl SigningKey {
    /// A new key with a random `kid`, so that a restart's key is never
    /// mistaken for a cached one.
    pub(super) fn generate() -> anyhow::Result<Self> {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret
            .to_pkcs8_der()
            .context("while encoding the key as PKCS#8")?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            anyhow::bail!("the public key has no affine coordinates");
        };
        let kid = format!("dev-{}", random_base64url::<12>());
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        });
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk,
        })
    }

    /// The public key as a JWK.
    pub(super) fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// `claims` as an ES256 JWT of type `typ`, naming this key's `kid`.
    pub(super) fn sign(&self, typ: &str, claims: &Value) -> jsonwebtoken::errors::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding)
    }
}
