//! The built-in WebAuthn relying party: `builtin` possession mode.
//!
//! [`WebauthnRp`] implements the domain's [`RelyingParty`] port with
//! webauthn-rs (its core crate, for control over the attestation and
//! user-verification policies the configuration chooses). The library checks
//! the ceremony: client data type, challenge, origin (web origins and Android
//! `android:apk-key-hash:` origins, matched exactly), RP ID hash, user
//! presence and verification, the signature with the registered COSE key,
//! and, when attestation is required, the attestation statement and its chain
//! to a root trusted for its AAGUID (the roots file's, for the allowed
//! AAGUIDs; a FIDO Metadata Service BLOB's, for the AAGUID it lists them
//! under). No WebAuthn or COSE crypto is written here. An attested AAGUID
//! that the BLOB reports compromised is then refused.
//!
//! Signature counters and backup eligibility are reported, not judged: the
//! domain applies the configured counter and backup policies in both
//! possession modes. To that end the stored counter given to the library is
//! zero, so it never refuses an assertion on the counter itself.
//!
//! webauthn-rs-core 0.5 verifies signatures with the system OpenSSL.
//! Verifying a response is still CPU work (mostly the ES256 verification; see
//! docs/performance.md for its cost), so the port's
//! `finish_*` calls run it on Tokio's blocking pool: a burst of verifications
//! never holds the async workers that answer every other request.

pub mod cose;
pub mod metadata;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::possession::{
    CeremonyError, CeremonyStart, PasskeyUser, RelyingParty, StoredPasskey, VerifiedAssertion,
    VerifiedRegistration,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;
use uuid::Uuid;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationCaListBuilder, AttestationConveyancePreference,
    AttestationMetadata, AuthenticationState, COSEAlgorithm, CredProtect, Credential, CredentialID,
    CredentialProtectionPolicy, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, RequestRegistrationExtensions, UserVerificationPolicy,
};

/// How the relying party is configured (`BIOMETRIC_PASSKEY_WEBAUTHN_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub rp_id: String,
    pub rp_name: String,
    /// Exact origins allowed in client data: `https://…` web origins and
    /// `android:apk-key-hash:…` app origins.
    pub origins: Vec<Url>,
    /// Require the authenticator to verify the user (biometric or PIN).
    pub user_verification: bool,
    pub attestation: Attestation,
    /// The time the browser or app is given to complete a ceremony (a hint in
    /// the options; the domain enforces the ceremony's own lifetime).
    pub timeout: Duration,
}

/// Which authenticators may register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attestation {
    /// Any authenticator; no attestation is requested.
    None,
    /// Only authenticators whose attestation chains to a root trusted for
    /// their AAGUID:
    ///
    /// - each of `roots` (PEM certificates) is trusted for each of `aaguids`;
    /// - with `metadata`, each AAGUID it lists is trusted with its own
    ///   attestation roots, restricted to `aaguids` when that is not empty.
    ///
    /// An AAGUID `metadata` reports compromised is refused whatever trusts it.
    Required {
        roots: Vec<String>,
        aaguids: Vec<Uuid>,
        metadata: Option<metadata::TrustedMetadata>,
    },
}

/// A configuration the relying party cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("the relying party id is empty")]
    EmptyRpId,
    #[error("no allowed origin is configured")]
    NoOrigins,
    #[error("attestation is required but no root certificate is configured")]
    NoRoots,
    #[error("attestation is required but no AAGUID is allowed")]
    NoAaguids,
    #[error("attestation root certificate {index} is not a PEM certificate")]
    BadRoot { index: usize },
    #[error(
        "AAGUID {0} is allowed but neither the roots file nor the authenticator metadata gives a root certificate for it"
    )]
    NoRootFor(Uuid),
    #[error(
        "an attestation root certificate the authenticator metadata gives for {0} is not a certificate"
    )]
    BadMetadataRoot(Uuid),
}

/// The relying party, built once at start-up and shared (clones share it).
/// Its inherent `verify_*` methods verify on the calling thread; the
/// [`RelyingParty`] port's `finish_*` run them on the blocking pool.
#[derive(Clone)]
pub struct WebauthnRp {
    verifier: Arc<Verifier>,
}

/// The webauthn-rs relying party and the policies it was built with.
struct Verifier {
    rp_id: String,
    core: WebauthnCore,
    user_verification: UserVerificationPolicy,
    trusted: Option<AttestationCaList>,
    /// The BLOB's compromise reports, checked after attestation verifies.
    metadata: Option<metadata::TrustedMetadata>,
}

impl std::fmt::Debug for WebauthnRp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebauthnRp")
            .field("rp_id", &self.verifier.rp_id)
            .field("origins", &self.verifier.core.get_allowed_origins())
            .finish_non_exhaustive()
    }
}

impl WebauthnRp {
    pub fn new(settings: &Settings) -> Result<Self, SettingsError> {
        if settings.rp_id.trim().is_empty() {
            return Err(SettingsError::EmptyRpId);
        }
        if settings.origins.is_empty() {
            return Err(SettingsError::NoOrigins);
        }
        let (trusted, metadata) = match &settings.attestation {
            Attestation::None => (None, None),
            Attestation::Required {
                roots,
                aaguids,
                metadata,
            } => (
                Some(trust_list(roots, aaguids, metadata.as_ref())?),
                metadata.clone(),
            ),
        };
        let core = WebauthnCore::new_unsafe_experts_only(
            &settings.rp_name,
            &settings.rp_id,
            settings.origins.clone(),
            settings.timeout,
            Some(false),
            Some(false),
        );
        let verifier = Verifier {
            rp_id: settings.rp_id.clone(),
            core,
            user_verification: if settings.user_verification {
                UserVerificationPolicy::Required
            } else {
                UserVerificationPolicy::Preferred
            },
            trusted,
            metadata,
        };
        Ok(Self {
            verifier: Arc::new(verifier),
        })
    }

    /// Options to create a passkey for `user`, excluding `exclude`.
    pub fn start_registration(
        &self,
        user: PasskeyUser<'_>,
        exclude: &[String],
    ) -> Result<CeremonyStart, CeremonyError> {
        self.verifier.start_registration(user, exclude)
    }

    /// Verifies a registration response on the calling thread.
    pub fn verify_registration(
        &self,
        state: &[u8],
        response: &Value,
    ) -> Result<VerifiedRegistration, CeremonyError> {
        self.verifier.finish_registration(state, &parse(response)?)
    }

    /// Options to assert one of `allow`.
    pub fn start_authentication(
        &self,
        allow: &[StoredPasskey],
    ) -> Result<CeremonyStart, CeremonyError> {
        self.verifier.start_authentication(allow)
    }

    /// Verifies an assertion response on the calling thread.
    pub fn verify_authentication(
        &self,
        state: &[u8],
        response: &Value,
    ) -> Result<VerifiedAssertion, CeremonyError> {
        self.verifier
            .finish_authentication(state, &parse(response)?)
    }
}

/// Runs `verify` on the blocking pool.
async fn offload<T: Send + 'static>(
    verify: impl FnOnce() -> Result<T, CeremonyError> + Send + 'static,
) -> Result<T, CeremonyError> {
    tokio::task::spawn_blocking(verify)
        .await
        .map_err(|e| CeremonyError::Internal(format!("the verification did not finish: {e}")))?
}

#[async_trait]
impl RelyingParty for WebauthnRp {
    fn start_registration(
        &self,
        user: PasskeyUser<'_>,
        exclude: &[String],
    ) -> Result<CeremonyStart, CeremonyError> {
        self.verifier.start_registration(user, exclude)
    }

    async fn finish_registration(
        &self,
        state: &[u8],
        response: &Value,
    ) -> Result<VerifiedRegistration, CeremonyError> {
        let response: RegisterPublicKeyCredential = parse(response)?;
        let (verifier, state) = (self.verifier.clone(), state.to_vec());
        offload(move || verifier.finish_registration(&state, &response)).await
    }

    fn start_authentication(
        &self,
        allow: &[StoredPasskey],
    ) -> Result<CeremonyStart, CeremonyError> {
        self.verifier.start_authentication(allow)
    }

    async fn finish_authentication(
        &self,
        state: &[u8],
        response: &Value,
    ) -> Result<VerifiedAssertion, CeremonyError> {
        let response: PublicKeyCredential = parse(response)?;
        let (verifier, state) = (self.verifier.clone(), state.to_vec());
        offload(move || verifier.finish_authentication(&state, &response)).await
    }
}

/// The roots trusted per AAGUID: the roots file's for each allowed AAGUID,
/// and the metadata's own for each AAGUID it lists (only the allowed ones,
/// when AAGUIDs are listed).
fn trust_list(
    roots: &[String],
    aaguids: &[Uuid],
    metadata: Option<&metadata::TrustedMetadata>,
) -> Result<AttestationCaList, SettingsError> {
    let mut builder = AttestationCaListBuilder::new();
    let Some(metadata) = metadata else {
        if roots.is_empty() {
            return Err(SettingsError::NoRoots);
        }
        if aaguids.is_empty() {
            return Err(SettingsError::NoAaguids);
        }
        insert_roots(&mut builder, roots, aaguids)?;
        return Ok(builder.build());
    };
    if !roots.is_empty() && aaguids.is_empty() {
        return Err(SettingsError::NoAaguids);
    }
    insert_roots(&mut builder, roots, aaguids)?;
    let mut trusted_any = !roots.is_empty();
    for (aaguid, authenticator) in &metadata.authenticators {
        if !aaguids.is_empty() && !aaguids.contains(aaguid) {
            continue;
        }
        for der in &authenticator.roots {
            builder
                .insert_device_der(der, *aaguid, aaguid.to_string(), Default::default())
                .map_err(|_| SettingsError::BadMetadataRoot(*aaguid))?;
            trusted_any = true;
        }
    }
    if roots.is_empty() {
        for aaguid in aaguids {
            let listed = metadata
                .authenticators
                .get(aaguid)
                .is_some_and(|a| !a.roots.is_empty());
            if !listed {
                return Err(SettingsError::NoRootFor(*aaguid));
            }
        }
    }
    if !trusted_any {
        return Err(SettingsError::NoRoots);
    }
    Ok(builder.build())
}

fn insert_roots(
    builder: &mut AttestationCaListBuilder,
    roots: &[String],
    aaguids: &[Uuid],
) -> Result<(), SettingsError> {
    for (index, pem) in roots.iter().enumerate() {
        for aaguid in aaguids {
            builder
                .insert_device_pem(
                    pem.as_bytes(),
                    *aaguid,
                    aaguid.to_string(),
                    Default::default(),
                )
                .map_err(|_| SettingsError::BadRoot { index })?;
        }
    }
    Ok(())
}

fn encode_id(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

fn decode_id(id: &str) -> Result<CredentialID, CeremonyError> {
    URL_SAFE_NO_PAD
        .decode(id)
        .map(CredentialID::from)
        .map_err(|_| CeremonyError::Internal("a stored credential id is not base64url".into()))
}

/// The library's refusals, by what failed. Nothing of its internals leaves.
fn refusal(error: WebauthnError) -> CeremonyError {
    use WebauthnError as E;
    match error {
        E::InvalidRPOrigin | E::CredentialCrossOrigin => CeremonyError::Origin,
        E::InvalidRPIDHash => CeremonyError::RpId,
        E::MismatchedChallenge | E::ChallengeNotFound => CeremonyError::Challenge,
        E::UserNotVerified | E::InconsistentUserVerificationPolicy => {
            CeremonyError::UserVerification
        }
        E::UserNotPresent => CeremonyError::UserPresence,
        E::AuthenticationFailure => CeremonyError::Signature,
        E::CredentialNotFound | E::CredentialExcludedFromRequest => {
            CeremonyError::CredentialNotAllowed
        }
        E::CredentialBackupEligibilityInconsistent => CeremonyError::BackupEligibilityChanged,
        E::AttestationTrustFailure
        | E::AttestationUntrustedAaguid
        | E::AttestationChainNotTrusted(_)
        | E::AttestationNotVerifiable
        | E::AttestationFormatMissingAaguid
        | E::AttestationCertificateAAGUIDMismatch
        | E::AttestationCertificateTrustStoreEmpty
        | E::AttestationLeafCertMissing
        | E::MissingAttestationCaList
        | E::AttestationNotSupported => {
            CeremonyError::Attestation("the authenticator is not on the allow-list".into())
        }
        E::InvalidClientDataType
        | E::ParseBase64Failure(_)
        | E::ParseCBORFailure(_)
        | E::ParseJSONFailure(_)
        | E::ParseNOMFailure
        | E::ParseInsufficientBytesAvailable
        | E::MissingAttestationCredentialData
        | E::CredentialAlteredAlgFromRequest
        | E::COSEKeyInvalidCBORValue
        | E::COSEKeyInvalidType
        | E::COSEKeyInvalidAlgorithm
        | E::COSEKeyECDSAXYInvalid
        | E::COSEKeyECDSAInvalidCurve
        | E::COSEKeyRSANEInvalid
        | E::COSEKeyEDUnsupported
        | E::COSEKeyEDDSAXInvalid
        | E::COSEKeyEDDSAInvalidCurve
        | E::CredentialInsecureCryptography => {
            CeremonyError::Malformed("the authenticator's response could not be used".into())
        }
        E::AttestationStatementMapInvalid
        | E::AttestationStatementResponseMissing
        | E::AttestationStatementResponseInvalid
        | E::AttestationStatementSigMissing
        | E::AttestationStatementSigInvalid
        | E::AttestationStatementVerMissing
        | E::AttestationStatementVerInvalid
        | E::AttestationStatementVerUnsupported
        | E::AttestationStatementX5CMissing
        | E::AttestationStatementX5CInvalid
        | E::AttestationStatementAlgMissing
        | E::AttestationStatementAlgMismatch
        | E::AttestationStatementAlgInvalid
        | E::AttestationCertificateRequirementsNotMet
        | E::AttestationCredentialSubjectKeyMismatch => {
            CeremonyError::Attestation("the attestation statement does not verify".into())
        }
        _ => CeremonyError::Malformed("the authenticator's response could not be verified".into()),
    }
}

/// The authenticator's response, read in place (no copy of the JSON).
fn parse<T: DeserializeOwned>(response: &Value) -> Result<T, CeremonyError> {
    T::deserialize(response).map_err(|e| CeremonyError::Malformed(e.to_string()))
}

fn internal(what: &str) -> impl Fn(serde_json::Error) -> CeremonyError + '_ {
    move |e| CeremonyError::Internal(format!("{what}: {e}"))
}

/// The options (the `publicKey` member) and the state, as the domain keeps them.
fn ceremony_start(
    options: &impl serde::Serialize,
    state: &impl serde::Serialize,
) -> Result<CeremonyStart, CeremonyError> {
    Ok(CeremonyStart {
        options: serde_json::to_value(options).map_err(internal("options"))?,
        state: serde_json::to_vec(state).map_err(internal("state"))?,
    })
}

/// The AAGUID an attestation vouched for, when it carries one.
fn attested_aaguid(metadata: &AttestationMetadata) -> Option<Uuid> {
    match metadata {
        AttestationMetadata::Packed { aaguid } | AttestationMetadata::Tpm { aaguid, .. } => {
            Some(*aaguid)
        }
        _ => None,
    }
}

impl Verifier {
    fn start_registration(
        &self,
        user: PasskeyUser<'_>,
        exclude: &[String],
    ) -> Result<CeremonyStart, CeremonyError> {
        let exclude = exclude
            .iter()
            .map(|id| decode_id(id))
            .collect::<Result<Vec<_>, _>>()?;
        let attestation = if self.trusted.is_some() {
            AttestationConveyancePreference::Direct
        } else {
            AttestationConveyancePreference::None
        };
        let extensions = RequestRegistrationExtensions {
            // Ask the authenticator to demand user verification for this
            // credential, without failing authenticators that cannot promise it.
            cred_protect: Some(CredProtect {
                credential_protection_policy: CredentialProtectionPolicy::UserVerificationRequired,
                enforce_credential_protection_policy: Some(false),
            }),
            uvm: Some(true),
            cred_props: Some(true),
            min_pin_length: None,
            hmac_create_secret: None,
        };
        let builder = self
            .core
            .new_challenge_register_builder(user.handle.as_bytes(), user.name, user.display_name)
            .map_err(|_| CeremonyError::Internal("the user's names are empty".into()))?
            .attestation(attestation)
            .credential_algorithms(COSEAlgorithm::secure_algs())
            .require_resident_key(false)
            .authenticator_attachment(None)
            .user_verification_policy(self.user_verification)
            // Backup eligibility is the domain's policy, judged on the result.
            .reject_synchronised_authenticators(false)
            .exclude_credentials(Some(exclude))
            .hints(None)
            .extensions(Some(extensions));
        let (options, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(|e| CeremonyError::Internal(e.to_string()))?;
        ceremony_start(&options.public_key, &state)
    }

    fn finish_registration(
        &self,
        state: &[u8],
        response: &RegisterPublicKeyCredential,
    ) -> Result<VerifiedRegistration, CeremonyError> {
        let state: RegistrationState =
            serde_json::from_slice(state).map_err(internal("registration state"))?;
        let credential = self
            .core
            .register_credential(response, &state, self.trusted.as_ref())
            .map_err(refusal)?;
        let aaguid = attested_aaguid(&credential.attestation.metadata);
        if let (Some(metadata), Some(aaguid)) = (&self.metadata, aaguid)
            && let Some(status) = metadata.compromised(aaguid)
        {
            return Err(CeremonyError::AuthenticatorCompromised {
                aaguid,
                status: status.to_owned(),
            });
        }
        let public_key = serde_json::to_vec(&credential.cred).map_err(internal("public key"))?;
        Ok(VerifiedRegistration {
            webauthn_id: encode_id(credential.cred_id.as_ref()),
            public_key,
            aaguid,
            sign_count: credential.counter,
            transports: credential
                .transports
                .iter()
                .flatten()
                .filter_map(|t| serde_json::to_value(t).ok())
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
            user_verified: credential.user_verified,
            attestation_format: serde_json::to_value(&credential.attestation_format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".to_owned()),
            attestation_verified: self.trusted.is_some(),
            data: serde_json::to_value(&credential).map_err(internal("credential"))?,
        })
    }

    fn start_authentication(
        &self,
        allow: &[StoredPasskey],
    ) -> Result<CeremonyStart, CeremonyError> {
        let credentials = allow
            .iter()
            .map(|passkey| {
                let mut credential = Credential::deserialize(&passkey.data)
                    .map_err(internal("stored credential"))?;
                // The domain judges counters (see the module docs).
                credential.counter = 0;
                Ok(credential)
            })
            .collect::<Result<Vec<_>, CeremonyError>>()?;
        let builder = self
            .core
            .new_challenge_authenticate_builder(credentials, Some(self.user_verification))
            .map_err(refusal)?
            .allow_backup_eligible_upgrade(true);
        let (options, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(|e| CeremonyError::Internal(e.to_string()))?;
        ceremony_start(&options.public_key, &state)
    }

    fn finish_authentication(
        &self,
        state: &[u8],
        response: &PublicKeyCredential,
    ) -> Result<VerifiedAssertion, CeremonyError> {
        let state: AuthenticationState =
            serde_json::from_slice(state).map_err(internal("authentication state"))?;
        let result = self
            .core
            .authenticate_credential(response, &state)
            .map_err(refusal)?;
        Ok(VerifiedAssertion {
            webauthn_id: encode_id(result.cred_id().as_ref()),
            sign_count: result.counter(),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            user_verified: result.user_verified(),
        })
    }
}
