//! Changes written as one statement: one round trip, no explicit
//! transaction (a statement is its own transaction).
//!
//! The shapes of the Core API's hot path qualify: a flow's creation with its
//! events, and a flow's next version with its events and any of a passkey's
//! use, a provider event, the check that a passkey is still active and a
//! staged reference. Every other change is written by `apply` in lib.rs, one
//! statement per row change inside `BEGIN`…`COMMIT`.
//!
//! The statement is a chain of data-modifying parts (`s0`, `s1`, …), each
//! written only where the one before it wrote, then the events, written only
//! where the last part wrote. When the first part writes nothing (a stale
//! version, a limit, a missing user), nothing is written and the store
//! answers as the transaction's first statement would. When a later part
//! writes nothing (the passkey changed meanwhile, the provider event seen
//! before), the statement ends with an error raised by `change_refused`
//! (SQLSTATE `BPC01`, migration 0017), which undoes what the earlier parts
//! wrote, and the store answers that part's `Conflict` (the statement names
//! it to `change_refused`; `errors.rs` reads it back). The parts follow
//! `Change::writes`, the order the transaction writes in, so the checks run
//! in the order the transaction runs them.

use domain::store::Write;
use domain::{
    Change, Conflict, Effect, FlowLimits, FlowWrite, NewAuditEvent, StoreError, StoreResult,
};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::errors::{self, map_err};
use crate::{StorePool, audit, flows};

/// Writes `change` as one statement when its shape allows it; `None` (and
/// nothing written) when it needs a transaction.
pub(crate) async fn apply(pool: &StorePool, change: &Change) -> Option<StoreResult<()>> {
    let plan = Plan::of(change)?;
    Some(plan.run(pool).await)
}

/// What a part answers when it writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal<'a> {
    /// A flow's insertion: the user missing, or a limit reached.
    Insert(&'a FlowLimits),
    /// A conflict named so.
    Conflict(Conflict),
    /// Never refused: the part writes whenever the one before it wrote.
    Never,
}

/// The change's writes but its events, one part each, in the order of
/// [`Change::writes`] (the order the transaction writes them in).
struct Plan<'a> {
    parts: Vec<(Write<'a>, Refusal<'a>)>,
    events: &'a [NewAuditEvent],
}

impl<'a> Plan<'a> {
    fn of(change: &'a Change) -> Option<Self> {
        // Two parts of one statement must not touch one row (neither would
        // see the other's write): at most one effect of each kind, and not
        // two on one passkey.
        let kinds: Vec<_> = change.effects.iter().map(std::mem::discriminant).collect();
        let credentials: Vec<_> = change.effects.iter().filter_map(credential_of).collect();
        if has_repeats(&kinds) || has_repeats(&credentials) {
            return None;
        }
        let mut plan = Self {
            parts: Vec::new(),
            events: &[],
        };
        for write in change.writes() {
            match write {
                // A flow's insertion is alone: its refusal is read from the gate.
                Write::Flow(FlowWrite::Insert { .. }) if !change.effects.is_empty() => {
                    return None;
                }
                Write::Events(events) => plan.events = events,
                write => plan.parts.push((write, refusal(write)?)),
            }
        }
        (!plan.parts.is_empty()).then_some(plan)
    }

    async fn run(self, pool: &StorePool) -> StoreResult<()> {
        let mut sql = QueryBuilder::new("WITH ");
        for (i, (write, _)) in self.parts.iter().enumerate() {
            let name = format!("s{i}");
            if i > 0 {
                sql.push(", ");
            }
            match *write {
                Write::Flow(FlowWrite::Insert { flow, limits }) => {
                    flows::push_insert(&mut sql, &name, flow, limits);
                }
                Write::Flow(FlowWrite::Update { flow }) => {
                    flows::push_update(&mut sql, &name, flow)
                }
                Write::Effect(effect) => {
                    let after = i.checked_sub(1).map(|prev| format!("s{prev}"));
                    push_effect(&mut sql, &name, effect, after.as_deref());
                }
                // Refused by `refusal`.
                Write::LockUser(_) | Write::Events(_) => {}
            }
        }
        let last = format!("s{}", self.parts.len() - 1);
        if !self.events.is_empty() {
            sql.push(", events AS (");
            audit::push_insert_all(
                &mut sql,
                self.events,
                &format!("EXISTS (SELECT 1 FROM {last})"),
            );
            sql.push(")");
        }
        let first = &self.parts[0].1;
        sql.push(" SELECT EXISTS (SELECT 1 FROM s0) AS written, ");
        if matches!(first, Refusal::Insert(_)) {
            sql.push("(SELECT open_flows FROM gate)");
        } else {
            sql.push("NULL::bigint");
        }
        sql.push(" AS open_flows");
        // Reached only when the first part wrote: a later part that did not
        // undoes the whole statement.
        let checks: Vec<_> = self
            .parts
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(i, (_, refusal))| match refusal {
                Refusal::Conflict(conflict) => Some((i, conflict)),
                _ => None,
            })
            .collect();
        if !checks.is_empty() {
            sql.push(", CASE");
            for (i, conflict) in checks {
                sql.push(format!(
                    " WHEN EXISTS (SELECT 1 FROM s0) AND NOT EXISTS (SELECT 1 FROM s{i}) \
                     THEN change_refused('{conflict}')"
                ));
            }
            sql.push(" END AS refused");
        }
        let row = sql.build().fetch_one(pool).await.map_err(map_err)?;
        if row.try_get::<bool, _>("written").map_err(map_err)? {
            return Ok(());
        }
        Err(match first {
            Refusal::Insert(limits) => {
                errors::insert_refused(row.try_get("open_flows").map_err(map_err)?, limits)
            }
            Refusal::Conflict(conflict) => StoreError::Conflict(conflict.clone()),
            Refusal::Never => StoreError::Other("a change's first write wrote nothing".into()),
        })
    }
}

/// What the part writing `write` answers when it writes nothing (the same
/// the transaction's statements answer: `flows.rs`, `credentials.rs`,
/// `idempotency.rs`); `None` for the writes only a transaction makes.
fn refusal(write: Write<'_>) -> Option<Refusal<'_>> {
    Some(match write {
        Write::Flow(FlowWrite::Insert { limits, .. }) => Refusal::Insert(limits),
        Write::Flow(FlowWrite::Update { .. }) => Refusal::Conflict(Conflict::FlowVersion),
        Write::Effect(
            Effect::UseCredential { .. } | Effect::UseCredentialKeepingCounter { .. },
        ) => Refusal::Conflict(Conflict::CredentialState),
        Write::Effect(Effect::RecordProviderEvent { .. }) => {
            Refusal::Conflict(Conflict::ProviderEvent)
        }
        Write::Effect(Effect::RequireActiveCredential(_)) => {
            Refusal::Conflict(Conflict::CredentialNotActive)
        }
        Write::Effect(Effect::StageReference { .. }) => Refusal::Never,
        _ => return None,
    })
}

/// A passkey's use, common to both kinds of use: its backup state and times
/// (the `SET` list's tail), written only to the passkey while it is active.
fn push_active_credential_use<'a>(
    sql: &mut QueryBuilder<'a, Postgres>,
    id: uuid::Uuid,
    backup_state: bool,
    at: time::OffsetDateTime,
) {
    sql.push("backup_state = ")
        .push_bind(backup_state)
        .push(", last_used_at = ")
        .push_bind(at)
        .push(", updated_at = ")
        .push_bind(at)
        .push(" WHERE id = ")
        .push_bind(id)
        .push(" AND status = 'active'");
}

fn credential_of(effect: &Effect) -> Option<uuid::Uuid> {
    match effect {
        Effect::UseCredential { id, .. }
        | Effect::UseCredentialKeepingCounter { id, .. }
        | Effect::RequireActiveCredential(id) => Some(*id),
        _ => None,
    }
}

fn has_repeats<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, item)| items[..i].contains(item))
}

/// Pushes the part named `name` that writes `effect`, only where the part
/// `after` wrote (none: the statement's first part).
fn push_effect<'a>(
    sql: &mut QueryBuilder<'a, Postgres>,
    name: &str,
    effect: &'a Effect,
    after: Option<&str>,
) {
    let condition = after
        .map(|prev| format!(" AND EXISTS (SELECT 1 FROM {prev})"))
        .unwrap_or_default();
    match effect {
        Effect::UseCredential {
            id,
            sign_count,
            backup_state,
            at,
        } => {
            // Only while active, and only if the counter grows (or both are
            // zero: an authenticator without a counter).
            let count = i64::from(*sign_count);
            sql.push(format!("{name} AS (UPDATE credentials SET sign_count = "))
                .push_bind(count)
                .push(", ");
            push_active_credential_use(sql, *id, *backup_state, *at);
            sql.push(" AND (sign_count < ")
                .push_bind(count)
                .push(" OR (sign_count = 0 AND ")
                .push_bind(count)
                .push(" = 0))");
        }
        Effect::UseCredentialKeepingCounter {
            id,
            backup_state,
            at,
        } => {
            sql.push(format!("{name} AS (UPDATE credentials SET "));
            push_active_credential_use(sql, *id, *backup_state, *at);
        }
        Effect::RecordProviderEvent {
            dedupe_key,
            run_id,
            at,
        } => {
            sql.push(format!(
                "{name} AS (INSERT INTO provider_events (dedupe_key, run_id, received_at) SELECT "
            ))
            .push_bind(dedupe_key.as_str())
            .push(", ")
            .push_bind(run_id.as_str())
            .push(", ")
            .push_bind(*at)
            .push(" WHERE TRUE")
            .push(condition)
            .push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1)");
            return;
        }
        Effect::RequireActiveCredential(id) => {
            // Writes nothing: the lock keeps the passkey active until the
            // statement ends (a concurrent suspension waits, or is seen).
            sql.push(format!(
                "{name} AS MATERIALIZED (SELECT 1 FROM credentials WHERE id = "
            ))
            .push_bind(*id)
            .push(" AND status = 'active'")
            .push(condition)
            .push(" FOR SHARE OF credentials)");
            return;
        }
        Effect::StageReference {
            flow_id,
            sealed,
            at,
        } => {
            sql.push(format!(
                "{name} AS (INSERT INTO staged_references (flow_id, sealed, created_at) SELECT "
            ))
            .push_bind(flow_id.0)
            .push(", ")
            .push_bind(sealed.as_slice())
            .push(", ")
            .push_bind(*at)
            .push(" WHERE TRUE")
            .push(condition)
            .push(
                " ON CONFLICT (flow_id) DO UPDATE SET sealed = EXCLUDED.sealed, \
                 created_at = EXCLUDED.created_at RETURNING 1)",
            );
            return;
        }
        // Refused by `refusal`: the change is written in a transaction.
        _ => {}
    }
    sql.push(condition).push(" RETURNING 1)");
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::errors::REFUSABLE;

    #[test]
    fn every_conflict_a_later_part_answers_is_read_back_from_its_refusal() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let effects = [
            Effect::UseCredential {
                id: Uuid::new_v4(),
                sign_count: 1,
                backup_state: false,
                at,
            },
            Effect::UseCredentialKeepingCounter {
                id: Uuid::new_v4(),
                backup_state: false,
                at,
            },
            Effect::RecordProviderEvent {
                dedupe_key: "k".into(),
                run_id: "r".into(),
                at,
            },
            Effect::RequireActiveCredential(Uuid::new_v4()),
        ];
        for effect in &effects {
            match refusal(Write::Effect(effect)) {
                Some(Refusal::Conflict(conflict)) => {
                    assert!(REFUSABLE.contains(&conflict), "{conflict} is not read back");
                }
                other => panic!("{effect:?} refuses with {other:?}"),
            }
        }
    }
}
