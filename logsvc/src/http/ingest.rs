//! `POST /api/v1/readings`: authenticate, check the media type and size, parse with field paths,
//! validate, and answer only after the writer committed the batch.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use stressmix_api::readings::ReadingBatch;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, json_response};
use crate::metrics::Rejection;
use crate::store::StoreError;

pub async fn post_readings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest(&state, &headers, body).await {
        Ok(response) => response,
        Err((why, error)) => {
            state.metrics.record_rejection(why);
            let mut response = error.into_response();
            if why == Rejection::Unauthorized {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

type Refusal = (Rejection, ApiError);

fn authorized(expected: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time over the contents; only the length can leak, which a token's entropy covers.
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

async fn ingest(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, Refusal> {
    if !authorized(state.config.token.as_deref(), headers) {
        return Err((
            Rejection::Unauthorized,
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            ),
        ));
    }
    if !is_json(headers) {
        return Err((
            Rejection::UnsupportedMediaType,
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ),
        ));
    }
    let limit = state.config.max_body_bytes;
    let too_large = || {
        (
            Rejection::TooLarge,
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {limit} bytes"),
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err((
                Rejection::BadJson,
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the body: {e}"),
                ),
            ));
        }
    };
    let batch = parse_batch(&bytes).map_err(|e| (Rejection::BadJson, e))?;
    batch.validate().map_err(|e| {
        (
            Rejection::Invalid,
            ApiError::bad_request(e.field, e.message),
        )
    })?;
    let boot_id = batch.boot_id.clone();
    let sequence = batch.sequence;
    match state.db.ingest(Box::new(batch)).await {
        Ok(outcome) => {
            let body = serde_json::json!({
                "status": if outcome.duplicate { "duplicate" } else { "stored" },
                "boot_id": boot_id,
                "sequence": sequence,
                "readings": outcome.readings,
            });
            Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
        }
        Err(StoreError::WriterGone) => Err((
            Rejection::Unavailable,
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is shutting down; retry",
            ),
        )),
        Err(e) => {
            tracing::error!(error = %e, "storing a batch failed");
            Err((
                Rejection::Unavailable,
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("storing the batch failed: {e}"),
                ),
            ))
        }
    }
}

/// Parses a batch; errors name the JSON path of the offending value.
pub fn parse_batch(bytes: &[u8]) -> Result<ReadingBatch, ApiError> {
    // Fast path: plain serde_json. Only a failure pays for a second, path-tracking parse.
    if let Ok(batch) = serde_json::from_slice::<ReadingBatch>(bytes) {
        return Ok(batch);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let batch: ReadingBatch = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // Syntax errors have no meaningful path ("." or "?"): no field to name.
        if e.inner().is_syntax() || e.inner().is_eof() || matches!(path.as_str(), "." | "?" | "") {
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {message}"))
        } else {
            ApiError::bad_request(path, format!("invalid value: {message}"))
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON after the batch: {e}"),
        )
    })?;
    Ok(batch)
}
