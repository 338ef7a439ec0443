//! BLOBs signed by a chain made at test time (root → intermediate → leaf),
//! verified against that root in place of the FIDO Alliance's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use time::macros::datetime;

use super::*;

const YUBIKEY: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

/// A CA or leaf: its certificate (DER), key, and parameters (to sign with).
struct Pki {
    root_pem: String,
    intermediate_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key: KeyPair,
}

fn params(name: &str, ca: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.not_before = datetime!(2025-01-01 0:00 UTC);
    p.not_after = datetime!(2030-01-01 0:00 UTC);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    } else {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    p
}

/// A root, an intermediate it signs, and a leaf the intermediate signs.
fn pki(root_name: &str) -> Pki {
    pki_with_leaf(root_name, KeyPair::generate().unwrap())
}

/// An RSA key for the leaf, as the FIDO Alliance signs its BLOB (RS256):
/// made once with `openssl genpkey -algorithm RSA` (PKCS#8, for rcgen) and
/// `openssl rsa -traditional -outform DER` (PKCS#1, for jsonwebtoken), as the
/// test crypto provider (ring) signs with RSA keys but does not make them.
/// A test key only.
const RSA_LEAF_KEY: &str = include_str!("test-rsa-leaf-key.pem");
const RSA_LEAF_KEY_PKCS1: &[u8] = include_bytes!("test-rsa-leaf-key.pkcs1.der");

fn rsa_leaf_key() -> KeyPair {
    KeyPair::from_pkcs8_pem_and_sign_algo(RSA_LEAF_KEY, &rcgen::PKCS_RSA_SHA256).unwrap()
}

fn pki_with_leaf(root_name: &str, leaf_key: KeyPair) -> Pki {
    let root_key = KeyPair::generate().unwrap();
    let root_params = params(root_name, true);
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let intermediate_key = KeyPair::generate().unwrap();
    let intermediate_params = params("Test MDS CA", true);
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &root_issuer)
        .unwrap();
    let intermediate_issuer = Issuer::new(intermediate_params, intermediate_key);
    let leaf = params("mds.test", false)
        .signed_by(&leaf_key, &intermediate_issuer)
        .unwrap();
    Pki {
        root_pem: root.pem(),
        intermediate_der: intermediate.der().to_vec(),
        leaf_der: leaf.der().to_vec(),
        leaf_key,
    }
}

fn payload(next_update: &str) -> serde_json::Value {
    json!({
        "legalHeader": "test",
        "no": 42,
        "nextUpdate": next_update,
        "entries": [
            { "aaguid": YUBIKEY, "metadataStatement": { "description": "YubiKey 5 Series", "aaguid": YUBIKEY } },
            { "attestationCertificateKeyIdentifiers": ["abcd"], "metadataStatement": { "description": "A U2F key" } },
        ],
    })
}

fn blob(pki: &Pki, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(vec![
        STANDARD.encode(&pki.leaf_der),
        STANDARD.encode(&pki.intermediate_der),
    ]);
    let key = EncodingKey::from_ec_der(&pki.leaf_key.serialize_der());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[test]
fn a_blob_signed_by_a_chain_to_the_root_is_read() {
    let pki = pki("Test Root");
    let token = blob(&pki, &payload("2026-07-01"));
    let metadata = load(token.as_bytes(), &pki.root_pem, NOW).unwrap();
    assert_eq!(
        metadata.source,
        MetadataSource::MdsBlob {
            no: 42,
            next_update: time::macros::date!(2026 - 07 - 01),
        }
    );
    let yubikey = Uuid::parse_str(YUBIKEY).unwrap();
    assert_eq!(
        metadata.names.name_of(Some(yubikey)),
        Some("YubiKey 5 Series")
    );
    assert_eq!(
        metadata.names.len(),
        1,
        "entries without an AAGUID are skipped"
    );
}

fn rs256_blob(pki: &Pki, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.x5c = Some(vec![
        STANDARD.encode(&pki.leaf_der),
        STANDARD.encode(&pki.intermediate_der),
    ]);
    let key = EncodingKey::from_rsa_der(RSA_LEAF_KEY_PKCS1);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[test]
fn an_rs256_blob_signed_by_an_rsa_leaf_is_read() {
    let pki = pki_with_leaf("Test Root", rsa_leaf_key());
    let token = rs256_blob(&pki, &payload("2026-07-01"));
    let metadata = load(token.as_bytes(), &pki.root_pem, NOW).unwrap();
    let yubikey = Uuid::parse_str(YUBIKEY).unwrap();
    assert_eq!(
        metadata.names.name_of(Some(yubikey)),
        Some("YubiKey 5 Series")
    );
    // Its signature over other claims is refused.
    let other = rs256_blob(&pki, &payload("2026-08-01"));
    let parts: Vec<&str> = token.split('.').collect();
    let other_claims = other.split('.').nth(1).unwrap();
    let forged = format!("{}.{other_claims}.{}", parts[0], parts[2]);
    assert!(matches!(
        load(forged.as_bytes(), &pki.root_pem, NOW),
        Err(MetadataError::BadSignature(_))
    ));
}

#[test]
fn a_blob_with_a_bad_signature_is_refused() {
    let pki = pki("Test Root");
    let token = blob(&pki, &payload("2026-07-01"));
    // The payload of another BLOB under this BLOB's signature.
    let other = blob(&pki, &payload("2027-07-01"));
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    let forged = parts.join(".");
    let err = load(forged.as_bytes(), &pki.root_pem, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::BadSignature(_)), "{err}");
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
}

#[test]
fn a_blob_signed_by_a_key_other_than_its_leaf_is_refused() {
    let pki = pki("Test Root");
    let stranger = KeyPair::generate().unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(vec![
        STANDARD.encode(&pki.leaf_der),
        STANDARD.encode(&pki.intermediate_der),
    ]);
    let key = EncodingKey::from_ec_der(&stranger.serialize_der());
    let token = jsonwebtoken::encode(&header, &payload("2026-07-01"), &key).unwrap();
    let err = load(token.as_bytes(), &pki.root_pem, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::BadSignature(_)), "{err}");
}

#[test]
fn a_blob_chained_to_another_root_is_refused() {
    let pki = pki("Test Root");
    let token = blob(&pki, &payload("2026-07-01"));
    let other = pki_root_only("Another Root");
    let err = load(token.as_bytes(), &other, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::UntrustedChain(_)), "{err}");
    assert!(
        err.to_string()
            .contains("does not verify to the FIDO Alliance root"),
        "{err}"
    );
    // And the product's own root refuses it too.
    let err = load(token.as_bytes(), FIDO_MDS_ROOT, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::UntrustedChain(_)), "{err}");
}

fn pki_root_only(name: &str) -> String {
    pki(name).root_pem
}

#[test]
fn a_blob_without_a_chain_is_refused() {
    let pki = pki("Test Root");
    let key = EncodingKey::from_ec_der(&pki.leaf_key.serialize_der());
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &payload("2026-07-01"), &key).unwrap();
    let err = load(token.as_bytes(), &pki.root_pem, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::NoChain), "{err}");
}

#[test]
fn a_blob_past_its_next_update_is_refused() {
    let pki = pki("Test Root");
    let token = blob(&pki, &payload("2026-05-31"));
    let err = load(token.as_bytes(), &pki.root_pem, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::Expired { .. }), "{err}");
    assert!(
        err.to_string().contains("nextUpdate is 2026-05-31"),
        "{err}"
    );
    // On its nextUpdate day it is still current.
    let token = blob(&pki, &payload("2026-06-01"));
    assert!(load(token.as_bytes(), &pki.root_pem, NOW).is_ok());
}

#[test]
fn a_blob_outside_its_certificates_validity_is_refused() {
    let pki = pki("Test Root");
    let token = blob(&pki, &payload("2031-07-01"));
    let err = load(
        token.as_bytes(),
        &pki.root_pem,
        datetime!(2031-01-01 0:00 UTC),
    )
    .unwrap_err();
    assert!(matches!(err, MetadataError::UntrustedChain(_)), "{err}");
}

#[test]
fn the_shipped_root_is_the_fido_alliance_root() {
    let der = pem_der(FIDO_MDS_ROOT).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "OU=GlobalSign Root CA - R3, O=GlobalSign, CN=GlobalSign"
    );
    assert_eq!(cert.subject(), cert.issuer());
}

#[test]
fn a_name_list_is_read() {
    let list = json!({
        "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": { "name": "Google Password Manager", "icon_dark": "data:..." },
        "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": { "name": "iCloud Keychain" },
    })
    .to_string();
    let metadata = load(list.as_bytes(), FIDO_MDS_ROOT, NOW).unwrap();
    assert_eq!(metadata.source, MetadataSource::NameList);
    let icloud = Uuid::parse_str("fbfc3007-154e-4ecc-8c0b-6e020557d7bd").unwrap();
    assert_eq!(
        metadata.names.name_of(Some(icloud)),
        Some("iCloud Keychain")
    );
    assert_eq!(metadata.names.name_of(Some(Uuid::nil())), None);
    assert_eq!(metadata.names.name_of(None), None);
}

#[test]
fn a_malformed_file_is_refused() {
    let err = load(br#"{"not-a-uuid": {"name": "x"}}"#, FIDO_MDS_ROOT, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::BadList(_)), "{err}");
    let err = load(
        br#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "x"}"#,
        FIDO_MDS_ROOT,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, MetadataError::BadList(_)), "{err}");
    let err = load(b"hello world", FIDO_MDS_ROOT, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::UnknownFormat), "{err}");
}

#[test]
fn a_blob_gives_each_aaguids_attestation_roots_and_compromise() {
    let pki = pki("Test Root");
    let root_der = pem_der(&pki.root_pem).unwrap();
    let revoked = "ee882879-721c-4913-9775-3dfcce97072a";
    let claims = json!({
        "no": 43,
        "nextUpdate": "2026-07-01",
        "entries": [
            {
                "aaguid": YUBIKEY,
                "metadataStatement": {
                    "description": "YubiKey 5 Series",
                    "attestationRootCertificates": [STANDARD.encode(&root_der)],
                },
                "statusReports": [
                    { "status": "FIDO_CERTIFIED_L1", "effectiveDate": "2020-05-12" },
                    { "status": "UPDATE_AVAILABLE", "effectiveDate": "2021-01-01" },
                ],
            },
            {
                "aaguid": revoked,
                "metadataStatement": { "description": "A revoked key" },
                "statusReports": [
                    { "status": "FIDO_CERTIFIED" },
                    { "status": "ATTESTATION_KEY_COMPROMISE", "effectiveDate": "2024-01-01" },
                    // A later report does not take a compromise back.
                    { "status": "UPDATE_AVAILABLE" },
                ],
            },
        ],
    });
    let token = blob(&pki, &claims);
    let trust = load(token.as_bytes(), &pki.root_pem, NOW)
        .unwrap()
        .trust
        .unwrap();
    let yubikey = &trust.authenticators[&Uuid::parse_str(YUBIKEY).unwrap()];
    assert_eq!(yubikey.roots, vec![root_der]);
    assert_eq!(yubikey.compromised, None);
    let revoked = Uuid::parse_str(revoked).unwrap();
    assert_eq!(
        trust.compromised(revoked),
        Some("ATTESTATION_KEY_COMPROMISE")
    );
    assert!(trust.authenticators[&revoked].roots.is_empty());
    assert_eq!(trust.compromised_count(), 1);

    // A name list says nothing about attestation.
    let list = json!({ YUBIKEY: { "name": "YubiKey" } }).to_string();
    assert!(
        load(list.as_bytes(), FIDO_MDS_ROOT, NOW)
            .unwrap()
            .trust
            .is_none()
    );
}

#[test]
fn a_blob_with_a_root_that_is_not_base64_is_refused() {
    let pki = pki("Test Root");
    let claims = json!({
        "no": 44,
        "nextUpdate": "2026-07-01",
        "entries": [{
            "aaguid": YUBIKEY,
            "metadataStatement": { "attestationRootCertificates": ["not base64!"] },
        }],
    });
    let token = blob(&pki, &claims);
    let err = load(token.as_bytes(), &pki.root_pem, NOW).unwrap_err();
    assert!(matches!(err, MetadataError::BadPayload(_)), "{err}");
}
