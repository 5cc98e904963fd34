//! `/api/v1/query/containers`: container samples averaged per bucket.

use rusqlite::{Connection, params};

use super::json::{close_array, open_array, open_row, push_key, push_metric};
use super::series::{SeriesInfo, load_series, position, position_table};
use super::{
    ContainerQuery, Label, METRICS, Metric, RangeQuery, Values, matches, rollup_metric_columns,
};
use crate::store::{StoreError, blob};

/// The most an answer's buffer reserves before it is written (it grows past it if it must).
const MAX_RESERVED_BYTES: usize = 64 << 20;

/// `SELECT` of the rollup columns in `Metric::ALL` order (contention metrics: sum and count).
fn rollup_select() -> String {
    format!(
        "SELECT ts, series_id, n, {} FROM samples_1m WHERE ts >= ?1 AND ts <= ?2",
        rollup_metric_columns().join(", ")
    )
}

/// Visits `(ts, series id, weights, values)` in time order: 1-minute rollups below the
/// watermark (weights = readings rolled up, values = sums), then the packed raw readings (weight
/// 1, or 0 where a contention value is absent). Of the contention values only those in
/// `contention` (indices into `Metric::CONTENTION`) are decoded, the others weigh 0; with none,
/// the contention table is not read at all.
fn scan_containers<F>(
    conn: &Connection,
    range: &RangeQuery,
    watermark: i64,
    contention: &[usize],
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
        // Usage alone never touches the contention table.
        let mut stmt = conn.prepare_cached(if !contention.is_empty() {
            "SELECT s.ts, s.readings, c.entries FROM samples s
             LEFT JOIN samples_contention c ON c.sample = s.id
             WHERE s.ts >= ?1 AND s.ts <= ?2 ORDER BY s.ts"
        } else {
            "SELECT ts, readings, NULL FROM samples WHERE ts >= ?1 AND ts <= ?2 ORDER BY ts"
        })?;
        let mut rows = stmt.query(params![range.from.max(watermark), range.to])?;
        weights = [0.0; METRICS];
        values = [0.0; METRICS];
        weights[..blob::USAGE].fill(1.0);
        while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let usage = blob::usage_chunks(row.get_ref(1)?.as_blob()?);
            let mut contended = row
                .get_ref(2)?
                .as_blob_or_null()?
                .map(blob::contention_chunks);
            for entry in usage {
                let series_id = blob::decode_usage(entry, &mut values[..blob::USAGE]);
                match contended.as_mut().and_then(Iterator::next) {
                    Some(other) => {
                        for &k in contention {
                            // NaN: absent in this reading, so it weighs nothing.
                            let value = blob::contention_value(other, k);
                            let present = !value.is_nan();
                            weights[blob::USAGE + k] = if present { 1.0 } else { 0.0 };
                            values[blob::USAGE + k] = if present { value } else { 0.0 };
                        }
                    }
                    None => weights[blob::USAGE..].fill(0.0),
                }
                visit(ts, series_id, &weights, &values);
            }
        }
    }
    Ok(())
}

/// Weighted sums within one bucket of the selected metrics only (a dashboard panel asks for one),
/// flattened per series: `[series][selected metric]`.
struct Accs {
    width: usize,
    touched: Vec<bool>,
    weights: Vec<f64>,
    sums: Vec<f64>,
}

impl Accs {
    fn new(series: usize, width: usize) -> Accs {
        Accs {
            width,
            touched: vec![false; series],
            weights: vec![0.0; series * width],
            sums: vec![0.0; series * width],
        }
    }

    /// No reading of series `i` in this bucket had any of the selected metrics.
    fn absent(&self, i: usize) -> bool {
        self.weights[i * self.width..(i + 1) * self.width]
            .iter()
            .all(|w| *w == 0.0)
    }

    /// The selected metrics' (weight, sum) of series `i`, reset for the next bucket.
    fn take(&mut self, i: usize) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.touched[i] = false;
        let at = i * self.width..(i + 1) * self.width;
        self.weights[at.clone()]
            .iter_mut()
            .zip(&mut self.sums[at])
            .map(|(w, s)| (std::mem::take(w), std::mem::take(s)))
    }
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
        None => Metric::USAGE.to_vec(),
    };
    let contention: Vec<usize> = metrics
        .iter()
        .filter(|m| m.is_contention())
        .map(|m| m.index() - blob::USAGE)
        .collect();
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

    // At most one row per bucket and series: reserved up front, a panel's answer (megabytes) is
    // written without the copies of a growing buffer.
    let buckets = usize::try_from((range.to - range.from) / range.step.max(1) + 2).unwrap_or(1);
    let label_bytes = labels.iter().map(Vec::len).sum::<usize>() / labels.len().max(1);
    let row_bytes = 24 + label_bytes + 28 * metrics.len();
    let mut out = open_array(
        buckets
            .saturating_mul(series.len())
            .saturating_mul(row_bytes)
            .min(MAX_RESERVED_BYTES),
    );
    let mut accs = Accs::new(series.len(), metrics.len());
    let mut touched: Vec<usize> = Vec::new();
    let mut current: Option<i64> = None;
    let flush = |out: &mut Vec<u8>, bucket: i64, accs: &mut Accs, touched: &mut Vec<usize>| {
        touched.sort_unstable();
        let mut time = itoa::Buffer::new();
        let time = time.format(bucket).as_bytes();
        for &i in touched.iter() {
            // A series none of whose readings in the bucket had the metric (throttling of a cgroup
            // without a quota, pressure with PSI off) has no point there, rather than a null one.
            if accs.absent(i) {
                accs.take(i).for_each(drop);
                continue;
            }
            open_row(out);
            out.extend_from_slice(b"{\"time\":");
            out.extend_from_slice(time);
            out.extend_from_slice(&labels[i]);
            for ((metric, key), (weight, sum)) in metrics.iter().zip(&keys).zip(accs.take(i)) {
                out.extend_from_slice(key);
                push_metric(out, *metric, sum / weight);
            }
            out.push(b'}');
        }
        touched.clear();
    };
    scan_containers(
        conn,
        range,
        watermark,
        &contention,
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
            if !accs.touched[i] {
                accs.touched[i] = true;
                touched.push(i);
            }
            let at = i * accs.width;
            for (j, metric) in metrics.iter().enumerate() {
                let k = metric.index();
                accs.weights[at + j] += weights[k];
                accs.sums[at + j] += values[k];
            }
        },
    )?;
    if let Some(previous) = current {
        flush(&mut out, previous, &mut accs, &mut touched);
    }
    close_array(&mut out);
    Ok(out)
}
