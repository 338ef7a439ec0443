//! One-time authorization codes, kept in memory until redeemed or expired.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use time::{Duration, OffsetDateTime};

/// How long a code may wait to be redeemed.
pub(super) const CODE_LIFETIME: Duration = Duration::seconds(60);

/// What a code was issued for.
pub(super) struct Grant {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) code_challenge: String,
    pub(super) nonce: Option<String>,
    /// The operator name typed on the sign-in page.
    pub(super) sub: String,
    /// Every scope granted: the requested non-management ones and the ticked `management.*` ones.
    pub(super) scopes: Vec<String>,
    pub(super) expires_at: OffsetDateTime,
}

/// The outstanding codes.
#[derive(Default)]
pub(super) struct Codes(Mutex<HashMap<String, Grant>>);

impl Codes {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Grant>> {
        // A panic elsewhere while holding the lock leaves the map itself usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `grant` under a new random code, and forgets codes expired by `now`.
    pub(super) fn issue(&self, grant: Grant, now: OffsetDateTime) -> String {
        let code = random_base64url::<32>();
        let mut codes = self.lock();
        codes.retain(|_, g| g.expires_at > now);
        codes.insert(code.clone(), grant);
        code
    }

    /// Removes the code and returns its grant: a code can be presented only once.
    pub(super) fn take(&self, code: &str) -> Option<Grant> {
        self.lock().remove(code)
    }
}

/// `N` random bytes from the operating system, unpadded base64url.
pub(super) fn random_base64url<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
