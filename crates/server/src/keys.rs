//! `biometric-passkey keys`: new secrets in the formats the configuration
//! takes, from the operating system's random source, so that nobody has to
//! assemble them with shell tools (printed once, as environment lines for a
//! secret store; nothing is written anywhere else); and a data-encryption
//! key rotation's status and re-seal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::rotation::{Resealer, SealedColumn, SealedStore};
use domain::sealing::{DataKey, KeyId};
use indicatif::{ProgressBar, ProgressStyle};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A new data-encryption key and its id: the two lines of the environment
/// that configure it. The id defaults to `key-<UTC date>`, so that the key a
/// value is sealed under tells when it was made.
pub fn data_encryption_key(id: Option<&str>, today: OffsetDateTime) -> Result<String, String> {
    let id = match id {
        Some(raw) => KeyId::parse(raw).map_err(|e| format!("--id: {e}"))?,
        None => KeyId::parse(&format!("key-{}", today.date()))
            .map_err(|e| format!("the default key id: {e}"))?,
    };
    let (_, encoded) = DataKey::generate(id.clone());
    Ok(format!(
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID={}\nBIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY={}\n",
        id.as_str(),
        encoded.as_str()
    ))
}

/// A new Core API key (32 random bytes, unpadded base64url) and, as a
/// comment, the fingerprint audit events will name it by.
pub fn core_api_key() -> Zeroizing<String> {
    let key = Zeroizing::new(URL_SAFE_NO_PAD.encode(domain::ids::random_bytes::<32>()));
    let fingerprint = core_api::auth::KeyId::of_key(&key);
    Zeroizing::new(format!(
        "# fingerprint {fingerprint}: add it to BIOMETRIC_PASSKEY_CORE_API_KEYS (comma-separated)\n{}\n",
        key.as_str()
    ))
}

/// `keys status`: how many values each key id seals, per column, and
/// whether any names a key that is not configured (then `false`: those
/// values cannot be opened, or those seals verified, until it is).
pub fn status_report(
    counts: &[domain::store::SealedValues],
    configured: &[&str],
) -> (String, bool) {
    let mut out = format!("{:<24} {:<40} {:>10}\n", "key id", "column", "values");
    let mut all_configured = true;
    for c in counts {
        let known = configured.contains(&c.key_id.as_str());
        all_configured &= known;
        out.push_str(&format!(
            "{:<24} {:<40} {:>10}{}\n",
            c.key_id,
            c.column,
            c.values,
            if known { "" } else { "  NOT CONFIGURED" }
        ));
    }
    for id in configured {
        let total: u64 = counts
            .iter()
            .filter(|c| c.key_id == *id)
            .map(|c| c.values)
            .sum();
        out.push_str(&format!("{id}: {total} values in all\n"));
    }
    (out, all_configured)
}

/// How many stored values `key` does not seal yet: what a re-seal has to do
/// (the audit seals are counted apart: they are re-keyed as one chain).
pub fn left_to_reseal(counts: &[domain::store::SealedValues], key: &DataKey) -> u64 {
    let columns: Vec<String> = SealedColumn::ALL.iter().map(|c| c.name()).collect();
    counts
        .iter()
        .filter(|c| columns.contains(&c.column) && c.key_id != key.id().as_str())
        .map(|c| c.values)
        .sum()
}

/// The longest run of passes: each pass after the first only picks up values
/// that requests in flight wrote back under an earlier key.
const MAX_PASSES: u32 = 10;
/// The pause between passes, for requests in flight to finish.
const BETWEEN_PASSES: Duration = Duration::from_secs(1);

/// What a whole re-seal did, over all its passes.
#[derive(Debug, Default)]
pub struct Resealed {
    pub resealed: u64,
    pub changed_meanwhile: u64,
    pub passes: u32,
    /// Values the last pass could not open, by reason.
    pub unreadable: BTreeMap<String, u64>,
    /// Whether the last pass found nothing left to re-seal.
    pub settled: bool,
}

/// Re-seals, pass after pass, until a pass finds nothing left that it can
/// re-seal; `progress` hears every batch.
pub async fn reseal(
    store: &dyn SealedStore,
    key: &DataKey,
    batch: u32,
    progress: &mut (dyn FnMut(SealedColumn, u64) + Send),
) -> Result<Resealed, domain::StoreError> {
    let resealer = Resealer::new(store, key, batch);
    let mut total = Resealed::default();
    while total.passes < MAX_PASSES {
        if total.passes > 0 {
            tokio::time::sleep(BETWEEN_PASSES).await;
        }
        let pass = resealer.pass(progress).await?;
        total.passes += 1;
        total.resealed += pass.resealed;
        total.changed_meanwhile += pass.changed_meanwhile;
        total.unreadable = pass.unreadable.clone();
        if pass.found_nothing() {
            total.settled = true;
            break;
        }
    }
    Ok(total)
}

/// Progress of a re-seal: a bar on a terminal, otherwise a plain line at
/// most every few seconds and at the end of each column.
pub struct ResealProgress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    column: Option<SealedColumn>,
    last_line: Instant,
}

impl ResealProgress {
    pub fn new(total: u64, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:40} [{bar:30}] {pos}/{len} values ({percent}%, {eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Self {
            bar,
            total,
            done: 0,
            column: None,
            last_line: Instant::now(),
        }
    }

    /// One batch of `column` done: `resealed` values written.
    pub fn advance(&mut self, column: SealedColumn, resealed: u64) -> Option<String> {
        self.done += resealed;
        let next_column = self.column != Some(column);
        let previous = self.column.replace(column);
        if let Some(bar) = &self.bar {
            // Requests in flight can add values after the count was taken.
            bar.set_length(self.total.max(self.done));
            bar.set_position(self.done);
            bar.set_message(column.name());
            return None;
        }
        let due = self.last_line.elapsed() >= PLAIN_LINE_EVERY;
        (next_column && previous.is_some() || due).then(|| {
            self.last_line = Instant::now();
            format!(
                "reseal: {}/{} values, at {}",
                self.done,
                self.total.max(self.done),
                column.name()
            )
        })
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

const PLAIN_LINE_EVERY: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_values_under_keys_that_are_not_configured() {
        let count = |column: &str, key_id: &str, values| domain::store::SealedValues {
            column: column.to_owned(),
            key_id: key_id.to_owned(),
            values,
        };
        let counts = [
            count("flows.sdk_token_sealed", "key-2025", 3),
            count("flows.sdk_token_sealed", "key-2026", 5),
            count("audit_seals.key_id", "key-2026", 2),
        ];
        let (report, ok) = status_report(&counts, &["key-2026", "key-2025"]);
        assert!(ok, "{report}");
        assert!(report.contains("key-2025: 3 values in all"));
        assert!(report.contains("key-2026: 7 values in all"));
        let (report, ok) = status_report(&counts, &["key-2026"]);
        assert!(!ok);
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("key-2025") && l.ends_with("NOT CONFIGURED")),
            "{report}"
        );
    }

    #[test]
    fn a_data_encryption_key_is_configured_by_its_two_lines() {
        let today = time::macros::datetime!(2026-12-06 10:00 UTC);
        let out = data_encryption_key(None, today).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID=key-2026-12-06"
        );
        let key = lines[1]
            .strip_prefix("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY=")
            .unwrap();
        assert!(DataKey::from_base64url(KeyId::parse("x").unwrap(), key).is_ok());
        assert_ne!(out, data_encryption_key(None, today).unwrap(), "random");
        assert!(
            data_encryption_key(Some("2027.q1"), today)
                .unwrap()
                .starts_with("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID=2027.q1\n")
        );
        assert!(data_encryption_key(Some("no spaces"), today).is_err());
    }

    #[test]
    fn a_core_api_key_comes_with_its_fingerprint() {
        let out = core_api_key();
        let mut lines = out.lines();
        let comment = lines.next().unwrap();
        let key = lines.next().unwrap();
        assert_eq!(key.len(), 43);
        assert!(comment.contains(core_api::auth::KeyId::of_key(key).as_str()));
    }
}
