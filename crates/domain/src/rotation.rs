//! Data-encryption key rotation: which stored values are sealed, what each is
//! bound to, and re-sealing under the current key what earlier keys sealed,
//! while the runtimes keep serving.
//!
//! A re-seal reads a batch of values not sealed under the current key, opens
//! each with the key it names, seals it again under the current key for the
//! same binding, and writes it back only where the stored value is still the
//! one it read. A value a runtime changed meanwhile is left to the runtime
//! (it seals under the current key too); the next pass finds any that still
//! names an earlier key. Nothing is remembered between runs: a run started
//! again after an interruption finds exactly what is left.

use std::borrow::Cow;
use std::collections::BTreeMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::flow::KeyedDigest;
use crate::sealing::{Binding, DataKey, SealError, sealed_key_id};
use crate::store::StoreResult;

/// What keyed digests of transaction contexts are made for.
pub const CONTEXT_DIGEST_SLOT: &str = "flows.transaction_context";

/// Every stored column whose values are sealed with the data-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SealedColumn {
    /// The user's applicant at the IDV provider.
    UserApplicant,
    /// A flow's IDV SDK token.
    FlowSdkToken,
    /// A step-up's transaction context (with its keyed digest).
    FlowTransactionContext,
    /// A flow's pending WebAuthn ceremony (built-in relying party).
    FlowCeremony,
    /// A user's biometric reference.
    BiometricReference,
    /// A reference a flow staged before it completes.
    StagedReference,
    /// A response kept for idempotent replay.
    IdempotentResponse,
    /// The applicant a deleted user's provider clean-up still has to remove.
    CleanupApplicant,
}

impl SealedColumn {
    pub const ALL: [Self; 8] = [
        Self::UserApplicant,
        Self::FlowSdkToken,
        Self::FlowTransactionContext,
        Self::FlowCeremony,
        Self::BiometricReference,
        Self::StagedReference,
        Self::IdempotentResponse,
        Self::CleanupApplicant,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Self::UserApplicant => "users",
            Self::FlowSdkToken | Self::FlowTransactionContext | Self::FlowCeremony => "flows",
            Self::BiometricReference => "biometric_references",
            Self::StagedReference => "staged_references",
            Self::IdempotentResponse => "idempotency_keys",
            Self::CleanupApplicant => "provider_cleanups",
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            Self::UserApplicant => "idv_applicant_sealed",
            Self::FlowSdkToken => "sdk_token_sealed",
            Self::FlowTransactionContext => "transaction_context_sealed",
            Self::FlowCeremony => "webauthn_ceremony_sealed",
            Self::BiometricReference | Self::StagedReference => "sealed",
            Self::IdempotentResponse => "body_sealed",
            Self::CleanupApplicant => "applicant_sealed",
        }
    }

    /// The primary key of the column's table, as a store orders rows by it
    /// (the columns of [`RowKey`]).
    pub fn key_columns(self) -> &'static str {
        match self {
            Self::UserApplicant
            | Self::FlowSdkToken
            | Self::FlowTransactionContext
            | Self::FlowCeremony => "id",
            Self::BiometricReference | Self::CleanupApplicant => "user_id",
            Self::StagedReference => "flow_id",
            Self::IdempotentResponse => "scope, key",
        }
    }

    /// `table.column`, as reports name it.
    pub fn name(self) -> String {
        format!("{}.{}", self.table(), self.column())
    }

    /// The binding's slot. A clean-up's applicant keeps the binding it had on
    /// the user row it was taken from.
    fn slot(self) -> &'static str {
        match self {
            Self::UserApplicant | Self::CleanupApplicant => "users.idv_applicant",
            Self::FlowSdkToken => "flows.sdk_token",
            Self::FlowTransactionContext => "flows.transaction_context",
            Self::FlowCeremony => "flows.webauthn_ceremony",
            Self::BiometricReference => "biometric_references.token",
            Self::StagedReference => "staged_references.token",
            Self::IdempotentResponse => "idempotency_keys.body",
        }
    }

    /// What a value of this column, in the row `row` (see [`RowKey::binding_row`]),
    /// is sealed to. The one place bindings are defined: sealing, opening and
    /// re-sealing all use it.
    pub fn binding(self, row: &[u8]) -> Binding<'_> {
        Binding {
            slot: self.slot(),
            row,
        }
    }
}

/// The row a sealed value lives in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKey {
    /// Rows keyed by a user or flow id.
    Id(Uuid),
    /// An idempotency record.
    Idempotency { scope: String, key: String },
}

impl RowKey {
    /// The row's part of a value's binding.
    pub fn binding_row(&self) -> Cow<'_, [u8]> {
        match self {
            Self::Id(id) => Cow::Borrowed(id.as_bytes()),
            Self::Idempotency { scope, key } => Cow::Owned(idempotency_row(scope, key)),
        }
    }
}

/// The row part of an idempotent response's binding.
pub fn idempotency_row(scope: &str, key: &str) -> Vec<u8> {
    format!("{scope}\0{key}").into_bytes()
}

/// A sealed value as a re-seal reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRow {
    pub row: RowKey,
    pub sealed: Vec<u8>,
}

/// One value to write back: `new` replaces `old` only if `old` is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub row: RowKey,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
    /// For a transaction context: its keyed digest under the current key.
    pub digest: Option<KeyedDigest>,
}

/// The store's side of a re-seal.
#[async_trait]
pub trait SealedStore: Send + Sync {
    /// Up to `limit` values of `column` sealed under any key but `key_id`,
    /// in row order, after `after`.
    async fn sealed_not_under(
        &self,
        column: SealedColumn,
        key_id: &str,
        after: Option<&RowKey>,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>>;

    /// Writes each replacement whose row still holds its `old` value, in one
    /// transaction; how many were written.
    async fn replace_sealed(
        &self,
        column: SealedColumn,
        replacements: &[Replacement],
    ) -> StoreResult<u64>;
}

/// What one pass of a re-seal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealPass {
    /// Values now sealed under the current key.
    pub resealed: u64,
    /// Values a runtime changed (or removed) between the read and the write.
    pub changed_meanwhile: u64,
    /// Values that could not be opened, by reason (for example the key id
    /// they name, which is not configured); left as they are.
    pub unreadable: BTreeMap<String, u64>,
}

impl ResealPass {
    /// Whether the pass found nothing left that it could re-seal.
    pub fn found_nothing(&self) -> bool {
        self.resealed == 0 && self.changed_meanwhile == 0
    }
}

/// Re-seals under `key`'s current key every value an earlier key sealed.
pub struct Resealer<'a> {
    store: &'a dyn SealedStore,
    key: &'a DataKey,
    batch: u32,
}

impl<'a> Resealer<'a> {
    pub fn new(store: &'a dyn SealedStore, key: &'a DataKey, batch: u32) -> Self {
        Self {
            store,
            key,
            batch: batch.max(1),
        }
    }

    /// One pass over every sealed column, batch by batch; `progress` hears
    /// after each batch how many values it re-sealed.
    pub async fn pass(
        &self,
        progress: &mut (dyn FnMut(SealedColumn, u64) + Send),
    ) -> StoreResult<ResealPass> {
        let mut report = ResealPass::default();
        for column in SealedColumn::ALL {
            let mut after: Option<RowKey> = None;
            loop {
                let rows = self
                    .store
                    .sealed_not_under(column, self.key.id().as_str(), after.as_ref(), self.batch)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.row.clone());
                let full = rows.len() as u32 >= self.batch;
                let mut replacements = Vec::with_capacity(rows.len());
                for row in rows {
                    match self.resealed(column, &row) {
                        Ok(replacement) => replacements.push(replacement),
                        Err(reason) => *report.unreadable.entry(reason).or_default() += 1,
                    }
                }
                let written = if replacements.is_empty() {
                    0
                } else {
                    self.store.replace_sealed(column, &replacements).await?
                };
                report.resealed += written;
                report.changed_meanwhile += replacements.len() as u64 - written;
                progress(column, written);
                if !full {
                    break;
                }
            }
        }
        Ok(report)
    }

    fn resealed(&self, column: SealedColumn, row: &SealedRow) -> Result<Replacement, String> {
        let binding_row = row.row.binding_row();
        let binding = column.binding(&binding_row);
        let plain = self.key.open(&row.sealed, binding).map_err(|e| match e {
            SealError::UnknownKey(id) => format!("sealed under key {id:?}, which is not configured"),
            SealError::Authentication => format!(
                "sealed under key {:?}, but does not open with it (altered, or moved from another row)",
                sealed_key_id(&row.sealed).unwrap_or_default()
            ),
            SealError::Malformed => "malformed".to_owned(),
        })?;
        let digest = (column == SealedColumn::FlowTransactionContext).then(|| KeyedDigest {
            key_id: self.key.id().as_str().to_owned(),
            hmac: self.key.digest(CONTEXT_DIGEST_SLOT, &plain),
        });
        Ok(Replacement {
            row: row.row.clone(),
            old: row.sealed.clone(),
            new: self.key.seal(&plain, binding),
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::KeyId;

    #[test]
    fn every_column_has_a_distinct_name() {
        let names: std::collections::BTreeSet<String> =
            SealedColumn::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), SealedColumn::ALL.len());
    }

    #[test]
    fn a_value_sealed_for_one_row_does_not_open_for_another() {
        let (key, _) = DataKey::generate(KeyId::parse("k").unwrap());
        let a = RowKey::Idempotency {
            scope: "s".into(),
            key: "a".into(),
        };
        let b = RowKey::Idempotency {
            scope: "s".into(),
            key: "b".into(),
        };
        let column = SealedColumn::IdempotentResponse;
        let sealed = key.seal(b"body", column.binding(&a.binding_row()));
        assert!(key.open(&sealed, column.binding(&a.binding_row())).is_ok());
        assert!(key.open(&sealed, column.binding(&b.binding_row())).is_err());
        assert!(
            key.open(
                &sealed,
                SealedColumn::FlowSdkToken.binding(&a.binding_row())
            )
            .is_err()
        );
    }
}
