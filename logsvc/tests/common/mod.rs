//! Helpers shared by the log service tests.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use stressmix_api::readings::{ContainerReading, NodeReading, ReadingBatch, ReadingSource};
use stressmix_logsvc::Config;
use stressmix_logsvc::http::{AppState, router};
use stressmix_logsvc::metrics::Metrics;
use stressmix_logsvc::store::{Db, RetentionPolicy, RetentionReport};
use tower::ServiceExt;

pub const EXAMPLE: &str = include_str!("../../../examples/readings-batch.json");
pub const BOOT: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
pub const T0: u64 = 1_764_370_800_000;

pub struct App {
    pub router: Router,
    pub db: Arc<Db>,
}

pub fn app(config: Config) -> App {
    let metrics = Arc::new(Metrics::default());
    let db = Arc::new(Db::open(&config, metrics.clone()).expect("open db"));
    let state = AppState {
        db: db.clone(),
        metrics,
        config: Arc::new(config),
    };
    App {
        router: router(state),
        db,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }

    pub fn rows(&self) -> Vec<serde_json::Value> {
        self.json().as_array().expect("a JSON array").clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(app: &App, request: Request<Body>) -> Answer {
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

pub async fn get(app: &App, uri: &str) -> Answer {
    call(app, Request::get(uri).body(Body::empty()).expect("request")).await
}

pub async fn post_json(app: &App, body: impl Into<Body>) -> Answer {
    call(
        app,
        Request::post("/api/v1/readings")
            .header("content-type", "application/json")
            .body(body.into())
            .expect("request"),
    )
    .await
}

pub async fn post_batch(app: &App, batch: &ReadingBatch) -> Answer {
    post_json(app, serde_json::to_vec(batch).expect("serialize")).await
}

/// A container of workload `lab`: `kind` is cpu/memory/..., `slot` picks the pod.
pub fn container(kind: &str, slot: usize, cpu: f64) -> ContainerReading {
    let pod = format!("lab-{kind}-{slot}");
    ContainerReading {
        cgroup_id: Some(1000 + slot as u64),
        cgroup_path: format!("/kubepods/pod-{kind}-{slot}/c{slot}"),
        container_id: Some(format!("{:064x}", slot + 1)),
        pod: Some(pod),
        pod_uid: Some(format!("00000000-0000-4000-8000-{slot:012}")),
        namespace: Some("stress".into()),
        container: Some("stress".into()),
        workload: Some("lab".into()),
        kind: Some(kind.into()),
        cpu_percent: cpu,
        cpu_percent_node: cpu / 2.0,
        memory_bytes: 1_048_576 * (slot as u64 + 1),
        memory_percent: 0.5,
        disk_read_bytes_per_sec: 2_097_152.0,
        disk_write_bytes_per_sec: 1_048_576.0,
        io_ops_per_sec: 10.4,
        ..ContainerReading::default()
    }
}

pub fn batch(
    node: &str,
    boot: &str,
    sequence: u64,
    ts: u64,
    containers: Vec<ContainerReading>,
) -> ReadingBatch {
    ReadingBatch {
        node_name: node.into(),
        boot_id: boot.into(),
        sequence,
        timestamp_ms: ts,
        source: ReadingSource::Module,
        source_reason: None,
        node: NodeReading {
            memory_total_bytes: 8 << 30,
            memory_free_bytes: 4 << 30,
            memory_available_bytes: 5 << 30,
            memory_used_bytes: 3 << 30,
            cpu_percent: 40.0,
            cpus: 2,
        },
        containers,
        field_sources: None,
        oom_kills: Vec::new(),
    }
}

/// A retention pass as if run `days_later` days after T0, with the default retentions (raw 24 h,
/// rollups 30 days).
pub async fn retention_after(app: &App, days_later: i64) -> RetentionReport {
    app.db
        .retention(RetentionPolicy {
            now_ms: T0 as i64 + days_later * 86_400_000,
            raw: std::time::Duration::from_secs(86_400),
            rollup: std::time::Duration::from_secs(30 * 86_400),
        })
        .await
        .expect("retention")
}
