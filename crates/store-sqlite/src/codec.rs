//! How domain values are laid out in SQLite columns.

use domain::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

/// Microseconds since the Unix epoch.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_micros(micros: i64, column: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn uuid_from(bytes: &[u8], column: &str) -> Result<Uuid, StoreError> {
    Uuid::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn opt_micros(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(to_micros)
}

pub(crate) fn opt_from_micros(
    micros: Option<i64>,
    column: &str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    micros.map(|m| from_micros(m, column)).transpose()
}

pub(crate) fn uuid_bytes(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub(crate) fn opt_uuid_from(
    bytes: Option<Vec<u8>>,
    column: &str,
) -> Result<Option<Uuid>, StoreError> {
    bytes.map(|b| uuid_from(&b, column)).transpose()
}
