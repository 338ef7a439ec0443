//! Idempotent replay: what the Core API's `Idempotency-Key` layer stores and
//! replays, without seeing the repository or the data key.
//!
//! The first request with a key claims it ([`Idempotency::begin`]); its
//! response is stored sealed (it may carry an SDK token) for 24 hours
//! ([`Idempotency::finish`]), or the claim released when there is nothing to
//! replay ([`Idempotency::abandon`]). A repeat of the same request (its scope
//! and body) gets the stored response back; a repeat with a different request
//! is a mismatch; one arriving while the first is processed finds it in
//! progress.
//!
//! Nothing stored names the customer's user in the clear: a path segment
//! holding the customer's user id is stored in the scope as a keyed digest
//! (under the current data-encryption key: a retry of such a call that spans
//! a key rotation is processed again), and the request's fingerprint is taken
//! over that stored scope. A stored response about a user's flow names the
//! user by our id, so that deleting the user deletes it; the rest go when
//! their 24 hours are over (`domain::retention`).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::error::{DomainError, DomainResult};
use crate::rotation::{SealedColumn, idempotency_row};
use crate::sealing::{Binding, DataKey};
use crate::store::{IdempotencyBegin, Repository, StoreResult, StoredResponse};
use crate::user::UserId;

/// How long a processed response is replayed.
const RETENTION: Duration = Duration::hours(24);
/// How long an unfinished claim blocks retries (a crashed replica's claim expires).
const LOCK: Duration = Duration::seconds(60);

/// The digest slot of a customer's user id in a stored scope.
const USER_SLOT: &str = "idempotency.scope.external_user_id";

/// The segment of a route template that holds the customer's user id.
pub const USER_SEGMENT: &str = "{external_user_id}";

/// Stores and replays the responses of requests carrying an idempotency key.
pub struct Idempotency {
    repo: Arc<dyn Repository>,
    key: DataKey,
    clock: Arc<dyn Clock>,
}

/// A request's claim on its key, held while the request is processed.
#[derive(Debug)]
pub struct Claim {
    scope: String,
    key: String,
    /// When the claim was taken; the stored response's 24 hours count from it.
    at: OffsetDateTime,
}

/// A stored response, opened.
#[derive(Debug)]
pub struct Replay {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
}

/// What to do with a request carrying an idempotency key.
#[derive(Debug)]
pub enum Begin {
    /// First time: process it, then [`Idempotency::finish`] or
    /// [`Idempotency::abandon`] the claim.
    Proceed(Claim),
    /// Seen with the same request: answer this again.
    Replay(Replay),
    /// Seen with a different request.
    Mismatch,
    /// The same request is being processed right now.
    InProgress,
}

impl Idempotency {
    pub fn new(repo: Arc<dyn Repository>, key: DataKey, clock: Arc<dyn Clock>) -> Self {
        Self { repo, key, clock }
    }

    /// The stored scope of a request: its method and path, with the segments
    /// that `route` (the matched route's template) marks as
    /// [`USER_SEGMENT`] replaced by their keyed digest.
    pub fn scope(&self, method: &str, path: &str, route: Option<&str>) -> String {
        let Some(route) = route.filter(|r| r.contains(USER_SEGMENT)) else {
            return format!("{method} {path}");
        };
        let segments: Vec<String> = route
            .split('/')
            .zip(path.split('/'))
            .map(|(template, actual)| {
                if template == USER_SEGMENT {
                    format!("~{}", self.key.digest(USER_SLOT, actual.as_bytes()))
                } else {
                    actual.to_owned()
                }
            })
            .collect();
        format!("{method} {}", segments.join("/"))
    }

    /// Claims `key` for the request of `scope` with `body`, or says why not.
    pub async fn begin(&self, scope: &str, key: &str, body: &[u8]) -> DomainResult<Begin> {
        let mut hasher = Sha256::new();
        hasher.update(scope.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        let fingerprint: [u8; 32] = hasher.finalize().into();
        let now = self.clock.now();
        let begin = self
            .repo
            .idempotency_begin(scope, key, &fingerprint, now, now + LOCK)
            .await?;
        Ok(match begin {
            IdempotencyBegin::Proceed => Begin::Proceed(Claim {
                scope: scope.to_owned(),
                key: key.to_owned(),
                at: now,
            }),
            IdempotencyBegin::Replay(stored) => {
                let row = idempotency_row(scope, key);
                let body = self
                    .key
                    .open(&stored.body_sealed, binding(&row))
                    .map_err(|e| {
                        DomainError::internal(format!("stored idempotent response: {e}"))
                    })?;
                Begin::Replay(Replay {
                    status: stored.status,
                    body,
                })
            }
            IdempotencyBegin::Mismatch => Begin::Mismatch,
            IdempotencyBegin::InProgress => Begin::InProgress,
        })
    }

    /// Stores the claimed request's response for replay; `user` names the
    /// user it concerns, whose deletion deletes it.
    pub async fn finish(
        &self,
        claim: Claim,
        status: u16,
        body: &[u8],
        user: Option<UserId>,
    ) -> StoreResult<()> {
        let row = idempotency_row(&claim.scope, &claim.key);
        let stored = StoredResponse {
            status,
            body_sealed: self.key.seal(body, binding(&row)),
        };
        self.repo
            .idempotency_finish(
                &claim.scope,
                &claim.key,
                &stored,
                claim.at + RETENTION,
                user,
            )
            .await
    }

    /// Releases a claim whose request produced nothing to replay, so that the
    /// client may retry with the same key.
    pub async fn abandon(&self, claim: Claim) -> StoreResult<()> {
        self.repo
            .idempotency_abandon(&claim.scope, &claim.key)
            .await
    }
}

fn binding(row: &[u8]) -> Binding<'_> {
    SealedColumn::IdempotentResponse.binding(row)
}
