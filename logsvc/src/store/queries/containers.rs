//! `/api/v1/query/containers`: container samples averaged per bucket.

use rusqlite::{Connection, params};

use super::json::{close_array, open_array, open_row, push_key, push_metric};
use super::series::{SeriesInfo, load_series, position, position_table};
use super::{ContainerQuery, Label, METRICS, Metric, RangeQuery, Values, matches, rollup_columns};
use crate::store::{StoreError, blob};

/// `SELECT` of the rollup columns in `Metric::ALL` order (contention metrics: sum and count).
fn rollup_select() -> String {
    let mut columns = vec!["ts".to_string(), "series_id".into(), "n".into()];
    for metric in Metric::ALL {
        let (sum, count) = rollup_columns(metric);
        columns.push(sum);
        columns.extend(count);
    }
    format!(
        "SELECT {} FROM samples_1m WHERE ts >= ?1 AND ts <= ?2",
        columns.join(", ")
    )
}

/// Visits `(ts, series id, weights, values)` in time order: 1-minute rollups below the
/// watermark (weights = readings rolled up, values = sums), then the packed raw readings (weight
/// 1, or 0 where a contention value is absent). The contention blob is decoded only when
/// `contention` is set; otherwise those weights stay 0.
fn scan_containers<F>(
    conn: &Connection,
    range: &RangeQuery,
    watermark: i64,
    contention: bool,
    mut visit: F,
) -> Result<(), StoreError>
where
    F: FnMut(i64, i64, &Values, &Values),
{
    let mut weights: Values = [0.0; METRICS];
    let mut values: Values = [0.0; METRICS];
    if range.from < watermark {
        let mut stmt = conn.prepare_cached(&rollup_select())?;
        let mut rows = stmt.query(params![
            range.from,
            range.to.min(watermark.saturating_sub(1))
        ])?;
        while let Some(row) = rows.next()? {
            let n: f64 = row.get(2)?;
            let mut column = 3;
            for metric in Metric::ALL {
                let k = metric.index();
                values[k] = row.get::<_, Option<f64>>(column)?.unwrap_or(0.0);
                column += 1;
                weights[k] = if metric.is_contention() {
                    column += 1;
                    row.get::<_, Option<f64>>(column - 1)?.unwrap_or(0.0)
                } else {
                    n
                };
            }
            visit(row.get(0)?, row.get(1)?, &weights, &values);
        }
    }
    if range.to >= watermark {
        let mut stmt = conn.prepare_cached(
            "SELECT ts, readings, contention FROM samples WHERE ts >= ?1 AND ts <= ?2 ORDER BY ts",
        )?;
        let mut rows = stmt.query(params![range.from.max(watermark), range.to])?;
        weights = [0.0; METRICS];
        values = [0.0; METRICS];
        weights[..blob::USAGE].fill(1.0);
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let usage = blob::entries::<{ blob::USAGE }>(row.get_ref(1)?.as_blob()?);
            let packed = if contention {
                row.get_ref(2)?.as_blob_or_null()?
            } else {
                None
            };
            let mut contended = packed.map(blob::entries::<{ blob::CONTENTION }>);
            for entry in usage {
                values[..blob::USAGE].copy_from_slice(&entry.values);
                match contended.as_mut().and_then(Iterator::next) {
                    Some(other) => {
                        for (k, v) in other.values.into_iter().enumerate() {
                            let present = !v.is_nan();
                            weights[blob::USAGE + k] = if present { 1.0 } else { 0.0 };
                            values[blob::USAGE + k] = if present { v } else { 0.0 };
                        }
                    }
                    None => weights[blob::USAGE..].fill(0.0),
                }
                visit(ts, entry.series_id, &weights, &values);
            }
        }
    }
    Ok(())
}

/// Weighted sums of one series within one bucket, per metric.
#[derive(Clone, Copy)]
struct Acc {
    touched: bool,
    weights: Values,
    sums: Values,
}

const EMPTY: Acc = Acc {
    touched: false,
    weights: [0.0; METRICS],
    sums: [0.0; METRICS],
};

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
        None => Metric::USAGE.to_vec(),
    };
    let contention = metrics.iter().any(|m| m.is_contention());
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
    let mut accs = vec![EMPTY; series.len()];
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
                let k = metric.index();
                push_metric(out, *metric, acc.sums[k] / acc.weights[k]);
            }
            out.push(b'}');
            accs[i] = EMPTY;
        }
        touched.clear();
    };
    scan_containers(
        conn,
        range,
        watermark,
        contention,
        |ts, series_id, weights, values| {
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
            if !acc.touched {
                acc.touched = true;
                touched.push(i);
            }
            for metric in &metrics {
                let k = metric.index();
                acc.weights[k] += weights[k];
                acc.sums[k] += values[k];
            }
        },
    )?;
    if let Some(previous) = current {
        flush(&mut out, previous, &mut accs, &mut touched);
    }
    close_array(&mut out);
    Ok(out)
}
