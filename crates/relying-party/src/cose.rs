//! The stored public key of a passkey as a COSE_Key (RFC 9052, section 7),
//! the form authenticators report and other relying parties take: what a
//! credential export carries.
//!
//! The built-in relying party stores webauthn-rs's own form of the key
//! (`COSEKey` as JSON); this writes it back as the CBOR map an authenticator
//! reports: `kty` (1), `alg` (3) and the key type's parameters.

use std::collections::BTreeMap;

use serde_cbor_2::Value;
use webauthn_rs_core::proto::{COSEKey, COSEKeyType, ECDSACurve, EDDSACurve};

/// The COSE_Key of a key the built-in relying party stored; `None` when the
/// stored form cannot be read.
pub fn cose_public_key(stored: &[u8]) -> Option<Vec<u8>> {
    let key: COSEKey = serde_json::from_slice(stored).ok()?;
    let mut map = BTreeMap::new();
    let int = |i: i64| Value::Integer(i128::from(i));
    map.insert(int(3), int(key.type_ as i64));
    match key.key {
        COSEKeyType::EC_EC2(ec) => {
            let curve = match ec.curve {
                ECDSACurve::SECP256R1 => 1,
                ECDSACurve::SECP384R1 => 2,
                ECDSACurve::SECP521R1 => 3,
            };
            map.insert(int(1), int(2));
            map.insert(int(-1), int(curve));
            map.insert(int(-2), Value::Bytes(ec.x.to_vec()));
            map.insert(int(-3), Value::Bytes(ec.y.to_vec()));
        }
        COSEKeyType::EC_OKP(okp) => {
            let curve = match okp.curve {
                EDDSACurve::ED25519 => 6,
                EDDSACurve::ED448 => 7,
            };
            map.insert(int(1), int(1));
            map.insert(int(-1), int(curve));
            map.insert(int(-2), Value::Bytes(okp.x.to_vec()));
        }
        COSEKeyType::RSA(rsa) => {
            map.insert(int(1), int(3));
            map.insert(int(-1), Value::Bytes(rsa.n.to_vec()));
            map.insert(int(-2), Value::Bytes(rsa.e.to_vec()));
        }
    }
    serde_cbor_2::to_vec(&Value::Map(map)).ok()
}
