//! Prometheus metrics of the operator and the small HTTP server for `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-kind pod counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Stressor kind (`cpu`, `memory`, `io`, `disk`, or `unknown`).
    pub kind: String,
}

/// Labels of the pod deletion counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeleteLabels {
    /// Stressor kind.
    pub kind: String,
    /// Why: finished, failed, expired, outdated, surplus.
    pub reason: String,
}

/// Labels of the reconcile-error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// What failed, from a closed set (`ReconcileError::metric_label`).
    pub error: &'static str,
}

/// Labels of the per-Workload records gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    /// Which record: `backoff` (slots backing off), `in_flight` (creates not yet seen), `status`
    /// (Workloads whose last written status is kept).
    pub record: &'static str,
}

/// Every metric the operator exports.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles that ended in an error, by what failed.
    reconcile_errors: Family<ErrorLabels, Counter>,
    /// Wall time of one reconcile.
    pub reconcile_duration: Histogram,
    /// Pods created, per kind.
    pub pods_created: Family<KindLabels, Counter>,
    /// Pods deleted, per kind and reason.
    pub pods_deleted: Family<DeleteLabels, Counter>,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
    /// What the operator remembers of live Workloads, by record; all go with the Workload.
    records: Family<RecordLabels, Gauge>,
    registry: Registry,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let reconciles = Counter::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        // 1 ms .. ~16 s.
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let pods_created = Family::<KindLabels, Counter>::default();
        let pods_deleted = Family::<DeleteLabels, Counter>::default();
        let leader = Gauge::default();
        // Every error label from the start, so a rate() over them works before the first error.
        for error in crate::reconcile::ERROR_LABELS {
            reconcile_errors
                .get_or_create(&ErrorLabels { error })
                .inc_by(0);
        }
        let mut registry = Registry::with_prefix("stressmix_operator");
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            reconcile_duration.clone(),
        );
        registry.register("pods_created", "Pods created", pods_created.clone());
        registry.register("pods_deleted", "Pods deleted", pods_deleted.clone());
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let records = Family::<RecordLabels, Gauge>::default();
        registry.register(
            "workload_records",
            "Records kept per Workload, by record (backoff slots, creates in flight, written statuses)",
            records.clone(),
        );
        Self {
            reconciles,
            reconcile_errors,
            reconcile_duration,
            pods_created,
            pods_deleted,
            leader,
            records,
            registry,
        }
    }

    /// Sets the per-Workload records gauge: slots backing off, creates in flight, written statuses.
    pub fn set_records(&self, backoff: usize, in_flight: usize, status: usize) {
        for (record, n) in [
            ("backoff", backoff),
            ("in_flight", in_flight),
            ("status", status),
        ] {
            self.records
                .get_or_create(&RecordLabels { record })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts a failed reconcile under `error` (`ReconcileError::metric_label`).
    pub fn reconcile_error(&self, error: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { error })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared state of the HTTP endpoints.
#[derive(Clone, Debug)]
pub struct Health {
    /// The metrics to render.
    pub metrics: Arc<Metrics>,
    /// Set once the Kubernetes client and the lease manager are up (leader or standby).
    pub ready: Arc<AtomicBool>,
}

/// The router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    match health.metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_labels() {
        let m = Metrics::new();
        m.reconciles.inc();
        m.pods_created
            .get_or_create(&KindLabels { kind: "cpu".into() })
            .inc();
        m.pods_deleted
            .get_or_create(&DeleteLabels {
                kind: "io".into(),
                reason: "expired".into(),
            })
            .inc();
        m.reconcile_duration.observe(0.002);
        let text = m.render().expect("encodes");
        assert!(
            text.contains("stressmix_operator_reconciles_total 1"),
            "{text}"
        );
        m.reconcile_error("create_pod");
        let text = m.render().expect("encodes");
        assert!(
            text.contains("stressmix_operator_reconcile_errors_total{error=\"create_pod\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("stressmix_operator_reconcile_errors_total{error=\"write_status\"} 0")
        );
        assert!(text.contains("stressmix_operator_pods_created_total{kind=\"cpu\"} 1"));
        assert!(
            text.contains(
                "stressmix_operator_pods_deleted_total{kind=\"io\",reason=\"expired\"} 1"
            )
        );
        assert!(text.contains("stressmix_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains("stressmix_operator_leader 0"));
    }
}
