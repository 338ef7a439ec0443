//! `bench webauthn`: how fast the built-in relying party verifies a passkey
//! assertion, next to the raw P-256 ECDSA verify of the library it uses
//! (OpenSSL) and of other libraries, each measured on one thread in the same
//! run.
//!
//! - (a) **full**: `WebauthnRp::finish_authentication` (the `builtin`
//!   possession mode's call, webauthn-rs-core 0.5 on the system OpenSSL) over
//!   a pool of prepared ceremonies: one passkey registered with a software
//!   authenticator that verifies its user, then per ceremony
//!   `start_authentication` and the authenticator's assertion. Each call is
//!   independent (the ceremony's state is given every time), so the pool is
//!   cycled.
//! - (b) **OpenSSL**, the P-256 ECDSA verify webauthn-rs-core 0.5 calls: parse
//!   the public key and the DER signature, hash the message with SHA-256,
//!   verify.
//! - (c) **aws-lc-rs** (when built with `--features aws-lc`), (d) **ring** and
//!   (e) **RustCrypto p256 0.14** (what webauthn-rs-core 0.6 verifies with):
//!   the same steps on the same key, message and signature.
//! - (f) **decoding only**: the part of (a) that turns the ceremony's state
//!   and the response JSON into webauthn-rs-core's types, no crypto.
//! - (h) **OpenSSL, key as upstream makes it**: (b), with the public key
//!   built from its affine coordinates and validated (`EC_KEY_check_key`)
//!   on every call, as the crates.io release of webauthn-rs-core 0.5 does
//!   with a COSE key (the product's copy is patched: `vendor/README.md`).
//! - (g) **full, webauthn-rs-core 0.6**: (a)'s decoding and
//!   `authenticate_credential` on the 0.6 line (pure Rust), configured alike.
//!
//! Cases run in alternating rounds (a, b, c, …, a, b, …), so drift on a busy
//! machine hits all of them. The report gives (a) as a share of (b) and (c):
//! how close the whole verification comes to the raw signature check.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crypto_glue::ecdsa_p256::{
    self, EcdsaP256Signature, EcdsaP256SigningKey, EcdsaP256VerifyingKey,
};
use crypto_glue::traits::{Signer, Verifier};
use domain::possession::{PasskeyUser, StoredPasskey};
use relying_party::{Attestation, Settings, WebauthnRp};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_core::proto::{AuthenticationState, PublicKeyCredential};
use webauthn_rs_core_06 as previous;

use crate::load::{assertion_response, registration_response};

pub(crate) const ORIGIN: &str = "https://bank.example";

/// How long and how much to measure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Per case and round.
    pub(crate) duration: Duration,
    pub(crate) rounds: u32,
    /// Prepared ceremonies for the full verification.
    pub(crate) pool: usize,
}

/// One assertion the relying party is asked to verify.
struct Ceremony {
    state: Vec<u8>,
    response: Value,
}

pub(crate) fn relying_party() -> anyhow::Result<WebauthnRp> {
    Ok(WebauthnRp::new(&Settings {
        rp_id: "bank.example".into(),
        rp_name: "Example Bank".into(),
        origins: vec![Url::parse(ORIGIN)?],
        user_verification: true,
        attestation: Attestation::None,
        timeout: Duration::from_secs(120),
    })?)
}

/// Registers one passkey, then prepares `count` assertions of it.
fn ceremonies(rp: &WebauthnRp, count: usize) -> anyhow::Result<Vec<Ceremony>> {
    let origin = Url::parse(ORIGIN)?;
    // An authenticator that verifies its user, as a phone's biometric unlock does.
    let mut phone = SoftPasskey::new(true);
    let user = PasskeyUser {
        handle: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001),
        name: "customer-1",
        display_name: "customer-1",
    };
    let start = rp.start_registration(user, &[])?;
    let response = registration_response(&mut phone, &origin, &start.options)?;
    let registered = rp.verify_registration(&start.state, &response)?;
    let passkey = [StoredPasskey {
        webauthn_id: registered.webauthn_id,
        data: registered.data,
    }];
    let mut pool = Vec::with_capacity(count);
    for _ in 0..count {
        let start = rp.start_authentication(&passkey)?;
        let response = assertion_response(&mut phone, &origin, &start.options)?;
        pool.push(Ceremony {
            state: start.state,
            response,
        });
    }
    Ok(pool)
}

/// The same ceremonies on webauthn-rs-core 0.6 (the previous line, pure
/// Rust), configured as the relying party configures 0.5: no attestation,
/// user verification required, counters and backup upgrades left to the
/// caller.
struct PreviousLine {
    core: previous::WebauthnCore,
    pool: Vec<Ceremony>,
    /// The passkey as the 0.6 line stores it, and the authenticator holding it.
    stored: StoredPasskey,
    phone: SoftPasskey,
}

impl PreviousLine {
    fn prepare(count: usize) -> anyhow::Result<Self> {
        use previous::proto::{
            AttestationConveyancePreference, COSEAlgorithm, UserVerificationPolicy,
        };
        let origin = Url::parse(ORIGIN)?;
        let core = previous::WebauthnCore::new_unsafe_experts_only(
            "Example Bank",
            "bank.example",
            vec![origin.clone()],
            Duration::from_secs(120),
            Some(false),
            Some(false),
        );
        let mut phone = SoftPasskey::new(true);
        let builder = core
            .new_challenge_register_builder(&[1; 16], "customer-1", "customer-1")
            .map_err(|e| anyhow::anyhow!("0.6 registration options: {e:?}"))?
            .attestation(AttestationConveyancePreference::None)
            .credential_algorithms(COSEAlgorithm::secure_algs())
            .user_verification_policy(UserVerificationPolicy::Required)
            .reject_synchronised_authenticators(false);
        let (options, state) = core
            .generate_challenge_register(builder)
            .map_err(|e| anyhow::anyhow!("0.6 registration options: {e:?}"))?;
        let response = phone
            .do_registration(origin.clone(), options)
            .map_err(|e| anyhow::anyhow!("software authenticator: {e:?}"))?;
        let credential = core
            .register_credential(&response, &state, None)
            .map_err(|e| anyhow::anyhow!("0.6 registration: {e:?}"))?;
        let mut pool = Vec::with_capacity(count);
        for _ in 0..count {
            let builder = core
                .new_challenge_authenticate_builder(
                    vec![credential.clone()],
                    Some(UserVerificationPolicy::Required),
                )
                .map_err(|e| anyhow::anyhow!("0.6 assertion options: {e:?}"))?
                .allow_backup_eligible_upgrade(true);
            let (options, state) = core
                .generate_challenge_authenticate(builder)
                .map_err(|e| anyhow::anyhow!("0.6 assertion options: {e:?}"))?;
            let response = phone
                .do_authentication(origin.clone(), options)
                .map_err(|e| anyhow::anyhow!("software authenticator: {e:?}"))?;
            pool.push(Ceremony {
                state: serde_json::to_vec(&state)?,
                response: serde_json::to_value(response)?,
            });
        }
        let stored = StoredPasskey {
            webauthn_id: URL_SAFE_NO_PAD.encode(&credential.cred_id),
            data: serde_json::to_value(&credential)?,
        };
        Ok(Self {
            core,
            pool,
            stored,
            phone,
        })
    }

    /// A passkey the 0.6 line registered and stored is verified by the
    /// relying party (0.5): stored passkeys carry over between the lines.
    fn carries_over(&mut self, rp: &WebauthnRp) -> anyhow::Result<()> {
        let stored = [self.stored.clone()];
        let start = rp.start_authentication(&stored)?;
        let response = assertion_response(&mut self.phone, &Url::parse(ORIGIN)?, &start.options)?;
        let verified = rp
            .verify_authentication(&start.state, &response)
            .context("a passkey stored by webauthn-rs-core 0.6 does not verify on 0.5")?;
        if verified.webauthn_id != self.stored.webauthn_id {
            bail!("a passkey stored by webauthn-rs-core 0.6 verified as another");
        }
        Ok(())
    }

    /// Decodes the state and the response, then verifies, as (a) does.
    fn verify(&self, ceremony: &Ceremony) -> bool {
        let Ok(state) =
            serde_json::from_slice::<previous::proto::AuthenticationState>(&ceremony.state)
        else {
            return false;
        };
        let Ok(response) = previous::proto::PublicKeyCredential::deserialize(&ceremony.response)
        else {
            return false;
        };
        self.core
            .authenticate_credential(&response, &state)
            .is_ok_and(|result| result.user_verified())
    }
}

/// One P-256 key, a message and its DER signature, shared by the raw cases.
struct Signed {
    /// SEC1, uncompressed (as a COSE key's x and y).
    public_key: Vec<u8>,
    /// A SHA-256 digest: 32 bytes, hashed again by every verifier.
    message: [u8; 32],
    signature: Vec<u8>,
}

fn signed() -> Signed {
    let signing = EcdsaP256SigningKey::from(&ecdsa_p256::new_key());
    let message: [u8; 32] = Sha256::digest(b"authenticatorData || SHA-256(clientDataJSON)").into();
    let signature: EcdsaP256Signature = signing.sign(&message);
    Signed {
        public_key: signing
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec(),
        message,
        signature: signature.to_der().as_bytes().to_vec(),
    }
}

fn rustcrypto_verify(s: &Signed) -> bool {
    let Ok(key) = EcdsaP256VerifyingKey::from_sec1_bytes(&s.public_key) else {
        return false;
    };
    let Ok(signature) = EcdsaP256Signature::from_der(&s.signature) else {
        return false;
    };
    key.verify(&s.message, &signature).is_ok()
}

fn ring_verify(s: &Signed) -> bool {
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &s.public_key)
        .verify(&s.message, &s.signature)
        .is_ok()
}

fn openssl_verify(s: &Signed) -> bool {
    use openssl::bn::BigNumContext;
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    let verify = || -> Result<bool, openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let mut context = BigNumContext::new()?;
        let point = EcPoint::from_bytes(&group, &s.public_key, &mut context)?;
        let key = PKey::from_ec_key(EcKey::from_public_key(&group, &point)?)?;
        // The DER signature is parsed by the verify, as webauthn-rs-core has it.
        let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &key)?;
        verifier.verify_oneshot(&s.signature, &s.message)
    };
    verify().unwrap_or(false)
}

/// (b) with the key made as the crates.io release of webauthn-rs-core 0.5
/// makes it from a COSE key: from its affine coordinates, then validated with
/// `EC_KEY_check_key` (the product's copy is patched: `vendor/README.md`).
fn openssl_checked_key_verify(s: &Signed) -> bool {
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    let verify = || -> Result<bool, openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        // SEC1 uncompressed: 0x04 ‖ x ‖ y.
        let x = BigNum::from_slice(&s.public_key[1..33])?;
        let y = BigNum::from_slice(&s.public_key[33..65])?;
        let key = EcKey::from_public_key_affine_coordinates(&group, &x, &y)?;
        key.check_key()?;
        let key = PKey::from_ec_key(key)?;
        let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &key)?;
        verifier.verify_oneshot(&s.signature, &s.message)
    };
    verify().unwrap_or(false)
}

/// What `finish_authentication` decodes before the library checks anything.
fn decode(ceremony: &Ceremony) -> bool {
    let state: Result<AuthenticationState, _> = serde_json::from_slice(&ceremony.state);
    // Read in place, as the relying party does.
    let response = PublicKeyCredential::deserialize(&ceremony.response);
    state.is_ok() && response.is_ok()
}

#[cfg(feature = "aws-lc")]
fn aws_lc_verify(s: &Signed) -> bool {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &s.public_key)
        .verify(&s.message, &s.signature)
        .is_ok()
}

/// A measured case: its label and an operation that reports success.
struct Case<'a> {
    id: &'static str,
    name: &'static str,
    op: Box<dyn FnMut() -> bool + 'a>,
    rounds: Vec<(u64, Duration)>,
}

impl Case<'_> {
    fn ops(&self) -> u64 {
        self.rounds.iter().map(|r| r.0).sum()
    }

    fn elapsed(&self) -> Duration {
        self.rounds.iter().map(|r| r.1).sum()
    }

    fn rate(&self) -> f64 {
        self.ops() as f64 / self.elapsed().as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Runs `op` back to back for `duration`; every call must succeed.
fn measure(op: &mut dyn FnMut() -> bool, duration: Duration) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut ops = 0u64;
    loop {
        for _ in 0..8 {
            if !std::hint::black_box(op()) {
                bail!("a verification failed");
            }
        }
        ops += 8;
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return Ok((ops, elapsed));
        }
    }
}

/// Measures every case and returns the report as markdown and JSON.
pub(crate) fn run(options: Options) -> anyhow::Result<(String, Value)> {
    let rp = relying_party()?;
    let prepared = Instant::now();
    let pool = ceremonies(&rp, options.pool.max(1))?;
    eprintln!(
        "webauthn: {} ceremonies prepared in {:.1} s",
        pool.len(),
        prepared.elapsed().as_secs_f64()
    );
    let first = pool.first().context("no ceremony was prepared")?;
    let verified = rp.verify_authentication(&first.state, &first.response)?;
    if !verified.user_verified {
        bail!("the prepared assertions do not carry user verification");
    }
    let signed = signed();
    let mut previous_line = PreviousLine::prepare(options.pool.max(1))?;
    previous_line.carries_over(&rp)?;
    let mut next = 0usize;
    let mut next_decoded = 0usize;
    let mut next_previous = 0usize;
    let mut cases = vec![
        Case {
            id: "a",
            name: "full verification: `WebauthnRp::finish_authentication` (webauthn-rs-core 0.5, OpenSSL)",
            op: Box::new(|| {
                let ceremony = &pool[next % pool.len()];
                next = next.wrapping_add(1);
                rp.verify_authentication(&ceremony.state, &ceremony.response)
                    .is_ok()
            }),
            rounds: Vec::new(),
        },
        Case {
            id: "b",
            name: "P-256 ECDSA verify, OpenSSL (the system libssl; webauthn-rs-core 0.5's backend)",
            op: Box::new(|| openssl_verify(&signed)),
            rounds: Vec::new(),
        },
        Case {
            id: "h",
            name: "(b) with the key made from its coordinates and checked (`EC_KEY_check_key`), as unpatched webauthn-rs-core 0.5 makes it",
            op: Box::new(|| openssl_checked_key_verify(&signed)),
            rounds: Vec::new(),
        },
        #[cfg(feature = "aws-lc")]
        Case {
            id: "c",
            name: "P-256 ECDSA verify, aws-lc-rs 1 (AWS-LC)",
            op: Box::new(|| aws_lc_verify(&signed)),
            rounds: Vec::new(),
        },
        Case {
            id: "d",
            name: "P-256 ECDSA verify, ring 0.17",
            op: Box::new(|| ring_verify(&signed)),
            rounds: Vec::new(),
        },
        Case {
            id: "e",
            name: "P-256 ECDSA verify, RustCrypto p256 0.14 (webauthn-rs-core 0.6's backend)",
            op: Box::new(|| rustcrypto_verify(&signed)),
            rounds: Vec::new(),
        },
        Case {
            id: "f",
            name: "decoding only: (a)'s state and response JSON into webauthn-rs-core's types",
            op: Box::new(|| {
                let ceremony = &pool[next_decoded % pool.len()];
                next_decoded = next_decoded.wrapping_add(1);
                decode(ceremony)
            }),
            rounds: Vec::new(),
        },
        Case {
            id: "g",
            name: "full verification on webauthn-rs-core 0.6 (RustCrypto), configured alike",
            op: Box::new(|| {
                let ceremony = &previous_line.pool[next_previous % previous_line.pool.len()];
                next_previous = next_previous.wrapping_add(1);
                previous_line.verify(ceremony)
            }),
            rounds: Vec::new(),
        },
    ];
    // Warm up every case (caches, clock frequency), then alternate rounds.
    let warm_up = (options.duration / 10).min(Duration::from_millis(500));
    for case in &mut cases {
        measure(case.op.as_mut(), warm_up).with_context(|| format!("case ({})", case.id))?;
    }
    for _ in 0..options.rounds.max(1) {
        for case in &mut cases {
            let round = measure(case.op.as_mut(), options.duration)
                .with_context(|| format!("case ({})", case.id))?;
            case.rounds.push(round);
        }
    }
    Ok(report(&cases, options, pool.len()))
}

fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn report(cases: &[Case<'_>], options: Options, pool: usize) -> (String, Value) {
    let rate_of = |id: &str| {
        cases
            .iter()
            .find(|c| c.id == id)
            .map(Case::rate)
            .unwrap_or(f64::NAN)
    };
    let full = rate_of("a");
    let raw = rate_of("b");
    let mut md = format!(
        "WebAuthn assertion verification, one thread: {} round(s) of {:.1} s per case, {} prepared ceremonies\n\n\
         | case | ops/s | µs/op | ratio to (b) | ops/s per round |\n|---|---:|---:|---:|---|\n",
        options.rounds.max(1),
        options.duration.as_secs_f64(),
        pool
    );
    let mut rows = Vec::new();
    for case in cases {
        if case.id == "d" && !cfg!(feature = "aws-lc") {
            md.push_str(
                "| (c) P-256 ECDSA verify, aws-lc-rs | not built (`--features aws-lc`) | | | |\n",
            );
        }
        let rate = case.rate();
        let per_round: Vec<f64> = case
            .rounds
            .iter()
            .map(|(ops, t)| *ops as f64 / t.as_secs_f64().max(f64::MIN_POSITIVE))
            .collect();
        md.push_str(&format!(
            "| ({}) {} | {} | {:.1} | {:.2} | {} |\n",
            case.id,
            case.name,
            grouped(rate),
            1e6 / rate,
            rate / raw,
            per_round
                .iter()
                .map(|r| grouped(*r))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        rows.push(json!({
            "case": case.id,
            "name": case.name,
            "ops": case.ops(),
            "seconds": case.elapsed().as_secs_f64(),
            "ops_per_second": rate,
            "micros_per_op": 1e6 / rate,
            "ratio_to_b": rate / raw,
            "ops_per_second_per_round": per_round,
        }));
    }
    // The relying party's rate as a share of the raw verify rates (target ≥ 0.8).
    let of_openssl = full / raw;
    let of_aws_lc = full / rate_of("c");
    let decoding = full / rate_of("f");
    let over_previous = full / rate_of("g");
    let of_checked = full / rate_of("h");
    md.push_str(&format!(
        "\nFull verification (a) at {of_openssl:.2} of OpenSSL's raw P-256 verify rate (b){}, \
         {of_checked:.2} of (h) (the verify with the key made and checked as unpatched webauthn-rs-core 0.5 does); \
         {over_previous:.2} times the 0.6 line's (g). Decoding (f) is {:.1} % of (a)'s time.\n",
        if of_aws_lc.is_nan() {
            String::new()
        } else {
            format!(" and {of_aws_lc:.2} of aws-lc's (c)")
        },
        decoding * 100.0
    ));
    let json = json!({
        "seconds_per_round": options.duration.as_secs_f64(),
        "rounds": options.rounds.max(1),
        "ceremonies": pool,
        "cases": rows,
        "full_to_openssl": of_openssl,
        "full_to_aws_lc": if of_aws_lc.is_nan() { Value::Null } else { json!(of_aws_lc) },
        "full_to_previous_line": over_previous,
        "full_to_openssl_checked_key": of_checked,
        "decoding_share_of_full": decoding,
    });
    (md, json)
}

/// `bench webauthn`: measures, prints the table, and writes JSON if asked.
#[allow(clippy::print_stdout)] // The report is the command's output.
pub(crate) fn main(options: Options, json: Option<&Path>) -> anyhow::Result<()> {
    let (md, value) = run(options)?;
    print!("{md}");
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&value)?)?;
    }
    Ok(())
}
