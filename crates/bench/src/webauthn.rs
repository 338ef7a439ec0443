//! `bench webauthn`: how fast the built-in relying party verifies a passkey
//! assertion, next to the raw P-256 ECDSA verify of the backend it uses and of
//! other libraries, each measured on one thread in the same run.
//!
//! - (a) **full**: `WebauthnRp::finish_authentication` (the `builtin`
//!   possession mode's call) over a pool of prepared ceremonies: one passkey
//!   registered with a software authenticator that verifies its user, then
//!   per ceremony `start_authentication` and the authenticator's assertion.
//!   Each call is independent (the ceremony's state is given every time), so
//!   the pool is cycled.
//! - (b) **RustCrypto p256 0.14**, the P-256 ECDSA verify webauthn-rs-core
//!   calls (through crypto-glue): parse the public key and the DER signature,
//!   hash the message with SHA-256, verify.
//! - (c) **ring**, (d) **aws-lc-rs** (when built with `--features aws-lc`) and
//!   (e) **RustCrypto p256 0.13**: the same steps on the same key, message
//!   and signature.
//! - (f) **decoding only**: the part of (a) that turns the ceremony's state
//!   and the response JSON into webauthn-rs-core's types, no crypto.
//!
//! Cases run in alternating rounds (a, b, c, …, a, b, …), so drift on a busy
//! machine hits all of them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
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
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_core::proto::{AuthenticationState, PublicKeyCredential};

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

fn p256_013_verify(s: &Signed) -> bool {
    use p256_013::ecdsa::signature::Verifier as _;
    use p256_013::ecdsa::{Signature, VerifyingKey};
    let Ok(key) = VerifyingKey::from_sec1_bytes(&s.public_key) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&s.signature) else {
        return false;
    };
    key.verify(&s.message, &signature).is_ok()
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
    let mut next = 0usize;
    let mut next_decoded = 0usize;
    let mut cases = vec![
        Case {
            id: "a",
            name: "full verification: `WebauthnRp::finish_authentication` (webauthn-rs-core 0.6.2)",
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
            name: "P-256 ECDSA verify, RustCrypto p256 0.14 (webauthn-rs-core's backend)",
            op: Box::new(|| rustcrypto_verify(&signed)),
            rounds: Vec::new(),
        },
        Case {
            id: "c",
            name: "P-256 ECDSA verify, ring 0.17",
            op: Box::new(|| ring_verify(&signed)),
            rounds: Vec::new(),
        },
        #[cfg(feature = "aws-lc")]
        Case {
            id: "d",
            name: "P-256 ECDSA verify, aws-lc-rs 1 (AWS-LC)",
            op: Box::new(|| aws_lc_verify(&signed)),
            rounds: Vec::new(),
        },
        Case {
            id: "e",
            name: "P-256 ECDSA verify, RustCrypto p256 0.13 (the release before)",
            op: Box::new(|| p256_013_verify(&signed)),
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
    let raw = rate_of("b");
    // The time of one full verification that one raw verify accounts for.
    let share = rate_of("a") / raw;
    let mut md = format!(
        "WebAuthn assertion verification, one thread: {} round(s) of {:.1} s per case, {} prepared ceremonies\n\n\
         | case | ops/s | µs/op | ratio to (b) | ops/s per round |\n|---|---:|---:|---:|---|\n",
        options.rounds.max(1),
        options.duration.as_secs_f64(),
        pool
    );
    let mut rows = Vec::new();
    for case in cases {
        if case.id == "e" && !cfg!(feature = "aws-lc") {
            md.push_str(
                "| (d) P-256 ECDSA verify, aws-lc-rs | not built (`--features aws-lc`) | | | |\n",
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
    let decoding = rate_of("a") / rate_of("f");
    md.push_str(&format!(
        "\nShare of (a)'s time that one (b) verify explains: {:.1} %; decoding (f): {:.1} %\n",
        share * 100.0,
        decoding * 100.0
    ));
    let json = json!({
        "seconds_per_round": options.duration.as_secs_f64(),
        "rounds": options.rounds.max(1),
        "ceremonies": pool,
        "cases": rows,
        "signature_share_of_full": share,
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
