//! Sealed values by the key that sealed them: what `keys status` counts and
//! what `keys reseal` reads and conditionally rewrites.

use crate::StorePool;
use async_trait::async_trait;
use domain::StoreResult;
use domain::rotation::{Replacement, RowKey, SealedColumn, SealedRow, SealedStore};
use domain::store::SealedValues;
use sqlx::Row;
use uuid::Uuid;

use crate::PgStore;
use crate::errors::map_err;

/// The key id in a sealed value's header (version byte, id length, id…).
fn key_id_of(column: &str) -> String {
    format!("substring({column} from 3 for get_byte({column}, 1))")
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
                "SELECT encode({}, 'escape') AS key_id, count(*) AS n FROM {table} \
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
impl SealedStore for PgStore {
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
            Some(RowKey::Id(_)) => format!(" AND {pk} > $3"),
            Some(RowKey::Idempotency { .. }) => " AND (scope, key) > ($3, $4)".to_owned(),
        };
        let sql = format!(
            "SELECT {pk}, {col} FROM {table} WHERE {col} IS NOT NULL \
             AND {} <> convert_to($1, 'UTF8'){after_clause} ORDER BY {pk} LIMIT $2",
            key_id_of(col)
        );
        let mut query = sqlx::query(&sql).bind(key_id).bind(i64::from(limit));
        query = match after {
            None => query,
            Some(RowKey::Id(id)) => query.bind(*id),
            Some(RowKey::Idempotency { scope, key }) => query.bind(scope).bind(key),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let key = if column == SealedColumn::IdempotentResponse {
                    RowKey::Idempotency {
                        scope: row.try_get("scope").map_err(map_err)?,
                        key: row.try_get("key").map_err(map_err)?,
                    }
                } else {
                    RowKey::Id(row.try_get::<Uuid, _>(0).map_err(map_err)?)
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
        // $1 the new value, $2 the value read, then the row's key, then the digest.
        let (row_match, next) = match column {
            SealedColumn::IdempotentResponse => ("scope = $3 AND key = $4".to_owned(), 5),
            _ => (format!("{} = $3", column.key_columns()), 4),
        };
        let digest = if column == SealedColumn::FlowTransactionContext {
            format!(
                ", transaction_context_hmac = ${next}, transaction_context_key_id = ${}",
                next + 1
            )
        } else {
            String::new()
        };
        let sql = format!("UPDATE {table} SET {col} = $1{digest} WHERE {row_match} AND {col} = $2");
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut written = 0;
        for r in replacements {
            let query = sqlx::query(&sql)
                .bind(r.new.as_slice())
                .bind(r.old.as_slice());
            let mut query = match &r.row {
                RowKey::Id(id) => query.bind(*id),
                RowKey::Idempotency { scope, key } => query.bind(scope).bind(key),
            };
            if let Some(d) = &r.digest {
                query = query.bind(d.hmac.as_str()).bind(d.key_id.as_str());
            }
            written += query
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(written)
    }
}
