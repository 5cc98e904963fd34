//! The agent's own Prometheus metrics, served at `/metrics` next to `/healthz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::attribution::Attribution;
use crate::container_metrics::ContainerMetrics;
use crate::module_status::Cause;

type Labels = Vec<(&'static str, &'static str)>;

/// Why a batch left the buffer without being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The buffer was full: the oldest batch made room for the newest.
    BufferFull,
    /// The log service refused the batch as malformed (400, 413, 415, 422): resending cannot help.
    Rejected,
    /// Still queued when the shutdown grace period ran out.
    Shutdown,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    /// Container readings shipped (one per cgroup per interval).
    pub readings: Counter,
    /// Readings attribution leaves out on purpose (pod cgroups, sandboxes), by reason.
    not_shipped: Family<Labels, Counter>,
    /// Batches built.
    pub batches_built: Counter,
    /// Batches the log service stored.
    pub batches_sent: Counter,
    /// Failed send attempts that will be retried.
    pub retries: Counter,
    /// Batches waiting in the buffer.
    pub buffered: Gauge,
    dropped: Family<Labels, Counter>,
    /// Seconds one collection (read + rates + attribution) took.
    pub collection_seconds: Histogram,
    /// Collections that failed (the interval produced no batch).
    pub collection_errors: Counter,
    /// 1 for the source in use (`module` or `cgroupfs`).
    source: Family<Labels, Gauge>,
    /// 1 for the source in use and why (`cause` from a closed set, `none` when the module is in use
    /// as expected).
    source_info: Family<Labels, Gauge>,
    /// Counter decreases (resets) seen while computing rates.
    pub counter_resets: Counter,
    /// Usage, pressure, throttling and OOM kills per pod container.
    pub containers: Arc<ContainerMetrics>,
    last_success_unix_ms: AtomicU64,
}

impl Metrics {
    /// The agent's metrics, with per-container series for at most `max_containers` containers.
    pub fn new(max_containers: usize) -> Arc<Self> {
        let mut registry = Registry::with_prefix("stressmix_agent");
        let containers = Arc::new(ContainerMetrics::new(max_containers));
        registry.register_collector(Box::new(containers.clone()));
        let readings = Counter::default();
        registry.register("readings", "Container readings shipped", readings.clone());
        let not_shipped = Family::<Labels, Counter>::default();
        registry.register(
            "readings_not_shipped",
            "Readings left out on purpose: a pod's own cgroup (the sum of its containers) or its sandbox",
            not_shipped.clone(),
        );
        let reasons = [Attribution::PodCgroup, Attribution::Sandbox]
            .into_iter()
            .filter_map(Attribution::not_shipped_reason);
        for reason in reasons {
            not_shipped
                .get_or_create(&vec![("reason", reason)])
                .inc_by(0);
        }
        let batches_built = Counter::default();
        registry.register("batches_built", "Batches built", batches_built.clone());
        let batches_sent = Counter::default();
        registry.register(
            "batches_sent",
            "Batches stored by the log service",
            batches_sent.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "send_retries",
            "Failed send attempts that are retried",
            retries.clone(),
        );
        let buffered = Gauge::default();
        registry.register(
            "buffered_batches",
            "Batches waiting to be sent",
            buffered.clone(),
        );
        let dropped = Family::<Labels, Counter>::default();
        registry.register(
            "dropped_batches",
            "Batches lost, by reason",
            dropped.clone(),
        );
        let collection_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ]);
        registry.register(
            "collection_seconds",
            "Time to read counters, compute rates and attribute them",
            collection_seconds.clone(),
        );
        let collection_errors = Counter::default();
        registry.register(
            "collection_errors",
            "Collections that failed",
            collection_errors.clone(),
        );
        let source = Family::<Labels, Gauge>::default();
        registry.register(
            "source",
            "1 for the counter source in use (module or cgroupfs)",
            source.clone(),
        );
        let source_info = Family::<Labels, Gauge>::default();
        registry.register(
            "source_info",
            "1 for the counter source in use and the cause when it is not the module as expected",
            source_info.clone(),
        );
        let counter_resets = Counter::default();
        registry.register(
            "counter_resets",
            "Counter decreases seen while computing rates",
            counter_resets.clone(),
        );
        for reason in [
            DropReason::BufferFull,
            DropReason::Rejected,
            DropReason::Shutdown,
        ] {
            // Expose every reason from the start so a rate() over it works before the first drop.
            dropped
                .get_or_create(&vec![("reason", reason.as_str())])
                .inc_by(0);
        }
        Arc::new(Metrics {
            registry,
            readings,
            not_shipped,
            batches_built,
            batches_sent,
            retries,
            buffered,
            dropped,
            collection_seconds,
            collection_errors,
            source,
            source_info,
            counter_resets,
            containers,
            last_success_unix_ms: AtomicU64::new(0),
        })
    }

    pub fn dropped(&self, reason: DropReason, count: u64) {
        self.dropped
            .get_or_create(&vec![("reason", reason.as_str())])
            .inc_by(count);
    }

    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped
            .get_or_create(&vec![("reason", reason.as_str())])
            .get()
    }

    /// Counts a reading left out on purpose (a shipped one counts nothing here).
    pub fn reading_not_shipped(&self, why: Attribution) {
        if let Some(reason) = why.not_shipped_reason() {
            self.not_shipped
                .get_or_create(&vec![("reason", reason)])
                .inc();
        }
    }

    pub fn set_source(&self, source: &'static str) {
        for s in ["module", "cgroupfs"] {
            self.source
                .get_or_create(&vec![("source", s)])
                .set(i64::from(s == source));
        }
    }

    /// Why the agent reads `source`; set once at start.
    pub fn set_source_cause(&self, source: &'static str, cause: Option<Cause>) {
        self.source_info
            .get_or_create(&vec![
                ("source", source),
                ("cause", cause.map_or("none", Cause::as_str)),
            ])
            .set(1);
    }

    pub fn collection_succeeded(&self) {
        self.last_success_unix_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Healthy when a collection succeeded within `max_age`.
    pub fn healthy(&self, max_age: Duration) -> bool {
        let last = self.last_success_unix_ms.load(Ordering::Relaxed);
        last != 0
            && now_ms().saturating_sub(last)
                <= u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail on I/O; an error would only come from a broken metric.
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    max_age: Duration,
}

/// `/metrics` and `/healthz`. `/healthz` fails when no collection succeeded within `max_age`.
pub fn router(metrics: Arc<Metrics>, max_age: Duration) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(serve_health))
        .with_state(ServerState { metrics, max_age })
}

async fn serve_metrics(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn serve_health(State(state): State<ServerState>) -> impl IntoResponse {
    if state.metrics.healthy(state.max_age) {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no successful collection recently\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_promised_series() {
        let m = Metrics::new(10);
        m.readings.inc_by(3);
        m.dropped(DropReason::BufferFull, 2);
        m.set_source("cgroupfs");
        m.set_source_cause("cgroupfs", Some(Cause::NoHeaders));
        let text = m.encode();
        for needle in [
            "stressmix_agent_readings_total 3",
            "stressmix_agent_batches_sent_total 0",
            "stressmix_agent_send_retries_total 0",
            "stressmix_agent_buffered_batches 0",
            "stressmix_agent_dropped_batches_total{reason=\"buffer_full\"} 2",
            "stressmix_agent_dropped_batches_total{reason=\"shutdown\"} 0",
            "stressmix_agent_collection_seconds_count 0",
            "stressmix_agent_source{source=\"cgroupfs\"} 1",
            "stressmix_agent_source{source=\"module\"} 0",
            "stressmix_agent_source_info{source=\"cgroupfs\",cause=\"no-headers\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert_eq!(m.dropped_total(DropReason::BufferFull), 2);
    }

    #[test]
    fn health_follows_the_last_success() {
        let m = Metrics::new(10);
        assert!(!m.healthy(Duration::from_secs(10)));
        m.collection_succeeded();
        assert!(m.healthy(Duration::from_secs(10)));
    }
}
