//! Sealed values by the key that sealed them: what `keys status` counts and
//! what `keys reseal` reads and conditionally rewrites.

use crate::StorePool;
use async_trait::async_trait;
use domain::StoreResult;
use domain::rotation::{Replacement, RowKey, SealedColumn, SealedRow, SealedStore};
use domain::store::SealedValues;
use sqlx::Row;

use crate::SqliteStore;
use crate::codec::{uuid_bytes, uuid_from};
use crate::errors::map_err;

/// The key id in a sealed value's header (version byte, id length, id…).
fn key_id_of(column: &str) -> String {
    format!("CAST(substr({column}, 3, unicode(CAST(substr({column}, 2, 1) AS TEXT))) AS TEXT)")
}

pub(crate) async fn values_by_key(pool: &StorePool) -> StoreResult<Vec<SealedValues>> {
    let mut out = Vec::new();
    let mut count = async |name: String, sql: String| -> StoreResult<()> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&sql)
            .fetch_all(pool)
            .await
            .map_err(map_err)?;
        out.extend(SealedValues::of_column(&name, rows));
        Ok(())
    };
    for column in SealedColumn::ALL {
        let (table, col) = (column.table(), column.column());
        count(
            column.name(),
            format!(
                "SELECT {} AS key_id, count(*) AS n FROM {table} \
                 WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 1",
                key_id_of(col)
            ),
        )
        .await?;
    }
    count(
        "flows.transaction_context_key_id".to_owned(),
        "SELECT transaction_context_key_id, count(*) FROM flows \
         WHERE transaction_context_key_id IS NOT NULL GROUP BY 1 ORDER BY 1"
            .to_owned(),
    )
    .await?;
    count(
        "audit_seals.key_id".to_owned(),
        "SELECT key_id, count(*) FROM audit_seals GROUP BY 1 ORDER BY 1".to_owned(),
    )
    .await?;
    Ok(out)
}

#[async_trait]
impl SealedStore for SqliteStore {
    async fn sealed_not_under(
        &self,
        column: SealedColumn,
        key_id: &str,
        after: Option<&RowKey>,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>> {
        let (table, col, pk) = (column.table(), column.column(), column.key_columns());
        let after_clause = match after {
            None => String::new(),
            Some(RowKey::Id(_)) => format!(" AND {pk} > ?"),
            Some(RowKey::Idempotency { .. }) => " AND (scope, key) > (?, ?)".to_owned(),
        };
        let sql = format!(
            "SELECT {pk}, {col} FROM {table} WHERE {col} IS NOT NULL \
             AND {} <> ?{after_clause} ORDER BY {pk} LIMIT ?",
            key_id_of(col)
        );
        let mut query = sqlx::query(&sql).bind(key_id);
        query = match after {
            None => query,
            Some(RowKey::Id(id)) => query.bind(uuid_bytes(*id)),
            Some(RowKey::Idempotency { scope, key }) => query.bind(scope).bind(key),
        };
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let key = if column == SealedColumn::IdempotentResponse {
                    RowKey::Idempotency {
                        scope: row.try_get("scope").map_err(map_err)?,
                        key: row.try_get("key").map_err(map_err)?,
                    }
                } else {
                    let bytes: Vec<u8> = row.try_get(0).map_err(map_err)?;
                    RowKey::Id(uuid_from(&bytes, pk)?)
                };
                Ok(SealedRow {
                    row: key,
                    sealed: row.try_get(col).map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn replace_sealed(
        &self,
        column: SealedColumn,
        replacements: &[Replacement],
    ) -> StoreResult<u64> {
        let (table, col) = (column.table(), column.column());
        let digest = if column == SealedColumn::FlowTransactionContext {
            ", transaction_context_hmac = ?, transaction_context_key_id = ?"
        } else {
            ""
        };
        let row_match = match column {
            SealedColumn::IdempotentResponse => "scope = ? AND key = ?".to_owned(),
            _ => format!("{} = ?", column.key_columns()),
        };
        let sql = format!("UPDATE {table} SET {col} = ?{digest} WHERE {row_match} AND {col} = ?");
        let mut tx = self.write().await?;
        let mut written = 0;
        for r in replacements {
            let mut query = sqlx::query(&sql).bind(r.new.as_slice());
            if let Some(d) = &r.digest {
                query = query.bind(d.hmac.as_str()).bind(d.key_id.as_str());
            }
            query = match &r.row {
                RowKey::Id(id) => query.bind(uuid_bytes(*id)),
                RowKey::Idempotency { scope, key } => query.bind(scope).bind(key),
            };
            written += query
                .bind(r.old.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(written)
    }
}
