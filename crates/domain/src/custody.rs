//! Custody of biometric references (the IDV SDK's encrypted biometric token):
//! one current record per user, sealed with the data-encryption key and bound
//! to its user, released only to a step-up or recovery flow of that same user
//! while it awaits verification, destroyed with the user.

use time::OffsetDateTime;

use crate::flow::FlowId;
use crate::sealing::Binding;
use crate::user::UserId;

/// The largest reference we accept, in bytes (before sealing).
pub const MAX_REFERENCE_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiometricReference {
    pub user_id: UserId,
    pub sealed: Vec<u8>,
    pub created_by_flow: FlowId,
    pub created_at: OffsetDateTime,
}

/// Where a user's reference is sealed to.
pub fn binding(user_id: &UserId) -> Binding<'_> {
    crate::rotation::SealedColumn::BiometricReference.binding(user_id.0.as_bytes())
}
