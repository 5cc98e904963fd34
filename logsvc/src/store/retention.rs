//! Retention: raw rows older than the raw cutoff are folded into 1-minute rollups and deleted,
//! in one transaction; rollups (and the idempotency keys) older than the rollup cutoff are deleted.
//! Rollups store sums and counts, so raw rows that arrive late for an already rolled-up minute
//! merge into it exactly at the next pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Transaction, TransactionBehavior, params, params_from_iter};

use super::queries::{METRICS, Values, rollup_metric_columns};
use super::{Metric, StoreError, blob};

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
    pub oom_kills_deleted: usize,
    pub series_deleted: usize,
    pub boots_deleted: usize,
}

impl RetentionReport {
    /// Rows that ids cached by the writer may point to were deleted: such caches are stale.
    pub fn deleted_ids(&self) -> bool {
        self.series_deleted > 0 || self.boots_deleted > 0
    }
}

/// Sums of one series in one minute: `n` readings; per contention metric, how many had it.
struct Minute {
    n: i64,
    sums: Values,
    counts: [i64; blob::CONTENTION],
}

/// The upsert of one minute of one series into `samples_1m`, its columns from the vocabulary.
fn rollup_upsert() -> String {
    let columns = rollup_metric_columns();
    let placeholders: Vec<String> = (1..=columns.len() + 3).map(|k| format!("?{k}")).collect();
    // Sums and counts merge exactly with a minute rolled up by an earlier pass; contention
    // columns are NULL in rows rolled up before they existed.
    let merge: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = coalesce({c}, 0) + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO samples_1m (ts, series_id, n, {}) VALUES ({})
         ON CONFLICT (ts, series_id) DO UPDATE SET n = n + excluded.n, {}",
        columns.join(", "),
        placeholders.join(", "),
        merge.join(", ")
    )
}

/// Folds the packed container readings before `cutoff` into `samples_1m`; returns how many
/// readings it folded.
fn roll_up_samples(tx: &Transaction<'_>, cutoff: i64) -> Result<usize, StoreError> {
    let mut minutes: HashMap<(i64, i64), Minute> = HashMap::new();
    let mut readings = 0;
    {
        let mut stmt = tx.prepare(
            "SELECT s.ts, s.readings, c.entries FROM samples s
             LEFT JOIN samples_contention c ON c.sample = s.id WHERE s.ts < ?1",
        )?;
        let mut rows = stmt.query([cutoff])?;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let minute = ts - ts.rem_euclid(ROLLUP_MS);
            let mut contended = row
                .get_ref(2)?
                .as_blob_or_null()?
                .map(blob::contention_entries);
            for entry in blob::usage_entries(row.get_ref(1)?.as_blob()?) {
                let m = minutes
                    .entry((minute, entry.series_id))
                    .or_insert_with(|| Minute {
                        n: 0,
                        sums: [0.0; METRICS],
                        counts: [0; blob::CONTENTION],
                    });
                m.n += 1;
                for (sum, v) in m.sums.iter_mut().zip(entry.values) {
                    *sum += v;
                }
                if let Some(other) = contended.as_mut().and_then(Iterator::next) {
                    for (k, v) in other.into_iter().enumerate() {
                        if !v.is_nan() {
                            m.sums[blob::USAGE + k] += v;
                            m.counts[k] += 1;
                        }
                    }
                }
                readings += 1;
            }
        }
    }
    let mut upsert = tx.prepare(&rollup_upsert())?;
    for ((minute, series_id), m) in minutes {
        let mut values = vec![
            SqlValue::Integer(minute),
            SqlValue::Integer(series_id),
            SqlValue::Integer(m.n),
        ];
        for metric in Metric::ALL {
            values.push(SqlValue::Real(m.sums[metric.index()]));
            if metric.is_contention() {
                values.push(SqlValue::Integer(m.counts[metric.index() - blob::USAGE]));
            }
        }
        upsert.execute(params_from_iter(values))?;
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
    tx.execute(
        "DELETE FROM samples_contention
         WHERE sample IN (SELECT id FROM samples WHERE ts < ?1)",
        [raw_cutoff],
    )?;
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
    // OOM kills are events, not samples: kept whole as long as the rollups.
    let oom_kills_deleted = tx.execute("DELETE FROM oom_kills WHERE ts < ?1", [rollup_cutoff])?;
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
        oom_kills_deleted,
        series_deleted,
        boots_deleted,
    };
    tracing::info!(?report, raw_cutoff, rollup_cutoff, "retention pass");
    Ok(report)
}
