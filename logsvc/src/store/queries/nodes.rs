//! `/api/v1/query/nodes` and `/api/v1/query/pods-per-kind`: per-node series.

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;

use super::json::{close_array, open_array, open_row, push_f64, push_i64, push_str};
use super::scan::scan_split;
use super::{RangeQuery, matches};
use crate::store::StoreError;

/// Weighted sums of one node within one bucket (raw rows weigh 1, rollups their count).
#[derive(Clone, Copy, Default)]
struct Acc {
    n: f64,
    sums: [f64; 5],
}

/// Node samples averaged per bucket; rows sorted by time, then node.
pub fn node_samples(
    conn: &Connection,
    range: &RangeQuery,
    nodes: &[String],
    watermark: i64,
) -> Result<Vec<u8>, StoreError> {
    let mut names: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, name FROM nodes")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    names.retain(|(_, name)| matches(nodes, name));
    names.sort_by(|a, b| a.1.cmp(&b.1));
    let index: HashMap<i64, usize> = names.iter().enumerate().map(|(i, n)| (n.0, i)).collect();
    // Columns: cpu, cpus(max), total, free, available, used.
    let raw_sql = "SELECT ts, node_id, 1, cpu_percent, cpus, memory_total_bytes, memory_free_bytes,
                          memory_available_bytes, memory_used_bytes
                   FROM node_samples WHERE ts >= ?1 AND ts <= ?2";
    let rollup_sql = "SELECT ts, node_id, n, sum_cpu_percent, max_cpus, sum_memory_total_bytes,
                             sum_memory_free_bytes, sum_memory_available_bytes, sum_memory_used_bytes
                      FROM node_samples_1m WHERE ts >= ?1 AND ts <= ?2";
    let mut out = open_array(1 << 12);
    let mut accs = vec![(Acc::default(), 0i64); names.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut current: Option<i64> = None;
    let flush =
        |out: &mut Vec<u8>, bucket: i64, accs: &mut [(Acc, i64)], touched: &mut Vec<usize>| {
            touched.sort_unstable();
            for &i in touched.iter() {
                let (acc, cpus) = accs[i];
                let mean = |k: usize| acc.sums[k] / acc.n;
                open_row(out);
                out.extend_from_slice(b"{\"time\":");
                push_i64(out, bucket);
                out.extend_from_slice(b",\"node\":");
                push_str(out, &names[i].1);
                out.extend_from_slice(b",\"cpu_percent\":");
                push_f64(out, mean(0));
                out.extend_from_slice(b",\"cpus\":");
                push_i64(out, cpus);
                for (k, key) in [
                    (1, "memory_total_bytes"),
                    (2, "memory_free_bytes"),
                    (3, "memory_available_bytes"),
                    (4, "memory_used_bytes"),
                ] {
                    out.push(b',');
                    push_str(out, key);
                    out.push(b':');
                    push_i64(out, mean(k).round() as i64);
                }
                let total = mean(1);
                let used_percent = if total > 0.0 {
                    mean(4) / total * 100.0
                } else {
                    0.0
                };
                out.extend_from_slice(b",\"memory_used_percent\":");
                push_f64(out, used_percent);
                out.push(b'}');
                accs[i] = (Acc::default(), 0);
            }
            touched.clear();
        };
    scan_split(conn, range, watermark, raw_sql, rollup_sql, |row| {
        let id: i64 = row.get(1)?;
        let Some(&i) = index.get(&id) else {
            return Ok(());
        };
        let bucket = range.bucket(row.get(0)?);
        if current != Some(bucket) {
            if let Some(previous) = current {
                flush(&mut out, previous, &mut accs, &mut touched);
            }
            current = Some(bucket);
        }
        let (acc, cpus) = &mut accs[i];
        if acc.n == 0.0 {
            touched.push(i);
        }
        acc.n += row.get::<_, f64>(2)?;
        acc.sums[0] += row.get::<_, f64>(3)?;
        *cpus = (*cpus).max(row.get::<_, i64>(4)?);
        for k in 1..5 {
            acc.sums[k] += row.get::<_, f64>(4 + k)?;
        }
        Ok(())
    })?;
    if let Some(previous) = current {
        flush(&mut out, previous, &mut accs, &mut touched);
    }
    close_array(&mut out);
    Ok(out)
}

/// Stress pods per kind per bucket: the most pods any batch of a node saw in the bucket, summed
/// over nodes. Rows sorted by time, then kind.
pub fn pods_per_kind(
    conn: &Connection,
    range: &RangeQuery,
    watermark: i64,
) -> Result<Vec<u8>, StoreError> {
    let raw_sql = "SELECT ts, node_id, kind, pods FROM kind_pods WHERE ts >= ?1 AND ts <= ?2";
    let rollup_sql = "SELECT ts, node_id, kind, pods FROM kind_pods_1m WHERE ts >= ?1 AND ts <= ?2";
    let mut out = open_array(1 << 12);
    let mut per_node: HashMap<(i64, String), i64> = HashMap::new();
    let mut current: Option<i64> = None;
    let flush = |out: &mut Vec<u8>, bucket: i64, per_node: &mut HashMap<(i64, String), i64>| {
        let mut per_kind: BTreeMap<String, i64> = BTreeMap::new();
        for ((_, kind), pods) in per_node.drain() {
            *per_kind.entry(kind).or_default() += pods;
        }
        for (kind, pods) in per_kind {
            open_row(out);
            out.extend_from_slice(b"{\"time\":");
            push_i64(out, bucket);
            out.extend_from_slice(b",\"kind\":");
            push_str(out, &kind);
            out.extend_from_slice(b",\"pods\":");
            push_i64(out, pods);
            out.push(b'}');
        }
    };
    scan_split(conn, range, watermark, raw_sql, rollup_sql, |row| {
        let bucket = range.bucket(row.get(0)?);
        if current != Some(bucket) {
            if let Some(previous) = current {
                flush(&mut out, previous, &mut per_node);
            }
            current = Some(bucket);
        }
        let pods: i64 = row.get(3)?;
        let slot = per_node.entry((row.get(1)?, row.get(2)?)).or_default();
        *slot = (*slot).max(pods);
        Ok(())
    })?;
    if let Some(previous) = current {
        flush(&mut out, previous, &mut per_node);
    }
    close_array(&mut out);
    Ok(out)
}
