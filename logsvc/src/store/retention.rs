//! Retention: raw rows older than the raw cutoff are folded into 1-minute rollups and deleted,
//! in one transaction; rollups (and the idempotency keys) older than the rollup cutoff are deleted.
//! Rollups store sums and counts, so raw rows that arrive late for an already rolled-up minute
//! merge into it exactly at the next pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::{StoreError, blob};

/// One minute, the rollup resolution.
pub const ROLLUP_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    pub now_ms: i64,
    pub raw: Duration,
    pub rollup: Duration,
}

impl RetentionPolicy {
    /// Raw rows before this instant (a whole minute) are rolled up and deleted.
    pub fn raw_cutoff_ms(&self) -> i64 {
        let cutoff = self.now_ms - i64::try_from(self.raw.as_millis()).unwrap_or(i64::MAX);
        cutoff - cutoff.rem_euclid(ROLLUP_MS)
    }

    /// Rollups and batch ids before this instant are deleted.
    pub fn rollup_cutoff_ms(&self) -> i64 {
        self.now_ms - i64::try_from(self.rollup.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Rows touched by one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub raw_rows_rolled_up: usize,
    pub rollup_rows_deleted: usize,
    pub batches_deleted: usize,
    pub series_deleted: usize,
    pub boots_deleted: usize,
}

impl RetentionReport {
    /// Rows that ids cached by the writer may point to were deleted: such caches are stale.
    pub fn deleted_ids(&self) -> bool {
        self.series_deleted > 0 || self.boots_deleted > 0
    }
}

/// Folds the packed container readings before `cutoff` into `samples_1m`; returns how many
/// readings it folded.
fn roll_up_samples(tx: &Transaction<'_>, cutoff: i64) -> Result<usize, StoreError> {
    let mut minutes: HashMap<(i64, i64), (i64, [f64; blob::VALUES])> = HashMap::new();
    let mut readings = 0;
    {
        let mut stmt = tx.prepare("SELECT ts, readings FROM samples WHERE ts < ?1")?;
        let mut rows = stmt.query([cutoff])?;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let minute = ts - ts.rem_euclid(ROLLUP_MS);
            for entry in blob::entries(row.get_ref(1)?.as_blob()?) {
                let (n, sums) = minutes.entry((minute, entry.series_id)).or_default();
                *n += 1;
                for (sum, v) in sums.iter_mut().zip(entry.values) {
                    *sum += v;
                }
                readings += 1;
            }
        }
    }
    // Sums and counts merge exactly with a minute rolled up by an earlier pass.
    let mut upsert = tx.prepare(
        "INSERT INTO samples_1m (ts, series_id, n, sum_cpu_percent, sum_cpu_percent_node,
             sum_memory_bytes, sum_memory_percent, sum_disk_read, sum_disk_write, sum_io_ops)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (ts, series_id) DO UPDATE SET
             n = n + excluded.n,
             sum_cpu_percent = sum_cpu_percent + excluded.sum_cpu_percent,
             sum_cpu_percent_node = sum_cpu_percent_node + excluded.sum_cpu_percent_node,
             sum_memory_bytes = sum_memory_bytes + excluded.sum_memory_bytes,
             sum_memory_percent = sum_memory_percent + excluded.sum_memory_percent,
             sum_disk_read = sum_disk_read + excluded.sum_disk_read,
             sum_disk_write = sum_disk_write + excluded.sum_disk_write,
             sum_io_ops = sum_io_ops + excluded.sum_io_ops",
    )?;
    for ((minute, series_id), (n, s)) in minutes {
        upsert.execute(params![
            minute, series_id, n, s[0], s[1], s[2], s[3], s[4], s[5], s[6]
        ])?;
    }
    Ok(readings)
}

/// One pass. The caller owns any cache of ids: the report says whether they went stale.
pub(crate) fn run(
    conn: &mut Connection,
    policy: &RetentionPolicy,
    watermark: &AtomicI64,
) -> Result<RetentionReport, StoreError> {
    let raw_cutoff = policy.raw_cutoff_ms();
    let rollup_cutoff = policy.rollup_cutoff_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let raw_rows_rolled_up = roll_up_samples(&tx, raw_cutoff)?;
    tx.execute("DELETE FROM samples WHERE ts < ?1", [raw_cutoff])?;
    tx.execute(
        "INSERT INTO node_samples_1m (ts, node_id, n, sum_cpu_percent, max_cpus,
             sum_memory_total_bytes, sum_memory_free_bytes, sum_memory_available_bytes,
             sum_memory_used_bytes)
         SELECT ts - ts % 60000, node_id, count(*), sum(cpu_percent), max(cpus),
             sum(memory_total_bytes), sum(memory_free_bytes), sum(memory_available_bytes),
             sum(memory_used_bytes)
         FROM node_samples WHERE ts < ?1 GROUP BY ts - ts % 60000, node_id
         ON CONFLICT (ts, node_id) DO UPDATE SET
             n = n + excluded.n,
             sum_cpu_percent = sum_cpu_percent + excluded.sum_cpu_percent,
             max_cpus = max(max_cpus, excluded.max_cpus),
             sum_memory_total_bytes = sum_memory_total_bytes + excluded.sum_memory_total_bytes,
             sum_memory_free_bytes = sum_memory_free_bytes + excluded.sum_memory_free_bytes,
             sum_memory_available_bytes =
                 sum_memory_available_bytes + excluded.sum_memory_available_bytes,
             sum_memory_used_bytes = sum_memory_used_bytes + excluded.sum_memory_used_bytes",
        [raw_cutoff],
    )?;
    tx.execute("DELETE FROM node_samples WHERE ts < ?1", [raw_cutoff])?;
    tx.execute(
        "INSERT INTO kind_pods_1m (ts, node_id, kind, pods)
         SELECT ts - ts % 60000, node_id, kind, max(pods)
         FROM kind_pods WHERE ts < ?1 GROUP BY ts - ts % 60000, node_id, kind
         ON CONFLICT (ts, node_id, kind) DO UPDATE SET pods = max(pods, excluded.pods)",
        [raw_cutoff],
    )?;
    tx.execute("DELETE FROM kind_pods WHERE ts < ?1", [raw_cutoff])?;

    let mut rollup_rows_deleted = 0;
    for table in ["samples_1m", "node_samples_1m", "kind_pods_1m"] {
        rollup_rows_deleted += tx.execute(
            &format!("DELETE FROM {table} WHERE ts < ?1"),
            [rollup_cutoff],
        )?;
    }
    let batches_deleted = tx.execute("DELETE FROM batches WHERE ts < ?1", [rollup_cutoff])?;
    let series_deleted = tx.execute("DELETE FROM series WHERE last_ms < ?1", [rollup_cutoff])?;
    let boots_deleted = tx.execute(
        "DELETE FROM boots WHERE NOT EXISTS (SELECT 1 FROM batches WHERE batches.boot = boots.id)",
        [],
    )?;
    let previous = watermark.load(Ordering::SeqCst);
    let new_watermark = previous.max(raw_cutoff);
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![new_watermark],
    )?;
    tx.commit()?;
    watermark.store(new_watermark, Ordering::SeqCst);
    let report = RetentionReport {
        raw_rows_rolled_up,
        rollup_rows_deleted,
        batches_deleted,
        series_deleted,
        boots_deleted,
    };
    tracing::info!(?report, raw_cutoff, rollup_cutoff, "retention pass");
    Ok(report)
}
