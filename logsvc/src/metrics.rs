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

use crate::store::Metric;

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

/// OOM kills are counted per slot, not per pod: a replaced victim's successor has another name, and
/// the slot bounds the series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OomLabels {
    node: String,
    namespace: String,
    workload: String,
    kind: String,
    slot: String,
}

type FloatGauges<L> = Family<L, Gauge<f64, AtomicU64>>;

pub struct Metrics {
    batches: Family<OutcomeLabels, Counter>,
    readings: Counter,
    rejected: Family<ReasonLabels, Counter>,
    commits: Counter,
    commit_seconds: Histogram,
    oom_kills: Family<OomLabels, Counter>,
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
            oom_kills: Family::default(),
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
        for kill in &batch.oom_kills {
            let labels = OomLabels {
                node: batch.node_name.clone(),
                namespace: kill.namespace.clone().unwrap_or_default(),
                workload: kill.workload.clone().unwrap_or_default(),
                kind: kill.kind.clone().unwrap_or_default(),
                slot: kill.slot.map(|s| s.to_string()).unwrap_or_default(),
            };
            self.oom_kills.get_or_create(&labels).inc_by(kill.count);
        }
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
        registry.register(
            "stressmix_oom_kills",
            "Processes OOM-killed, by node, namespace, Workload, kind and slot, since the service started",
            self.oom_kills.clone(),
        );
        // One gauge family per metric of the query vocabulary, in Metric::ALL order.
        let containers: Vec<FloatGauges<ContainerLabels>> =
            Metric::ALL.iter().map(|_| FloatGauges::default()).collect();
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
                    for (metric, family) in Metric::ALL.iter().zip(&containers) {
                        // Pressure and throttling only when the agent sent them: no fake zeros.
                        if let Some(value) = metric.read(c) {
                            family.get_or_create(&labels).set(value);
                        }
                    }
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
        for (metric, family) in Metric::ALL.iter().zip(containers) {
            registry.register(
                format!("stressmix_container_{}", metric.prometheus_name()),
                format!("Latest container value: {}", metric.description()),
                family,
            );
        }
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        text
    }
}
