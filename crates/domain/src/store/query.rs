//! What the repository's reads take and return: searches, pages, a user's
//! standing, the provider clean-up queue, idempotency records.

use time::OffsetDateTime;

use crate::credential::CredentialStatus;
use crate::flow::{FlowId, FlowState, FlowType};
use crate::user::{User, UserId};

/// One page of results plus the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page from `limit + 1` fetched rows: the extra row only tells that
    /// another page exists, whose cursor is taken from the page's last item.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, cursor: impl FnOnce(&T) -> C) -> Self {
        let limit = limit as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Self { items, next }
    }
}

/// How many stored values name one data-encryption key id, in one column
/// (`audit_seals.key_id` counts the audit seals made under it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValues {
    /// `table.column`.
    pub column: String,
    pub key_id: String,
    pub values: u64,
}

impl SealedValues {
    /// A column's `(key id, count)` rows, as a store reads them.
    pub fn of_column(column: &str, rows: Vec<(String, i64)>) -> Vec<Self> {
        rows.into_iter()
            .map(|(key_id, n)| Self {
                column: column.to_owned(),
                key_id,
                values: u64::try_from(n).unwrap_or_default(),
            })
            .collect()
    }
}

/// What the IDV provider must still forget about a deleted user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCleanup {
    pub user_id: UserId,
    pub customer_user_id: crate::user::Pseudonym,
    /// Sealed, bound to `users.idv_applicant` of `user_id`, as it was stored.
    pub applicant_sealed: Option<Vec<u8>>,
    pub requested_at: OffsetDateTime,
    pub attempts: u32,
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the next attempt is due (`None`: at once, unless dead).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Set once the last attempt allowed failed: no more attempts are made,
    /// and the item stays listed for an operator to see.
    pub dead_at: Option<OffsetDateTime>,
}

/// How many provider clean-ups wait, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderCleanupCounts {
    /// Not yet done and still tried: due now or at their next attempt.
    pub pending: u64,
    /// Of the pending ones, those that failed at least once.
    pub retrying: u64,
    /// Given up after the last attempt allowed: the provider may still hold
    /// the user's data until an operator steps in.
    pub dead: u64,
}

/// A search of users by identifier prefix and creation time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    pub prefix: Option<String>,
    /// Only users with at least one credential in this status.
    pub credential_status: Option<CredentialStatus>,
    pub created_from: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub after: Option<UserCursor>,
    pub limit: u32,
}

/// Where a page of users continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCursor {
    /// After this identifier (identifier order).
    ExternalId(String),
    /// After this creation time and identifier (creation order).
    Created(OffsetDateTime, String),
}

impl UserQuery {
    /// Searches by creation time alone run in creation order (its index);
    /// every other search runs in identifier order.
    pub fn by_creation(&self) -> bool {
        self.prefix.is_none() && (self.created_from.is_some() || self.created_before.is_some())
    }

    /// The cursor continuing after `user` in this query's order.
    pub fn cursor_after(&self, user: &User) -> UserCursor {
        if self.by_creation() {
            UserCursor::Created(user.created_at, user.external_id.as_str().to_owned())
        } else {
            UserCursor::ExternalId(user.external_id.as_str().to_owned())
        }
    }
}

/// A listing of one user's flows, newest first, by type and by the state each
/// reads as at `now` ([`Flow::as_of`](crate::flow::Flow::as_of)): `Expired` takes in the open flows
/// past their expiry, and an open state leaves them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowQuery {
    pub user: UserId,
    pub flow_type: Option<FlowType>,
    pub state: Option<FlowState>,
    pub now: OffsetDateTime,
    pub limit: u32,
}

/// A user and what decides whether they may start a flow now, read at once
/// (what a flow's creation checks before it calls the IDV provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPrerequisites {
    pub user: User,
    /// At least one `active` credential.
    pub has_active_credential: bool,
    /// At least one credential that is not revoked (`active` or `suspended`).
    pub has_live_credential: bool,
    /// The flow that stored the user's current biometric reference, when the
    /// user has one.
    pub reference_flow_id: Option<FlowId>,
    /// Flows not terminal and not past their expiry (as [`FlowLimits`](super::FlowLimits) counts them).
    pub open_flows: u32,
    /// Flows needing an identity proof created in the last 24 hours.
    pub idv_runs_last_day: u32,
}

/// A stored response to replay for a repeated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Sealed: responses may carry SDK tokens.
    pub body_sealed: Vec<u8>,
}

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First time: process it, then `idempotency_finish`.
    Proceed,
    /// Seen with the same request: replay this.
    Replay(StoredResponse),
    /// Seen with a different request.
    Mismatch,
    /// The same request is being processed right now.
    InProgress,
}
