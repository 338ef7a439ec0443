//! Identifier generation. Ids are UUIDv7 stamped with the injected clock, so
//! they sort by creation time (good index locality) without reading the system clock.

use rand::RngCore;
use time::OffsetDateTime;
use uuid::Uuid;

/// A new time-ordered id for a row created at `at`.
///
/// Its random part comes from the thread's CSPRNG (ChaCha, seeded and
/// periodically reseeded from the operating system's): an id must be unique
/// and hard to guess, but it is not key material, and a change writes several
/// ids (the flow's, one per audit event), where a system call each is
/// measurable. Secrets, keys and nonces use [`random_bytes`].
pub fn new_id(at: OffsetDateTime) -> Uuid {
    let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// A random UUID (version 4) for values that must be unique but are no
/// secret (correlation ids), from the thread's CSPRNG like [`new_id`].
pub fn new_random_id() -> Uuid {
    let mut random = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut random);
    uuid::Builder::from_random_bytes(random).into_uuid()
}

/// `N` random bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = new_id(datetime!(2026-01-01 00:00:00 UTC));
        let b = new_id(datetime!(2026-01-01 00:00:01 UTC));
        assert!(a < b);
        assert_eq!(a.get_version_num(), 7);
    }
}
