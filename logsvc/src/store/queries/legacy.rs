//! `/data`: the original project's contract.

use rusqlite::{Connection, params};

use super::Metric;
use super::json::{close_array, open_array, open_row, push_f64, push_i64, push_str};
use crate::store::{StoreError, blob};
use crate::timefmt::rfc3339_ms;

/// The original project's `/data`: one row per container reading in `[from, to]`, oldest first,
/// at most `limit` rows (the newest ones). CPU and Mem in percent, IO in operations (per second),
/// Disc in MB (MiB read plus written per second).
pub fn legacy_data(
    conn: &Connection,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<u8>, StoreError> {
    // Newest first until the limit, then reversed: the newest `limit` readings, oldest first.
    let mut picked: Vec<(i64, [f64; blob::USAGE])> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT ts, readings FROM samples WHERE ts >= ?1 AND ts <= ?2 ORDER BY ts DESC, id DESC",
        )?;
        let mut rows = stmt.query(params![from, to])?;
        'rows: while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let entries: Vec<blob::UsageEntry> =
                blob::usage_entries(row.get_ref(1)?.as_blob()?).collect();
            for entry in entries.into_iter().rev() {
                if picked.len() >= limit {
                    break 'rows;
                }
                picked.push((ts, entry.values));
            }
        }
    }
    let mut out = open_array(96 * picked.len() + 2);
    for (ts, v) in picked.into_iter().rev() {
        open_row(&mut out);
        out.extend_from_slice(b"{\"time\":");
        push_str(&mut out, &rfc3339_ms(ts));
        out.extend_from_slice(b",\"CPU\":");
        push_f64(&mut out, v[Metric::CpuPercent.index()]);
        out.extend_from_slice(b",\"Mem\":");
        push_f64(&mut out, v[Metric::MemoryPercent.index()]);
        out.extend_from_slice(b",\"IO\":");
        push_i64(&mut out, v[Metric::IoOpsPerSec.index()].round() as i64);
        out.extend_from_slice(b",\"Disc\":");
        let disk = v[Metric::DiskReadBytesPerSec.index()] + v[Metric::DiskWriteBytesPerSec.index()];
        push_i64(&mut out, (disk / 1_048_576.0).round() as i64);
        out.push(b'}');
    }
    close_array(&mut out);
    Ok(out)
}
