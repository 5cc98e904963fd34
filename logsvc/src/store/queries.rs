//! The read side: Grafana Infinity shaped queries. Every function returns a JSON array of flat
//! rows, sorted by time, written straight into a byte buffer (labels are escaped once per series,
//! not once per row, which keeps a 200,000-row answer in the tens of milliseconds).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

use rusqlite::{Connection, params};

use super::StoreError;
use crate::timefmt::rfc3339_ms;

/// Slack on `series.last_ms`, which the writer refreshes at most once a minute.
const LAST_SEEN_SLACK_MS: i64 = 120_000;

/// `[from, to]` in epoch ms, bucketed by `step` (buckets start at multiples of `step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeQuery {
    pub from: i64,
    pub to: i64,
    pub step: i64,
}

impl RangeQuery {
    fn bucket(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.step)
    }
}

/// A container metric column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    CpuPercent,
    CpuPercentNode,
    MemoryBytes,
    MemoryPercent,
    DiskReadBytesPerSec,
    DiskWriteBytesPerSec,
    IoOpsPerSec,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::CpuPercent,
        Metric::CpuPercentNode,
        Metric::MemoryBytes,
        Metric::MemoryPercent,
        Metric::DiskReadBytesPerSec,
        Metric::DiskWriteBytesPerSec,
        Metric::IoOpsPerSec,
    ];

    /// Column name in answers and in the raw table.
    pub fn name(self) -> &'static str {
        match self {
            Metric::CpuPercent => "cpu_percent",
            Metric::CpuPercentNode => "cpu_percent_node",
            Metric::MemoryBytes => "memory_bytes",
            Metric::MemoryPercent => "memory_percent",
            Metric::DiskReadBytesPerSec => "disk_read_bytes_per_sec",
            Metric::DiskWriteBytesPerSec => "disk_write_bytes_per_sec",
            Metric::IoOpsPerSec => "io_ops_per_sec",
        }
    }

    fn rollup_column(self) -> &'static str {
        match self {
            Metric::CpuPercent => "sum_cpu_percent",
            Metric::CpuPercentNode => "sum_cpu_percent_node",
            Metric::MemoryBytes => "sum_memory_bytes",
            Metric::MemoryPercent => "sum_memory_percent",
            Metric::DiskReadBytesPerSec => "sum_disk_read",
            Metric::DiskWriteBytesPerSec => "sum_disk_write",
            Metric::IoOpsPerSec => "sum_io_ops",
        }
    }

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// Container samples: which series and which columns.
#[derive(Debug, Clone, Default)]
pub struct ContainerQuery {
    pub workloads: Vec<String>,
    pub kinds: Vec<String>,
    /// Series names (`namespace/pod/container`, or the cgroup path of system cgroups).
    pub containers: Vec<String>,
    pub nodes: Vec<String>,
    /// Only this column, named `value`; all metric columns when `None`.
    pub metric: Option<Metric>,
}

fn matches(wanted: &[String], value: &str) -> bool {
    wanted.is_empty() || wanted.iter().any(|w| w == value)
}

struct SeriesInfo {
    id: i64,
    node: String,
    namespace: String,
    pod: String,
    container: String,
    workload: String,
    kind: String,
    name: String,
    first_ms: i64,
    last_ms: i64,
}

impl SeriesInfo {
    fn overlaps(&self, from: Option<i64>, to: Option<i64>) -> bool {
        from.is_none_or(|f| self.last_ms + LAST_SEEN_SLACK_MS >= f)
            && to.is_none_or(|t| self.first_ms <= t)
    }

    /// `"node":"…","namespace":"…",…,"series":"…"`, escaped once.
    fn label_fields(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        for (key, value) in [
            ("node", &self.node),
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("container", &self.container),
            ("workload", &self.workload),
            ("kind", &self.kind),
            ("series", &self.name),
        ] {
            if !out.is_empty() {
                out.push(b',');
            }
            push_str(&mut out, key);
            out.push(b':');
            push_str(&mut out, value);
        }
        out
    }
}

fn load_series(conn: &Connection) -> Result<Vec<SeriesInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, n.name, s.namespace, s.pod, s.container, s.workload, s.kind, s.name,
                s.first_ms, s.last_ms
         FROM series s JOIN nodes n ON n.id = s.node_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SeriesInfo {
            id: r.get(0)?,
            node: r.get(1)?,
            namespace: r.get(2)?,
            pod: r.get(3)?,
            container: r.get(4)?,
            workload: r.get(5)?,
            kind: r.get(6)?,
            name: r.get(7)?,
            first_ms: r.get(8)?,
            last_ms: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn push_str(out: &mut Vec<u8>, value: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn push_f64(out: &mut Vec<u8>, value: f64) {
    let _ = serde_json::to_writer(&mut *out, &value);
}

fn push_i64(out: &mut Vec<u8>, value: i64) {
    let _ = write!(out, "{value}");
}

/// Separates rows: the buffer starts with `[`, so anything longer already holds a row.
fn open_row(out: &mut Vec<u8>) {
    if out.len() > 1 {
        out.push(b',');
    }
}

/// Weighted sums of one series within one bucket (raw rows weigh 1, rollups their count).
#[derive(Clone, Copy, Default)]
struct Acc {
    n: f64,
    sums: [f64; 7],
}

/// Reads `(ts, id, n, v0..vk)` rows from rollups below the watermark, then raw rows above it,
/// and hands each to `visit`. Rollup rows come first and both are sorted by time, so the
/// stream is in time order.
fn scan_split<F>(
    conn: &Connection,
    range: &RangeQuery,
    watermark: i64,
    raw_sql: &str,
    rollup_sql: &str,
    mut visit: F,
) -> Result<(), StoreError>
where
    F: FnMut(&rusqlite::Row<'_>, bool) -> Result<(), StoreError>,
{
    if range.from < watermark {
        let mut stmt = conn.prepare_cached(rollup_sql)?;
        let mut rows = stmt.query(params![range.from, range.to.min(watermark - 1)])?;
        while let Some(row) = rows.next()? {
            visit(row, true)?;
        }
    }
    if range.to >= watermark {
        let mut stmt = conn.prepare_cached(raw_sql)?;
        let mut rows = stmt.query(params![range.from.max(watermark), range.to])?;
        while let Some(row) = rows.next()? {
            visit(row, false)?;
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
    let index: HashMap<i64, usize> = series.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let labels: Vec<Vec<u8>> = series.iter().map(SeriesInfo::label_fields).collect();
    let metrics: Vec<Metric> = match query.metric {
        Some(m) => vec![m],
        None => Metric::ALL.to_vec(),
    };
    let raw_sql = format!(
        "SELECT ts, series_id, 1, {} FROM samples WHERE ts >= ?1 AND ts <= ?2",
        metrics
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rollup_sql = format!(
        "SELECT ts, series_id, n, {} FROM samples_1m WHERE ts >= ?1 AND ts <= ?2",
        metrics
            .iter()
            .map(|m| m.rollup_column())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let names: Vec<Vec<u8>> = metrics
        .iter()
        .map(|m| {
            let mut key = Vec::new();
            push_str(
                &mut key,
                if query.metric.is_some() {
                    "value"
                } else {
                    m.name()
                },
            );
            key.push(b':');
            key
        })
        .collect();
    let integer: Vec<bool> = metrics.iter().map(|m| *m == Metric::MemoryBytes).collect();

    let mut out = Vec::with_capacity(1 << 16);
    out.push(b'[');
    let mut accs = vec![Acc::default(); series.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut current: Option<i64> = None;
    let flush = |out: &mut Vec<u8>, bucket: i64, accs: &mut [Acc], touched: &mut Vec<usize>| {
        touched.sort_unstable();
        for &i in touched.iter() {
            let acc = accs[i];
            open_row(out);
            out.extend_from_slice(b"{\"time\":");
            push_i64(out, bucket);
            out.push(b',');
            out.extend_from_slice(&labels[i]);
            for (k, name) in names.iter().enumerate() {
                out.push(b',');
                out.extend_from_slice(name);
                let mean = acc.sums[k] / acc.n;
                if integer[k] {
                    push_i64(out, mean.round() as i64);
                } else {
                    push_f64(out, mean);
                }
            }
            out.push(b'}');
            accs[i] = Acc::default();
        }
        touched.clear();
    };
    let columns = metrics.len();
    scan_split(conn, range, watermark, &raw_sql, &rollup_sql, |row, _| {
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
        let acc = &mut accs[i];
        if acc.n == 0.0 {
            touched.push(i);
        }
        acc.n += row.get::<_, f64>(2)?;
        for k in 0..columns {
            acc.sums[k] += row.get::<_, f64>(3 + k)?;
        }
        Ok(())
    })?;
    if let Some(previous) = current {
        flush(&mut out, previous, &mut accs, &mut touched);
    }
    close_array(&mut out);
    Ok(out)
}

fn close_array(out: &mut Vec<u8>) {
    out.push(b']');
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
    let mut out = Vec::with_capacity(1 << 12);
    out.push(b'[');
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
    scan_split(conn, range, watermark, raw_sql, rollup_sql, |row, _| {
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
    let mut out = Vec::with_capacity(1 << 12);
    out.push(b'[');
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
    scan_split(conn, range, watermark, raw_sql, rollup_sql, |row, _| {
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

/// Which label a variable lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    Workloads,
    Kinds,
    Containers,
    Nodes,
    Namespaces,
    Pods,
}

impl LabelKind {
    pub fn parse(text: &str) -> Option<LabelKind> {
        Some(match text {
            "workloads" => LabelKind::Workloads,
            "kinds" => LabelKind::Kinds,
            "containers" => LabelKind::Containers,
            "nodes" => LabelKind::Nodes,
            "namespaces" => LabelKind::Namespaces,
            "pods" => LabelKind::Pods,
            _ => return None,
        })
    }
}

/// Distinct non-empty values of one label among series with samples in `[from, to]` (any time
/// when unbounded), optionally narrowed by workload and kind. `[{"value": …}, …]`, sorted.
pub fn label_values(
    conn: &Connection,
    label: LabelKind,
    from: Option<i64>,
    to: Option<i64>,
    query: &ContainerQuery,
) -> Result<Vec<u8>, StoreError> {
    let mut values: Vec<String> = load_series(conn)?
        .into_iter()
        .filter(|s| {
            s.overlaps(from, to)
                && matches(&query.workloads, &s.workload)
                && matches(&query.kinds, &s.kind)
                && matches(&query.nodes, &s.node)
        })
        .map(|s| match label {
            LabelKind::Workloads => s.workload,
            LabelKind::Kinds => s.kind,
            LabelKind::Containers => s.name,
            LabelKind::Nodes => s.node,
            LabelKind::Namespaces => s.namespace,
            LabelKind::Pods => s.pod,
        })
        .filter(|v| !v.is_empty())
        .collect();
    values.sort_unstable();
    values.dedup();
    let mut out = Vec::with_capacity(64 * values.len() + 2);
    out.push(b'[');
    for value in values {
        open_row(&mut out);
        out.extend_from_slice(b"{\"value\":");
        push_str(&mut out, &value);
        out.push(b'}');
    }
    close_array(&mut out);
    Ok(out)
}

/// The latest batch of every node not older than `max_age_ms` before the newest one: one row per
/// container, all metric columns, sorted by node then series.
pub fn snapshot(
    conn: &Connection,
    nodes: &[String],
    max_age_ms: i64,
) -> Result<Vec<u8>, StoreError> {
    let newest: Option<i64> =
        conn.query_row("SELECT max(ts) FROM node_samples", [], |r| r.get(0))?;
    let mut out = Vec::with_capacity(1 << 12);
    out.push(b'[');
    let Some(newest) = newest else {
        close_array(&mut out);
        return Ok(out);
    };
    let mut latest: HashMap<i64, i64> = HashMap::new();
    {
        let mut stmt =
            conn.prepare_cached("SELECT ts, node_id FROM node_samples WHERE ts >= ?1")?;
        let mut rows = stmt.query([newest - max_age_ms])?;
        while let Some(row) = rows.next()? {
            latest.insert(row.get(1)?, row.get(0)?);
        }
    }
    let mut series: Vec<SeriesInfo> = load_series(conn)?
        .into_iter()
        .filter(|s| matches(nodes, &s.node))
        .collect();
    series.sort_by(|a, b| a.node.cmp(&b.node).then(a.name.cmp(&b.name)));
    let node_of: HashMap<i64, i64> = conn
        .prepare_cached("SELECT id, node_id FROM series")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT cpu_percent, cpu_percent_node, memory_bytes, memory_percent,
                disk_read_bytes_per_sec, disk_write_bytes_per_sec, io_ops_per_sec
         FROM samples WHERE ts = ?1 AND series_id = ?2",
    )?;
    for s in &series {
        let Some(ts) = node_of.get(&s.id).and_then(|node| latest.get(node)) else {
            continue;
        };
        let mut rows = stmt.query(params![ts, s.id])?;
        let Some(row) = rows.next()? else {
            continue;
        };
        open_row(&mut out);
        out.extend_from_slice(b"{\"time\":");
        push_i64(&mut out, *ts);
        out.push(b',');
        out.extend_from_slice(&s.label_fields());
        for (k, metric) in Metric::ALL.iter().enumerate() {
            out.push(b',');
            push_str(&mut out, metric.name());
            out.push(b':');
            if *metric == Metric::MemoryBytes {
                push_i64(&mut out, row.get(k)?);
            } else {
                push_f64(&mut out, row.get(k)?);
            }
        }
        out.push(b'}');
    }
    close_array(&mut out);
    Ok(out)
}

/// The original project's `/data`: one row per container reading in `[from, to]`, oldest first,
/// at most `limit` rows (the newest ones). CPU and Mem in percent, IO in operations (per second),
/// Disc in MB (MiB read plus written per second).
pub fn legacy_data(
    conn: &Connection,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts, cpu_percent, memory_percent, io_ops_per_sec,
                disk_read_bytes_per_sec + disk_write_bytes_per_sec
         FROM samples WHERE ts >= ?1 AND ts <= ?2 ORDER BY ts DESC, series_id DESC LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(
            params![from, to, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, f64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, f64>(3)?,
                    r.get::<_, f64>(4)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(96 * rows.len() + 2);
    out.push(b'[');
    for (ts, cpu, mem, io, disk) in rows.into_iter().rev() {
        open_row(&mut out);
        out.extend_from_slice(b"{\"time\":");
        push_str(&mut out, &rfc3339_ms(ts));
        out.extend_from_slice(b",\"CPU\":");
        push_f64(&mut out, cpu);
        out.extend_from_slice(b",\"Mem\":");
        push_f64(&mut out, mem);
        out.extend_from_slice(b",\"IO\":");
        push_i64(&mut out, io.round() as i64);
        out.extend_from_slice(b",\"Disc\":");
        push_i64(&mut out, (disk / 1_048_576.0).round() as i64);
        out.push(b'}');
    }
    close_array(&mut out);
    Ok(out)
}
