//! The HTTP API (axum): the route table (the router and the OpenAPI document both come from it),
//! shared state, health and metrics endpoints.

pub mod error;
pub mod ingest;
pub mod openapi;
pub mod query;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Db;
use error::{ApiError, json_response};
use openapi::{Answer, Operation};
use query::{
    CONTAINER_PARAM, EVENT_PARAMS, KIND_PARAM, LABEL_PATH_PARAM, LABELS_PARAM, LEGACY_PARAMS,
    MAX_AGE_PARAM, METRIC_PARAM, NODE_PARAM, RANGE_PARAMS, SEEN_PARAMS, WORKLOAD_PARAM,
};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Db>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
}

/// One endpoint: where, its handler and its documentation.
pub struct Route {
    /// Lower case, as OpenAPI spells it.
    pub method: &'static str,
    pub path: &'static str,
    pub doc: Operation,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn get<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        handler: H,
        doc: Operation,
    ) -> Route {
        Route {
            method: "get",
            path,
            doc,
            handler: get(handler),
        }
    }

    fn post<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        handler: H,
        doc: Operation,
    ) -> Route {
        Route {
            method: "post",
            path,
            doc,
            handler: post(handler),
        }
    }
}

/// Every route, once.
pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            stressmix_api::readings::READINGS_PATH,
            ingest::post_readings,
            Operation::new(
                "Store one reading batch",
                Answer::component("Stored or duplicate", "IngestAnswer"),
            )
            .describe(
                "Idempotent on (boot_id, sequence): a retried batch is stored once and answered `duplicate`. Answered only after the batch is committed to disk. Requires `Authorization: Bearer <token>` when the service has a token.",
            )
            .body("ReadingBatch")
            .bearer()
            .errors(&[
                (400, "Not JSON, wrong types or invalid values; `field` names the path, e.g. `containers[3].cpu_percent`"),
                (401, "Missing or wrong bearer token"),
                (413, "Body larger than --max-body-bytes"),
                (415, "Content-Type is not application/json"),
                (503, "Shutting down; retry"),
                (500, "Storage failed; not stored, retry"),
            ]),
        ),
        Route::get(
            "/api/v1/query/containers",
            query::containers,
            Operation::new(
                "Container samples per bucket (Grafana time series)",
                Answer::rows("Rows sorted by time, then series", "ContainerRow"),
            )
            .params(&RANGE_PARAMS)
            .params(&[WORKLOAD_PARAM, KIND_PARAM, CONTAINER_PARAM, NODE_PARAM, METRIC_PARAM, LABELS_PARAM])
            .errors(&[(400, "Error")]),
        ),
        Route::get(
            "/api/v1/query/nodes",
            query::nodes,
            Operation::new("Node samples per bucket", Answer::rows("Rows sorted by time, then node", "NodeRow"))
                .params(&RANGE_PARAMS)
                .params(&[NODE_PARAM])
                .errors(&[(400, "Error")]),
        ),
        Route::get(
            "/api/v1/query/pods-per-kind",
            query::pods_per_kind,
            Operation::new(
                "Stress pods per kind over time",
                Answer::rows("Rows sorted by time, then kind", "PodsPerKindRow"),
            )
            .describe("Per bucket, the most pods of a kind any batch of a node reported, summed over nodes. System cgroups are not counted.")
            .params(&RANGE_PARAMS)
            .errors(&[(400, "Error")]),
        ),
        Route::get(
            "/api/v1/events/oom-kills",
            query::oom_kills,
            Operation::new(
                "OOM kills as events (Grafana table and annotations)",
                Answer::rows("One row per cgroup killed in a batch, sorted by time", "OomKillRow"),
            )
            .describe("Each row is the kills of one cgroup's processes in one collection interval, as the agent attributed them to a pod, Workload, kind and slot. Kept as long as the rollups.")
            .params(&EVENT_PARAMS)
            .errors(&[(400, "Error")]),
        ),
        Route::get(
            "/api/v1/query/oom-kills",
            query::oom_kill_counts,
            Operation::new(
                "OOM kills in the window per Workload, kind and slot",
                Answer::rows("Sorted by workload, kind, slot", "OomKillCountRow"),
            )
            .describe("A slot whose pods keep being killed shows here although each victim is replaced by a pod of another name.")
            .params(&EVENT_PARAMS)
            .errors(&[(400, "Error")]),
        ),
        Route::get(
            "/api/v1/labels/{label}",
            query::labels,
            Operation::new(
                "Distinct label values for dashboard variables",
                Answer::rows("Sorted values", "LabelValue"),
            )
            .params(&[LABEL_PATH_PARAM])
            .params(&SEEN_PARAMS)
            .params(&[WORKLOAD_PARAM, KIND_PARAM, NODE_PARAM])
            .errors(&[(400, "Error"), (404, "Unknown label list")]),
        ),
        Route::get(
            "/api/v1/snapshot",
            query::snapshot,
            Operation::new(
                "Current values: the newest batch of each node",
                Answer::rows(
                    "One row per container, sorted by node then series; all metric columns",
                    "ContainerRow",
                ),
            )
            .params(&[NODE_PARAM, MAX_AGE_PARAM])
            .errors(&[(400, "Error")]),
        ),
        Route::get(
            "/data",
            query::legacy_data,
            Operation::new("Legacy contract of the original project", Answer::rows("Rows sorted by time", "LegacyRow"))
                .describe("One row per container reading, oldest first. CPU and Mem in percent, IO in operations (per second), Disc in MB (MiB read plus written per second).")
                .params(&LEGACY_PARAMS)
                .errors(&[(400, "Error")]),
        ),
        Route::get(
            "/metrics",
            metrics,
            Operation::new("Prometheus/OpenMetrics text", Answer::openmetrics("Metrics")).describe(
                "stressmix_logsvc_batches_total{outcome}, stressmix_logsvc_readings_total, stressmix_logsvc_rejected_total{reason}, stressmix_logsvc_commits_total, stressmix_logsvc_commit_seconds, the latest node and container values (stressmix_node_*, stressmix_container_*, pressure and throttling included when the agent sent them), and stressmix_oom_kills_total{node,namespace,workload,kind,slot} since the service started.",
            ),
        ),
        Route::get("/healthz", healthz, Operation::new("Liveness", Answer::component("Alive", "Status"))),
        Route::get(
            "/readyz",
            readyz,
            Operation::new(
                "Readiness: the writer runs and the database answers",
                Answer::component("Ready", "Status"),
            )
            .errors(&[(503, "Error")]),
        ),
        Route::get("/openapi.json", serve_openapi, Operation::new("This document", Answer::object("OpenAPI 3.1"))),
    ]
}

pub fn router(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint; see /openapi.json",
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// Ready when the writer runs and a reader can query the database.
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.db.writer_alive() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database writer stopped")
            .into_response();
    }
    let probe = state
        .db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM nodes", [], |r| r.get::<_, i64>(0))?))
        .await;
    match probe {
        Ok(_) => json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec()),
        Err(e) => {
            tracing::warn!(error = %e, "readiness probe failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database not ready").into_response()
        }
    }
}

/// Generated once, from the same table the router was built from.
static OPENAPI: LazyLock<Vec<u8>> = LazyLock::new(openapi::render);

async fn serve_openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI.clone())
}
