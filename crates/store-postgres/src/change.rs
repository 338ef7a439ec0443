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
//! wrote, and the store answers that part's `Conflict`. The checks run in
//! the order the transaction ran them: the flow's write, then the effects in
//! their order.

use domain::{Change, Effect, FlowLimits, FlowWrite, StoreError, StoreResult};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::errors::map_err;
use crate::{StorePool, audit, flows};

/// Writes `change` as one statement when its shape allows it; `None` (and
/// nothing written) when it needs a transaction.
pub(crate) async fn apply(pool: &StorePool, change: &Change) -> Option<StoreResult<()>> {
    let plan = Plan::of(change)?;
    Some(plan.run(pool, change).await)
}

/// How a statement's first part can refuse.
enum First<'a> {
    /// A flow's insertion: the user missing, or a limit reached.
    Insert(&'a FlowLimits),
    /// A part that writes nothing on a conflict named so.
    Conflict(&'static str),
}

struct Plan<'a> {
    first: First<'a>,
    /// The conflicts of the later parts, in order.
    later: Vec<&'static str>,
}

impl<'a> Plan<'a> {
    fn of(change: &'a Change) -> Option<Self> {
        if !change.effects.iter().all(one_statement_effect) {
            return None;
        }
        // Two parts of one statement must not touch one row (neither would
        // see the other's write): at most one effect of each kind, and not
        // two on one passkey.
        let kinds: Vec<_> = change.effects.iter().map(std::mem::discriminant).collect();
        let credentials: Vec<_> = change.effects.iter().filter_map(credential_of).collect();
        if has_repeats(&kinds) || has_repeats(&credentials) {
            return None;
        }
        let mut conflicts = change.effects.iter().filter_map(effect_conflict);
        let first = match &change.flow {
            Some(FlowWrite::Insert { limits, .. }) if change.effects.is_empty() => {
                First::Insert(limits)
            }
            Some(FlowWrite::Insert { .. }) => return None,
            Some(FlowWrite::Update { .. }) => First::Conflict("flow_version"),
            None => First::Conflict(conflicts.next()?),
        };
        Some(Self {
            first,
            later: conflicts.collect(),
        })
    }

    async fn run(self, pool: &StorePool, change: &'a Change) -> StoreResult<()> {
        let mut sql = QueryBuilder::new("WITH ");
        let mut parts = 0usize;
        let mut part = |sql: &mut QueryBuilder<'a, Postgres>| {
            if parts > 0 {
                sql.push(", ");
            }
            parts += 1;
            format!("s{}", parts - 1)
        };
        match &change.flow {
            Some(FlowWrite::Insert { flow, limits }) => {
                let name = part(&mut sql);
                flows::push_insert(&mut sql, &name, flow, limits);
            }
            Some(FlowWrite::Update { flow }) => {
                let name = part(&mut sql);
                flows::push_update(&mut sql, &name, flow);
            }
            None => {}
        }
        for effect in &change.effects {
            let name = part(&mut sql);
            let after = (name != "s0").then(|| previous(&name));
            push_effect(&mut sql, &name, effect, after.as_deref());
        }
        let last = format!("s{}", parts - 1);
        if !change.events.is_empty() {
            sql.push(", events AS (");
            audit::push_insert_all(
                &mut sql,
                &change.events,
                &format!("EXISTS (SELECT 1 FROM {last})"),
            );
            sql.push(")");
        }
        sql.push(" SELECT EXISTS (SELECT 1 FROM s0) AS written, ");
        if matches!(self.first, First::Insert(_)) {
            sql.push("(SELECT open_flows FROM gate)");
        } else {
            sql.push("NULL::bigint");
        }
        sql.push(" AS open_flows");
        if !self.later.is_empty() {
            // Reached only when the first part wrote: a later part that did
            // not undoes the whole statement.
            sql.push(", CASE");
            for (i, what) in self.later.iter().enumerate() {
                sql.push(format!(
                    " WHEN EXISTS (SELECT 1 FROM s0) AND NOT EXISTS (SELECT 1 FROM s{}) \
                     THEN change_refused('{what}')",
                    i + 1
                ));
            }
            sql.push(" END AS refused");
        }
        let row = sql.build().fetch_one(pool).await.map_err(map_err)?;
        if row.try_get::<bool, _>("written").map_err(map_err)? {
            return Ok(());
        }
        Err(match self.first {
            First::Insert(limits) => {
                flows::insert_outcome(row.try_get("open_flows").map_err(map_err)?, limits)
            }
            First::Conflict(what) => StoreError::Conflict { what: what.into() },
        })
    }
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

/// The part before `name` (`s3` → `s2`).
fn previous(name: &str) -> String {
    let n: usize = name[1..].parse().unwrap_or(1);
    format!("s{}", n - 1)
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

/// Whether a statement can write `effect`.
fn one_statement_effect(effect: &Effect) -> bool {
    effect_conflict(effect).is_some()
}

/// The conflict an effect a statement can write answers when it writes
/// nothing (the same the transaction's statements answer: `credentials.rs`,
/// `idempotency.rs`); `None` for the effects only a transaction writes.
fn effect_conflict(effect: &Effect) -> Option<&'static str> {
    match effect {
        Effect::UseCredential { .. } | Effect::UseCredentialKeepingCounter { .. } => {
            Some("credential_state")
        }
        Effect::RecordProviderEvent { .. } => Some("provider_event"),
        Effect::RequireActiveCredential(_) => Some(domain::store::CREDENTIAL_NOT_ACTIVE),
        // Written whenever the part before it was: never refused.
        Effect::StageReference { .. } => Some("staged_reference"),
        _ => None,
    }
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
        // Refused by `Plan::of`: the change is written in a transaction.
        _ => {}
    }
    sql.push(condition).push(" RETURNING 1)");
}
