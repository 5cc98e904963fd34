//! `/api/v1/snapshot`: the newest batch of every node.

use std::collections::HashMap;

use rusqlite::Connection;

use super::json::{close_array, open_array, open_row, push_i64, push_key, push_metric};
use super::series::{SeriesInfo, load_series, position, position_table};
use super::{Label, METRICS, Metric, Values, matches};
use crate::store::{StoreError, blob};

/// The latest batch of every node not older than `max_age_ms` before the newest one: one row per
/// container, all metric columns, sorted by node then series.
pub fn snapshot(
    conn: &Connection,
    nodes: &[String],
    max_age_ms: i64,
) -> Result<Vec<u8>, StoreError> {
    let newest: Option<i64> = conn.query_row("SELECT max(ts) FROM samples", [], |r| r.get(0))?;
    let mut out = open_array(1 << 12);
    let Some(newest) = newest else {
        close_array(&mut out);
        return Ok(out);
    };
    // Newest packed batch per node.
    type Packed = (i64, Vec<u8>, Option<Vec<u8>>);
    let mut latest: HashMap<i64, Packed> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT s.ts, s.node_id, s.readings, c.entries FROM samples s
             LEFT JOIN samples_contention c ON c.sample = s.id
             WHERE s.ts >= ?1 ORDER BY s.ts",
        )?;
        let mut rows = stmt.query([newest.saturating_sub(max_age_ms)])?;
        while let Some(row) = rows.next()? {
            latest.insert(row.get(1)?, (row.get(0)?, row.get(2)?, row.get(3)?));
        }
    }
    let mut series: Vec<SeriesInfo> = load_series(conn)?
        .into_iter()
        .filter(|s| matches(nodes, &s.node))
        .collect();
    series.sort_by(|a, b| {
        a.node
            .cmp(&b.node)
            .then(a.name.cmp(&b.name))
            .then(a.id.cmp(&b.id))
    });
    let table = position_table(&series);
    let mut picked: Vec<(usize, i64, Values)> = Vec::new();
    for (ts, usage, contention) in latest.values() {
        let mut contended = contention.as_deref().map(blob::contention_entries);
        for entry in blob::usage_entries(usage) {
            // Absent contention values are NaN, which the writer answers as null.
            let mut values = [f64::NAN; METRICS];
            values[..blob::USAGE].copy_from_slice(&entry.values);
            if let Some(other) = contended.as_mut().and_then(Iterator::next) {
                values[blob::USAGE..].copy_from_slice(&other);
            }
            if let Some(i) = position(&table, entry.series_id) {
                picked.push((i, *ts, values));
            }
        }
    }
    picked.sort_by_key(|(i, _, _)| *i);
    for (i, ts, values) in picked {
        open_row(&mut out);
        out.extend_from_slice(b"{\"time\":");
        push_i64(&mut out, ts);
        out.extend_from_slice(&series[i].label_fields(&Label::ALL));
        for metric in Metric::ALL {
            push_key(&mut out, metric.name());
            push_metric(&mut out, metric, values[metric.index()]);
        }
        out.push(b'}');
    }
    close_array(&mut out);
    Ok(out)
}
