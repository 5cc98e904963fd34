//! The read side: Grafana Infinity shaped queries. Every function returns a JSON array of flat
//! rows, sorted by time, written straight into a byte buffer (labels are escaped once per series,
//! not once per row, which keeps a 200,000-row answer in the tens of milliseconds).

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};

use super::{StoreError, blob};
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

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == text)
    }

    /// Position in a packed entry (`blob::Entry::values`) and in `Metric::ALL`.
    fn index(self) -> usize {
        self as usize
    }
}

/// A label column of container rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Node,
    Namespace,
    Pod,
    Container,
    Workload,
    Kind,
    Series,
}

impl Label {
    pub const ALL: [Label; 7] = [
        Label::Node,
        Label::Namespace,
        Label::Pod,
        Label::Container,
        Label::Workload,
        Label::Kind,
        Label::Series,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Label::Node => "node",
            Label::Namespace => "namespace",
            Label::Pod => "pod",
            Label::Container => "container",
            Label::Workload => "workload",
            Label::Kind => "kind",
            Label::Series => "series",
        }
    }

    pub fn parse(text: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == text)
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
    /// Label columns in each row; all of them when `None`.
    pub labels: Option<Vec<Label>>,
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

    fn label(&self, label: Label) -> &str {
        match label {
            Label::Node => &self.node,
            Label::Namespace => &self.namespace,
            Label::Pod => &self.pod,
            Label::Container => &self.container,
            Label::Workload => &self.workload,
            Label::Kind => &self.kind,
            Label::Series => &self.name,
        }
    }

    /// `"node":"…","namespace":"…",…,"series":"…"` (the chosen labels), escaped once.
    fn label_fields(&self, labels: &[Label]) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        for label in labels {
            out.push(b',');
            push_str(&mut out, label.name());
            out.push(b':');
            push_str(&mut out, self.label(*label));
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

/// JSON has no NaN or infinity: those (never stored, but sums could overflow) become null.
fn push_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn push_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
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

/// Reads rows from rollups below the watermark, then raw rows above it,
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

/// Series ids to positions in a sorted series list (`u32::MAX`: not selected). Ids are dense
/// small integers (SQLite rowids), so a vector beats hashing 360,000 times per query.
fn position_table(series: &[SeriesInfo]) -> Vec<u32> {
    let max = series.iter().map(|s| s.id).max().unwrap_or(0).max(0);
    let mut table = vec![u32::MAX; usize::try_from(max).unwrap_or(0) + 1];
    for (i, s) in series.iter().enumerate() {
        if let Ok(id) = usize::try_from(s.id) {
            table[id] = u32::try_from(i).unwrap_or(u32::MAX);
        }
    }
    table
}

fn position(table: &[u32], series_id: i64) -> Option<usize> {
    let slot = *table.get(usize::try_from(series_id).ok()?)?;
    (slot != u32::MAX).then_some(slot as usize)
}

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
            let mut key = vec![b','];
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

    let mut out = Vec::with_capacity(1 << 16);
    out.push(b'[');
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
                let mean = acc.sums[metric.index()] / acc.n;
                if *metric == Metric::MemoryBytes {
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
    let newest: Option<i64> = conn.query_row("SELECT max(ts) FROM samples", [], |r| r.get(0))?;
    let mut out = Vec::with_capacity(1 << 12);
    out.push(b'[');
    let Some(newest) = newest else {
        close_array(&mut out);
        return Ok(out);
    };
    // Newest packed batch per node.
    let mut latest: HashMap<i64, (i64, Vec<u8>)> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT ts, node_id, readings FROM samples WHERE ts >= ?1 ORDER BY ts",
        )?;
        let mut rows = stmt.query([newest.saturating_sub(max_age_ms)])?;
        while let Some(row) = rows.next()? {
            latest.insert(row.get(1)?, (row.get(0)?, row.get(2)?));
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
    let mut picked: Vec<(usize, i64, [f64; blob::VALUES])> = Vec::new();
    for (ts, packed) in latest.values() {
        for entry in blob::entries(packed) {
            if let Some(i) = position(&table, entry.series_id) {
                picked.push((i, *ts, entry.values));
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
            out.push(b',');
            push_str(&mut out, metric.name());
            out.push(b':');
            let v = values[metric.index()];
            if metric == Metric::MemoryBytes {
                push_i64(&mut out, v.round() as i64);
            } else {
                push_f64(&mut out, v);
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
    // Newest first until the limit, then reversed: the newest `limit` readings, oldest first.
    let mut picked: Vec<(i64, [f64; blob::VALUES])> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT ts, readings FROM samples WHERE ts >= ?1 AND ts <= ?2 ORDER BY ts DESC, id DESC",
        )?;
        let mut rows = stmt.query(params![from, to])?;
        'rows: while let Some(row) = rows.next()? {
            let ts: i64 = row.get(0)?;
            let entries: Vec<blob::Entry> = blob::entries(row.get_ref(1)?.as_blob()?).collect();
            for entry in entries.into_iter().rev() {
                if picked.len() >= limit {
                    break 'rows;
                }
                picked.push((ts, entry.values));
            }
        }
    }
    let mut out = Vec::with_capacity(96 * picked.len() + 2);
    out.push(b'[');
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
