//! `/api/v1/query/containers`: container samples averaged per bucket.
use rusqlite::{Connection, params};

use super::json::{close_array, open_array, open_row, push_key, push_metric};
use super::scan::Acc;
use super::series::{SeriesInfo, load_series, position, position_table};
use super::{ContainerQuery, Label, Metric, RangeQuery, matches};
use crate::store::{StoreError, blob};

/// Visits `(ts, series id, weight, values in Metric::ALL order)` in time order: 1-minute rollups
/// below the watermark (weight = readings rolled up, values = sums), then the packed raw
/// readings (weight 1).
fn scan_containers<F>(
    conn: &Connection,
    range: &RangeQuery,
    watermark: i64,
    mut visit: F,
) -> Result<(), StoreError>
where
    F: FnMut(i64, i64, f64, &[f64; blob::VALUES]),
{
    if range.from < watermark {
        let mut stmt = conn.prepare_cached(
            "SELECT ts, series_id, n, sum_cpu_percent, sum_cpu_percent_node, sum_memory_bytes,
                    sum_memory_percent, sum_disk_read, sum_disk_write, sum_io_ops
             FROM samples_1m WHERE ts >= ?1 AND ts <= ?2",
        )?;
        let mut rows = stmt.query(params![
            range.from,
            range.to.min(watermark.saturating_sub(1))
        ])?;
        while let Some(row) = rows.next()? {
            let mut values = [0.0; blob::VALUES];
            for (k, v) in values.iter_mut().enumerate() {
                *v = row.get(3 + k)?;
            }
            visit(row.get(0)?, row.get(1)?, row.get(2)?, &values);
        }
    }
    if range.to >= watermark {
        let mut stmt = conn.prepare_cached(
            "SELECT ts, readings FROM samples WHERE ts >= ?1 AND ts <= ?2 ORDER BY ts",
        )?;
        let mut rows = stmt.query(params![range.from.max(watermark), range.to])?;
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            for entry in blob::entries(row.get_ref(1)?.as_blob()?) {
                visit(ts, entry.series_id, 1.0, &entry.values);
            }
        }
    }
    Ok(())
}

/// Container samples averaged per bucket; rows sorted by time, then series name.
pub fn container_samples(
    conn: &Connection,
    range: &RangeQuery,
    query: &ContainerQuery,
    watermark: i64,
) -> Result<Vec<u8>, StoreError> {
    let mut series: Vec<SeriesInfo> = load_series(conn)?
        .into_iter()
        .filter(|s| {
            s.overlaps(Some(range.from), Some(range.to))
                && matches(&query.workloads, &s.workload)
                && matches(&query.kinds, &s.kind)
                && matches(&query.containers, &s.name)
                && matches(&query.nodes, &s.node)
        })
        .collect();
    series.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let table = position_table(&series);
    let label_set = query.labels.clone().unwrap_or_else(|| Label::ALL.to_vec());
    let labels: Vec<Vec<u8>> = series.iter().map(|s| s.label_fields(&label_set)).collect();
    let metrics: Vec<Metric> = match query.metric {
        Some(m) => vec![m],
        None => Metric::ALL.to_vec(),
    };
    // `,"cpu_percent":` etc., escaped once.
    let keys: Vec<Vec<u8>> = metrics
        .iter()
        .map(|m| {
            let mut key = Vec::new();
            push_key(
                &mut key,
                if query.metric.is_some() {
                    "value"
                } else {
                    m.name()
                },
            );
            key
        })
        .collect();

    let mut out = open_array(1 << 16);
    let mut accs = vec![Acc::default(); series.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut current: Option<i64> = None;
    let flush = |out: &mut Vec<u8>, bucket: i64, accs: &mut [Acc], touched: &mut Vec<usize>| {
        touched.sort_unstable();
        let mut time = itoa::Buffer::new();
        let time = time.format(bucket).as_bytes();
        for &i in touched.iter() {
            let acc = accs[i];
            open_row(out);
            out.extend_from_slice(b"{\"time\":");
            out.extend_from_slice(time);
            out.extend_from_slice(&labels[i]);
            for (metric, key) in metrics.iter().zip(&keys) {
                out.extend_from_slice(key);
                push_metric(out, *metric, acc.sums[metric.index()] / acc.n);
            }
            out.push(b'}');
            accs[i] = Acc::default();
        }
        touched.clear();
    };
    scan_containers(conn, range, watermark, |ts, series_id, n, values| {
        let Some(i) = position(&table, series_id) else {
            return;
        };
        let bucket = range.bucket(ts);
        if current != Some(bucket) {
            if let Some(previous) = current {
                flush(&mut out, previous, &mut accs, &mut touched);
            }
            current = Some(bucket);
        }
        let acc = &mut accs[i];
        if acc.n == 0.0 {
            touched.push(i);
        }
        acc.n += n;
        for metric in &metrics {
            acc.sums[metric.index()] += values[metric.index()];
        }
    })?;
    if let Some(previous) = current {
        flush(&mut out, previous, &mut accs, &mut touched);
    }
    close_array(&mut out);
    Ok(out)
}
