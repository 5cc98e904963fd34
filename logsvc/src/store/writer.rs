//! The single writer: drains the channel, stores many batches in one transaction (group commit),
//! and acknowledges each batch only after that transaction committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use stressmix_api::readings::{ContainerReading, ReadingBatch, SYSTEM_KIND};
use tokio::sync::{mpsc, oneshot};

use super::retention::{self, RetentionPolicy, RetentionReport};
use super::{Metric, StoreError, blob};
use crate::metrics::Metrics;
use crate::timefmt::now_ms;

/// Upper bounds of one group commit: big enough to amortise the fsync, small enough that the
/// first batch of a group is not kept waiting long.
const GROUP_MAX_BATCHES: usize = 2048;
const GROUP_MAX_READINGS: usize = 200_000;

/// `series.last_ms` is refreshed at most this often per series (it only bounds label queries).
const LAST_SEEN_REFRESH_MS: i64 = 60_000;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(crate) enum WriterMsg {
    Ingest {
        batch: Box<ReadingBatch>,
        reply: Reply<IngestOutcome>,
    },
    Retention {
        policy: RetentionPolicy,
        reply: Reply<RetentionReport>,
    },
    /// A read on the writer's connection (only for `:memory:` databases).
    Read(Box<dyn FnOnce(&Connection) + Send>),
    Shutdown,
}

/// What happened to one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The batch's (boot id, sequence) was already stored; nothing was written.
    pub duplicate: bool,
    /// Container readings in the batch.
    pub readings: usize,
}

struct SeriesEntry {
    id: i64,
    first_ms: i64,
    last_flushed_ms: i64,
}

/// Ids already known to be in the database. Cleared whenever a transaction fails (its inserts
/// were rolled back) or retention deleted rows they may point to.
#[derive(Default)]
struct Caches {
    boots: HashMap<String, i64>,
    nodes: HashMap<String, i64>,
    series: HashMap<String, SeriesEntry>,
}

impl Caches {
    fn clear(&mut self) {
        self.boots.clear();
        self.nodes.clear();
        self.series.clear();
    }
}

pub(crate) struct Writer {
    conn: Connection,
    caches: Caches,
    metrics: Arc<Metrics>,
    rollup_watermark: Arc<AtomicI64>,
}

struct Pending {
    batch: Box<ReadingBatch>,
    reply: Reply<IngestOutcome>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        metrics: Arc<Metrics>,
        rollup_watermark: Arc<AtomicI64>,
    ) -> Self {
        Writer {
            conn,
            caches: Caches::default(),
            metrics,
            rollup_watermark,
        }
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) {
        let mut deferred: Option<WriterMsg> = None;
        loop {
            let msg = match deferred.take() {
                Some(msg) => msg,
                None => match rx.blocking_recv() {
                    Some(msg) => msg,
                    None => break,
                },
            };
            match msg {
                WriterMsg::Ingest { batch, reply } => {
                    let mut group = vec![Pending { batch, reply }];
                    let mut readings = group[0].batch.containers.len();
                    while group.len() < GROUP_MAX_BATCHES && readings < GROUP_MAX_READINGS {
                        match rx.try_recv() {
                            Ok(WriterMsg::Ingest { batch, reply }) => {
                                readings += batch.containers.len();
                                group.push(Pending { batch, reply });
                            }
                            Ok(other) => {
                                deferred = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group);
                }
                WriterMsg::Retention { policy, reply } => {
                    let result = retention::run(&mut self.conn, &policy, &self.rollup_watermark);
                    // A failed pass may have rolled back mid-way; clearing is cheap, so do not guess.
                    if result
                        .as_ref()
                        .ok()
                        .is_none_or(RetentionReport::deleted_ids)
                    {
                        self.caches.clear();
                    }
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "retention pass failed");
                    }
                    let _ = reply.send(result);
                }
                WriterMsg::Read(job) => job(&self.conn),
                WriterMsg::Shutdown => break,
            }
        }
        // Everything still queued when the channel closed was never acknowledged; say so.
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            if let WriterMsg::Ingest { reply, .. } = msg {
                let _ = reply.send(Err(StoreError::WriterGone));
            }
        }
        tracing::info!("database writer stopped");
    }

    fn commit_group(&mut self, group: Vec<Pending>) {
        let started = Instant::now();
        let result = store_group(&mut self.conn, &mut self.caches, &group);
        match result {
            Ok(outcomes) => {
                self.metrics.record_commit(started.elapsed());
                for (pending, outcome) in group.into_iter().zip(outcomes) {
                    // Count before answering, so a client that saw the answer sees the count.
                    self.metrics.record_batch(pending.batch, outcome.duplicate);
                    let _ = pending.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batches = group.len(), "commit failed; batches not acknowledged");
                self.caches.clear();
                let e = Arc::new(e);
                for pending in group {
                    let _ = pending.reply.send(Err(StoreError::GroupCommit(e.clone())));
                }
            }
        }
    }
}

fn store_group(
    conn: &mut Connection,
    caches: &mut Caches,
    group: &[Pending],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let received = now_ms();
    let mut outcomes = Vec::with_capacity(group.len());
    for pending in group {
        outcomes.push(store_batch(&tx, caches, &pending.batch, received)?);
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Integers were validated to fit i64 (`limits::MAX_INTEGER`); saturate rather than panic anyway.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn upsert_id(tx: &Transaction<'_>, sql: &str, key: &str) -> Result<i64, StoreError> {
    Ok(tx.prepare_cached(sql)?.query_row([key], |r| r.get(0))?)
}

fn store_batch(
    tx: &Transaction<'_>,
    caches: &mut Caches,
    batch: &ReadingBatch,
    received_ms: i64,
) -> Result<IngestOutcome, StoreError> {
    let readings = batch.containers.len();
    let ts = int(batch.timestamp_ms);
    // Serializing plain enums cannot fail; a failure would only lose this annotation.
    let field_sources = batch
        .field_sources
        .as_ref()
        .and_then(|f| serde_json::to_string(f).ok());
    let boot = match caches.boots.get(&batch.boot_id) {
        Some(id) => *id,
        None => {
            let id = upsert_id(
                tx,
                "INSERT INTO boots (boot_id) VALUES (?1)
                 ON CONFLICT (boot_id) DO UPDATE SET boot_id = excluded.boot_id RETURNING id",
                &batch.boot_id,
            )?;
            caches.boots.insert(batch.boot_id.clone(), id);
            id
        }
    };
    let node_id = match caches.nodes.get(&batch.node_name) {
        Some(id) => *id,
        None => {
            let id = upsert_id(
                tx,
                "INSERT INTO nodes (name) VALUES (?1)
                 ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
                &batch.node_name,
            )?;
            caches.nodes.insert(batch.node_name.clone(), id);
            id
        }
    };
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO batches (boot, sequence, ts, node_id, received_ms, readings, source,
                 source_reason, field_sources)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            boot,
            int(batch.sequence),
            ts,
            node_id,
            received_ms,
            readings as i64,
            batch.source.as_str(),
            batch.source_reason.as_deref(),
            field_sources
        ])?;
    if inserted == 0 {
        return Ok(IngestOutcome {
            duplicate: true,
            readings,
        });
    }
    let n = &batch.node;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO node_samples (ts, node_id, cpu_percent, cpus, memory_total_bytes,
             memory_free_bytes, memory_available_bytes, memory_used_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        ts,
        node_id,
        n.cpu_percent,
        n.cpus,
        int(n.memory_total_bytes),
        int(n.memory_free_bytes),
        int(n.memory_available_bytes),
        int(n.memory_used_bytes)
    ])?;

    let mut key = String::new();
    let mut pods_by_kind: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut packed = Vec::with_capacity(readings * blob::USAGE_ENTRY_BYTES);
    let mut contention = Vec::with_capacity(readings * blob::CONTENTION_ENTRY_BYTES);
    let mut contended = false;
    for c in &batch.containers {
        let series_id = series_id(tx, caches, &mut key, node_id, c, ts)?;
        let usage = Metric::USAGE.map(|m| m.read(c).unwrap_or(0.0));
        blob::push_usage(
            &mut packed,
            &blob::UsageEntry {
                series_id,
                values: usage,
            },
        );
        // NaN marks an absent value: validated readings are finite.
        let values = Metric::CONTENTION.map(|m| m.read(c).unwrap_or(f64::NAN));
        contended |= values.iter().any(|v| !v.is_nan());
        blob::push_contention(&mut contention, &values);
        if let (Some(kind), Some(pod)) = (c.kind.as_deref(), c.pod.as_deref())
            && !kind.is_empty()
            && kind != SYSTEM_KIND
            && !pod.is_empty()
        {
            let pod_key = c.pod_uid.as_deref().unwrap_or(pod);
            let pods = pods_by_kind.entry(kind).or_default();
            if !pods.contains(&pod_key) {
                pods.push(pod_key);
            }
        }
    }
    // An upsert, not a replace: the row keeps its id, which its contention row refers to.
    let sample: i64 = tx
        .prepare_cached(
            "INSERT INTO samples (ts, node_id, boot, readings) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ts, node_id, boot) DO UPDATE SET readings = excluded.readings
             RETURNING id",
        )?
        .query_row(params![ts, node_id, boot, packed], |r| r.get(0))?;
    if contended {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO samples_contention (sample, entries) VALUES (?1, ?2)",
        )?
        .execute(params![sample, contention])?;
    } else {
        // A batch without contention that took the place of one with it.
        tx.prepare_cached("DELETE FROM samples_contention WHERE sample = ?1")?
            .execute([sample])?;
    }
    store_oom_kills(tx, batch, ts, node_id, boot)?;
    let mut kind_pods = tx.prepare_cached(
        "INSERT OR REPLACE INTO kind_pods (ts, node_id, kind, pods) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (kind, pods) in pods_by_kind {
        kind_pods.execute(params![ts, node_id, kind, pods.len() as i64])?;
    }
    Ok(IngestOutcome {
        duplicate: false,
        readings,
    })
}

fn store_oom_kills(
    tx: &Transaction<'_>,
    batch: &ReadingBatch,
    ts: i64,
    node_id: i64,
    boot: i64,
) -> Result<(), StoreError> {
    if batch.oom_kills.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO oom_kills (ts, node_id, boot, sequence, entry, cgroup_path, count,
             observed, namespace, pod, pod_uid, container, workload, kind, slot)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    for (entry, k) in batch.oom_kills.iter().enumerate() {
        insert.execute(params![
            ts,
            node_id,
            boot,
            int(batch.sequence),
            entry as i64,
            k.cgroup_path,
            int(k.count),
            k.observed.as_str(),
            k.namespace.as_deref().unwrap_or(""),
            k.pod.as_deref().unwrap_or(""),
            k.pod_uid.as_deref().unwrap_or(""),
            k.container.as_deref().unwrap_or(""),
            k.workload.as_deref().unwrap_or(""),
            k.kind.as_deref().unwrap_or(""),
            k.slot
        ])?;
    }
    Ok(())
}

/// The display name of a series: `namespace/pod/container` for pod containers, else the cgroup path.
pub(crate) fn series_name(c: &ContainerReading) -> String {
    match (c.pod.as_deref(), c.namespace.as_deref()) {
        (Some(pod), namespace) if !pod.is_empty() => format!(
            "{}/{}/{}",
            namespace.unwrap_or(""),
            pod,
            c.container.as_deref().unwrap_or("")
        ),
        _ => c.cgroup_path.clone(),
    }
}

fn series_id(
    tx: &Transaction<'_>,
    caches: &mut Caches,
    key: &mut String,
    node_id: i64,
    c: &ContainerReading,
    ts: i64,
) -> Result<i64, StoreError> {
    let labels = [
        c.cgroup_path.as_str(),
        c.container_id.as_deref().unwrap_or(""),
        c.pod_uid.as_deref().unwrap_or(""),
        c.pod.as_deref().unwrap_or(""),
        c.namespace.as_deref().unwrap_or(""),
        c.container.as_deref().unwrap_or(""),
        c.workload.as_deref().unwrap_or(""),
        c.kind.as_deref().unwrap_or(""),
    ];
    // NUL cannot occur in validated strings, so it separates the parts unambiguously.
    key.clear();
    key.push_str(&node_id.to_string());
    for label in labels {
        key.push('\0');
        key.push_str(label);
    }
    if let Some(entry) = caches.series.get_mut(key.as_str()) {
        if ts < entry.first_ms {
            tx.prepare_cached("UPDATE series SET first_ms = min(first_ms, ?2) WHERE id = ?1")?
                .execute(params![entry.id, ts])?;
            entry.first_ms = ts;
        }
        if ts >= entry.last_flushed_ms + LAST_SEEN_REFRESH_MS {
            tx.prepare_cached("UPDATE series SET last_ms = max(last_ms, ?2) WHERE id = ?1")?
                .execute(params![entry.id, ts])?;
            entry.last_flushed_ms = ts;
        }
        return Ok(entry.id);
    }
    let name = series_name(c);
    let (id, first_ms): (i64, i64) = tx
        .prepare_cached(
            "INSERT INTO series (node_id, cgroup_path, container_id, pod_uid, pod, namespace,
                 container, workload, kind, name, first_ms, last_ms, slot)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)
             ON CONFLICT (node_id, cgroup_path, container_id, pod_uid, pod, namespace, container,
                 workload, kind)
             DO UPDATE SET first_ms = min(first_ms, excluded.first_ms),
                           last_ms = max(last_ms, excluded.last_ms),
                           slot = coalesce(excluded.slot, slot)
             RETURNING id, first_ms",
        )?
        .query_row(
            params![
                node_id, labels[0], labels[1], labels[2], labels[3], labels[4], labels[5],
                labels[6], labels[7], name, ts, c.slot
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    caches.series.insert(
        key.clone(),
        SeriesEntry {
            id,
            first_ms,
            last_flushed_ms: ts,
        },
    );
    Ok(id)
}
