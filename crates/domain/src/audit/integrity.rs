//! Tamper evidence for the audit trail.
//!
//! Audit maintenance *seals* the trail in batches: for the events committed
//! since the last seal it records, per calendar month, each event's position
//! (`seq`) and a keyed tag over its content, and chains the seals one to the
//! next with an HMAC. A seal cannot be forged or re-chained without the audit
//! key, which is derived from the data-encryption key and never stored.
//!
//! Verification recomputes every tag and seal and reports, by position:
//! an event whose content changed ([`Finding::Edited`]), a sealed event that is
//! gone ([`Finding::Deleted`]), an event found at another position than the one
//! it was sealed at ([`Finding::Reordered`]), an event inside a sealed range
//! that no seal lists ([`Finding::Inserted`]), and seals that are forged,
//! missing or out of chain.
//!
//! What it does not prove: events written after the last seal (at most one
//! maintenance interval) are not yet covered; and someone holding the database
//! *and* able to delete the newest seals together with their events leaves a
//! shorter, consistent trail. The seal head is logged after every sealing run
//! and recorded in archive manifests so it can be compared with copies kept
//! outside the database.

mod key;
mod seal;
mod verify;

pub use key::{AuditKey, AuditKeyring, AuditKeys, EventTag, SealMac, TAG_LEN};
pub use seal::{BadEntries, Seal, SealEntry, SealHead, SealHeader, seal_batch};
pub use verify::{ChainCheck, Finding, MonthCheck};

#[cfg(test)]
mod tests;
