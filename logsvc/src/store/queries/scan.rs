//! Reading a time range split at the rollup watermark: 1-minute rollups below it, raw rows above.

use rusqlite::{Connection, params};

use super::RangeQuery;
use crate::store::StoreError;

/// Reads rows from rollups below the watermark, then raw rows above it,
/// and hands each to `visit`. Rollup rows come first and both are sorted by time, so the
/// stream is in time order.
pub(super) fn scan_split<F>(
    conn: &Connection,
    range: &RangeQuery,
    watermark: i64,
    raw_sql: &str,
    rollup_sql: &str,
    mut visit: F,
) -> Result<(), StoreError>
where
    F: FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
{
    if range.from < watermark {
        let mut stmt = conn.prepare_cached(rollup_sql)?;
        let mut rows = stmt.query(params![
            range.from,
            range.to.min(watermark.saturating_sub(1))
        ])?;
        while let Some(row) = rows.next()? {
            visit(row)?;
        }
    }
    if range.to >= watermark {
        let mut stmt = conn.prepare_cached(raw_sql)?;
        let mut rows = stmt.query(params![range.from.max(watermark), range.to])?;
        while let Some(row) = rows.next()? {
            visit(row)?;
        }
    }
    Ok(())
}
