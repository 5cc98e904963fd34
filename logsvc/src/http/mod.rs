//! The HTTP API (axum): routes, shared state, health and metrics endpoints.

pub mod error;
pub mod ingest;
pub mod query;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Db;
use error::{ApiError, json_response};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Db>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
}

/// Every route, as (method, path): the router, the OpenAPI document and the tests agree on it.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", stressmix_api::readings::READINGS_PATH),
    ("get", "/api/v1/query/containers"),
    ("get", "/api/v1/query/nodes"),
    ("get", "/api/v1/query/pods-per-kind"),
    ("get", "/api/v1/labels/{label}"),
    ("get", "/api/v1/snapshot"),
    ("get", "/data"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
];

/// The hand-written OpenAPI 3.1 description of every route.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            stressmix_api::readings::READINGS_PATH,
            post(ingest::post_readings),
        )
        .route("/api/v1/query/containers", get(query::containers))
        .route("/api/v1/query/nodes", get(query::nodes))
        .route("/api/v1/query/pods-per-kind", get(query::pods_per_kind))
        .route("/api/v1/labels/{label}", get(query::labels))
        .route("/api/v1/snapshot", get(query::snapshot))
        .route("/data", get(query::legacy_data))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
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
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database not ready: {e}"),
        )
        .into_response(),
    }
}

async fn openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI.as_bytes().to_vec())
}
