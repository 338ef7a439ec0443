//! Authenticator metadata: which kind of authenticator an AAGUID names.
//!
//! The operator supplies one file (`BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE`),
//! told apart by its content:
//!
//! - the FIDO Alliance Metadata Service BLOB, a JWT (`ES256` or `RS256`)
//!   whose `x5c` chain must verify to the FIDO Alliance's root certificate
//!   ([`FIDO_MDS_ROOT`], shipped with the product) and whose `nextUpdate` must
//!   not have passed; its signature is checked with the chain's leaf key;
//! - a JSON object mapping AAGUIDs to names, in the community
//!   passkey-aaguids format: `{"<aaguid>": {"name": "iCloud Keychain"}}`.
//!
//! A BLOB also says, per AAGUID, which root certificates its attestations
//! chain to and whether the authenticator is reported compromised
//! ([`TrustedMetadata`]): what `builtin` mode with attestation required
//! trusts. A name list says neither.
//!
//! Nothing is downloaded: the file is read and verified once, at start. The
//! chain is verified by rustls-webpki (path building, signatures, validity
//! periods, basic constraints); the JWT by jsonwebtoken; the leaf's public key
//! is read from the certificate by x509-parser.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::credential::AuthenticatorNames;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::Deserialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// The FIDO Alliance Metadata Service's root certificate, "GlobalSign Root CA -
/// R3" (SHA-256 fingerprint `CB:B5:22:D7:…:C9:63:C5:3B`), which every BLOB's
/// chain must end at.
pub const FIDO_MDS_ROOT: &str = include_str!("metadata/fido-mds-root.pem");

/// What a metadata file was, and what it says.
#[derive(Debug, Clone)]
pub struct AuthenticatorMetadata {
    pub source: MetadataSource,
    /// The AAGUIDs it names, each with its authenticator's description.
    pub names: AuthenticatorNames,
    /// What a BLOB says about each AAGUID's attestation; `None` for a name list.
    pub trust: Option<TrustedMetadata>,
}

/// The statuses of a BLOB's status reports that say an authenticator model
/// can no longer be trusted: its attestation or user keys can be extracted
/// or forged, it can be made to skip user verification, or the FIDO Alliance
/// revoked it.
pub const COMPROMISED_STATUSES: [&str; 5] = [
    "REVOKED",
    "USER_VERIFICATION_BYPASS",
    "ATTESTATION_KEY_COMPROMISE",
    "USER_KEY_REMOTE_COMPROMISE",
    "USER_KEY_PHYSICAL_COMPROMISE",
];

/// A verified BLOB's attestation facts, per AAGUID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedMetadata {
    pub authenticators: BTreeMap<Uuid, TrustedAuthenticator>,
}

/// One authenticator model as a verified BLOB describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedAuthenticator {
    /// Its metadata statement's `attestationRootCertificates` (DER).
    pub roots: Vec<Vec<u8>>,
    /// The first of its status reports whose status is one of
    /// [`COMPROMISED_STATUSES`], whatever the reports that follow it say.
    pub compromised: Option<String>,
}

impl TrustedMetadata {
    /// The compromise status the BLOB reports for `aaguid`, if any.
    pub fn compromised(&self, aaguid: Uuid) -> Option<&str> {
        self.authenticators.get(&aaguid)?.compromised.as_deref()
    }

    /// The AAGUIDs reported compromised.
    pub fn compromised_count(&self) -> usize {
        self.authenticators
            .values()
            .filter(|a| a.compromised.is_some())
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataSource {
    /// A verified FIDO Metadata Service BLOB: its serial number and the date
    /// by which a newer one is published.
    MdsBlob { no: u64, next_update: Date },
    /// A plain AAGUID-to-name list.
    NameList,
}

/// Why a metadata file is refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(
        "is neither a FIDO Metadata Service BLOB (a JWT) nor a JSON object of AAGUIDs to names"
    )]
    UnknownFormat,
    #[error("is not a valid AAGUID-to-name list: {0}")]
    BadList(String),
    #[error("the BLOB's header is not readable: {0}")]
    BadHeader(String),
    #[error("the BLOB is signed with {0:?}; only ES256 and RS256 are accepted")]
    UnsupportedAlgorithm(Algorithm),
    #[error("the BLOB's header carries no x5c certificate chain")]
    NoChain,
    #[error("certificate {index} of the BLOB's x5c chain is not a DER certificate")]
    BadCertificate { index: usize },
    #[error("the trusted root certificate is not a PEM certificate")]
    BadRoot,
    #[error(
        "the BLOB's certificate chain does not verify to the FIDO Alliance root certificate ({0})"
    )]
    UntrustedChain(String),
    #[error("the BLOB's signature does not verify with its certificate's key ({0})")]
    BadSignature(String),
    #[error("the BLOB's payload is not readable: {0}")]
    BadPayload(String),
    #[error(
        "the BLOB is out of date: its nextUpdate is {next_update} and today is {today}; download the current BLOB from the FIDO Metadata Service"
    )]
    Expired { next_update: Date, today: Date },
}

/// Reads a metadata file's contents: a BLOB verified to `root` (a PEM
/// certificate; the product passes [`FIDO_MDS_ROOT`]) at `now`, or a name list.
pub fn load(
    contents: &[u8],
    root: &str,
    now: OffsetDateTime,
) -> Result<AuthenticatorMetadata, MetadataError> {
    let text = std::str::from_utf8(contents).map_err(|_| MetadataError::UnknownFormat)?;
    let text = text.trim();
    if text.starts_with('{') {
        return name_list(text);
    }
    if text.split('.').count() == 3 && !text.contains(char::is_whitespace) {
        return mds_blob(text, root, now);
    }
    Err(MetadataError::UnknownFormat)
}

#[derive(Deserialize)]
struct ListEntry {
    name: String,
}

fn name_list(text: &str) -> Result<AuthenticatorMetadata, MetadataError> {
    let raw: HashMap<String, ListEntry> =
        serde_json::from_str(text).map_err(|e| MetadataError::BadList(e.to_string()))?;
    let mut names = HashMap::with_capacity(raw.len());
    for (key, entry) in raw {
        let aaguid = Uuid::parse_str(&key)
            .map_err(|_| MetadataError::BadList(format!("{key:?} is not an AAGUID")))?;
        let name = entry.name.trim();
        if !name.is_empty() {
            names.insert(aaguid, name.to_owned());
        }
    }
    Ok(AuthenticatorMetadata {
        source: MetadataSource::NameList,
        names: AuthenticatorNames::new(names),
        trust: None,
    })
}

/// The parts of an MDS3 payload read here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    no: u64,
    next_update: String,
    #[serde(default)]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// Absent for U2F and UAF authenticators (they have no AAGUID).
    aaguid: Option<Uuid>,
    metadata_statement: Option<Statement>,
    #[serde(default)]
    status_reports: Vec<StatusReport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    description: Option<String>,
    /// Base64 (standard, padded) DER certificates.
    #[serde(default)]
    attestation_root_certificates: Vec<String>,
}

#[derive(Deserialize)]
struct StatusReport {
    status: String,
}

fn mds_blob(
    token: &str,
    root: &str,
    now: OffsetDateTime,
) -> Result<AuthenticatorMetadata, MetadataError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| MetadataError::BadHeader(e.to_string()))?;
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
        return Err(MetadataError::UnsupportedAlgorithm(header.alg));
    }
    let chain: Vec<Vec<u8>> = header
        .x5c
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, c)| {
            STANDARD
                .decode(c)
                .map_err(|_| MetadataError::BadCertificate { index })
        })
        .collect::<Result<_, _>>()?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(MetadataError::NoChain);
    };
    verify_chain(leaf, intermediates, root, now)?;
    let key = leaf_key(leaf, header.alg)?;

    let mut validation = Validation::new(header.alg);
    // The BLOB carries no JWT time claims; its freshness is `nextUpdate`.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let payload = jsonwebtoken::decode::<Payload>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) => MetadataError::BadPayload(e.to_string()),
            _ => MetadataError::BadSignature(e.to_string()),
        })?
        .claims;

    let next_update = Date::parse(
        &payload.next_update,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| {
        MetadataError::BadPayload(format!(
            "nextUpdate {:?} is not a date (YYYY-MM-DD)",
            payload.next_update
        ))
    })?;
    let today = now.date();
    if next_update < today {
        return Err(MetadataError::Expired { next_update, today });
    }
    let mut names = HashMap::new();
    let mut trust = TrustedMetadata::default();
    for entry in payload.entries {
        // U2F and UAF authenticators carry no AAGUID: nothing here names them.
        let Some(aaguid) = entry.aaguid else {
            continue;
        };
        let compromised = entry
            .status_reports
            .into_iter()
            .map(|report| report.status)
            .find(|status| COMPROMISED_STATUSES.contains(&status.as_str()));
        let (name, roots) = match entry.metadata_statement {
            Some(statement) => (
                statement.description,
                statement
                    .attestation_root_certificates
                    .iter()
                    .map(|c| STANDARD.decode(c.trim()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        MetadataError::BadPayload(format!(
                            "an attestation root certificate of {aaguid} is not base64"
                        ))
                    })?,
            ),
            None => (None, Vec::new()),
        };
        if let Some(name) = name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            names.insert(aaguid, name.to_owned());
        }
        trust
            .authenticators
            .insert(aaguid, TrustedAuthenticator { roots, compromised });
    }
    Ok(AuthenticatorMetadata {
        source: MetadataSource::MdsBlob {
            no: payload.no,
            next_update,
        },
        names: AuthenticatorNames::new(names),
        trust: Some(trust),
    })
}

/// Verifies that `leaf` chains through `intermediates` to `root` at `now`.
fn verify_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    root: &str,
    now: OffsetDateTime,
) -> Result<(), MetadataError> {
    let root_der = pem_der(root).ok_or(MetadataError::BadRoot)?;
    let root_der = CertificateDer::from(root_der);
    let anchor: TrustAnchor<'_> =
        webpki::anchor_from_trusted_cert(&root_der).map_err(|_| MetadataError::BadRoot)?;
    let leaf_der = CertificateDer::from(leaf);
    let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|_| MetadataError::BadCertificate { index: 0 })?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &intermediates,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
            // The MDS signing certificate is a TLS server certificate; its
            // extended key usage, when present, must allow that.
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| MetadataError::UntrustedChain(format!("{e:?}")))?;
    Ok(())
}

/// The leaf certificate's public key, in the form jsonwebtoken takes for `alg`.
fn leaf_key(leaf: &[u8], alg: Algorithm) -> Result<DecodingKey, MetadataError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| MetadataError::BadCertificate { index: 0 })?;
    // Both forms are the SubjectPublicKeyInfo's bit string: a SEC1 point for
    // EC keys, a PKCS#1 RSAPublicKey for RSA keys.
    let bits = cert.public_key().subject_public_key.data.as_ref();
    Ok(match alg {
        Algorithm::ES256 => DecodingKey::from_ec_der(bits),
        _ => DecodingKey::from_rsa_der(bits),
    })
}

/// The DER bytes of the first PEM certificate in `pem`.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let end = start + pem[start..].find(END)?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests;
