//! Prometheus metrics: ingest counters, commit timing, and the latest node and container values
//! (rebuilt from the newest batch of each node at every scrape, so vanished pods disappear).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use stressmix_api::readings::ReadingBatch;

/// Nodes whose newest batch is older than this are left out of the latest-value gauges.
const LATEST_MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    node: String,
    namespace: String,
    pod: String,
    container: String,
    workload: String,
    kind: String,
    cgroup: String,
}

type FloatGauges<L> = Family<L, Gauge<f64, AtomicU64>>;

pub struct Metrics {
    batches: Family<OutcomeLabels, Counter>,
    readings: Counter,
    rejected: Family<ReasonLabels, Counter>,
    commits: Counter,
    commit_seconds: Histogram,
    latest: Mutex<HashMap<String, (Instant, Box<ReadingBatch>)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            batches: Family::default(),
            readings: Counter::default(),
            rejected: Family::default(),
            commits: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            latest: Mutex::new(HashMap::new()),
        }
    }
}

impl Metrics {
    /// One committed transaction (a group of batches).
    pub fn record_commit(&self, took: Duration) {
        self.commits.inc();
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// A batch was committed (or recognised as a duplicate); keeps it as the node's latest.
    pub fn record_batch(&self, batch: Box<ReadingBatch>, duplicate: bool) {
        let outcome = if duplicate { "duplicate" } else { "stored" };
        self.batches.get_or_create(&OutcomeLabels { outcome }).inc();
        if duplicate {
            return;
        }
        self.readings.inc_by(batch.containers.len() as u64);
        if let Ok(mut latest) = self.latest.lock() {
            let newer = latest
                .get(&batch.node_name)
                .is_none_or(|(_, old)| old.timestamp_ms <= batch.timestamp_ms);
            if newer {
                latest.insert(batch.node_name.clone(), (Instant::now(), batch));
            }
        }
    }

    /// A refused request, by reason (`IngestError::reason`).
    pub fn record_rejection(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register(
            "stressmix_logsvc_batches",
            "Reading batches acknowledged, by outcome (stored or duplicate)",
            self.batches.clone(),
        );
        registry.register(
            "stressmix_logsvc_readings",
            "Container readings stored",
            self.readings.clone(),
        );
        registry.register(
            "stressmix_logsvc_rejected",
            "Requests to /api/v1/readings refused, by reason",
            self.rejected.clone(),
        );
        registry.register(
            "stressmix_logsvc_commits",
            "Database transactions committed by the writer (group commits)",
            self.commits.clone(),
        );
        registry.register(
            "stressmix_logsvc_commit_seconds",
            "Time to store and commit one group of batches",
            self.commit_seconds.clone(),
        );
        let node_cpu = FloatGauges::<NodeLabels>::default();
        let node_mem_used = FloatGauges::<NodeLabels>::default();
        let node_mem_total = FloatGauges::<NodeLabels>::default();
        let c_cpu = FloatGauges::<ContainerLabels>::default();
        let c_mem = FloatGauges::<ContainerLabels>::default();
        let c_mem_pct = FloatGauges::<ContainerLabels>::default();
        let c_read = FloatGauges::<ContainerLabels>::default();
        let c_write = FloatGauges::<ContainerLabels>::default();
        let c_io = FloatGauges::<ContainerLabels>::default();
        if let Ok(latest) = self.latest.lock() {
            for (node, (received, batch)) in latest.iter() {
                if received.elapsed() > LATEST_MAX_AGE {
                    continue;
                }
                let labels = NodeLabels { node: node.clone() };
                node_cpu.get_or_create(&labels).set(batch.node.cpu_percent);
                node_mem_used
                    .get_or_create(&labels)
                    .set(batch.node.memory_used_bytes as f64);
                node_mem_total
                    .get_or_create(&labels)
                    .set(batch.node.memory_total_bytes as f64);
                for c in &batch.containers {
                    let labels = ContainerLabels {
                        node: node.clone(),
                        namespace: c.namespace.clone().unwrap_or_default(),
                        pod: c.pod.clone().unwrap_or_default(),
                        container: c.container.clone().unwrap_or_default(),
                        workload: c.workload.clone().unwrap_or_default(),
                        kind: c.kind.clone().unwrap_or_default(),
                        cgroup: c.cgroup_path.clone(),
                    };
                    c_cpu.get_or_create(&labels).set(c.cpu_percent);
                    c_mem.get_or_create(&labels).set(c.memory_bytes as f64);
                    c_mem_pct.get_or_create(&labels).set(c.memory_percent);
                    c_read.get_or_create(&labels).set(c.disk_read_bytes_per_sec);
                    c_write
                        .get_or_create(&labels)
                        .set(c.disk_write_bytes_per_sec);
                    c_io.get_or_create(&labels).set(c.io_ops_per_sec);
                }
            }
        }
        registry.register(
            "stressmix_node_cpu_percent",
            "Latest node CPU use, percent of the node",
            node_cpu,
        );
        registry.register(
            "stressmix_node_memory_used_bytes",
            "Latest node memory in use",
            node_mem_used,
        );
        registry.register(
            "stressmix_node_memory_total_bytes",
            "Node memory",
            node_mem_total,
        );
        registry.register(
            "stressmix_container_cpu_percent",
            "Latest container CPU use, percent of one core",
            c_cpu,
        );
        registry.register(
            "stressmix_container_memory_bytes",
            "Latest container memory (memory.current)",
            c_mem,
        );
        registry.register(
            "stressmix_container_memory_percent",
            "Latest container memory, percent of node RAM",
            c_mem_pct,
        );
        registry.register(
            "stressmix_container_disk_read_bytes_per_second",
            "Latest container disk read rate",
            c_read,
        );
        registry.register(
            "stressmix_container_disk_write_bytes_per_second",
            "Latest container disk write rate",
            c_write,
        );
        registry.register(
            "stressmix_container_io_operations_per_second",
            "Latest container I/O operations rate",
            c_io,
        );
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        text
    }
}
